//! Code generated from `proto/workflow/executions/v1/executions.proto` by build.rs. The
//! codec it uses is hand-written and lives in `crate::grpc::codec`.

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
