//! The example templates in `examples/`, bundled into the binary, and the JSON form of a
//! StartExecution request (the form grpcurl takes) read into the generated type.

use crate::proto::v1 as pb;

/// `examples/linear.json`: a straight line of four actions.
pub const LINEAR: &str = include_str!("../../examples/linear.json");
/// `examples/branching.json`: two branches from Start, one of which splits again, and a
/// last action that is ready as soon as *one* of the three actions before it completes
/// (an action is ready when one incoming edge is open; this is not a join).
pub const BRANCHING: &str = include_str!("../../examples/branching.json");

/// A StartExecution request from its proto3 JSON form (either spelling of field names):
/// a whole request (`key`, `name`, `template`, ...) or, when the JSON has `nodes` at its
/// top, a bare template.
pub fn read_request(json: &serde_json::Value) -> Result<pb::StartExecutionRequest, String> {
    if json.get("nodes").is_some() {
        let template: pb::Template = super::json::from_json(json).map_err(|e| e.to_string())?;
        return Ok(pb::StartExecutionRequest {
            template: Some(template),
            ..Default::default()
        });
    }
    super::json::from_json(json).map_err(|e| e.to_string())
}

/// [`read_request`] for JSON known to be a request (the bundled examples, tests): an
/// empty request when it is not one, for the server to judge.
pub fn start_request(json: &serde_json::Value) -> pb::StartExecutionRequest {
    read_request(json).unwrap_or_default()
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
        for text in [LINEAR, BRANCHING] {
            let request = read_request(&serde_json::from_str(text).unwrap()).unwrap();
            assert!(!request.key.is_empty());
            let template = request.template.unwrap();
            assert!(template.nodes.len() >= 5);
            assert!(template.nodes.iter().any(|n| n.r#type == "Start"));
            assert!(!template.positions.is_empty());
            assert!(request.execution_data.is_some());
        }
    }

    #[test]
    fn a_bare_template_reads_and_a_typo_does_not() {
        let bare = serde_json::json!({"nodes": [{"id": "s", "type": "Start"}], "edges": []});
        let request = read_request(&bare).unwrap();
        assert_eq!(request.template.unwrap().nodes.len(), 1);
        assert!(read_request(&serde_json::json!({"kee": "x"})).is_err());
    }
}
