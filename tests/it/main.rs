//! The integration suite: one binary that starts the real server on port 0 over a real
//! database and drives it through the generated gRPC client.
//!
//! Every test in [`db_tests!`] runs twice: on a fresh SQLite file, and on a fresh
//! PostgreSQL database. Tests that need what is absent (PostgreSQL without
//! `TEST_DATABASE_URL`, grpcurl, Python's h2 or grpcio) are ignored, and counted so in
//! the summary; under `CI=true` [`suite::ci_runs_every_test`] fails instead. A PostgreSQL test database is named
//! after its test and dropped even when the test panics; `tests/leftover_databases.sh`
//! checks that a run left none behind.

// A failed unwrap in a test is the test failing, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod answers;
mod auth;
mod bad_input;
mod browsers;
mod cli;
mod cli_feed;
mod cli_fleet;
mod cli_verbs;
mod concurrency;
mod counts;
mod dashboard;
mod deadlines;
mod feed;
mod feed_edges;
mod filters;
mod fleet;
mod grpcurl;
mod history;
mod hostile;
mod lifecycle;
mod limits;
mod load_shedding;
mod metrics;
mod model;
mod outage;
mod pagination;
mod reads;
mod replicas;
mod serve;
mod shutdown;
mod startup;
mod suite;
mod tenancy;
mod tls;
mod watch;
mod watch_load;
