//! Client-side commands of the `executions` binary: they talk to a running server through
//! the generated gRPC client, like any other caller.
//!
//! Every command takes the same connection flags ([`ClientArgs`]: `--addr`, `--token`,
//! `--ca-cert`, `--time-zone`, `-o table|json`) and exits with the same codes: 0 when it
//! did what was asked, [`EXIT_ERROR`] when it could not (bad input, an error from the
//! server, no server), 2 for a command line clap refuses; `watch` and `wait` also exit
//! [`EXIT_FAILED`] and [`EXIT_STOPPED`] for the outcome of the execution.

use std::process::ExitCode;

use clap::{Args, Subcommand};

pub mod connection;
pub mod demo;
pub mod events;
pub mod examples;
pub mod feed;
pub mod filters;
pub mod follow;
pub mod get;
pub mod json;
pub mod list;
pub mod output;
pub mod start;
pub mod stop;
pub mod wait;
pub mod watch;
pub mod watch_all;
pub mod watch_table;

/// Exit code when the execution failed (`watch`, `wait`, `start --wait`).
pub const EXIT_FAILED: u8 = 1;
/// Exit code when the execution was stopped (`watch`, `wait`, `start --wait`).
pub const EXIT_STOPPED: u8 = 3;
/// Exit code when the command could not do its work (bad id, server error, no server).
pub const EXIT_ERROR: u8 = 4;

/// The flags every client command shares.
#[derive(Clone, Debug, Args)]
pub struct ClientArgs {
    /// The server.
    #[command(flatten)]
    pub server: connection::ConnectArgs,
    /// IANA time zone for the times shown (e.g. America/New_York); default: the server's
    /// zone for creation times, UTC for action times.
    #[arg(long)]
    pub time_zone: Option<chrono_tz::Tz>,
    /// Output: readable text, or canonical proto3 JSON as grpcurl prints it.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = output::OutputFormat::Table)]
    pub output: output::OutputFormat,
}

impl ClientArgs {
    /// The requested zone as the API spells it (empty: the server's default).
    pub fn zone_name(&self) -> String {
        self.time_zone
            .map(|z| z.name().to_owned())
            .unwrap_or_default()
    }

    /// Whether JSON was asked for.
    pub fn json(&self) -> bool {
        self.output == output::OutputFormat::Json
    }

    /// Connects, or says why not on stderr.
    pub async fn connect(&self) -> Result<connection::Client, ExitCode> {
        self.server.connect().await.map_err(|err| {
            eprintln!("error: {err}");
            ExitCode::from(EXIT_ERROR)
        })
    }
}

/// The client commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Show one execution: name, key, status, counts, then each action in order.
    Get(get::GetArgs),
    /// List executions, newest first, as a table (paging as needed).
    List(list::ListArgs),
    /// Count executions, in total and by status.
    Count(list::CountArgs),
    /// Start an execution of a template file (the JSON that StartExecution takes).
    Start(start::StartArgs),
    /// Stop executions by id, or every one listening to a stop event (--event).
    Stop(stop::StopArgs),
    /// Show the history of an execution: one line per thing that changed.
    Events(events::EventsArgs),
    /// Wait until executions finish (exit 0 all completed, 1 one failed, 3 one stopped).
    Wait(wait::WaitArgs),
    /// Follow one execution live until it finishes (exit 0 completed, 1 failed, 3 stopped),
    /// or with --all every execution that matches the filters, as a live table.
    Watch(watch::WatchArgs),
    /// Start executions of the example templates and drive them like an engine's workers.
    Demo(demo::DemoArgs),
}

/// Runs a client command.
pub async fn run(command: ClientCommand) -> ExitCode {
    match command {
        ClientCommand::Get(args) => get::run(args).await,
        ClientCommand::List(args) => list::run(args).await,
        ClientCommand::Count(args) => list::count(args).await,
        ClientCommand::Start(args) => start::run(args).await,
        ClientCommand::Stop(args) => stop::run(args).await,
        ClientCommand::Events(args) => events::run(args).await,
        ClientCommand::Wait(args) => wait::run(args).await,
        ClientCommand::Watch(args) => watch::run(args).await,
        ClientCommand::Demo(args) => demo::run(args).await,
    }
}
