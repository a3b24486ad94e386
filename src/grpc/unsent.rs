//! A server-wide budget of bytes held by answers that their clients have not taken yet.
//!
//! An answer's buffers stay in memory until the client reads them (HTTP/2 flow control
//! holds them back), so clients that ask and never read could make the server hold
//! without bound. Each answer body registers its large buffers here while it holds them;
//! a buffer shared by many answers (the one encoded form of an execution's revision) is
//! counted once. While the total is past the budget, new calls are refused with
//! RESOURCE_EXHAUSTED (`OVERLOADED`), and they succeed again as clients read or go away.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Buffers smaller than this are not counted (frame prefixes, small answers).
const COUNTED_FROM_BYTES: usize = 4096;

/// The budget, shared by every answer of one server.
#[derive(Clone, Debug)]
pub struct UnsentBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    /// Distinct buffers held, by address: (length, answers holding it).
    buffers: Mutex<HashMap<usize, (usize, usize)>>,
    held: AtomicUsize,
}

/// The buffers one answer holds, counted until it is dropped.
#[derive(Debug, Default)]
pub struct Held {
    budget: Option<Arc<Inner>>,
    addresses: Vec<usize>,
}

impl UnsentBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                limit,
                buffers: Mutex::default(),
                held: AtomicUsize::new(0),
            }),
        }
    }

    /// Bytes held now, and the limit, when the budget is spent.
    pub fn spent(&self) -> Option<(usize, usize)> {
        let held = self.inner.held.load(Ordering::Relaxed);
        (held > self.inner.limit).then_some((held, self.inner.limit))
    }

    /// Counts `chunks` as held until the returned guard is dropped.
    pub fn hold<'a>(&self, chunks: impl IntoIterator<Item = &'a Bytes>) -> Held {
        let mut addresses = Vec::new();
        let mut buffers = self.inner.buffers.lock().unwrap_or_else(|e| e.into_inner());
        for chunk in chunks.into_iter().filter(|c| c.len() >= COUNTED_FROM_BYTES) {
            let address = chunk.as_ptr() as usize;
            let entry = buffers.entry(address).or_insert((chunk.len(), 0));
            if entry.1 == 0 {
                self.inner.held.fetch_add(chunk.len(), Ordering::Relaxed);
            }
            entry.1 += 1;
            addresses.push(address);
        }
        Held {
            budget: Some(self.inner.clone()),
            addresses,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(budget) = self.budget.take() else {
            return;
        };
        if self.addresses.is_empty() {
            return;
        }
        let mut buffers = budget.buffers.lock().unwrap_or_else(|e| e.into_inner());
        for address in self.addresses.drain(..) {
            if let Some(entry) = buffers.get_mut(&address) {
                entry.1 -= 1;
                if entry.1 == 0 {
                    budget.held.fetch_sub(entry.0, Ordering::Relaxed);
                    buffers.remove(&address);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer shared by many answers counts once; the budget is spent past its limit and
    /// recovers as answers are dropped.
    #[test]
    fn shared_buffers_count_once() {
        let budget = UnsentBudget::new(10_000);
        let shared = Bytes::from(vec![0u8; 8_000]);
        let small = Bytes::from(vec![0u8; 10]);
        let answers: Vec<_> = (0..100)
            .map(|_| budget.hold(&[small.clone(), shared.clone()]))
            .collect();
        assert_eq!(budget.spent(), None, "8,000 bytes, counted once");
        let other = budget.hold(&[Bytes::from(vec![1u8; 8_000])]);
        assert_eq!(budget.spent(), Some((16_000, 10_000)));
        drop(other);
        assert_eq!(budget.spent(), None);
        drop(answers);
        assert_eq!(budget.inner.held.load(Ordering::Relaxed), 0);
        assert!(budget.inner.buffers.lock().unwrap().is_empty());
    }
}
