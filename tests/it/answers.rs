//! Answers tell the truth: no error hides a committed change (an execution that could
//! outgrow a message is refused before it is stored, so every later answer fits), and
//! NOT_FOUND names what the caller sent.

use executions::grpc::{Limits, ServerConfig};
use executions::proto::v1 as pb;
use tonic::Code;

use crate::db_tests;
use crate::harness::*;

/// The message limit of the tests below: small, so that the boundary is cheap to reach.
const LIMIT: usize = 64 * 1024;
/// Actions of the execution driven to its largest form.
const ACTIONS: usize = 20;

fn tight() -> ServerConfig {
    ServerConfig {
        limits: Limits {
            max_message_bytes: LIMIT,
            ..Limits::default()
        },
        ..test_config()
    }
}

db_tests!(config = super::tight; an_execution_that_could_outgrow_a_message_is_refused_before_it_is_stored);

/// A start of `ACTIONS` parallel actions whose first node carries `blob` bytes of data.
fn start_with_blob(blob: usize) -> pb::StartExecutionRequest {
    let mut template = fan(ACTIONS);
    template.nodes[1].data = Some(to_struct(&serde_json::json!({ "blob": "x".repeat(blob) })));
    pb::StartExecutionRequest {
        key: "boundary".into(),
        template: Some(template),
        ..Default::default()
    }
}

/// At the boundary: the largest data that StartExecution takes makes an execution whose
/// every later form still fits (every action scheduled, run and failed with a 1,024-byte
/// note, the execution read whole and watched, and stopped with the longest reason,
/// every answer OK), while one byte more is refused with INVALID_ARGUMENT
/// `EXECUTION_TOO_LARGE` naming the template, and stores nothing.
async fn an_execution_that_could_outgrow_a_message_is_refused_before_it_is_stored(
    server: &TestServer,
) {
    let mut client = server.client.clone();
    // The largest blob taken, by bisection: `taken` is accepted, `refused` is not.
    let (mut taken, mut refused) = (0, LIMIT);
    let mut started = Vec::new();
    while refused - taken > 1 {
        let blob = (taken + refused) / 2;
        match client.start_execution(start_with_blob(blob)).await {
            Ok(e) => {
                taken = blob;
                started.push(e.into_inner());
            }
            Err(err) => {
                assert_error(
                    &err,
                    Code::InvalidArgument,
                    "EXECUTION_TOO_LARGE",
                    Some("template"),
                );
                refused = blob;
            }
        }
    }
    let err = client
        .start_execution(start_with_blob(taken + 1))
        .await
        .unwrap_err();
    assert_error(
        &err,
        Code::InvalidArgument,
        "EXECUTION_TOO_LARGE",
        Some("template"),
    );
    let stored = client
        .list_executions(pb::ListExecutionsRequest {
            page_size: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        stored.executions.len(),
        started.len(),
        "refused starts stored nothing"
    );

    // The largest one taken, driven to (nearly) its largest form.
    let e = client
        .start_execution(start_with_blob(taken))
        .await
        .expect("the boundary is stable")
        .into_inner();
    let note = "é".repeat(512); // 1,024 bytes of UTF-8, the most a note may have
    let mut last = e.clone();
    for i in 0..ACTIONS {
        let node = format!("p{i}");
        update(&mut client, &e.id, &node, ActionStatus::Scheduled).await;
        update(&mut client, &e.id, &node, ActionStatus::Running).await;
        if i + 1 < ACTIONS {
            let mut fail = report(&e.id, &node, ActionStatus::Failed);
            fail.failure_note = note.clone();
            last = client
                .update_action(fail)
                .await
                .expect("the answer fits")
                .into_inner();
        }
    }
    assert_eq!(last.failed_actions_count as usize, ACTIONS - 1);
    let stopped = client
        .stop_execution(stop_request(&e.id, &"ü".repeat(1_024)))
        .await
        .expect("the answer of the stop fits")
        .into_inner();
    assert_eq!(stopped.status(), ExecutionStatus::Stopped);
    let read = get(&mut client, &e.id).await;
    assert_eq!(read.revision, stopped.revision);
    let mut events = watch(&mut client, &e.id, 0).await.expect("watch opens");
    let snapshot = next(&mut events)
        .await
        .unwrap()
        .expect("a snapshot that fits");
    assert_eq!(snapshot.revision, stopped.revision);
}

/// NOT_FOUND names the execution as the caller sent it, for hashids that encode no
/// execution and for near misses of a real hashid alike (never another hashid).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_names_what_the_caller_sent() {
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    let e = start(&mut client, "named", chain(1)).await;
    let h = e.hashid.clone();
    for sent in [
        "aaaaa".to_owned(),
        "zzzzzzzzzz".to_owned(),
        format!("{h}a"),
        format!("a{h}"),
        "0199b7a3-b994-7588-82bf-549a3600bc27".to_owned(),
    ] {
        let err = client.get_execution(get_request(&sent)).await.unwrap_err();
        assert_error(&err, Code::NotFound, "EXECUTION_NOT_FOUND", None);
        assert_eq!(err.message(), format!("execution {sent} not found"));
    }
    server.stop().await;
}
