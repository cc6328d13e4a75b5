//! The one polling helper: task waits, agent waits and IP waits (in `pve-net`) all use it.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;

/// How often to ask: the first pause is `min`, each next one `factor` times longer, at most
/// `max`.
///
/// ```
/// use std::time::Duration;
/// use pve_vm::PollPolicy;
/// let p = PollPolicy::TASK;
/// assert_eq!(p.interval(0), Duration::from_millis(250));
/// assert_eq!(p.interval(20), Duration::from_secs(2));
/// let fast = p.scaled(0.01);
/// assert_eq!(fast.interval(0), Duration::from_micros(2500));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollPolicy {
    min: Duration,
    max: Duration,
    factor: f64,
}

impl PollPolicy {
    /// Task status polling: 250 ms growing to 2 s (reference §9.4: poll tasks every 1–2 s).
    pub const TASK: PollPolicy = PollPolicy {
        min: Duration::from_millis(250),
        max: Duration::from_secs(2),
        factor: 1.5,
    };

    /// Guest-agent pings: at least 1 s apart (each failing ping costs the server ~3 s of a
    /// worker), growing to 5 s.
    pub const AGENT: PollPolicy = PollPolicy {
        min: Duration::from_secs(1),
        max: Duration::from_secs(5),
        factor: 1.5,
    };

    /// A policy from `min` to `max` (swapped if given the wrong way round), growing by 1.5×.
    pub fn new(min: Duration, max: Duration) -> Self {
        let (min, max) = if min <= max { (min, max) } else { (max, min) };
        Self {
            min,
            max,
            factor: 1.5,
        }
    }

    /// The growth factor between pauses (at least 1).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// Both bounds multiplied by `scale` (e.g. a simulator's time scale in tests); a negative
    /// scale counts as 0, a non-finite one as 1.
    pub fn scaled(self, scale: f64) -> Self {
        let scale = sane_scale(scale);
        Self {
            min: self.min.mul_f64(scale),
            max: self.max.mul_f64(scale),
            factor: self.factor,
        }
    }

    /// The shortest pause.
    pub fn min(&self) -> Duration {
        self.min
    }

    /// The longest pause.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The pause after attempt number `attempt` (0-based).
    pub fn interval(&self, attempt: u32) -> Duration {
        let grown = self.min.as_secs_f64() * self.factor.powi(attempt.min(64) as i32);
        Duration::from_secs_f64(grown.min(self.max.as_secs_f64()))
    }

    /// Calls `step` until it answers [`Poll::Ready`], pausing per this policy, for at most
    /// `timeout` (a last attempt is made at the deadline).
    ///
    /// `step` decides what is transient: [`Poll::Pending`] carries an optional error text
    /// (kept for the timeout error); an `Err` ends the wait at once. `what` names the awaited
    /// thing in the timeout error.
    pub async fn wait<T, E, F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        mut step: F,
    ) -> Result<T, E>
    where
        E: From<Error>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Poll<T>, E>>,
    {
        let deadline = Instant::now() + timeout;
        let mut last_error = None;
        let mut attempt = 0u32;
        loop {
            match step().await? {
                Poll::Ready(v) => return Ok(v),
                Poll::Pending(err) => {
                    if err.is_some() {
                        last_error = err;
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    what: what.to_owned(),
                    after: timeout,
                    last_error,
                }
                .into());
            }
            let pause = self.interval(attempt).min(deadline - now);
            attempt = attempt.saturating_add(1);
            tokio::time::sleep(pause).await;
        }
    }
}

/// A time scale as [`PollPolicy::scaled`] and [`Timing::scaled`](crate::Timing::scaled)
/// apply it: negative counts as 0, non-finite as 1.
pub(crate) fn sane_scale(scale: f64) -> f64 {
    if scale.is_finite() {
        scale.max(0.0)
    } else {
        1.0
    }
}

/// One answer of a polling step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll<T> {
    /// Done, with the result.
    Ready(T),
    /// Not yet; `Some(text)` when this attempt failed transiently (shown on timeout).
    Pending(Option<String>),
}

impl<T> Poll<T> {
    /// Maps a step result for callers whose steps may fail transiently: a transient
    /// [`Error`] becomes `Pending(Some(text))`, other errors stay errors.
    pub fn tolerate(result: crate::Result<Poll<T>>) -> crate::Result<Poll<T>> {
        match result {
            Err(e) if e.is_transient() => {
                tracing::debug!(error = %e, "transient error while polling; trying again");
                Ok(Poll::Pending(Some(e.to_string())))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn intervals_grow_and_cap() {
        let p = PollPolicy::new(Duration::from_millis(100), Duration::from_millis(400));
        assert_eq!(p.interval(0), Duration::from_millis(100));
        assert_eq!(p.interval(1), Duration::from_millis(150));
        assert_eq!(p.interval(2), Duration::from_millis(225));
        assert_eq!(p.interval(10), Duration::from_millis(400));
        assert_eq!(p.interval(u32::MAX), Duration::from_millis(400));
        let swapped = PollPolicy::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(swapped.min(), Duration::from_secs(1));
        assert_eq!(PollPolicy::AGENT.min(), Duration::from_secs(1));
        let flat = p.factor(0.5);
        assert_eq!(flat.interval(5), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_counts_attempts_and_keeps_last_error() {
        let calls = AtomicU32::new(0);
        let p = PollPolicy::new(Duration::from_millis(10), Duration::from_millis(10));
        let v: Result<u32, Error> = p
            .wait("thing", Duration::from_secs(1), || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                Ok(if n == 3 {
                    Poll::Ready(n)
                } else {
                    Poll::Pending(None)
                })
            })
            .await;
        assert_eq!(v.unwrap(), 3);
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        let calls = AtomicU32::new(0);
        let err = p
            .wait::<(), Error, _, _>("the thing", Duration::from_millis(95), || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(Poll::Pending(Some("HTTP 596".to_owned())))
            })
            .await
            .unwrap_err();
        // Attempts at 0, 10, …, 90 and a last one at the deadline (95).
        assert_eq!(calls.load(Ordering::SeqCst), 11);
        let text = err.to_string();
        assert!(
            text.contains("the thing") && text.contains("HTTP 596"),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn errors_end_the_wait() {
        let p = PollPolicy::TASK;
        let err = p
            .wait::<(), Error, _, _>("x", Duration::from_secs(10), || async {
                Err(Error::Refused { why: "no".into() })
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Refused { .. }));
    }
}
