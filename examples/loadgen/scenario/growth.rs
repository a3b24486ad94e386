//! `growth`: how cost grows with size, one caller so nothing queues: Get FULL latency vs
//! actions per execution, and List latency vs rows skipped.

use std::sync::Arc;
use std::time::Duration;

use executions::proto::v1 as pb;

use super::get::Get;
use super::list::PAGE;
use crate::{Session, dag};

impl Session {
    /// `growth`: Get latency vs actions per execution, List latency vs depth, one caller.
    pub async fn growth(&mut self) -> anyhow::Result<()> {
        let d = self.duration().min(Duration::from_secs(5));
        let w = self.warmup().min(Duration::from_millis(500));
        let mut client = self.client(0);
        let mut get_p50 = Vec::new();
        for actions in [1, 20, 200, dag::MAX_ACTIONS] {
            let e = client
                .start_execution(dag::start_request(dag::fork_join(actions, 0), actions))
                .await?
                .into_inner();
            let ids = Arc::new(vec![e.id]);
            let f = self
                .measure(&format!("get {actions} actions"), &["get"], w, d, |s| {
                    let channel = s.channels[0].clone();
                    vec![Get::new(
                        channel,
                        ids.clone(),
                        pb::ExecutionView::Full,
                        "get",
                    )]
                })
                .await
                .remove(0);
            self.summary
                .row(format!("growth: get FULL, {actions} actions, 1 caller"), &f);
            get_p50.push((actions, f.p50));
        }
        let mut depths: Vec<u64> = [0, 1_000, 10_000, 100_000, 1_000_000]
            .into_iter()
            .filter(|d| *d + PAGE <= self.total)
            .collect();
        depths.push(self.deep_depth());
        let tokens = self.tokens_at(&depths).await?;
        let mut first = None;
        for (depth, token) in tokens {
            let f = self
                .measure(&format!("list after {depth}"), &["list"], w, d, |s| {
                    s.listers(&token, "list", 1)
                })
                .await
                .remove(0);
            self.summary.row(
                format!("growth: list 25 BASIC after {depth} rows, 1 caller"),
                &f,
            );
            let first_p50 = *first.get_or_insert(f.p50);
            if depth > 0 {
                println!(
                    "  list after {depth}: p50 {:.3} ms = {:.2} × the first page",
                    f.p50,
                    f.p50 / first_p50
                );
            }
        }
        if let (Some(small), Some(large)) = (get_p50.get(1), get_p50.last()) {
            self.summary.notes.push(format!(
                "growth: get FULL p50 {:.3} ms at {} actions, {:.3} ms at {} actions ({:.1}×)",
                small.1,
                small.0,
                large.1,
                large.0,
                large.1 / small.1
            ));
        }
        Ok(())
    }
}
