//! Pure rules of the product, with no I/O: statuses, the template and its graph, the
//! execution aggregate, the moves of the state machine, ids and time formats. Every other
//! layer calls these; none restates them.

pub mod execution;
pub mod feed;
pub mod fleet;
pub mod history;
pub mod ids;
pub mod listing;
pub mod quoting;
pub mod rules;
pub mod status;
pub mod template;
pub mod time;

pub use execution::{
    ActionLog, ActionState, Counts, DEFAULT_USER_KEY, Detail, Execution, FullExecution, Header,
};
pub use history::{Event, EventKind, Provenance, RecordedEvent};
pub use ids::{ExecutionId, ExecutionRef, Hashid, HashidCodec, MalformedRef};
pub use quoting::quoted;
pub use rules::{ActionUpdate, NewExecution, Outcome, RuleViolation};
pub use status::{ActionStatus, EdgeStatus, ExecutionStatus};
pub use template::{Edge, Graph, Node, Position, Template, TemplateError};

/// How much of an execution a read returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum View {
    /// Header only: no template, stats, data or log.
    Basic,
    /// Everything.
    Full,
}
