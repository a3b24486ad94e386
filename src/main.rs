//! The `executions` binary: parse the command line, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use executions::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().into_command() {
        Command::Serve(args) => {
            let _flush_logs_at_exit = executions::init_logging(args.log_format);
            executions::serve(*args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(command) => Ok(executions::cli::run(*command).await),
    }
}
