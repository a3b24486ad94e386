//! `executions wait ID…`: blocks until every execution has finished, and exits with their
//! outcome: 0 when all completed, 1 when one failed, 3 when one was stopped (and none
//! failed), 4 when one could not be followed.

use std::process::ExitCode;

use tokio::task::JoinSet;

use super::follow::{FollowError, follow};
use super::output::{self, execution_status};
use super::{ClientArgs, EXIT_ERROR, EXIT_FAILED, EXIT_STOPPED};
use crate::proto::v1 as pb;

/// Settings of `executions wait`.
#[derive(Clone, Debug, clap::Args)]
pub struct WaitArgs {
    /// UUIDs or hashids of the executions.
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Connection and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Waits for every execution; prints each one's final state as it finishes.
pub async fn run(args: WaitArgs) -> ExitCode {
    let mut waits = JoinSet::new();
    for id in &args.ids {
        let server = args.client.server.clone();
        let request = pb::WatchExecutionRequest {
            id: id.clone(),
            view: pb::ExecutionView::Basic as i32,
            time_zone: args.client.zone_name(),
            ..Default::default()
        };
        let id = id.clone();
        waits.spawn(async move { (id, follow(&server, request, |_| {}).await) });
    }
    let mut outcomes = Vec::new();
    while let Some(done) = waits.join_next().await {
        let Ok((id, outcome)) = done else {
            outcomes.push(EXIT_ERROR);
            continue;
        };
        outcomes.push(match outcome {
            Ok(execution) => {
                show(&execution, &args.client);
                exit_code(execution.status())
            }
            Err(error) => {
                eprintln!("error: cannot wait for {id}: {error}");
                EXIT_ERROR
            }
        });
    }
    ExitCode::from(worst(&outcomes))
}

/// The exit code of a terminal status.
pub fn exit_code(status: pb::ExecutionStatus) -> u8 {
    match status {
        pb::ExecutionStatus::Completed => 0,
        pb::ExecutionStatus::Failed => EXIT_FAILED,
        pb::ExecutionStatus::Stopped => EXIT_STOPPED,
        _ => EXIT_ERROR,
    }
}

/// The code of several outcomes: an error first, then a failure, then a stop.
fn worst(codes: &[u8]) -> u8 {
    [EXIT_ERROR, EXIT_FAILED, EXIT_STOPPED]
        .into_iter()
        .find(|code| codes.contains(code))
        .unwrap_or(0)
}

/// Prints an execution's final state: one line, or its JSON.
pub fn show(execution: &pb::Execution, client: &ClientArgs) {
    if client.json() {
        output::print_json(execution);
    } else {
        println!(
            "{}  {}  {}  {}",
            execution.hashid,
            execution_status(execution.status()),
            output::counts(execution),
            execution.name
        );
    }
}

/// Follows an execution started here until it finishes (`start --wait`).
pub async fn wait_for(
    execution: &pb::Execution,
    client: &ClientArgs,
) -> Result<pb::Execution, FollowError> {
    let request = pb::WatchExecutionRequest {
        id: execution.id.clone(),
        view: pb::ExecutionView::Basic as i32,
        time_zone: client.zone_name(),
        ..Default::default()
    };
    follow(&client.server, request, |_| {}).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_outcome_decides() {
        assert_eq!(worst(&[0, 0]), 0);
        assert_eq!(worst(&[0, EXIT_STOPPED]), EXIT_STOPPED);
        assert_eq!(worst(&[EXIT_STOPPED, EXIT_FAILED]), EXIT_FAILED);
        assert_eq!(worst(&[EXIT_FAILED, EXIT_ERROR, 0]), EXIT_ERROR);
    }
}
