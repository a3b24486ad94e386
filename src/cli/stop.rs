//! `executions stop`: by id (`stop ID… [--reason …]`, StopExecution: every unfinished
//! action becomes STOPPED; stopping a stopped execution is not an error, a finished one
//! is), or by stop event (`stop --event E [--user-key …] [--data k=v …] [--dry-run]`,
//! StopExecutions: every running execution of the tenant that listens to E and matches
//! the data).

use std::process::ExitCode;

use super::filters::{data_struct, parse_data};
use super::output;
use super::{ClientArgs, EXIT_ERROR};
use crate::proto::v1 as pb;

/// Settings of `executions stop`.
#[derive(Clone, Debug, clap::Args)]
pub struct StopArgs {
    /// UUIDs or hashids of the executions to stop.
    #[arg(required_unless_present = "event", conflicts_with = "event")]
    pub ids: Vec<String>,
    /// Why (kept as each execution's stop_reason).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Stop every running execution listening to this stop event (see `start
    /// --stop-event`), instead of executions by id.
    #[arg(long)]
    pub event: Option<String>,
    /// With --event: the tenant (default: the token's, else "main").
    #[arg(long, requires = "event")]
    pub user_key: Option<String>,
    /// With --event: only executions whose execution_data has KEY equal to VALUE; repeat
    /// for several.
    #[arg(long = "data", value_name = "KEY=VALUE", value_parser = parse_data, requires = "event")]
    pub data: Vec<(String, serde_json::Value)>,
    /// With --event: stop nothing, say what would be stopped.
    #[arg(long, requires = "event")]
    pub dry_run: bool,
    /// With --event: idempotency key; the same call with the same key resumes an
    /// interrupted job or repeats a finished one's answer.
    #[arg(long, requires = "event")]
    pub request_id: Option<String>,
    /// Connection and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Stops the executions; exits 4 when any could not be stopped (after trying all).
pub async fn run(args: StopArgs) -> ExitCode {
    // clap's `requires` is not enforced next to the ids, so it is checked here.
    let event_only = args.dry_run
        || args.user_key.is_some()
        || !args.data.is_empty()
        || args.request_id.is_some();
    if args.event.is_none() && event_only {
        eprintln!("error: --user-key, --data, --dry-run and --request-id go with --event");
        return ExitCode::from(2);
    }
    let mut client = match args.client.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    if let Some(event) = &args.event {
        return by_event(&mut client, event, &args).await;
    }
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

async fn by_event(
    client: &mut super::connection::Client,
    event: &str,
    args: &StopArgs,
) -> ExitCode {
    let request = pb::StopExecutionsRequest {
        stop_event: event.to_owned(),
        user_key: args.user_key.clone().unwrap_or_default(),
        filters: data_struct(&args.data),
        reason: args.reason.clone(),
        request_id: args.request_id.clone().unwrap_or_default(),
        dry_run: args.dry_run,
    };
    let answer = match client.stop_executions(request).await {
        Ok(answer) => answer.into_inner(),
        Err(status) => {
            output::print_status(&format!("cannot stop on event {event}"), &status);
            return ExitCode::from(EXIT_ERROR);
        }
    };
    if args.client.json() {
        return if output::print_json(&answer) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_ERROR)
        };
    }
    let verb = if args.dry_run {
        "would stop"
    } else {
        "stopped"
    };
    for e in &answer.executions {
        println!("{verb} {}  (revision {})", e.hashid, e.revision);
    }
    let more = if answer.executions_truncated {
        " (the first 10,000 listed)"
    } else {
        ""
    };
    println!(
        "{verb} {} of {} matching execution(s) listening to {event}{more}",
        answer.stopped_count, answer.matched_count
    );
    ExitCode::SUCCESS
}
