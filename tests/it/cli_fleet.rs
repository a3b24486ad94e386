//! The fleet and history verbs of the real binary: `executions start --stop-event`,
//! `executions stop --event` (StopExecutions) and `executions events` (ListExecutionEvents).

use crate::harness::*;

/// Executions started with `--stop-event` are stopped by `stop --event` when their data
/// matches; `--dry-run` stops nothing and says how many would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_by_event_stops_the_listeners_that_match() {
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    let file = example_path("linear.json");
    let file = file.to_str().unwrap();
    let mut hashids = Vec::new();
    for region in ["eu", "eu", "us"] {
        let region = format!("region={region}");
        let json = cli(
            server.addr,
            &[
                "start",
                "--template",
                file,
                "--stop-event",
                "recall",
                "--data",
                &region,
                "-o",
                "json",
            ],
        )
        .await
        .expect_code(0)
        .json();
        hashids.push(json["hashid"].as_str().unwrap().to_owned());
    }
    let quiet = start(&mut client, "not-listening", chain(1)).await;

    let dry = cli(
        server.addr,
        &[
            "stop",
            "--event",
            "recall",
            "--data",
            "region=eu",
            "--dry-run",
            "-o",
            "json",
        ],
    )
    .await
    .expect_code(0)
    .json();
    assert_eq!(dry["stoppedCount"], "2");
    assert_eq!(
        get(&mut client, &hashids[0]).await.status(),
        ExecutionStatus::Running
    );

    let ran = cli(
        server.addr,
        &[
            "stop",
            "--event",
            "recall",
            "--data",
            "region=eu",
            "--reason",
            "recalled",
        ],
    )
    .await
    .expect_code(0);
    assert!(ran.stdout.contains("stopped 2 of 2"), "{}", ran.stdout);
    for (hashid, expected) in [
        (&hashids[0], ExecutionStatus::Stopped),
        (&hashids[1], ExecutionStatus::Stopped),
        (&hashids[2], ExecutionStatus::Running),
        (&quiet.hashid, ExecutionStatus::Running),
    ] {
        assert_eq!(
            get(&mut client, hashid).await.status(),
            expected,
            "{hashid}"
        );
    }
    assert_eq!(get(&mut client, &hashids[0]).await.stop_reason, "recalled");

    // Ids and --event do not mix; --dry-run needs --event.
    cli(server.addr, &["stop", "abcde", "--event", "recall"])
        .await
        .expect_code(2);
    cli(server.addr, &["stop", "abcde", "--dry-run"])
        .await
        .expect_code(2);
    server.stop().await;
}

/// `events ID` lists what changed, oldest first (or newest first with --order desc), with
/// each action's move and note; `-o json` is one ListExecutionEventsResponse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_show_the_history() {
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    let e = start(&mut client, "history", chain(2)).await;
    update(&mut client, &e.id, "a1", ActionStatus::Running).await;
    update(&mut client, &e.id, "a1", ActionStatus::Failed).await;

    let ran = cli(server.addr, &["events", &e.hashid])
        .await
        .expect_code(0);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert!(lines[0].starts_with("REV"), "{}", ran.stdout);
    assert!(lines[1].contains("EXECUTION_STARTED"), "{}", ran.stdout);
    let failed = lines
        .iter()
        .find(|l| l.contains("ACTION_FAILED"))
        .unwrap_or_else(|| panic!("{}", ran.stdout));
    assert!(
        failed.contains("RUNNING -> FAILED") && failed.contains("worker crashed"),
        "{failed}"
    );
    assert!(
        lines.last().unwrap().contains("EXECUTION_FAILED"),
        "{}",
        ran.stdout
    );

    let json = cli(
        server.addr,
        &["events", &e.id, "--order", "desc", "-o", "json"],
    )
    .await
    .expect_code(0)
    .json();
    let events = json["events"].as_array().unwrap();
    assert_eq!(events.len(), lines.len() - 1);
    assert_eq!(events[0]["kind"], "EXECUTION_EVENT_KIND_EXECUTION_FAILED");
    assert_eq!(events[0]["revision"], "3");
    assert_eq!(
        events.last().unwrap()["kind"],
        "EXECUTION_EVENT_KIND_EXECUTION_STARTED"
    );

    let ran = cli(server.addr, &["events", "zzzzzz"]).await.expect_code(4);
    assert!(ran.stderr.contains("EXECUTION_NOT_FOUND"), "{}", ran.stderr);
    server.stop().await;
}
