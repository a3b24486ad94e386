//! The `executions` binary: parse the command line, set up logging, run the command.

use clap::Parser;
use executions::config::{Cli, Command};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    match Cli::parse().into_command() {
        Command::Serve(args) => executions::serve(args).await,
    }
}
