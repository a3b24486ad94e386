//! Indexes for counting executions by status, across tenants and within one, without
//! reading the rows (CountExecutions).

use sea_orm_migration::prelude::*;

/// This migration.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_status_indexes"
    }
}

// The trait is declared through async_trait with an elided `SchemaManager` lifetime; naming
// it here would no longer match the declaration.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, columns) in [
            ("executions_status", &["status"][..]),
            ("executions_user_status", &["user_key", "status"][..]),
        ] {
            let mut index = Index::create();
            index.name(name).table("executions").if_not_exists();
            for column in columns {
                index.col(*column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["executions_status", "executions_user_status"] {
            manager
                .drop_index(Index::drop().name(name).table("executions").to_owned())
                .await?;
        }
        Ok(())
    }
}
