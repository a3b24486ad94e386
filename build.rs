//! Compiles `proto/` into Rust with tonic-prost-build and writes the file descriptor set
//! that server reflection serves. protoc comes from `protoc-bin-vendored`, so a fresh
//! machine needs nothing installed beyond the Rust toolchain.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // Small per-call buffers: see `crate::grpc::codec`.
        .codec_path("crate::grpc::codec::SmallBufferCodec")
        .file_descriptor_set_path(out_dir.join("executions_descriptor.bin"))
        .compile_with_config(
            config,
            &["proto/workflow/executions/v1/executions.proto"],
            &["proto"],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
