//! `executions events ID`: the history of one execution (ListExecutionEvents), one line
//! per thing that changed, paging through tokens, or one ListExecutionEventsResponse in
//! canonical proto3 JSON.

use std::process::ExitCode;

use super::list::{Order, pages};
use super::output::{self, action_status};
use super::{ClientArgs, EXIT_ERROR};
use crate::proto::v1 as pb;

/// Largest page of events the server sends.
const MAX_EVENTS_PAGE: usize = 1_000;

/// Settings of `executions events`.
#[derive(Clone, Debug, clap::Args)]
pub struct EventsArgs {
    /// UUID or hashid of the execution.
    pub id: String,
    /// Oldest first (asc, the default) or newest first (desc).
    #[arg(long, value_enum, default_value_t = Order::Asc)]
    pub order: Order,
    /// Most events to show; 0 for all of them.
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Connection and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Prints the events.
pub async fn run(args: EventsArgs) -> ExitCode {
    let client = match args.client.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let request = pb::ListExecutionEventsRequest {
        execution_id: args.id.clone(),
        order: match args.order {
            Order::Asc => pb::SortOrder::Ascending,
            Order::Desc => pb::SortOrder::Descending,
        } as i32,
        ..Default::default()
    };
    let fetched = pages(args.limit, MAX_EVENTS_PAGE, |size, token| {
        let mut client = client.clone();
        let request = pb::ListExecutionEventsRequest {
            page_size: size,
            page_token: token,
            ..request.clone()
        };
        async move {
            let page = client.list_execution_events(request).await?.into_inner();
            Ok((page.events, page.next_page_token))
        }
    })
    .await;
    let all = match fetched {
        Ok((events, next_page_token)) => pb::ListExecutionEventsResponse {
            events,
            next_page_token,
        },
        Err(status) => {
            output::print_status(&format!("cannot list the events of {}", args.id), &status);
            return ExitCode::from(EXIT_ERROR);
        }
    };
    if args.client.json() {
        return if output::print_json(&all) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_ERROR)
        };
    }
    let mut table = output::table(&["REV", "TIME", "EVENT", "ACTION", "STATUS", "DETAIL", "BY"]);
    for e in &all.events {
        let time = e
            .occurred_at
            .as_ref()
            .map(|t| output::timestamp(t, args.client.time_zone))
            .unwrap_or_default();
        let status = if e.node_id.is_empty() {
            String::new()
        } else {
            format!(
                "{} -> {}",
                action_status(e.from_status()),
                action_status(e.to_status())
            )
        };
        let detail = [
            e.failure_note.clone(),
            e.stop_reason.clone(),
            e.scheduled_at
                .as_ref()
                .map(|t| format!("for {}", output::timestamp(t, args.client.time_zone)))
                .unwrap_or_default(),
        ]
        .into_iter()
        .filter(|d| !d.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
        table.add_row(vec![
            e.revision.to_string(),
            time,
            e.kind()
                .as_str_name()
                .trim_start_matches("EXECUTION_EVENT_KIND_")
                .to_owned(),
            e.node_id.clone(),
            status,
            detail,
            e.actor.clone(),
        ]);
    }
    print!("{}", output::render(table));
    ExitCode::SUCCESS
}
