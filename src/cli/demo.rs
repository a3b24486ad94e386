//! `executions demo`: starts executions of the bundled example templates and drives their
//! actions through the public API the way an engine's workers would: each action that
//! becomes ready is scheduled, run and completed (now and then failed) after short random
//! delays. It follows each execution with WatchExecution and dispatches work as edges
//! open, until every execution finishes or Ctrl-C.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinSet;

use super::connection::Client;
use super::examples::{BRANCHING, LINEAR, start_request};
use crate::proto::v1 as pb;

/// Settings of `executions demo`.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    /// The server.
    #[command(flatten)]
    pub server: super::connection::ConnectArgs,
    /// How many executions to start (at least 1).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub executions: u32,
    /// Share of actions that fail, from 0 to 1.
    #[arg(long, default_value_t = 0.1, value_parser = parse_rate, allow_negative_numbers = true)]
    pub failure_rate: f64,
    /// Longest pause before each step of an action, in milliseconds (5000 is slow
    /// enough to follow along with `executions watch`).
    #[arg(long, default_value_t = 1_500)]
    pub max_delay_ms: u64,
}

/// A share from 0 to 1.
fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("{rate} is not between 0 and 1"))
    }
}

/// Runs the demo; exits 0 once every execution finished.
pub async fn run(args: DemoArgs) -> ExitCode {
    let mut client = match args.server.connect().await {
        Ok(client) => client,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(super::EXIT_ERROR);
        }
    };
    // The bundled examples are constants that a unit test reads.
    let templates: Vec<pb::StartExecutionRequest> = [LINEAR, BRANCHING]
        .into_iter()
        .map(|text| start_request(&serde_json::from_str(text).unwrap_or_default()))
        .collect();
    let mut runs = JoinSet::new();
    // How a person reaches this server with `executions watch`.
    let addr = if args.server.addr == super::connection::DEFAULT_ADDR {
        String::new()
    } else {
        format!("--addr {} ", args.server.addr)
    };
    for i in 0..args.executions as usize {
        let mut request = templates[i % templates.len()].clone();
        request.name = format!("{} (demo #{})", request.name, i + 1);
        let execution = match client.start_execution(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                super::output::print_status("cannot start an execution", &status);
                return ExitCode::from(super::EXIT_ERROR);
            }
        };
        println!(
            "started  {}  {}  ({} actions)  watch it: executions watch {addr}{}",
            execution.hashid, execution.name, execution.actions_count, execution.hashid
        );
        runs.spawn(drive(client.clone(), execution, args.clone()));
    }
    let mut outcomes: HashMap<&'static str, usize> = HashMap::new();
    let finished = async {
        while let Some(done) = runs.join_next().await {
            if let Ok((execution, status)) = done {
                let name = status.as_str_name().trim_start_matches("EXECUTION_STATUS_");
                println!("finished {}  {}  {name}", execution.hashid, execution.name);
                *outcomes.entry(name).or_default() += 1;
            }
        }
    };
    tokio::select! {
        () = finished => {}
        _ = tokio::signal::ctrl_c() => {
            println!("interrupted; the executions keep their current state");
            return ExitCode::from(130);
        }
    }
    let mut summary: Vec<_> = outcomes.into_iter().collect();
    summary.sort();
    let summary: Vec<String> = summary.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "all {} executions finished: {}",
        args.executions,
        summary.join(", ")
    );
    ExitCode::SUCCESS
}

/// Follows one execution and dispatches a worker for each action as it becomes ready.
async fn drive(
    mut client: Client,
    execution: pb::Execution,
    args: DemoArgs,
) -> (pb::Execution, pb::ExecutionStatus) {
    let template = execution.template.clone().unwrap_or_default();
    let mut incoming: HashMap<String, Vec<String>> = HashMap::new();
    for edge in &template.edges {
        incoming
            .entry(edge.target.clone())
            .or_default()
            .push(edge.source.clone());
    }
    let actions: Vec<String> = template
        .nodes
        .iter()
        .filter(|n| n.r#type != "Start")
        .map(|n| n.id.clone())
        .collect();
    let mut dispatched = HashSet::new();
    let mut workers = JoinSet::new();
    let request = pb::WatchExecutionRequest {
        id: execution.id.clone(),
        ..Default::default()
    };
    let Ok(response) = client.watch_execution(request).await else {
        return (execution, pb::ExecutionStatus::Unspecified);
    };
    let mut events = response.into_inner();
    while let Ok(Some(event)) = events.message().await {
        let Some(state) = event.execution else {
            continue; // heartbeat
        };
        let status = state.status();
        if status != pb::ExecutionStatus::Running {
            workers.abort_all();
            return (execution, status);
        }
        for node in &actions {
            if !dispatched.contains(node)
                && is_idle(&state, node)
                && is_ready(&state, node, &incoming)
            {
                dispatched.insert(node.clone());
                workers.spawn(work(
                    client.clone(),
                    execution.id.clone(),
                    node.clone(),
                    args.clone(),
                ));
            }
        }
    }
    (execution, pb::ExecutionStatus::Unspecified)
}

fn is_idle(state: &pb::Execution, node: &str) -> bool {
    matches!(
        state.stats.get(node).and_then(|s| s.kind.as_ref()),
        Some(pb::stat::Kind::Action(a)) if a.status() == pb::ActionStatus::Idle
    )
}

/// Ready: no incoming edge, or one of them open (the server enforces the same rule).
fn is_ready(state: &pb::Execution, node: &str, incoming: &HashMap<String, Vec<String>>) -> bool {
    let sources = incoming.get(node).map(Vec::as_slice).unwrap_or_default();
    sources.is_empty()
        || sources.iter().any(|source| {
            matches!(
                state.stats.get(&format!("{source}-{node}")).and_then(|s| s.kind.as_ref()),
                Some(pb::stat::Kind::Edge(e)) if e.status() == pb::EdgeStatus::Open
            )
        })
}

/// One worker: schedules, runs and finishes one action, pausing before each step. Stops
/// quietly when the server refuses a step (the execution was stopped, say).
async fn work(mut client: Client, execution_id: String, node_id: String, args: DemoArgs) {
    let (fail, delays) = {
        let mut rng = rand::rng();
        let fail = rng.random_bool(args.failure_rate.clamp(0.0, 1.0));
        let delays: Vec<u64> = (0..3)
            .map(|_| rng.random_range(0..=args.max_delay_ms))
            .collect();
        (fail, delays)
    };
    let last = if fail {
        pb::ActionStatus::Failed
    } else {
        pb::ActionStatus::Completed
    };
    for (step, delay) in [pb::ActionStatus::Scheduled, pb::ActionStatus::Running, last]
        .into_iter()
        .zip(delays)
    {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let request = pb::UpdateActionRequest {
            execution_id: execution_id.clone(),
            node_id: node_id.clone(),
            status: step as i32,
            scheduled_at: (step == pb::ActionStatus::Scheduled).then_some(prost_types::Timestamp {
                seconds: now.as_secs() as i64,
                nanos: 0,
            }),
            failure_note: if step == pb::ActionStatus::Failed {
                "demo: simulated failure".into()
            } else {
                String::new()
            },
            view: pb::ExecutionView::Basic as i32,
            ..Default::default()
        };
        if client.update_action(request).await.is_err() {
            return;
        }
    }
}
