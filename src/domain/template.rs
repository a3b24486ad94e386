//! The workflow template: its nodes, edges and layout, the rules a template must follow to
//! be run, and the graph queries (predecessors, edge ids) the state machine needs.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::quoting::quoted;

/// The `type` of the one node every template starts from.
pub const START_NODE_TYPE: &str = "Start";
/// Most nodes a template may have, the Start node included.
pub const MAX_NODES: usize = 1_000;
/// Most edges a template may have.
pub const MAX_EDGES: usize = 10_000;
/// Longest node id, in characters.
pub const MAX_NODE_ID_CHARS: usize = 64;
/// Longest node name or node type, in characters.
pub const MAX_NODE_NAME_CHARS: usize = 256;
/// Most entries in `action_types`.
pub const MAX_ACTION_TYPES: usize = 1_000;

/// Layout of a workflow: a DAG of nodes with exactly one Start node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Every node; exactly one has type [`START_NODE_TYPE`].
    pub nodes: Vec<Node>,
    /// Directed edges between nodes.
    pub edges: Vec<Edge>,
    /// Canvas position of each node, by node id.
    #[serde(default)]
    pub positions: BTreeMap<String, Position>,
    /// Canvas width.
    #[serde(default)]
    pub width: f64,
    /// Canvas height.
    #[serde(default)]
    pub height: f64,
    /// Action types the template uses.
    #[serde(default)]
    pub action_types: Vec<String>,
}

/// One node of a template: the Start node or an action.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Unique id within the template.
    pub id: String,
    /// `Start`, or the action's type.
    #[serde(rename = "type")]
    pub node_type: String,
    /// Name for people.
    #[serde(default)]
    pub name: String,
    /// The action's parameters (a JSON object), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A directed edge between two nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Edge {
    /// Id of the source node.
    pub source: String,
    /// Id of the target node.
    pub target: String,
}

/// Canvas position of a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Horizontal coordinate.
    pub x: f64,
    /// Vertical coordinate.
    pub y: f64,
}

/// Why a template cannot be run. `field` names the offending request field, relative to
/// the template (e.g. `nodes[3].id`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// Stable UPPER_SNAKE reason.
    pub reason: &'static str,
    /// Path of the offending field inside the template.
    pub field: String,
    /// What is wrong, for people.
    pub message: String,
}

impl TemplateError {
    fn new(reason: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Edge {
    /// The edge's id in `stats`: `"<source>-<target>"`.
    pub fn id(&self) -> String {
        format!("{}-{}", self.source, self.target)
    }
}

impl Node {
    /// True for the node every execution starts from.
    pub fn is_start(&self) -> bool {
        self.node_type == START_NODE_TYPE
    }
}

impl Template {
    /// Ids of the action nodes (every node but Start), in template order.
    pub fn action_ids(&self) -> impl Iterator<Item = &str> {
        self.nodes
            .iter()
            .filter(|n| !n.is_start())
            .map(|n| n.id.as_str())
    }

    /// Checks every rule a template must follow before it can run: exactly one Start node,
    /// at least one action, bounded and unique node ids (that no edge id collides with),
    /// edges between existing nodes, none into Start, no duplicate edge, and no cycle.
    pub fn validate(&self) -> Result<(), TemplateError> {
        if self.nodes.len() > MAX_NODES {
            return Err(TemplateError::new(
                "TEMPLATE_TOO_MANY_NODES",
                "nodes",
                format!(
                    "a template has at most {MAX_NODES} nodes, got {}",
                    self.nodes.len()
                ),
            ));
        }
        if self.edges.len() > MAX_EDGES {
            return Err(TemplateError::new(
                "TEMPLATE_TOO_MANY_EDGES",
                "edges",
                format!(
                    "a template has at most {MAX_EDGES} edges, got {}",
                    self.edges.len()
                ),
            ));
        }
        if self.action_types.len() > MAX_ACTION_TYPES
            || self
                .action_types
                .iter()
                .any(|t| t.chars().count() > MAX_NODE_NAME_CHARS || t.contains('\0'))
        {
            return Err(TemplateError::new(
                "TEMPLATE_INVALID_ACTION_TYPES",
                "action_types",
                format!(
                    "at most {MAX_ACTION_TYPES} action types of at most {MAX_NODE_NAME_CHARS} characters"
                ),
            ));
        }
        let finite_layout = self.width.is_finite()
            && self.height.is_finite()
            && self
                .positions
                .values()
                .all(|p| p.x.is_finite() && p.y.is_finite());
        if !finite_layout {
            return Err(TemplateError::new(
                "TEMPLATE_INVALID_LAYOUT",
                "positions",
                "width, height and positions must be finite numbers",
            ));
        }
        let mut ids = HashSet::with_capacity(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            check_node(i, node)?;
            if !ids.insert(node.id.as_str()) {
                return Err(TemplateError::new(
                    "TEMPLATE_DUPLICATE_NODE_ID",
                    format!("nodes[{i}].id"),
                    format!("node id {} is used more than once", quoted(&node.id)),
                ));
            }
        }
        let starts: Vec<&Node> = self.nodes.iter().filter(|n| n.is_start()).collect();
        if starts.len() != 1 {
            return Err(TemplateError::new(
                "TEMPLATE_START_NODE_COUNT",
                "nodes",
                format!(
                    "a template has exactly one node of type {START_NODE_TYPE:?}, got {}",
                    starts.len()
                ),
            ));
        }
        if self.nodes.len() == 1 {
            return Err(TemplateError::new(
                "TEMPLATE_NO_ACTIONS",
                "nodes",
                "a template needs at least one action besides the Start node",
            ));
        }
        let start_id = starts[0].id.as_str();
        let mut edge_ids = HashSet::with_capacity(self.edges.len());
        for (i, edge) in self.edges.iter().enumerate() {
            for (end, id) in [("source", &edge.source), ("target", &edge.target)] {
                if !ids.contains(id.as_str()) {
                    return Err(TemplateError::new(
                        "TEMPLATE_UNKNOWN_EDGE_NODE",
                        format!("edges[{i}].{end}"),
                        format!("edge {end} {} is not a node of the template", quoted(id)),
                    ));
                }
            }
            if edge.target == start_id {
                return Err(TemplateError::new(
                    "TEMPLATE_EDGE_INTO_START",
                    format!("edges[{i}].target"),
                    "no edge may lead into the Start node",
                ));
            }
            let edge_id = edge.id();
            if ids.contains(edge_id.as_str()) || !edge_ids.insert(edge_id.clone()) {
                return Err(TemplateError::new(
                    "TEMPLATE_DUPLICATE_EDGE",
                    format!("edges[{i}]"),
                    format!(
                        "edge id {} is not unique among node and edge ids",
                        quoted(&edge_id)
                    ),
                ));
            }
        }
        if let Some(node) = self.node_on_cycle() {
            return Err(TemplateError::new(
                "TEMPLATE_HAS_CYCLE",
                "edges",
                format!("the edges form a cycle through node {}", quoted(node)),
            ));
        }
        Ok(())
    }

    /// A node that lies on a cycle, if the edges have one (Kahn's algorithm: whatever
    /// cannot be peeled off in topological order is on or behind a cycle).
    fn node_on_cycle(&self) -> Option<&str> {
        let mut indegree: HashMap<&str, usize> =
            self.nodes.iter().map(|n| (n.id.as_str(), 0)).collect();
        let mut outgoing: HashMap<&str, Vec<&str>> = HashMap::new();
        for edge in &self.edges {
            *indegree.entry(edge.target.as_str()).or_default() += 1;
            outgoing
                .entry(edge.source.as_str())
                .or_default()
                .push(edge.target.as_str());
        }
        let mut ready: Vec<&str> = indegree
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(id, _)| *id)
            .collect();
        while let Some(id) = ready.pop() {
            indegree.remove(id);
            for target in outgoing.get(id).into_iter().flatten() {
                if let Some(d) = indegree.get_mut(target) {
                    *d -= 1;
                    if *d == 0 {
                        ready.push(target);
                    }
                }
            }
        }
        self.nodes
            .iter()
            .map(|n| n.id.as_str())
            .find(|id| indegree.contains_key(id))
    }
}

fn check_node(i: usize, node: &Node) -> Result<(), TemplateError> {
    let id_chars = node.id.chars().count();
    if id_chars == 0
        || id_chars > MAX_NODE_ID_CHARS
        || node.id.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(TemplateError::new(
            "TEMPLATE_INVALID_NODE",
            format!("nodes[{i}].id"),
            format!("a node id has 1 to {MAX_NODE_ID_CHARS} characters and no whitespace"),
        ));
    }
    if node.node_type.is_empty()
        || node.node_type.chars().count() > MAX_NODE_NAME_CHARS
        || node.node_type.contains('\0')
    {
        return Err(TemplateError::new(
            "TEMPLATE_INVALID_NODE",
            format!("nodes[{i}].type"),
            format!("a node type has 1 to {MAX_NODE_NAME_CHARS} characters"),
        ));
    }
    if node.name.chars().count() > MAX_NODE_NAME_CHARS || node.name.contains('\0') {
        return Err(TemplateError::new(
            "TEMPLATE_INVALID_NODE",
            format!("nodes[{i}].name"),
            format!("a node name has at most {MAX_NODE_NAME_CHARS} characters"),
        ));
    }
    Ok(())
}

/// The edges of a validated template, indexed the way the state machine reads them
/// (borrowed from the template: building one copies nothing).
#[derive(Clone, Debug)]
pub struct Graph<'t> {
    start_id: &'t str,
    predecessors: HashMap<&'t str, Vec<&'t str>>,
    edges: &'t [Edge],
}

impl<'t> Graph<'t> {
    /// Indexes a template that passed [`Template::validate`].
    pub fn new(template: &'t Template) -> Self {
        let start_id = template
            .nodes
            .iter()
            .find(|n| n.is_start())
            .map_or("", |n| n.id.as_str());
        let mut predecessors: HashMap<&'t str, Vec<&'t str>> = HashMap::new();
        for edge in &template.edges {
            predecessors
                .entry(edge.target.as_str())
                .or_default()
                .push(edge.source.as_str());
        }
        Self {
            start_id,
            predecessors,
            edges: &template.edges,
        }
    }

    /// Id of the Start node.
    pub fn start_id(&self) -> &'t str {
        self.start_id
    }

    /// Sources of the edges leading into `node_id`.
    pub fn predecessors(&self, node_id: &str) -> &[&'t str] {
        self.predecessors
            .get(node_id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Every edge, in template order.
    pub fn edges(&self) -> &'t [Edge] {
        self.edges
    }
}

#[cfg(test)]
pub(crate) mod tests;
