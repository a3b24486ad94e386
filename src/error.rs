//! The one error type of the request path. Each variant is a decision about what the
//! caller is told; `grpc::status` maps every variant to a gRPC code, an `ErrorInfo` reason
//! and, for bad fields, a `BadRequest` violation.

use crate::domain::RuleViolation;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is malformed or out of bounds.
    #[error("{message}")]
    InvalidField {
        /// Path of the field in the request (e.g. `template.nodes[2].id`).
        field: String,
        /// Stable UPPER_SNAKE reason.
        reason: &'static str,
        /// What is wrong, for people.
        message: String,
    },
    /// No execution has that id (or it is not visible to the caller).
    #[error("execution {0} not found")]
    ExecutionNotFound(String),
    /// The request breaks a rule of the state machine.
    #[error(transparent)]
    Rule(#[from] RuleViolation),
    /// A watch asked to resume from a revision the execution has not reached.
    #[error("since_revision {requested} is ahead of the current revision {current}")]
    RevisionAhead {
        /// What the caller asked for.
        requested: i64,
        /// What the execution has.
        current: i64,
    },
    /// This replica already serves as many watches as it may.
    #[error("too many open watches (limit {limit}); retry later or on another replica")]
    TooManyWatches {
        /// The configured limit.
        limit: usize,
    },
    /// The server is shutting down; a watch ends with the last revision it sent.
    #[error(
        "server shutting down; last revision sent: {last_revision}; resume elsewhere with since_revision={last_revision}"
    )]
    ShuttingDown {
        /// Last revision the stream sent (or the caller's since_revision).
        last_revision: i64,
    },
    /// The call carries no bearer token, or one this server does not know.
    #[error("missing or unknown bearer token")]
    Unauthenticated,
    /// The caller's token does not allow this call.
    #[error("{message}")]
    PermissionDenied {
        /// Stable UPPER_SNAKE reason.
        reason: &'static str,
        /// What is not allowed, for people.
        message: String,
    },
    /// The server is running as many calls as it may; the caller should back off and
    /// retry (here or on another replica).
    #[error("server overloaded: {limit} calls in flight; retry with backoff")]
    Overloaded {
        /// The configured limit.
        limit: usize,
    },
    /// The caller's deadline passed before the work was done; nothing was changed.
    #[error("deadline exceeded; nothing was changed")]
    DeadlineExceeded,
    /// The database cannot be reached; the caller may retry.
    #[error("database unavailable")]
    DatabaseUnavailable {
        /// Detail for the logs, never sent to the caller.
        detail: String,
    },
    /// The database refused a statement for a reason other than an outage; logged in
    /// full, opaque to the caller.
    #[error("internal error")]
    Database {
        /// Detail for the logs, never sent to the caller.
        detail: String,
    },
    /// Something that should not happen; logged in full, opaque to the caller.
    #[error("internal error")]
    Internal {
        /// Detail for the logs, never sent to the caller.
        detail: String,
    },
}

impl Error {
    /// A bad request field.
    pub fn invalid(
        field: impl Into<String>,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::InvalidField {
            field: field.into(),
            reason,
            message: message.into(),
        }
    }

    /// True for errors that came from the database (for the database error metric).
    pub fn is_database(&self) -> bool {
        matches!(
            self,
            Self::DatabaseUnavailable { .. } | Self::Database { .. }
        )
    }

    /// An internal error with detail for the logs.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::Internal {
            detail: detail.to_string(),
        }
    }
}
