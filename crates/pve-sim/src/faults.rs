//! Seeded fault injection: transient 500/503/596 answers, connection resets, added
//! latency, and clone tasks that fail with the texts real clusters produce.
//!
//! One ChaCha stream per simulator, seeded with `--seed`, drawn once per API request in
//! arrival order (and once more per clone): the same seed and the same sequential
//! requests give the same faults. `/_sim/*` never draws.

use http::StatusCode;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to do to one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fault {
    /// Answer with this status and reason instead of running the handler.
    Status(StatusCode, &'static str),
    /// Close the connection without an answer.
    Reset,
    /// Run the request normally after this many simulated seconds.
    Latency(f64),
    /// Run the request, then close the connection instead of answering (its effect
    /// stays; only queued by [`crate::SimHandle::fail_next_request`], never drawn).
    LostAnswer,
}

/// The fault stream.
#[derive(Debug)]
pub(crate) struct Faults {
    rng: ChaCha8Rng,
    rate: f64,
    /// Failures queued by [`crate::SimHandle::fail_next_clone`], used before any draw.
    queued_clone_failures: std::collections::VecDeque<String>,
    /// One-shot faults queued by [`crate::SimHandle::fail_next_request`]: method, path
    /// prefix, fault. The first match is used (and removed) instead of a draw.
    queued_requests: Vec<(String, String, Fault)>,
}

/// Texts of clone tasks that fail for reasons outside the client's control.
const CLONE_FAILURES: &[&str] = &[
    "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout",
    "clone failed: cfs-lock 'storage-local-lvm' error: got lock request timeout",
    "clone failed: cfs-lock 'file-user_cfg' error: got lock request timeout",
];

impl Faults {
    pub(crate) fn new(seed: u64, rate: f64) -> Self {
        // A different stream than the MAC/UUID generator, from the same seed.
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        s[8..16].copy_from_slice(b"faults!!");
        Self {
            rng: ChaCha8Rng::from_seed(s),
            rate,
            queued_clone_failures: std::collections::VecDeque::new(),
            queued_requests: Vec::new(),
        }
    }

    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }

    pub(crate) fn set_rate(&mut self, rate: f64) {
        self.rate = rate;
    }

    /// Draw the fault (if any) of the next request. A rate of 0 draws nothing, so turning
    /// faults on later starts the same stream.
    pub(crate) fn draw(&mut self) -> Option<Fault> {
        if self.rate <= 0.0 {
            return None;
        }
        let x: f64 = self.rng.gen();
        if x >= self.rate {
            return None;
        }
        Some(match self.rng.gen_range(0..5u8) {
            0 => Fault::Status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "got no worker upid - start worker failed",
            ),
            1 => Fault::Status(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
            2 => Fault::Status(
                StatusCode::from_u16(596).expect("596 is a valid status code"),
                "Connection timed out",
            ),
            3 => Fault::Reset,
            _ => Fault::Latency(self.rng.gen_range(0.5..3.0)),
        })
    }

    /// The fault of the next request `method path`: a queued one-shot fault that matches,
    /// else a draw (a queued match draws nothing, so the seeded stream is unchanged).
    pub(crate) fn draw_for(&mut self, method: &str, path: &str) -> Option<Fault> {
        let hit = self
            .queued_requests
            .iter()
            .position(|(m, prefix, _)| m == method && path.starts_with(prefix.as_str()));
        match hit {
            Some(i) => Some(self.queued_requests.remove(i).2),
            None => self.draw(),
        }
    }

    /// Make the next `method` request whose API path starts with `prefix` fail with
    /// `fault`, before its handler runs (tests of one precise transient failure).
    pub(crate) fn queue_request_fault(&mut self, method: String, prefix: String, fault: Fault) {
        self.queued_requests.push((method, prefix, fault));
    }

    /// Should the clone task being forked fail, and with which text?
    pub(crate) fn clone_failure(&mut self) -> Option<String> {
        if let Some(queued) = self.queued_clone_failures.pop_front() {
            return Some(queued);
        }
        if self.rate <= 0.0 {
            return None;
        }
        let x: f64 = self.rng.gen();
        (x < self.rate)
            .then(|| CLONE_FAILURES[self.rng.gen_range(0..CLONE_FAILURES.len())].to_owned())
    }

    /// Make the next clone task fail with `text` (tests of client error handling).
    pub(crate) fn queue_clone_failure(&mut self, text: String) {
        self.queued_clone_failures.push_back(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults_and_rate_zero_draws_nothing() {
        let mut a = Faults::new(42, 0.5);
        let mut b = Faults::new(42, 0.5);
        let da: Vec<_> = (0..200).map(|_| a.draw()).collect();
        let db: Vec<_> = (0..200).map(|_| b.draw()).collect();
        assert_eq!(da, db);
        let hits = da.iter().filter(|f| f.is_some()).count();
        assert!((60..140).contains(&hits), "about half of 200, got {hits}");
        for kind in [0, 1, 2, 3, 4] {
            assert!(
                da.iter().flatten().any(|f| match (kind, f) {
                    (0, Fault::Status(s, _)) => s.as_u16() == 500,
                    (1, Fault::Status(s, _)) => s.as_u16() == 503,
                    (2, Fault::Status(s, _)) => s.as_u16() == 596,
                    (3, Fault::Reset) => true,
                    (4, Fault::Latency(_)) => true,
                    _ => false,
                }),
                "fault kind {kind} occurs"
            );
        }
        let mut c = Faults::new(43, 0.5);
        let dc: Vec<_> = (0..200).map(|_| c.draw()).collect();
        assert_ne!(da, dc);
        let mut off = Faults::new(42, 0.0);
        assert!((0..100).all(|_| off.draw().is_none() && off.clone_failure().is_none()));
        off.queue_request_fault("POST".into(), "/cluster/firewall".into(), Fault::Reset);
        assert_eq!(off.draw_for("GET", "/cluster/firewall/groups"), None);
        assert_eq!(
            off.draw_for("POST", "/cluster/firewall/groups"),
            Some(Fault::Reset)
        );
        assert_eq!(
            off.draw_for("POST", "/cluster/firewall/groups"),
            None,
            "once"
        );
        off.queue_clone_failure("x".into());
        assert_eq!(off.clone_failure().as_deref(), Some("x"));
        assert!(off.clone_failure().is_none());
    }
}
