//! Seeding: executions of fork/join templates started through the API by many concurrent
//! calls, or (for millions of rows) a few started through the API and then copied in SQL;
//! then a sample of the stored ids for the scenarios to read.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use executions::proto::v1 as pb;
use tonic::transport::Channel;

use crate::{Client, SeedMode, Session, dag, database};

/// Template variants the seed cycles through (different fan-outs).
const VARIANTS: usize = 3;

impl Session {
    /// Seeds up to `--seed` executions and samples their ids.
    pub async fn seed(&mut self) -> anyhow::Result<()> {
        let o = self.opts.clone();
        let existing = match &self.dbs {
            Some(dbs) => database::count(&dbs.conn).await?,
            None => 0,
        };
        let wanted = (o.seed as u64).saturating_sub(existing) as usize;
        let sql = match o.seed_mode {
            SeedMode::Sql => true,
            SeedMode::Api => false,
            SeedMode::Auto => wanted > 200_000,
        } && self.dbs.is_some();
        let began = Instant::now();
        let mut api_ids = Vec::new();
        if wanted > 0 {
            println!(
                "  seeding {wanted} executions of {} actions {}",
                o.actions,
                if sql {
                    "(3 through StartExecution, the rest copied in SQL)"
                } else {
                    "through StartExecution"
                }
            );
            match (&self.dbs, sql) {
                (Some(dbs), true) => {
                    via_sql(&self.channels, &dbs.conn, wanted, o.actions).await?;
                }
                _ => {
                    api_ids =
                        via_api(&self.channels, wanted, o.actions, o.seed_concurrency).await?;
                }
            }
            let secs = began.elapsed().as_secs_f64();
            let note = format!(
                "seeded {wanted} executions of {} actions {} in {secs:.1} s ({:.0}/s)",
                o.actions,
                if sql {
                    "by SQL copy"
                } else {
                    "through StartExecution"
                },
                wanted as f64 / secs
            );
            self.summary.note(note);
        }
        let (ids, total) = match &self.dbs {
            Some(dbs) => (
                database::sample_ids(&dbs.conn, 10_000).await?,
                database::count(&dbs.conn).await?,
            ),
            None => (api_ids, o.seed as u64),
        };
        println!(
            "  {total} executions stored; reading a sample of {}",
            ids.len()
        );
        self.ids = Arc::new(ids);
        self.total = total;
        Ok(())
    }
}

/// Starts `n` executions of `actions` actions through StartExecution, `concurrency` calls
/// at a time over `channels`; returns their ids (all of them, or every k-th above 50,000)
/// and their seqs' range is whatever the server gave.
pub async fn via_api(
    channels: &[Channel],
    n: usize,
    actions: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<String>> {
    let templates: Vec<pb::Template> = (0..VARIANTS).map(|v| dag::fork_join(actions, v)).collect();
    let keep_every = n.div_ceil(50_000).max(1);
    start_many(channels, n, concurrency, keep_every, move |i| {
        dag::start_request(templates[i % templates.len()].clone(), i)
    })
    .await
}

/// Starts the `n` executions `request(i)` describes (`i` from 0), `concurrency` calls at a
/// time over `channels`; returns the ids of every `keep_every`-th.
pub async fn start_many(
    channels: &[Channel],
    n: usize,
    concurrency: usize,
    keep_every: usize,
    request: impl Fn(usize) -> pb::StartExecutionRequest + Send + Sync + 'static,
) -> anyhow::Result<Vec<String>> {
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency.max(1) {
        let mut client = Client::new(channels[worker % channels.len()].clone());
        let (next, request) = (next.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, tonic::Status>(ids);
                }
                let e = client.start_execution(request(i)).await?.into_inner();
                if i % keep_every == 0 {
                    ids.push(e.id);
                }
                if i > 0 && i % 50_000 == 0 {
                    eprintln!(
                        "  started {i} of {n} through the API ({:.0}/s)",
                        i as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(
            task.await?
                .map_err(|s| anyhow::anyhow!("start failed: {s}"))?,
        );
    }
    Ok(ids)
}

/// Starts a few executions (one per variant) through the API, then copies them in SQL
/// until `n` exist, in batches of 50,000 executions per statement pair.
pub async fn via_sql(
    channels: &[Channel],
    conn: &sea_orm::DatabaseConnection,
    n: usize,
    actions: usize,
) -> anyhow::Result<()> {
    let models = via_api(channels, VARIANTS.min(n), actions, 1).await?;
    let mut seqs = Vec::new();
    for id in models {
        let mut client = Client::new(channels[0].clone());
        let e = client
            .get_execution(pb::GetExecutionRequest {
                id,
                view: pb::ExecutionView::Basic as i32,
                ..Default::default()
            })
            .await?
            .into_inner();
        seqs.push(seq_of(&e.hashid)?);
    }
    let mut left = n.saturating_sub(seqs.len()) as u64;
    // Copies are created before the models, newest batch first, 1 ms apart.
    let mut base_us = chrono::Utc::now().timestamp_micros() - 1_000_000;
    let started = Instant::now();
    let mut batch = 0;
    while left > 0 {
        let count = left.min(50_000);
        database::copy_execution(conn, seqs[batch % seqs.len()], count, base_us).await?;
        base_us -= count as i64 * 1_000;
        left -= count;
        batch += 1;
        eprintln!(
            "  copied {} of {n} in SQL ({:.0}/s)",
            n as u64 - left,
            (n as u64 - left) as f64 / started.elapsed().as_secs_f64()
        );
    }
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        use sea_orm::ConnectionTrait;
        conn.execute_unprepared("ANALYZE executions; ANALYZE actions")
            .await?;
    }
    Ok(())
}

fn seq_of(hashid: &str) -> anyhow::Result<i64> {
    executions::domain::HashidCodec::default()
        .decode(hashid)
        .ok_or_else(|| anyhow::anyhow!("undecodable hashid {hashid}"))
}
