//! Table `executions`: one row per execution, with its header, counts, revision, template
//! and data. Times are microseconds since the Unix epoch (UTC), so both databases order
//! and compare them exactly.

use sea_orm::entity::prelude::*;

/// One execution.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "executions")]
pub struct Model {
    /// Internal sequence; the hashid encodes it.
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// Public UUIDv7.
    #[sea_orm(unique)]
    pub id: Uuid,
    /// Owning tenant.
    pub user_key: String,
    /// Workflow key.
    pub key: String,
    /// Execution name.
    pub name: String,
    /// Derived status, as `ExecutionStatus::as_str`.
    pub status: String,
    /// Reason given when stopped.
    pub stop_reason: Option<String>,
    /// 1 at creation, +1 with every change.
    pub revision: i64,
    /// Number of actions.
    pub actions_count: i32,
    /// IDLE actions.
    pub idle_count: i32,
    /// SCHEDULED actions.
    pub scheduled_count: i32,
    /// RUNNING actions.
    pub running_count: i32,
    /// COMPLETED actions.
    pub completed_count: i32,
    /// FAILED actions.
    pub failed_count: i32,
    /// STOPPED actions.
    pub stopped_count: i32,
    /// Template as JSON text.
    #[sea_orm(column_type = "Text")]
    pub template: String,
    /// Data context (jsonb on PostgreSQL, JSON text on SQLite).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub execution_data: Option<Json>,
    /// Idempotency key, unique per tenant.
    pub request_id: Option<String>,
    /// Creation time, µs since the epoch.
    pub created_at: i64,
    /// Latest change, µs since the epoch.
    pub updated_at: i64,
    /// JSON array of the stop events it listens to.
    #[sea_orm(column_type = "Text")]
    pub stop_events: String,
    /// Bytes its actions' logs may take together.
    pub log_budget: i64,
}

impl ActiveModelBehavior for ActiveModel {}
