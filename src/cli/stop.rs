//! `executions stop ID… [--reason …]`: stops executions one by one (StopExecution):
//! every unfinished action becomes STOPPED. Stopping a stopped execution is not an error;
//! a finished one is (FAILED_PRECONDITION, EXECUTION_ALREADY_FINISHED).

use std::process::ExitCode;

use super::output;
use super::{ClientArgs, EXIT_ERROR};
use crate::proto::v1 as pb;

/// Settings of `executions stop`.
#[derive(Clone, Debug, clap::Args)]
pub struct StopArgs {
    /// UUIDs or hashids of the executions to stop.
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Why (kept as the execution's stop_reason).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Connection and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Stops each execution; exits 4 when any could not be stopped (after trying all).
pub async fn run(args: StopArgs) -> ExitCode {
    let mut client = match args.client.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let mut failed = false;
    for id in &args.ids {
        let request = pb::StopExecutionRequest {
            id: id.clone(),
            reason: args.reason.clone(),
            view: pb::ExecutionView::Basic as i32,
            time_zone: args.client.zone_name(),
        };
        match client.stop_execution(request).await {
            Ok(response) => {
                let execution = response.into_inner();
                if args.client.json() {
                    failed |= !output::print_json(&execution);
                } else {
                    println!(
                        "stopped {}  {}  {}",
                        execution.hashid,
                        output::counts(&execution),
                        execution.name
                    );
                }
            }
            Err(status) => {
                output::print_status(&format!("cannot stop {id}"), &status);
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    }
}
