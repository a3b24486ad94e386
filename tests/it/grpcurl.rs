//! The README's grpcurl calls, run with the real grpcurl binary (1.8.x, which speaks
//! reflection v1alpha only) against a real server.

use std::process::{Command, Stdio};

use crate::harness::*;
use serde_json::Value;

/// Path of grpcurl. The tests that call this are ignored when the suite was built
/// without grpcurl on the `PATH` (build.rs sets `cfg(test_grpcurl)`), so reaching here
/// without it (`--include-ignored`) fails the test.
fn grpcurl() -> String {
    let found = Command::new("grpcurl")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "grpcurl is not installed (see README: Try it with grpcurl), or `touch build.rs` after installing it"
    );
    "grpcurl".into()
}

/// Runs grpcurl with `args` (and `stdin`), returns its stdout; panics on failure.
fn run(bin: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = output(bin, args, stdin);
    assert!(
        out.status.success(),
        "grpcurl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn output(bin: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn grpcurl");
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("grpcurl printed no JSON ({e}): {text}"))
}

/// `list`, `describe`, and the README's Start, Get, List, UpdateAction and Stop calls
/// work through reflection and return the documented JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(test_grpcurl), ignore = "needs grpcurl")]
async fn readme_grpcurl_calls_work() {
    let bin = grpcurl();
    let server = TestServer::builder().start().await;
    let addr = server.addr.to_string();
    let service = "workflow.executions.v1.ExecutionService";
    let call = |method: &str, body: &str| -> Value {
        let (data, stdin) = match body.strip_prefix('@') {
            Some(file) => (
                "@",
                Some(std::fs::read_to_string(example_path(file)).unwrap()),
            ),
            None => (body, None),
        };
        let method = format!("{service}/{method}");
        json(&run(
            &bin,
            &["-plaintext", "-d", data, &addr, &method],
            stdin.as_deref(),
        ))
    };

    let listed = run(&bin, &["-plaintext", &addr, "list"], None);
    for service_name in [service, "grpc.health.v1.Health"] {
        assert!(listed.lines().any(|l| l == service_name), "{listed}");
    }
    let described = run(&bin, &["-plaintext", &addr, "describe", service], None);
    for rpc in [
        "GetExecution",
        "ListExecutions",
        "StopExecution",
        "WatchExecution",
        "StartExecution",
        "UpdateAction",
    ] {
        assert!(described.contains(&format!("rpc {rpc} (")), "{described}");
    }
    let described = run(
        &bin,
        &[
            "-plaintext",
            &addr,
            "describe",
            "workflow.executions.v1.Execution",
        ],
        None,
    );
    assert!(described.contains("created_at_string"), "{described}");

    let started = call("StartExecution", "@branching.json");
    assert_eq!(started["status"], "EXECUTION_STATUS_RUNNING");
    assert_eq!(started["revision"], "1");
    assert_eq!(started["object"], "execution");
    assert_eq!(
        started["stats"]["start_of_workflow-account"]["edge"]["status"],
        "EDGE_STATUS_OPEN"
    );
    let hashid = started["hashid"].as_str().unwrap().to_owned();

    let got = call(
        "GetExecution",
        &format!(r#"{{"id": "{hashid}", "time_zone": "America/New_York"}}"#),
    );
    assert_eq!(got["id"], started["id"]);
    assert!(
        got["createdAtString"].as_str().unwrap().ends_with('T'),
        "{got}"
    ); // EST/EDT

    let listed = call(
        "ListExecutions",
        r#"{"page_size": 10, "statuses": ["EXECUTION_STATUS_RUNNING"]}"#,
    );
    assert_eq!(listed["executions"][0]["hashid"], hashid.as_str());
    assert!(
        listed["executions"][0].get("template").is_none(),
        "List defaults to BASIC"
    );

    let updated = call(
        "UpdateAction",
        &format!(
            r#"{{"execution_id": "{hashid}", "node_id": "account", "status": "ACTION_STATUS_RUNNING"}}"#
        ),
    );
    assert_eq!(updated["revision"], "2");
    assert_eq!(
        updated["stats"]["account"]["action"]["status"],
        "ACTION_STATUS_RUNNING"
    );

    // WatchExecution streams: start grpcurl on it, change the execution, stop it; the
    // stream ends by itself after the terminal state.
    let watcher = std::process::Command::new(&bin)
        .args([
            "-plaintext",
            "-d",
            &format!(r#"{{"id": "{hashid}"}}"#),
            &addr,
            &format!("{service}/WatchExecution"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn grpcurl WatchExecution");
    std::thread::sleep(std::time::Duration::from_millis(500));
    call(
        "UpdateAction",
        &format!(
            r#"{{"execution_id": "{hashid}", "node_id": "laptop", "status": "ACTION_STATUS_RUNNING"}}"#
        ),
    );

    let stopped = call(
        "StopExecution",
        &format!(r#"{{"id": "{hashid}", "reason": "cancelled by operator"}}"#),
    );
    assert_eq!(stopped["status"], "EXECUTION_STATUS_STOPPED");
    assert_eq!(stopped["stopReason"], "cancelled by operator");
    assert_eq!(
        stopped["stats"]["account"]["action"]["status"],
        "ACTION_STATUS_STOPPED"
    );

    let watched = watcher.wait_with_output().unwrap();
    assert!(
        watched.status.success(),
        "{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    let messages: Vec<Value> = serde_json::Deserializer::from_slice(&watched.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap();
    let kinds: Vec<&str> = messages
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "WATCH_EVENT_KIND_SNAPSHOT",
            "WATCH_EVENT_KIND_UPDATE",
            "WATCH_EVENT_KIND_UPDATE"
        ]
    );
    let revisions: Vec<&str> = messages
        .iter()
        .map(|m| m["revision"].as_str().unwrap())
        .collect();
    assert_eq!(revisions, ["2", "3", "4"]);
    assert_eq!(
        messages[2]["execution"]["status"],
        "EXECUTION_STATUS_STOPPED"
    );

    // Error details decode through reflection: the README's -format-error example.
    let refused = output(
        &bin,
        &[
            "-plaintext",
            "-format-error",
            "-d",
            &format!(
                r#"{{"execution_id": "{hashid}", "node_id": "notify", "status": "ACTION_STATUS_RUNNING"}}"#
            ),
            &addr,
            &format!("{service}/UpdateAction"),
        ],
        None,
    );
    assert!(!refused.status.success());
    let error = json(&String::from_utf8_lossy(&refused.stderr));
    assert_eq!(error["code"], 9, "FAILED_PRECONDITION: {error}");
    assert_eq!(
        error["details"][0]["reason"], "EXECUTION_STOPPED",
        "{error}"
    );
    assert_eq!(error["details"][0]["domain"], "executions");

    let health = json(&run(
        &bin,
        &["-plaintext", &addr, "grpc.health.v1.Health/Check"],
        None,
    ));
    assert_eq!(health["status"], "SERVING");
    server.stop().await;
}

/// The README's "Follow the fleet": WatchExecutions with a filter sends a SNAPSHOT per
/// matching execution then SYNCED, each with a cursor, until grpcurl's -max-time ends it;
/// resuming from the last cursor after a stop and a start sends an UPDATE of each (the
/// stopped one with leftFilter), then SYNCED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(test_grpcurl), ignore = "needs grpcurl")]
async fn readme_feed_calls_work() {
    let bin = grpcurl();
    let server = TestServer::builder().start().await;
    let addr = server.addr.to_string();
    let method = "workflow.executions.v1.ExecutionService/WatchExecutions";
    let mut client = server.client.clone();
    let in_us = || {
        let mut request = example("linear.json");
        request.stop_events = vec!["release-7".into()];
        request.execution_data = Some(to_struct(&serde_json::json!({"region": "us"})));
        request
    };
    let first = client.start_execution(in_us()).await.unwrap().into_inner();
    let feed = |body: &str| -> Vec<Value> {
        let out = output(
            &bin,
            &["-plaintext", "-max-time", "2", "-d", body, &addr, method],
            None,
        );
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && said.contains("DeadlineExceeded"),
            "{said}"
        );
        serde_json::Deserializer::from_slice(&out.stdout)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let filter = r#""statuses": ["EXECUTION_STATUS_RUNNING"], "execution_data": {"region": "us"}"#;
    let kinds = |messages: &[Value]| -> Vec<String> {
        messages
            .iter()
            .filter(|m| m["kind"] != "WATCH_EVENT_KIND_HEARTBEAT")
            .map(|m| m["kind"].as_str().unwrap().to_owned())
            .collect()
    };

    let opened = feed(&format!("{{{filter}}}"));
    assert_eq!(
        kinds(&opened),
        ["WATCH_EVENT_KIND_SNAPSHOT", "WATCH_EVENT_KIND_SYNCED"]
    );
    assert_eq!(opened[0]["execution"]["hashid"], first.hashid.as_str());
    let cursor = opened.last().unwrap()["cursor"]
        .as_str()
        .unwrap()
        .to_owned();

    client
        .stop_executions(executions::proto::v1::StopExecutionsRequest {
            stop_event: "release-7".into(),
            filters: Some(to_struct(&serde_json::json!({"region": "us"}))),
            ..Default::default()
        })
        .await
        .unwrap();
    let second = client.start_execution(in_us()).await.unwrap().into_inner();
    let resumed = feed(&format!(r#"{{{filter}, "resume_cursor": "{cursor}"}}"#));
    assert_eq!(
        kinds(&resumed),
        [
            "WATCH_EVENT_KIND_UPDATE",
            "WATCH_EVENT_KIND_UPDATE",
            "WATCH_EVENT_KIND_SYNCED"
        ]
    );
    let update_of = |hashid: &str| {
        resumed
            .iter()
            .find(|m| m["execution"]["hashid"] == hashid)
            .unwrap_or_else(|| panic!("{hashid}: {resumed:?}"))
    };
    let left = update_of(&first.hashid);
    assert_eq!(left["execution"]["status"], "EXECUTION_STATUS_STOPPED");
    assert_eq!(left["leftFilter"], true);
    let joined = update_of(&second.hashid);
    assert_eq!(joined["execution"]["status"], "EXECUTION_STATUS_RUNNING");
    assert!(joined.get("leftFilter").is_none(), "{joined}");
    server.stop().await;
}

/// With tokens, reflection follows the API's auth: grpcurl without a token is refused
/// (Unauthenticated), with a token it lists the services and reads; the health call
/// itself needs none (the token goes to reflection only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(test_grpcurl), ignore = "needs grpcurl")]
async fn grpcurl_with_a_bearer_token() {
    let bin = grpcurl();
    let server = TestServer::builder().config(tokens_config()).start().await;
    let addr = server.addr.to_string();
    let refused = output(&bin, &["-plaintext", &addr, "list"], None);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("Unauthenticated"), "{said}");

    let header = format!("authorization: Bearer {WRITER_TOKEN}");
    let listed = run(&bin, &["-plaintext", "-H", &header, &addr, "list"], None);
    assert!(
        listed
            .lines()
            .any(|l| l == "workflow.executions.v1.ExecutionService"),
        "{listed}"
    );
    let page = json(&run(
        &bin,
        &[
            "-plaintext",
            "-H",
            &header,
            "-d",
            "{}",
            &addr,
            "workflow.executions.v1.ExecutionService/ListExecutions",
        ],
        None,
    ));
    assert!(page.is_object(), "{page}");
    // The token goes to reflection only (-reflect-header), not to the health call.
    let health = json(&run(
        &bin,
        &[
            "-plaintext",
            "-reflect-header",
            &header,
            &addr,
            "grpc.health.v1.Health/Check",
        ],
        None,
    ));
    assert_eq!(health["status"], "SERVING");
    server.stop().await;
}
