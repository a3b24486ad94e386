//! The change hub: where the service announces that an execution reached a new revision,
//! and where watchers of that execution learn of it.
//!
//! It is level-based: each watched execution has one `tokio::sync::watch` slot holding its
//! latest revision, so a slow watcher costs O(1) memory and, when it reads again, sees only
//! the newest revision. A slot exists only while someone watches that execution.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::domain::ExecutionId;

/// Latest revision of every watched execution.
#[derive(Clone, Debug, Default)]
pub struct ChangeHub {
    slots: Arc<Mutex<HashMap<ExecutionId, watch::Sender<i64>>>>,
}

impl ChangeHub {
    /// Announces that `id` committed `revision`. Cheap when nobody watches it.
    pub fn publish(&self, id: ExecutionId, revision: i64) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(&id) {
            if slot.receiver_count() == 0 {
                // Every watcher of it left: forget the slot.
                slots.remove(&id);
                return;
            }
            // Revisions only move forward, even if two publishers race.
            slot.send_if_modified(|latest| {
                let newer = revision > *latest;
                if newer {
                    *latest = revision;
                }
                newer
            });
        }
    }

    /// Subscribes to the revisions of `id`. Subscribe before reading the state, so no
    /// change can fall between the read and the subscription.
    pub fn subscribe(&self, id: ExecutionId) -> watch::Receiver<i64> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .entry(id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_sees_the_latest_revision_only() {
        let hub = ChangeHub::default();
        let id = ExecutionId::generate();
        hub.publish(id, 1); // nobody watches: dropped
        let mut rx = hub.subscribe(id);
        for revision in [2, 3, 5, 4] {
            hub.publish(id, revision);
        }
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), 5);
        assert!(!rx.has_changed().unwrap());
    }
}
