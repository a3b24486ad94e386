//! Bad input, table-driven: every case gets the right code, ErrorInfo reason and (for bad
//! fields) BadRequest field, and changes nothing that is stored.

use crate::db_tests;
use crate::harness::*;
use executions::proto::v1 as pb;
use tonic::Code::InvalidArgument;
use tonic::{Code, Status};

db_tests!(every_bad_request_is_refused_and_changes_nothing);

/// A message that does not decode (a string field that is not UTF-8) is INVALID_ARGUMENT
/// with reason MALFORMED_MESSAGE, not INTERNAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_does_not_decode_is_invalid_argument() {
    /// GetExecutionRequest's field 1 as bytes, so it can carry invalid UTF-8.
    #[derive(Clone, PartialEq, prost::Message)]
    struct RawGet {
        #[prost(bytes = "vec", tag = "1")]
        id: Vec<u8>,
    }
    let server = TestServer::builder().start().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/workflow.executions.v1.ExecutionService/GetExecution",
    );
    let codec = tonic_prost::ProstCodec::<RawGet, pb::Execution>::default();
    let status = grpc
        .unary(
            tonic::Request::new(RawGet {
                id: vec![0xff, 0xfe, 0x00],
            }),
            path,
            codec,
        )
        .await
        .unwrap_err();
    assert_error(&status, InvalidArgument, "MALFORMED_MESSAGE", None);
    server.stop().await;
}

enum Call {
    Get(pb::GetExecutionRequest),
    List(pb::ListExecutionsRequest),
    Stop(pb::StopExecutionRequest),
    Start(pb::StartExecutionRequest),
    Update(pb::UpdateActionRequest),
}

struct Case {
    name: String,
    call: Call,
    code: Code,
    reason: &'static str,
    field: Option<&'static str>,
}

fn case(
    name: impl Into<String>,
    call: Call,
    code: Code,
    reason: &'static str,
    field: Option<&'static str>,
) -> Case {
    Case {
        name: name.into(),
        call,
        code,
        reason,
        field,
    }
}

async fn invoke(client: &mut Client, call: Call) -> Result<(), Status> {
    match call {
        Call::Get(r) => client.get_execution(r).await.map(drop),
        Call::List(r) => client.list_executions(r).await.map(drop),
        Call::Stop(r) => client.stop_execution(r).await.map(drop),
        Call::Start(r) => client.start_execution(r).await.map(drop),
        Call::Update(r) => client.update_action(r).await.map(drop),
    }
}

/// Everything stored, in full.
async fn snapshot(client: &mut Client) -> Vec<pb::Execution> {
    client
        .list_executions(pb::ListExecutionsRequest {
            page_size: 500,
            view: ExecutionView::Full as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .executions
}

fn get_call(id: &str) -> Call {
    Call::Get(pb::GetExecutionRequest {
        id: id.into(),
        ..Default::default()
    })
}

fn list(edit: impl FnOnce(&mut pb::ListExecutionsRequest)) -> Call {
    let mut r = pb::ListExecutionsRequest::default();
    edit(&mut r);
    Call::List(r)
}

fn start_call(edit: impl FnOnce(&mut pb::StartExecutionRequest)) -> Call {
    let mut r = example("fork_join.json");
    edit(&mut r);
    Call::Start(r)
}

fn template(r: &mut pb::StartExecutionRequest) -> &mut pb::Template {
    r.template.as_mut().unwrap()
}

fn upd(
    id: &str,
    node: &str,
    status: ActionStatus,
    edit: impl FnOnce(&mut pb::UpdateActionRequest),
) -> Call {
    let mut r = report(id, node, status);
    edit(&mut r);
    Call::Update(r)
}

fn stop(id: &str, reason: &str) -> Call {
    Call::Stop(pb::StopExecutionRequest {
        id: id.into(),
        reason: reason.into(),
        ..Default::default()
    })
}

/// More than 30 kinds of bad request across Get, List, Stop, Start and UpdateAction (plus
/// every refused transition) each get the documented code and reason, and leave every
/// stored execution exactly as it was.
async fn every_bad_request_is_refused_and_changes_nothing(server: &TestServer) {
    use ActionStatus::*;
    use Code::*;
    let mut client = server.client.clone();

    // A running execution with an action in each status: account COMPLETED, laptop FAILED,
    // welcome SCHEDULED, workspace RUNNING, notify IDLE (and not ready).
    let running = start_example(&mut client, "fork_join.json").await;
    let r = running.id.clone();
    for (node, status) in [
        ("account", Running),
        ("account", Completed),
        ("laptop", Failed),
        ("welcome", Scheduled),
        ("workspace", Running),
    ] {
        update(&mut client, &r, node, status).await;
    }
    let completed = start(&mut client, "done", chain(1)).await;
    update(&mut client, &completed.id, "a1", Running).await;
    update(&mut client, &completed.id, "a1", Completed).await;
    let stopped = start(&mut client, "halted", chain(2)).await;
    client
        .stop_execution(stop_request(&stopped.id, ""))
        .await
        .unwrap();
    let token = client
        .list_executions(pb::ListExecutionsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());
    let unknown_uuid = uuid::Uuid::now_v7().to_string();
    let ts = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });

    let mut cases = vec![
        // GetExecution
        case(
            "get: empty id",
            get_call(""),
            InvalidArgument,
            "INVALID_ID",
            Some("id"),
        ),
        case(
            "get: garbage id",
            get_call("not an id!"),
            InvalidArgument,
            "INVALID_ID",
            Some("id"),
        ),
        case(
            "get: uppercase hashid",
            get_call("ABCDE"),
            InvalidArgument,
            "INVALID_ID",
            Some("id"),
        ),
        case(
            "get: too short",
            get_call("abc"),
            InvalidArgument,
            "INVALID_ID",
            Some("id"),
        ),
        case(
            "get: unknown uuid",
            get_call(&unknown_uuid),
            NotFound,
            "EXECUTION_NOT_FOUND",
            None,
        ),
        case(
            "get: unknown hashid",
            get_call("zzzzzzzz"),
            NotFound,
            "EXECUTION_NOT_FOUND",
            None,
        ),
        case(
            "get: unknown time zone",
            Call::Get(pb::GetExecutionRequest {
                id: r.clone(),
                time_zone: "Mars/Olympus_Mons".into(),
                ..Default::default()
            }),
            InvalidArgument,
            "INVALID_TIME_ZONE",
            Some("time_zone"),
        ),
        case(
            "get: unknown view",
            Call::Get(pb::GetExecutionRequest {
                id: r.clone(),
                view: 42,
                ..Default::default()
            }),
            InvalidArgument,
            "INVALID_VIEW",
            Some("view"),
        ),
        // ListExecutions
        case(
            "list: negative page size",
            list(|l| l.page_size = -1),
            InvalidArgument,
            "INVALID_PAGE_SIZE",
            Some("page_size"),
        ),
        case(
            "list: token that does not decode",
            list(|l| l.page_token = "bm90IGEgdG9rZW4".into()),
            InvalidArgument,
            "INVALID_PAGE_TOKEN",
            Some("page_token"),
        ),
        case(
            "list: token with bad characters",
            list(|l| l.page_token = "%%%".into()),
            InvalidArgument,
            "INVALID_PAGE_TOKEN",
            Some("page_token"),
        ),
        case(
            "list: token reused with another filter",
            list(|l| {
                l.page_token = token.clone();
                l.key = "other".into();
            }),
            InvalidArgument,
            "PAGE_TOKEN_FILTER_MISMATCH",
            Some("page_token"),
        ),
        case(
            "list: token reused with another status filter",
            list(|l| {
                l.page_token = token.clone();
                l.statuses = vec![ExecutionStatus::Running as i32];
            }),
            InvalidArgument,
            "PAGE_TOKEN_FILTER_MISMATCH",
            Some("page_token"),
        ),
        case(
            "list: token reused with another order",
            list(|l| {
                l.page_token = token.clone();
                l.order_by = "created_at asc".into();
            }),
            InvalidArgument,
            "PAGE_TOKEN_FILTER_MISMATCH",
            Some("page_token"),
        ),
        case(
            "list: unknown order",
            list(|l| l.order_by = "name".into()),
            InvalidArgument,
            "INVALID_ORDER_BY",
            Some("order_by"),
        ),
        case(
            "list: unspecified status",
            list(|l| l.statuses = vec![1, 0]),
            InvalidArgument,
            "INVALID_STATUS",
            Some("statuses[1]"),
        ),
        case(
            "list: unknown status number",
            list(|l| l.statuses = vec![9]),
            InvalidArgument,
            "INVALID_STATUS",
            Some("statuses[0]"),
        ),
        case(
            "list: empty time range",
            list(|l| {
                l.created_after = ts(2_000_000_000);
                l.created_before = ts(1_000_000_000);
            }),
            InvalidArgument,
            "INVALID_TIME_RANGE",
            Some("created_before"),
        ),
        case(
            "list: invalid timestamp",
            list(|l| {
                l.created_after = Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -5,
                })
            }),
            InvalidArgument,
            "INVALID_TIMESTAMP",
            Some("created_after"),
        ),
        case(
            "list: unknown time zone",
            list(|l| l.time_zone = "Nowhere".into()),
            InvalidArgument,
            "INVALID_TIME_ZONE",
            Some("time_zone"),
        ),
        case(
            "list: empty execution_data key",
            list(|l| l.execution_data = Some(to_struct(&serde_json::json!({"": 1})))),
            InvalidArgument,
            "INVALID_EXECUTION_DATA_FILTER",
            Some("execution_data"),
        ),
        // StartExecution
        case(
            "start: no template",
            start_call(|s| s.template = None),
            InvalidArgument,
            "TEMPLATE_MISSING",
            Some("template"),
        ),
        case(
            "start: empty key",
            start_call(|s| s.key.clear()),
            InvalidArgument,
            "INVALID_KEY",
            Some("key"),
        ),
        case(
            "start: key too long",
            start_call(|s| s.key = "k".repeat(257)),
            InvalidArgument,
            "INVALID_KEY",
            Some("key"),
        ),
        case(
            "start: user_key too long",
            start_call(|s| s.user_key = "u".repeat(129)),
            InvalidArgument,
            "INVALID_USER_KEY",
            Some("user_key"),
        ),
        case(
            "start: request_id too long",
            start_call(|s| s.request_id = "r".repeat(129)),
            InvalidArgument,
            "INVALID_REQUEST_ID",
            Some("request_id"),
        ),
        case(
            "start: cycle",
            start_call(|s| template(s).edges.push(edge("notify", "account"))),
            InvalidArgument,
            "TEMPLATE_HAS_CYCLE",
            Some("template.edges"),
        ),
        case(
            "start: self loop",
            start_call(|s| template(s).edges.push(edge("laptop", "laptop"))),
            InvalidArgument,
            "TEMPLATE_HAS_CYCLE",
            Some("template.edges"),
        ),
        case(
            "start: two Start nodes",
            start_call(|s| template(s).nodes.push(node("start2", "Start"))),
            InvalidArgument,
            "TEMPLATE_START_NODE_COUNT",
            Some("template.nodes"),
        ),
        case(
            "start: no Start node",
            start_call(|s| template(s).nodes[0].r#type = "HttpRequest".into()),
            InvalidArgument,
            "TEMPLATE_START_NODE_COUNT",
            Some("template.nodes"),
        ),
        case(
            "start: dangling edge",
            start_call(|s| template(s).edges.push(edge("account", "ghost"))),
            InvalidArgument,
            "TEMPLATE_UNKNOWN_EDGE_NODE",
            Some("template.edges[7].target"),
        ),
        case(
            "start: edge into Start",
            start_call(|s| template(s).edges.push(edge("notify", "start_of_workflow"))),
            InvalidArgument,
            "TEMPLATE_EDGE_INTO_START",
            Some("template.edges[7].target"),
        ),
        case(
            "start: duplicate edge",
            start_call(|s| template(s).edges.push(edge("account", "welcome"))),
            InvalidArgument,
            "TEMPLATE_DUPLICATE_EDGE",
            Some("template.edges[7]"),
        ),
        case(
            "start: duplicate node id",
            start_call(|s| template(s).nodes.push(node("laptop", "HttpRequest"))),
            InvalidArgument,
            "TEMPLATE_DUPLICATE_NODE_ID",
            Some("template.nodes[6].id"),
        ),
        case(
            "start: 1,001 nodes",
            start_call(|s| {
                *template(s) = chain(1_000);
            }),
            InvalidArgument,
            "TEMPLATE_TOO_MANY_NODES",
            Some("template.nodes"),
        ),
        case(
            "start: node id too long",
            start_call(|s| template(s).nodes.push(node(&"n".repeat(65), "HttpRequest"))),
            InvalidArgument,
            "TEMPLATE_INVALID_NODE",
            Some("template.nodes[6].id"),
        ),
        case(
            "start: node without type",
            start_call(|s| template(s).nodes.push(node("typeless", ""))),
            InvalidArgument,
            "TEMPLATE_INVALID_NODE",
            Some("template.nodes[6].type"),
        ),
        case(
            "start: only a Start node",
            start_call(|s| {
                *template(s) = chain(0);
            }),
            InvalidArgument,
            "TEMPLATE_NO_ACTIONS",
            Some("template.nodes"),
        ),
        case(
            "start: execution_data over 1 MiB",
            start_call(|s| {
                s.execution_data =
                    Some(to_struct(&serde_json::json!({"blob": "x".repeat(1 << 20)})))
            }),
            InvalidArgument,
            "EXECUTION_DATA_TOO_LARGE",
            Some("execution_data"),
        ),
        case(
            "start: unknown time zone",
            start_call(|s| s.time_zone = "UTC+99".into()),
            InvalidArgument,
            "INVALID_TIME_ZONE",
            Some("time_zone"),
        ),
        // UpdateAction
        case(
            "update: malformed execution id",
            upd("??", "account", Running, |_| {}),
            InvalidArgument,
            "INVALID_ID",
            Some("execution_id"),
        ),
        case(
            "update: unknown execution",
            upd(&unknown_uuid, "account", Running, |_| {}),
            NotFound,
            "EXECUTION_NOT_FOUND",
            None,
        ),
        case(
            "update: unknown action",
            upd(&r, "ghost", Running, |_| {}),
            NotFound,
            "ACTION_NOT_FOUND",
            Some("node_id"),
        ),
        case(
            "update: the Start node",
            upd(&r, "start_of_workflow", Running, |_| {}),
            NotFound,
            "ACTION_NOT_FOUND",
            Some("node_id"),
        ),
        case(
            "update: empty node id",
            upd(&r, "", Running, |_| {}),
            InvalidArgument,
            "INVALID_NODE_ID",
            Some("node_id"),
        ),
        case(
            "update: unspecified status",
            upd(&r, "notify", Running, |u| u.status = 0),
            InvalidArgument,
            "INVALID_STATUS",
            Some("status"),
        ),
        case(
            "update: unknown status number",
            upd(&r, "notify", Running, |u| u.status = 77),
            InvalidArgument,
            "INVALID_STATUS",
            Some("status"),
        ),
        case(
            "update: SCHEDULED without scheduled_at",
            upd(&r, "notify", Scheduled, |u| u.scheduled_at = None),
            InvalidArgument,
            "MISSING_SCHEDULED_AT",
            Some("scheduled_at"),
        ),
        case(
            "update: RUNNING with scheduled_at",
            upd(&r, "welcome", Running, |u| u.scheduled_at = ts(5)),
            InvalidArgument,
            "UNEXPECTED_SCHEDULED_AT",
            Some("scheduled_at"),
        ),
        case(
            "update: FAILED without a note",
            upd(&r, "workspace", Failed, |u| u.failure_note.clear()),
            InvalidArgument,
            "MISSING_FAILURE_NOTE",
            Some("failure_note"),
        ),
        case(
            "update: note too long",
            upd(&r, "workspace", Failed, |u| {
                u.failure_note = "x".repeat(4_097)
            }),
            InvalidArgument,
            "INVALID_FAILURE_NOTE",
            Some("failure_note"),
        ),
        case(
            "update: COMPLETED with a note",
            upd(&r, "workspace", Completed, |u| u.failure_note = "?".into()),
            InvalidArgument,
            "UNEXPECTED_FAILURE_NOTE",
            Some("failure_note"),
        ),
        case(
            "update: negative expected_revision",
            upd(&r, "workspace", Completed, |u| u.expected_revision = -3),
            InvalidArgument,
            "INVALID_EXPECTED_REVISION",
            Some("expected_revision"),
        ),
        case(
            "update: stale expected_revision",
            upd(&r, "workspace", Completed, |u| u.expected_revision = 2),
            Aborted,
            "REVISION_MISMATCH",
            None,
        ),
        case(
            "update: not ready (RUNNING)",
            upd(&r, "notify", Running, |_| {}),
            FailedPrecondition,
            "ACTION_NOT_READY",
            None,
        ),
        case(
            "update: not ready (SCHEDULED)",
            upd(&r, "notify", Scheduled, |_| {}),
            FailedPrecondition,
            "ACTION_NOT_READY",
            None,
        ),
        case(
            "update: stopped execution",
            upd(&stopped.id, "a1", Running, |_| {}),
            FailedPrecondition,
            "EXECUTION_STOPPED",
            None,
        ),
        case(
            "update: completed execution",
            upd(&completed.hashid, "a1", Failed, |_| {}),
            FailedPrecondition,
            "EXECUTION_ALREADY_FINISHED",
            None,
        ),
        case(
            "update: unknown action on a stopped execution",
            upd(&stopped.id, "ghost", Running, |_| {}),
            FailedPrecondition,
            "EXECUTION_STOPPED",
            None,
        ),
        case(
            "update: NUL in the failure note",
            upd(&r, "workspace", Failed, |u| {
                u.failure_note = "bad\0note".into()
            }),
            InvalidArgument,
            "INVALID_FAILURE_NOTE",
            Some("failure_note"),
        ),
        case(
            "start: NUL in the key",
            start_call(|s| s.key = "wf\0".into()),
            InvalidArgument,
            "INVALID_KEY",
            Some("key"),
        ),
        case(
            "start: NUL in execution_data",
            start_call(|s| {
                s.execution_data = Some(to_struct(&serde_json::json!({"note": "a\0b"})))
            }),
            InvalidArgument,
            "INVALID_JSON",
            Some("execution_data"),
        ),
        case(
            "list: NUL in the key filter",
            list(|l| l.key = "k\0".into()),
            InvalidArgument,
            "INVALID_KEY",
            Some("key"),
        ),
        // StopExecution
        case(
            "stop: malformed id",
            stop("-", "x"),
            InvalidArgument,
            "INVALID_ID",
            Some("id"),
        ),
        case(
            "stop: unknown id",
            stop(&unknown_uuid, "x"),
            NotFound,
            "EXECUTION_NOT_FOUND",
            None,
        ),
        case(
            "stop: completed execution",
            stop(&completed.id, "late"),
            FailedPrecondition,
            "EXECUTION_ALREADY_FINISHED",
            None,
        ),
        case(
            "stop: reason too long",
            stop(&r, &"r".repeat(1_025)),
            InvalidArgument,
            "INVALID_REASON",
            Some("reason"),
        ),
    ];
    // Every refused transition from every status the running execution's actions are in.
    for (node, from) in [
        ("notify", Idle),
        ("welcome", Scheduled),
        ("workspace", Running),
        ("account", Completed),
        ("laptop", Failed),
    ] {
        for to in [Idle, Scheduled, Running, Completed, Failed, Stopped] {
            let allowed = matches!(
                (from, to),
                (Idle, Scheduled)
                    | (Idle | Scheduled, Running)
                    | (Running, Completed)
                    | (Idle | Scheduled | Running, Failed)
            );
            if from == to || allowed {
                continue;
            }
            cases.push(case(
                format!("update: refused transition {from:?} -> {to:?}"),
                upd(&r, node, to, |_| {}),
                FailedPrecondition,
                "INVALID_TRANSITION",
                None,
            ));
        }
    }
    assert!(cases.len() >= 30, "{} cases", cases.len());

    let before = snapshot(&mut client).await;
    for case in cases {
        let status = invoke(&mut client, case.call)
            .await
            .expect_err(&format!("{} must fail", case.name));
        assert_eq!(status.code(), case.code, "{}: {status:?}", case.name);
        assert_error(&status, case.code, case.reason, case.field);
        assert_eq!(
            snapshot(&mut client).await,
            before,
            "{} changed something",
            case.name
        );
    }
}
