//! Workflow templates for the load, shaped like the bundled fork/join example: start, then
//! blocks of a fan-out into parallel branches joined by one action, chained one after the
//! other; plus wide ones (start → n parallel actions) for watch fan-out.

use executions::proto::v1 as pb;
use prost_types::value::Kind;

/// Id of the Start node.
pub const START: &str = "start_of_workflow";
/// The most actions a template may have: 1,000 nodes, one of which is Start.
pub const MAX_ACTIONS: usize = 999;

const TYPES: [&str; 4] = ["HttpRequest", "SendEmail", "SlackMessage", "Delay"];

/// Builds a template node by node; ids `a0, a1, ...` are handed out in topological order.
struct Builder {
    nodes: Vec<pb::Node>,
    edges: Vec<pb::Edge>,
    positions: std::collections::HashMap<String, pb::Position>,
    layer: usize,
    column: usize,
}

impl Builder {
    fn new() -> Self {
        let mut b = Self {
            nodes: vec![pb::Node {
                id: START.into(),
                r#type: "Start".into(),
                name: "Start Workflow".into(),
                data: None,
            }],
            edges: Vec::new(),
            positions: Default::default(),
            layer: 0,
            column: 0,
        };
        b.place(START);
        b.next_layer();
        b
    }

    fn place(&mut self, id: &str) {
        let position = pb::Position {
            x: 200.0 * self.column as f64,
            y: 150.0 * self.layer as f64,
        };
        self.positions.insert(id.to_owned(), position);
        self.column += 1;
    }

    fn next_layer(&mut self) {
        self.layer += 1;
        self.column = 0;
    }

    fn actions(&self) -> usize {
        self.nodes.len() - 1
    }

    /// Adds the next action, with an edge from each of `sources`.
    fn action(&mut self, sources: &[String]) -> String {
        let i = self.actions();
        let id = format!("a{i}");
        let kind = TYPES[i % TYPES.len()];
        self.nodes.push(pb::Node {
            id: id.clone(),
            r#type: kind.into(),
            name: format!("{kind} step {i}"),
            data: Some(object(&[
                (
                    "url",
                    text(&format!("https://service-{}.internal/run", i % 7)),
                ),
                ("method", text("POST")),
                ("timeout_ms", number(5_000.0)),
            ])),
        });
        for source in sources {
            self.edges.push(pb::Edge {
                source: source.clone(),
                target: id.clone(),
            });
        }
        self.place(&id);
        id
    }

    fn finish(self) -> pb::Template {
        let width = self.positions.values().map(|p| p.x).fold(0.0, f64::max) + 200.0;
        let height = self.positions.values().map(|p| p.y).fold(0.0, f64::max) + 150.0;
        pb::Template {
            nodes: self.nodes,
            edges: self.edges,
            positions: self.positions,
            width,
            height,
            action_types: TYPES.iter().map(|t| (*t).to_owned()).collect(),
        }
    }
}

/// A template of `actions` actions (at most [`MAX_ACTIONS`]): fork/join blocks whose
/// fan-out (2 to 4 branches) varies with `variant` and from block to block, then a short
/// chain for what is left. Every action's sources have smaller ids, so completing `a0,
/// a1, ...` in order always finds the next one ready.
pub fn fork_join(actions: usize, variant: usize) -> pb::Template {
    let actions = actions.clamp(1, MAX_ACTIONS);
    let mut b = Builder::new();
    let mut tail = START.to_owned();
    let mut block = 0;
    while b.actions() < actions {
        let width = 2 + (variant + block) % 3;
        if actions - b.actions() > width {
            let branches: Vec<String> = (0..width).map(|_| b.action(&[tail.clone()])).collect();
            b.next_layer();
            tail = b.action(&branches);
        } else {
            tail = b.action(&[tail]);
        }
        b.next_layer();
        block += 1;
    }
    b.finish()
}

/// Start → `actions` parallel actions: every action is ready at once and none depends on
/// another, so many changes can be made without finishing the execution.
pub fn wide(actions: usize) -> pb::Template {
    let mut b = Builder::new();
    for _ in 0..actions.clamp(1, MAX_ACTIONS) {
        b.action(&[START.to_owned()]);
    }
    b.finish()
}

/// Start → `actions` parallel actions of a type and a name only: no data, no layout (the
/// watched executions of BENCHMARKS.md's "Watch fan-out" figures).
pub fn bare(actions: usize) -> pb::Template {
    let node = |id: String, kind: &str, name: String| pb::Node {
        id,
        r#type: kind.into(),
        name,
        data: None,
    };
    let mut nodes = vec![node(START.into(), "Start", "Start".into())];
    let mut edges = Vec::new();
    for i in 0..actions.clamp(1, MAX_ACTIONS) {
        nodes.push(node(format!("a{i}"), "HttpRequest", format!("Action {i}")));
        edges.push(pb::Edge {
            source: START.into(),
            target: format!("a{i}"),
        });
    }
    pb::Template {
        nodes,
        edges,
        ..Default::default()
    }
}

/// Node ids of a template's actions, in the order they can be completed.
pub fn action_ids(template: &pb::Template) -> Vec<String> {
    template
        .nodes
        .iter()
        .filter(|n| n.r#type != "Start")
        .map(|n| n.id.clone())
        .collect()
}

/// A StartExecution request for `template`, the `n`th of the load. Answers in the BASIC
/// view, as an engine that only needs the id would ask.
pub fn start_request(template: pb::Template, n: usize) -> pb::StartExecutionRequest {
    pb::StartExecutionRequest {
        key: format!("loadgen_{}", template.nodes.len() - 1),
        name: format!("Load execution {n}"),
        template: Some(template),
        execution_data: Some(object(&[
            ("customer_id", text(&format!("c-{}", n % 10_000))),
            ("plan", text(["free", "pro", "enterprise"][n % 3])),
            ("region", text("eu-west-1")),
        ])),
        view: pb::ExecutionView::Basic as i32,
        ..Default::default()
    }
}

fn object(fields: &[(&str, prost_types::Value)]) -> prost_types::Struct {
    prost_types::Struct {
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    }
}

fn text(s: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

fn number(n: f64) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::NumberValue(n)),
    }
}
