//! Writing executions: insert a new one with its actions, and save a change guarded by
//! the revision it was made from.

use sea_orm::ActiveValue::NotSet;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityName, EntityTrait, QueryFilter,
    SqlErr,
};

use super::entity::{action, event, execution, stop_subscription};
use super::history;
use super::{columns, rows};
use crate::domain::{ActionState, Event, FullExecution, Provenance};
use crate::error::Error;

/// Rows per multi-row INSERT of actions, and on SQLite (seq, node id) pairs per UPDATE of
/// stopped actions.
///
/// Kept so that each statement, its text and its values together, stays well below 64
/// KiB: a larger one leaves the client's socket in more than one TCP segment, and
/// sqlx 0.9.0 does not set TCP_NODELAY (launchbadge/sqlx#4335), so on PostgreSQL over
/// TCP the last segment waited for the server's delayed ACK, about 40 ms per statement.
/// (Measured: a StopExecutions batch of 100 executions took 250 ms instead of 80 ms.)
const ACTION_INSERT_CHUNK: usize = 200;
/// Rows per multi-row INSERT of history events (13 columns each), for the same reason.
/// On PostgreSQL, rows per INSERT of events as columns: about 100 bytes each (a folded
/// stop, 25 more per action it stopped).
const EVENT_INSERT_CHUNK: usize = 100;
/// (seq, node id) pairs per UPDATE of stopped actions on PostgreSQL, bound as columns:
/// about 16 bytes each, so a statement stays near 32 KiB.
const ACTION_PAIRS_AS_COLUMNS: usize = 2_000;

/// Inserts a new execution and its actions, and returns its sequence number; `None` when
/// its tenant already has an execution with the same request id. SQLite's statements of a
/// start (`db::starts`; PostgreSQL writes a start in one statement).
pub(super) async fn insert_execution(
    conn: &impl ConnectionTrait,
    execution: &FullExecution,
    request_id: Option<String>,
) -> Result<Option<i64>, Error> {
    let row = rows::new_execution_row(execution, request_id)?;
    let seq = match execution::Entity::insert(row).exec(conn).await {
        Ok(inserted) => inserted.last_insert_id,
        Err(err) if is_unique_violation(&err) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let actions: Vec<action::ActiveModel> = execution
        .detail
        .actions
        .iter()
        .map(|(node_id, state)| rows::action_row(seq, node_id, state))
        .collect();
    for chunk in actions.chunks(ACTION_INSERT_CHUNK) {
        action::Entity::insert_many(chunk.to_vec())
            .exec(conn)
            .await?;
    }
    if !execution.detail.stop_events.is_empty() {
        stop_subscription::Entity::insert_many(rows::stop_subscription_rows(execution, seq))
            .exec(conn)
            .await?;
    }
    Ok(Some(seq))
}

/// Records the events of one change of execution `seq`, made `by` a caller, in the
/// caller's transaction (so the history commits or rolls back with the change).
pub async fn insert_events(
    conn: &impl ConnectionTrait,
    seq: i64,
    events: &[Event],
    by: &Provenance,
) -> Result<(), Error> {
    insert_events_of_many(conn, [(seq, events)], by).await
}

/// Records the events of changes of many executions (`(seq, events)` each), made `by` one
/// caller in one transaction, with as few statements as the rows allow; a stop's
/// ACTION_STOPPED events folded into its EXECUTION_STOPPED row (see `db::history`).
pub async fn insert_events_of_many<'a>(
    conn: &impl ConnectionTrait,
    changes: impl IntoIterator<Item = (i64, &'a [Event])>,
    by: &Provenance,
) -> Result<(), Error> {
    let mut stored = Vec::new();
    for (seq, events) in changes {
        stored.extend(history::fold(events)?.into_iter().map(|row| (seq, row)));
    }
    if stored.is_empty() {
        return Ok(());
    }
    let rows: Vec<event::ActiveModel> = stored
        .iter()
        .map(|(seq, row)| rows::event_row(*seq, row, by))
        .collect();
    if conn.get_database_backend() == DatabaseBackend::Postgres {
        for chunk in rows.chunks(EVENT_INSERT_CHUNK) {
            columns::insert(conn, chunk).await?;
        }
        return Ok(());
    }
    for chunk in rows.chunks(EVENT_INSERT_CHUNK) {
        event::Entity::insert_many(chunk.to_vec())
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// Saves stops of many executions made by the domain in one transaction: each header
/// (guarded by its revision, as in [`save_change`]), and the listed actions of each,
/// which all became STOPPED at `stopped_at`, with one statement per few hundred actions
/// (each named by execution and node id, and counted, so that no other row changes).
pub async fn save_stops(
    conn: &impl ConnectionTrait,
    stops: &[(&FullExecution, &[String])],
    stopped_at: chrono::DateTime<chrono::Utc>,
) -> Result<(), Error> {
    use sea_orm::sea_query::{Expr as E, ExprTrait};
    let headers: Vec<&FullExecution> = stops.iter().map(|(e, _)| *e).collect();
    save_headers(conn, &headers).await?;
    let pairs: Vec<(i64, &str)> = stops
        .iter()
        .flat_map(|(e, nodes)| nodes.iter().map(|n| (e.header.seq, n.as_str())))
        .collect();
    if conn.get_database_backend() == DatabaseBackend::Postgres {
        for chunk in pairs.chunks(ACTION_PAIRS_AS_COLUMNS) {
            stop_actions_as_columns(conn, chunk, stopped_at).await?;
        }
        return Ok(());
    }
    for chunk in pairs.chunks(ACTION_INSERT_CHUNK) {
        let updated = action::Entity::update_many()
            .col_expr(
                action::Column::Status,
                E::value(crate::domain::ActionStatus::Stopped.as_str()),
            )
            .col_expr(
                action::Column::StoppedAt,
                E::value(rows::to_micros(stopped_at)),
            )
            .filter(
                E::tuple([
                    E::col(action::Column::ExecutionSeq),
                    E::col(action::Column::NodeId),
                ])
                .in_tuples(chunk.iter().map(|(seq, node)| (*seq, node.to_string()))),
            )
            .exec(conn)
            .await?;
        if updated.rows_affected != chunk.len() as u64 {
            return Err(Error::internal(format!(
                "stop: {} of {} action rows updated",
                updated.rows_affected,
                chunk.len()
            )));
        }
    }
    Ok(())
}

/// The action rows `pairs` (execution seq, node id) made STOPPED at `stopped_at`, on
/// PostgreSQL: one statement, the pairs bound as columns (see [`super::columns`]);
/// counted, so that no other row changes.
async fn stop_actions_as_columns(
    conn: &impl ConnectionTrait,
    pairs: &[(i64, &str)],
    stopped_at: chrono::DateTime<chrono::Utc>,
) -> Result<(), Error> {
    if pairs.is_empty() {
        return Ok(());
    }
    let sql = format!(
        r#"UPDATE "{table}" SET "status" = $1, "stopped_at" = $2 FROM {pairs} WHERE "{table}"."execution_seq" = s.seq::bigint AND "{table}"."node_id" = s.node"#,
        table = action::Entity.table_name(),
        pairs = columns::rows_from("s", &["seq", "node"], 3),
    );
    let values = vec![
        crate::domain::ActionStatus::Stopped.as_str().into(),
        rows::to_micros(stopped_at).into(),
        columns::column(pairs.iter().map(|(seq, _)| *seq))?,
        columns::column(pairs.iter().map(|(_, node)| *node))?,
    ];
    columns::execute_counted(
        conn,
        sql,
        values,
        pairs.len(),
        "stopped action rows updated",
    )
    .await
}

/// True when a write failed on a unique index.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// Saves a change made by the domain: the header (only if the stored revision is still the
/// one the change was made from) and the new state of each changed action. Actions that
/// reached the same state together (as in a stop) are written with one statement.
pub async fn save_change(
    conn: &impl ConnectionTrait,
    execution: &FullExecution,
    changed_actions: &[String],
) -> Result<(), Error> {
    save_headers(conn, &[execution]).await?;
    let h = &execution.header;
    let mut groups: Vec<(&ActionState, Vec<&str>)> = Vec::new();
    for node_id in changed_actions {
        let Some(state) = execution.detail.actions.get(node_id) else {
            return Err(Error::internal(format!(
                "changed action {node_id} is unknown"
            )));
        };
        match groups.iter_mut().find(|(s, _)| *s == state) {
            Some((_, ids)) => ids.push(node_id),
            None => groups.push((state, vec![node_id])),
        }
    }
    for (state, node_ids) in groups {
        let mut values = rows::action_row(h.seq, "", state);
        values.execution_seq = NotSet;
        values.node_id = NotSet;
        let updated = action::Entity::update_many()
            .set(values)
            .filter(action::Column::ExecutionSeq.eq(h.seq))
            .filter(action::Column::NodeId.is_in(node_ids.iter().copied()))
            .exec(conn)
            .await?;
        if updated.rows_affected != node_ids.len() as u64 {
            return Err(Error::internal(format!(
                "execution {}: {} of {} action rows updated",
                h.id,
                updated.rows_affected,
                node_ids.len()
            )));
        }
    }
    Ok(())
}

/// Saves the headers of changed executions, each only if its stored revision is still
/// the one its change was made from. Headers that end up alike but for their id (as in
/// a stop of many executions made alike) are written by one statement.
async fn save_headers(
    conn: &impl ConnectionTrait,
    executions: &[&FullExecution],
) -> Result<(), Error> {
    use execution::Column as C;
    // What a header's UPDATE sets, and the revision it must come from.
    type Written<'a> = (
        &'static str,
        Option<&'a str>,
        i64,
        crate::domain::Counts,
        chrono::DateTime<chrono::Utc>,
    );
    let mut groups: Vec<(Written<'_>, Vec<i64>)> = Vec::new();
    for e in executions {
        let h = &e.header;
        let written = (
            h.status.as_str(),
            h.stop_reason.as_deref(),
            h.revision,
            h.counts,
            h.updated_at,
        );
        match groups.iter_mut().find(|(w, _)| *w == written) {
            Some((_, seqs)) => seqs.push(h.seq),
            None => groups.push((written, vec![h.seq])),
        }
    }
    for ((status, stop_reason, revision, counts, updated_at), seqs) in groups {
        let saved = execution::Entity::update_many()
            .col_expr(C::Status, Expr::value(status))
            .col_expr(C::StopReason, Expr::value(stop_reason.map(str::to_owned)))
            .col_expr(C::Revision, Expr::value(revision))
            .col_expr(C::IdleCount, Expr::value(counts.idle))
            .col_expr(C::ScheduledCount, Expr::value(counts.scheduled))
            .col_expr(C::RunningCount, Expr::value(counts.running))
            .col_expr(C::CompletedCount, Expr::value(counts.completed))
            .col_expr(C::FailedCount, Expr::value(counts.failed))
            .col_expr(C::StoppedCount, Expr::value(counts.stopped))
            .col_expr(C::UpdatedAt, Expr::value(rows::to_micros(updated_at)))
            .filter(C::Seq.is_in(seqs.iter().copied()))
            .filter(C::Revision.eq(revision - 1))
            .exec(conn)
            .await?;
        if saved.rows_affected != seqs.len() as u64 {
            // The row locks make this unreachable; if it ever happens, refuse to write
            // rather than lose a change.
            return Err(Error::internal(format!(
                "{} of {} executions moved past revision {} while locked",
                seqs.len() as u64 - saved.rows_affected,
                seqs.len(),
                revision - 1
            )));
        }
    }
    Ok(())
}
