//! Retention: a background task that deletes executions that finished longer ago than the
//! configured retention, with their actions and history, a small batch per transaction so
//! that writers keep going, on every replica safely (one deleter at a time).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Executions;
use crate::db;
use crate::error::Error;

/// Executions deleted per transaction.
const RETENTION_BATCH: u64 = 500;
/// Longest pause between two sweeps.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest pause between two sweeps.
const MIN_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl Executions {
    /// Deletes, until `stop` is cancelled, every execution that finished (COMPLETED,
    /// FAILED or STOPPED) more than `retention` ago, sweeping every tenth of the
    /// retention (between 1 s and 60 s).
    pub fn start_retention(
        &self,
        retention: Duration,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let interval = (retention / 10).clamp(MIN_SWEEP_INTERVAL, MAX_SWEEP_INTERVAL);
        tokio::spawn(async move {
            loop {
                match this.sweep(retention).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, "retention deleted finished executions"),
                    Err(err) => {
                        tracing::warn!(error = %err, "retention sweep failed; retrying later")
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
            }
        })
    }

    /// One sweep: batches until none is full; answers how many executions it deleted.
    async fn sweep(&self, retention: Duration) -> Result<u64, Error> {
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let mut deleted = 0;
        loop {
            let (_turn, txn) = self.db.begin_write(None).await?;
            if !db::take_retention_turn(&txn).await? {
                // Another replica is deleting.
                txn.rollback().await?;
                return Ok(deleted);
            }
            let batch = db::delete_finished_before(&txn, cutoff, RETENTION_BATCH).await?;
            txn.commit().await?;
            deleted += batch;
            if batch < RETENTION_BATCH {
                return Ok(deleted);
            }
        }
    }
}
