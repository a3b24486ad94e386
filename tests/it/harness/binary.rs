//! The real `executions` binary, run as a person or a script would run it.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// `executions ARGS…` with stdin empty and stdout/stderr piped, killed on drop. The
/// variables that would change its defaults are removed.
pub fn executions(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_executions"));
    command
        .args(args)
        .env_remove("EXECUTIONS_ADDR")
        .env_remove("EXECUTIONS_TOKEN")
        .env_remove("DATABASE_URL")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// What a finished run printed, and its exit code.
#[derive(Debug)]
pub struct Ran {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Ran {
    /// Stdout as JSON (panics, showing both streams, when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    /// Panics, showing both streams, unless it exited with `code`.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `command` to its end (at most 60 s).
pub async fn finish(command: &mut Command) -> Ran {
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the command ends within 60 s")
        .expect("run executions");
    Ran {
        code: output.status.code().expect("an exit code, not a signal"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the client command `args` against the server at `addr` (given as `HOST:PORT`,
/// with no scheme, as a person types it).
pub async fn cli(addr: SocketAddr, args: &[&str]) -> Ran {
    let addr = addr.to_string();
    let mut all = args.to_vec();
    all.extend(["--addr", &addr]);
    finish(&mut executions(&all)).await
}
