//! The Python clients of the hostile-client tests (`tests/hostile/*.py`): a raw HTTP/2
//! client (`h2`) that sends what gRPC libraries never would, and grpcio for what a
//! default Python client sees.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// `python3`, which must import every one of `modules`: the tests that call this are
/// ignored when the suite was built without them (build.rs sets `cfg(test_python_h2)`
/// and `cfg(test_python_grpc)`), so reaching here without them (`--include-ignored`)
/// fails the test.
pub fn python(modules: &[&str]) -> &'static str {
    let imports = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    let found = std::process::Command::new("python3")
        .args(["-c", &imports])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "python3 cannot import {modules:?} (python3 -m pip install h2 grpcio grpcio-tools, then `touch build.rs` so that the suite is built with them)"
    );
    "python3"
}

/// Path of a script under `tests/hostile/`.
pub fn hostile_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("hostile")
        .join(name)
}

/// Runs `tests/hostile/<script>` with `args` (at most `limit`), and parses the JSON
/// object it prints last.
pub async fn run_hostile(
    python: &str,
    script: &str,
    args: &[&str],
    limit: Duration,
) -> serde_json::Value {
    let output = tokio::time::timeout(
        limit,
        tokio::process::Command::new(python)
            .arg(hostile_script(script))
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{script} {args:?} ran past {limit:?}"))
    .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|err| {
        panic!(
            "{script} {args:?} printed no JSON ({err}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The protobuf encoding of a message with one string field 1 (`id`), as Get and
/// Watch requests are, in hex for `h2probe.py --payload`.
pub fn id_request_hex(id: &str) -> String {
    use prost::Message;
    hex::encode(
        executions::proto::v1::GetExecutionRequest {
            id: id.to_owned(),
            ..Default::default()
        }
        .encode_to_vec(),
    )
}
