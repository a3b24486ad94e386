//! The real `executions` binary as a replica, stopped the two ways production stops it:
//! SIGTERM (a deploy) during a bulk stop and many open watches, and kill -9 (a crash)
//! with watchers open.

use std::process::Stdio;
use std::time::{Duration, Instant};

use executions::proto::v1 as pb;
use tokio::process::{Child, Command};
use tonic::Code;

use crate::cluster::Cluster;
use crate::harness::*;

/// The grace period the binary is started with.
const GRACE: Duration = Duration::from_secs(5);

/// `executions serve` on `port` over the database at `url`, killed on drop.
fn serve(url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_executions"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--shutdown-grace", &GRACE.as_secs().to_string()])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .env_remove("EXECUTIONS_TOKENS_FILE")
        .env_remove("EXECUTIONS_ALLOW_UNAUTHENTICATED")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the executions binary")
}

/// A client of the server on `port`, once it answers (up to 30 s).
async fn connect_when_up(port: u16) -> Client {
    for _ in 0..300 {
        if let Ok(client) = Client::connect(format!("http://127.0.0.1:{port}")).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server on port {port} did not come up within 30 s");
}

/// `n` fresh connections to the server on `port`.
async fn connections(port: u16, n: usize) -> Vec<Client> {
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(connect_when_up(port).await);
    }
    clients
}

/// How a watch of the SIGTERM scenario ended.
#[derive(Debug, PartialEq)]
enum WatchEnd {
    /// It saw its execution stopped, then ended with OK.
    Terminal,
    /// UNAVAILABLE (SERVER_SHUTTING_DOWN) naming the last revision it had been sent.
    ShuttingDown,
}

/// Reads a watch whose snapshot was read (revision `last`) to its end.
async fn watch_to_shutdown(mut events: Events, mut last: i64) -> WatchEnd {
    loop {
        match next_within(&mut events, 20).await {
            Ok(Some(message)) => {
                check_order(&message, &mut last);
                if message
                    .execution
                    .is_some_and(|e| e.status() == ExecutionStatus::Stopped)
                {
                    let end = next_within(&mut events, 20).await;
                    assert!(matches!(end, Ok(None)), "ends with OK: {end:?}");
                    return WatchEnd::Terminal;
                }
            }
            Ok(None) => panic!("a watch ended with OK before its execution stopped"),
            Err(status) => {
                assert_error(&status, Code::Unavailable, "SERVER_SHUTTING_DOWN", None);
                assert!(
                    status
                        .message()
                        .contains(&format!("last revision sent: {last}")),
                    "names the last revision ({last}): {}",
                    status.message()
                );
                return WatchEnd::ShuttingDown;
            }
        }
    }
}

/// The binary gets SIGTERM while a StopExecutions of 300 executions runs and 10,000
/// watches are open: each watch ends with its execution's stop or with UNAVAILABLE naming
/// its last revision; the process exits 0 within its grace period; every execution is
/// either untouched or wholly stopped (a commit finished or rolled back whole); the same
/// `request_id` on another server then finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_pg_cluster), ignore = "needs PostgreSQL's initdb and pg_ctl")]
async fn sigterm_during_bulk_stop_and_open_watches() {
    const EXECUTIONS: usize = 300;
    const WATCHES: usize = 10_000;
    /// Watches opened at once (each holds an admission slot while it opens).
    const OPENING: usize = 200;
    let cluster = Cluster::start();
    let url = cluster.url();
    let port = free_port();
    let mut child = serve(&url, port);
    let mut client = connect_when_up(port).await;
    let mut ids = Vec::new();
    for i in 0..EXECUTIONS {
        let started = client
            .start_execution(pb::StartExecutionRequest {
                key: format!("drain-{i}"),
                template: Some(chain(2)),
                stop_events: vec!["drain".into()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        ids.push(started.id);
    }
    // 10,000 streams over 20 connections: 500 each, below the 1,024 a connection may open.
    let clients = connections(port, 20).await;
    let mut watchers = tokio::task::JoinSet::new();
    for first in (0..WATCHES).step_by(OPENING) {
        let mut opening = tokio::task::JoinSet::new();
        for w in first..(first + OPENING).min(WATCHES) {
            let mut client = clients[w % clients.len()].clone();
            let id = ids[w % EXECUTIONS].clone();
            opening.spawn(async move {
                let mut events = watch(&mut client, &id, 0).await.unwrap();
                let snapshot = next(&mut events).await.unwrap().unwrap();
                (events, snapshot.revision)
            });
        }
        while let Some(opened) = opening.join_next().await {
            let (events, revision) = opened.unwrap();
            watchers.spawn(watch_to_shutdown(events, revision));
        }
    }

    let bulk = {
        let mut client = client.clone();
        tokio::spawn(async move {
            let answer = client
                .stop_executions(pb::StopExecutionsRequest {
                    stop_event: "drain".into(),
                    reason: "drain".into(),
                    request_id: "drain-job".into(),
                    ..Default::default()
                })
                .await;
            (answer, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let signalled = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let mut ends = (0, 0);
    while let Some(done) = tokio::time::timeout(Duration::from_secs(30), watchers.join_next())
        .await
        .expect("every watch ends within 30 s")
    {
        match done.unwrap() {
            WatchEnd::Terminal => ends.0 += 1,
            WatchEnd::ShuttingDown => ends.1 += 1,
        }
    }
    let (bulk, bulk_ended) = tokio::time::timeout(Duration::from_secs(30), bulk)
        .await
        .expect("the bulk stop answers within 30 s")
        .unwrap();
    // Signed: negative when the bulk stop had answered before the signal.
    let bulk_after_signal = if bulk_ended >= signalled {
        format!("{:?} after SIGTERM", bulk_ended - signalled)
    } else {
        format!("{:?} before SIGTERM", signalled - bulk_ended)
    };
    let status = tokio::time::timeout(GRACE + Duration::from_secs(5), child.wait())
        .await
        .expect("the server exits")
        .unwrap();
    let exited = signalled.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        exited <= GRACE + Duration::from_secs(1),
        "exited after {exited:?}"
    );

    // Every execution untouched or wholly stopped.
    let server = TestServer::builder()
        .database_url(Backend::Postgres, &url)
        .start()
        .await;
    let mut client = server.client.clone();
    let mut stopped = 0;
    for id in &ids {
        let e = get(&mut client, id).await;
        assert_consistent(&e);
        match e.status() {
            ExecutionStatus::Running => {
                assert_eq!((e.revision, e.idle_actions_count), (1, 2), "{id} untouched");
            }
            ExecutionStatus::Stopped => {
                assert_eq!(
                    (e.revision, e.stopped_actions_count),
                    (2, 2),
                    "{id} stopped whole"
                );
                stopped += 1;
            }
            other => panic!("{id} is {other:?}"),
        }
    }
    let bulk_answer = match &bulk {
        Ok(answer) => {
            assert_eq!(
                answer.get_ref().stopped_count,
                stopped,
                "the answer counts what it stopped"
            );
            format!(
                "answered OK {bulk_after_signal}, {} stopped",
                answer.get_ref().stopped_count
            )
        }
        Err(status) => {
            assert!(
                matches!(
                    status.code(),
                    Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded
                ),
                "{status:?}"
            );
            format!("ended {:?} {bulk_after_signal}", status.code())
        }
    };
    // The same request_id elsewhere finishes the job.
    let finished = client
        .stop_executions(pb::StopExecutionsRequest {
            stop_event: "drain".into(),
            reason: "drain".into(),
            request_id: "drain-job".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(finished.stopped_count, EXECUTIONS as i64, "{finished:?}");
    for id in &ids {
        assert_eq!(
            get(&mut client, id).await.status(),
            ExecutionStatus::Stopped
        );
    }
    crate::report_figures(&format!(
        "SIGTERM: bulk stop {bulk_answer}; {stopped}/{EXECUTIONS} stopped whole before exit, the rest untouched; \
         of {WATCHES} watches {} saw the stop, {} got UNAVAILABLE naming their last revision; exit 0 after {exited:?} (grace {GRACE:?}); \
         the same request_id finished the job on another server",
        ends.0, ends.1
    ));
    server.stop().await;
    drop(cluster);
}

/// A replica (the binary) is killed with SIGKILL while 50 watchers are open on it and
/// changes land through the other replica: every watcher resumes on the other replica
/// with `since_revision`, never gets a revision twice or backwards, and ends at its
/// execution's final revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_pg_cluster), ignore = "needs PostgreSQL's initdb and pg_ctl")]
async fn kill_9_replica_watchers_resume_on_the_other() {
    const EXECUTIONS: usize = 10;
    const ACTIONS: usize = 15;
    const FINAL_REVISION: i64 = 1 + 2 * ACTIONS as i64;
    const WATCHERS: usize = 50;
    let cluster = Cluster::start();
    let url = cluster.url();
    let port = free_port();
    let mut doomed = serve(&url, port);
    let survivor = TestServer::builder()
        .database_url(Backend::Postgres, &url)
        .start()
        .await;
    let mut writer = survivor.client.clone();
    let mut ids = Vec::new();
    for i in 0..EXECUTIONS {
        ids.push(
            start(&mut writer, &format!("kill9-{i}"), fan(ACTIONS))
                .await
                .id,
        );
    }
    let clients = connections(port, 5).await;
    let mut watchers = tokio::task::JoinSet::new();
    for w in 0..WATCHERS {
        let mut client = clients[w % clients.len()].clone();
        let id = ids[w % EXECUTIONS].clone();
        let mut events = watch(&mut client, &id, 0).await.unwrap();
        let mut last = 0;
        check_order(&next(&mut events).await.unwrap().unwrap(), &mut last);
        let mut fallback = survivor.client.clone();
        watchers.spawn(async move {
            let mut resumed = 0;
            loop {
                match next_within(&mut events, 30).await {
                    Ok(Some(message)) => {
                        check_order(&message, &mut last);
                        if message
                            .execution
                            .is_some_and(|e| e.status() != ExecutionStatus::Running)
                        {
                            return (last, resumed);
                        }
                    }
                    Ok(None) => panic!("ended with OK before a terminal state"),
                    // The replica is gone (whatever the transport said): resume on the
                    // other with what was seen, as the CLI's `watch` does.
                    Err(_) => {
                        resumed += 1;
                        assert!(resumed < 5, "resumed too often");
                        events = watch(&mut fallback, &id, last).await.unwrap();
                    }
                }
            }
        });
    }
    let writes = tokio::spawn(async move {
        for action in 0..ACTIONS {
            for id in &ids {
                for status in [ActionStatus::Running, ActionStatus::Completed] {
                    update(&mut writer, id, &format!("p{action}"), status).await;
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    doomed.start_kill().unwrap();
    let killed_at = Instant::now();
    doomed.wait().await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), writes)
        .await
        .expect("writes end within 60 s")
        .unwrap();
    let (mut converged, mut resumed) = (0, 0);
    while let Some(done) = tokio::time::timeout(Duration::from_secs(30), watchers.join_next())
        .await
        .expect("watchers end within 30 s")
    {
        let (last, again) = done.unwrap();
        assert_eq!(last, FINAL_REVISION);
        converged += 1;
        resumed += again;
    }
    assert_eq!(
        resumed, WATCHERS,
        "each watcher resumed once, on the other replica"
    );
    crate::report_figures(&format!(
        "kill -9: {converged}/{WATCHERS} watchers resumed on the other replica ({resumed} resumptions) and reached revision {FINAL_REVISION}, \
         no revision twice or backwards; converged {:?} after the kill",
        killed_at.elapsed()
    ));
    survivor.stop().await;
    drop(cluster);
}
