//! Compiles `proto/` into Rust with tonic-prost-build and writes the file descriptor set
//! that server reflection serves. protoc comes from `protoc-bin-vendored`, so a fresh
//! machine needs nothing installed beyond the Rust toolchain.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Build scripts run single-threaded; prost-build reads PROTOC.
    unsafe { env::set_var("PROTOC", protoc) };

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // Small per-call buffers: see `crate::proto::codec`.
        .codec_path("crate::proto::codec::SmallBufferCodec")
        .file_descriptor_set_path(out_dir.join("executions_descriptor.bin"))
        .compile_protos(
            &["proto/workflow/executions/v1/executions.proto"],
            &["proto"],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
