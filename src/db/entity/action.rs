//! Table `actions`: the state of each action of each execution, keyed by the execution's
//! sequence number and the node id. Times are microseconds since the Unix epoch (UTC).

use sea_orm::entity::prelude::*;

/// One action of one execution.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "actions")]
pub struct Model {
    /// `executions.seq` of the owning execution.
    #[sea_orm(primary_key, auto_increment = false)]
    pub execution_seq: i64,
    /// Node id of the action in the template.
    #[sea_orm(primary_key, auto_increment = false)]
    pub node_id: String,
    /// Status, as `ActionStatus::as_str`.
    pub status: String,
    /// When the engine scheduled it.
    pub scheduled_at: Option<i64>,
    /// When it started running.
    pub started_at: Option<i64>,
    /// When it completed.
    pub completed_at: Option<i64>,
    /// When it failed.
    pub failed_at: Option<i64>,
    /// When it was stopped.
    pub stopped_at: Option<i64>,
    /// What went wrong, when it failed.
    pub failure_note: Option<String>,
    /// The last log it reported, as JSON text.
    #[sea_orm(column_type = "Text", nullable)]
    pub log: Option<String>,
    /// Size of that log as encoded on the wire (0 without one).
    pub log_bytes: i64,
}

impl ActiveModelBehavior for ActiveModel {}
