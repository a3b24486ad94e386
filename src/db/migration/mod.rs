//! Schema migrations, run at start. Written with sea-orm-migration's schema helpers so the
//! same migration creates the same schema on SQLite and PostgreSQL.

use sea_orm_migration::prelude::*;

mod m0001_create_executions;
mod m0002_status_indexes;
mod m0003_history_and_stop_events;
mod m0004_change_marks;
mod m0005_lighter_history_rows;
mod m0006_folded_stops;
mod m0007_room_for_updates;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_create_executions::Migration),
            Box::new(m0002_status_indexes::Migration),
            Box::new(m0003_history_and_stop_events::Migration),
            Box::new(m0004_change_marks::Migration),
            Box::new(m0005_lighter_history_rows::Migration),
            Box::new(m0006_folded_stops::Migration),
            Box::new(m0007_room_for_updates::Migration),
        ]
    }
}

/// Runs `statements` in order, as they are: the raw SQL of a migration that differs
/// between the databases.
async fn run_statements(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    for statement in statements {
        manager
            .get_connection()
            .execute_unprepared(statement)
            .await?;
    }
    Ok(())
}

/// The first column of the one row `sql` answers on SQLite (for the migrations' tests).
#[cfg(test)]
async fn first_value<T: sea_orm::TryGetable>(conn: &impl sea_orm::ConnectionTrait, sql: &str) -> T {
    let statement = sea_orm::Statement::from_string(sea_orm::DatabaseBackend::Sqlite, sql);
    let row = conn.query_one_raw(statement).await.unwrap().unwrap();
    row.try_get_by_index::<T>(0).unwrap()
}
