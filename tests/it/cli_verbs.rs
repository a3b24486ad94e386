//! The verbs of the real binary against a real server, as a person types them (address
//! without a scheme): `get`, `list`, `count`, `start`, `stop`, in tables and in the
//! canonical proto3 JSON that grpcurl prints.

use crate::harness::*;
use executions::cli::json::from_json;
use executions::proto::v1 as pb;

/// `get` shows name, key, status, counts, revision and one line per action in
/// topological order, with each action's status and note; `-o json` is the execution as
/// canonical proto3 JSON, equal to what the API answers; `--time-zone` reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_shows_an_execution() {
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    let e = start_example(&mut client, "branching.json").await;
    update(&mut client, &e.id, "account", ActionStatus::Running).await;
    update(&mut client, &e.id, "account", ActionStatus::Completed).await;
    let mut failed = report(&e.id, "laptop", ActionStatus::Failed);
    failed.failure_note = "out of stock".into();
    client.update_action(failed).await.unwrap();

    let ran = cli(server.addr, &["get", &e.hashid]).await.expect_code(0);
    let text = &ran.stdout;
    for expected in [
        e.name.as_str(),
        e.key.as_str(),
        e.id.as_str(),
        "RUNNING",
        "1/5 completed, 3 idle, 1 failed",
        "Revision:  4",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    let position = |id: &str| {
        text.lines()
            .position(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("{id}: {text}"))
    };
    for (before, after) in [
        ("account", "welcome"),
        ("welcome", "notify"),
        ("laptop", "notify"),
    ] {
        assert!(
            position(before) < position(after),
            "{before} < {after}: {text}"
        );
    }
    let laptop = &text.lines().nth(position("laptop")).unwrap().to_owned();
    assert!(
        laptop.contains("FAILED") && laptop.contains("out of stock"),
        "{laptop}"
    );

    let ran = cli(
        server.addr,
        &[
            "get",
            &e.hashid,
            "-o",
            "json",
            "--time-zone",
            "America/New_York",
        ],
    )
    .await
    .expect_code(0);
    let json = ran.json();
    assert_eq!(json["revision"], "4");
    assert_eq!(json["status"], "EXECUTION_STATUS_RUNNING");
    assert_eq!(
        json["stats"]["laptop"]["action"]["failureNote"],
        "out of stock"
    );
    let zone = json["createdAtString"].as_str().unwrap();
    assert!(zone.ends_with("EST") || zone.ends_with("EDT"), "{zone}");
    let answered = client
        .get_execution(pb::GetExecutionRequest {
            id: e.id.clone(),
            time_zone: "America/New_York".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let printed: pb::Execution = from_json(&json).unwrap();
    assert_eq!(printed, answered);

    let ran = cli(server.addr, &["get", "zzzzzz"]).await.expect_code(4);
    assert!(ran.stderr.contains("EXECUTION_NOT_FOUND"), "{}", ran.stderr);
    server.stop().await;
}

/// `list` pages through tokens up to `--limit` (0: all), filters by status, key, tenant
/// and data, orders both ways, and prints a table or one ListExecutionsResponse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_filters_and_orders() {
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    let mut started = Vec::new();
    for i in 0..7 {
        let mut request = example("linear.json");
        request.key = if i % 2 == 0 { "even" } else { "odd" }.into();
        request.execution_data = Some(to_struct(&serde_json::json!({"n": i, "region": "eu"})));
        started.push(client.start_execution(request).await.unwrap().into_inner());
    }
    client
        .stop_execution(stop_request(&started[0].id, ""))
        .await
        .unwrap();
    let hashids = |json: &serde_json::Value| -> Vec<String> {
        json["executions"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|e| e["hashid"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let newest_first: Vec<String> = started.iter().rev().map(|e| e.hashid.clone()).collect();

    // Five, two per request: three pages, and the token to go on.
    let json = cli(
        server.addr,
        &["list", "--limit", "5", "--page-size", "2", "-o", "json"],
    )
    .await
    .expect_code(0)
    .json();
    assert_eq!(hashids(&json), newest_first[..5]);
    assert!(!json["nextPageToken"].as_str().unwrap().is_empty());
    let json = cli(
        server.addr,
        &[
            "list",
            "--limit",
            "0",
            "--page-size",
            "2",
            "--order",
            "asc",
            "-o",
            "json",
        ],
    )
    .await
    .expect_code(0)
    .json();
    let oldest_first: Vec<String> = newest_first.iter().rev().cloned().collect();
    assert_eq!(hashids(&json), oldest_first);
    assert!(json.get("nextPageToken").is_none(), "the last page: {json}");

    let json = cli(
        server.addr,
        &[
            "list",
            "--status",
            "running",
            "--key",
            "even",
            "--data",
            "region=eu",
            "-o",
            "json",
        ],
    )
    .await
    .expect_code(0)
    .json();
    let expected: Vec<String> = [6, 4, 2]
        .iter()
        .map(|i| started[*i].hashid.clone())
        .collect();
    assert_eq!(hashids(&json), expected);
    let json = cli(
        server.addr,
        &["list", "--data", "n=3", "--user-key", "main", "-o", "json"],
    )
    .await
    .expect_code(0)
    .json();
    assert_eq!(hashids(&json), [started[3].hashid.clone()]);

    let table = cli(server.addr, &["list", "--limit", "3"])
        .await
        .expect_code(0);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", table.stdout);
    assert!(
        lines[0].starts_with("HASHID") && lines[0].contains("STATUS"),
        "{}",
        table.stdout
    );
    assert!(lines[1].starts_with(&newest_first[0]), "{}", table.stdout);
    assert!(
        table.stderr.is_empty(),
        "nothing but the table in a pipe: {}",
        table.stderr
    );

    let ran = cli(server.addr, &["list", "--status", "done"])
        .await
        .expect_code(2);
    assert!(
        ran.stderr.contains("running, completed, failed or stopped"),
        "{}",
        ran.stderr
    );
    server.stop().await;
}

/// `count` says how many executions match, in total and by status, with List's filters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_counts_by_status() {
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    let stopped = start(&mut client, "count", chain(1)).await;
    start(&mut client, "count", chain(1)).await;
    start(&mut client, "other", chain(1)).await;
    client
        .stop_execution(stop_request(&stopped.id, ""))
        .await
        .unwrap();
    let json = cli(server.addr, &["count", "--key", "count", "-o", "json"])
        .await
        .expect_code(0)
        .json();
    assert_eq!(json["count"], "2");
    assert_eq!(json["countsByStatus"]["EXECUTION_STATUS_STOPPED"], "1");
    assert_eq!(json["countsByStatus"]["EXECUTION_STATUS_RUNNING"], "1");
    let table = cli(server.addr, &["count"]).await.expect_code(0).stdout;
    let row = |status: &str| {
        table
            .lines()
            .find(|l| l.starts_with(status))
            .unwrap_or_else(|| panic!("{status}: {table}"))
            .split_whitespace()
            .last()
            .unwrap()
            .to_owned()
    };
    assert_eq!(row("RUNNING"), "2");
    assert_eq!(row("STOPPED"), "1");
    assert_eq!(row("FAILED"), "0");
    assert_eq!(row("TOTAL"), "3");
    server.stop().await;
}

/// `start --template FILE` starts an example file (the JSON grpcurl takes) with --key,
/// --name and --data on top, or a bare template; `--wait` waits for the end and exits
/// with its outcome; a file that is not a request says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_from_a_file() {
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    let file = example_path("linear.json");
    let json = cli(
        server.addr,
        &[
            "start",
            "--template",
            file.to_str().unwrap(),
            "--key",
            "mine",
            "--name",
            "Mine",
            "--data",
            "region=eu",
            "--data",
            "n=3",
            "-o",
            "json",
        ],
    )
    .await
    .expect_code(0)
    .json();
    assert_eq!(json["key"], "mine");
    assert_eq!(json["name"], "Mine");
    assert_eq!(json["status"], "EXECUTION_STATUS_RUNNING");
    assert_eq!(json["executionData"]["region"], "eu");
    assert_eq!(json["executionData"]["n"], 3.0);
    assert_eq!(
        json["executionData"]["order_id"], "1042",
        "the file's data is kept"
    );

    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("bare.json");
    let template = executions::cli::json::to_json(&chain(1)).unwrap();
    std::fs::write(&bare, template.to_string()).unwrap();
    let mut waiting = executions(&[
        "start",
        "--template",
        bare.to_str().unwrap(),
        "--key",
        "bare",
        "--wait",
        "--addr",
        &server.addr.to_string(),
    ])
    .spawn()
    .unwrap();
    let mut out = tokio::io::BufReader::new(waiting.stdout.take().unwrap());
    let mut first = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::io::AsyncBufReadExt::read_line(&mut out, &mut first),
    )
    .await
    .unwrap()
    .unwrap();
    let hashid = first
        .strip_prefix("started ")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    update(&mut client, hashid, "a1", ActionStatus::Running).await;
    update(&mut client, hashid, "a1", ActionStatus::Completed).await;
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), waiting.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));

    let wrong = dir.path().join("wrong.json");
    std::fs::write(&wrong, r#"{"kee": "typo"}"#).unwrap();
    let ran = cli(
        server.addr,
        &["start", "--template", wrong.to_str().unwrap()],
    )
    .await
    .expect_code(4);
    assert!(ran.stderr.contains("kee"), "{}", ran.stderr);
    server.stop().await;
}

/// `stop A B --reason R` stops each (again: still fine); a finished one and an unknown
/// one are errors naming their reason, after the others were stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_stops_each_execution() {
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    let a = start(&mut client, "stop-a", chain(2)).await;
    let b = start(&mut client, "stop-b", chain(2)).await;
    let done = start(&mut client, "stop-done", chain(1)).await;
    update(&mut client, &done.id, "a1", ActionStatus::Running).await;
    update(&mut client, &done.id, "a1", ActionStatus::Completed).await;

    let ran = cli(
        server.addr,
        &["stop", &a.hashid, &b.id, "--reason", "maintenance"],
    )
    .await
    .expect_code(0);
    assert!(
        ran.stdout.contains(&format!("stopped {}", a.hashid)),
        "{}",
        ran.stdout
    );
    for e in [&a, &b] {
        let got = get(&mut client, &e.id).await;
        assert_eq!(got.status(), ExecutionStatus::Stopped);
        assert_eq!(got.stop_reason, "maintenance");
    }
    cli(server.addr, &["stop", &a.hashid]).await.expect_code(0);

    let ran = cli(server.addr, &["stop", &done.hashid, "zzzzzz", "-o", "json"])
        .await
        .expect_code(4);
    assert!(
        ran.stderr.contains("EXECUTION_ALREADY_FINISHED"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("EXECUTION_NOT_FOUND"), "{}", ran.stderr);
    assert!(ran.stdout.is_empty(), "{}", ran.stdout);
    server.stop().await;
}
