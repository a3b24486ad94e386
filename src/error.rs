//! The one error type of the request path. Each variant is a decision about what the
//! caller is told; `grpc::status` maps every variant to a gRPC code, an `ErrorInfo` reason
//! and, for bad fields, a `BadRequest` violation.
//!
//! Errors the caller cannot act on (a database outage, a refused statement, a broken
//! invariant) keep their cause as their `source` and the place in our code where they
//! arose (`#[track_caller]`: the `?` or the call that made them), so the log line has
//! both; the caller gets a short, opaque message.

use std::panic::Location;

use crate::domain::RuleViolation;

/// The cause of an internal or database error, kept for the logs.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where in this crate an error arose.
pub type Site = &'static Location<'static>;

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
    /// The server is shutting down; a WatchExecutions feed ends with the cursor to resume
    /// from.
    #[error("server shutting down; resume elsewhere with resume_cursor={cursor}")]
    FeedShuttingDown {
        /// Cursor of the last message the feed sent (or the caller's resume cursor).
        cursor: String,
    },
    /// A health check names a service this server does not report on.
    #[error("unknown service {}", crate::domain::quoted(.0))]
    ServiceUnknown(String),
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
    #[error(
        "overloaded: {limit} calls in flight, the most allowed; retry with backoff, or on another replica"
    )]
    Overloaded {
        /// The configured limit.
        limit: usize,
    },
    /// Answers that their clients have not taken yet hold more bytes than the server's
    /// budget; the caller should back off and retry (here or on another replica).
    #[error(
        "overloaded: answers not yet read by their clients hold {held} bytes, past the limit of {limit}; retry with backoff, or on another replica"
    )]
    UnsentBacklog {
        /// Bytes held now.
        held: usize,
        /// The configured budget.
        limit: usize,
    },
    /// The caller's deadline passed before the work was done; nothing was changed.
    #[error("deadline exceeded; nothing was changed")]
    DeadlineExceeded,
    /// The database cannot be reached; the caller may retry.
    #[error("database unavailable")]
    DatabaseUnavailable {
        /// The database's error, for the logs; never sent to the caller.
        #[source]
        source: Source,
        /// Where it arose.
        site: Site,
    },
    /// The database's disk is full (SQLite's SQLITE_FULL, PostgreSQL's disk_full): the
    /// write changed nothing; reads go on, and writes succeed again once space is freed.
    #[error("the database's disk is full; nothing was changed; retry once space is freed")]
    DatabaseFull {
        /// The database's error, for the logs; never sent to the caller.
        #[source]
        source: Source,
        /// Where it arose.
        site: Site,
    },
    /// The database refused a statement for a reason other than an outage; logged in
    /// full, opaque to the caller.
    #[error("internal error")]
    Database {
        /// The database's error, for the logs; never sent to the caller.
        #[source]
        source: Source,
        /// Where it arose.
        site: Site,
    },
    /// Something that should not happen; logged in full, opaque to the caller.
    #[error("internal error")]
    Internal {
        /// What went wrong, for the logs; never sent to the caller.
        #[source]
        source: Source,
        /// Where it arose.
        site: Site,
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
            Self::DatabaseUnavailable { .. } | Self::DatabaseFull { .. } | Self::Database { .. }
        )
    }

    /// An internal error: `cause` (an error, or a message) is kept for the logs, with the
    /// place this was called from.
    #[track_caller]
    pub fn internal(cause: impl Into<Source>) -> Self {
        Self::Internal {
            source: cause.into(),
            site: Location::caller(),
        }
    }
}

/// `.or_internal()` on a result whose error means a broken invariant: it becomes
/// [`Error::Internal`], located where `.or_internal()` was called (a function passed to
/// `map_err` would be located inside the standard library).
pub trait OrInternal<T> {
    /// The value, or an [`Error::Internal`] keeping the error and this call's location.
    fn or_internal(self) -> Result<T, Error>;
}

impl<T, E: Into<Source>> OrInternal<T> for Result<T, E> {
    #[track_caller]
    fn or_internal(self) -> Result<T, Error> {
        match self {
            Ok(value) => Ok(value),
            Err(err) => Err(Error::internal(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An internal error keeps its cause as its source and points at the line that made
    /// it, not at the standard library.
    #[test]
    fn internal_errors_keep_their_source_and_site() {
        let parsed: Result<i32, _> = "x".parse::<i32>();
        let err = parsed.or_internal().unwrap_err();
        let Error::Internal { source, site } = &err else {
            panic!("not internal: {err:?}");
        };
        assert_eq!(site.file(), file!());
        assert_eq!(site.line(), line!() - 5);
        assert!(source.to_string().contains("invalid digit"));
        assert!(std::error::Error::source(&err).is_some());
        assert_eq!(err.to_string(), "internal error", "opaque to the caller");
    }
}
