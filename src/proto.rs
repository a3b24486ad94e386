//! Code generated from `proto/workflow/executions/v1/executions.proto` by build.rs: the
//! messages and the client ([`v1`]), and the server ([`server`]), which answers with the
//! pre-encoded forms of `crate::grpc::wire` and uses the codec of `crate::grpc::codec`.

/// Package `workflow.executions.v1`.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    rust_2018_idioms,
    rustdoc::invalid_html_tags
)]
pub mod v1 {
    tonic::include_proto!("workflow.executions.v1");

    /// Encoded file descriptor set of the package, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("executions_descriptor");
}

/// The `ExecutionService` server of package `workflow.executions.v1`, answering with
/// pre-encoded executions.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    rust_2018_idioms,
    rustdoc::invalid_html_tags
)]
pub mod server {
    include!(concat!(
        env!("OUT_DIR"),
        "/server/workflow.executions.v1.rs"
    ));
}

#[cfg(test)]
mod tests {
    use prost::Message;

    /// The descriptor set that reflection serves decodes, and describes the service.
    #[test]
    fn the_descriptor_set_decodes() {
        let set = prost_types::FileDescriptorSet::decode(super::v1::FILE_DESCRIPTOR_SET)
            .expect("descriptor set decodes");
        let file = set
            .file
            .iter()
            .find(|f| f.package() == "workflow.executions.v1")
            .expect("the package is described");
        assert!(file.service.iter().any(|s| s.name() == "ExecutionService"));
    }
}
