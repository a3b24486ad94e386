//! Bad input, table-driven: every case gets the right code, ErrorInfo reason and (for bad
//! fields) BadRequest field, and changes nothing that is stored.

use crate::db_tests;
use crate::harness::*;
use executions::proto::v1 as pb;
use serde_json::json;
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
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
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

/// More than 30 kinds of bad request across Get, List, Stop, Start and UpdateAction (plus
/// every refused transition) each get the documented code and reason, with a message and
/// details of bounded size whatever was sent, and leave every stored execution exactly
/// as it was.
async fn every_bad_request_is_refused_and_changes_nothing(server: &TestServer) {
    let mut client = server.client.clone();
    let stored = Stored::seed(&mut client).await;
    let mut cases = bad_requests(&stored);
    cases.extend(refused_transitions(&stored.running));
    assert!(cases.len() >= 30, "{} cases", cases.len());

    let before = snapshot(&mut client).await;
    for case in cases {
        let status = invoke(&mut client, case.call)
            .await
            .expect_err(&format!("{} must fail", case.name));
        assert_eq!(status.code(), case.code, "{}: {status:?}", case.name);
        assert_error(&status, case.code, case.reason, case.field);
        // Whatever the caller sent, the error's headers stay small enough for default
        // clients (grpcio refuses metadata past 8 KiB): a bounded message, bounded details.
        assert!(
            status.message().len() <= 512 && status.details().len() <= 2048,
            "{}: message of {} bytes, details of {}",
            case.name,
            status.message().len(),
            status.details().len()
        );
        assert_eq!(
            snapshot(&mut client).await,
            before,
            "{} changed something",
            case.name
        );
    }
}

/// The bad requests, one per line: what it is, the call, and the code, ErrorInfo reason
/// and BadRequest field it must get.
#[rustfmt::skip]
fn bad_requests(stored: &Stored) -> Vec<Case> {
    use ActionStatus::*;
    use Code::*;
    let Stored { running: r, completed, stopped, page_token: token, events_token, unknown } = stored;
    let ts = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
    vec![
        // GetExecution
        case("get: empty id", get_call(""), InvalidArgument, "INVALID_ID", Some("id")),
        case("get: garbage id", get_call("not an id!"), InvalidArgument, "INVALID_ID", Some("id")),
        case("get: uppercase hashid", get_call("ABCDE"), InvalidArgument, "INVALID_ID", Some("id")),
        case("get: too short", get_call("abc"), InvalidArgument, "INVALID_ID", Some("id")),
        case("get: unknown uuid", get_call(unknown), NotFound, "EXECUTION_NOT_FOUND", None),
        case("get: unknown hashid", get_call("zzzzzzzz"), NotFound, "EXECUTION_NOT_FOUND", None),
        case("get: unknown time zone", get_with(r, |g| g.time_zone = "Mars/Olympus_Mons".into()), InvalidArgument, "INVALID_TIME_ZONE", Some("time_zone")),
        case("get: unknown view", get_with(r, |g| g.view = 42), InvalidArgument, "INVALID_VIEW", Some("view")),
        // ListExecutions
        case("list: negative page size", list(|l| l.page_size = -1), InvalidArgument, "INVALID_PAGE_SIZE", Some("page_size")),
        case("list: token that does not decode", list(|l| l.page_token = "bm90IGEgdG9rZW4".into()), InvalidArgument, "INVALID_PAGE_TOKEN", Some("page_token")),
        case("list: token with bad characters", list(|l| l.page_token = "%%%".into()), InvalidArgument, "INVALID_PAGE_TOKEN", Some("page_token")),
        case("list: token reused with another filter", list_after(token, |l| l.key = "other".into()), InvalidArgument, "PAGE_TOKEN_FILTER_MISMATCH", Some("page_token")),
        case("list: token reused with another status filter", list_after(token, |l| l.statuses = vec![ExecutionStatus::Running as i32]), InvalidArgument, "PAGE_TOKEN_FILTER_MISMATCH", Some("page_token")),
        case("list: token reused with another order", list_after(token, |l| l.order_by = "created_at asc".into()), InvalidArgument, "PAGE_TOKEN_FILTER_MISMATCH", Some("page_token")),
        case("list: unknown order", list(|l| l.order_by = "name".into()), InvalidArgument, "INVALID_ORDER_BY", Some("order_by")),
        case("list: unspecified status", list(|l| l.statuses = vec![1, 0]), InvalidArgument, "INVALID_STATUS", Some("statuses[1]")),
        case("list: unknown status number", list(|l| l.statuses = vec![9]), InvalidArgument, "INVALID_STATUS", Some("statuses[0]")),
        case("list: empty time range", list(|l| (l.created_after, l.created_before) = (ts(2_000_000_000), ts(1_000_000_000))), InvalidArgument, "INVALID_TIME_RANGE", Some("created_before")),
        case("list: invalid timestamp", list(|l| l.created_after = Some(prost_types::Timestamp { seconds: 0, nanos: -5 })), InvalidArgument, "INVALID_TIMESTAMP", Some("created_after")),
        case("list: timestamp in year 10000", list(|l| l.created_before = ts(253_402_300_800)), InvalidArgument, "INVALID_TIMESTAMP", Some("created_before")),
        case("list: timestamp before year 1", list(|l| l.created_after = ts(-62_135_596_801)), InvalidArgument, "INVALID_TIMESTAMP", Some("created_after")),
        case("list: nanos of 1.5 seconds", list(|l| l.created_after = Some(prost_types::Timestamp { seconds: 1_798_761_599, nanos: 1_500_000_000 })), InvalidArgument, "INVALID_TIMESTAMP", Some("created_after")),
        case("list: filter of lists nested 33 deep", list(|l| l.execution_data = data(json!({"k": nested_lists(32)}))), InvalidArgument, "INVALID_JSON", Some("execution_data")),
        case("list: filter of objects nested 33 deep", list(|l| l.execution_data = data(nested(33))), InvalidArgument, "INVALID_JSON", Some("execution_data")),
        case("list: filter of objects nested 40 deep (past protobuf's recursion limit)", list(|l| l.execution_data = data(nested(40))), InvalidArgument, "MALFORMED_MESSAGE", None),
        case("list: unknown time zone", list(|l| l.time_zone = "Nowhere".into()), InvalidArgument, "INVALID_TIME_ZONE", Some("time_zone")),
        case("list: empty execution_data key", list(|l| l.execution_data = data(json!({"": 1}))), InvalidArgument, "INVALID_EXECUTION_DATA_FILTER", Some("execution_data")),
        // StartExecution
        case("start: no template", start_call(|s| s.template = None), InvalidArgument, "TEMPLATE_MISSING", Some("template")),
        case("start: empty key", start_call(|s| s.key.clear()), InvalidArgument, "INVALID_KEY", Some("key")),
        case("start: key too long", start_call(|s| s.key = "k".repeat(257)), InvalidArgument, "INVALID_KEY", Some("key")),
        case("start: user_key too long", start_call(|s| s.user_key = "u".repeat(129)), InvalidArgument, "INVALID_USER_KEY", Some("user_key")),
        case("start: request_id too long", start_call(|s| s.request_id = "r".repeat(129)), InvalidArgument, "INVALID_REQUEST_ID", Some("request_id")),
        case("start: cycle", add_edge("notify", "account"), InvalidArgument, "TEMPLATE_HAS_CYCLE", Some("template.edges")),
        case("start: self loop", add_edge("laptop", "laptop"), InvalidArgument, "TEMPLATE_HAS_CYCLE", Some("template.edges")),
        case("start: two Start nodes", add_node("start2", "Start"), InvalidArgument, "TEMPLATE_START_NODE_COUNT", Some("template.nodes")),
        case("start: no Start node", start_call(|s| template(s).nodes[0].r#type = "HttpRequest".into()), InvalidArgument, "TEMPLATE_START_NODE_COUNT", Some("template.nodes")),
        case("start: dangling edge", add_edge("account", "ghost"), InvalidArgument, "TEMPLATE_UNKNOWN_EDGE_NODE", Some("template.edges[7].target")),
        case("start: edge into Start", add_edge("notify", "start_of_workflow"), InvalidArgument, "TEMPLATE_EDGE_INTO_START", Some("template.edges[7].target")),
        case("start: duplicate edge", add_edge("account", "welcome"), InvalidArgument, "TEMPLATE_DUPLICATE_EDGE", Some("template.edges[7]")),
        case("start: duplicate node id", add_node("laptop", "HttpRequest"), InvalidArgument, "TEMPLATE_DUPLICATE_NODE_ID", Some("template.nodes[6].id")),
        case("start: 1,001 nodes", start_call(|s| *template(s) = chain(1_000)), InvalidArgument, "TEMPLATE_TOO_MANY_NODES", Some("template.nodes")),
        case("start: node id too long", add_node(&"n".repeat(65), "HttpRequest"), InvalidArgument, "TEMPLATE_INVALID_NODE", Some("template.nodes[6].id")),
        case("start: node without type", add_node("typeless", ""), InvalidArgument, "TEMPLATE_INVALID_NODE", Some("template.nodes[6].type")),
        case("start: only a Start node", start_call(|s| *template(s) = chain(0)), InvalidArgument, "TEMPLATE_NO_ACTIONS", Some("template.nodes")),
        case("start: execution_data over 1 MiB", start_call(|s| s.execution_data = data(json!({"blob": "x".repeat(1 << 20)}))), InvalidArgument, "EXECUTION_DATA_TOO_LARGE", Some("execution_data")),
        case("start: unknown time zone", start_call(|s| s.time_zone = "UTC+99".into()), InvalidArgument, "INVALID_TIME_ZONE", Some("time_zone")),
        case("start: execution_data of lists nested 33 deep", start_call(|s| s.execution_data = data(json!({"k": nested_lists(32)}))), InvalidArgument, "INVALID_JSON", Some("execution_data")),
        case("start: node data of lists nested 33 deep", start_call(|s| template(s).nodes[1].data = data(json!({"k": nested_lists(32)}))), InvalidArgument, "INVALID_JSON", Some("template.nodes[1].data")),
        case("start: execution_data of objects nested 33 deep", start_call(|s| s.execution_data = data(nested(33))), InvalidArgument, "INVALID_JSON", Some("execution_data")),
        case("start: node data of objects nested 33 deep (past protobuf's recursion limit)", start_call(|s| template(s).nodes[1].data = data(nested(33))), InvalidArgument, "MALFORMED_MESSAGE", None),
        case("start: a 100,000-character time zone", start_call(|s| s.time_zone = "Z".repeat(100_000)), InvalidArgument, "INVALID_TIME_ZONE", Some("time_zone")),
        case("start: an edge source of 100,000 characters", add_edge(&"s".repeat(100_000), "notify"), InvalidArgument, "TEMPLATE_UNKNOWN_EDGE_NODE", Some("template.edges[7].source")),
        // UpdateAction
        case("update: malformed execution id", upd("??", "account", Running, |_| {}), InvalidArgument, "INVALID_ID", Some("execution_id")),
        case("update: unknown execution", upd(unknown, "account", Running, |_| {}), NotFound, "EXECUTION_NOT_FOUND", None),
        case("update: unknown action", upd(r, "ghost", Running, |_| {}), NotFound, "ACTION_NOT_FOUND", Some("node_id")),
        case("update: the Start node", upd(r, "start_of_workflow", Running, |_| {}), NotFound, "ACTION_NOT_FOUND", Some("node_id")),
        case("update: empty node id", upd(r, "", Running, |_| {}), InvalidArgument, "INVALID_NODE_ID", Some("node_id")),
        case("update: unspecified status", upd(r, "notify", Running, |u| u.status = 0), InvalidArgument, "INVALID_STATUS", Some("status")),
        case("update: unknown status number", upd(r, "notify", Running, |u| u.status = 77), InvalidArgument, "INVALID_STATUS", Some("status")),
        case("update: SCHEDULED without scheduled_at", upd(r, "notify", Scheduled, |u| u.scheduled_at = None), InvalidArgument, "MISSING_SCHEDULED_AT", Some("scheduled_at")),
        case("update: RUNNING with scheduled_at", upd(r, "welcome", Running, |u| u.scheduled_at = ts(5)), InvalidArgument, "UNEXPECTED_SCHEDULED_AT", Some("scheduled_at")),
        case("update: FAILED without a note", upd(r, "workspace", Failed, |u| u.failure_note.clear()), InvalidArgument, "MISSING_FAILURE_NOTE", Some("failure_note")),
        case("update: note too long", upd(r, "workspace", Failed, |u| u.failure_note = "x".repeat(1_025)), InvalidArgument, "INVALID_FAILURE_NOTE", Some("failure_note")),
        case("update: note of 1,025 bytes in 342 characters", upd(r, "workspace", Failed, |u| u.failure_note = format!("{}x", "é".repeat(512))), InvalidArgument, "INVALID_FAILURE_NOTE", Some("failure_note")),
        case("update: scheduled_at in year 10000", upd(r, "welcome", Scheduled, |u| u.scheduled_at = ts(253_402_300_800)), InvalidArgument, "INVALID_TIMESTAMP", Some("scheduled_at")),
        case("update: scheduled_at with nanos of 1.5 seconds", upd(r, "welcome", Scheduled, |u| u.scheduled_at = Some(prost_types::Timestamp { seconds: 1_798_761_599, nanos: 1_500_000_000 })), InvalidArgument, "INVALID_TIMESTAMP", Some("scheduled_at")),
        case("update: COMPLETED with a note", upd(r, "workspace", Completed, |u| u.failure_note = "?".into()), InvalidArgument, "UNEXPECTED_FAILURE_NOTE", Some("failure_note")),
        case("update: negative expected_revision", upd(r, "workspace", Completed, |u| u.expected_revision = -3), InvalidArgument, "INVALID_EXPECTED_REVISION", Some("expected_revision")),
        case("update: stale expected_revision", upd(r, "workspace", Completed, |u| u.expected_revision = 2), Aborted, "REVISION_MISMATCH", None),
        case("update: not ready (RUNNING)", upd(r, "notify", Running, |_| {}), FailedPrecondition, "ACTION_NOT_READY", None),
        case("update: not ready (SCHEDULED)", upd(r, "notify", Scheduled, |_| {}), FailedPrecondition, "ACTION_NOT_READY", None),
        case("update: stopped execution", upd(&stopped.id, "a1", Running, |_| {}), FailedPrecondition, "EXECUTION_STOPPED", None),
        case("update: completed execution", upd(&completed.hashid, "a1", Failed, |_| {}), FailedPrecondition, "EXECUTION_ALREADY_FINISHED", None),
        case("update: unknown action on a stopped execution", upd(&stopped.id, "ghost", Running, |_| {}), FailedPrecondition, "EXECUTION_STOPPED", None),
        case("update: NUL in the failure note", upd(r, "workspace", Failed, |u| u.failure_note = "bad\0note".into()), InvalidArgument, "INVALID_FAILURE_NOTE", Some("failure_note")),
        case("start: NUL in the key", start_call(|s| s.key = "wf\0".into()), InvalidArgument, "INVALID_KEY", Some("key")),
        case("start: NUL in execution_data", start_call(|s| s.execution_data = data(json!({"note": "a\0b"}))), InvalidArgument, "INVALID_JSON", Some("execution_data")),
        case("list: NUL in the key filter", list(|l| l.key = "k\0".into()), InvalidArgument, "INVALID_KEY", Some("key")),
        // StopExecution
        case("stop: malformed id", stop("-", "x"), InvalidArgument, "INVALID_ID", Some("id")),
        case("stop: unknown id", stop(unknown, "x"), NotFound, "EXECUTION_NOT_FOUND", None),
        case("stop: completed execution", stop(&completed.id, "late"), FailedPrecondition, "EXECUTION_ALREADY_FINISHED", None),
        case("stop: reason too long", stop(r, &"r".repeat(1_025)), InvalidArgument, "INVALID_REASON", Some("reason")),
        // StopExecutions (the running execution listens to "deploy": any of these accepted
        // would stop it)
        case("stop event: missing", stop_many(|s| s.stop_event.clear()), InvalidArgument, "MISSING_STOP_EVENT", Some("stop_event")),
        case("stop event: with a space", stop_many(|s| s.stop_event = "de ploy".into()), InvalidArgument, "INVALID_STOP_EVENT", Some("stop_event")),
        case("stop event: too long", stop_many(|s| s.stop_event = "d".repeat(129)), InvalidArgument, "INVALID_STOP_EVENT", Some("stop_event")),
        case("stop event: NUL in the filters", stop_many(|s| s.filters = data(json!({"team": "a\0b"}))), InvalidArgument, "INVALID_JSON", Some("filters")),
        case("stop event: empty filter key", stop_many(|s| s.filters = data(json!({"": 1}))), InvalidArgument, "INVALID_EXECUTION_DATA_FILTER", Some("filters")),
        case("stop event: reason too long", stop_many(|s| s.reason = "r".repeat(1_025)), InvalidArgument, "INVALID_REASON", Some("reason")),
        case("stop event: request id too long", stop_many(|s| s.request_id = "q".repeat(129)), InvalidArgument, "INVALID_REQUEST_ID", Some("request_id")),
        case("stop event: NUL in the user key", stop_many(|s| s.user_key = "m\0".into()), InvalidArgument, "INVALID_USER_KEY", Some("user_key")),
        // StartExecution's stop events and UpdateAction's log
        case("start: 33 stop events", start_call(|s| s.stop_events = (0..33).map(|i| format!("e{i}")).collect()), InvalidArgument, "INVALID_STOP_EVENT", Some("stop_events")),
        case("start: a stop event twice", start_call(|s| s.stop_events = vec!["a".into(), "a".into()]), InvalidArgument, "INVALID_STOP_EVENT", Some("stop_events[1]")),
        case("start: a stop event with a tab", start_call(|s| s.stop_events = vec!["a\tb".into()]), InvalidArgument, "INVALID_STOP_EVENT", Some("stop_events[0]")),
        case("start: an empty stop event", start_call(|s| s.stop_events = vec![String::new()]), InvalidArgument, "INVALID_STOP_EVENT", Some("stop_events[0]")),
        case("update: log over 64 KiB", upd(r, "workspace", Running, |u| u.log = data(json!({"out": "x".repeat(70_000)}))), InvalidArgument, "LOG_TOO_LARGE", Some("log")),
        case("update: NUL in the log", upd(r, "workspace", Running, |u| u.log = data(json!({"out": "a\0"}))), InvalidArgument, "INVALID_JSON", Some("log")),
        case("update: log on a finished execution", upd(&completed.id, "a1", Completed, |u| u.log = data(json!({"late": true}))), FailedPrecondition, "EXECUTION_ALREADY_FINISHED", None),
        case("update: log on a stopped execution", upd(&stopped.id, "a1", Stopped, |u| u.log = data(json!({"late": true}))), FailedPrecondition, "EXECUTION_STOPPED", None),
        // ListExecutionEvents
        case("events: malformed id", events(&completed.id, |e| e.execution_id = "-".into()), InvalidArgument, "INVALID_ID", Some("execution_id")),
        case("events: unknown execution", events(&completed.id, |e| e.execution_id = unknown.clone()), NotFound, "EXECUTION_NOT_FOUND", None),
        case("events: negative page size", events(&completed.id, |e| e.page_size = -1), InvalidArgument, "INVALID_PAGE_SIZE", Some("page_size")),
        case("events: token that does not decode", events(&completed.id, |e| e.page_token = "bm90IGEgdG9rZW4".into()), InvalidArgument, "INVALID_PAGE_TOKEN", Some("page_token")),
        case("events: a List token", events(&completed.id, |e| e.page_token = token.clone()), InvalidArgument, "PAGE_TOKEN_FILTER_MISMATCH", Some("page_token")),
        case("events: token of another execution", events(&completed.id, |e| { e.execution_id = r.clone(); e.page_token = events_token.clone() }), InvalidArgument, "PAGE_TOKEN_FILTER_MISMATCH", Some("page_token")),
        case("events: token reused with another order", events(&completed.id, |e| { e.execution_id = completed.id.clone(); e.page_token = events_token.clone(); e.order = pb::SortOrder::Descending as i32 }), InvalidArgument, "PAGE_TOKEN_FILTER_MISMATCH", Some("page_token")),
        case("events: unknown order", events(&completed.id, |e| e.order = 7), InvalidArgument, "INVALID_ORDER", Some("order")),
    ]
}

/// Every refused transition from every status the running execution's actions are in.
fn refused_transitions(running: &str) -> Vec<Case> {
    use ActionStatus::*;
    let mut cases = Vec::new();
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
                upd(running, node, to, |_| {}),
                Code::FailedPrecondition,
                "INVALID_TRANSITION",
                None,
            ));
        }
    }
    cases
}

/// What the cases refer to, stored before they run.
struct Stored {
    /// A running execution with an action in each status: account COMPLETED, laptop
    /// FAILED, welcome SCHEDULED, workspace RUNNING, notify IDLE (and not ready).
    running: String,
    /// A completed execution.
    completed: pb::Execution,
    /// A stopped execution.
    stopped: pb::Execution,
    /// A token of a first List page (page size 1, no filter).
    page_token: String,
    /// A token of the first ListExecutionEvents page (size 1, ascending) of `completed`.
    events_token: String,
    /// A UUID no execution has.
    unknown: String,
}

impl Stored {
    async fn seed(client: &mut Client) -> Self {
        use ActionStatus::*;
        let mut listening = example("fork_join.json");
        listening.stop_events = vec!["deploy".into()];
        let running = client
            .start_execution(listening)
            .await
            .unwrap()
            .into_inner();
        let r = running.id.clone();
        for (node, status) in [
            ("account", Running),
            ("account", Completed),
            ("laptop", Failed),
            ("welcome", Scheduled),
            ("workspace", Running),
        ] {
            update(client, &r, node, status).await;
        }
        let completed = start(client, "done", chain(1)).await;
        update(client, &completed.id, "a1", Running).await;
        update(client, &completed.id, "a1", Completed).await;
        let stopped = start(client, "halted", chain(2)).await;
        client
            .stop_execution(stop_request(&stopped.id, ""))
            .await
            .unwrap();
        let page_token = client
            .list_executions(pb::ListExecutionsRequest {
                page_size: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .next_page_token;
        assert!(!page_token.is_empty());
        let events_token = client
            .list_execution_events(pb::ListExecutionEventsRequest {
                execution_id: completed.id.clone(),
                page_size: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .next_page_token;
        assert!(!events_token.is_empty());
        Self {
            running: r,
            completed,
            stopped,
            page_token,
            events_token,
            unknown: uuid::Uuid::now_v7().to_string(),
        }
    }
}

enum Call {
    Get(pb::GetExecutionRequest),
    List(pb::ListExecutionsRequest),
    Stop(pb::StopExecutionRequest),
    Start(pb::StartExecutionRequest),
    Update(pb::UpdateActionRequest),
    StopMany(pb::StopExecutionsRequest),
    Events(pb::ListExecutionEventsRequest),
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
        Call::StopMany(r) => client.stop_executions(r).await.map(drop),
        Call::Events(r) => client.list_execution_events(r).await.map(drop),
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
    Call::Get(get_request(id))
}

fn get_with(id: &str, edit: impl FnOnce(&mut pb::GetExecutionRequest)) -> Call {
    let mut r = get_request(id);
    edit(&mut r);
    Call::Get(r)
}

fn list(edit: impl FnOnce(&mut pb::ListExecutionsRequest)) -> Call {
    let mut r = pb::ListExecutionsRequest::default();
    edit(&mut r);
    Call::List(r)
}

/// A List request with `page_token`, edited.
fn list_after(page_token: &str, edit: impl FnOnce(&mut pb::ListExecutionsRequest)) -> Call {
    list(|r| {
        r.page_token = page_token.into();
        edit(r);
    })
}

fn start_call(edit: impl FnOnce(&mut pb::StartExecutionRequest)) -> Call {
    let mut r = example("fork_join.json");
    edit(&mut r);
    Call::Start(r)
}

fn template(r: &mut pb::StartExecutionRequest) -> &mut pb::Template {
    r.template.as_mut().unwrap()
}

/// The fork/join example with one more edge.
fn add_edge(source: &str, target: &str) -> Call {
    start_call(|s| template(s).edges.push(edge(source, target)))
}

/// The fork/join example with one more node.
fn add_node(id: &str, node_type: &str) -> Call {
    start_call(|s| template(s).nodes.push(node(id, node_type)))
}

/// `execution_data` (or a filter on it) of this JSON.
/// An object nested `depth` levels deep (the outermost object is level 1).
fn nested(depth: usize) -> serde_json::Value {
    (1..depth).fold(json!({"leaf": 1}), |inner, _| json!({ "n": inner }))
}

/// Lists nested `depth` levels deep.
fn nested_lists(depth: usize) -> serde_json::Value {
    (1..depth).fold(json!([1]), |inner, _| json!([inner]))
}

fn data(value: serde_json::Value) -> Option<prost_types::Struct> {
    Some(to_struct(&value))
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
    Call::Stop(stop_request(id, reason))
}

/// A StopExecutions request of "deploy" (which the running execution listens to), edited.
fn stop_many(edit: impl FnOnce(&mut pb::StopExecutionsRequest)) -> Call {
    let mut r = pb::StopExecutionsRequest {
        stop_event: "deploy".into(),
        ..Default::default()
    };
    edit(&mut r);
    Call::StopMany(r)
}

/// A ListExecutionEvents request of `id`, edited.
fn events(id: &str, edit: impl FnOnce(&mut pb::ListExecutionEventsRequest)) -> Call {
    let mut r = pb::ListExecutionEventsRequest {
        execution_id: id.into(),
        ..Default::default()
    };
    edit(&mut r);
    Call::Events(r)
}
