//! The simulator's lower bound for `labctl lab collect` of inside probes (agent `exec` and
//! `file`), computed from `pve-sim`'s model of the guest agent.
//!
//! What the model says (the `pve-sim` source each point comes from):
//!
//! - **An exec runs in the guest, not in a worker.** `POST agent/exec` registers the
//!   command and answers its pid at once; its output is reported by `GET
//!   agent/exec-status` from `start + run_time · scale` on (`guest/agent.rs`, `exec`;
//!   `run_time` from the guest's command table). Commands of one guest and of different
//!   guests run side by side: nothing in the simulator (or in qemu-ga, which spawns each
//!   `guest-exec`) serialises them.
//! - **Agent calls hold a pvedaemon worker only while their handler runs.** Every agent
//!   path is protected, so each request takes one of its node's [`DAEMON_WORKERS`]
//!   (`server.rs`); with a running agent the handler does not sleep
//!   ([`HOLD_RUNNING_AGENT`] = 0 s of simulated time). A stopped agent holds the worker
//!   for 3 s, a hung one for `QGA_TIMEOUT` = 5 s (`guest/agent.rs`, `available`); the
//!   benchmark's agents run.
//! - **Where the guests are** decides whose workers serve the calls: the calls of a node's
//!   guests share that node's workers. A probe needs at least [`EXEC_CALLS`] calls (`exec`,
//!   then one `exec-status` that reports the end) or [`FILE_CALLS`] (`file-read`).
//!
//! The collector (`lab_grade::collect`) keeps at most `in_flight` probe runs going over the
//! class (labctl's `--probes-in-flight`, default 32); a run holds its place from its first
//! request to its result, so an exec run holds it for at least `run_time`. With `E` exec
//! runs of equal run time `R`, some place serves at least `ceil(E / in_flight)` of them
//! one after the other; file runs take no simulated time. Per node `n` with `c_n` agent
//! calls the workers need `ceil(c_n / 3) · hold`. Hence:
//!
//! ```text
//! bound = scale · max( ceil(E / in_flight) · R,          the places of the collector
//!                      max_n ceil(c_n / 3) · hold )       the workers of each node
//!       with c_n = 2 · E_n + F_n (E_n, F_n: exec and file runs of node n's guests)
//!
//! 50 students × (6 exec runs + 3 file runs), R = 2 s, hold = 0 s, scale 0.1:
//!   in_flight 32:  0.1 · ceil(300 / 32) · 2 s = 0.1 · 10 · 2 s = 2.0 s
//!   unlimited:     0.1 · 1 · 2 s              = 0.2 s (what the simulator itself allows)
//! ```
//!
//! `pve-sim` keeps these values `pub(crate)`, so they are restated here naming what they
//! mirror, like [`crate::bound`]; a change there must be repeated here.

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::bound::DAEMON_WORKERS;

/// `crates/pve-sim/src/guest/agent.rs` `available`: a running agent's handler does not
/// sleep, so an agent call holds its worker for no simulated time.
pub const HOLD_RUNNING_AGENT: f64 = 0.0;
/// Fewest agent calls of an exec probe: `POST agent/exec` and one `GET agent/exec-status`
/// that reports the end.
pub const EXEC_CALLS: u64 = 2;
/// Fewest agent calls of a file probe: one `GET agent/file-read`.
pub const FILE_CALLS: u64 = 1;

/// The inside probe runs of one node's guests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NodeLoad {
    /// Exec runs (after deduplication).
    pub exec_runs: u64,
    /// File runs.
    pub file_runs: u64,
}

impl NodeLoad {
    /// The fewest agent calls these runs need.
    pub fn min_calls(&self) -> u64 {
        EXEC_CALLS * self.exec_runs + FILE_CALLS * self.file_runs
    }
}

/// What a collection asks of the simulator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Load {
    /// Runs per node, by where the students' guests are.
    pub per_node: BTreeMap<String, NodeLoad>,
    /// Simulated seconds each exec takes (every command of the benchmark has the same).
    pub run_time_s: f64,
    /// Simulated seconds an agent call holds a pvedaemon worker.
    pub hold_s: f64,
    /// Probe runs the collector keeps going at once (`None`: unlimited).
    pub in_flight: Option<u64>,
    /// The simulator's time scale.
    pub scale: f64,
}

/// The bound of one collection and its parts, in seconds of real time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CollectBound {
    /// The lower bound: the larger of the two parts.
    pub bound_s: f64,
    /// Exec runs served one after the other by one place of the collector.
    pub waves: u64,
    /// `waves · run_time · scale`.
    pub places_s: f64,
    /// The busiest node's workers: `ceil(calls / 3) · hold · scale`.
    pub workers_s: f64,
    /// The fewest agent calls the runs need.
    pub min_calls: u64,
}

impl Load {
    /// Exec runs over every node.
    pub fn exec_runs(&self) -> u64 {
        self.per_node.values().map(|n| n.exec_runs).sum()
    }

    /// File runs over every node.
    pub fn file_runs(&self) -> u64 {
        self.per_node.values().map(|n| n.file_runs).sum()
    }

    /// The bound (see the module docs).
    pub fn bound(&self) -> CollectBound {
        let exec = self.exec_runs();
        let waves = match self.in_flight {
            _ if exec == 0 => 0,
            Some(c) => exec.div_ceil(c.max(1)),
            None => 1,
        };
        let places_s = self.scale * waves as f64 * self.run_time_s;
        let workers = DAEMON_WORKERS as u64;
        let workers_s = self
            .per_node
            .values()
            .map(|n| self.scale * n.min_calls().div_ceil(workers) as f64 * self.hold_s)
            .fold(0.0, f64::max);
        CollectBound {
            bound_s: places_s.max(workers_s),
            waves,
            places_s,
            workers_s,
            min_calls: self.per_node.values().map(NodeLoad::min_calls).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `crates/pve-sim/src/guest/agent.rs` `available`: `guest-ping` of a stopped agent
    /// times out after 3 s, holding the worker.
    const HOLD_STOPPED_AGENT: f64 = 3.0;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn load(per_node: &[(&str, u64, u64)], in_flight: Option<u64>, hold_s: f64) -> Load {
        Load {
            per_node: per_node
                .iter()
                .map(|&(n, e, f)| {
                    (
                        n.to_owned(),
                        NodeLoad {
                            exec_runs: e,
                            file_runs: f,
                        },
                    )
                })
                .collect(),
            run_time_s: 2.0,
            hold_s,
            in_flight,
            scale: 0.1,
        }
    }

    #[test]
    fn fifty_students_on_one_node_with_labctls_default() {
        // 50 × 6 exec runs and 50 × 3 file runs, all on pve1 (linked clones of 9000).
        let l = load(&[("pve1", 300, 150)], Some(32), HOLD_RUNNING_AGENT);
        let b = l.bound();
        assert_eq!(b.waves, 10, "{b:?}");
        assert!(close(b.bound_s, 2.0) && close(b.workers_s, 0.0), "{b:?}");
        assert_eq!(b.min_calls, 750);
        // Unlimited places: one wave, the run time itself.
        let free = load(&[("pve1", 300, 150)], None, HOLD_RUNNING_AGENT).bound();
        assert_eq!(free.waves, 1);
        assert!(close(free.bound_s, 0.2), "{free:?}");
    }

    #[test]
    fn waves_round_up_and_file_runs_cost_no_place() {
        let w = |e, c| load(&[("pve1", e, 99)], Some(c), 0.0).bound().waves;
        assert_eq!(w(32, 32), 1);
        assert_eq!(w(33, 32), 2);
        assert_eq!(w(1, 32), 1);
        assert_eq!(w(500, 1), 500);
        // In flight 0 is read as 1, never a division by zero.
        assert_eq!(w(5, 0), 5);
        let only_files = load(&[("pve1", 0, 150)], Some(32), 0.0).bound();
        assert_eq!(only_files.waves, 0);
        assert!(close(only_files.bound_s, 0.0));
    }

    #[test]
    fn workers_bind_when_calls_hold_them_and_spreading_helps() {
        // A stopped agent holds a worker 3 s per call: 30 exec runs on one node need at
        // least 60 calls, ceil(60 / 3) = 20 turns of 3 s, scaled 0.1 = 6 s.
        let one = load(&[("pve1", 30, 0)], Some(32), HOLD_STOPPED_AGENT).bound();
        assert!(
            close(one.workers_s, 6.0) && close(one.bound_s, 6.0),
            "{one:?}"
        );
        // The same runs on three nodes: 20 calls each, ceil(20 / 3) = 7 turns = 2.1 s.
        let three = load(
            &[("pve1", 10, 0), ("pve2", 10, 0), ("pve3", 10, 0)],
            Some(32),
            HOLD_STOPPED_AGENT,
        )
        .bound();
        assert!(close(three.workers_s, 2.1), "{three:?}");
        assert!(close(three.bound_s, 2.1), "{three:?}");
        assert_eq!(three.min_calls, one.min_calls);
    }

    #[test]
    fn calls_per_probe_kind() {
        let n = NodeLoad {
            exec_runs: 6,
            file_runs: 3,
        };
        assert_eq!(n.min_calls(), 15);
    }
}
