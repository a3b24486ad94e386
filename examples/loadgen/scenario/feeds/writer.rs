//! The writes of `feeds`: changes at a steady rate (open loop: each change is sent when its
//! time comes, whatever the previous ones' latency) on RUNNING executions spread over the
//! tenants. Most are an action's progress (UpdateAction: the next action to RUNNING, then
//! to COMPLETED); one in a hundred stops an execution and one in a hundred starts one, so
//! executions leave and join the feeds' filter while their number stays steady.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use executions::proto::v1 as pb;
use tokio::task::JoinSet;

use crate::drive::Recorder;
use crate::{Client, dag};

/// Changes in flight at most; past it the writer is behind its schedule and skips.
const MAX_IN_FLIGHT: usize = 256;

/// A RUNNING execution the writer changes.
#[derive(Clone, Debug)]
pub struct Running {
    /// Its UUID.
    pub id: String,
    /// Its tenant (index into the tenants).
    pub tenant: usize,
    /// Changes made to it so far by UpdateAction: change `k` moves action `a{k/2}` to
    /// RUNNING (`k` even) or COMPLETED (`k` odd).
    pub step: usize,
}

/// A change that committed.
#[derive(Clone, Debug)]
pub struct Write {
    /// The execution's UUID.
    pub id: String,
    /// Its tenant.
    pub tenant: usize,
    /// Its revision after the change.
    pub revision: i64,
    /// When the call was sent.
    pub sent: Instant,
    /// When its answer arrived (the change had committed by then).
    pub answered: Instant,
}

/// What one paced window of changes did.
pub struct Window {
    /// The changes sent in the measured part of the window that committed.
    pub writes: Vec<Write>,
    /// Their latency (`update`, `stop`, `start`), and every failure.
    pub rec: Recorder,
    /// Changes sent, warm-up included.
    pub sent: u64,
    /// Changes skipped because `MAX_IN_FLIGHT` were in flight.
    pub skipped: u64,
    /// Length of the measured part.
    pub measured: Duration,
    /// When the measured part began.
    pub measure_from: Instant,
}

/// The writer: its connections and the executions it changes.
pub struct Writer {
    clients: Vec<Client>,
    /// RUNNING executions no change is in flight for (one change at a time each, so a
    /// change never races the one before it).
    idle: Mutex<Vec<Running>>,
    tenants: Vec<String>,
    actions: usize,
    /// Changes made so far; picks each change's kind.
    made: AtomicU64,
}

impl Writer {
    /// A writer over `clients`, of `executions` (of `actions` actions each).
    pub fn new(
        clients: Vec<Client>,
        executions: Vec<Running>,
        tenants: Vec<String>,
        actions: usize,
    ) -> Self {
        Self {
            clients,
            idle: Mutex::new(executions),
            tenants,
            actions,
            made: AtomicU64::new(0),
        }
    }

    /// The executions it changes now (none in flight).
    pub fn executions(&self) -> Vec<Running> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a random execution no change is in flight for.
    fn take(&self) -> Option<Running> {
        let mut idle = self.lock();
        if idle.is_empty() {
            return None;
        }
        let i = rand::random_range(0..idle.len());
        Some(idle.swap_remove(i))
    }

    fn give_back(&self, running: Running) {
        self.lock().push(running);
    }

    /// Makes `rate` changes a second for `warmup` (not measured) then `duration`.
    pub async fn run(self: &Arc<Self>, rate: f64, warmup: Duration, duration: Duration) -> Window {
        let began = Instant::now();
        let measure_from = began + warmup;
        let until = measure_from + duration;
        let mut rec = Recorder::new(measure_from, until);
        let mut writes = Vec::new();
        let mut tasks = JoinSet::new();
        let (mut sent, mut skipped) = (0, 0);
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut collect = |done: Result<Done, tokio::task::JoinError>| match done {
            Ok(done) => done.record(measure_from, &mut rec, &mut writes),
            Err(err) => rec.fail("writer", format!("change task failed: {err}")),
        };
        loop {
            tick.tick().await;
            let now = Instant::now();
            if now >= until {
                break;
            }
            let due = (now.duration_since(began).as_secs_f64() * rate) as u64;
            while sent + skipped < due {
                if tasks.len() >= MAX_IN_FLIGHT {
                    skipped += due - sent - skipped;
                    break;
                }
                let writer = self.clone();
                tasks.spawn(async move { writer.change().await });
                sent += 1;
            }
            while let Some(done) = tasks.try_join_next() {
                collect(done);
            }
        }
        while let Some(done) = tasks.join_next().await {
            collect(done);
        }
        Window {
            writes,
            rec,
            sent,
            skipped,
            measured: duration,
            measure_from,
        }
    }

    /// The next change: one in a hundred a StopExecution, one a StartExecution, the rest
    /// UpdateAction.
    async fn change(self: Arc<Self>) -> Done {
        let n = self.made.fetch_add(1, Ordering::Relaxed);
        let mut client = self.clients[n as usize % self.clients.len()].clone();
        let sent = Instant::now();
        let (op, outcome) = match n % 100 {
            0 => ("stop", self.stop(&mut client).await),
            50 => ("start", self.start(&mut client, n).await),
            _ => ("update", self.update(&mut client).await),
        };
        Done {
            op,
            sent,
            answered: Instant::now(),
            outcome,
        }
    }

    async fn update(&self, client: &mut Client) -> Result<(String, usize, i64), String> {
        let mut running = self.take().ok_or("no RUNNING execution left")?;
        let request = pb::UpdateActionRequest {
            execution_id: running.id.clone(),
            node_id: format!("a{}", running.step / 2),
            status: if running.step % 2 == 0 {
                pb::ActionStatus::Running
            } else {
                pb::ActionStatus::Completed
            } as i32,
            view: pb::ExecutionView::Basic as i32,
            ..Default::default()
        };
        let answer = client.update_action(request).await;
        let answer = match answer {
            Ok(answer) => answer.into_inner(),
            Err(status) => {
                // Still RUNNING: it may be changed again.
                self.give_back(running);
                return Err(format!("{:?}: {}", status.code(), status.message()));
            }
        };
        let done = (running.id.clone(), running.tenant, answer.revision);
        running.step += 1;
        // Its last action completed: it left the RUNNING executions.
        if running.step < 2 * self.actions {
            self.give_back(running);
        }
        Ok(done)
    }

    async fn stop(&self, client: &mut Client) -> Result<(String, usize, i64), String> {
        let running = self.take().ok_or("no RUNNING execution left")?;
        let request = pb::StopExecutionRequest {
            id: running.id.clone(),
            reason: "load test".into(),
            view: pb::ExecutionView::Basic as i32,
            ..Default::default()
        };
        match client.stop_execution(request).await {
            Ok(answer) => Ok((running.id, running.tenant, answer.into_inner().revision)),
            Err(status) => {
                self.give_back(running);
                Err(format!("{:?}: {}", status.code(), status.message()))
            }
        }
    }

    async fn start(&self, client: &mut Client, n: u64) -> Result<(String, usize, i64), String> {
        let tenant = rand::random_range(0..self.tenants.len());
        let request = start_request(self.actions, &self.tenants[tenant], n as usize);
        let answer = client
            .start_execution(request)
            .await
            .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?
            .into_inner();
        let id = answer.id.clone();
        self.give_back(Running {
            id: answer.id,
            tenant,
            step: 0,
        });
        Ok((id, tenant, answer.revision))
    }
}

/// StartExecution of the `n`th execution of `tenant`: start → `actions` parallel actions,
/// so its actions can be moved in any order.
pub fn start_request(actions: usize, tenant: &str, n: usize) -> pb::StartExecutionRequest {
    pb::StartExecutionRequest {
        user_key: tenant.to_owned(),
        ..dag::start_request(dag::wide(actions), n)
    }
}

/// A change's outcome, as its task answers it.
struct Done {
    op: &'static str,
    sent: Instant,
    answered: Instant,
    /// (execution, tenant, revision) or why it failed.
    outcome: Result<(String, usize, i64), String>,
}

impl Done {
    fn record(self, measure_from: Instant, rec: &mut Recorder, writes: &mut Vec<Write>) {
        match self.outcome {
            Ok((id, tenant, revision)) if self.sent >= measure_from => {
                rec.record(self.op, self.answered.duration_since(self.sent));
                writes.push(Write {
                    id,
                    tenant,
                    revision,
                    sent: self.sent,
                    answered: self.answered,
                });
            }
            Ok(_) => {}
            Err(why) => rec.fail(self.op, why),
        }
    }
}
