//! Relays changes between replicas that share one PostgreSQL database.
//!
//! - **Out**: every local change goes to a relay queue; one task drains it in batches and
//!   sends them with `pg_notify` on [`CHANNEL`], after the write committed and outside
//!   its transaction, so a write never holds PostgreSQL's NOTIFY queue lock (which would
//!   cap notifying commits near 1,000/s). A batch is one notification of
//!   `id:revision,id:revision,...`.
//! - **In**: one listening connection per replica. A notification about an execution that
//!   someone here watches, at a revision newer than what its watchers have, triggers one
//!   read of that execution, shared by all of them.
//! - **Never lost**: whenever the listening connection is (re)established, every watched
//!   execution is read again, so a notification sent while the connection was down is
//!   caught up.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ChangeHub;
use crate::db::{self, Database, notify};
use crate::domain::ExecutionId;

/// The NOTIFY channel changes travel on.
pub const CHANNEL: &str = "executions_changes";

/// Most changes drained from the relay queue per round.
const BATCH: usize = 4_096;
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts relaying `hub`'s changes to and from the other replicas, until `token` is
/// cancelled. Does nothing (returns no tasks) on SQLite, where one server owns the file.
pub fn start(db: &Database, hub: &ChangeHub, token: CancellationToken) -> Vec<JoinHandle<()>> {
    if !db.is_postgres() {
        return Vec::new();
    }
    let (relay, queue) = mpsc::unbounded_channel();
    hub.relay_to(relay);
    vec![
        tokio::spawn(send_changes(db.clone(), queue, token.clone())),
        tokio::spawn(receive_changes(db.clone(), hub.clone(), token)),
    ]
}

/// Drains the relay queue into NOTIFY batches. Changes waiting to be sent are merged per
/// execution (only the newest revision matters to a level-based watcher), so what waits
/// is bounded by the number of executions, and a failed NOTIFY is retried until it goes
/// through: a change is never dropped on its way to the other replicas.
async fn send_changes(
    db: Database,
    mut queue: mpsc::UnboundedReceiver<(ExecutionId, i64)>,
    token: CancellationToken,
) {
    let mut pending: HashMap<ExecutionId, i64> = HashMap::new();
    let mut received = Vec::with_capacity(BATCH);
    let mut backoff = Duration::from_millis(50);
    loop {
        if pending.is_empty() {
            let n = tokio::select! {
                // Stopping: whatever is still queued goes out in one last round.
                () = token.cancelled() => {
                    queue.close();
                    while let Ok(change) = queue.try_recv() {
                        received.push(change);
                    }
                    if !received.is_empty() {
                        for payload in payloads(std::mem::take(&mut received).into_iter()) {
                            let _ = notify::notify(&db, CHANNEL, &payload).await;
                        }
                    }
                    return;
                }
                n = queue.recv_many(&mut received, BATCH) => n,
            };
            if n == 0 {
                return;
            }
        }
        while let Ok(change) = queue.try_recv() {
            received.push(change);
        }
        for (id, revision) in received.drain(..) {
            let newest = pending.entry(id).or_insert(revision);
            *newest = (*newest).max(revision);
        }
        let mut failed = false;
        for payload in payloads(pending.iter().map(|(id, revision)| (*id, *revision))) {
            if let Err(err) = notify::notify(&db, CHANNEL, &payload).await {
                tracing::warn!(error = %err, ?backoff, "cannot notify other replicas; retrying");
                failed = true;
                break;
            }
        }
        if failed {
            // Everything pending is sent again (a replica may see a change twice; it reads
            // only what is newer than it has).
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        } else {
            pending.clear();
            backoff = Duration::from_millis(50);
        }
    }
}

/// `id:revision` pairs, joined by commas into payloads below the NOTIFY size limit.
fn payloads(changes: impl Iterator<Item = (ExecutionId, i64)>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for (id, revision) in changes {
        let item = format!("{id}:{revision}");
        if !current.is_empty() && current.len() + 1 + item.len() > notify::MAX_PAYLOAD_BYTES {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(&item);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The newest revision per execution named in payloads; malformed items are skipped.
fn parse(payloads: &[String]) -> HashMap<ExecutionId, i64> {
    let mut changes = HashMap::new();
    for item in payloads.iter().flat_map(|p| p.split(',')) {
        let Some((id, revision)) = item.split_once(':') else {
            continue;
        };
        let (Ok(id), Ok(revision)) = (uuid::Uuid::parse_str(id), revision.parse::<i64>()) else {
            continue;
        };
        let newest = changes.entry(ExecutionId::new(id)).or_insert(revision);
        *newest = (*newest).max(revision);
    }
    changes
}

/// Listens for other replicas' changes and feeds them to local watchers, reconnecting
/// (and catching up) whenever the connection drops.
async fn receive_changes(db: Database, hub: ChangeHub, token: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut listener = tokio::select! {
            () = token.cancelled() => return,
            listener = notify::listen(&db, CHANNEL) => match listener {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(error = %err, ?backoff, "relay: cannot listen; retrying");
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        // Whatever changed while we were not listening: read every watched execution.
        let watched = hub.watched();
        if let Err(err) = refresh(&db, &hub, &watched).await {
            tracing::warn!(error = %err, ?backoff, "relay: catch-up failed; reconnecting");
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        }
        // And the feeds' reader: it reads whatever it has not seen yet.
        hub.announce();
        backoff = Duration::from_millis(100);
        tracing::info!(watched = watched.len(), "relay: listening");
        loop {
            let received = tokio::select! {
                () = token.cancelled() => return,
                received = listener.try_recv() => received,
            };
            let first = match received {
                Ok(Some(notification)) => notification,
                Ok(None) | Err(_) => {
                    tracing::warn!("relay: connection lost; reconnecting and catching up");
                    break;
                }
            };
            let mut payloads = vec![first.payload().to_owned()];
            while let Some(more) = listener.next_buffered() {
                payloads.push(more.payload().to_owned());
            }
            hub.announce();
            // Only what someone here watches, at a revision newer than they have (a slot
            // still at 0 too: its first watcher's own read may have started before this
            // change committed).
            let stale: Vec<ExecutionId> = parse(&payloads)
                .into_iter()
                .filter(|(id, revision)| {
                    hub.watched_revision(*id)
                        .is_some_and(|have| have < *revision)
                })
                .map(|(id, _)| id)
                .collect();
            if let Err(err) = refresh(&db, &hub, &stale).await {
                tracing::warn!(error = %err, "relay: read failed; reconnecting and catching up");
                break;
            }
        }
    }
}

/// Reads `ids` once each and offers them to their watchers.
async fn refresh(db: &Database, hub: &ChangeHub, ids: &[ExecutionId]) -> Result<(), crate::Error> {
    for chunk in ids.chunks(500) {
        for execution in db::load_many(db, chunk).await? {
            hub.count_state_read();
            hub.offer(std::sync::Arc::new(execution));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_stay_small() {
        let ids: Vec<_> = (0..1_000).map(|i| (ExecutionId::generate(), i)).collect();
        let payloads = payloads(ids.iter().copied());
        assert!(payloads.len() > 1);
        assert!(
            payloads
                .iter()
                .all(|p| p.len() <= notify::MAX_PAYLOAD_BYTES)
        );
        let parsed = parse(&payloads);
        assert_eq!(parsed.len(), 1_000);
        for (id, revision) in ids {
            assert_eq!(parsed[&id], revision);
        }
    }

    #[test]
    fn parse_keeps_the_newest_revision_and_skips_garbage() {
        let id = ExecutionId::generate();
        let parsed = parse(&[format!("{id}:3,{id}:7,junk,{id}:x"), format!("{id}:5")]);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[&id], 7);
    }
}
