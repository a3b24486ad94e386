//! Creates `executions` and `actions` with the indexes that Get, List and the idempotent
//! start read through.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates the two tables.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_create_executions"
    }
}

// The trait is declared through async_trait with an elided `SchemaManager` lifetime; naming
// it here would no longer match the declaration.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("executions")
                    .if_not_exists()
                    .col(big_pk_auto("seq"))
                    .col(uuid_uniq("id"))
                    .col(string("user_key"))
                    .col(string("key"))
                    .col(string("name"))
                    .col(string("status"))
                    .col(text_null("stop_reason"))
                    .col(big_integer("revision"))
                    .col(integer("actions_count"))
                    .col(integer("idle_count"))
                    .col(integer("scheduled_count"))
                    .col(integer("running_count"))
                    .col(integer("completed_count"))
                    .col(integer("failed_count"))
                    .col(integer("stopped_count"))
                    .col(text("template"))
                    .col(json_binary_null("execution_data"))
                    .col(string_null("request_id"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .to_owned(),
            )
            .await?;
        // Keyset pagination walks (created_at, seq), alone or within a tenant or a key.
        for (name, columns) in [
            ("executions_created", &["created_at", "seq"][..]),
            (
                "executions_user_created",
                &["user_key", "created_at", "seq"][..],
            ),
            ("executions_key_created", &["key", "created_at", "seq"][..]),
        ] {
            let mut index = Index::create();
            index.name(name).table("executions").if_not_exists();
            for column in columns {
                index.col(*column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        // One execution per (tenant, request id); NULL request ids never collide.
        manager
            .create_index(
                Index::create()
                    .name("executions_request_id")
                    .table("executions")
                    .col("user_key")
                    .col("request_id")
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("actions")
                    .if_not_exists()
                    .col(big_integer("execution_seq"))
                    .col(string("node_id"))
                    .col(string("status"))
                    .col(big_integer_null("scheduled_at"))
                    .col(big_integer_null("started_at"))
                    .col(big_integer_null("completed_at"))
                    .col(big_integer_null("failed_at"))
                    .col(big_integer_null("stopped_at"))
                    .col(text_null("failure_note"))
                    .primary_key(Index::create().col("execution_seq").col("node_id"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("actions_execution")
                            .from("actions", "execution_seq")
                            .to("executions", "seq")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("actions").to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table("executions").to_owned())
            .await
    }
}
