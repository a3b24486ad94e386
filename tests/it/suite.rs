//! The suite itself: under `CI=true` every part of it runs, none is ignored for want of
//! a database or a tool.

/// With `CI=true`, the suite was built with PostgreSQL (`TEST_DATABASE_URL`), grpcurl,
/// and Python's h2 and grpcio, so no test of theirs is ignored.
#[test]
fn ci_runs_every_test() {
    if std::env::var("CI").as_deref() != Ok("true") {
        return;
    }
    let parts = [
        (cfg!(test_database), "TEST_DATABASE_URL (PostgreSQL)"),
        (cfg!(test_grpcurl), "grpcurl"),
        (cfg!(test_python_h2), "python3 with h2"),
        (
            cfg!(test_python_grpc),
            "python3 with grpcio and grpcio-tools",
        ),
    ];
    let missing: Vec<&str> = parts
        .iter()
        .filter(|(built, _)| !built)
        .map(|(_, what)| *what)
        .collect();
    assert!(
        missing.is_empty(),
        "CI=true but the suite was built without {missing:?}: their tests would be ignored"
    );
}
