//! Table `execution_events`: the history, one row per thing a change changed, keyed by
//! the execution's sequence number, the revision of the change and the event's place in
//! it. Times are microseconds since the Unix epoch (UTC).

use sea_orm::entity::prelude::*;

/// One event of one change.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "execution_events")]
pub struct Model {
    /// The execution.
    #[sea_orm(primary_key, auto_increment = false)]
    pub execution_seq: i64,
    /// Revision of the change.
    #[sea_orm(primary_key, auto_increment = false)]
    pub revision: i64,
    /// Place of the event in its change, from 0.
    #[sea_orm(primary_key, auto_increment = false)]
    pub ordinal: i32,
    /// Time of the change.
    pub occurred_at: i64,
    /// What changed (`EventKind`).
    pub kind: String,
    /// The action, on action events.
    pub node_id: Option<String>,
    /// The action's status before.
    pub from_status: Option<String>,
    /// The action's status after.
    pub to_status: Option<String>,
    /// When the action is scheduled to run.
    pub scheduled_at: Option<i64>,
    /// Failure note or stop reason.
    #[sea_orm(column_type = "Text", nullable)]
    pub note: Option<String>,
    /// Name of the token that made the change.
    pub actor: String,
    /// Request id of the StopExecutions job that made it.
    pub request_id: Option<String>,
    /// On an EXECUTION_STOPPED row only: the ACTION_STOPPED events of the same change,
    /// folded into it (see `db::history`).
    #[sea_orm(column_type = "Text", nullable)]
    pub folded_actions: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
