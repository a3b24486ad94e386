//! The RPCs this server answers, as logs and metrics name them. Any other path is
//! `unknown`, so that callers cannot grow the metrics' label sets without bound.

/// How an RPC streams, as the `grpc_type` label of the standard gRPC server metrics
/// (go-grpc-prometheus, linkerd) names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpcType {
    /// One request, one response.
    Unary,
    /// A stream of requests, one response.
    ClientStream,
    /// One request, a stream of responses.
    ServerStream,
    /// Streams both ways.
    BidiStream,
}

impl RpcType {
    /// The label value: `unary`, `client_stream`, `server_stream` or `bidi_stream`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::ClientStream => "client_stream",
            Self::ServerStream => "server_stream",
            Self::BidiStream => "bidi_stream",
        }
    }
}

/// One RPC: its path without the leading `/` (`package.Service/Method`) and how it
/// streams.
#[derive(Debug, PartialEq, Eq)]
pub struct Rpc {
    /// `package.Service/Method`, or `unknown`.
    pub path: &'static str,
    /// How it streams.
    pub kind: RpcType,
}

impl Rpc {
    /// The fully qualified service (`workflow.executions.v1.ExecutionService`).
    pub fn service(&self) -> &'static str {
        self.path.split_once('/').map_or(self.path, |(s, _)| s)
    }

    /// The method (`GetExecution`).
    pub fn method(&self) -> &'static str {
        self.path.split_once('/').map_or(self.path, |(_, m)| m)
    }
}

const fn rpc(path: &'static str, kind: RpcType) -> Rpc {
    Rpc { path, kind }
}

/// Every RPC served; a unit test checks it against the descriptor sets.
static KNOWN: &[Rpc] = &[
    rpc(
        "workflow.executions.v1.ExecutionService/StartExecution",
        RpcType::Unary,
    ),
    rpc(
        "workflow.executions.v1.ExecutionService/UpdateAction",
        RpcType::Unary,
    ),
    rpc(
        "workflow.executions.v1.ExecutionService/StopExecution",
        RpcType::Unary,
    ),
    rpc(
        "workflow.executions.v1.ExecutionService/GetExecution",
        RpcType::Unary,
    ),
    rpc(
        "workflow.executions.v1.ExecutionService/ListExecutions",
        RpcType::Unary,
    ),
    rpc(
        "workflow.executions.v1.ExecutionService/CountExecutions",
        RpcType::Unary,
    ),
    rpc(
        "workflow.executions.v1.ExecutionService/StopExecutions",
        RpcType::Unary,
    ),
    rpc(
        "workflow.executions.v1.ExecutionService/ListExecutionEvents",
        RpcType::Unary,
    ),
    rpc(
        "workflow.executions.v1.ExecutionService/WatchExecution",
        RpcType::ServerStream,
    ),
    rpc(
        "workflow.executions.v1.ExecutionService/WatchExecutions",
        RpcType::ServerStream,
    ),
    rpc("grpc.health.v1.Health/Check", RpcType::Unary),
    rpc("grpc.health.v1.Health/Watch", RpcType::ServerStream),
    rpc(
        "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        RpcType::BidiStream,
    ),
    rpc(
        "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        RpcType::BidiStream,
    ),
];

/// What any other path is counted as.
static UNKNOWN: Rpc = rpc("unknown", RpcType::Unary);

/// The RPC a request path (`/package.Service/Method`) names, or `unknown`.
pub fn rpc_of(path: &str) -> &'static Rpc {
    let path = path.strip_prefix('/').unwrap_or(path);
    KNOWN
        .iter()
        .find(|known| known.path == path)
        .unwrap_or(&UNKNOWN)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn unknown_paths_do_not_grow_the_labels() {
        let get = rpc_of("/workflow.executions.v1.ExecutionService/GetExecution");
        assert_eq!(
            get.path,
            "workflow.executions.v1.ExecutionService/GetExecution"
        );
        assert_eq!(get.service(), "workflow.executions.v1.ExecutionService");
        assert_eq!(get.method(), "GetExecution");
        assert_eq!(rpc_of("/x.Y/Z").path, "unknown");
        assert_eq!(rpc_of("/x.Y/Z").service(), "unknown");
        assert_eq!(rpc_of("/x.Y/Z").method(), "unknown");
    }

    /// Every method of every service the server registers is known, with its streaming
    /// type, so a new RPC cannot be counted as `unknown` by mistake.
    #[test]
    fn every_served_method_is_known_with_its_type() {
        let sets = [
            crate::proto::v1::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        let mut described = 0;
        for set in sets {
            let set = prost_types::FileDescriptorSet::decode(set).unwrap();
            for file in &set.file {
                for service in &file.service {
                    for method in &service.method {
                        let path =
                            format!("{}.{}/{}", file.package(), service.name(), method.name());
                        let kind = match (method.client_streaming(), method.server_streaming()) {
                            (false, false) => RpcType::Unary,
                            (true, false) => RpcType::ClientStream,
                            (false, true) => RpcType::ServerStream,
                            (true, true) => RpcType::BidiStream,
                        };
                        let known = rpc_of(&format!("/{path}"));
                        assert_eq!(known.path, path, "{path} is not in KNOWN");
                        assert_eq!(known.kind, kind, "type of {path}");
                        described += 1;
                    }
                }
            }
        }
        assert_eq!(described, KNOWN.len(), "KNOWN lists a method nobody serves");
    }
}
