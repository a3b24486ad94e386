//! `executions get ID`: one execution for people (name, key, status, counts, times,
//! revision, then one line per action in topological order), or its canonical JSON.

use std::collections::HashMap;
use std::process::ExitCode;

use chrono_tz::Tz;

use super::output::{self, action_status, execution_status};
use super::{ClientArgs, EXIT_ERROR};
use crate::proto::v1 as pb;

/// Settings of `executions get`.
#[derive(Clone, Debug, clap::Args)]
pub struct GetArgs {
    /// UUID or hashid of the execution.
    pub id: String,
    /// Connection and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Prints the execution.
pub async fn run(args: GetArgs) -> ExitCode {
    let mut client = match args.client.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let request = pb::GetExecutionRequest {
        id: args.id.clone(),
        view: pb::ExecutionView::Full as i32,
        time_zone: args.client.zone_name(),
    };
    match client.get_execution(request).await {
        Ok(response) => {
            let execution = response.into_inner();
            if args.client.json() {
                if !output::print_json(&execution) {
                    return ExitCode::from(EXIT_ERROR);
                }
            } else {
                print!("{}", summary(&execution, args.client.time_zone));
            }
            ExitCode::SUCCESS
        }
        Err(status) => {
            output::print_status(&format!("cannot get {}", args.id), &status);
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The readable form of a FULL execution.
pub fn summary(e: &pb::Execution, zone: Option<Tz>) -> String {
    let mut head = output::table(&[]);
    let status = match e.status() {
        pb::ExecutionStatus::Stopped if !e.stop_reason.is_empty() => {
            format!("STOPPED ({})", e.stop_reason)
        }
        status => execution_status(status).to_owned(),
    };
    for (name, value) in [
        ("Name:", e.name.clone()),
        ("Hashid:", e.hashid.clone()),
        ("Id:", e.id.clone()),
        ("Key:", e.key.clone()),
        ("Tenant:", e.user_key.clone()),
        ("Status:", status),
        ("Actions:", output::counts(e)),
        ("Created:", e.created_at_string.clone()),
        ("Updated:", e.updated_at_utc.clone()),
        ("Revision:", e.revision.to_string()),
    ] {
        head.add_row(vec![name.to_owned(), value]);
    }
    let mut text = output::render(head);
    let Some(template) = &e.template else {
        return text;
    };
    let mut actions = output::table(&[
        "ACTION",
        "NAME",
        "STATUS",
        "SCHEDULED FOR",
        "STARTED",
        "FINISHED",
        "NOTE",
    ]);
    let names: HashMap<&str, &str> = template
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.name.as_str()))
        .collect();
    let time = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .map(|t| output::timestamp(t, zone))
            .unwrap_or_default()
    };
    for id in topological_order(template) {
        let stat = match e.stats.get(id).and_then(|s| s.kind.as_ref()) {
            Some(pb::stat::Kind::Action(stat)) => stat.clone(),
            _ => pb::ActionStat::default(),
        };
        let finished = stat
            .completed_at
            .or(stat.failed_at)
            .or(stat.stopped_at)
            .map(Some)
            .unwrap_or_default();
        actions.add_row(vec![
            id.to_owned(),
            names.get(id).copied().unwrap_or_default().to_owned(),
            action_status(stat.status()).to_owned(),
            time(&stat.scheduled_at),
            time(&stat.started_at),
            time(&finished),
            stat.failure_note.clone(),
        ]);
    }
    text.push('\n');
    text.push_str(&output::render(actions));
    text
}

/// The actions (every node but Start) in topological order: each after every action
/// with an edge into it, ties in the template's own order.
pub fn topological_order(template: &pb::Template) -> Vec<&str> {
    let mut incoming: HashMap<&str, usize> =
        template.nodes.iter().map(|n| (n.id.as_str(), 0)).collect();
    for edge in &template.edges {
        if let Some(n) = incoming.get_mut(edge.target.as_str()) {
            *n += 1;
        }
    }
    let mut order = Vec::with_capacity(template.nodes.len());
    let mut placed = vec![false; template.nodes.len()];
    while order.len() < template.nodes.len() {
        // The first node, in template order, with nothing left before it (or, should the
        // template have a cycle, the first left at all).
        let next = template
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !placed[*i])
            .find(|(_, n)| incoming.get(n.id.as_str()) == Some(&0))
            .or_else(|| template.nodes.iter().enumerate().find(|(i, _)| !placed[*i]));
        let Some((i, node)) = next else { break };
        placed[i] = true;
        for edge in template.edges.iter().filter(|e| e.source == node.id) {
            if let Some(n) = incoming.get_mut(edge.target.as_str()) {
                *n = n.saturating_sub(1);
            }
        }
        order.push(node);
    }
    order
        .into_iter()
        .filter(|n| n.r#type != "Start")
        .map(|n| n.id.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_come_after_their_sources() {
        let node = |id: &str, t: &str| pb::Node {
            id: id.into(),
            r#type: t.into(),
            ..Default::default()
        };
        let edge = |s: &str, t: &str| pb::Edge {
            source: s.into(),
            target: t.into(),
        };
        // Listed out of order on purpose.
        let template = pb::Template {
            nodes: vec![
                node("notify", "Email"),
                node("b", "Http"),
                node("start", "Start"),
                node("a", "Http"),
            ],
            edges: vec![
                edge("start", "a"),
                edge("a", "b"),
                edge("b", "notify"),
                edge("a", "notify"),
            ],
            ..Default::default()
        };
        assert_eq!(topological_order(&template), ["a", "b", "notify"]);
    }
}
