//! The closed-loop driver: C workers share M HTTP/2 connections and each issues one call
//! after the other for the measured window; every call's latency goes into a per-operation
//! HDR histogram (µs). Calls that start during the warm-up are made but not recorded.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latencies and errors of one operation.
#[derive(Clone)]
pub struct OpStats {
    /// Latency of each successful call, in µs.
    pub latency: Histogram<u64>,
    /// Calls that failed.
    pub errors: u64,
    /// The first failure's message, for the report.
    pub first_error: Option<String>,
}

#[allow(
    clippy::expect_used,
    reason = "constant bounds, shared by every histogram here"
)]
impl OpStats {
    fn new() -> Self {
        Self {
            // 1 µs .. 10 min, 3 significant digits.
            latency: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
            errors: 0,
            first_error: None,
        }
    }

    fn merge(&mut self, other: &OpStats) {
        self.latency.add(&other.latency).expect("same bounds");
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

/// What one worker recorded (merged across workers by [`run`]).
pub struct Recorder {
    measure_from: Instant,
    until: Instant,
    ops: BTreeMap<&'static str, OpStats>,
}

impl Recorder {
    /// A recorder for calls that start in `[measure_from, until)`.
    pub fn new(measure_from: Instant, until: Instant) -> Self {
        Self {
            measure_from,
            until,
            ops: BTreeMap::new(),
        }
    }

    /// True once the window is over.
    pub fn done(&self) -> bool {
        Instant::now() >= self.until
    }

    /// Makes a call, recording its latency (or its failure) under `op`.
    pub async fn time<T>(
        &mut self,
        op: &'static str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Option<T> {
        let started = Instant::now();
        let result = call.await;
        let elapsed = started.elapsed();
        let measured = started >= self.measure_from;
        match result {
            Ok(response) => {
                if measured {
                    self.record(op, elapsed);
                }
                Some(response.into_inner())
            }
            Err(status) => {
                self.fail(op, format!("{:?}: {}", status.code(), status.message()));
                None
            }
        }
    }

    /// Records a successful operation that took `elapsed` (if it started in the window).
    pub fn record(&mut self, op: &'static str, elapsed: Duration) {
        let micros = elapsed.as_micros().clamp(1, u128::from(u64::MAX)) as u64;
        self.entry(op).latency.saturating_record(micros);
    }

    /// Records a failure (always, warm-up or not: a failure is a failure).
    pub fn fail(&mut self, op: &'static str, message: String) {
        let stats = self.entry(op);
        stats.errors += 1;
        stats.first_error.get_or_insert(message);
    }

    fn entry(&mut self, op: &'static str) -> &mut OpStats {
        self.ops.entry(op).or_insert_with(OpStats::new)
    }

    /// Adds another recorder's figures to these.
    pub fn merge(&mut self, other: Recorder) {
        for (op, stats) in other.ops {
            self.entry(op).merge(&stats);
        }
    }
}

/// The figures of one measured window.
pub struct Report {
    /// Per operation.
    pub ops: BTreeMap<&'static str, OpStats>,
    /// Length of the measured window.
    pub window: Duration,
}

impl Report {
    /// Wraps what a recorder gathered over `window`.
    pub fn new(recorder: Recorder, window: Duration) -> Self {
        Self {
            ops: recorder.ops,
            window,
        }
    }

    /// Calls that failed, over every operation.
    pub fn errors(&self) -> u64 {
        self.ops.values().map(|s| s.errors).sum()
    }
}

/// One load worker: makes one call (or a short sequence) per step.
pub trait Worker: Send + 'static {
    /// Makes the next call(s), timing them through `rec`.
    fn step(&mut self, rec: &mut Recorder) -> impl Future<Output = ()> + Send;
}

/// Runs `workers` concurrently: `warmup` unrecorded, then `duration` recorded.
pub async fn run<W: Worker>(workers: Vec<W>, warmup: Duration, duration: Duration) -> Report {
    let measure_from = Instant::now() + warmup;
    let until = measure_from + duration;
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut worker| {
            tokio::spawn(async move {
                let mut rec = Recorder::new(measure_from, until);
                while !rec.done() {
                    worker.step(&mut rec).await;
                }
                rec
            })
        })
        .collect();
    let mut total = Recorder::new(measure_from, until);
    for task in tasks {
        match task.await {
            Ok(rec) => total.merge(rec),
            Err(err) => total.fail("worker", format!("worker task failed: {err}")),
        }
    }
    Report::new(total, duration)
}
