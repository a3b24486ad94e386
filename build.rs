//! Compiles `proto/` into Rust with tonic-prost-build, twice:
//!
//! - the messages and the client (`crate::proto::v1`), and the file descriptor set that
//!   server reflection serves;
//! - the server (`crate::proto::server`), with every message taken from `v1` except the
//!   three that carry executions in answers (`Execution`, `ListExecutionsResponse`,
//!   `WatchExecutionResponse`), which the server sends as pre-encoded bytes shared by
//!   every caller of the same revision (`crate::grpc::wire`).
//!
//! protoc comes from `protoc-bin-vendored`, so a fresh machine needs nothing installed
//! beyond the Rust toolchain.

use std::{env, path::PathBuf};

const PROTO: &str = "proto/workflow/executions/v1/executions.proto";

fn config() -> Result<tonic_prost_build::Config, Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    Ok(config)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_server(false)
        .file_descriptor_set_path(out_dir.join("executions_descriptor.bin"))
        .compile_with_config(config()?, &[PROTO], &["proto"])?;

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
        .compile_with_config(config()?, &[PROTO], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
