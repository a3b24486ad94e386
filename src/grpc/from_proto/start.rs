//! StartExecution: the new execution and its template.

use super::well_known::json_object;
use super::{
    MAX_EXECUTION_DATA_BYTES, MAX_KEY_CHARS, bounded, request_id, stop_event, workflow_and_tenant,
};
use crate::domain::quoted;
use crate::domain::rules::NewExecution;
use crate::domain::{Edge, Node, Position, Template};
use crate::error::{Error, OrInternal};
use crate::proto::v1 as pb;

/// A StartExecution request as a validated [`NewExecution`].
pub fn new_execution(req: pb::StartExecutionRequest) -> Result<NewExecution, Error> {
    workflow_and_tenant(&req.key, 1, &req.user_key)?;
    bounded("name", "INVALID_NAME", &req.name, 0, MAX_KEY_CHARS)?;
    let request_id = request_id(req.request_id)?;
    let template =
        template(req.template.ok_or_else(|| {
            Error::invalid("template", "TEMPLATE_MISSING", "template is required")
        })?)?;
    template
        .validate()
        .map_err(|e| Error::invalid(format!("template.{}", e.field), e.reason, e.message))?;
    let execution_data = match req.execution_data {
        None => None,
        Some(data) => {
            let value = serde_json::Value::Object(json_object("execution_data", data)?);
            let size = serde_json::to_vec(&value).or_internal()?.len();
            if size > MAX_EXECUTION_DATA_BYTES {
                return Err(Error::invalid(
                    "execution_data",
                    "EXECUTION_DATA_TOO_LARGE",
                    format!(
                        "execution_data is {size} bytes as JSON; the limit is {MAX_EXECUTION_DATA_BYTES}"
                    ),
                ));
            }
            Some(value)
        }
    };
    Ok(NewExecution {
        key: req.key,
        name: req.name,
        template: template.into(),
        execution_data,
        // Empty when the request names none: the service picks the caller's tenant.
        user_key: req.user_key,
        request_id,
        stop_events: stop_events(req.stop_events)?,
        // Decided by the size check (`grpc::size`), once the execution is known.
        log_budget: 0,
    })
}

/// Most stop events one execution listens to.
pub const MAX_STOP_EVENTS: usize = 32;

/// The stop events an execution listens to: at most 32, each a valid stop event, no
/// duplicates.
fn stop_events(events: Vec<String>) -> Result<Vec<String>, Error> {
    if events.len() > MAX_STOP_EVENTS {
        return Err(Error::invalid(
            "stop_events",
            "INVALID_STOP_EVENT",
            format!(
                "an execution listens to at most {MAX_STOP_EVENTS} stop events, got {}",
                events.len()
            ),
        ));
    }
    for (i, event) in events.iter().enumerate() {
        let field = format!("stop_events[{i}]");
        stop_event(&field, event)?;
        if events[..i].contains(event) {
            return Err(Error::invalid(
                field,
                "INVALID_STOP_EVENT",
                format!("stop event {} is listed twice", quoted(event)),
            ));
        }
    }
    Ok(events)
}

fn template(t: pb::Template) -> Result<Template, Error> {
    let nodes = t
        .nodes
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            Ok(Node {
                id: n.id,
                node_type: n.r#type,
                name: n.name,
                data: n
                    .data
                    .map(|d| json_object(&format!("template.nodes[{i}].data"), d))
                    .transpose()?,
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(Template {
        nodes,
        edges: t
            .edges
            .into_iter()
            .map(|e| Edge {
                source: e.source,
                target: e.target,
            })
            .collect(),
        positions: t
            .positions
            .into_iter()
            .map(|(id, p)| (id, Position { x: p.x, y: p.y }))
            .collect(),
        width: t.width,
        height: t.height,
        action_types: t.action_types,
    })
}
