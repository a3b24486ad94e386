//! `list-first` and `list-deep`: ListExecutions of one page of 25 (BASIC), the first one
//! and the one after a deep page token, compared by p50; and following page tokens to a
//! depth, which `growth` uses too.

use std::time::Instant;

use executions::proto::v1 as pb;

use crate::drive::{Recorder, Worker};
use crate::report::Figures;
use crate::{Client, Session};

/// Rows per page of the list scenarios.
pub const PAGE: u64 = 25;

/// ListExecutions of one page of 25 (BASIC), always the same one: the first page (empty
/// token) or the page after a deep token.
pub struct List {
    /// Client on one of the shared connections.
    pub client: Client,
    /// Page token; empty for the first page.
    pub token: String,
    /// Name of the operation in the report.
    pub op: &'static str,
}

impl Worker for List {
    async fn step(&mut self, rec: &mut Recorder) {
        let request = pb::ListExecutionsRequest {
            page_size: PAGE as i32,
            page_token: self.token.clone(),
            view: pb::ExecutionView::Basic as i32,
            ..Default::default()
        };
        if let Some(page) = rec
            .time(self.op, self.client.list_executions(request))
            .await
            && page.executions.is_empty()
        {
            rec.fail(self.op, "empty page".into());
        }
    }
}

impl Session {
    /// `concurrency` workers reading the page at `token`, as `op`.
    pub fn listers(&self, token: &str, op: &'static str, concurrency: usize) -> Vec<List> {
        (0..concurrency)
            .map(|i| List {
                client: self.client(i),
                token: token.to_owned(),
                op,
            })
            .collect()
    }

    /// `list-first`: the first page of 25 (measured once).
    pub async fn list_first(&mut self) -> anyhow::Result<Figures> {
        if let Some(f) = &self.list_first {
            return Ok(f.clone());
        }
        let f = self
            .measure_one("list-first", |s| {
                s.listers("", "list-first", s.opts.concurrency)
            })
            .await;
        self.summary.row("list-first (25, BASIC)", &f);
        self.list_first = Some(f.clone());
        Ok(f)
    }

    /// `list-deep`: the page after a deep token vs the first page, p50.
    pub async fn list_deep(&mut self) -> anyhow::Result<()> {
        let first = self.list_first().await?;
        let depth = self.deep_depth();
        let began = Instant::now();
        let tokens = self.tokens_at(&[depth]).await?;
        let Some((depth, token)) = tokens.last().cloned() else {
            anyhow::bail!("no page at depth {depth}");
        };
        println!(
            "  reached depth {depth} by following page tokens in {:.1} s",
            began.elapsed().as_secs_f64()
        );
        let deep = self
            .measure_one("list-deep", |s| {
                s.listers(&token, "list-deep", s.opts.concurrency)
            })
            .await;
        self.summary.row(
            format!("list-deep (25 after {depth} of {})", self.total),
            &deep,
        );
        self.summary.check_p50(
            format!("list page after {depth} rows vs first page, p50"),
            &deep,
            &first,
            1.5,
        );
        Ok(())
    }

    /// `--depth`, or 90% of the rows, in whole pages.
    pub fn deep_depth(&self) -> u64 {
        let depth = self.opts.depth.unwrap_or(self.total * 9 / 10);
        (depth.min(self.total.saturating_sub(PAGE)) / PAGE) * PAGE
    }

    /// Follows page tokens (pages of up to 500, BASIC) once from the first page, and
    /// returns the token that resumes after each of `depths` rows (0: the empty token).
    pub async fn tokens_at(&self, depths: &[u64]) -> anyhow::Result<Vec<(u64, String)>> {
        let mut client = self.client(0);
        let mut wanted: Vec<u64> = depths.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let (mut depth, mut token) = (0u64, String::new());
        let mut found = Vec::new();
        for target in wanted {
            while depth < target {
                let size = (target - depth).min(500) as i32;
                let page = client
                    .list_executions(pb::ListExecutionsRequest {
                        page_size: size,
                        page_token: token.clone(),
                        view: pb::ExecutionView::Basic as i32,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                depth += page.executions.len() as u64;
                token = page.next_page_token;
                if token.is_empty() {
                    return Ok(found);
                }
            }
            found.push((depth, token.clone()));
        }
        Ok(found)
    }
}

/// CountExecutions, always the same request.
pub struct Count {
    /// Client on one of the shared connections.
    pub client: Client,
    /// The request.
    pub request: pb::CountExecutionsRequest,
    /// Name of the operation in the report.
    pub op: &'static str,
}

impl Worker for Count {
    async fn step(&mut self, rec: &mut Recorder) {
        rec.time(self.op, self.client.count_executions(self.request.clone()))
            .await;
    }
}

impl Session {
    /// `count`: CountExecutions of every execution, and of one tenant's RUNNING ones, vs
    /// the first page of List (what a dashboard calls beside it), p50.
    pub async fn count(&mut self) -> anyhow::Result<()> {
        let first = self.list_first().await?;
        for (op, label, request) in [
            (
                "count-all",
                "count (every execution, by status)",
                pb::CountExecutionsRequest::default(),
            ),
            (
                "count-running",
                "count (tenant main, RUNNING)",
                pb::CountExecutionsRequest {
                    user_key: "main".into(),
                    statuses: vec![pb::ExecutionStatus::Running as i32],
                    ..Default::default()
                },
            ),
        ] {
            let counted = self
                .measure_one(op, |s| {
                    s.callers(|i| Count {
                        client: s.client(i),
                        request: request.clone(),
                        op,
                    })
                })
                .await;
            self.summary
                .row(format!("{label} of {}", self.total), &counted);
            self.summary.note(format!(
                "{op}: p50 {:.1} ms over {} executions (list-first p50 {:.1} ms)",
                counted.p50, self.total, first.p50
            ));
        }
        Ok(())
    }
}
