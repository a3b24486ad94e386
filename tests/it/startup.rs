//! `executions serve` as a person starts it: database URLs it cannot use are explained,
//! a SQLite file is created, the start-up line says which database and address, logs
//! to a file carry no colour codes and one rounded latency per call, and `--help` shows
//! no secret.

use std::time::Duration;

use crate::harness::*;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Runs `executions serve` with this database URL, expecting it to refuse at once.
async fn refused(url: &str) -> String {
    let started = std::time::Instant::now();
    let ran = finish(&mut executions(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        url,
    ]))
    .await;
    assert_ne!(ran.code, 0, "{}", ran.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    ran.stderr
}

/// An unknown scheme lists the supported ones; a SQLite file in a missing folder names
/// the folder; a PostgreSQL server that does not listen is named at once, host and port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_explains_database_urls_it_cannot_use() {
    let said = refused("postgress://u:s3cret@127.0.0.1/db").await;
    assert!(
        said.contains("sqlite://") && said.contains("postgres://"),
        "{said}"
    );
    assert!(!said.contains("s3cret"), "{said}");

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let said = refused(&format!("sqlite://{}/x.db", missing.display())).await;
    assert!(
        said.contains(&format!("the folder {} does not exist", missing.display())),
        "{said}"
    );

    let port = free_port();
    let said = refused(&format!("postgres://u:s3cret@127.0.0.1:{port}/db")).await;
    assert!(
        said.contains(&format!("connection refused at 127.0.0.1:{port}")),
        "{said}"
    );
    assert_eq!(said.matches("refused").count(), 1, "{said}");
}

/// A database that does not exist is said once, not once per layer of the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn serve_says_a_missing_database_once() {
    let mut url = url::Url::parse(&std::env::var("TEST_DATABASE_URL").unwrap()).unwrap();
    url.set_path("/it_no_such_database");
    let said = refused(url.as_str()).await;
    assert_eq!(said.matches("does not exist").count(), 1, "{said}");
    assert!(said.contains("it_no_such_database"), "{said}");
}

/// A SQLite URL without `?mode=rwc` creates its file; the start-up line names the
/// database and the address; log lines written to a pipe carry no ANSI codes, and each
/// call's line has its code and latency once, the latency rounded to the microsecond.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_creates_its_sqlite_file_and_logs_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new.db");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = executions(&[
        "serve",
        "--listen",
        &listen,
        "--database-url",
        &format!("sqlite://{}", file.display()),
    ])
    .env("RUST_LOG", "info")
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let next = async |lines: &mut tokio::io::Lines<_>| {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("a log line within 30 s")
            .unwrap()
            .expect("the server runs")
    };
    let mut seen = Vec::new();
    let starting = loop {
        let line: String = next(&mut lines).await;
        seen.push(line.clone());
        if line.contains("starting") {
            break line;
        }
    };
    assert!(starting.contains(&format!("listen={listen}")), "{starting}");
    assert!(
        starting.contains(&format!("database=sqlite://{}?mode=rwc", file.display())),
        "{starting}"
    );
    assert!(file.exists());

    let addr = listen.parse().unwrap();
    cli(addr, &["count"]).await.expect_code(0);
    let rpc = loop {
        let line: String = next(&mut lines).await;
        seen.push(line.clone());
        if line.contains("CountExecutions") && line.contains("latency_ms") {
            break line;
        }
    };
    for line in &seen {
        assert!(
            !line.contains('\u{1b}'),
            "no colour codes in a pipe: {line:?}"
        );
    }
    assert_eq!(rpc.matches("code=").count(), 1, "{rpc}");
    assert_eq!(rpc.matches("latency_ms=").count(), 1, "{rpc}");
    let latency = rpc
        .split("latency_ms=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let decimals = latency.split_once('.').map_or(0, |(_, d)| d.len());
    assert!(decimals <= 3, "{latency}");
    server.kill().await.unwrap();
}

/// `--help` shows that DATABASE_URL and EXECUTIONS_TOKEN are read, never their values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_shows_no_secret() {
    let ran =
        finish(executions(&["serve", "--help"]).env("DATABASE_URL", "postgres://u:s3cret@db/x"))
            .await
            .expect_code(0);
    assert!(ran.stdout.contains("DATABASE_URL"), "{}", ran.stdout);
    assert!(!ran.stdout.contains("s3cret"), "{}", ran.stdout);
    let ran = finish(executions(&["watch", "--help"]).env("EXECUTIONS_TOKEN", "t0ken-value"))
        .await
        .expect_code(0);
    assert!(ran.stdout.contains("EXECUTIONS_TOKEN"), "{}", ran.stdout);
    assert!(!ran.stdout.contains("t0ken-value"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("WATCH_EVENT_KIND_SNAPSHOT"),
        "--json is documented: {}",
        ran.stdout
    );
}
