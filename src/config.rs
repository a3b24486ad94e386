//! The command line: `executions [serve]` with every setting as a flag and an environment
//! variable. Only `main` parses it; tests build [`ServeArgs`] or the library's configs
//! directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono_tz::Tz;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::db::DEFAULT_DATABASE_URL;
use crate::grpc::{Limits, ServerConfig, TlsSettings, Tokens};
use crate::service::WatchSettings;

/// The executions service: the Executions API of the workflow-automation platform.
#[derive(Debug, Parser)]
#[command(
    name = "executions",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of `serve` when no command is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the gRPC API (the default).
    Serve(Box<ServeArgs>),
    /// The client commands: get, list, count, start, stop, wait, watch, demo.
    #[command(flatten)]
    Client(Box<crate::cli::ClientCommand>),
}

impl Cli {
    /// The command to run, `serve` when none is given.
    pub fn into_command(self) -> Command {
        self.command
            .unwrap_or_else(|| Command::Serve(Box::new(self.serve)))
    }
}

/// Settings of `executions serve`.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Database URL: `sqlite://FILE` (embedded; the file is created when missing) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Address to serve gRPC on.
    #[arg(long, env = "EXECUTIONS_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// IANA time zone for times when a request names none.
    #[arg(long, env = "EXECUTIONS_TIME_ZONE", default_value = "UTC")]
    pub time_zone: Tz,
    /// Most database connections in the pool [default: 16 on PostgreSQL; on SQLite twice
    /// the cores, from 4 to 16].
    #[arg(long, env = "EXECUTIONS_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,
    /// Seconds that in-flight calls may run after a shutdown signal.
    #[arg(long, env = "EXECUTIONS_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,
    /// Seconds between checks that the database answers (health turns NOT_SERVING
    /// while it does not).
    #[arg(long, env = "EXECUTIONS_HEALTH_CHECK_INTERVAL", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub health_check_interval: u64,
    /// Seconds of quiet after which a watch stream gets a HEARTBEAT.
    #[arg(long, env = "EXECUTIONS_WATCH_HEARTBEAT", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    pub watch_heartbeat: u64,
    /// Most watch streams open at once on this server (RESOURCE_EXHAUSTED past it).
    #[arg(long, env = "EXECUTIONS_MAX_WATCHES", default_value_t = 100_000)]
    pub max_watches: usize,
    /// TOML file of bearer tokens (name, sha256, role, optional user_key). Without it the
    /// server is unauthenticated, which it allows only on a loopback address.
    #[arg(long, env = "EXECUTIONS_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Serve without tokens on a non-loopback address anyway.
    #[arg(long, env = "EXECUTIONS_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// PEM certificate chain: serve TLS (with --tls-key).
    #[arg(long, env = "EXECUTIONS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "EXECUTIONS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: require client certificates they signed (mTLS).
    #[arg(long, env = "EXECUTIONS_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Largest message accepted or sent, in bytes.
    #[arg(long, env = "EXECUTIONS_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Most calls open at once on one HTTP/2 connection.
    #[arg(
        long,
        env = "EXECUTIONS_MAX_CONCURRENT_STREAMS",
        default_value_t = 1024
    )]
    pub max_concurrent_streams: u32,
    /// Most calls running their handlers at once on this server (a watch counts while it
    /// opens); more are refused at once with RESOURCE_EXHAUSTED. Health is never refused.
    #[arg(long, env = "EXECUTIONS_MAX_CONCURRENT_CALLS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_concurrent_calls: u64,
    /// Seconds of idle after which a connection is pinged (HTTP/2 and TCP keepalive).
    #[arg(long, env = "EXECUTIONS_KEEPALIVE_INTERVAL", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub keepalive_interval: u64,
    /// Seconds a ping may go unanswered before the connection is closed.
    #[arg(long, env = "EXECUTIONS_KEEPALIVE_TIMEOUT", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub keepalive_timeout: u64,
    /// Most connections open at once (kept below the file-descriptor limit); past it new
    /// connections are closed at once.
    #[arg(long, env = "EXECUTIONS_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Seconds a new connection has to send its first bytes (HTTP/2 preface, TLS hello).
    #[arg(long, env = "EXECUTIONS_HANDSHAKE_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub handshake_timeout: u64,
    /// Most calls of one connection that its client may reset before the server accepted
    /// them; past it the connection is closed (HTTP/2 rapid reset, CVE-2023-44487).
    #[arg(long, env = "EXECUTIONS_MAX_PENDING_RESETS", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pending_resets: u64,
    /// Bytes that answers not yet read by their clients may hold, server-wide; past it new
    /// calls are refused with RESOURCE_EXHAUSTED until clients read or go.
    #[arg(long, env = "EXECUTIONS_MAX_UNSENT_BYTES", default_value_t = 256 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_unsent_bytes: u64,
    /// Delete executions that finished longer ago than this (e.g. `30d`, `12h`), with their
    /// actions and history, in small batches in the background (one replica at a time).
    /// Off when not set: executions are kept forever.
    #[arg(long, env = "EXECUTIONS_RETENTION", value_parser = parse_retention)]
    pub retention: Option<Duration>,
    /// Address to serve Prometheus metrics on (`GET /metrics`); off when not set.
    #[arg(long, env = "EXECUTIONS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// An origin (`scheme://host[:port]`) other than the server's own whose pages may call
    /// the API from a browser (gRPC-Web with CORS); repeat it, or separate origins with
    /// commas in the environment variable. Default: none (the dashboard this server
    /// serves needs none).
    #[arg(long = "cors-origin", env = "EXECUTIONS_CORS_ORIGIN", value_delimiter = ',', value_parser = cors_origin)]
    pub cors_origins: Vec<http::HeaderValue>,
    /// Log lines as text or as JSON objects (one per line).
    #[arg(long, env = "EXECUTIONS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// An allowed origin of `--cors-origin`.
fn cors_origin(text: &str) -> Result<http::HeaderValue, String> {
    crate::grpc::web::parse_origin(text).ok_or_else(|| {
        format!("{text:?} is not an origin: scheme://host[:port], e.g. https://ops.example.com")
    })
}

/// A retention: a duration such as `30d`, `12h` or `90s` (humantime's syntax), at least
/// one second.
fn parse_retention(raw: &str) -> Result<Duration, String> {
    let retention = humantime::parse_duration(raw).map_err(|e| e.to_string())?;
    if retention < Duration::from_secs(1) {
        return Err("retention must be at least 1s".to_owned());
    }
    Ok(retention)
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl ServeArgs {
    /// The server settings these arguments ask for, with the token and certificate files
    /// read. Refuses to serve without authentication beyond a loopback address unless
    /// that was asked for explicitly.
    pub fn server_config(&self) -> anyhow::Result<ServerConfig> {
        let tokens = self.tokens_file.as_deref().map(Tokens::load).transpose()?;
        anyhow::ensure!(
            tokens.is_some() || self.listen.ip().is_loopback() || self.allow_unauthenticated,
            "refusing to serve without authentication on {}, which is not a loopback address: \
             give a tokens file (--tokens-file / EXECUTIONS_TOKENS_FILE), listen on 127.0.0.1, \
             or pass --allow-unauthenticated (EXECUTIONS_ALLOW_UNAUTHENTICATED=true) if \
             something in front of this server authenticates callers",
            self.listen
        );
        let read = |path: &PathBuf| {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsSettings {
                cert_pem: read(cert)?,
                key_pem: read(key)?,
                client_ca_pem: self.tls_client_ca.as_ref().map(read).transpose()?,
            }),
            _ => None,
        };
        Ok(ServerConfig {
            default_time_zone: self.time_zone,
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            health_check_interval: Duration::from_secs(self.health_check_interval),
            tokens,
            tls,
            limits: Limits {
                max_message_bytes: self.max_message_bytes,
                max_concurrent_streams: self.max_concurrent_streams,
                max_concurrent_calls: usize::try_from(self.max_concurrent_calls)
                    .unwrap_or(usize::MAX),
                keepalive_interval: Duration::from_secs(self.keepalive_interval),
                keepalive_timeout: Duration::from_secs(self.keepalive_timeout),
                max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
                handshake_timeout: Duration::from_secs(self.handshake_timeout),
                max_pending_resets: usize::try_from(self.max_pending_resets).unwrap_or(usize::MAX),
                max_unsent_bytes: usize::try_from(self.max_unsent_bytes).unwrap_or(usize::MAX),
            },
            metrics_listen: self.metrics_listen,
            cors_origins: self.cors_origins.clone(),
        })
    }

    /// The watch settings these arguments ask for.
    pub fn watch_settings(&self) -> WatchSettings {
        WatchSettings {
            heartbeat: Duration::from_secs(self.watch_heartbeat),
            max_watches: self.max_watches,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_is_the_default_command() {
        let cli = Cli::try_parse_from(["executions", "--listen", "127.0.0.1:6000"]).unwrap();
        let Command::Serve(args) = cli.into_command() else {
            panic!("serve")
        };
        assert_eq!(args.listen.port(), 6000);
        assert_eq!(args.time_zone, Tz::UTC);
        let cli =
            Cli::try_parse_from(["executions", "serve", "--time-zone", "Europe/Paris"]).unwrap();
        let Command::Serve(args) = cli.into_command() else {
            panic!("serve")
        };
        assert_eq!(args.time_zone, chrono_tz::Europe::Paris);
        let cli = Cli::try_parse_from(["executions", "watch", "v8brp", "--json"]).unwrap();
        let Command::Client(command) = cli.into_command() else {
            panic!("a client command")
        };
        let crate::cli::ClientCommand::Watch(args) = *command else {
            panic!("watch")
        };
        assert!(args.json);
        assert_eq!(args.id.as_deref(), Some("v8brp"));
        assert!(!args.all);
        assert!(Cli::try_parse_from(["executions", "--time-zone", "Nowhere/City"]).is_err());
    }

    #[test]
    fn cors_origins_repeat_and_are_checked() {
        let cli = Cli::try_parse_from([
            "executions",
            "--cors-origin",
            "http://127.0.0.1:5173",
            "--cors-origin",
            "https://ops.example.com",
        ])
        .unwrap();
        let Command::Serve(args) = cli.into_command() else {
            panic!("serve")
        };
        let config = args.server_config().unwrap();
        assert_eq!(
            config.cors_origins,
            ["http://127.0.0.1:5173", "https://ops.example.com"]
        );
        assert!(
            Cli::try_parse_from(["executions", "--cors-origin", "https://x.example/path"]).is_err()
        );
        let Command::Serve(none) = Cli::try_parse_from(["executions"]).unwrap().into_command()
        else {
            panic!("serve")
        };
        assert!(none.cors_origins.is_empty());
    }

    #[test]
    fn no_unauthenticated_api_beyond_loopback_unless_asked() {
        let args = |extra: &[&str]| {
            let mut argv = vec!["executions", "--listen", "0.0.0.0:50051"];
            argv.extend_from_slice(extra);
            let Command::Serve(args) = Cli::try_parse_from(argv).unwrap().into_command() else {
                panic!("serve")
            };
            args
        };
        let refused = args(&[]).server_config().unwrap_err().to_string();
        assert!(refused.contains("--allow-unauthenticated"), "{refused}");
        let allowed = args(&["--allow-unauthenticated"]).server_config().unwrap();
        assert!(allowed.tokens.is_none());
        let local = Cli::try_parse_from(["executions"]).unwrap().into_command();
        let Command::Serve(local) = local else {
            panic!("serve")
        };
        assert!(
            local.server_config().is_ok(),
            "loopback is fine without tokens"
        );
        assert!(Cli::try_parse_from(["executions", "--tls-cert", "c.pem"]).is_err());
        assert!(Cli::try_parse_from(["executions", "--log-format", "xml"]).is_err());
    }
}
