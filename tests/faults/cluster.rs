//! A PostgreSQL cluster of the fault suite's own (`initdb` and `pg_ctl` from
//! `TEST_PG_BIN`, on a free loopback port, in a temporary data folder), so that restarting
//! or killing it touches no other test. As root the programs run as the `postgres` user
//! (PostgreSQL refuses root). Dropping a [`Cluster`] stops it (immediate mode) and removes
//! its folder, even when the test panics.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sea_orm::ConnectionTrait;

use crate::harness::free_port;

/// A running (or stopped) cluster of one test.
pub struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// The port it listens on (127.0.0.1 only).
    pub port: u16,
}

/// The folder of PostgreSQL's programs (build.rs found it; see `cfg(test_pg_cluster)`).
#[cfg(test_pg_cluster)]
fn bin() -> PathBuf {
    PathBuf::from(env!("TEST_PG_BIN"))
}

#[cfg(not(test_pg_cluster))]
fn bin() -> PathBuf {
    panic!("built without cfg(test_pg_cluster): PostgreSQL's programs were not found")
}

fn as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

/// Runs `program args` (as `postgres` when root) and panics, showing its output, if it
/// fails.
fn run(program: &Path, args: &[&str]) {
    let mut command = if as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let output = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} {args:?}: {}\n{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A temporary folder the PostgreSQL programs may write (owned by `postgres` as root).
fn owned_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("faults_pg_")
        .tempdir()
        .expect("temp dir");
    if as_root() {
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(chown.success(), "chown the data folder to postgres");
    }
    dir
}

impl Cluster {
    /// Initialises a cluster (trust authentication, user `postgres`) and starts it.
    pub fn start() -> Self {
        let cluster = Cluster {
            bin: bin(),
            port: free_port(),
            dir: owned_tempdir(),
        };
        run(
            &cluster.bin.join("initdb"),
            &[
                "-D",
                cluster.data().to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        );
        cluster.start_again();
        cluster
    }

    /// A streaming standby of `primary` (pg_basebackup `-R`, WAL streamed), started.
    pub fn standby_of(primary: &Cluster) -> Self {
        let cluster = Cluster {
            bin: bin(),
            port: free_port(),
            dir: owned_tempdir(),
        };
        run(
            &cluster.bin.join("pg_basebackup"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
                cluster.data().to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        cluster.start_again();
        cluster
    }

    /// Promotes a standby to primary and waits until it is one.
    pub fn promote(&self) {
        run(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "promote",
            ],
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts it (after [`Cluster::stop`]) and waits until it accepts connections.
    pub fn start_again(&self) {
        let data = self.data();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        run(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                self.dir.path().join("log").to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
    }

    /// Stops it (fast mode: connections are cut, as on a restart).
    pub fn stop(&self) {
        let data = self.data();
        run(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "-t",
                "30",
                "stop",
            ],
        );
    }

    /// A connection to its `postgres` database.
    pub async fn admin(&self) -> sea_orm::DatabaseConnection {
        sea_orm::Database::connect(self.url())
            .await
            .expect("connect to the test cluster")
    }

    /// Runs `sql` on its `postgres` database.
    pub async fn execute(&self, sql: &str) {
        let admin = self.admin().await;
        admin.execute_unprepared(sql).await.expect(sql);
        admin.close().await.ok();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Never panic here (it may run while a test unwinds); the folder goes with `dir`.
        let mut command = if as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = command
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Waits up to `within` for `check` to hold, polling every 50 ms.
pub async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
