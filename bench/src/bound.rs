//! The simulator's physical lower bound for `lab up` / `lab down` of N linked clones of
//! template 9000, computed from `pve-sim`'s configured durations and limits.
//!
//! `pve-sim` keeps these values `pub(crate)`, so they are restated here, each naming the
//! constant it mirrors (the report asks for a public accessor in the simulator; until
//! then a change there must be repeated here).
//!
//! Every linked clone of 9000 lands on `pve1` (the template's node; linked clones cannot
//! leave local storage), so all clones share one `local-lvm` with [`STORAGE_SLOTS`] slots.
//! A clone task first waits [`CONFIG_DELAY`] for its config, then holds a slot for
//! [`LINKED_CLONE`]; config phases overlap, disk phases run at most three at a time. The
//! last student therefore finishes its clone no earlier than
//! `CONFIG_DELAY + ceil(N / STORAGE_SLOTS) · LINKED_CLONE`, and then needs its start task,
//! the agent's boot and the DHCP lease:
//!
//! ```text
//! up_bound(N)   = scale · (CONFIG_DELAY + ceil(N/3)·LINKED_CLONE + START + AGENT_BOOT + DHCP)
//!               = scale · (1 + ceil(N/3)·2 + 2 + 20 + 3) s
//! issue9(N)     = scale · (ceil(N/3)·2 + 2 + 20 + 3) s      (issue 9's formula, no config delay)
//! down_bound(N) = scale · (STOP + DESTROY) s                (every guest at once; nothing
//!                                                          in the simulator serialises them)
//! ```
//!
//! For N = 50 at scale 0.1 that is 6.0 s (issue 9: 5.9 s).
//!
//! With a copy of the template on each of K nodes (issue 21, [`Bound::placed`]) the
//! students spread over K storages: `ceil(N / (3·K))` waves, so for N = 50 on 3 nodes
//! `(1 + ceil(50/9)·2 + 2 + 20 + 3) · scale` = 3.8 s at scale 0.1.

use serde::Serialize;

/// `crates/pve-sim/src/clone.rs` `CONFIG_DELAY`: seconds from a QEMU clone's UPID until its
/// config exists (the disk phase starts after it).
pub const CONFIG_DELAY: f64 = 1.0;
/// `crates/pve-sim/src/clone.rs` `LINKED`: a linked clone's disk phase, holding a slot (s).
pub const LINKED_CLONE: f64 = 2.0;
/// `crates/pve-sim/src/clone.rs` `STORAGE_SLOTS`: clones one node's `local-lvm` admits at once.
pub const STORAGE_SLOTS: u32 = 3;
/// `crates/pve-sim/src/lifecycle.rs` `durations::START`: a start task (s).
pub const START: f64 = 2.0;
/// `crates/pve-sim/src/lifecycle.rs` `durations::AGENT_BOOT`: from running to agent up (s).
pub const AGENT_BOOT: f64 = 20.0;
/// `crates/pve-sim/src/lifecycle.rs` `durations::DHCP`: from agent up to the IPv4 lease (s).
pub const DHCP: f64 = 3.0;
/// `crates/pve-sim/src/lifecycle.rs` `durations::STOP`: a stop task (s).
pub const STOP: f64 = 1.0;
/// `crates/pve-sim/src/lifecycle.rs` `durations::DESTROY`: a destroy task (s).
pub const DESTROY: f64 = 1.0;
/// `crates/pve-sim/src/sdn/api.rs` `RELOAD`: the `reloadnetworkall` task of an SDN apply (s).
pub const SDN_APPLY: f64 = 2.0;
/// `crates/pve-sim/src/state.rs` `DAEMON_WORKERS`: pvedaemon workers per node.
pub const DAEMON_WORKERS: u32 = 3;

/// The bounds of one lab size at one time scale, in seconds of real time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bound {
    /// Lower bound of `lab up` (with the clone's config delay).
    pub up_s: f64,
    /// Issue 9's formula for `lab up` (without the config delay), for comparison.
    pub issue9_up_s: f64,
    /// Lower bound of `lab down`.
    pub down_s: f64,
}

impl Bound {
    /// The bounds for `n` students at time scale `scale`, every clone on one node.
    #[cfg(test)]
    pub fn of(n: u32, scale: f64) -> Bound {
        Bound::placed(n, 1, scale)
    }

    /// The bounds for `n` students spread over `nodes` nodes that each hold a copy of the
    /// template on their own `local-lvm` (issue 21): the clone waves run on every node's
    /// storage at once, `ceil(n / (3 · nodes))` of them.
    pub fn placed(n: u32, nodes: u32, scale: f64) -> Bound {
        let waves = f64::from(n.div_ceil(STORAGE_SLOTS * nodes.max(1)));
        let tail = START + AGENT_BOOT + DHCP;
        Bound {
            up_s: scale * (CONFIG_DELAY + waves * LINKED_CLONE + tail),
            issue9_up_s: scale * (waves * LINKED_CLONE + tail),
            down_s: scale * (STOP + DESTROY),
        }
    }
}

impl Bound {
    /// The bounds for a topology lab of `guests` machines on one node (issue 20): `up`
    /// as for that many linked clones (the networks' one SDN apply runs while the first
    /// clone waves do and is shorter than them), `down` adds the apply that removes the
    /// networks after the guests are gone.
    pub fn topology(guests: u32, scale: f64) -> Bound {
        let b = Bound::placed(guests, 1, scale);
        Bound {
            down_s: b.down_s + scale * SDN_APPLY,
            ..b
        }
    }
}

/// `measured / bound`, or `None` when the bound is zero (nothing to compare with).
pub fn ratio(measured_s: f64, bound_s: f64) -> Option<f64> {
    (bound_s > 0.0).then(|| measured_s / bound_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn fifty_students_match_issue_nine() {
        // Issue 9: ceil(50/3)·2 + 2 + 20 + 3 = 59 s; the simulator adds its 1 s config delay.
        let b = Bound::of(50, 1.0);
        assert!(close(b.issue9_up_s, 59.0), "{b:?}");
        assert!(close(b.up_s, 60.0), "{b:?}");
        let scaled = Bound::of(50, 0.1);
        assert!(
            close(scaled.up_s, 6.0) && close(scaled.down_s, 0.2),
            "{scaled:?}"
        );
    }

    #[test]
    fn waves_round_up_per_three_slots() {
        assert!(close(Bound::of(1, 1.0).up_s, 1.0 + 2.0 + 25.0));
        assert!(close(Bound::of(3, 1.0).up_s, 1.0 + 2.0 + 25.0));
        assert!(close(Bound::of(4, 1.0).up_s, 1.0 + 4.0 + 25.0));
        assert!(close(Bound::of(500, 1.0).up_s, 1.0 + 167.0 * 2.0 + 25.0));
    }

    #[test]
    fn three_replicas_make_the_clone_waves_three_times_fewer() {
        // Issue 21: (1 + ceil(50/9)·2 + 2 + 20 + 3) × scale = 38 s at scale 1.
        let b = Bound::placed(50, 3, 1.0);
        assert!(close(b.up_s, 1.0 + 6.0 * 2.0 + 25.0), "{b:?}");
        assert_eq!(Bound::placed(50, 1, 1.0), Bound::of(50, 1.0));
    }

    #[test]
    fn a_topology_of_thirty_guests_is_ten_waves_and_its_down_one_apply_more() {
        let b = Bound::topology(30, 1.0);
        assert!(close(b.up_s, 1.0 + 10.0 * 2.0 + 25.0), "{b:?}");
        assert!(close(b.down_s, 1.0 + 1.0 + 2.0), "{b:?}");
    }

    #[test]
    fn ratio_needs_a_bound() {
        assert_eq!(ratio(12.0, 6.0), Some(2.0));
        assert_eq!(ratio(1.0, 0.0), None);
    }
}
