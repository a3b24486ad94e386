//! Room for updates in `actions` on PostgreSQL: its pages are filled to 70 % (its
//! `fillfactor`; 100 % by default), so that an action's new version (each report, each
//! stop rewrites its row) usually fits in the same page. PostgreSQL then updates it
//! without touching the primary key's index (a heap-only tuple). Only pages written
//! after this migration are affected. SQLite has no such setting.

use sea_orm_migration::prelude::*;

/// This migration.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0007_room_for_updates"
    }
}

// The trait is declared through async_trait with an elided `SchemaManager` lifetime; naming
// it here would no longer match the declaration.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                super::run_statements(manager, &["ALTER TABLE actions SET (fillfactor = 70)"]).await
            }
            _ => Ok(()),
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                super::run_statements(manager, &["ALTER TABLE actions RESET (fillfactor)"]).await
            }
            _ => Ok(()),
        }
    }
}
