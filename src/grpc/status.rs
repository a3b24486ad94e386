//! The wire form of [`Error`]: a canonical gRPC code, a short message, an `ErrorInfo`
//! detail (domain `executions`, an UPPER_SNAKE reason) and, for bad fields, a `BadRequest`
//! violation naming the field. The match is exhaustive: a new variant forces a decision.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::RuleViolation;
use crate::error::Error;

/// `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "executions";

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        let mut metadata = HashMap::new();
        let mut field = None;
        let (code, reason) = match &err {
            Error::InvalidField {
                field: name,
                reason,
                ..
            } => {
                field = Some(name.clone());
                (Code::InvalidArgument, *reason)
            }
            Error::ExecutionNotFound(_) => (Code::NotFound, "EXECUTION_NOT_FOUND"),
            Error::Rule(rule) => match rule {
                RuleViolation::ActionNotFound { .. } => {
                    field = Some("node_id".to_owned());
                    (Code::NotFound, "ACTION_NOT_FOUND")
                }
                RuleViolation::ExecutionStopped => (Code::FailedPrecondition, "EXECUTION_STOPPED"),
                RuleViolation::ExecutionFinished { .. } => {
                    (Code::FailedPrecondition, "EXECUTION_ALREADY_FINISHED")
                }
                RuleViolation::RevisionMismatch { current, .. } => {
                    metadata.insert("current_revision".to_owned(), current.to_string());
                    (Code::Aborted, "REVISION_MISMATCH")
                }
                RuleViolation::InvalidTransition { .. } => {
                    (Code::FailedPrecondition, "INVALID_TRANSITION")
                }
                RuleViolation::ActionNotReady { .. } => {
                    (Code::FailedPrecondition, "ACTION_NOT_READY")
                }
                RuleViolation::LogFull { budget, .. } => {
                    field = Some("log".to_owned());
                    metadata.insert("log_budget_bytes".to_owned(), budget.to_string());
                    (Code::ResourceExhausted, "EXECUTION_LOG_FULL")
                }
            },
            Error::RevisionAhead { current, .. } => {
                field = Some("since_revision".to_owned());
                metadata.insert("current_revision".to_owned(), current.to_string());
                (Code::OutOfRange, "REVISION_AHEAD")
            }
            Error::TooManyWatches { .. } => (Code::ResourceExhausted, "TOO_MANY_WATCHES"),
            Error::ShuttingDown { last_revision } => {
                metadata.insert("last_revision".to_owned(), last_revision.to_string());
                (Code::Unavailable, "SERVER_SHUTTING_DOWN")
            }
            Error::FeedShuttingDown { cursor } => {
                metadata.insert("resume_cursor".to_owned(), cursor.clone());
                (Code::Unavailable, "SERVER_SHUTTING_DOWN")
            }
            Error::ServiceUnknown(_) => (Code::NotFound, "SERVICE_NOT_FOUND"),
            Error::Unauthenticated => (Code::Unauthenticated, "UNAUTHENTICATED"),
            Error::PermissionDenied { reason, .. } => (Code::PermissionDenied, *reason),
            Error::Overloaded { .. } | Error::UnsentBacklog { .. } => {
                (Code::ResourceExhausted, "OVERLOADED")
            }
            Error::DeadlineExceeded => (Code::DeadlineExceeded, "DEADLINE_EXCEEDED"),
            Error::DatabaseUnavailable { source, site } => {
                tracing::warn!(error = %source, %site, "database unavailable");
                (Code::Unavailable, "DATABASE_UNAVAILABLE")
            }
            Error::DatabaseFull { source, site } => {
                tracing::error!(error = %source, %site, "database disk full");
                (Code::ResourceExhausted, "DATABASE_FULL")
            }
            Error::Database { source, site } => {
                tracing::error!(error = %source, %site, "database error");
                (Code::Internal, "INTERNAL")
            }
            Error::Internal { source, site } => {
                tracing::error!(error = %source, %site, "internal error");
                (Code::Internal, "INTERNAL")
            }
        };
        let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
        if let Some(field) = field {
            details.add_bad_request_violation(field, message.clone());
        }
        Status::with_error_details(code, message, details)
    }
}
