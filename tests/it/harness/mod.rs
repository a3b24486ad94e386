//! Starts a real server on a real database and hands tests a connected client; plus the
//! fixtures and assertions the tests share.
//!
//! - [`server`]: [`TestServer`] and its one way to start, [`TestServer::builder`].
//! - [`database`]: the test databases (a SQLite file, a PostgreSQL database).
//! - [`fixtures`]: templates and requests, and the calls tests make over and over.
//! - [`assertions`]: error details, stats and the invariants of a stored execution.
//! - [`streams`]: stream reads under a timeout, and the watch helpers.
//! - [`feeds`]: WatchExecutions streams.
//! - [`tokens`]: bearer tokens and the tokens file of the auth tests.
//! - [`locks`]: locks held from outside the server, to make a call wait.
//! - [`probes`]: health, metrics and free ports.
//! - [`python`]: the Python clients of the hostile-client tests.
//! - [`binary`]: the real `executions` binary, run as a person would.

pub mod assertions;
pub mod binary;
pub mod database;
pub mod feeds;
pub mod fixtures;
pub mod locks;
pub mod probes;
pub mod python;
pub mod server;
pub mod streams;
pub mod tokens;

pub use assertions::*;
pub use binary::*;
pub use database::*;
pub use feeds::*;
pub use fixtures::*;
pub use locks::*;
pub use probes::*;
pub use python::*;
pub use server::*;
pub use streams::*;
pub use tokens::*;

pub use executions::proto::v1::{ActionStatus, ExecutionStatus, ExecutionView};
pub use tonic_health::pb::health_check_response::ServingStatus;

/// Runs each named `async fn name(server: &TestServer)` once per database: as test
/// `name::sqlite` and as test `name::postgres` (see [`run_on`]). With `config = f;`
/// first, the servers run with the settings `f()` returns.
///
/// `name::postgres` is ignored (`needs TEST_DATABASE_URL`) when the suite was built
/// without `TEST_DATABASE_URL` (build.rs sets `cfg(test_database)` from it), so that the
/// summary counts it as ignored rather than passed.
#[macro_export]
macro_rules! db_tests {
    (config = $config:path; $($name:ident),* $(,)?) => {$(
        mod $name {
            use $crate::harness::{Backend, run_on_with};

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                run_on_with(Backend::Sqlite, stringify!($name), $config(), super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
            async fn postgres() {
                run_on_with(Backend::Postgres, stringify!($name), $config(), super::$name).await;
            }
        }
    )*};
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use $crate::harness::{Backend, run_on};

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                run_on(Backend::Sqlite, stringify!($name), super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
            async fn postgres() {
                run_on(Backend::Postgres, stringify!($name), super::$name).await;
            }
        }
    )*};
}

/// Runs `test` against a server over a fresh database of `backend` (named after `name`),
/// then stops the server. Fails when `backend` is not available here (a PostgreSQL test
/// run with `--include-ignored` but no `TEST_DATABASE_URL`).
pub async fn run_on(backend: Backend, name: &str, test: impl AsyncFnOnce(&TestServer)) {
    run_on_with(backend, name, test_config(), test).await;
}

/// [`run_on`], with these server settings.
pub async fn run_on_with(
    backend: Backend,
    name: &str,
    config: executions::grpc::ServerConfig,
    test: impl AsyncFnOnce(&TestServer),
) {
    assert!(
        backend.available(),
        "{backend:?} is not available: set TEST_DATABASE_URL"
    );
    let server = TestServer::builder()
        .on(backend)
        .named(name)
        .config(config)
        .start()
        .await;
    test(&server).await;
    server.stop().await;
}
