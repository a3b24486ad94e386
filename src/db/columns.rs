//! Batches of rows passed to PostgreSQL as columns: one JSON array per column, bound as
//! one text value each and turned back into rows by `ROWS FROM (json_array_elements_text
//! (...), ...)`, which zips the arrays element by element.
//!
//! Why: a batch written as a multi-row `VALUES` list or a `(a, b) IN ((...), ...)` list
//! is a statement whose text grows with the batch. Each such statement is parsed and
//! planned anew (its text differs from the last one's), its hundreds of bound values are
//! each built and encoded on our side, and one over 64 KiB must be split (see
//! `store::ACTION_INSERT_CHUNK`). As columns, a statement's text is the same whatever
//! the batch's size, so each connection prepares it once, and its values are a few
//! strings. Measured on a stop of 10,000 executions of 20 actions (BENCHMARKS.md,
//! "Batches as columns").
//!
//! JSON `null` elements come out as SQL `NULL`; numbers and strings as their text, which
//! the statement casts to the column's type.

use sea_orm::sea_query::{ColumnType, sea_value_to_json_value};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityName, EntityTrait,
    IdenStatic, Iterable, Statement, Value,
};
use serde::Serialize;

use crate::error::{Error, OrInternal};

/// One column of a batch: its values, in row order, as one JSON array.
pub(super) fn column<T: Serialize>(values: impl IntoIterator<Item = T>) -> Result<Value, Error> {
    let values: Vec<T> = values.into_iter().collect();
    Ok(Value::from(serde_json::to_string(&values).or_internal()?))
}

/// The `FROM` item that turns columns bound as `$first`, `$first + 1`, ... into rows of
/// a relation `alias` with the given column names (each a `text`; cast where used).
pub(super) fn rows_from(alias: &str, names: &[&str], first: usize) -> String {
    let arrays = (first..first + names.len())
        .map(|n| format!("json_array_elements_text(${n}::json)"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("ROWS FROM ({arrays}) AS {alias}({})", names.join(", "))
}

/// Inserts `rows` of one table on PostgreSQL with one statement, every column of the
/// entity bound as a column (a column a row leaves unset is NULL there), and checks
/// they were all inserted. The rows are built as for any other insert (one place maps a
/// domain value to its row); only how they travel differs.
pub(super) async fn insert<A: ActiveModelTrait>(
    conn: &impl ConnectionTrait,
    rows: &[A],
) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let (sql, values) = insert_select(rows, &[], None, 1)?;
    execute_counted(conn, sql, values, rows.len(), "rows inserted").await
}

/// The statement of [`insert`] and its values, bound from `$first` on, for use inside a
/// larger statement: the columns named in `computed` take the given SQL expressions
/// instead of values of the rows (e.g. a key returned by an earlier CTE), and `from` adds
/// a relation those expressions read (e.g. that CTE) to the `FROM` list.
pub(super) fn insert_select<A: ActiveModelTrait>(
    rows: &[A],
    computed: &[(&str, &str)],
    from: Option<&str>,
    first: usize,
) -> Result<(String, Vec<Value>), Error> {
    let all: Vec<<A::Entity as EntityTrait>::Column> =
        <A::Entity as EntityTrait>::Column::iter().collect();
    let expression = |name: &str| {
        computed
            .iter()
            .find(|(column, _)| *column == name)
            .map(|(_, expression)| *expression)
    };
    if let Some((unknown, _)) = computed
        .iter()
        .find(|(name, _)| !all.iter().any(|column| column.as_str() == *name))
    {
        return Err(Error::internal(format!("no column {unknown} to compute")));
    }
    let bound: Vec<_> = all
        .iter()
        .filter(|column| expression(column.as_str()).is_none())
        .collect();
    let bound_names: Vec<&str> = bound.iter().map(|column| column.as_str()).collect();
    let selected = all
        .iter()
        .map(|column| {
            let name = column.as_str();
            if let Some(expression) = expression(name) {
                return Ok(expression.to_owned());
            }
            // A column travels as text: cast where the column is not text. Other types
            // (uuid, json, ...) would need casts of their own; none travels this way yet.
            Ok(match column.def().get_column_type() {
                ColumnType::BigInteger => format!("r.{name}::bigint"),
                ColumnType::Integer => format!("r.{name}::integer"),
                ColumnType::Boolean => format!("r.{name}::boolean"),
                ColumnType::String(_) | ColumnType::Text | ColumnType::Char(_) => {
                    format!("r.{name}")
                }
                other => {
                    return Err(Error::internal(format!(
                        "column {name} of type {other:?} cannot travel as a column"
                    )));
                }
            })
        })
        .collect::<Result<Vec<_>, Error>>()?
        .join(", ");
    let sql = format!(
        r#"INSERT INTO "{table}" ({quoted}) SELECT {selected} FROM {from}{rows_from}"#,
        table = A::Entity::default().table_name(),
        quoted = all
            .iter()
            .map(|column| format!(r#""{}""#, column.as_str()))
            .collect::<Vec<_>>()
            .join(", "),
        from = from.map(|f| format!("{f}, ")).unwrap_or_default(),
        rows_from = rows_from("r", &bound_names, first),
    );
    let values = bound
        .iter()
        .map(|of| {
            column(rows.iter().map(|row| match row.get(**of).into_value() {
                Some(value) => sea_value_to_json_value(&value),
                None => serde_json::Value::Null,
            }))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((sql, values))
}

/// Runs a PostgreSQL statement `sql` with `values` and checks that it wrote `expected`
/// rows (`what` names them in the error): a batch writes exactly the rows it names.
pub(super) async fn execute_counted(
    conn: &impl ConnectionTrait,
    sql: String,
    values: Vec<Value>,
    expected: usize,
    what: &str,
) -> Result<(), Error> {
    let statement = Statement::from_sql_and_values(DatabaseBackend::Postgres, sql, values);
    let written = conn.execute_raw(statement).await?.rows_affected();
    if written != expected as u64 {
        return Err(Error::internal(format!("{what}: {written} of {expected}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_refuses_what_it_cannot_carry() {
        use crate::db::entity::{action, execution};
        let row = <action::ActiveModel as Default>::default();
        let computed = insert_select(
            std::slice::from_ref(&row),
            &[("execution_seq", "e.seq")],
            None,
            1,
        );
        assert!(computed.unwrap().0.contains("SELECT e.seq, r.node_id"));
        let unknown = insert_select(&[row], &[("nope", "1")], None, 1);
        assert!(matches!(unknown, Err(Error::Internal { .. })));
        // `id` is a uuid: as text it would not be cast.
        let typed = insert_select(
            &[<execution::ActiveModel as Default>::default()],
            &[],
            None,
            1,
        );
        assert!(matches!(typed, Err(Error::Internal { .. })));
    }

    #[test]
    fn columns_are_json_arrays_and_zipped_in_order() {
        assert_eq!(
            column([Some("a\"b"), None]).unwrap(),
            Value::from(r#"["a\"b",null]"#.to_owned())
        );
        assert_eq!(
            rows_from("s", &["seq", "node"], 3),
            "ROWS FROM (json_array_elements_text($3::json), json_array_elements_text($4::json)) AS s(seq, node)"
        );
    }
}
