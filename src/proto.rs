//! Code generated from `proto/workflow/executions/v1/executions.proto` by build.rs.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Package `workflow.executions.v1`.
pub mod v1 {
    tonic::include_proto!("workflow.executions.v1");

    /// Encoded file descriptor set of the package, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("executions_descriptor");
}
