//! Unit tests of [`super`].

use super::*;

pub(crate) fn node(id: &str, node_type: &str) -> Node {
    Node {
        id: id.into(),
        node_type: node_type.into(),
        name: id.to_uppercase(),
        data: None,
    }
}

pub(crate) fn edge(source: &str, target: &str) -> Edge {
    Edge {
        source: source.into(),
        target: target.into(),
    }
}

/// start -> a, start -> b, a -> c, b -> c: a fork and a join.
pub(crate) fn diamond() -> Template {
    Template {
        nodes: vec![
            node("start", START_NODE_TYPE),
            node("a", "Http"),
            node("b", "Http"),
            node("c", "Email"),
        ],
        edges: vec![
            edge("start", "a"),
            edge("start", "b"),
            edge("a", "c"),
            edge("b", "c"),
        ],
        ..Template::default()
    }
}

fn reason(template: &Template) -> &'static str {
    template.validate().unwrap_err().reason
}

#[test]
fn a_diamond_is_valid() {
    diamond().validate().unwrap();
    assert_eq!(diamond().action_ids().collect::<Vec<_>>(), ["a", "b", "c"]);
}

#[test]
fn refuses_a_cycle() {
    let mut t = diamond();
    t.edges.push(edge("c", "a"));
    assert_eq!(reason(&t), "TEMPLATE_HAS_CYCLE");
    let mut t = diamond();
    t.edges.push(edge("c", "c"));
    assert_eq!(reason(&t), "TEMPLATE_HAS_CYCLE");
}

#[test]
fn refuses_zero_or_two_start_nodes() {
    let mut t = diamond();
    t.nodes.push(node("start2", START_NODE_TYPE));
    assert_eq!(reason(&t), "TEMPLATE_START_NODE_COUNT");
    let mut t = diamond();
    t.nodes[0].node_type = "Http".into();
    assert_eq!(reason(&t), "TEMPLATE_START_NODE_COUNT");
}

#[test]
fn refuses_dangling_and_duplicate_edges_and_edges_into_start() {
    let mut t = diamond();
    t.edges.push(edge("a", "ghost"));
    assert_eq!(reason(&t), "TEMPLATE_UNKNOWN_EDGE_NODE");
    let mut t = diamond();
    t.edges.push(edge("a", "c"));
    assert_eq!(reason(&t), "TEMPLATE_DUPLICATE_EDGE");
    let mut t = diamond();
    t.edges.push(edge("a", "start"));
    assert_eq!(reason(&t), "TEMPLATE_EDGE_INTO_START");
}

#[test]
fn refuses_an_edge_id_that_is_a_node_id() {
    let mut t = diamond();
    t.nodes.push(node("a-c", "Http"));
    assert_eq!(reason(&t), "TEMPLATE_DUPLICATE_EDGE");
}

#[test]
fn refuses_bad_node_ids_and_sizes() {
    let mut t = diamond();
    t.nodes[1].id = "b".into();
    assert_eq!(reason(&t), "TEMPLATE_DUPLICATE_NODE_ID");
    let mut t = diamond();
    t.nodes[1].id = String::new();
    assert_eq!(reason(&t), "TEMPLATE_INVALID_NODE");
    let mut t = diamond();
    t.nodes[1].id = "x".repeat(MAX_NODE_ID_CHARS + 1);
    assert_eq!(reason(&t), "TEMPLATE_INVALID_NODE");
    let mut t = diamond();
    t.nodes[1].id = "has space".into();
    assert_eq!(reason(&t), "TEMPLATE_INVALID_NODE");
    let mut t = diamond();
    t.nodes
        .extend((0..MAX_NODES).map(|i| node(&format!("n{i}"), "Http")));
    assert_eq!(reason(&t), "TEMPLATE_TOO_MANY_NODES");
    let t = Template {
        nodes: vec![node("start", START_NODE_TYPE)],
        ..Template::default()
    };
    assert_eq!(reason(&t), "TEMPLATE_NO_ACTIONS");
}

#[test]
fn refuses_non_finite_layout() {
    let mut t = diamond();
    t.width = f64::NAN;
    assert_eq!(reason(&t), "TEMPLATE_INVALID_LAYOUT");
    let mut t = diamond();
    t.positions.insert(
        "a".into(),
        Position {
            x: f64::INFINITY,
            y: 0.0,
        },
    );
    assert_eq!(reason(&t), "TEMPLATE_INVALID_LAYOUT");
}

#[test]
fn exactly_max_nodes_is_fine() {
    let mut t = Template {
        nodes: vec![node("start", START_NODE_TYPE)],
        ..Template::default()
    };
    t.nodes
        .extend((1..MAX_NODES).map(|i| node(&format!("n{i}"), "Http")));
    t.validate().unwrap();
}

#[test]
fn graph_lists_predecessors() {
    let t = diamond();
    let g = Graph::new(&t);
    assert_eq!(g.start_id(), "start");
    assert_eq!(g.predecessors("c"), ["a", "b"]);
    assert!(g.predecessors("start").is_empty());
    assert_eq!(g.edges()[2].id(), "a-c");
}
