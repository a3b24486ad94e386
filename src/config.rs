//! The command line: `executions [serve]` with every setting as a flag and an environment
//! variable. Only `main` parses it; tests build [`ServeArgs`] or the library's configs
//! directly.

use std::net::SocketAddr;
use std::time::Duration;

use chrono_tz::Tz;
use clap::{Args, Parser, Subcommand};

use crate::db::DEFAULT_DATABASE_URL;
use crate::grpc::ServerConfig;
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
    Serve(ServeArgs),
    /// Follow one execution live until it finishes (exit 0 completed, 1 failed, 3 stopped).
    Watch(crate::cli::watch::WatchArgs),
    /// Start executions of the example templates and drive them like an engine's workers.
    Demo(crate::cli::demo::DemoArgs),
}

impl Cli {
    /// The command to run, `serve` when none is given.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

/// Settings of `executions serve`.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Database URL: `sqlite://FILE?mode=rwc` (embedded) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Address to serve gRPC on.
    #[arg(long, env = "EXECUTIONS_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// IANA time zone for times when a request names none.
    #[arg(long, env = "EXECUTIONS_TIME_ZONE", default_value = "UTC")]
    pub time_zone: Tz,
    /// Most database connections in the pool.
    #[arg(long, env = "EXECUTIONS_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
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
}

impl ServeArgs {
    /// The server settings these arguments ask for.
    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            default_time_zone: self.time_zone,
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            health_check_interval: Duration::from_secs(self.health_check_interval),
        }
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
        let Command::Watch(args) = cli.into_command() else {
            panic!("watch")
        };
        assert!(args.json);
        assert_eq!(args.id, "v8brp");
        assert!(Cli::try_parse_from(["executions", "--time-zone", "Nowhere/City"]).is_err());
    }
}
