//! The `executions` binary: parse the command line, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use executions::config::{Cli, Command};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().into_command() {
        Command::Serve(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
                )
                .init();
            executions::serve(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Watch(args) => Ok(executions::cli::watch::run(args).await),
        Command::Demo(args) => Ok(executions::cli::demo::run(args).await),
    }
}
