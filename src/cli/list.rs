//! `executions list` (a table of executions, paging through ListExecutions as needed)
//! and `executions count` (CountExecutions: in total and by status).

use std::io::IsTerminal;
use std::process::ExitCode;

use super::filters::Filters;
use super::output::{self, execution_status};
use super::{ClientArgs, EXIT_ERROR};
use crate::proto::v1 as pb;

/// Largest page the server sends.
const MAX_PAGE: usize = 500;

/// Order of `list`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// Settings of `executions list`.
#[derive(Clone, Debug, clap::Args)]
pub struct ListArgs {
    /// Which executions.
    #[command(flatten)]
    pub filters: Filters,
    /// Most executions to show; 0 for all of them.
    #[arg(long, default_value_t = 25)]
    pub limit: usize,
    /// Executions asked for per request (1 to 500); the list pages through as many
    /// requests as --limit needs.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub page_size: u16,
    /// By creation time: newest first (desc) or oldest first (asc).
    #[arg(long, value_enum, default_value_t = Order::Desc)]
    pub order: Order,
    /// Connection and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Prints the executions, as a table or as one ListExecutionsResponse (whose
/// `nextPageToken` is set when --limit cut the list short).
pub async fn run(args: ListArgs) -> ExitCode {
    let client = match args.client.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let mut request = args.filters.list_request();
    request.order_by = match args.order {
        Order::Asc => "created_at asc",
        Order::Desc => "created_at desc",
    }
    .to_owned();
    request.time_zone = args.client.zone_name();
    let page_size = usize::from(args.page_size).min(MAX_PAGE);
    let fetched = pages(args.limit, page_size, |size, token| {
        let mut client = client.clone();
        let request = pb::ListExecutionsRequest {
            page_size: size,
            page_token: token,
            ..request.clone()
        };
        async move {
            let page = client.list_executions(request).await?.into_inner();
            Ok((page.executions, page.next_page_token))
        }
    })
    .await;
    let all = match fetched {
        Ok((executions, next_page_token)) => pb::ListExecutionsResponse {
            executions,
            next_page_token,
        },
        Err(status) => {
            output::print_status("cannot list executions", &status);
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
    if all.executions.is_empty() {
        eprintln!("no executions match");
        return ExitCode::SUCCESS;
    }
    let mut table = output::table(&["HASHID", "NAME", "KEY", "STATUS", "COMPLETED", "CREATED"]);
    for e in &all.executions {
        table.add_row(vec![
            e.hashid.clone(),
            e.name.clone(),
            e.key.clone(),
            execution_status(e.status()).to_owned(),
            format!("{}/{}", e.completed_actions_count, e.actions_count),
            e.created_at_string.clone(),
        ]);
    }
    print!("{}", output::render(table));
    // Only for a person: a script piping the table wants the table alone.
    if !all.next_page_token.is_empty() && std::io::stdout().is_terminal() {
        eprintln!(
            "(the first {}; --limit N for more, --limit 0 for all)",
            all.executions.len()
        );
    }
    ExitCode::SUCCESS
}

/// Settings of `executions count`.
#[derive(Clone, Debug, clap::Args)]
pub struct CountArgs {
    /// Which executions.
    #[command(flatten)]
    pub filters: Filters,
    /// Connection and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Prints the count, in total and by status.
pub async fn count(args: CountArgs) -> ExitCode {
    let mut client = match args.client.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let counted = match client.count_executions(args.filters.count_request()).await {
        Ok(counted) => counted.into_inner(),
        Err(status) => {
            output::print_status("cannot count executions", &status);
            return ExitCode::from(EXIT_ERROR);
        }
    };
    if args.client.json() {
        return if output::print_json(&counted) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_ERROR)
        };
    }
    let mut table = output::table(&["STATUS", "COUNT"]);
    for status in [
        pb::ExecutionStatus::Running,
        pb::ExecutionStatus::Completed,
        pb::ExecutionStatus::Failed,
        pb::ExecutionStatus::Stopped,
    ] {
        let n = counted
            .counts_by_status
            .get(status.as_str_name())
            .copied()
            .unwrap_or_default();
        table.add_row(vec![execution_status(status).to_owned(), n.to_string()]);
    }
    table.add_row(vec!["TOTAL".to_owned(), counted.count.to_string()]);
    print!("{}", output::render(table));
    ExitCode::SUCCESS
}

/// Pages through a listing until its last page or `limit` items (0: all of them), asking
/// for at most `page_size` a page: `fetch(page_size, page_token)` answers a page's items
/// and its next token. Answers the items and the token after the last page read (empty
/// when the listing ended).
pub(super) async fn pages<T, F, Fut>(
    limit: usize,
    page_size: usize,
    mut fetch: F,
) -> Result<(Vec<T>, String), tonic::Status>
where
    F: FnMut(i32, String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let (mut all, mut token) = (Vec::new(), String::new());
    loop {
        let wanted = match limit {
            0 => page_size,
            limit => (limit - all.len()).min(page_size),
        };
        let (items, next) = fetch(i32::try_from(wanted).unwrap_or(i32::MAX), token).await?;
        all.extend(items);
        token = next;
        if token.is_empty() || (limit != 0 && all.len() >= limit) {
            return Ok((all, token));
        }
    }
}
