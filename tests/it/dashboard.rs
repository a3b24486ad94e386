//! The dashboard in a real browser: `web/e2e/dashboard.mjs` drives Debian's Chromium
//! (playwright-core) against two real servers, one open and one with tokens, and this
//! test reads back over gRPC what the browser did.
//!
//! It needs `node`, Chromium (`/usr/bin/chromium`, or `CHROMIUM`), and `npm ci && npm
//! run generate` in `web/`; without them it is skipped with a note, and under `CI=true`
//! it fails instead (`.ci/run` installs them all). Screenshots go to
//! `target/tmp/dashboard-screenshots/` (`dashboard-screenshots-postgres/` for the run on
//! PostgreSQL, which needs `TEST_DATABASE_URL`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::harness::*;

/// What the browser test needs, or why it cannot run here.
fn browser_tools() -> Result<(PathBuf, PathBuf), String> {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let chromium =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node {
        return Err("node is not on the PATH".into());
    }
    if !chromium.exists() {
        return Err(format!(
            "{} does not exist (apt-get install chromium chromium-driver)",
            chromium.display()
        ));
    }
    for needed in [
        "node_modules/playwright-core",
        "node_modules/axe-core",
        "e2e/gen/workflow/executions/v1/executions_pb.js",
    ] {
        if !web.join(needed).exists() {
            return Err(format!(
                "web/{needed} is missing (cd web && npm ci && npm run generate)"
            ));
        }
    }
    Ok((web, chromium))
}

/// The dashboard, in Chromium, against real servers: a new execution appears in the list
/// within 1 s, and the list lives on WatchExecutions (a stop turns its row within 1 s, or
/// removes it under a RUNNING filter; a cut stream resumes with its cursor; past 250
/// matching it shows the newest 250; no ListExecutions call is ever made), each
/// UpdateAction turns its node within 1 s, the Stop button stops it,
/// markup in names shows as text and runs nothing, nothing shows before a token is given
/// when the server has tokens, a reader gets no Stop button, a token confined to a tenant
/// sees that tenant only, and axe-core finds no
/// serious violation (the script's own checks); the server then confirms the stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_in_a_real_browser() {
    in_a_real_browser(Backend::Sqlite).await;
}

/// [`the_dashboard_in_a_real_browser`] with both servers on PostgreSQL, where the list's
/// feed resumes from a PostgreSQL snapshot rather than SQLite's commit counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn the_dashboard_in_a_real_browser_postgres() {
    in_a_real_browser(Backend::Postgres).await;
}

async fn in_a_real_browser(backend: Backend) {
    let (web, chromium) = match browser_tools() {
        Ok(found) => found,
        Err(missing) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but the browser test cannot run: {missing}"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\nNOTE: dashboard browser test SKIPPED: {missing}\n"
            );
            return;
        }
    };
    let open = TestServer::builder()
        .on(backend)
        .named("dashboard_open")
        .start()
        .await;
    let locked = TestServer::builder()
        .on(backend)
        .named("dashboard_locked")
        .config(tokens_config())
        .start()
        .await;
    // Apart per backend: both runs may be under way at once.
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join(match backend {
        Backend::Sqlite => "dashboard-screenshots",
        Backend::Postgres => "dashboard-screenshots-postgres",
    });
    let run = tokio::process::Command::new("node")
        .arg(web.join("e2e/dashboard.mjs"))
        .current_dir(&web)
        .env("DASHBOARD_URL", format!("http://{}", open.addr))
        .env("DASHBOARD_TOKENS_URL", format!("http://{}", locked.addr))
        .env("DASHBOARD_WRITER_TOKEN", WRITER_TOKEN)
        .env("DASHBOARD_READER_TOKEN", READER_TOKEN)
        .env("DASHBOARD_TENANT_READER_TOKEN", ACME_READER_TOKEN)
        .env("DASHBOARD_TENANT", "acme")
        .env("SCREENSHOT_DIR", &screenshots)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser test ends within 4 minutes")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}"
    );
    // Each check the browser made, for `--nocapture`.
    println!("{stdout}");
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON summary ({e}):\n{stdout}"));
    assert_eq!(last["ok"], true);
    assert!(last["checks"].as_u64().unwrap() >= 20, "{last}");

    // What the browser's Stop did, read back over gRPC.
    let stopped = last["stopped"]
        .as_str()
        .expect("the stopped execution's id");
    let mut client = open.client.clone();
    let e = get(&mut client, stopped).await;
    assert_eq!(e.status(), ExecutionStatus::Stopped);
    assert_eq!(e.stop_reason, "stopped by the browser test");
    assert_consistent(&e);
    assert!(screenshots.join("execution-running.png").exists());
    open.stop().await;
    locked.stop().await;
}
