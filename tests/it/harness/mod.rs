//! Starts a real server on a real database and hands tests a connected client; plus the
//! fixtures and assertions the tests share.
//!
//! - [`server`]: [`TestServer`] and its one way to start, [`TestServer::builder`].
//! - [`database`]: the test databases (a SQLite file, a PostgreSQL database).
//! - [`fixtures`]: templates and requests, and the calls tests make over and over.
//! - [`assertions`]: error details, stats and the invariants of a stored execution.
//! - [`streams`]: stream reads under a timeout, and the watch helpers.
//! - [`tokens`]: bearer tokens and the tokens file of the auth tests.
//! - [`locks`]: locks held from outside the server, to make a call wait.
//! - [`probes`]: health, metrics and free ports.

pub mod assertions;
pub mod database;
pub mod fixtures;
pub mod locks;
pub mod probes;
pub mod server;
pub mod streams;
pub mod tokens;

pub use assertions::*;
pub use database::*;
pub use fixtures::*;
pub use locks::*;
pub use probes::*;
pub use server::*;
pub use streams::*;
pub use tokens::*;

pub use executions::proto::v1::{ActionStatus, ExecutionStatus, ExecutionView};
pub use tonic_health::pb::health_check_response::ServingStatus;

/// Runs each named `async fn name(server: &TestServer)` once per database: as test
/// `name::sqlite` and as test `name::postgres` (see [`run_on`]).
#[macro_export]
macro_rules! db_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use $crate::harness::{Backend, run_on};

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                run_on(Backend::Sqlite, stringify!($name), super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                run_on(Backend::Postgres, stringify!($name), super::$name).await;
            }
        }
    )*};
}

/// Runs `test` against a server over a fresh database of `backend` (named after `name`),
/// then stops the server; does nothing when `backend` is not available here.
pub async fn run_on(backend: Backend, name: &str, test: impl AsyncFnOnce(&TestServer)) {
    if !backend.available() {
        return;
    }
    let server = TestServer::builder().on(backend).named(name).start().await;
    test(&server).await;
    server.stop().await;
}
