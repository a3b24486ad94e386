//! The database behind the server: a SQLite temp file, or a fresh PostgreSQL database made
//! (and dropped) through the `postgres` maintenance database, and scratch databases on the
//! same server; bulk seeding in SQL; sampling of stored ids.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use url::Url;

/// Where the data lives and what to clean up.
pub struct Databases {
    /// URL the server connects to.
    pub url: String,
    /// The load generator's own connection to it (bulk seeding, id sampling).
    pub conn: DatabaseConnection,
    /// PostgreSQL maintenance database URL (`.../postgres`), on PostgreSQL.
    admin: Option<String>,
    /// Databases this run created and drops at the end.
    created: Vec<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Databases {
    /// A SQLite temp file when `url` is `None`; with a `postgres://` URL and `fresh`, a
    /// fresh database `loadgen_<pid>` on that server (or `keep`, created if missing and
    /// never dropped); any other URL, or any URL without `fresh`, is used as it is.
    pub async fn prepare(
        url: Option<&str>,
        fresh: bool,
        keep: Option<&str>,
    ) -> anyhow::Result<Self> {
        let (url, admin, created, dir) = match url {
            None => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("load.db").display());
                (url, None, Vec::new(), Some(dir))
            }
            Some(url) if url.starts_with("postgres") && fresh => {
                let admin = String::from(with_database(url, "postgres")?);
                let conn = sea_orm::Database::connect(&admin).await?;
                let (name, created) = match keep {
                    Some(name) => (name.to_owned(), Vec::new()),
                    None => {
                        let name = format!("loadgen_{}", std::process::id());
                        (name.clone(), vec![name])
                    }
                };
                let exists = conn
                    .query_one_raw(sea_orm::Statement::from_string(
                        DbBackend::Postgres,
                        format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
                    ))
                    .await?
                    .is_some();
                if !exists {
                    conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                        .await?;
                }
                conn.close().await?;
                (
                    with_database(url, &name)?.into(),
                    Some(admin),
                    created,
                    None,
                )
            }
            Some(url) => {
                let admin = if url.starts_with("postgres") {
                    Some(with_database(url, "postgres")?.into())
                } else {
                    None
                };
                (url.to_owned(), admin, Vec::new(), None)
            }
        };
        let conn = executions::db::Database::connect(&url, 4)
            .await?
            .conn()
            .clone();
        Ok(Self {
            url,
            conn,
            admin,
            created,
            _dir: dir,
        })
    }

    /// True on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.conn.get_database_backend() == DbBackend::Postgres
    }

    /// On PostgreSQL, flushes every dirty page now (`CHECKPOINT`), so that the run that
    /// follows does not pay for the writes of the runs before it (a checkpoint that falls
    /// inside a run slows it, and the full-page images written after it slow it more).
    /// A user without the right to checkpoint gets a warning, once per run.
    pub async fn checkpoint(&self) {
        if !self.is_postgres() {
            return;
        }
        if let Err(err) = self.conn.execute_unprepared("CHECKPOINT").await {
            eprintln!("  (no CHECKPOINT before the run: {err})");
        }
    }

    /// Creates an empty scratch database on the same PostgreSQL server (dropped at the
    /// end) and returns its name.
    pub async fn scratch(&mut self, name: &str) -> anyhow::Result<String> {
        let admin = self
            .admin
            .clone()
            .ok_or_else(|| anyhow::anyhow!("scratch databases need PostgreSQL"))?;
        let conn = sea_orm::Database::connect(&admin).await?;
        conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await?;
        conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        conn.close().await?;
        self.created.push(name.to_owned());
        Ok(name.to_owned())
    }

    /// The URL PostgreSQL's command-line tools (pgbench) take for `database` on the same
    /// server: the server's URL naming that database, without its query (sqlx's options
    /// are not all libpq's). libpq reads user, password, host and port from it itself.
    pub fn libpq_url(&self, database: &str) -> anyhow::Result<String> {
        let mut url = with_database(&self.url, database)?;
        url.set_query(None);
        Ok(url.into())
    }

    /// Drops the databases this run created.
    pub async fn cleanup(self) -> anyhow::Result<()> {
        self.conn.close().await?;
        if let Some(admin) = &self.admin
            && !self.created.is_empty()
        {
            let conn = sea_orm::Database::connect(admin).await?;
            for name in &self.created {
                conn.execute_unprepared(&format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                ))
                .await?;
            }
            conn.close().await?;
        }
        Ok(())
    }
}

/// `url` naming database `name` instead (query string kept).
fn with_database(url: &str, name: &str) -> anyhow::Result<Url> {
    let mut url = Url::parse(url)?;
    url.set_path(&format!("/{name}"));
    Ok(url)
}

/// Copies execution `template_seq` (with its actions) `count` times in one statement each
/// for executions and actions: fresh ids (random UUIDs: v4, not v7), the sequence assigns
/// `seq` (so hashids), and creation times 1 ms apart starting `count` ms before `base_us`.
/// PostgreSQL: `INSERT ... SELECT ... generate_series`; SQLite: a recursive CTE.
pub async fn copy_execution(
    conn: &DatabaseConnection,
    template_seq: i64,
    count: u64,
    base_us: i64,
) -> anyhow::Result<()> {
    let postgres = conn.get_database_backend() == DbBackend::Postgres;
    let before: i64 = max_seq(conn).await?;
    let columns = "user_key, key, name, status, stop_reason, revision, actions_count, \
                   idle_count, scheduled_count, running_count, completed_count, failed_count, \
                   stopped_count, template, execution_data";
    let copied = columns
        .split(", ")
        .map(|c| format!("t.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let times = format!("{base_us} - ({count} - g.n) * 1000");
    let (series, uuid) = if postgres {
        (String::new(), "gen_random_uuid()")
    } else {
        (
            format!(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {count}) "
            ),
            "randomblob(16)",
        )
    };
    let from = if postgres {
        format!("generate_series(1, {count}) AS g(n)")
    } else {
        "g".to_owned()
    };
    conn.execute_unprepared(&format!(
        "{series}INSERT INTO executions (id, {columns}, created_at, updated_at) \
         SELECT {uuid}, {copied}, {times}, {times} \
         FROM {from} CROSS JOIN executions t WHERE t.seq = {template_seq}"
    ))
    .await?;
    conn.execute_unprepared(&format!(
        "INSERT INTO actions (execution_seq, node_id, status, scheduled_at, started_at, \
         completed_at, failed_at, stopped_at, failure_note) \
         SELECT e.seq, a.node_id, a.status, a.scheduled_at, a.started_at, a.completed_at, \
         a.failed_at, a.stopped_at, a.failure_note \
         FROM executions e CROSS JOIN actions a \
         WHERE e.seq > {before} AND a.execution_seq = {template_seq}"
    ))
    .await?;
    Ok(())
}

/// The highest `seq` so far (0 when empty).
pub async fn max_seq(conn: &DatabaseConnection) -> anyhow::Result<i64> {
    scalar(conn, "SELECT COALESCE(MAX(seq), 0) AS v FROM executions").await
}

/// Rows in `executions`.
pub async fn count(conn: &DatabaseConnection) -> anyhow::Result<u64> {
    Ok(scalar(conn, "SELECT COUNT(*) AS v FROM executions").await? as u64)
}

/// The integer column `v` of the one row `sql` returns.
async fn scalar(conn: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            sql,
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    Ok(row.try_get::<i64>("", "v")?)
}

/// Up to `n` ids of random stored executions.
pub async fn sample_ids(conn: &DatabaseConnection, n: usize) -> anyhow::Result<Vec<String>> {
    use executions::db::entity::execution::{Column, Entity};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
    let max = max_seq(conn).await?;
    let mut ids = Vec::new();
    if max == 0 {
        return Ok(ids);
    }
    for _ in 0..n.div_ceil(1_000) {
        let seqs: Vec<i64> = (0..1_000).map(|_| rand::random_range(1..=max)).collect();
        let found: Vec<uuid::Uuid> = Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::Seq.is_in(seqs))
            .into_tuple()
            .all(conn)
            .await?;
        ids.extend(found.iter().map(|id| id.to_string()));
    }
    ids.truncate(n);
    Ok(ids)
}
