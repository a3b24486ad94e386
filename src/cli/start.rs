//! `executions start --template FILE`: starts an execution from a JSON file, either the
//! StartExecution request that grpcurl takes (as in `examples/`) or a bare template
//! (`nodes`, `edges`, ...), with `--key`, `--name` and `--data` on top; `--wait` then
//! waits for it to finish, with the exit codes of `wait`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::filters::parse_data;
use super::output;
use super::{ClientArgs, EXIT_ERROR};
use crate::proto::v1 as pb;

/// Settings of `executions start`.
#[derive(Clone, Debug, clap::Args)]
pub struct StartArgs {
    /// JSON file (`-` for stdin): a StartExecution request (`{"key": …, "template": {…}}`,
    /// as in examples/) or just a template (`{"nodes": […], "edges": […]}`).
    #[arg(long, value_name = "FILE")]
    pub template: PathBuf,
    /// Workflow key (replaces the file's).
    #[arg(long)]
    pub key: Option<String>,
    /// Name of the execution (replaces the file's).
    #[arg(long)]
    pub name: Option<String>,
    /// Tenant (replaces the file's).
    #[arg(long)]
    pub user_key: Option<String>,
    /// Sets KEY of execution_data (VALUE is JSON when it reads as JSON, a string
    /// otherwise); repeat for several.
    #[arg(long = "data", value_name = "KEY=VALUE", value_parser = parse_data)]
    pub data: Vec<(String, serde_json::Value)>,
    /// A stop event the execution listens to (`executions stop --event E` stops it);
    /// repeat for several.
    #[arg(long = "stop-event", value_name = "EVENT")]
    pub stop_events: Vec<String>,
    /// Idempotency key: starting again with the same one returns the first execution.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Wait until it finishes (exit 0 completed, 1 failed, 3 stopped).
    #[arg(long)]
    pub wait: bool,
    /// Connection and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Starts the execution.
pub async fn run(args: StartArgs) -> ExitCode {
    let request = match request(&args) {
        Ok(request) => request,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let mut client = match args.client.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let execution = match client.start_execution(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            output::print_status("cannot start the execution", &status);
            return ExitCode::from(EXIT_ERROR);
        }
    };
    if args.client.json() {
        if !args.wait {
            output::print_json(&execution);
        }
    } else {
        println!(
            "started {}  {}  ({} actions)",
            execution.hashid, execution.name, execution.actions_count
        );
    }
    if !args.wait {
        return ExitCode::SUCCESS;
    }
    match super::wait::wait_for(&execution, &args.client).await {
        Ok(finished) => {
            super::wait::show(&finished, &args.client);
            ExitCode::from(super::wait::exit_code(finished.status()))
        }
        Err(error) => {
            eprintln!("error: cannot wait for {}: {error}", execution.hashid);
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The request the file and flags describe.
fn request(args: &StartArgs) -> Result<pb::StartExecutionRequest, String> {
    let text = if args.template.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("cannot read stdin: {e}"))?
    } else {
        std::fs::read_to_string(&args.template)
            .map_err(|e| format!("cannot read {}: {e}", args.template.display()))?
    };
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not JSON: {e}", args.template.display()))?;
    let mut request = super::examples::read_request(&json)
        .map_err(|e| format!("{}: {e}", args.template.display()))?;
    if let Some(key) = &args.key {
        request.key.clone_from(key);
    }
    if let Some(name) = &args.name {
        request.name.clone_from(name);
    }
    if let Some(user_key) = &args.user_key {
        request.user_key.clone_from(user_key);
    }
    if let Some(request_id) = &args.request_id {
        request.request_id.clone_from(request_id);
    }
    request.stop_events.extend(args.stop_events.iter().cloned());
    if let Some(extra) = super::filters::data_struct(&args.data) {
        let data = request.execution_data.get_or_insert_default();
        data.fields.extend(extra.fields);
    }
    request.time_zone = args.client.zone_name();
    Ok(request)
}
