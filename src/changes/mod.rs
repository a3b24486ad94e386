//! The change hub: where committed changes are announced and where watchers of an
//! execution pick them up.
//!
//! It is level-based, like a Kubernetes informer: each watched execution has one
//! `tokio::sync::watch` slot holding its latest committed state, shared by every watcher
//! of that execution on this replica. A watcher that stops reading costs O(1) memory and,
//! when it reads again, sees only the newest state. A slot exists only while someone
//! watches that execution; publishing a change nobody watches costs a map lookup.
//!
//! With PostgreSQL, [`relay`] relays changes between replicas: every local change is
//! also sent to a NOTIFY channel (after commit, batched), and every replica listens on it,
//! reading a changed execution once (for all its watchers) when someone watches it.
//!
//! WatchExecutions feeds follow every execution rather than one: the hub wakes the
//! replica's [`reader`], which reads what changed once for all of them.

pub mod reader;
pub mod relay;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{Notify, mpsc, watch};

use crate::domain::{ExecutionId, FullExecution};

/// The latest committed state of an execution, once someone has published one.
pub type Latest = Option<Arc<FullExecution>>;

/// Latest state of every watched execution on this replica.
#[derive(Clone, Debug, Default)]
pub struct ChangeHub {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    slots: Mutex<HashMap<ExecutionId, Slot>>,
    /// Where local changes go to reach other replicas (PostgreSQL only).
    relay: OnceLock<mpsc::UnboundedSender<(ExecutionId, i64)>>,
    /// Executions read from the database to serve watchers (counted for the benchmark).
    state_reads: AtomicU64,
    /// Changes committed on this replica and announced here (for metrics).
    published: AtomicU64,
    /// Wakes the change reader (see [`reader`]) after a change, local or remote.
    announced: Notify,
}

/// The shared state of one watched execution.
#[derive(Debug)]
struct Slot {
    latest: watch::Sender<Latest>,
    /// Set by the first watcher that reads the state from the database while the slot is
    /// empty; the others wait for that read instead of making their own.
    reader_claimed: Arc<AtomicBool>,
}

/// A watcher's handle on one execution's slot; the slot goes away with its last handle.
#[derive(Debug)]
pub struct Subscription {
    id: ExecutionId,
    rx: Option<watch::Receiver<Latest>>,
    reader_claimed: Arc<AtomicBool>,
    hub: Arc<Inner>,
}

impl ChangeHub {
    /// Announces a committed change: wakes this replica's watchers of the execution (if
    /// any, and if the state is newer than what they have) and relays it to the other
    /// replicas.
    pub fn publish(&self, execution: &FullExecution) {
        let (id, revision) = (execution.header.id, execution.header.revision);
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        // Copy the state (up to a thousand actions) only for watched executions, and
        // outside the lock.
        if self
            .watched_revision(id)
            .is_some_and(|have| have < revision)
        {
            self.offer(Arc::new(execution.clone()));
        }
        if let Some(relay) = self.inner.relay.get() {
            let _ = relay.send((id, revision));
        }
        self.announce();
    }

    /// Says that something changed in the database (here, or on another replica): wakes
    /// the change reader, or makes its next wait return at once.
    pub fn announce(&self) {
        self.inner.announced.notify_one();
    }

    /// Waits for the next [`ChangeHub::announce`] (one waiter: the change reader).
    pub async fn announced(&self) {
        self.inner.announced.notified().await;
    }

    /// Offers a state read from the database (a change made on another replica); kept
    /// only if newer than what the slot holds. Does not relay.
    pub fn offer(&self, execution: Arc<FullExecution>) {
        let (id, revision) = (execution.header.id, execution.header.revision);
        let slots = self.inner.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(&id) {
            // Revisions only move forward, even when publishers race.
            slot.latest.send_if_modified(|latest| {
                let newer = latest.as_ref().is_none_or(|l| l.header.revision < revision);
                if newer {
                    *latest = Some(execution);
                }
                newer
            });
        }
    }

    /// Subscribes to the changes of `id`. Subscribe before reading the state, so that no
    /// change can fall between the read and the subscription.
    pub fn subscribe(&self, id: ExecutionId) -> Subscription {
        let mut slots = self.inner.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = slots.entry(id).or_insert_with(|| Slot {
            latest: watch::channel(None).0,
            reader_claimed: Arc::default(),
        });
        Subscription {
            id,
            rx: Some(slot.latest.subscribe()),
            reader_claimed: slot.reader_claimed.clone(),
            hub: self.inner.clone(),
        }
    }

    /// Revision this replica's watchers of `id` have been offered (0 for none yet), or
    /// `None` when nobody here watches it.
    pub fn watched_revision(&self, id: ExecutionId) -> Option<i64> {
        let slots = self.inner.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.get(&id).map(|slot| {
            slot.latest
                .borrow()
                .as_ref()
                .map_or(0, |l| l.header.revision)
        })
    }

    /// Every execution watched on this replica.
    pub fn watched(&self) -> Vec<ExecutionId> {
        let slots = self.inner.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.keys().copied().collect()
    }

    /// Number of executions watched on this replica.
    pub fn watched_count(&self) -> usize {
        self.inner
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Sends every later local change to `relay` as well (set once; later calls are
    /// ignored).
    pub fn relay_to(&self, relay: mpsc::UnboundedSender<(ExecutionId, i64)>) {
        let _ = self.inner.relay.set(relay);
    }

    /// Counts one execution read from the database to serve watchers.
    pub fn count_state_read(&self) {
        self.inner.state_reads.fetch_add(1, Ordering::Relaxed);
    }

    /// Changes committed on this replica and published so far.
    pub fn changes_published(&self) -> u64 {
        self.inner.published.load(Ordering::Relaxed)
    }

    /// Executions read from the database to serve watchers so far.
    pub fn state_reads(&self) -> u64 {
        self.inner.state_reads.load(Ordering::Relaxed)
    }
}

/// The reader's role on one slot, given up on drop (see [`Subscription::claim_reader`]).
#[derive(Debug)]
pub struct ReaderClaim(Arc<AtomicBool>);

impl Drop for ReaderClaim {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Subscription {
    /// The execution this subscription follows.
    pub fn id(&self) -> ExecutionId {
        self.id
    }

    /// Waits until a newer state is published; `false` if the hub is gone.
    pub async fn changed(&mut self) -> bool {
        match self.rx.as_mut() {
            Some(rx) => rx.changed().await.is_ok(),
            None => false,
        }
    }

    /// The latest published state, marking it seen.
    pub fn latest(&mut self) -> Latest {
        self.rx
            .as_mut()
            .and_then(|rx| rx.borrow_and_update().clone())
    }

    /// The reader's role, for the one watcher that should read the state from the
    /// database while the slot is empty; `None` for the others, which call
    /// [`Subscription::wait_for_state`]. The role is given up when the returned claim is
    /// dropped: after the read, or when the read fails or is abandoned (its caller went
    /// away), so a later watcher can take it.
    pub fn claim_reader(&self) -> Option<ReaderClaim> {
        (!self.reader_claimed.swap(true, Ordering::AcqRel))
            .then(|| ReaderClaim(self.reader_claimed.clone()))
    }

    /// Waits up to `patience` for a published state at or above `revision`.
    pub async fn wait_for_state(&mut self, revision: i64, patience: std::time::Duration) -> Latest {
        let rx = self.rx.as_mut()?;
        let ready = rx.wait_for(|latest| {
            latest
                .as_ref()
                .is_some_and(|l| l.header.revision >= revision)
        });
        match tokio::time::timeout(patience, ready).await {
            Ok(Ok(state)) => state.clone(),
            _ => None,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut slots = self.hub.slots.lock().unwrap_or_else(|e| e.into_inner());
        // Under the lock no one can subscribe concurrently: if no receiver is left, the
        // slot is unused.
        if slots
            .get(&self.id)
            .is_some_and(|slot| slot.latest.receiver_count() == 0)
        {
            slots.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::rules::{NewExecution, create};
    use crate::domain::template::tests::diamond;

    fn execution(id: ExecutionId, revision: i64) -> FullExecution {
        let mut e = create(
            NewExecution {
                key: "k".into(),
                name: String::new(),
                template: diamond().into(),
                execution_data: None,
                user_key: "main".into(),
                request_id: None,
                stop_events: Vec::new(),
                log_budget: 0,
            },
            id,
            chrono::Utc::now(),
        );
        e.header.revision = revision;
        e
    }

    #[tokio::test]
    async fn a_subscriber_sees_only_the_latest_newer_state() {
        let hub = ChangeHub::default();
        let id = ExecutionId::generate();
        hub.publish(&execution(id, 1)); // nobody watches: dropped
        assert_eq!(hub.watched_revision(id), None);
        let mut sub = hub.subscribe(id);
        assert_eq!(hub.watched_revision(id), Some(0));
        for revision in [2, 3, 5, 4] {
            hub.publish(&execution(id, revision));
        }
        assert!(sub.changed().await);
        assert_eq!(
            sub.latest().unwrap().header.revision,
            5,
            "4 arrived late and was ignored"
        );
        assert_eq!(hub.watched_revision(id), Some(5));
    }

    #[tokio::test]
    async fn the_slot_goes_with_its_last_subscriber() {
        let hub = ChangeHub::default();
        let id = ExecutionId::generate();
        let a = hub.subscribe(id);
        let b = hub.subscribe(id);
        drop(a);
        assert_eq!(hub.watched_count(), 1);
        drop(b);
        assert_eq!(hub.watched_count(), 0);
    }

    #[tokio::test]
    async fn one_watcher_reads_and_the_others_wait_for_it() {
        let hub = ChangeHub::default();
        let id = ExecutionId::generate();
        let reader = hub.subscribe(id);
        let mut waiter = hub.subscribe(id);
        let claim = reader.claim_reader();
        assert!(claim.is_some());
        assert!(waiter.claim_reader().is_none(), "only one reader");
        let waiting = tokio::spawn(async move {
            waiter
                .wait_for_state(1, std::time::Duration::from_secs(5))
                .await
                .map(|l| l.header.revision)
        });
        hub.offer(Arc::new(execution(id, 1)));
        assert_eq!(waiting.await.unwrap(), Some(1));
        drop(claim);
        assert!(
            reader.claim_reader().is_some(),
            "released, the role can be taken again"
        );
    }

    #[tokio::test]
    async fn local_changes_are_relayed() {
        let hub = ChangeHub::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        hub.relay_to(tx);
        let id = ExecutionId::generate();
        hub.publish(&execution(id, 3));
        assert_eq!(rx.recv().await, Some((id, 3)));
    }
}
