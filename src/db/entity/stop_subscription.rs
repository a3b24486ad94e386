//! Table `stop_subscriptions`: which executions of a tenant listen to which stop event.

use sea_orm::entity::prelude::*;

/// One execution listening to one stop event.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "stop_subscriptions")]
pub struct Model {
    /// Its tenant.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_key: String,
    /// The stop event.
    #[sea_orm(primary_key, auto_increment = false)]
    pub stop_event: String,
    /// The execution.
    #[sea_orm(primary_key, auto_increment = false)]
    pub execution_seq: i64,
}

impl ActiveModelBehavior for ActiveModel {}
