//! The same `execution_data` filter finds the same executions on SQLite and PostgreSQL,
//! and the ones the contract says: keys are literal, numbers compare by value.

use executions::proto::v1 as pb;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::harness::*;

/// Keys with JSON-path syntax, escapes, quotes, unicode and spaces in them.
const KEYS: &[&str] = &[
    "a", "a\\b", "a\"b", "$.a", "a.b", "[0]", "'q'", "é", "😀", "a b", "\\", "\"", "*", "a\tb",
    "null", "0",
];

fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..if depth > 1 { 6 } else { 8 }) {
        0 => json!([0.0, -0.0, 1.0, 100.0, 0.1, 1e-7, 1e300, -2.5, 42.0].choose(rng)),
        1 => json!(["", "1", "true", "null", "a\\b", "é", "x\"y"].choose(rng)),
        2 => json!(rng.random_bool(0.5)),
        3 => Value::Null,
        4 => json!(rng.random_range(-3..4) as f64),
        5 => json!(["-0", "0"].choose(rng)),
        6 => Value::Array(
            (0..rng.random_range(0..3))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut object = serde_json::Map::new();
            for _ in 0..rng.random_range(0..3) {
                let key = (*KEYS.choose(rng).unwrap()).to_owned();
                object.insert(key, random_value(rng, depth + 1));
            }
            Value::Object(object)
        }
    }
}

pub(crate) fn random_document(rng: &mut StdRng) -> serde_json::Map<String, Value> {
    let mut doc = serde_json::Map::new();
    for _ in 0..rng.random_range(1..4) {
        doc.insert(
            (*KEYS.choose(rng).unwrap()).to_owned(),
            random_value(rng, 0),
        );
    }
    doc
}

/// JSON equality with numbers compared by value (so `-0` equals `0`).
pub(crate) fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Names of the executions a filter finds on `client`, sorted.
async fn found(client: &mut Client, filter: &serde_json::Map<String, Value>) -> Vec<String> {
    let page = client
        .list_executions(pb::ListExecutionsRequest {
            page_size: 500,
            execution_data: Some(to_struct(&Value::Object(filter.clone()))),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("filter {filter:?}: {e:?}"))
        .into_inner();
    let mut names: Vec<_> = page.executions.into_iter().map(|e| e.name).collect();
    names.sort();
    names
}

/// Random documents and filters (keys with every punctuation and escape character,
/// unicode, numbers such as `-0`, `0.1` and `1e300`, nested objects and lists): each
/// filter finds on SQLite exactly what it finds on PostgreSQL, and both find exactly the
/// documents whose every filtered key holds an equal value. The seed is printed, and
/// `FILTER_SEED` replays one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn the_same_filter_finds_the_same_executions_on_both_databases() {
    let seed = std::env::var("FILTER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("filter property test: FILTER_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let sqlite = TestServer::builder().on(Backend::Sqlite).start().await;
    let postgres = TestServer::builder().on(Backend::Postgres).start().await;
    let (mut on_sqlite, mut on_postgres) = (sqlite.client.clone(), postgres.client.clone());

    let documents: Vec<_> = (0..40).map(|_| random_document(&mut rng)).collect();
    for (i, doc) in documents.iter().enumerate() {
        for client in [&mut on_sqlite, &mut on_postgres] {
            let mut request = start_request_for("filtered", "");
            request.name = format!("doc{i:02}");
            request.execution_data = Some(to_struct(&Value::Object(doc.clone())));
            client.start_execution(request).await.expect("start");
        }
    }
    for round in 0..80 {
        // Half the filters are taken from a stored document (so they match something),
        // with numbers respelled; the others are random.
        let filter = if round % 2 == 0 {
            let doc = documents.choose(&mut rng).unwrap();
            let mut filter = serde_json::Map::new();
            for (k, v) in doc.iter().filter(|_| rng.random_bool(0.7)) {
                let v = match v {
                    Value::Number(n) if n.as_f64() == Some(0.0) => json!(-0.0),
                    other => other.clone(),
                };
                filter.insert(k.clone(), v);
            }
            if filter.is_empty() {
                continue;
            }
            filter
        } else {
            random_document(&mut rng)
        };
        let mut expected: Vec<_> = documents
            .iter()
            .enumerate()
            .filter(|(_, doc)| {
                filter
                    .iter()
                    .all(|(k, v)| doc.get(k).is_some_and(|d| same(d, v)))
            })
            .map(|(i, _)| format!("doc{i:02}"))
            .collect();
        expected.sort();
        let (s, p) = (
            found(&mut on_sqlite, &filter).await,
            found(&mut on_postgres, &filter).await,
        );
        assert_eq!(
            s, p,
            "seed {seed}: filter {filter:?}: SQLite found {s:?}, PostgreSQL {p:?}"
        );
        assert_eq!(s, expected, "seed {seed}: filter {filter:?}");
    }
    sqlite.stop().await;
    postgres.stop().await;
}
