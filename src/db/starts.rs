//! Writing a new execution: its row, its actions, its stop events' subscriptions and the
//! events of its start, with its creation time (see `creations`).
//!
//! On PostgreSQL all of it is one statement (writable CTEs): the creation time is taken
//! and every row written in one round trip instead of five, each statement's text the
//! same whatever the execution, so each connection prepares it once. Run outside a
//! transaction, it commits by itself: no BEGIN and COMMIT round trips either. On SQLite,
//! where a round trip is a function call, it is the plain statements one after the other,
//! in the caller's write transaction.

use std::time::Duration;

use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseBackend, EntityName, IdenStatic, Iterable, Value,
};

use super::autocommit::{Autocommit, Failure};
use super::creations::{creation_ctes, creation_lock, creation_time, lock_timeout};
use super::entity::execution;
use super::{columns, history, rows, store};
use crate::domain::{Event, FullExecution, Provenance};
use crate::error::Error;

/// Inserts `execution` (built at a provisional creation time) with the `events` of its
/// start, as made `by` a caller, in the caller's write transaction `conn` (SQLite; on
/// PostgreSQL a start is [`insert_started_alone`]). Takes its creation time
/// (`creations::creation_time`'s rule) and stamps it on the execution and the events,
/// and sets the execution's `seq`. Answers false, changing nothing, when its tenant
/// already has an execution with the same `request_id`.
pub async fn insert_started(
    conn: &impl ConnectionTrait,
    execution: &mut FullExecution,
    events: &mut [Event],
    request_id: Option<String>,
    by: &Provenance,
) -> Result<bool, Error> {
    if conn.get_database_backend() == DatabaseBackend::Postgres {
        return Err(Error::internal(
            "a start on PostgreSQL is one statement outside a transaction (insert_started_alone)",
        ));
    }
    let at = creation_time(conn, execution.header.created_at).await?;
    stamp(execution, events, at);
    let Some(seq) = store::insert_execution(conn, execution, request_id).await? else {
        return Ok(false);
    };
    execution.header.seq = seq;
    store::insert_events(conn, seq, events, by).await?;
    Ok(true)
}

/// [`insert_started`] on PostgreSQL: one statement on `conn`, outside any transaction,
/// that commits by itself (one round trip, no BEGIN and COMMIT). Its waits for locks (for
/// the creations' lock, which a List page's horizon takes alone for an instant, and for a
/// concurrent start with the same request id) each end after `budget` (`lock_timeout`;
/// the session's own without one), and the statement then fails with nothing written
/// (`DatabaseUnavailable`). So does a start whose rows do not all get written: the
/// statement checks their count before it commits. A failure says whether the statement
/// may have committed all the same ([`Failure::may_have_committed`]).
pub async fn insert_started_alone(
    conn: &mut Autocommit,
    execution: &mut FullExecution,
    events: &mut [Event],
    request_id: Option<String>,
    by: &Provenance,
    budget: Option<Duration>,
) -> Result<bool, Failure> {
    use sea_orm::sqlx::Row;
    let (sql, values) = one_statement(execution, events, request_id, by, budget)
        .map_err(Failure::before_sending)?;
    let Some(row) = conn.fetch_optional(sql, values).await? else {
        // ON CONFLICT: the tenant's request id is taken.
        return Ok(false);
    };
    let read = |column| row.try_get::<i64, _>(column).map_err(Failure::of);
    let (seq, at) = (read("seq")?, read("at")?);
    execution.header.seq = seq;
    stamp(
        execution,
        events,
        rows::from_micros(at).map_err(Failure::after_commit)?,
    );
    Ok(true)
}

/// Gives the execution and its start's events their creation time.
fn stamp(execution: &mut FullExecution, events: &mut [Event], at: chrono::DateTime<chrono::Utc>) {
    execution.header.created_at = at;
    execution.header.updated_at = at;
    for event in events {
        event.occurred_at = at;
    }
}

/// The statement of a start on PostgreSQL and its values.
///
/// ```text
/// WITH bound, turn, creation               -- creations::creation_ctes
///      e AS (INSERT INTO executions ... SELECT $2, ..., creation.at, creation.at
///            FROM creation ON CONFLICT DO NOTHING RETURNING seq, created_at),
///      a AS (INSERT INTO actions ... SELECT e.seq, r.* FROM e, ROWS FROM (...) RETURNING 1),
///      s AS (INSERT INTO stop_subscriptions ... likewise),
///      v AS (INSERT INTO events ... SELECT e.seq, ..., e.created_at ... likewise)
/// SELECT e.seq, e.created_at AS at,
///        CASE WHEN (w.actions, ...) = ($n, ...) THEN true ELSE format(...)::boolean END
/// FROM e, LATERAL (SELECT (SELECT count(*) FROM a) AS actions, ...) AS w
/// ```
///
/// The row's values are bound as typed parameters; the actions', subscriptions' and
/// events' as columns (`db::columns`). A conflict on the tenant's request id inserts
/// nothing, so the dependent inserts, which read `e`, insert nothing either, and no row
/// is answered. The answer's `complete` checks that the statement wrote every row it was
/// given: if not, it casts its explanation to `boolean`, which fails the statement with
/// that explanation before it commits. (It is in the select list, evaluated only for the
/// row answered: a condition in `WHERE` could be pushed into `w` and evaluated without
/// one, after a conflict.)
fn one_statement(
    execution: &FullExecution,
    events: &[Event],
    request_id: Option<String>,
    by: &Provenance,
    budget: Option<Duration>,
) -> Result<(String, Vec<Value>), Error> {
    let mut values = vec![creation_lock(), lock_timeout(budget)];
    // The execution's row: every column it sets, the times from `creation`.
    let row = rows::new_execution_row(execution, request_id)?;
    let (mut names, mut selected) = (Vec::new(), Vec::new());
    for column in execution::Column::iter() {
        let name = column.as_str();
        if matches!(
            column,
            execution::Column::CreatedAt | execution::Column::UpdatedAt
        ) {
            selected.push("creation.at".to_owned());
        } else if let Some(value) = row.get(column).into_value() {
            values.push(value);
            selected.push(format!("${}", values.len()));
        } else {
            continue;
        }
        names.push(format!(r#""{name}""#));
    }
    let insert_execution = format!(
        r#"INSERT INTO "{table}" ({names}) SELECT {selected} FROM creation
           ON CONFLICT DO NOTHING RETURNING "seq", "created_at""#,
        table = execution::Entity.table_name(),
        names = names.join(", "),
        selected = selected.join(", "),
    );
    // The rows that hang off it, their keys and times from `e`.
    let actions: Vec<_> = execution
        .detail
        .actions
        .iter()
        .map(|(node_id, state)| rows::action_row(0, node_id, state))
        .collect();
    let subscriptions = rows::stop_subscription_rows(execution, 0);
    let stored: Vec<_> = history::fold(events)?
        .iter()
        .map(|event| rows::event_row(0, event, by))
        .collect();
    let keyed = [("execution_seq", "e.seq")];
    let timed = [("execution_seq", "e.seq"), ("occurred_at", "e.created_at")];
    let (insert_actions, bound) =
        columns::insert_select(&actions, &keyed, Some("e"), values.len() + 1)?;
    values.extend(bound);
    let (insert_subscriptions, bound) =
        columns::insert_select(&subscriptions, &keyed, Some("e"), values.len() + 1)?;
    values.extend(bound);
    let (insert_events, bound) =
        columns::insert_select(&stored, &timed, Some("e"), values.len() + 1)?;
    values.extend(bound);
    let expected = values.len() + 1;
    values
        .extend([actions.len(), subscriptions.len(), stored.len()].map(|n| Value::from(n as i64)));
    let sql = format!(
        r#"WITH {creation},
                e AS ({insert_execution}),
                a AS ({insert_actions} RETURNING 1),
                s AS ({insert_subscriptions} RETURNING 1),
                v AS ({insert_events} RETURNING 1)
           SELECT e."seq" AS seq, e."created_at" AS at,
                  CASE WHEN (w.actions, w.subscriptions, w.events) = (${a}, ${s}, ${v}) THEN true
                       ELSE format('a start wrote %s, %s and %s rows of actions, subscriptions and events, not %s, %s and %s',
                                   w.actions, w.subscriptions, w.events, ${a}, ${s}, ${v})::boolean
                  END AS complete
           FROM e, LATERAL (SELECT (SELECT count(*) FROM a) AS actions,
                                   (SELECT count(*) FROM s) AS subscriptions,
                                   (SELECT count(*) FROM v) AS events) AS w"#,
        creation = creation_ctes(1, 2),
        a = expected,
        s = expected + 1,
        v = expected + 2,
    );
    Ok((sql, values))
}
