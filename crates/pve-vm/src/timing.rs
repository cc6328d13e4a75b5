//! Waiting and retry settings.

use std::time::Duration;

use rand::Rng;

use crate::poll::{sane_scale, PollPolicy};

/// Backoff with jitter for retrying operations that failed on a busy lock: the pause before
/// retry *n* (1-based) is `initial · 2^(n-1)` capped at `max`, of which a random part of up
/// to half is dropped so parallel callers do not retry in lockstep; no retry starts after
/// `budget` or `max_retries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Pause before the first retry.
    pub initial: Duration,
    /// Longest pause.
    pub max: Duration,
    /// Time from the first attempt after which no retry starts.
    pub budget: Duration,
    /// Most retries.
    pub max_retries: u32,
}

impl Backoff {
    /// The pause before retry `retry` (1-based) for a jitter sample in `[0, 1]`.
    pub fn delay_with_jitter(&self, retry: u32, jitter: f64) -> Duration {
        let exp = retry.saturating_sub(1).min(31);
        let base = self.initial.saturating_mul(1u32 << exp).min(self.max);
        let half = base / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// The pause before retry `retry` (1-based) with random jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        self.delay_with_jitter(retry, rand::thread_rng().gen_range(0.0..=1.0))
    }

    /// The pause before retry `retry` if it is still allowed after `elapsed`.
    pub fn next_delay(&self, retry: u32, elapsed: Duration) -> Option<Duration> {
        if retry > self.max_retries {
            return None;
        }
        let d = self.delay(retry);
        (elapsed + d <= self.budget).then_some(d)
    }

    fn scaled(self, f: f64) -> Self {
        Self {
            initial: self.initial.mul_f64(f),
            max: self.max.mul_f64(f),
            budget: self.budget.mul_f64(f),
            max_retries: self.max_retries,
        }
    }
}

/// How long and how often [`VmApi`](crate::VmApi) waits and retries.
///
/// `Timing::default()` suits a real cluster; tests against a simulator running at a time
/// scale use `Timing::default().scaled(scale)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Task status polling (250 ms growing to 2 s).
    pub task_poll: PollPolicy,
    /// Guest agent pings (at least 1 s apart).
    pub agent_poll: PollPolicy,
    /// Longest wait for a start/stop/reboot/template/destroy task (default 5 min).
    pub task_timeout: Duration,
    /// Longest wait for a clone task (default 30 min: full clones copy disks).
    pub clone_timeout: Duration,
    /// Retries of operations refused because a lock was busy (storage lock timeouts,
    /// `CT is locked (disk)`, config lock timeouts).
    pub lock_retry: Backoff,
    /// After a POST whose answer was lost, how long to look for its effect before sending
    /// it again (default 10 s).
    pub settle: Duration,
    /// How many times a clone may move to another id because its id was taken.
    pub max_id_moves: u32,
    /// Clones this `VmApi` runs at the same time per source node (PVE's storage allocation
    /// lock admits few; reference §9.2 suggests 2–4). A count, not scaled.
    pub clones_per_node: usize,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            task_poll: PollPolicy::TASK,
            agent_poll: PollPolicy::AGENT,
            task_timeout: Duration::from_secs(300),
            clone_timeout: Duration::from_secs(1800),
            lock_retry: Backoff {
                initial: Duration::from_secs(2),
                max: Duration::from_secs(15),
                budget: Duration::from_secs(300),
                max_retries: 30,
            },
            settle: Duration::from_secs(10),
            max_id_moves: 50,
            clones_per_node: 3,
        }
    }
}

impl Timing {
    /// Every duration multiplied by `scale` (counts unchanged); a negative scale counts as 0,
    /// a non-finite one as 1.
    #[must_use]
    pub fn scaled(self, scale: f64) -> Self {
        let scale = sane_scale(scale);
        Self {
            task_poll: self.task_poll.scaled(scale),
            agent_poll: self.agent_poll.scaled(scale),
            task_timeout: self.task_timeout.mul_f64(scale),
            clone_timeout: self.clone_timeout.mul_f64(scale),
            lock_retry: self.lock_retry.scaled(scale),
            settle: self.settle.mul_f64(scale),
            max_id_moves: self.max_id_moves,
            clones_per_node: self.clones_per_node,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_schedule_and_budget() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(800),
            budget: Duration::from_secs(1),
            max_retries: 3,
        };
        assert_eq!(b.delay_with_jitter(1, 1.0), Duration::from_millis(100));
        assert_eq!(b.delay_with_jitter(1, 0.0), Duration::from_millis(50));
        assert_eq!(b.delay_with_jitter(3, 1.0), Duration::from_millis(400));
        assert_eq!(b.delay_with_jitter(9, 1.0), Duration::from_millis(800));
        assert!(b.next_delay(4, Duration::ZERO).is_none(), "max_retries");
        assert!(
            b.next_delay(1, Duration::from_millis(999)).is_none(),
            "budget"
        );
        let d = b.next_delay(2, Duration::ZERO).unwrap();
        assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
    }

    #[test]
    fn scaling_scales_durations_only() {
        let t = Timing::default().scaled(0.01);
        assert_eq!(t.task_timeout, Duration::from_secs(3));
        assert_eq!(t.agent_poll.min(), Duration::from_millis(10));
        assert_eq!(t.lock_retry.max_retries, 30);
        assert_eq!(t.max_id_moves, 50);
        assert_eq!(t.clones_per_node, 3);
        assert_eq!(Timing::default().scaled(-1.0).task_timeout, Duration::ZERO);
        assert_eq!(Timing::default().scaled(f64::NAN), Timing::default());
    }
}
