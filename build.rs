//! Compiles `proto/` into Rust with tonic-prost-build, twice:
//!
//! - the messages and the client (`crate::proto::v1`), and the file descriptor set that
//!   server reflection serves;
//! - the server (`crate::proto::server`), with every message taken from `v1` except the
//!   four that carry executions in answers (`Execution`, `ListExecutionsResponse`,
//!   `WatchExecutionResponse`, `WatchExecutionsResponse`), which the server sends as
//!   pre-encoded bytes shared by every caller of the same revision (`crate::grpc::wire`).
//!
//! protoc comes from `protoc-bin-vendored`, so a fresh machine needs nothing installed
//! beyond the Rust toolchain.
//!
//! It also says what the integration suite can run here, as cfgs that mark the tests
//! needing something absent `#[ignore]`d (counted as ignored, not passed):
//! `test_database` when `TEST_DATABASE_URL` is set, `test_grpcurl` when `grpcurl` runs,
//! `test_python_h2` / `test_python_grpc` when `python3` imports `h2` / `grpc` and
//! `grpc_tools`, `test_pg_cluster` (with `TEST_PG_BIN`, the folder of `initdb` and
//! `pg_ctl`) when the fault suite can start PostgreSQL clusters of its own, `test_root`
//! when it runs as root (it mounts a small tmpfs). Tools installed after a build are seen once build.rs runs again
//! (`touch build.rs`); a change of `TEST_DATABASE_URL` or `PATH` reruns it.

use std::{env, path::PathBuf};

const PROTO: &str = "proto/workflow/executions/v1/executions.proto";

fn config() -> Result<tonic_prost_build::Config, Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    Ok(config)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let mut client_config = config()?;
    // `prost::Name` on every message: the CLI prints and reads them as proto3 JSON by
    // their full names (`crate::cli::json`).
    client_config.enable_type_names();
    tonic_prost_build::configure()
        .build_server(false)
        .file_descriptor_set_path(out_dir.join("executions_descriptor.bin"))
        .compile_with_config(client_config, &[PROTO], &["proto"])?;

    let server_dir = out_dir.join("server");
    std::fs::create_dir_all(&server_dir)?;
    tonic_prost_build::configure()
        .build_client(false)
        .out_dir(&server_dir)
        // Small per-call buffers: see `crate::grpc::codec`.
        .codec_path("crate::grpc::codec::SmallBufferCodec")
        .extern_path(".workflow.executions.v1", "crate::proto::v1")
        .extern_path(
            ".workflow.executions.v1.Execution",
            "crate::grpc::wire::SharedExecution",
        )
        .extern_path(
            ".workflow.executions.v1.ListExecutionsResponse",
            "crate::grpc::wire::ListPage",
        )
        .extern_path(
            ".workflow.executions.v1.WatchExecutionResponse",
            "crate::grpc::wire::WatchEvent",
        )
        .extern_path(
            ".workflow.executions.v1.WatchExecutionsResponse",
            "crate::grpc::wire::FeedEvent",
        )
        .compile_with_config(config()?, &[PROTO], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    test_cfgs();
    Ok(())
}

/// The cfgs of the integration suite (see the module doc).
fn test_cfgs() {
    use std::process::{Command, Stdio};
    println!(
        "cargo:rustc-check-cfg=cfg(test_database, test_grpcurl, test_python_h2, test_python_grpc, test_pg_cluster, test_root)"
    );
    println!("cargo:rerun-if-env-changed=TEST_DATABASE_URL");
    println!("cargo:rerun-if-env-changed=PATH");
    if env::var("TEST_DATABASE_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo:rustc-cfg=test_database");
    }
    let runs = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    if root {
        println!("cargo:rustc-cfg=test_root");
    }
    if let Some(bin) = postgres_bin(root, &runs) {
        println!("cargo:rustc-cfg=test_pg_cluster");
        println!("cargo:rustc-env=TEST_PG_BIN={}", bin.display());
    }
    if runs("grpcurl", &["-version"]) {
        println!("cargo:rustc-cfg=test_grpcurl");
    }
    if runs("python3", &["-c", "import h2"]) {
        println!("cargo:rustc-cfg=test_python_h2");
    }
    if runs("python3", &["-c", "import grpc, grpc_tools"]) {
        println!("cargo:rustc-cfg=test_python_grpc");
    }
}

/// The folder of PostgreSQL's server programs (`initdb`, `pg_ctl`, `pg_basebackup`) when
/// the fault suite can start clusters with them here: as the current user, or, as root
/// (PostgreSQL refuses root), as the `postgres` user through `runuser`.
fn postgres_bin(root: bool, runs: &dyn Fn(&str, &[&str]) -> bool) -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    versions.sort();
    let bin = versions.pop()?;
    let usable = !root || runs("runuser", &["-u", "postgres", "--", "true"]);
    usable.then_some(bin)
}
