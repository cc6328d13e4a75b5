//! Waiting for many tasks at once: one task listing per node per tick serves every
//! waiter (`GET /nodes/{node}/tasks?source=all&since=…`), instead of one status request
//! per task and tick. Ticks are planned from what this process saw: per task type, the
//! duration is bracketed by the longest a task was seen still running (`lo`) and the
//! shortest in which one was seen ended (`hi`); a task's first check comes at `hi`, or in
//! the middle of the bracket while it is wide, so the bracket closes in on the real
//! duration within a few tasks and each later task is seen ended about when it ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pve_auth::{Params, PveClient};
use pve_vm::{PollPolicy, Upid};
use serde::Deserialize;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

/// How a task ended: its exit status (`OK`, `WARNINGS: n`, or the error text).
pub(crate) type Exit = std::result::Result<String, pve_auth::Error>;

/// The waiters of one process, per node.
#[derive(Debug)]
pub(crate) struct Tasks {
    client: PveClient,
    poll: PollPolicy,
    nodes: Mutex<HashMap<String, Arc<NodeTasks>>>,
    /// Per task type: what its durations were seen to be.
    learned: Arc<Mutex<HashMap<String, Bracket>>>,
}

/// Durations of one task type: longest seen running, shortest seen ended.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Bracket {
    lo: Option<Duration>,
    hi: Option<Duration>,
}

impl Bracket {
    /// When to check a task first, counted from its submission.
    fn first_check(&self, fallback: Duration) -> Duration {
        match (self.lo, self.hi) {
            (Some(lo), Some(hi)) if hi.saturating_sub(lo) > hi / 10 => lo + (hi - lo) / 2,
            (_, Some(hi)) => hi,
            (Some(lo), None) => lo + fallback,
            (None, None) => fallback,
        }
    }

    /// The pause between checks of a task seen still running.
    fn gap(&self, fallback: Duration) -> Duration {
        match self.hi {
            // `clamp` would panic when the fallback (scaled) is under 1 ms.
            Some(hi) => (hi / 4)
                .min(fallback)
                .max(Duration::from_millis(1).min(fallback)),
            None => fallback,
        }
    }

    fn running_at(&mut self, elapsed: Duration) {
        if self.hi.is_none_or(|hi| elapsed < hi) {
            self.lo = Some(self.lo.map_or(elapsed, |lo| lo.max(elapsed)));
        }
    }

    fn ended_by(&mut self, elapsed: Duration) {
        self.hi = Some(self.hi.map_or(elapsed, |hi| hi.min(elapsed)));
        if self.lo.is_some_and(|lo| lo >= elapsed) {
            self.lo = None;
        }
    }
}

#[derive(Debug, Default)]
struct NodeTasks {
    waiters: Mutex<HashMap<String, Waiter>>,
    wake: Notify,
    polling: Mutex<bool>,
}

#[derive(Debug)]
struct Waiter {
    upid: Upid,
    submitted: Instant,
    due: Instant,
    gap: Duration,
    /// Listings in a row that did not show the task at all.
    unseen: u32,
    done: oneshot::Sender<Exit>,
}

/// One item of `GET /nodes/{node}/tasks`.
#[derive(Debug, Deserialize)]
struct Item {
    upid: String,
    /// The exit status, once the task ended.
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    endtime: Option<serde_json::Value>,
}

/// `GET …/tasks/{upid}/status`, for a task the listings do not show.
#[derive(Debug, Deserialize)]
struct Status {
    status: String,
    #[serde(default)]
    exitstatus: Option<String>,
}

impl Tasks {
    pub(crate) fn new(client: PveClient, poll: PollPolicy) -> Self {
        Self {
            client,
            poll,
            nodes: Mutex::new(HashMap::new()),
            learned: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Waits until the task ends (at most `timeout`); its exit status.
    pub(crate) async fn wait(&self, upid: &Upid, timeout: Duration) -> Option<Exit> {
        let node = upid.node().as_str().to_owned();
        let entry = {
            let mut nodes = lock(&self.nodes);
            Arc::clone(nodes.entry(node.clone()).or_default())
        };
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        let first = lock(&self.learned)
            .get(upid.task_type())
            .copied()
            .unwrap_or_default()
            .first_check(self.poll.min());
        lock(&entry.waiters).insert(
            upid.as_str().to_owned(),
            Waiter {
                upid: upid.clone(),
                submitted: now,
                due: now + first,
                gap: self.poll.min(),
                unseen: 0,
                done: tx,
            },
        );
        let start_poller = {
            let mut polling = lock(&entry.polling);
            !std::mem::replace(&mut *polling, true)
        };
        if start_poller {
            let poller = Poller {
                client: self.client.clone(),
                poll: self.poll,
                node,
                tasks: Arc::clone(&entry),
                learned: Arc::clone(&self.learned),
            };
            tokio::spawn(poller.run());
        } else {
            entry.wake.notify_one();
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(exit)) => Some(exit),
            // The poller went away (runtime shutting down) or the wait ran out.
            _ => {
                lock(&entry.waiters).remove(upid.as_str());
                None
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The one poller of a node while it has waiters.
struct Poller {
    client: PveClient,
    poll: PollPolicy,
    node: String,
    tasks: Arc<NodeTasks>,
    learned: Arc<Mutex<HashMap<String, Bracket>>>,
}

/// Marks the node's poller gone however it ends (a panic included), so the next waiter
/// starts a new one instead of waiting for a poller that is not there.
struct Running(Arc<NodeTasks>);

impl Drop for Running {
    fn drop(&mut self) {
        *lock(&self.0.polling) = false;
    }
}

impl Poller {
    async fn run(self) {
        let _running = Running(Arc::clone(&self.tasks));
        loop {
            let next = {
                let waiters = lock(&self.tasks.waiters);
                if waiters.is_empty() {
                    *lock(&self.tasks.polling) = false;
                    return;
                }
                waiters.values().map(|w| w.due).min()
            };
            if let Some(due) = next {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    // A new waiter may be due sooner.
                    () = self.tasks.wake.notified() => continue,
                }
            }
            self.tick().await;
        }
    }

    async fn tick(&self) {
        let (since, count) = {
            let waiters = lock(&self.tasks.waiters);
            let since = waiters.values().map(|w| w.upid.starttime()).min();
            (since, waiters.len())
        };
        let Some(since) = since else { return };
        let sent = Instant::now();
        let params = Params::new()
            .with("source", "all")
            .with("since", since.saturating_sub(1))
            // Newest first: room for every task started since the oldest waiter.
            .with("limit", (count * 8 + 200) as u64);
        let listed = self
            .client
            .get::<Vec<Item>>(&format!("/nodes/{}/tasks", self.node), &params)
            .await;
        let now = Instant::now();
        let mut ended: Vec<(Waiter, Exit)> = Vec::new();
        let mut lost: Vec<Upid> = Vec::new();
        {
            let mut waiters = lock(&self.tasks.waiters);
            match &listed {
                Ok(items) => {
                    let by_upid: HashMap<&str, &Item> =
                        items.iter().map(|i| (i.upid.as_str(), i)).collect();
                    let keys: Vec<String> = waiters.keys().cloned().collect();
                    for k in keys {
                        let Some(w) = waiters.get_mut(&k) else {
                            continue;
                        };
                        match by_upid.get(k.as_str()) {
                            Some(item) if item.endtime.is_some() || item.status.is_some() => {
                                let exit = item.status.clone().unwrap_or_else(|| "OK".into());
                                if let Some(w) = waiters.remove(&k) {
                                    ended.push((w, Ok(exit)));
                                }
                            }
                            Some(_) => {
                                w.unseen = 0;
                                let mut learned = lock(&self.learned);
                                let b = learned.entry(w.upid.task_type().to_owned()).or_default();
                                b.running_at(sent.saturating_duration_since(w.submitted));
                                w.gap = w.gap.min(b.gap(self.poll.max()));
                                drop(learned);
                                reschedule(w, now, &self.poll);
                            }
                            None => {
                                w.unseen += 1;
                                if w.unseen >= 3 {
                                    lost.push(w.upid.clone());
                                }
                                reschedule(w, now, &self.poll);
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(node = %self.node, error = %e, "task listing failed; trying again");
                    for w in waiters.values_mut() {
                        reschedule(w, now, &self.poll);
                    }
                }
            }
        }
        for (w, exit) in ended {
            lock(&self.learned)
                .entry(w.upid.task_type().to_owned())
                .or_default()
                .ended_by(sent.saturating_duration_since(w.submitted));
            let _ = w.done.send(exit);
        }
        // A task the listings do not show (a listing limit, a foreign filter): ask for it.
        for upid in lost {
            let path = pve_auth::api_path(&["nodes", &self.node, "tasks", upid.as_str(), "status"]);
            match self.client.get::<Status>(&path, &Params::new()).await {
                Ok(s) if s.status == "stopped" => {
                    if let Some(w) = lock(&self.tasks.waiters).remove(upid.as_str()) {
                        let _ = w.done.send(Ok(s.exitstatus.unwrap_or_else(|| "OK".into())));
                    }
                }
                Ok(_) => {}
                Err(e) if e.is_retryable() => {}
                Err(e) => {
                    if let Some(w) = lock(&self.tasks.waiters).remove(upid.as_str()) {
                        let _ = w.done.send(Err(e));
                    }
                }
            }
        }
    }
}

fn reschedule(w: &mut Waiter, now: Instant, poll: &PollPolicy) {
    w.due = now + w.gap;
    w.gap = w.gap.mul_f64(1.5).min(poll.max());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gap_never_panics_and_stays_within_the_fallback() {
        let b = Bracket {
            lo: None,
            hi: Some(Duration::from_millis(200)),
        };
        assert_eq!(b.gap(Duration::from_secs(2)), Duration::from_millis(50));
        // A tiny time scale: the fallback is below 1 ms.
        let tiny = Duration::from_micros(3);
        assert_eq!(b.gap(tiny), tiny);
        let zero = Bracket {
            lo: None,
            hi: Some(Duration::ZERO),
        };
        assert_eq!(zero.gap(Duration::from_secs(1)), Duration::from_millis(1));
    }

    #[test]
    fn the_bracket_closes_in_on_the_duration() {
        let mut b = Bracket::default();
        let fallback = Duration::from_millis(25);
        assert_eq!(b.first_check(fallback), fallback);
        b.running_at(Duration::from_millis(100));
        b.ended_by(Duration::from_millis(330));
        // Wide: the middle is explored.
        assert_eq!(b.first_check(fallback), Duration::from_millis(215));
        b.ended_by(Duration::from_millis(215));
        b.running_at(Duration::from_millis(200));
        // Narrow: check when the quickest ended.
        assert_eq!(b.first_check(fallback), Duration::from_millis(215));
    }
}
