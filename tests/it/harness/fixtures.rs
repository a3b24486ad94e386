//! Templates, requests and the calls tests make over and over.

use std::path::PathBuf;

use executions::proto::v1 as pb;

use super::ActionStatus;

/// A client of the API over one HTTP/2 connection.
pub type Client = executions::proto::v1::execution_service_client::ExecutionServiceClient<
    tonic::transport::Channel,
>;

/// Path of a file under `examples/`.
pub fn example_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// The StartExecution request of an example file (`linear.json`, `branching.json`).
pub fn example(name: &str) -> pb::StartExecutionRequest {
    let text = std::fs::read_to_string(example_path(name)).expect("example file");
    let json: serde_json::Value = serde_json::from_str(&text).expect("example JSON");
    start_request(&json)
}

pub use executions::cli::examples::{start_request, to_struct};

/// A linear template of `n` actions: start -> a1 -> a2 -> ... -> an.
pub fn chain(n: usize) -> pb::Template {
    let mut nodes = vec![node("start_of_workflow", "Start")];
    let mut edges = Vec::new();
    let mut previous = "start_of_workflow".to_owned();
    for i in 1..=n {
        let id = format!("a{i}");
        nodes.push(node(&id, "Http"));
        edges.push(edge(&previous, &id));
        previous = id;
    }
    pb::Template {
        nodes,
        edges,
        ..Default::default()
    }
}

/// A template node.
pub fn node(id: &str, node_type: &str) -> pb::Node {
    pb::Node {
        id: id.into(),
        r#type: node_type.into(),
        name: id.to_uppercase(),
        data: None,
    }
}

/// A template edge.
pub fn edge(source: &str, target: &str) -> pb::Edge {
    pb::Edge {
        source: source.into(),
        target: target.into(),
    }
}

/// start -> n parallel actions `p0` .. `p{n-1}`.
pub fn fan(n: usize) -> pb::Template {
    let mut nodes = vec![node("start_of_workflow", "Start")];
    let mut edges = Vec::new();
    for i in 0..n {
        let id = format!("p{i}");
        nodes.push(node(&id, "Http"));
        edges.push(edge("start_of_workflow", &id));
    }
    pb::Template {
        nodes,
        edges,
        ..Default::default()
    }
}

/// A StartExecution request of a two-action chain with this key and tenant.
pub fn start_request_for(key: &str, user_key: &str) -> pb::StartExecutionRequest {
    pb::StartExecutionRequest {
        key: key.into(),
        name: key.into(),
        user_key: user_key.into(),
        template: Some(chain(2)),
        ..Default::default()
    }
}

/// A GetExecution request of `id` (FULL view, default zone).
pub fn get_request(id: &str) -> pb::GetExecutionRequest {
    pb::GetExecutionRequest {
        id: id.into(),
        ..Default::default()
    }
}

/// A WatchExecution request of `id` from the start.
pub fn watch_request(id: &str) -> pb::WatchExecutionRequest {
    pb::WatchExecutionRequest {
        id: id.into(),
        ..Default::default()
    }
}

/// A StopExecution request of `id`.
pub fn stop_request(id: &str, reason: &str) -> pb::StopExecutionRequest {
    pb::StopExecutionRequest {
        id: id.into(),
        reason: reason.into(),
        ..Default::default()
    }
}

/// Starts an execution of an example file (see [`example`]).
pub async fn start_example(client: &mut Client, name: &str) -> pb::Execution {
    client
        .start_execution(example(name))
        .await
        .expect("start")
        .into_inner()
}

/// Starts an execution of `template` with key `key`.
pub async fn start(client: &mut Client, key: &str, template: pb::Template) -> pb::Execution {
    client
        .start_execution(pb::StartExecutionRequest {
            key: key.into(),
            name: format!("{key} run"),
            template: Some(template),
            ..Default::default()
        })
        .await
        .expect("start")
        .into_inner()
}

/// An UpdateAction request.
pub fn report(execution_id: &str, node_id: &str, status: ActionStatus) -> pb::UpdateActionRequest {
    pb::UpdateActionRequest {
        execution_id: execution_id.into(),
        node_id: node_id.into(),
        status: status as i32,
        scheduled_at: (status == ActionStatus::Scheduled).then_some(prost_types::Timestamp {
            seconds: 1_900_000_000,
            nanos: 0,
        }),
        failure_note: if status == ActionStatus::Failed {
            "worker crashed".into()
        } else {
            String::new()
        },
        ..Default::default()
    }
}

/// Reports `status` for an action and returns the execution.
pub async fn update(
    client: &mut Client,
    execution_id: &str,
    node_id: &str,
    status: ActionStatus,
) -> pb::Execution {
    client
        .update_action(report(execution_id, node_id, status))
        .await
        .unwrap_or_else(|e| panic!("update {node_id} to {status:?}: {e:?}"))
        .into_inner()
}

/// Reads an execution (FULL view).
pub async fn get(client: &mut Client, id: &str) -> pb::Execution {
    client
        .get_execution(get_request(id))
        .await
        .expect("get")
        .into_inner()
}
