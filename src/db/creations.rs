//! Creation times in commit order, without making creations take turns.
//!
//! List pages walk `(created_at, seq)` from a cursor. A row that commits after a page was
//! read must not sort before that page's cursor, or every later page skips it. So every
//! page reads only rows whose creation has certainly committed, and every creation still
//! to commit gets a later time than those:
//!
//! - **SQLite** has one writer at a time, and the creation time is taken inside the write
//!   transaction: times follow commit order, and pages need no [`Horizon`].
//! - **PostgreSQL**: each creation takes a *shared* advisory lock ([`CREATION_LOCK`]),
//!   held until its commit, and only then reads the database's clock. Creations do not
//!   wait for each other. A page first takes the same lock *exclusively* for an instant
//!   (one statement, [`horizon`]): that waits for the creations in flight to commit,
//!   and creations that ask for the lock meanwhile queue behind it. The clock read while
//!   holding it is the page's horizon. Every row created before it has committed, and
//!   every creation not yet committed reads the clock after it. The page then reads
//!   only rows created before the horizon, in a snapshot taken after it.
//!
//! Both sides read PostgreSQL's clock (`clock_timestamp()`), so replicas' clocks do not
//! matter. Should the database host's clock step back, neither goes back with it: a
//! creation's time is at least 1 µs after the newest creation its statement's snapshot
//! holds, and a horizon at least 1 µs after the newest its own snapshot holds (taken as
//! its statement began, so not the creations it then waited for). Keyset pages still
//! assume a clock that does not go back: across a step, a creation that commits while a
//! page waits for it may get a time below the page's horizon and be left out of it.

use std::time::Duration;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityName, EntityTrait, QuerySelect, Statement,
};

use super::entity::execution;
use super::rows;
use crate::error::Error;

/// Key of the PostgreSQL advisory lock that creations share and pages take alone.
const CREATION_LOCK: i64 = 0x6578_6563_6372_6561; // "exec" "crea"

/// Creation time of PostgreSQL's clock, in µs since the epoch, as stored.
const CLOCK_MICROS: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

/// The instant before which every execution created has committed: list pages read only
/// rows created before it (PostgreSQL; see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Horizon(i64);

impl Horizon {
    /// µs since the epoch, as `created_at` is stored.
    pub(super) fn micros(self) -> i64 {
        self.0
    }
}

/// The creation time of a new execution on SQLite, taken inside its write transaction
/// `conn` (see the module docs): `now`, or 1 µs after the newest execution if `now` is
/// not later. (On PostgreSQL a start takes it in its one statement: [`creation_ctes`].)
pub(super) async fn creation_time(
    conn: &impl ConnectionTrait,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, Error> {
    let newest: Option<i64> = execution::Entity::find()
        .select_only()
        .expr(execution::Column::CreatedAt.max())
        .into_tuple()
        // `.all()`, not `.one()`: no `LIMIT ?` to make SQLite recompile it (see `load`).
        .all(conn)
        .await?
        .pop()
        .flatten();
    let now_us = rows::to_micros(now);
    match newest {
        Some(newest) if newest >= now_us => rows::from_micros(newest + 1),
        _ => Ok(now),
    }
}

/// PostgreSQL's clock, or 1 µs after the newest creation the statement's snapshot holds
/// if that is later (the clock stepped back), in µs: the time of a creation and of a
/// horizon alike.
fn clock_after_newest() -> String {
    format!(
        r#"GREATEST({CLOCK_MICROS}, (SELECT max("created_at") + 1 FROM "{table}"))"#,
        table = execution::Entity.table_name(),
    )
}

/// The CTEs that take a creation's time on PostgreSQL, with the lock's key bound as
/// `$lock` and a [`lock_timeout`] as `$timeout`: `bound` (the wait's limit), `turn` (the
/// shared lock) and `creation`, one row whose `at` is the creation time in µs. `turn` is
/// evaluated (the lock taken) before the clock and the newest row are read.
pub(super) fn creation_ctes(lock: usize, timeout: usize) -> String {
    format!(
        r#"{bound},
           turn AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(${lock}) FROM bound),
           creation AS MATERIALIZED (SELECT {at} AS at FROM turn)"#,
        bound = bound_cte(timeout),
        at = clock_after_newest(),
    )
}

/// The CTE `bound`, which sets `lock_timeout` to `$timeout` (ms as text; NULL keeps the
/// session's setting) for the rest of its transaction, before the CTEs that read it wait
/// for a lock. `lock_timeout` is read when a wait begins, so an earlier CTE of the same
/// statement bounds that statement's waits (`statement_timeout`, read as a statement
/// starts, could not be set this way).
fn bound_cte(timeout: usize) -> String {
    format!(
        r#"bound AS MATERIALIZED (
               SELECT set_config('lock_timeout', COALESCE(${timeout}, current_setting('lock_timeout')), true))"#
    )
}

/// The value to bind for [`bound_cte`]'s `$timeout`: a caller's `budget` in ms, rounded
/// up (the wait never ends before the budget is spent; 0 would mean no limit), or NULL.
pub(super) fn lock_timeout(budget: Option<Duration>) -> sea_orm::Value {
    budget.map(|b| super::budget_millis(b).to_string()).into()
}

/// The key of the creations' lock, to bind where [`creation_ctes`] says.
pub(super) fn creation_lock() -> sea_orm::Value {
    CREATION_LOCK.into()
}

/// The horizon of a list page, read on `conn` outside any transaction, before the page's
/// own snapshot (see the module docs); `None` on SQLite, where none is needed. Waits for
/// the creations in flight to commit: at most `budget` (then the database cancels the
/// wait), or, without one, as long as the session's own `lock_timeout` allows.
///
/// The horizon is the database's clock, or 1 µs after the newest creation the
/// statement's snapshot holds if that is later (the clock stepped back): creations made
/// before a step back are not hidden from pages until the clock catches up.
pub async fn horizon(
    conn: &impl ConnectionTrait,
    budget: Option<Duration>,
) -> Result<Option<Horizon>, Error> {
    let backend = conn.get_database_backend();
    if backend != DatabaseBackend::Postgres {
        return Ok(None);
    }
    let sql = format!(
        r#"WITH {bound},
                turn AS MATERIALIZED (SELECT pg_advisory_xact_lock($1) FROM bound)
           SELECT {at} AS at FROM turn"#,
        bound = bound_cte(2),
        at = clock_after_newest(),
    );
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [CREATION_LOCK.into(), lock_timeout(budget)],
        ))
        .await?
        .ok_or_else(|| Error::internal("horizon: no row"))?;
    Ok(Some(Horizon(row.try_get("", "at")?)))
}
