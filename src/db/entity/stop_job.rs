//! Table `stop_jobs`: one StopExecutions job with a request id per row, keyed by tenant and
//! request id: what it was asked, the last execution it went past, and its counts.

use sea_orm::entity::prelude::*;

/// One StopExecutions job.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "stop_jobs")]
pub struct Model {
    /// Tenant it stops in.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_key: String,
    /// Its request id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub request_id: String,
    /// The stop event.
    pub stop_event: String,
    /// The execution_data filter, as JSON.
    #[sea_orm(column_type = "Text")]
    pub filters: String,
    /// The stop reason.
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    /// The last execution it went past (0 before the first).
    pub after_seq: i64,
    /// Executions it found matching.
    pub matched_count: i64,
    /// Executions it stopped.
    pub stopped_count: i64,
    /// True once it went past the last match.
    pub finished: bool,
    /// When it began (µs).
    pub created_at: i64,
    /// When it last progressed (µs).
    pub updated_at: i64,
}

impl ActiveModelBehavior for ActiveModel {}
