//! The fault-injection suite: each scenario starts its own PostgreSQL cluster (or SQLite
//! file), its own servers and, where needed, a TCP proxy, injects one fault production
//! brings, and asserts on what clients saw. Every scenario is bounded in time and uses
//! loopback only; each reports the figures it measured ([`report_figures`]).
//!
//! Scenarios that need PostgreSQL's server programs (`cfg(test_pg_cluster)`, see
//! build.rs), or root to mount a filesystem (`cfg(test_root)`), are ignored without them,
//! and counted so; under `CI=true`
//! [`ci_runs_every_scenario`] fails instead.

// A failed unwrap in a test is the test failing, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The integration suite's harness (servers, fixtures, stream reads under a timeout),
// shared rather than copied; this suite uses part of it.
#[path = "../it/harness/mod.rs"]
#[allow(dead_code, unused_imports)]
mod harness;

mod cluster;
mod disk_full;
mod failover;
mod listener;
mod process;
mod proxy;
mod restart;
mod slow_db;

/// Where the scenarios write their figures (`.ci/run` prints the file after `cargo test`,
/// which hides the output of passing tests).
pub fn figures_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults-figures.txt")
}

/// Prints a scenario's figures and appends them to [`figures_file`].
pub fn report_figures(line: &str) {
    use std::io::Write;
    println!("{line}");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(figures_file());
    if let Ok(mut file) = file {
        let _ = writeln!(file, "{line}");
    }
}

/// With `CI=true`, the suite was built where it can start PostgreSQL clusters, so no
/// scenario is ignored.
#[test]
fn ci_runs_every_scenario() {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    if ci && !cfg!(test_pg_cluster) {
        panic!(
            "CI=true but PostgreSQL's initdb/pg_ctl (or runuser, as root) were not found: the fault scenarios would be ignored"
        );
    }
    if ci && !cfg!(test_root) {
        panic!("CI=true but not root: the disk-full scenario (a tmpfs mount) would be ignored");
    }
}
