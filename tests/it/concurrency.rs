//! Many concurrent UpdateAction and StopExecution calls on the same executions, repeated:
//! afterwards every execution is consistent and its revision counts exactly the applied
//! changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::db_tests;
use crate::harness::*;
use executions::proto::v1 as pb;
use rand::Rng;
use tonic::Code;

db_tests!(concurrent_workers_and_stoppers_leave_every_execution_consistent);

/// start -> a, b, c -> d: three parallel actions and a join.
fn fork_and_join() -> pb::Template {
    pb::Template {
        nodes: vec![
            node("start_of_workflow", "Start"),
            node("a", "Http"),
            node("b", "Http"),
            node("c", "Http"),
            node("d", "Email"),
        ],
        edges: vec![
            edge("start_of_workflow", "a"),
            edge("start_of_workflow", "b"),
            edge("start_of_workflow", "c"),
            edge("a", "d"),
            edge("b", "d"),
            edge("c", "d"),
        ],
        ..Default::default()
    }
}

/// Per execution: one worker per action drives it SCHEDULED -> RUNNING -> COMPLETED (now
/// and then FAILED), retrying while it is not ready; for half of the executions two
/// stoppers race to stop it. Every OK from a worker is a real change (no one else moves
/// that action), and at most one stop applies, so the final revision must be
/// 1 + worker OKs + (1 if stopped). No call may end in INTERNAL or UNKNOWN.
async fn concurrent_workers_and_stoppers_leave_every_execution_consistent(server: &TestServer) {
    const EXECUTIONS: usize = 6;
    const ROUNDS: usize = 3;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(server.new_client().await);
    }
    for round in 0..ROUNDS {
        let mut executions = Vec::new();
        for i in 0..EXECUTIONS {
            let n = clients.len();
            executions.push(
                start(
                    &mut clients[i % n],
                    &format!("race-{round}"),
                    fork_and_join(),
                )
                .await,
            );
        }
        let mut tasks = Vec::new();
        let mut applied = Vec::new();
        for (i, execution) in executions.iter().enumerate() {
            let oks = Arc::new(AtomicI64::new(0));
            let stop_oks = Arc::new(AtomicI64::new(0));
            applied.push((execution.id.clone(), oks.clone(), stop_oks.clone()));
            for (j, node_id) in ["a", "b", "c", "d"].into_iter().enumerate() {
                let mut client = clients[(i + j) % clients.len()].clone();
                let id = execution.id.clone();
                let oks = oks.clone();
                tasks.push(tokio::spawn(async move {
                    work(&mut client, &id, node_id, &oks).await
                }));
            }
            if i % 2 == 0 {
                for k in 0..2 {
                    let mut client = clients[(i + k) % clients.len()].clone();
                    let id = execution.id.clone();
                    let stop_oks = stop_oks.clone();
                    tasks.push(tokio::spawn(async move {
                        let delay = rand::rng().random_range(0..15);
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                        match client
                            .stop_execution(pb::StopExecutionRequest {
                                id,
                                reason: format!("stopper {k}"),
                                ..Default::default()
                            })
                            .await
                        {
                            Ok(_) => {
                                stop_oks.fetch_add(1, Ordering::SeqCst);
                                Ok(())
                            }
                            Err(s) if s.code() == Code::FailedPrecondition => Ok(()),
                            Err(s) => Err(format!("stop: {s:?}")),
                        }
                    }));
                }
            }
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        for (id, oks, stop_oks) in applied {
            let e = get(&mut clients[0], &id).await;
            assert_consistent(&e);
            let stopped = e.status() == ExecutionStatus::Stopped;
            assert_eq!(
                stopped,
                stop_oks.load(Ordering::SeqCst) > 0,
                "{id}: stopped iff a stop succeeded"
            );
            let expected = 1 + oks.load(Ordering::SeqCst) + i64::from(stopped);
            assert_eq!(
                e.revision, expected,
                "{id}: revision counts exactly the applied changes"
            );
            if !stopped {
                assert!(
                    e.status() != ExecutionStatus::Running,
                    "{id}: every worker finished, so did the execution"
                );
            }
        }
    }
}

/// One worker: moves `node_id` forward until it finishes, the execution finishes, or the
/// execution is stopped. Counts the calls that applied.
async fn work(client: &mut Client, id: &str, node_id: &str, oks: &AtomicI64) -> Result<(), String> {
    let fail = rand::rng().random_bool(0.15);
    let steps: &[ActionStatus] = if fail {
        &[ActionStatus::Scheduled, ActionStatus::Failed]
    } else {
        &[
            ActionStatus::Scheduled,
            ActionStatus::Running,
            ActionStatus::Completed,
        ]
    };
    for step in steps {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match client.update_action(report(id, node_id, *step)).await {
                Ok(_) => {
                    oks.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Err(s) if s.code() == Code::FailedPrecondition => {
                    let reason = error_reason(&s);
                    match reason.as_str() {
                        "ACTION_NOT_READY" if attempts < 5_000 => {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        "EXECUTION_STOPPED" | "EXECUTION_ALREADY_FINISHED" => return Ok(()),
                        other => {
                            return Err(format!("{node_id} {step:?}: unexpected {other}: {s:?}"));
                        }
                    }
                }
                Err(s) => return Err(format!("{node_id} {step:?}: {s:?}")),
            }
        }
    }
    Ok(())
}
