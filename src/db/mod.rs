//! The data layer: connecting (SQLite or PostgreSQL, same code), migrations, SeaORM
//! entities and the queries the service runs. Functions here take `&impl ConnectionTrait`
//! so they run inside the caller's transaction, and return domain types. No tonic here.

mod autocommit;
mod changes;
mod columns;
mod creations;
pub mod entity;
pub mod fleet;
mod history;
mod listing;
mod load;
pub mod migration;
pub mod notify;
mod retention;
mod rows;
mod starts;
mod store;
mod templates;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr, RuntimeErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use tokio::sync::{Mutex, MutexGuard};

pub use autocommit::{Autocommit, Failure};
pub use changes::{changed_page, changed_since, commit_point};
pub use creations::{Horizon, horizon};
pub use history::{EventPosition, list_events};
pub use listing::{count_by_status, list};
pub use load::{
    CurrentRevision, find_by_request_id, load, load_for_change, load_many, revision_of,
    revisions_of_many,
};
pub use retention::{delete_finished_before, take_retention_turn};
pub use starts::{insert_started, insert_started_alone};
pub use store::{
    insert_events, insert_events_of_many, is_unique_violation, save_change, save_stops,
};

use crate::error::Error;

/// The embedded default: a SQLite file in the working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://executions.db?mode=rwc";

/// How long a SQLite connection waits for a lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// KiB of page cache per SQLite connection (SQLite's default is 2,000). Every connection
/// of the pool keeps its own cache, and in WAL mode a connection drops its whole cache
/// whenever another one has written since its last read, so under writes a large cache
/// mostly holds pages it will not reuse: with the default, 16 connections held about 30
/// MiB once WatchExecutions snapshots had been read through all of them (BENCHMARKS.md,
/// WatchExecutions), and reads were no faster. Pages not cached are read from the
/// operating system's cache.
const SQLITE_PAGE_CACHE_KIB: u32 = 256;

/// A pool of connections plus what the service needs to write through it safely.
#[derive(Clone, Debug)]
pub struct Database {
    conn: DatabaseConnection,
    /// SQLite allows one writer at a time and refuses (rather than waits for) a read
    /// transaction that upgrades to a write after another writer committed. Taking this
    /// in-process lock around every write transaction makes SQLite writers queue instead.
    /// PostgreSQL needs none: its writers lock the execution row (`SELECT ... FOR UPDATE`).
    sqlite_writer: Option<Arc<Mutex<()>>>,
    /// SQLite: the writes begun plus the writes ended, counted by [`WriteGuard`]: odd
    /// while one is in progress. A value read before and after a read, unchanged and
    /// even, says no write committed in between (see [`Database::quiet_epoch`]).
    write_epoch: Arc<AtomicU64>,
    /// SQLite: an exclusive lock on the database file, held while this server runs, so
    /// that a second server on the same file refuses to start (its watchers would never
    /// hear of the first one's changes, which are announced in-process only).
    _sqlite_owner: Option<Arc<std::fs::File>>,
    /// Most connections the pool opens.
    max_connections: u32,
}

/// Held for the length of one write transaction, its commit included (a no-op on
/// PostgreSQL). On SQLite it holds the write turn and keeps the write epoch odd.
pub struct WriteGuard<'a>(Option<(MutexGuard<'a, ()>, &'a AtomicU64)>);

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if let Some((_turn, epoch)) = &self.0 {
            // Ended: even again, while the turn is still held.
            epoch.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The pool size when none is configured: 16 connections on PostgreSQL; on SQLite twice
/// the cores, from 4 to 16. SQLite has one writer, which holds one connection, and its
/// readers gain nothing from more connections than cores to run them on, while each
/// connection keeps a page cache and prepared statements (on 2 cores, `loadgen mixed`:
/// 4 connections answered 4,525 calls/s with the server at 69.5 MiB, 16 connections
/// about 3,500 calls/s at 77 MiB; BENCHMARKS.md).
pub fn default_max_connections(url: &str) -> u32 {
    if url.starts_with("sqlite:") {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        (2 * cores).clamp(4, 16)
    } else {
        16
    }
}

/// A caller's budget as PostgreSQL's `statement_timeout` or `lock_timeout`, in ms:
/// rounded up, so that it ends a statement no earlier than the caller's deadline, and at
/// least 1 (0 would mean no limit).
fn budget_millis(budget: Duration) -> u128 {
    budget.as_micros().div_ceil(1000).clamp(1, i32::MAX as u128)
}

impl Database {
    /// Connects to `url` (`sqlite://...` or `postgres://...`) with a pool of at most
    /// `max_connections`, then runs every pending migration.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbErr> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .sqlx_logging(false)
            // Every statement here is short and reads or writes a few thousand rows at
            // most: compiling one (PostgreSQL's JIT, on by default, kicks in when the
            // planner's estimate is high, as it is on tables without statistics) cost
            // more than running it, e.g. 6 of a StopExecutions batch's 8 ms to read its
            // actions. A session setting, sent when each connection starts.
            .map_sqlx_postgres_opts(|opts| opts.options([("jit", "off")]))
            .map_sqlx_sqlite_opts(|opts| {
                opts.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true)
                    .pragma("cache_size", format!("-{SQLITE_PAGE_CACHE_KIB}"))
            });
        let conn = sea_orm::Database::connect(options).await?;
        let sqlite = conn.get_database_backend() == DatabaseBackend::Sqlite;
        let sqlite_owner = if sqlite { own_sqlite_file(url)? } else { None };
        migrate(&conn).await?;
        Ok(Self {
            conn,
            sqlite_writer: sqlite.then(Arc::default),
            write_epoch: Arc::default(),
            _sqlite_owner: sqlite_owner.map(Arc::new),
            max_connections,
        })
    }

    /// Most connections the pool opens (`--db-max-connections`).
    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }

    /// SQLite, with no write in progress: the write epoch, which stays the same until
    /// the next write begins. Every write to the file goes through [`Self::begin_write`]
    /// in this process (one server per file), so a revision read while the epoch stayed
    /// the same is still current while it does. `None` on PostgreSQL (other replicas
    /// write too) and while a write is in progress.
    pub fn quiet_epoch(&self) -> Option<u64> {
        self.sqlite_writer.as_ref()?;
        let epoch = self.write_epoch.load(Ordering::SeqCst);
        epoch.is_multiple_of(2).then_some(epoch)
    }

    /// True on PostgreSQL (several replicas may share the database).
    pub fn is_postgres(&self) -> bool {
        self.conn.get_database_backend() == DatabaseBackend::Postgres
    }

    /// The pool, for reads.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Waits for this process's turn to write (SQLite) and opens a transaction. With a
    /// `budget`, PostgreSQL abandons any statement of the transaction (lock waits
    /// included) once it has run that long, so a caller whose deadline passed does not
    /// leave work behind in the database.
    pub async fn begin_write(
        &self,
        budget: Option<Duration>,
    ) -> Result<(WriteGuard<'_>, DatabaseTransaction), DbErr> {
        // A guard from the start: if BEGIN fails, dropping it ends the write.
        let guard = WriteGuard(match &self.sqlite_writer {
            Some(lock) => {
                let turn = lock.lock().await;
                // Begun: odd until the guard drops, after the commit or the rollback.
                self.write_epoch.fetch_add(1, Ordering::SeqCst);
                Some((turn, &*self.write_epoch))
            }
            None => None,
        });
        // IMMEDIATE takes SQLite's write lock at BEGIN, where the busy timeout applies. A
        // deferred transaction would take it at its first write, after its reads, and
        // SQLite refuses that upgrade at once (SQLITE_BUSY, no waiting) whenever another
        // process, such as a second server on the same file, holds the lock.
        let txn = self
            .conn
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await?;
        self.limit_statements(&txn, budget).await?;
        Ok((guard, txn))
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        self.conn.ping().await.is_ok()
    }

    /// Opens a read-only transaction that sees one snapshot for all its statements, so an
    /// execution's row and its action rows are read at the same revision (REPEATABLE READ
    /// on PostgreSQL; any SQLite transaction reads one snapshot of the WAL). `budget` as
    /// for [`Database::begin_write`].
    pub async fn begin_read(&self, budget: Option<Duration>) -> Result<DatabaseTransaction, DbErr> {
        if self.is_postgres() {
            let txn = self
                .conn
                .begin_with_config(
                    Some(sea_orm::IsolationLevel::RepeatableRead),
                    Some(sea_orm::AccessMode::ReadOnly),
                )
                .await?;
            self.limit_statements(&txn, budget).await?;
            Ok(txn)
        } else {
            self.conn.begin().await
        }
    }

    /// `SET LOCAL statement_timeout` on PostgreSQL. SQLite has no such setting: there a
    /// statement already running finishes, and the abandoned transaction then rolls back.
    async fn limit_statements(
        &self,
        txn: &DatabaseTransaction,
        budget: Option<Duration>,
    ) -> Result<(), DbErr> {
        use sea_orm::ConnectionTrait;
        if let Some(budget) = budget.filter(|_| self.is_postgres()) {
            let ms = budget_millis(budget);
            txn.execute_unprepared(&format!("SET LOCAL statement_timeout = {ms}"))
                .await?;
        }
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(self) -> Result<(), DbErr> {
        self.conn.close().await
    }
}

/// Takes an exclusive lock on the SQLite file of `url` (which connecting created), or
/// fails naming the file when another process holds it. `None` for an in-memory database.
///
/// The lock is `flock`, on a handle of our own: SQLite's own locks are `fcntl` locks,
/// which it neither sees nor disturbs.
fn own_sqlite_file(url: &str) -> Result<Option<std::fs::File>, DbErr> {
    use std::str::FromStr;
    let options = sea_orm::sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map_err(|err| DbErr::Custom(format!("bad SQLite URL: {err}")))?;
    let path = options.get_filename();
    if path.as_os_str().is_empty() || path == std::path::Path::new(":memory:") {
        return Ok(None);
    }
    let refused = |why: String| DbErr::Custom(why);
    let file = std::fs::File::open(path)
        .map_err(|err| refused(format!("cannot open {} to lock it: {err}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(refused(format!(
            "another executions server is serving the SQLite file {}: one server per SQLite \
             file (stop the other one, or use PostgreSQL for several replicas)",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(err)) => {
            Err(refused(format!("cannot lock {}: {err}", path.display())))
        }
    }
}

/// Key of the PostgreSQL advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x6578_6563_7574_6e73; // "exec" "utns"

/// Runs pending migrations. On PostgreSQL, replicas starting together take turns: the
/// first holds an advisory lock (on a connection of its own) while it migrates, and the
/// others then find nothing left to do.
async fn migrate(conn: &DatabaseConnection) -> Result<(), DbErr> {
    if conn.get_database_backend() != DatabaseBackend::Postgres {
        return migration::Migrator::up(conn, None).await;
    }
    let to_db_err = |err| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(err)));
    let mut lock = conn
        .get_postgres_connection_pool()
        .acquire()
        .await
        .map_err(to_db_err)?;
    sea_orm::sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *lock)
        .await
        .map_err(to_db_err)?;
    let migrated = migration::Migrator::up(conn, None).await;
    let unlocked = sea_orm::sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *lock)
        .await
        .map_err(to_db_err);
    migrated?;
    unlocked.map(drop)
}

impl From<DbErr> for Error {
    /// A full disk is [`Error::DatabaseFull`]; connection-level failures (the database
    /// is down, unreachable, restarting, or too busy to answer in time) and statements the
    /// database cancelled (a `statement_timeout` or `lock_timeout`, ours or the database
    /// administrator's, or an administrator's cancel) are retryable UNAVAILABLE; anything
    /// else is internal. The timeouts set from a caller's deadline are rounded up, so they
    /// end a statement only once the deadline has passed, and the gRPC edge answers any
    /// error that comes past the deadline as DEADLINE_EXCEEDED (`grpc::edge`); this one
    /// rule needs no knowledge of who set them.
    #[track_caller]
    fn from(err: DbErr) -> Self {
        let site = std::panic::Location::caller();
        if is_disk_full(&err) {
            Error::DatabaseFull {
                source: Box::new(err),
                site,
            }
        } else if is_outage(&err) || is_cancelled(&err) {
            Error::DatabaseUnavailable {
                source: Box::new(err),
                site,
            }
        } else {
            Error::Database {
                source: Box::new(err),
                site,
            }
        }
    }
}

/// SQLite's SQLITE_FULL (13, with its extended codes: the disk, or `max_page_count`, is
/// full) or PostgreSQL's `disk_full` (53100).
fn is_disk_full(err: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx))) =
        err
    else {
        return false;
    };
    let Some(db) = sqlx.as_database_error() else {
        return false;
    };
    let code = db.code().unwrap_or_default();
    if db
        .try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
        .is_some()
    {
        code.parse::<i32>().is_ok_and(|c| c & 0xff == 13)
    } else {
        code == "53100"
    }
}

/// PostgreSQL's `query_canceled` (57014: `statement_timeout`, or a cancel request) or
/// `lock_not_available` (55P03: `lock_timeout`, or a `NOWAIT` lock).
fn is_cancelled(err: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx))) =
        err
    else {
        return false;
    };
    sqlx.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "57014" || code == "55P03")
}

fn is_outage(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    let runtime = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(runtime) | DbErr::Query(runtime) => runtime,
        _ => return false,
    };
    let RuntimeErr::SqlxError(sqlx) = runtime else {
        return false;
    };
    match sqlx.as_ref() {
        Sqlx::Io(_)
        | Sqlx::Tls(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed => true,
        Sqlx::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db
                .try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
                .is_some()
            {
                // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes, once
                // the busy timeout ran out.
                code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
            } else {
                // PostgreSQL: class 08 connection exception, 57P0x shutdown or cannot
                // connect now, class 53 insufficient resources.
                code.starts_with("08") || code.starts_with("57P") || code.starts_with("53")
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_round_up_and_pools_follow_the_database() {
        assert_eq!(budget_millis(Duration::from_micros(1_001)), 2);
        assert_eq!(budget_millis(Duration::from_micros(10)), 1);
        assert_eq!(budget_millis(Duration::from_secs(2)), 2_000);
        assert_eq!(default_max_connections("postgres://u@h/db"), 16);
        assert!((4..=16).contains(&default_max_connections("sqlite://x.db?mode=rwc")));
    }

    fn fails() -> Result<(), Error> {
        Err(DbErr::Custom("refused".into()))?;
        Ok(())
    }

    /// SQLite refusing a write for want of space (here: `max_page_count` reached, the
    /// same SQLITE_FULL a full disk gives) is [`Error::DatabaseFull`], not internal.
    #[tokio::test]
    async fn a_full_sqlite_database_is_database_full() {
        use sea_orm::ConnectionTrait;
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        db.execute_unprepared("CREATE TABLE t (b BLOB); PRAGMA max_page_count = 8;")
            .await
            .unwrap();
        let mut refused = None;
        for _ in 0..100 {
            if let Err(err) = db
                .execute_unprepared("INSERT INTO t VALUES (zeroblob(4096))")
                .await
            {
                refused = Some(err);
                break;
            }
        }
        let err = Error::from(refused.expect("the database fills up"));
        assert!(matches!(err, Error::DatabaseFull { .. }), "{err:?}");
        assert!(err.to_string().contains("disk is full"));
    }

    /// SQLite's write epoch is quiet (even) only between writes: a write in progress, or
    /// one that ended by rolling back, moves it; PostgreSQL has none.
    #[tokio::test]
    async fn the_write_epoch_moves_with_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("e.db").display());
        let db = Database::connect(&url, 1).await.unwrap();
        let before = db.quiet_epoch().expect("quiet before any write");
        let (turn, txn) = db.begin_write(None).await.unwrap();
        assert_eq!(db.quiet_epoch(), None, "a write is in progress");
        txn.rollback().await.unwrap();
        drop(turn);
        let after = db.quiet_epoch().expect("quiet again");
        assert!(after > before, "{before} then {after}");
    }

    /// A database error keeps the database's error as its source and the `?` that
    /// raised it as its site.
    #[test]
    fn database_errors_keep_their_source_and_site() {
        let err = fails().unwrap_err();
        let Error::Database { source, site } = &err else {
            panic!("not a database error: {err:?}");
        };
        assert!(source.to_string().contains("refused"));
        assert_eq!(site.file(), file!());
        assert_eq!(err.to_string(), "internal error", "opaque to the caller");
    }
}
