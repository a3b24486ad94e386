//! Reading executions: one by UUID or hashid (its header alone, or everything, in one
//! statement), one under a lock for a change, one by request id, and many at once.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, QueryResult, QuerySelect, Statement,
};

use super::entity::{action, execution};
use super::rows;
use crate::domain::{Execution, ExecutionId, ExecutionRef, FullExecution, View};
use crate::error::{Error, OrInternal};

// Reads of one execution filter on a unique key (id or seq), so they use `.all()`: it
// finds the same one row as `.one()`, without `.one()`'s `LIMIT ?`. A bound LIMIT makes
// SQLite recompile the statement every time it is run (the planner marks the parameter
// as one whose value may change the plan), which cost a FULL Get 11 % of its CPU.

/// Condition that selects the execution a caller named.
fn by_ref(target: ExecutionRef) -> sea_orm::Condition {
    let condition = sea_orm::Condition::all();
    match target {
        ExecutionRef::Id(id) => condition.add(execution::Column::Id.eq(id.as_uuid())),
        // Sequence numbers start at 1: a hashid that encodes none matches no row.
        ExecutionRef::Hashid(hashid) => {
            condition.add(execution::Column::Seq.eq(hashid.seq().unwrap_or(0)))
        }
    }
}

/// The execution `target`, if it belongs to `tenant` (any tenant when `None`). Filtering
/// in the query, rather than after it, means another tenant's row is never locked or
/// loaded for a confined caller: it behaves exactly like a row that does not exist.
fn visible(target: ExecutionRef, tenant: Option<&str>) -> sea_orm::Condition {
    let condition = by_ref(target);
    match tenant {
        Some(tenant) => condition.add(execution::Column::UserKey.eq(tenant)),
        None => condition,
    }
}

/// Selects execution rows without the heavy `template` and `execution_data` columns (they
/// come back empty), for the BASIC view.
pub(super) fn select_headers() -> sea_orm::Select<execution::Entity> {
    select_headers_and(false)
}

/// Selects execution rows without `template` (it comes back empty), and with
/// `execution_data` only when `data`.
pub(super) fn select_headers_and(data: bool) -> sea_orm::Select<execution::Entity> {
    use execution::Column as C;
    let data = if data {
        Expr::col(C::ExecutionData)
    } else {
        Expr::cust("NULL")
    };
    execution::Entity::find()
        .select_only()
        .columns([
            C::Seq,
            C::Id,
            C::UserKey,
            C::Key,
            C::Name,
            C::Status,
            C::StopReason,
            C::Revision,
            C::ActionsCount,
            C::IdleCount,
            C::ScheduledCount,
            C::RunningCount,
            C::CompletedCount,
            C::FailedCount,
            C::StoppedCount,
            C::RequestId,
            C::CreatedAt,
            C::UpdatedAt,
        ])
        .expr_as(Expr::cust("''"), "template")
        .expr_as(data, "execution_data")
        .expr_as(Expr::cust("'[]'"), "stop_events")
        .expr_as(Expr::cust("CAST(0 AS BIGINT)"), "log_budget")
}

/// The execution a tenant created with `request_id`, if any.
pub async fn find_by_request_id(
    conn: &impl ConnectionTrait,
    user_key: &str,
    request_id: &str,
) -> Result<Option<FullExecution>, Error> {
    let condition = sea_orm::Condition::all()
        .add(execution::Column::UserKey.eq(user_key))
        .add(execution::Column::RequestId.eq(request_id));
    find_full(conn, condition, false).await
}

/// Loads an execution as the view asks: the header alone, or everything.
pub async fn load(
    conn: &impl ConnectionTrait,
    target: ExecutionRef,
    tenant: Option<&str>,
    view: View,
) -> Result<Option<Execution>, Error> {
    match view {
        View::Basic => {
            let row = select_headers()
                .filter(visible(target, tenant))
                .all(conn)
                .await?
                .pop();
            row.map(|row| {
                Ok(Execution {
                    header: rows::header(&row)?,
                    detail: None,
                })
            })
            .transpose()
        }
        View::Full => Ok(find_full(conn, visible(target, tenant), false)
            .await?
            .map(Execution::from)),
    }
}

/// The id and current revision of the execution `target`, if it belongs to `tenant`: one
/// indexed read of two columns, for answers served from the encoded form of a revision
/// (strongly consistent: the revision is read, only its encoding is reused).
pub async fn revision_of(
    conn: &impl ConnectionTrait,
    target: ExecutionRef,
    tenant: Option<&str>,
) -> Result<Option<(ExecutionId, i64)>, Error> {
    use execution::Column as C;
    let row: Option<(uuid::Uuid, i64)> = execution::Entity::find()
        .select_only()
        .columns([C::Id, C::Revision])
        .filter(visible(target, tenant))
        .into_tuple()
        .all(conn)
        .await?
        .pop();
    Ok(row.map(|(id, revision)| (ExecutionId::new(id), revision)))
}

/// One execution's current revision, as [`revisions_of_many`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentRevision {
    /// Its id.
    pub id: ExecutionId,
    /// Its sequence number (what a hashid names).
    pub seq: i64,
    /// Its tenant.
    pub user_key: String,
    /// Its current revision.
    pub revision: i64,
}

impl CurrentRevision {
    /// True when this is the execution `target` names for `tenant` (any tenant when
    /// `None`): the same rule as [`revision_of`]'s query.
    pub fn answers(&self, target: ExecutionRef, tenant: Option<&str>) -> bool {
        let named = match target {
            ExecutionRef::Id(id) => id == self.id,
            ExecutionRef::Hashid(hashid) => hashid.seq() == Some(self.seq),
        };
        named && tenant.is_none_or(|t| t == self.user_key)
    }
}

/// The current revisions of every execution that `targets` name, in one statement (one
/// indexed read per target), whatever their tenant: the caller matches each target to
/// its row with [`CurrentRevision::answers`].
pub async fn revisions_of_many(
    conn: &impl ConnectionTrait,
    targets: &[ExecutionRef],
) -> Result<Vec<CurrentRevision>, Error> {
    use execution::Column as C;
    let mut ids = Vec::new();
    let mut seqs = Vec::new();
    for target in targets {
        match target {
            ExecutionRef::Id(id) => ids.push(id.as_uuid()),
            ExecutionRef::Hashid(hashid) => seqs.extend(hashid.seq()),
        }
    }
    let mut named = sea_orm::Condition::any();
    if !ids.is_empty() {
        named = named.add(C::Id.is_in(ids));
    }
    if !seqs.is_empty() {
        named = named.add(C::Seq.is_in(seqs));
    }
    if named.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(uuid::Uuid, i64, String, i64)> = execution::Entity::find()
        .select_only()
        .columns([C::Id, C::Seq, C::UserKey, C::Revision])
        .filter(named)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, seq, user_key, revision)| CurrentRevision {
            id: ExecutionId::new(id),
            seq,
            user_key,
            revision,
        })
        .collect())
}

/// Loads an execution for a change, locking its row until the transaction ends
/// (`FOR UPDATE` on PostgreSQL; on SQLite the caller holds the database's write lock).
pub async fn load_for_change(
    conn: &impl ConnectionTrait,
    target: ExecutionRef,
    tenant: Option<&str>,
) -> Result<Option<FullExecution>, Error> {
    if conn.get_database_backend() != DatabaseBackend::Postgres {
        return find_full(conn, visible(target, tenant), true).await;
    }
    // PostgreSQL: the action rows must be read by a statement that starts after the row
    // lock is granted. A subquery of the locking statement would read them in that
    // statement's snapshot, taken before it waited for the lock, and miss the changes
    // of the writer it waited for.
    let row = execution::Entity::find()
        .filter(visible(target, tenant))
        .lock_exclusive()
        .all(conn)
        .await?
        .pop();
    match row {
        Some(row) => Ok(Some(with_actions(conn, row).await?)),
        None => Ok(None),
    }
}

/// Full executions of many rows: their actions come from one query (see
/// [`actions_of_many`]).
pub(super) async fn with_actions_of_many(
    conn: &impl ConnectionTrait,
    found: Vec<execution::Model>,
) -> Result<Vec<FullExecution>, Error> {
    let mut actions: std::collections::HashMap<i64, Vec<action::Model>> = Default::default();
    let seqs: Vec<i64> = found.iter().map(|row| row.seq).collect();
    for row in actions_of_many(conn, &seqs).await? {
        actions.entry(row.execution_seq).or_default().push(row);
    }
    found
        .into_iter()
        .map(|row| {
            let own = actions.remove(&row.seq).unwrap_or_default();
            rows::full(row, own)
        })
        .collect()
}

/// The action rows of the executions `seqs`, by their primary key.
///
/// On PostgreSQL, one index lookup per execution, forced by a `LATERAL` subquery that
/// the planner may not flatten (`OFFSET 0`). `execution_seq IN (...)` made it scan the
/// whole table whenever `actions` had no statistics yet (a new database, or autovacuum
/// off): it then guesses each value matches 0.5 % of the rows, so a hundred match half
/// the table. Measured on 420,000 rows: 180 ms a batch of 100 executions by the scan,
/// 10 ms by the lookups.
async fn actions_of_many(
    conn: &impl ConnectionTrait,
    seqs: &[i64],
) -> Result<Vec<action::Model>, Error> {
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let backend = conn.get_database_backend();
    if backend != DatabaseBackend::Postgres {
        return Ok(action::Entity::find()
            .filter(action::Column::ExecutionSeq.is_in(seqs.iter().copied()))
            .all(conn)
            .await?);
    }
    // The list bound as one column (see `super::columns`): the statement's text is the
    // same for every batch.
    let sql = format!(
        r#"SELECT a.* FROM {these} CROSS JOIN LATERAL (SELECT * FROM "actions" WHERE "actions"."execution_seq" = these.seq::bigint OFFSET 0) AS a"#,
        these = super::columns::rows_from("these", &["seq"], 1),
    );
    Ok(action::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            backend,
            sql,
            [super::columns::column(seqs.iter().copied())?],
        ))
        .all(conn)
        .await?)
}

/// An execution row with its action rows folded into one JSON array column (one array
/// `[node_id, status, scheduled_at, started_at, completed_at, failed_at, stopped_at,
/// failure_note, log, log_bytes]` per action), so that a whole execution is one row of one statement.
///
/// Why: one statement reads one snapshot, and one row is one hand-off from SQLite's
/// connection thread. Read as separate rows, each action row is its own hand-off (a
/// thread wake-up) between that thread and the caller's task, which dominated the cost
/// of a FULL Get (and grew with the number of actions).
pub(super) struct RowWithActions {
    pub(super) row: execution::Model,
    pub(super) actions_json: Option<String>,
}

impl FromQueryResult for RowWithActions {
    fn from_query_result(res: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Self {
            row: execution::Model::from_query_result(res, pre)?,
            actions_json: res.try_get(pre, "actions_json")?,
        })
    }
}

/// One action row as [`RowWithActions`] folds it.
type ActionJson = (
    String,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    i64,
);

/// The subquery that folds an execution's action rows into one JSON text.
pub(super) fn actions_json(backend: DatabaseBackend) -> Expr {
    let columns = r#"a."node_id", a."status", a."scheduled_at", a."started_at", a."completed_at", a."failed_at", a."stopped_at", a."failure_note", a."log", a."log_bytes""#;
    let sql = match backend {
        DatabaseBackend::Postgres => format!(
            r#"(SELECT json_agg(json_build_array({columns}))::text FROM "actions" a WHERE a."execution_seq" = "executions"."seq")"#
        ),
        _ => format!(
            r#"(SELECT json_group_array(json_array({columns})) FROM "actions" a WHERE a."execution_seq" = "executions"."seq")"#
        ),
    };
    Expr::cust(sql)
}

/// The execution matching `condition` with its actions, in one statement (locking its
/// row when `lock`).
async fn find_full(
    conn: &impl ConnectionTrait,
    condition: sea_orm::Condition,
    lock: bool,
) -> Result<Option<FullExecution>, Error> {
    Ok(find_full_many(conn, condition, lock).await?.pop())
}

/// The executions matching `condition`, in `seq` order, each with its actions folded into
/// its row (see [`RowWithActions`]): one statement, one row per execution (locking the
/// rows when `lock`).
pub(super) async fn find_full_many(
    conn: &impl ConnectionTrait,
    condition: sea_orm::Condition,
    lock: bool,
) -> Result<Vec<FullExecution>, Error> {
    let mut select = execution::Entity::find()
        .expr_as(actions_json(conn.get_database_backend()), "actions_json")
        .filter(condition)
        .order_by_asc(execution::Column::Seq);
    if lock {
        select = select.lock_exclusive();
    }
    let found = select.into_model::<RowWithActions>().all(conn).await?;
    found.into_iter().map(unfold).collect()
}

/// An execution row with its folded actions, as a domain execution.
pub(super) fn unfold(found: RowWithActions) -> Result<FullExecution, Error> {
    let actions: Vec<ActionJson> = match &found.actions_json {
        Some(json) => serde_json::from_str(json).or_internal()?,
        None => Vec::new(),
    };
    let seq = found.row.seq;
    let actions = actions
        .into_iter()
        .map(|a| action::Model {
            execution_seq: seq,
            node_id: a.0,
            status: a.1,
            scheduled_at: a.2,
            started_at: a.3,
            completed_at: a.4,
            failed_at: a.5,
            stopped_at: a.6,
            failure_note: a.7,
            log: a.8,
            log_bytes: a.9,
        })
        .collect();
    rows::full(found.row, actions)
}

async fn with_actions(
    conn: &impl ConnectionTrait,
    row: execution::Model,
) -> Result<FullExecution, Error> {
    let actions = action::Entity::find()
        .filter(action::Column::ExecutionSeq.eq(row.seq))
        .all(conn)
        .await?;
    rows::full(row, actions)
}

/// The current full state of each of `ids` that exists, read in one snapshot with one
/// query for the rows and one for their actions.
pub async fn load_many(
    db: &super::Database,
    ids: &[ExecutionId],
) -> Result<Vec<FullExecution>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let txn = db.begin_read(None).await?;
    let found = execution::Entity::find()
        .filter(execution::Column::Id.is_in(ids.iter().map(|id| id.as_uuid())))
        .all(&txn)
        .await?;
    let loaded = with_actions_of_many(&txn, found).await?;
    txn.commit().await?;
    Ok(loaded)
}
