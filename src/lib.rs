//! **executions**: the Executions API of a workflow-automation platform, over gRPC.
//!
//! It stores every execution of a workflow template (a DAG of actions), lets callers
//! monitor executions (get, list, watch) and control them (stop), and lets the workflow
//! engine report each action's progress, keeping every stored execution consistent.
//!
//! # Layout
//!
//! In the order a request flows:
//!
//! - [`grpc`]: the transport. Browsers first (`grpc::web`: CORS and gRPC-Web turned into
//!   gRPC; `grpc::dashboard`: the page at `/`), then telemetry (spans, logs, standard gRPC metrics), bearer
//!   tokens, load shedding, then the handlers: validate requests and convert proto ->
//!   domain (`grpc::from_proto`, one file per request kind, well-known types in one
//!   place), domain -> proto (`to_proto`), [`Error`] -> `tonic::Status` (`status`), the
//!   codec, and the server ([`grpc::run`]).
//! - [`service`]: the use cases, one file each: start, change (an action's progress, a
//!   stop), read (get, list, count), watch, fleet (StopExecutions, the stop event),
//!   history (ListExecutionEvents), retention (the background deleter); every change is
//!   committed and published through the one write path (`service::write`).
//! - [`domain`]: the pure rules: statuses, transitions, readiness, counts, ids, times,
//!   the events a change records (`domain::history`, with `replay`), and what a stop
//!   event asks for (`domain::fleet`).
//! - [`db`]: SeaORM entities, migrations, and queries that return domain types: `load`
//!   (reads), `store` (writes, events included), `listing` (pages, counts), `history`
//!   (pages of events), `fleet` (a stop event's listeners, jobs), `retention`, `notify`
//!   (PostgreSQL NOTIFY/LISTEN).
//! - [`changes`]: the change hub watchers subscribe to (the latest state of each watched
//!   execution), and `changes::relay`, which carries changes between replicas on
//!   PostgreSQL.
//! - [`error`]: the one error type of the request path.
//! - [`config`]: the command line and environment settings.
//! - [`startup`]: the database URL checked and explained before `serve` connects.
//! - [`cli`]: client commands of the binary (`get`, `list`, `count`, `start`, `stop`,
//!   `wait`, `watch`, `events`, `demo`).
//! - [`proto`]: code generated from `proto/` (lints relaxed there only).
#![forbid(unsafe_code)]

pub mod changes;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod proto;
pub mod service;
pub mod startup;

pub use error::Error;

/// Runs `executions serve`: connects to the database (running migrations), binds the
/// listen address, and serves until SIGINT or SIGTERM.
pub async fn serve(args: config::ServeArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    // Settings first: a refusal to start should not wait for a database.
    let server_config = args.server_config()?;
    // The port before the database: a busy port is refused before any migration runs.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let database_url = startup::database_url(&args.database_url).await?;
    // One line with every cause said once (the driver's errors repeat their sources).
    let pool = args
        .db_max_connections
        .unwrap_or_else(|| db::default_max_connections(&database_url));
    let db = db::Database::connect(&database_url, pool)
        .await
        .map_err(|err| {
            anyhow::anyhow!(
                "cannot open the database at {}: {}",
                redact(&database_url),
                startup::causes(&err)
            )
        })?;
    tracing::info!(
        listen = %listener.local_addr()?,
        database = %redact(&database_url),
        "starting executions {}",
        env!("CARGO_PKG_VERSION")
    );
    let executions =
        service::Executions::new(db, changes::ChangeHub::default(), args.watch_settings());
    // Ends with the process; a batch cut short rolls back whole.
    let _retention = args.retention.map(|retention| {
        executions.start_retention(retention, tokio_util::sync::CancellationToken::new())
    });
    grpc::run(server_config, executions, listener, shutdown_signal()).await
}

/// Sends log lines to stderr, as text or JSON, filtered by `RUST_LOG` (default `info`).
/// JSON lines carry the current span and its parents, so each call's line has its
/// method, peer, code and latency as fields.
///
/// Lines are written by a thread of their own, so a slow stderr never stalls a call;
/// keep the returned guard alive until exit, when it flushes what is left.
pub fn init_logging(format: config::LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::EnvFilter;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        // Block rather than drop lines when the writer falls behind.
        .lossy(false)
        .finish(std::io::stderr());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // Colours only for a person at a terminal, not in files or collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        config::LogFormat::Text => logs.init(),
        // The current span once (`span`), not again in the list of its parents.
        config::LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    guard
}

/// A database URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only fails for URLs that cannot have a password, and this one has one.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    /// Passwords never reach a message; URLs without one are left as they are.
    #[test]
    fn redact_hides_the_password() {
        assert_eq!(
            super::redact("postgres://u:s3cret@db:5432/x?sslmode=require"),
            "postgres://u:***@db:5432/x?sslmode=require"
        );
        assert_eq!(super::redact("postgres://u@db/x"), "postgres://u@db/x");
        assert_eq!(
            super::redact("sqlite://executions.db?mode=rwc"),
            "sqlite://executions.db?mode=rwc"
        );
    }
}
