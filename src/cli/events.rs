//! `executions events ID`: the history of one execution (ListExecutionEvents), one line
//! per thing that changed, paging through tokens, or one ListExecutionEventsResponse in
//! canonical proto3 JSON.

use std::process::ExitCode;

use super::list::Order;
use super::output::{self, action_status};
use super::{ClientArgs, EXIT_ERROR};
use crate::proto::v1 as pb;

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
    let mut client = match args.client.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let mut request = pb::ListExecutionEventsRequest {
        execution_id: args.id.clone(),
        order: match args.order {
            Order::Asc => pb::SortOrder::Ascending,
            Order::Desc => pb::SortOrder::Descending,
        } as i32,
        ..Default::default()
    };
    let mut all = pb::ListExecutionEventsResponse::default();
    loop {
        request.page_size = match args.limit {
            0 => 1000,
            limit => i32::try_from((limit - all.events.len()).min(1000)).unwrap_or(1000),
        };
        let page = match client.list_execution_events(request.clone()).await {
            Ok(page) => page.into_inner(),
            Err(status) => {
                output::print_status(&format!("cannot list the events of {}", args.id), &status);
                return ExitCode::from(EXIT_ERROR);
            }
        };
        all.events.extend(page.events);
        all.next_page_token = page.next_page_token;
        let full = args.limit != 0 && all.events.len() >= args.limit;
        if all.next_page_token.is_empty() || full {
            break;
        }
        request.page_token = all.next_page_token.clone();
    }
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
