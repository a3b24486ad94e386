//! The example templates in `examples/`, bundled into the binary, and the JSON form of a
//! StartExecution request (the form grpcurl takes) read into the generated type.

use crate::proto::v1 as pb;

/// `examples/linear.json`: a straight line of four actions.
pub const LINEAR: &str = include_str!("../../examples/linear.json");
/// `examples/fork_join.json`: a fork into parallel actions and a join.
pub const FORK_JOIN: &str = include_str!("../../examples/fork_join.json");

/// A StartExecution request from its JSON form (`key`, `name`, `user_key`,
/// `execution_data`, `template` with `nodes`, `edges`, `positions`, `width`, `height`,
/// `action_types`). Missing fields are left empty for the server to judge.
pub fn start_request(json: &serde_json::Value) -> pb::StartExecutionRequest {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let list = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
    let t = &json["template"];
    let template = pb::Template {
        nodes: list(&t["nodes"])
            .iter()
            .map(|n| pb::Node {
                id: s(&n["id"]),
                r#type: s(&n["type"]),
                name: s(&n["name"]),
                data: n.get("data").map(to_struct),
            })
            .collect(),
        edges: list(&t["edges"])
            .iter()
            .map(|e| pb::Edge {
                source: s(&e["source"]),
                target: s(&e["target"]),
            })
            .collect(),
        positions: t["positions"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(id, p)| {
                let n = |k: &str| p[k].as_f64().unwrap_or_default();
                (
                    id.clone(),
                    pb::Position {
                        x: n("x"),
                        y: n("y"),
                    },
                )
            })
            .collect(),
        width: t["width"].as_f64().unwrap_or_default(),
        height: t["height"].as_f64().unwrap_or_default(),
        action_types: list(&t["action_types"]).iter().map(s).collect(),
    };
    pb::StartExecutionRequest {
        key: s(&json["key"]),
        name: s(&json["name"]),
        template: Some(template),
        execution_data: json.get("execution_data").map(to_struct),
        user_key: s(&json["user_key"]),
        ..Default::default()
    }
}

/// A JSON object as a protobuf Struct (anything else: an empty one).
pub fn to_struct(v: &serde_json::Value) -> prost_types::Struct {
    match v.as_object() {
        Some(map) => crate::grpc::json_to_struct(map),
        None => prost_types::Struct::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_examples_read() {
        for text in [LINEAR, FORK_JOIN] {
            let request = start_request(&serde_json::from_str(text).unwrap());
            assert!(!request.key.is_empty());
            let template = request.template.unwrap();
            assert!(template.nodes.len() >= 5);
            assert!(template.nodes.iter().any(|n| n.r#type == "Start"));
            assert!(request.execution_data.is_some());
        }
    }
}
