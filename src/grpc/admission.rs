//! Load shedding: at most a set number of calls are worked on at once on this server; one
//! more is refused at once with RESOURCE_EXHAUSTED (`OVERLOADED`) rather than queued, so
//! that an overloaded replica answers quickly and clients back off or go elsewhere,
//! instead of piling up until every call times out.
//!
//! A call takes its slot in its handler, once its request message has arrived, and gives
//! it back when the handler answers: for a watch, once the stream opens (its snapshot read
//! included), not for the stream's life, which `max_watches` bounds. A call whose request
//! never arrives holds no slot. And no connection may hold more than a fair share of the
//! slots (a quarter), so one client cannot starve the others. Health checks, reflection
//! and unknown methods never take one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;

/// Slots held per connection (by peer address).
type HeldByPeer = Arc<Mutex<HashMap<SocketAddr, usize>>>;

/// Slots for the calls being worked on.
#[derive(Clone, Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    limit: usize,
    held: HeldByPeer,
    per_connection: usize,
}

/// A call's slot, given back on drop.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    peer: Option<(SocketAddr, HeldByPeer)>,
}

impl Admission {
    /// At most `limit` calls at once, at most a quarter of them (and at least one) from
    /// any one connection.
    pub fn new(limit: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
            held: Arc::default(),
            per_connection: (limit / 4).max(1),
        }
    }

    /// A slot for a call from `peer`, or OVERLOADED when the server or that connection
    /// already has as many calls as it may.
    pub fn admit(&self, peer: Option<SocketAddr>) -> Result<Slot, Error> {
        let overloaded = || Error::Overloaded { limit: self.limit };
        let permit = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| overloaded())?;
        let Some(peer) = peer else {
            return Ok(Slot {
                _permit: permit,
                peer: None,
            });
        };
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(peer).or_default();
        if *count >= self.per_connection {
            return Err(Error::Overloaded {
                limit: self.per_connection,
            });
        }
        *count += 1;
        Ok(Slot {
            _permit: permit,
            peer: Some((peer, self.held.clone())),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((peer, held)) = self.peer.take() {
            let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = held.get_mut(&peer) {
                *count -= 1;
                if *count == 0 {
                    held.remove(&peer);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_connection_gets_a_quarter_and_the_others_the_rest() {
        let admission = Admission::new(8);
        let greedy: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:2000".parse().unwrap();
        let held: Vec<_> = (0..2)
            .map(|_| admission.admit(Some(greedy)).unwrap())
            .collect();
        assert!(admission.admit(Some(greedy)).is_err(), "a quarter of 8");
        let others: Vec<_> = (0..2)
            .map(|_| admission.admit(Some(other)).unwrap())
            .collect();
        drop(held);
        assert!(admission.admit(Some(greedy)).is_ok(), "given back on drop");
        drop(others);
        let all: Vec<_> = (0..8).map(|_| admission.admit(None).unwrap()).collect();
        assert!(admission.admit(None).is_err(), "the server-wide limit");
        drop(all);
        assert!(admission.held.lock().unwrap().is_empty());
    }
}
