//! The model-based test: random sequences of StartExecution / UpdateAction /
//! StopExecution / StopExecutions over random small DAGs, applied both to the real server
//! and to [`Model`], a reference of SPEC's rules written here (not taken from `src/`),
//! comparing after every step the server's answer (code, reason, and the execution's
//! status, actions, edges, counts, revision) with the model's.
//!
//! - [`model_serial`]: one client; proptest generates the cases and shrinks a failing
//!   one to a minimal sequence (printed, to be copied into a regular test below).
//! - [`model_concurrent`]: several clients on a few executions at once; then each
//!   execution's history (ListExecutionEvents) is replayed through the model: every
//!   change must be a legal serial step, the replay must end at the stored state, every
//!   acknowledged answer must equal the replayed state at its revision, and every change
//!   must be the answer of exactly one acknowledged call.

use std::collections::BTreeMap;

use executions::proto::v1 as pb;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tonic::Code;

use crate::db_tests;
use crate::harness::*;

db_tests!(model_serial, model_concurrent);

/// Stop events an execution may listen to; the last one nobody listens to.
const EVENTS: [&str; 3] = ["alpha", "beta", "gamma"];

// ---------------------------------------------------------------------------------------
// The reference model.

/// One execution as SPEC describes it.
#[derive(Clone, Debug)]
struct Model {
    /// For each action `n{i}`: its incoming edges' sources (`None` = the Start node).
    preds: Vec<Vec<Option<usize>>>,
    actions: Vec<ActionStatus>,
    status: ExecutionStatus,
    revision: i64,
    stop_reason: String,
    listens: Vec<&'static str>,
    group: u8,
}

/// A refusal: the code and the ErrorInfo reason.
type Refusal = (Code, &'static str);

/// What a call did to the model.
#[derive(Debug, PartialEq)]
enum Effect {
    Changed,
    Unchanged,
}

impl Model {
    fn new(dag: &Dag, listens: u8, group: u8) -> Self {
        let mut model = Model {
            preds: dag.preds.clone(),
            actions: vec![ActionStatus::Idle; dag.preds.len()],
            status: ExecutionStatus::Running,
            revision: 1,
            stop_reason: String::new(),
            listens: (0..2)
                .filter(|i| listens & (1 << i) != 0)
                .map(|i| EVENTS[i])
                .collect(),
            group,
        };
        model.status = model.derive();
        model
    }

    /// An edge is OPEN when its source is Start or a COMPLETED action.
    fn edge_open(&self, source: Option<usize>) -> bool {
        source.is_none_or(|s| self.actions[s] == ActionStatus::Completed)
    }

    /// Ready: no incoming edge, or at least one OPEN incoming edge.
    fn ready(&self, node: usize) -> bool {
        self.preds[node].is_empty() || self.preds[node].iter().any(|&s| self.edge_open(s))
    }

    /// STOPPED if stopped; RUNNING while any action is SCHEDULED or RUNNING or any IDLE
    /// action is ready; else FAILED if any FAILED; else COMPLETED.
    fn derive(&self) -> ExecutionStatus {
        use ActionStatus::*;
        if self.status == ExecutionStatus::Stopped {
            return ExecutionStatus::Stopped;
        }
        let progress = self
            .actions
            .iter()
            .enumerate()
            .any(|(i, &a)| matches!(a, Scheduled | Running) || (a == Idle && self.ready(i)));
        if progress {
            ExecutionStatus::Running
        } else if self.actions.contains(&Failed) {
            ExecutionStatus::Failed
        } else {
            ExecutionStatus::Completed
        }
    }

    fn terminal(&self) -> bool {
        self.status != ExecutionStatus::Running
    }

    /// UpdateAction.
    fn update(
        &mut self,
        node: usize,
        to: ActionStatus,
        expected: Option<i64>,
    ) -> Result<Effect, Refusal> {
        use ActionStatus::*;
        if self.status == ExecutionStatus::Stopped {
            return Err((Code::FailedPrecondition, "EXECUTION_STOPPED"));
        }
        if node >= self.actions.len() {
            return Err((Code::NotFound, "ACTION_NOT_FOUND"));
        }
        if expected.is_some_and(|e| e != self.revision) {
            return Err((Code::Aborted, "REVISION_MISMATCH"));
        }
        let from = self.actions[node];
        if from == to {
            return Ok(Effect::Unchanged);
        }
        if self.terminal() {
            return Err((Code::FailedPrecondition, "EXECUTION_ALREADY_FINISHED"));
        }
        let allowed = matches!(
            (from, to),
            (Idle, Scheduled) | (Idle | Scheduled, Running) | (Running, Completed)
        ) || (to == Failed && matches!(from, Idle | Scheduled | Running));
        if !allowed {
            return Err((Code::FailedPrecondition, "INVALID_TRANSITION"));
        }
        if matches!(to, Scheduled | Running) && !self.ready(node) {
            return Err((Code::FailedPrecondition, "ACTION_NOT_READY"));
        }
        self.actions[node] = to;
        self.status = self.derive();
        self.revision += 1;
        Ok(Effect::Changed)
    }

    /// StopExecution.
    fn stop(&mut self, reason: &str) -> Result<Effect, Refusal> {
        match self.status {
            ExecutionStatus::Stopped => Ok(Effect::Unchanged),
            ExecutionStatus::Running => {
                for a in &mut self.actions {
                    if matches!(
                        a,
                        ActionStatus::Idle | ActionStatus::Scheduled | ActionStatus::Running
                    ) {
                        *a = ActionStatus::Stopped;
                    }
                }
                self.status = ExecutionStatus::Stopped;
                self.stop_reason = reason.to_owned();
                self.revision += 1;
                Ok(Effect::Changed)
            }
            _ => Err((Code::FailedPrecondition, "EXECUTION_ALREADY_FINISHED")),
        }
    }

    /// Whether StopExecutions(`event`, `filter`) stops it.
    fn stopped_by(&self, event: &str, filter: Option<u8>) -> bool {
        self.status == ExecutionStatus::Running
            && self.listens.contains(&event)
            && filter.is_none_or(|g| g == self.group)
    }

    /// Compares a server's execution with the model.
    fn check(&self, e: &pb::Execution) -> Result<(), String> {
        let mut wrong = Vec::new();
        if e.status() != self.status {
            wrong.push(format!("status {:?} != {:?}", e.status(), self.status));
        }
        if e.revision != self.revision {
            wrong.push(format!("revision {} != {}", e.revision, self.revision));
        }
        if e.stop_reason != self.stop_reason {
            wrong.push(format!(
                "stop_reason {:?} != {:?}",
                e.stop_reason, self.stop_reason
            ));
        }
        for (i, &want) in self.actions.iter().enumerate() {
            let got = match e.stats.get(&format!("n{i}")).and_then(|s| s.kind.as_ref()) {
                Some(pb::stat::Kind::Action(a)) => a.status(),
                _ => ActionStatus::Unspecified,
            };
            if got != want {
                wrong.push(format!("n{i} {got:?} != {want:?}"));
            }
            for &source in &self.preds[i] {
                let id = format!("{}-n{i}", node_id(source));
                let got = match e.stats.get(&id).and_then(|s| s.kind.as_ref()) {
                    Some(pb::stat::Kind::Edge(edge)) => edge.status(),
                    _ => pb::EdgeStatus::Unspecified,
                };
                let want = if self.edge_open(source) {
                    pb::EdgeStatus::Open
                } else {
                    pb::EdgeStatus::Closed
                };
                if got != want {
                    wrong.push(format!("edge {id} {got:?} != {want:?}"));
                }
            }
        }
        let count = |s: ActionStatus| self.actions.iter().filter(|&&a| a == s).count() as i32;
        let counts = [
            (e.actions_count, self.actions.len() as i32, "actions"),
            (e.idle_actions_count, count(ActionStatus::Idle), "idle"),
            (
                e.scheduled_actions_count,
                count(ActionStatus::Scheduled),
                "scheduled",
            ),
            (
                e.running_actions_count,
                count(ActionStatus::Running),
                "running",
            ),
            (
                e.completed_actions_count,
                count(ActionStatus::Completed),
                "completed",
            ),
            (
                e.failed_actions_count,
                count(ActionStatus::Failed),
                "failed",
            ),
            (
                e.stopped_actions_count,
                count(ActionStatus::Stopped),
                "stopped",
            ),
        ];
        for (got, want, what) in counts {
            if got != want {
                wrong.push(format!("{what}_count {got} != {want}"));
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {}", e.id, wrong.join("; ")))
        }
    }
}

fn node_id(source: Option<usize>) -> String {
    source.map_or_else(|| "start_of_workflow".to_owned(), |s| format!("n{s}"))
}

// ---------------------------------------------------------------------------------------
// What proptest generates.

/// A DAG of actions `n0..`: action i's incoming edges come from Start or from actions
/// before it (so no cycle), possibly none.
#[derive(Clone, Debug)]
struct Dag {
    preds: Vec<Vec<Option<usize>>>,
}

impl Dag {
    fn template(&self) -> pb::Template {
        let mut nodes = vec![node("start_of_workflow", "Start")];
        let mut edges = Vec::new();
        for (i, preds) in self.preds.iter().enumerate() {
            let id = format!("n{i}");
            nodes.push(node(&id, "Http"));
            for &source in preds {
                edges.push(edge(&node_id(source), &id));
            }
        }
        pb::Template {
            nodes,
            edges,
            ..Default::default()
        }
    }
}

fn dag() -> impl Strategy<Value = Dag> {
    prop::collection::vec(any::<u8>(), 1..=5).prop_map(|masks| Dag {
        preds: masks
            .iter()
            .enumerate()
            .map(|(i, mask)| {
                // Bit 0: Start; bit j + 1: action j < i. Mostly from Start when i = 0.
                (0..=i)
                    .filter(|bit| mask & (1 << bit) != 0)
                    .map(|bit| bit.checked_sub(1))
                    .collect()
            })
            .collect(),
    })
}

/// One execution of a case: its DAG, the stop events it listens to (a mask over
/// `alpha`, `beta`) and its filter group.
#[derive(Clone, Debug)]
struct Spec {
    dag: Dag,
    listens: u8,
    group: u8,
}

fn spec() -> impl Strategy<Value = Spec> {
    (dag(), 0u8..4, 0u8..2).prop_map(|(dag, listens, group)| Spec {
        dag,
        listens,
        group,
    })
}

/// A call of a case.
#[derive(Clone, Debug)]
enum Op {
    /// UpdateAction of action `node` (past the last: an unknown node) of execution `exec`
    /// (modulo the number of executions); `expected`: none, the current revision (0) or
    /// a stale one (1).
    Update {
        exec: usize,
        node: usize,
        to: ActionStatus,
        expected: Option<u8>,
    },
    /// StopExecution.
    Stop { exec: usize },
    /// StopExecutions of `EVENTS[event]`, with execution_data `{"g": filter}` if given.
    StopMany { event: usize, filter: Option<u8> },
}

fn status() -> impl Strategy<Value = ActionStatus> {
    use ActionStatus::*;
    prop_oneof![
        4 => Just(Scheduled),
        6 => Just(Running),
        6 => Just(Completed),
        2 => Just(Failed),
        1 => Just(Idle),
        1 => Just(Stopped),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (0usize..3, 0usize..6, status(), prop::option::weighted(0.15, 0u8..2))
            .prop_map(|(exec, node, to, expected)| Op::Update { exec, node, to, expected }),
        1 => (0usize..3).prop_map(|exec| Op::Stop { exec }),
        1 => (0usize..3, prop::option::of(0u8..2))
            .prop_map(|(event, filter)| Op::StopMany { event, filter }),
    ]
}

fn case() -> impl Strategy<Value = (Vec<Spec>, Vec<Op>)> {
    (
        prop::collection::vec(spec(), 1..=3),
        prop::collection::vec(op(), 1..40),
    )
}

// ---------------------------------------------------------------------------------------
// Driving the server.

/// A tenant no other case uses, so StopExecutions of one case touches only its own.
fn fresh_tenant() -> String {
    format!("model-{:016x}", rand::random::<u64>())
}

async fn start_spec(client: &mut Client, tenant: &str, spec: &Spec) -> pb::Execution {
    let mut data = serde_json::Map::new();
    data.insert("g".into(), spec.group.into());
    client
        .start_execution(pb::StartExecutionRequest {
            key: "model".into(),
            name: "model".into(),
            user_key: tenant.into(),
            template: Some(spec.dag.template()),
            execution_data: Some(to_struct(&serde_json::Value::Object(data))),
            stop_events: Model::new(&spec.dag, spec.listens, spec.group)
                .listens
                .iter()
                .map(|e| (*e).to_owned())
                .collect(),
            ..Default::default()
        })
        .await
        .expect("start")
        .into_inner()
}

fn update_request(
    id: &str,
    node: usize,
    to: ActionStatus,
    expected: i64,
) -> pb::UpdateActionRequest {
    pb::UpdateActionRequest {
        expected_revision: expected,
        ..report(id, &format!("n{node}"), to)
    }
}

fn stop_many_request(tenant: &str, event: usize, filter: Option<u8>) -> pb::StopExecutionsRequest {
    pb::StopExecutionsRequest {
        stop_event: EVENTS[event].into(),
        user_key: tenant.into(),
        filters: filter.map(|g| to_struct(&serde_json::json!({ "g": g }))),
        reason: format!("event {}", EVENTS[event]),
        ..Default::default()
    }
}

/// Compares a server's answer with the model's: both refused alike, or both OK (the
/// caller then compares the states).
fn same_outcome<T>(
    step: usize,
    got: &Result<T, tonic::Status>,
    want: &Result<Effect, Refusal>,
) -> Result<(), String> {
    match (got, want) {
        (Ok(_), Ok(_)) => Ok(()),
        (Err(status), Err((code, reason)))
            if status.code() == *code && error_reason(status) == *reason =>
        {
            Ok(())
        }
        (got, want) => Err(format!(
            "step {step}: server {:?}, model {want:?}",
            got.as_ref()
                .map(|_| "OK")
                .map_err(|s| (s.code(), error_reason(s)))
        )),
    }
}

/// Runs one case against the server and the model, step by step.
async fn run_case(client: &mut Client, specs: &[Spec], ops: &[Op]) -> Result<(), String> {
    let tenant = fresh_tenant();
    let mut ids = Vec::new();
    let mut models = Vec::new();
    for spec in specs {
        let started = start_spec(client, &tenant, spec).await;
        let model = Model::new(&spec.dag, spec.listens, spec.group);
        model.check(&started).map_err(|e| format!("start: {e}"))?;
        ids.push(started.id);
        models.push(model);
    }
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Update {
                exec,
                node,
                to,
                expected,
            } => {
                let i = exec % ids.len();
                let model = &mut models[i];
                let expected_revision = match expected {
                    None => 0,
                    Some(0) => model.revision,
                    Some(_) => model.revision - 1,
                };
                let want = model.update(
                    node.min(model.actions.len()),
                    to,
                    (expected_revision != 0).then_some(expected_revision),
                );
                let request = update_request(
                    &ids[i],
                    node.min(model.actions.len()),
                    to,
                    expected_revision,
                );
                let got = client.update_action(request).await;
                same_outcome(step, &got, &want)?;
                if let Ok(e) = got {
                    model
                        .check(e.get_ref())
                        .map_err(|e| format!("step {step}: {e}"))?;
                }
            }
            Op::Stop { exec } => {
                let i = exec % ids.len();
                let want = models[i].stop("model stop");
                let got = client
                    .stop_execution(stop_request(&ids[i], "model stop"))
                    .await;
                same_outcome(step, &got, &want)?;
                if let Ok(e) = got {
                    models[i]
                        .check(e.get_ref())
                        .map_err(|e| format!("step {step}: {e}"))?;
                }
            }
            Op::StopMany { event, filter } => {
                let reason = format!("event {}", EVENTS[event]);
                let mut want = BTreeMap::new();
                for (model, id) in models.iter_mut().zip(&ids) {
                    if model.stopped_by(EVENTS[event], filter) {
                        model.stop(&reason).map_err(|e| format!("model: {e:?}"))?;
                        want.insert(id.clone(), model.revision);
                    }
                }
                let got = client
                    .stop_executions(stop_many_request(&tenant, event, filter))
                    .await
                    .map_err(|s| format!("step {step}: StopExecutions {s:?}"))?
                    .into_inner();
                let stopped: BTreeMap<String, i64> = got
                    .executions
                    .iter()
                    .map(|e| (e.id.clone(), e.revision))
                    .collect();
                if got.matched_count != want.len() as i64
                    || got.stopped_count != want.len() as i64
                    || stopped != want
                {
                    return Err(format!(
                        "step {step}: StopExecutions answered {got:?}, model {want:?}"
                    ));
                }
            }
        }
    }
    // The stored state of every execution, read back.
    for (model, id) in models.iter().zip(&ids) {
        let stored = get(client, id).await;
        model
            .check(&stored)
            .map_err(|e| format!("after the last step: {e}"))?;
    }
    Ok(())
}

/// Runs proptest on `strategy` with `test` on the current multi-thread runtime, failing
/// the test with the minimal failing case.
fn run_property<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), String>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |value| test(value).map_err(TestCaseError::fail));
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

/// Every answer the server gives to a random sequence of starts, updates, stops and
/// stop events equals the reference model's, step by step (failing cases shrink).
async fn model_serial(server: &TestServer) {
    let handle = tokio::runtime::Handle::current();
    let client = server.new_client().await;
    run_property(32, case(), |(specs, ops)| {
        let mut client = client.clone();
        tokio::task::block_in_place(|| handle.block_on(run_case(&mut client, &specs, &ops)))
    });
}

/// Fixed sequences: ones a shrunk failure would become, and the paths through readiness
/// the random search reaches rarely (a join opened by one branch, an action with no
/// incoming edge, a stop event sparing the finished and the unmatched).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn model_fixed_sequences() {
    use ActionStatus::*;
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    let join = Dag {
        preds: vec![vec![None], vec![None], vec![Some(0), Some(1)], vec![]],
    };
    let up = |node, to| Op::Update {
        exec: 0,
        node,
        to,
        expected: None,
    };
    let specs = vec![Spec {
        dag: join.clone(),
        listens: 1,
        group: 0,
    }];
    let ops = vec![
        up(2, Running),
        up(0, Running),
        up(0, Completed),
        up(2, Scheduled),
        up(2, Scheduled),
        up(1, Failed),
        up(3, Running),
        up(3, Completed),
        up(2, Running),
        up(2, Completed),
        up(2, Failed),
        Op::Stop { exec: 0 },
        up(9, Running),
    ];
    run_case(&mut client, &specs, &ops).await.unwrap();
    let specs = vec![
        Spec {
            dag: join,
            listens: 3,
            group: 0,
        },
        Spec {
            dag: Dag {
                preds: vec![vec![None]],
            },
            listens: 1,
            group: 1,
        },
    ];
    let ops = vec![
        Op::Update {
            exec: 1,
            node: 0,
            to: Failed,
            expected: Some(0),
        },
        Op::StopMany {
            event: 0,
            filter: None,
        },
        Op::StopMany {
            event: 1,
            filter: Some(0),
        },
        up(0, Running),
        Op::Stop { exec: 1 },
    ];
    run_case(&mut client, &specs, &ops).await.unwrap();
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// The concurrent variant.

/// An acknowledged call of the concurrent run, on execution `exec`.
#[derive(Debug)]
enum Acked {
    /// An UpdateAction or StopExecution that answered OK with this execution.
    Answer {
        exec: usize,
        execution: Box<pb::Execution>,
    },
    /// An execution StopExecutions stopped, at this revision.
    Stopped { exec: usize, revision: i64 },
}

/// A change read back from history: one revision's events.
#[derive(Debug)]
enum Change {
    Update { node: usize, to: ActionStatus },
    Stop { reason: String },
}

async fn history(client: &mut Client, id: &str) -> BTreeMap<i64, Vec<pb::ExecutionEvent>> {
    let mut by_revision: BTreeMap<i64, Vec<pb::ExecutionEvent>> = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_execution_events(pb::ListExecutionEventsRequest {
                execution_id: id.into(),
                page_size: 500,
                page_token,
                order: pb::SortOrder::Ascending as i32,
            })
            .await
            .expect("list events")
            .into_inner();
        for event in page.events {
            by_revision.entry(event.revision).or_default().push(event);
        }
        if page.next_page_token.is_empty() {
            return by_revision;
        }
        page_token = page.next_page_token;
    }
}

fn change_of(events: &[pb::ExecutionEvent]) -> Result<Change, String> {
    use pb::ExecutionEventKind as K;
    if let Some(stop) = events.iter().find(|e| e.kind() == K::ExecutionStopped) {
        return Ok(Change::Stop {
            reason: stop.stop_reason.clone(),
        });
    }
    let moved: Vec<&pb::ExecutionEvent> = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind(),
                K::ActionScheduled | K::ActionStarted | K::ActionCompleted | K::ActionFailed
            )
        })
        .collect();
    match moved.as_slice() {
        [one] => Ok(Change::Update {
            node: one.node_id[1..]
                .parse()
                .map_err(|_| format!("node {}", one.node_id))?,
            to: one.to_status(),
        }),
        _ => Err(format!("not one change: {events:?}")),
    }
}

/// Several clients on a few executions at once: each execution's history replays through
/// the model as a serial order of legal steps ending at the stored state, every
/// acknowledged answer is the replayed state at its revision, and every change is the
/// answer of exactly one acknowledged call.
async fn model_concurrent(server: &TestServer) {
    let mut runner = TestRunner::new(Config::default());
    let mut client = server.client.clone();
    for round in 0..4 {
        let tenant = fresh_tenant();
        let specs: Vec<Spec> = (0..2)
            .map(|_| spec().new_tree(&mut runner).unwrap().current())
            .collect();
        let mut ids = Vec::new();
        for spec in &specs {
            ids.push(start_spec(&mut client, &tenant, spec).await.id);
        }
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let ops: Vec<Op> = prop::collection::vec(op(), 25)
                .new_tree(&mut runner)
                .unwrap()
                .current();
            let (mut client, ids, tenant) =
                (server.new_client().await, ids.clone(), tenant.clone());
            workers.spawn(async move {
                let mut acked = Vec::new();
                for op in ops {
                    match op {
                        Op::Update { exec, node, to, .. } => {
                            let exec = exec % ids.len();
                            match client
                                .update_action(update_request(&ids[exec], node, to, 0))
                                .await
                            {
                                Ok(e) => acked.push(Acked::Answer {
                                    exec,
                                    execution: Box::new(e.into_inner()),
                                }),
                                Err(s) => assert!(
                                    matches!(s.code(), Code::FailedPrecondition | Code::NotFound),
                                    "{s:?}"
                                ),
                            }
                        }
                        Op::Stop { exec } => {
                            let exec = exec % ids.len();
                            match client
                                .stop_execution(stop_request(&ids[exec], "model stop"))
                                .await
                            {
                                Ok(e) => acked.push(Acked::Answer {
                                    exec,
                                    execution: Box::new(e.into_inner()),
                                }),
                                Err(s) => assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}"),
                            }
                        }
                        Op::StopMany { event, filter } => {
                            let answer = client
                                .stop_executions(stop_many_request(&tenant, event, filter))
                                .await
                                .expect("StopExecutions")
                                .into_inner();
                            for stopped in answer.executions {
                                let exec = ids.iter().position(|id| *id == stopped.id).unwrap();
                                acked.push(Acked::Stopped {
                                    exec,
                                    revision: stopped.revision,
                                });
                            }
                        }
                    }
                }
                acked
            });
        }
        let mut acked = Vec::new();
        while let Some(done) =
            tokio::time::timeout(std::time::Duration::from_secs(60), workers.join_next())
                .await
                .expect("workers finish within 60 s")
        {
            acked.extend(done.expect("worker"));
        }

        for (exec, (spec, id)) in specs.iter().zip(&ids).enumerate() {
            let events = history(&mut client, id).await;
            let stored = get(&mut client, id).await;
            let mut model = Model::new(&spec.dag, spec.listens, spec.group);
            // Replay: each revision one legal step; the model's state after each kept.
            let mut states = BTreeMap::from([(1, model.clone())]);
            for (&revision, events) in events.range(2..) {
                let change = change_of(events).unwrap();
                let effect = match &change {
                    Change::Update { node, to } => model.update(*node, *to, None),
                    Change::Stop { reason } => model.stop(reason),
                };
                assert_eq!(
                    effect,
                    Ok(Effect::Changed),
                    "round {round}: revision {revision} of {id} ({change:?}) is no legal serial step"
                );
                assert_eq!(model.revision, revision, "revisions without a gap");
                states.insert(revision, model.clone());
            }
            model
                .check(&stored)
                .unwrap_or_else(|e| panic!("round {round}: replay ends elsewhere: {e}"));
            // Every acknowledged answer is the serial state at its revision.
            let answers: Vec<i64> = acked
                .iter()
                .filter_map(|ack| match ack {
                    Acked::Answer { exec: e, execution } if *e == exec => {
                        states[&execution.revision]
                            .check(execution)
                            .unwrap_or_else(|err| {
                                panic!("round {round}: an answer no serial order gives: {err}")
                            });
                        Some(execution.revision)
                    }
                    _ => None,
                })
                .collect();
            let stops: Vec<i64> = acked
                .iter()
                .filter_map(|ack| match ack {
                    Acked::Stopped { exec: e, revision } if *e == exec => Some(*revision),
                    _ => None,
                })
                .collect();
            // Every change was answered: a stop event's by exactly the one StopExecutions
            // that reports it, any other by at least one call answering that revision
            // (its maker; a no-op repeating the change answers it too).
            for (&revision, events) in events.range(2..) {
                let by_event = stops.iter().filter(|&&r| r == revision).count();
                match change_of(events).unwrap() {
                    Change::Stop { reason } if reason.starts_with("event ") => assert_eq!(
                        by_event, 1,
                        "round {round}: stop event at revision {revision} of {id} reported {by_event} times"
                    ),
                    change => {
                        assert_eq!(
                            by_event, 0,
                            "round {round}: {change:?} at {revision} reported as a stop event"
                        );
                        assert!(
                            answers.contains(&revision),
                            "round {round}: revision {revision} of {id} ({change:?}) answered to no call"
                        );
                    }
                }
            }
        }
    }
}
