//! The three status enums of the state machine and their stored spellings.

use std::fmt;
use std::str::FromStr;

/// Status of an execution. `Completed`, `Failed` and `Stopped` are terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExecutionStatus {
    /// Some action is scheduled or running, or some idle action is ready.
    Running,
    /// Every action completed.
    Completed,
    /// Nothing can run any more and at least one action failed.
    Failed,
    /// Stopped by a caller.
    Stopped,
}

/// Status of one action. `Completed`, `Failed` and `Stopped` are terminal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActionStatus {
    /// Not yet scheduled.
    #[default]
    Idle,
    /// Scheduled by the engine.
    Scheduled,
    /// Running on a worker.
    Running,
    /// Finished successfully.
    Completed,
    /// Finished with an error.
    Failed,
    /// Stopped with its execution.
    Stopped,
}

/// Status of one edge: open once its source is the Start node or a completed action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EdgeStatus {
    /// Its target may run.
    Open,
    /// Its source has not completed.
    Closed,
}

impl ExecutionStatus {
    /// Every status, in declaration order.
    pub const ALL: [Self; 4] = [Self::Running, Self::Completed, Self::Failed, Self::Stopped];

    /// True for the statuses that never change again.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Running)
    }

    /// The spelling stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Stopped => "STOPPED",
        }
    }
}

impl ActionStatus {
    /// Every status, in declaration order.
    pub const ALL: [Self; 6] = [
        Self::Idle,
        Self::Scheduled,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Stopped,
    ];

    /// True for the statuses that never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Stopped)
    }

    /// True while the action occupies the engine (scheduled or running).
    pub fn is_active(self) -> bool {
        matches!(self, Self::Scheduled | Self::Running)
    }

    /// The spelling stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "IDLE",
            Self::Scheduled => "SCHEDULED",
            Self::Running => "RUNNING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Stopped => "STOPPED",
        }
    }
}

/// A stored status spelling that no variant has.
#[derive(Debug, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for ExecutionStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

impl FromStr for ActionStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_spellings_round_trip() {
        for status in ExecutionStatus::ALL {
            assert_eq!(status.as_str().parse::<ExecutionStatus>().unwrap(), status);
        }
        for status in ActionStatus::ALL {
            assert_eq!(status.as_str().parse::<ActionStatus>().unwrap(), status);
        }
        assert!("running".parse::<ActionStatus>().is_err());
    }

    #[test]
    fn terminal_statuses() {
        let terminal: Vec<_> = ActionStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                ActionStatus::Completed,
                ActionStatus::Failed,
                ActionStatus::Stopped
            ]
        );
        assert!(!ExecutionStatus::Running.is_terminal());
        assert!(ExecutionStatus::Stopped.is_terminal());
    }
}
