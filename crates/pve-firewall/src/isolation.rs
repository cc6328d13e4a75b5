//! Reversible, verified student isolation (reference Part B.10).
//!
//! # What `isolate` builds
//! Per lab `<lab>` (datacenter level, names lower-case, group ≤ 18 characters):
//!
//! ```text
//! [IPSET iso-<lab>-allowed]        # the allowed addresses (teacher)      comment labctl:<lab>
//! [IPSET iso-<lab>-dns]            # only with IsolationOptions::dns       comment labctl:<lab>
//! [IPSET iso-<lab>-students]       # only when the teacher's firewall is on
//! [group iso-<lab>]                # comment: labctl:<lab> cluster-enable=<prior>
//! IN  ACCEPT -source +iso-<lab>-allowed
//! OUT ACCEPT -dest +iso-<lab>-allowed
//! OUT DNS(ACCEPT) -dest +iso-<lab>-dns   # optional
//! IN  DROP
//! OUT DROP
//! ```
//!
//! Per student: a `GROUP iso-<lab>` rule at position 0 whose comment is the marker
//! `labctl:<lab>` followed by the **prior values** of everything labctl changes on that guest
//! (`enable=- dhcp=0 net0=-`, `-` = not set), firewall options `enable=1` (and `dhcp=1`), and
//! `firewall=1` on every NIC (the full `netX` string is re-sent with its MAC).
//!
//! # Where prior values live, and why there
//! In the marker rule's comment, inside the guest's own `<vmid>.fw`. That file is what
//! `unisolate` has to edit anyway, survives the process (a fresh `labctl` reads it back), is
//! copied with the guest on clone and deleted with it on destroy, and it is written **before**
//! anything else on the guest changes: the marker is created first, then options, then NICs,
//! so a crash at any point leaves a marker that knows the original values. A re-run never
//! overwrites a recorded value; it only adds values for keys it is about to change for the
//! first time. `unisolate` restores NICs and options first and removes the marker last, so a
//! crash there too leaves the record in place. The datacenter's prior `enable` is recorded the
//! same way in the lab group's comment, which is created before the cluster firewall is
//! switched on and removed only after it was restored. The guest `description` was rejected:
//! it is user-visible free text others edit, and its digest is the whole VM config.
//!
//! # Safety rules
//! - The datacenter firewall is switched on only if it is off, with PVE's anti-lockout step
//!   (`enable=2`, read back through the API, then `enable=1`); its `policy_in` is never set.
//!   Management networks given by the caller are added to the `management` IP set first.
//! - Sets are created before rules reference them and deleted after (Part B.11 item 4).
//! - Rules are sent with `enable=1` explicitly; names are lower-case.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use futures::stream::{self, StreamExt};
use pve_vm::{Backoff, ConfigUpdate, Guest, VmApi, VmId};

use crate::api::{Firewall, IpSetEntry, Options, OptionsUpdate};
use crate::error::{Error, Result};
use crate::rule::{Rule, RuleEntry};
use crate::scope::Scope;
use crate::spec::{AddrSpec, Cidr, GroupName, IpSetName};

/// How many times an edit guarded by a digest is retried after a concurrent change.
const DIGEST_ATTEMPTS: u32 = 4;
/// Largest number of students one call handles (a typo in a range should not touch a
/// whole cluster).
pub const MAX_STUDENTS: usize = 1000;
/// The cluster IP set PVE uses for host access (Part B.5).
pub const MANAGEMENT_SET: &str = "management";

pub use lab_types::LabName;

/// The names of the firewall objects a lab owns, derived from its [`LabName`] (which
/// guarantees they fit PVE's limits). Import this trait to call them on a `LabName`.
///
/// ```
/// use pve_firewall::isolation::{FenceNames, LabName};
/// let lab = LabName::new("exam1").unwrap();
/// assert_eq!(lab.group().as_str(), "iso-exam1");
/// assert_eq!(lab.allowed_set().as_str(), "iso-exam1-allowed");
/// assert_eq!(lab.fence_marker(), "labctl:exam1");
/// ```
pub trait FenceNames {
    /// The marker that tags every firewall object of this lab: `labctl:<lab>`.
    fn fence_marker(&self) -> String;
    /// The security group `iso-<lab>`.
    fn group(&self) -> GroupName;
    /// The IP set of allowed addresses `iso-<lab>-allowed`.
    fn allowed_set(&self) -> IpSetName;
    /// The IP set of DNS servers `iso-<lab>-dns`.
    fn dns_set(&self) -> IpSetName;
    /// The IP set of student addresses `iso-<lab>-students` (used by the teacher's rule).
    fn students_set(&self) -> IpSetName;
}

impl FenceNames for LabName {
    fn fence_marker(&self) -> String {
        format!("labctl:{}", self.as_str())
    }

    fn group(&self) -> GroupName {
        GroupName::new(&format!("iso-{}", self.as_str()))
            .expect("a lab name of <= 14 valid characters gives a valid group name")
    }

    fn allowed_set(&self) -> IpSetName {
        lab_set(self, "allowed")
    }

    fn dns_set(&self) -> IpSetName {
        lab_set(self, "dns")
    }

    fn students_set(&self) -> IpSetName {
        lab_set(self, "students")
    }
}

fn lab_set(lab: &LabName, suffix: &str) -> IpSetName {
    IpSetName::new(&format!("iso-{}-{suffix}", lab.as_str()))
        .expect("a lab name of <= 14 valid characters gives a valid set name")
}

/// Whether a comment carries a lab's marker as a word.
trait Owns {
    fn owns(&self, comment: Option<&str>) -> bool;
}

impl Owns for LabName {
    fn owns(&self, comment: Option<&str>) -> bool {
        let marker = self.fence_marker();
        comment.is_some_and(|c| c.split_whitespace().any(|w| w == marker))
    }
}

/// The student guests: an inclusive id range or an explicit list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Students {
    /// `first..=last`.
    Range {
        /// First id.
        first: VmId,
        /// Last id (inclusive).
        last: VmId,
    },
    /// These ids.
    List(Vec<VmId>),
}

impl Students {
    /// The ids, sorted and de-duplicated; at most [`MAX_STUDENTS`].
    pub fn ids(&self) -> Result<Vec<VmId>> {
        let ids: BTreeSet<VmId> = match self {
            Students::Range { first, last } => {
                if first > last {
                    return Err(Error::invalid(
                        "students",
                        format!("{first}-{last}"),
                        "the range goes backwards",
                    ));
                }
                let n = (last.get() - first.get()) as usize + 1;
                if n > MAX_STUDENTS {
                    return Err(Error::invalid(
                        "students",
                        format!("{first}-{last}"),
                        format!("{n} guests; at most {MAX_STUDENTS} per call"),
                    ));
                }
                (first.get()..=last.get())
                    .map(VmId::new)
                    .collect::<std::result::Result<_, _>>()?
            }
            Students::List(list) => list.iter().copied().collect(),
        };
        if ids.is_empty() {
            return Err(Error::invalid("students", "", "no student guests given"));
        }
        if ids.len() > MAX_STUDENTS {
            return Err(Error::invalid(
                "students",
                format!("{} ids", ids.len()),
                format!("at most {MAX_STUDENTS} per call"),
            ));
        }
        Ok(ids.into_iter().collect())
    }
}

/// Settings of [`Isolation::isolate`] / [`Isolation::unisolate`] / [`Isolation::verify`].
#[derive(Debug, Clone)]
pub struct IsolationOptions {
    /// Names everything the lab creates and marks it (`labctl:<lab>`).
    pub lab: LabName,
    /// DNS servers students may query (`OUT DNS(ACCEPT) -dest +iso-<lab>-dns`); empty = no rule.
    pub dns: Vec<Cidr>,
    /// Set the guest option `dhcp=1` so DHCP keeps working (Part B.5). Default `true`.
    pub dhcp: bool,
    /// Networks added to the datacenter `management` IP set before anything else, so admins
    /// and SPICE clients outside the cluster network keep host access (Part B.11 item 1).
    pub management: Vec<Cidr>,
    /// The teacher's guest. If its own firewall filters inbound traffic, it gets
    /// `IN ACCEPT -source +iso-<lab>-students` at position 0 (needs `student_addresses`).
    pub teacher: Option<VmId>,
    /// The students' addresses or network, content of `iso-<lab>-students`.
    pub student_addresses: Vec<Cidr>,
    /// Switch the datacenter firewall on if it is off (without it nothing filters).
    /// Default `true`; with `false` an off datacenter firewall is reported, not changed.
    pub enable_cluster: bool,
    /// Guests processed at the same time. Default 4.
    pub concurrency: usize,
    /// Bridges that are a student's own segment (a lab's vnet, no other student on it):
    /// NICs there are not fenced, their firewall flag is left as it is. `None`: every NIC
    /// is fenced.
    pub inner_bridge: Option<fn(&LabName, &str) -> bool>,
}

impl IsolationOptions {
    /// Whether `nic` is on one of the lab's inner bridges ([`IsolationOptions::inner_bridge`]).
    fn is_inner(&self, nic: &pve_vm::NetDevice) -> bool {
        match (self.inner_bridge, nic.bridge()) {
            (Some(inner), Some(bridge)) => inner(&self.lab, bridge),
            _ => false,
        }
    }
}

impl IsolationOptions {
    /// Defaults for `lab`: DHCP kept, datacenter firewall switched on if needed, no DNS,
    /// no management networks, no teacher guest.
    pub fn new(lab: LabName) -> Self {
        Self {
            lab,
            dns: Vec::new(),
            dhcp: true,
            management: Vec::new(),
            teacher: None,
            student_addresses: Vec::new(),
            enable_cluster: true,
            concurrency: 4,
            inner_bridge: None,
        }
    }
}

/// One change made (or, in [`Report::notes`], observed) by isolate/unisolate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// The datacenter `enable` option went from `from` to `to` (`None` = unset).
    ClusterFirewall {
        /// Before.
        from: Option<String>,
        /// After.
        to: Option<String>,
    },
    /// An IP set was created.
    IpSetCreated(String),
    /// An IP set was deleted.
    IpSetDeleted(String),
    /// An entry was added to a set.
    IpSetEntryAdded {
        /// The set.
        set: String,
        /// The entry.
        cidr: String,
    },
    /// An entry was removed from a set.
    IpSetEntryRemoved {
        /// The set.
        set: String,
        /// The entry.
        cidr: String,
    },
    /// An entry's comment changed (ownership of shared management entries).
    IpSetEntryComment {
        /// The set.
        set: String,
        /// The entry.
        cidr: String,
        /// The new comment.
        comment: String,
    },
    /// A security group was created.
    GroupCreated(String),
    /// A security group's comment (the datacenter record) changed.
    GroupComment {
        /// The group.
        group: String,
        /// The new comment.
        comment: String,
    },
    /// A security group was deleted.
    GroupDeleted(String),
    /// A rule was created at position 0 of `scope`.
    RuleCreated {
        /// Where.
        scope: String,
        /// The rule in `.fw` syntax.
        rule: String,
    },
    /// A rule was replaced.
    RuleUpdated {
        /// Where.
        scope: String,
        /// Position.
        pos: u32,
        /// The new rule in `.fw` syntax.
        rule: String,
    },
    /// A rule was moved.
    RuleMoved {
        /// Where.
        scope: String,
        /// Old position.
        from: u32,
        /// New position.
        to: u32,
    },
    /// A rule was deleted.
    RuleDeleted {
        /// Where.
        scope: String,
        /// Its position before deletion.
        pos: u32,
        /// The rule in `.fw` syntax.
        rule: String,
    },
    /// A guest firewall option changed.
    GuestOption {
        /// The guest.
        vmid: VmId,
        /// The option.
        key: String,
        /// Before (`None` = unset).
        from: Option<String>,
        /// After (`None` = unset).
        to: Option<String>,
    },
    /// A NIC's `firewall` flag changed (the full `netX` string was re-sent).
    NicFirewall {
        /// The guest.
        vmid: VmId,
        /// `X` of `netX`.
        nic: u32,
        /// Before (`None` = not in the string).
        from: Option<String>,
        /// After.
        to: Option<String>,
    },
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("unset")
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::ClusterFirewall { from, to } => write!(
                f,
                "datacenter firewall enable: {} -> {}",
                opt(from),
                opt(to)
            ),
            Change::IpSetCreated(s) => write!(f, "created IP set {s}"),
            Change::IpSetDeleted(s) => write!(f, "deleted IP set {s}"),
            Change::IpSetEntryAdded { set, cidr } => write!(f, "added {cidr} to IP set {set}"),
            Change::IpSetEntryRemoved { set, cidr } => {
                write!(f, "removed {cidr} from IP set {set}")
            }
            Change::IpSetEntryComment { set, cidr, comment } => {
                write!(f, "IP set {set} entry {cidr}: comment {comment:?}")
            }
            Change::GroupCreated(g) => write!(f, "created security group {g}"),
            Change::GroupComment { group, comment } => {
                write!(f, "security group {group}: comment {comment:?}")
            }
            Change::GroupDeleted(g) => write!(f, "deleted security group {g}"),
            Change::RuleCreated { scope, rule } => {
                write!(f, "{scope}: added rule {rule} at position 0")
            }
            Change::RuleUpdated { scope, pos, rule } => {
                write!(f, "{scope}: rule {pos} is now {rule}")
            }
            Change::RuleMoved { scope, from, to } => {
                write!(f, "{scope}: moved rule {from} to {to}")
            }
            Change::RuleDeleted { scope, pos, rule } => {
                write!(f, "{scope}: deleted rule {pos} ({rule})")
            }
            Change::GuestOption {
                vmid,
                key,
                from,
                to,
            } => {
                write!(
                    f,
                    "guest {vmid}: firewall option {key}: {} -> {}",
                    opt(from),
                    opt(to)
                )
            }
            Change::NicFirewall {
                vmid,
                nic,
                from,
                to,
            } => {
                write!(
                    f,
                    "guest {vmid}: net{nic} firewall: {} -> {}",
                    opt(from),
                    opt(to)
                )
            }
        }
    }
}

/// What an isolate/unisolate run changed, in order, and what it noticed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// The lab.
    pub lab: String,
    /// Every change, datacenter first, then guests in id order.
    pub changes: Vec<Change>,
    /// Observations that changed nothing but matter (e.g. host input policy, a guest
    /// without NICs, a teacher whose firewall is off).
    pub notes: Vec<String>,
}

impl Report {
    /// `true` when nothing was changed.
    pub fn is_unchanged(&self) -> bool {
        self.changes.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            writeln!(f, "lab {}: nothing to change", self.lab)?;
        } else {
            writeln!(f, "lab {}: {} change(s)", self.lab, self.changes.len())?;
        }
        for c in &self.changes {
            writeln!(f, "  {c}")?;
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        Ok(())
    }
}

/// Prior values recorded in a guest's marker rule comment: key → value (`None` = unset).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Record {
    values: BTreeMap<String, Option<String>>,
}

impl Record {
    fn parse(lab: &LabName, comment: &str, object: &str) -> Result<Self> {
        let mut words = comment.split_whitespace();
        let bad = |why: String| Error::Inconsistent {
            object: object.to_owned(),
            message: format!(
                "marker comment {comment:?}: {why}; remove the rule by hand if it is not labctl's"
            ),
        };
        if words.next() != Some(lab.fence_marker().as_str()) {
            return Err(bad(format!("does not start with {}", lab.fence_marker())));
        }
        let mut values = BTreeMap::new();
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| bad(format!("'{w}' is not key=value")))?;
            let valid = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            };
            if !valid(k) || !valid(v) {
                return Err(bad(format!("'{w}' is not key=value")));
            }
            values.insert(k.to_owned(), (v != "-").then(|| v.to_owned()));
        }
        Ok(Self { values })
    }

    fn comment(&self, lab: &LabName) -> String {
        let mut s = lab.fence_marker();
        for (k, v) in &self.values {
            s.push(' ');
            s.push_str(k);
            s.push('=');
            s.push_str(v.as_deref().unwrap_or("-"));
        }
        s
    }

    /// Records `key`'s prior value unless one is recorded already. Returns `true` if added.
    fn note(&mut self, key: &str, prior: Option<String>) -> bool {
        if self.values.contains_key(key) {
            return false;
        }
        self.values.insert(key.to_owned(), prior);
        true
    }

    fn get(&self, key: &str) -> Option<&Option<String>> {
        self.values.get(key)
    }
}

/// Per-guest result of [`Isolation::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestCheck {
    /// The guest.
    pub vmid: VmId,
    /// Guest firewall option `enable` is on.
    pub firewall_enabled: bool,
    /// Each NIC and whether it has `firewall=1` (or is on an exempt bridge,
    /// [`Isolation::holds_except`]).
    pub nics: Vec<(u32, bool)>,
    /// The lab's group rule is the first rule, enabled and without errors.
    pub group_rule_first: bool,
    /// Why the guest is not isolated (empty when it is).
    pub problems: Vec<String>,
}

impl GuestCheck {
    /// All three switches and the rule are in place.
    pub fn is_isolated(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Result of [`Isolation::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The lab.
    pub lab: String,
    /// Datacenter `enable` is on.
    pub cluster_enabled: bool,
    /// Datacenter-level problems (group, sets, switch).
    pub cluster_problems: Vec<String>,
    /// One entry per student.
    pub guests: Vec<GuestCheck>,
}

impl Verification {
    /// Everything is in place: the fence is in force.
    pub fn is_isolated(&self) -> bool {
        self.cluster_problems.is_empty() && self.guests.iter().all(GuestCheck::is_isolated)
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.is_isolated() {
            "isolated"
        } else {
            "NOT isolated"
        };
        writeln!(f, "lab {}: {state}", self.lab)?;
        for p in &self.cluster_problems {
            writeln!(f, "  datacenter: {p}")?;
        }
        for g in &self.guests {
            if g.problems.is_empty() {
                writeln!(f, "  guest {}: ok", g.vmid)?;
            }
            for p in &g.problems {
                writeln!(f, "  guest {}: {p}", g.vmid)?;
            }
        }
        Ok(())
    }
}

/// The one digest-safe update of shared firewall objects (datacenter options, the group
/// list whose comments carry the labs' records, the `management` IP set, a teacher's
/// rules): the block reads the object, decides, and writes **with the digest it read**; if
/// someone changed the object in between (digest mismatch) the block runs again — a fresh
/// read, the change re-applied to what is there now — up to [`DIGEST_ATTEMPTS`] times.
/// One block edits one object once, so a digest is never reused after a write of our own.
/// A macro rather than a closure so the block can push to the caller's `changes`.
macro_rules! retry_digest {
    ($body:block) => {{
        let mut attempt = 1u32;
        loop {
            let r: Result<_> = async $body.await;
            match r {
                Err(e) if e.is_digest_mismatch() && attempt < DIGEST_ATTEMPTS => {
                    tracing::debug!(attempt, "firewall changed concurrently; re-reading");
                    attempt += 1;
                }
                other => break other,
            }
        }
    }};
}

/// Runs a step again after a transient failure, a lock timeout or a concurrent change,
/// with jittered backoff within the isolation's [`Isolation::retry`] budget. Every step
/// starts by reading what it changes, so a write whose answer was lost is seen (and not
/// sent again) on the next attempt; steps keep what earlier attempts changed.
macro_rules! retry_step {
    ($iso:expr, $what:expr, $body:block) => {{
        let started = tokio::time::Instant::now();
        let mut retry = 0u32;
        loop {
            let r: Result<_> = async $body.await;
            match r {
                Err(e) if e.is_worth_repeating() => {
                    retry += 1;
                    match $iso.retry.next_delay(retry, started.elapsed()) {
                        Some(delay) => {
                            tracing::debug!(step = %$what, retry, ?delay, error = %e, "firewall step failed; repeating it");
                            tokio::time::sleep(delay).await;
                        }
                        None => break Err(e),
                    }
                }
                other => break other,
            }
        }
    }};
}

/// What [`Isolation::enable_cluster`] found or did.
enum Switch {
    /// Switched on by this call; the host input policy.
    On(String),
    /// On already (or switched on by someone else).
    WasOn,
    /// Off, and left off (`enable_cluster` is false).
    Off,
}

fn nic_key(i: u32) -> String {
    format!("net{i}")
}

fn cluster_record_key() -> &'static str {
    "cluster-enable"
}

/// The isolation engine over one client: firewall primitives plus guest lookup/config from
/// `pve-vm`.
///
/// ```no_run
/// use pve_firewall::isolation::{Isolation, IsolationOptions, LabName, Students};
/// use pve_vm::VmId;
/// # async fn demo(client: pve_auth::PveClient) -> Result<(), Box<dyn std::error::Error>> {
/// let iso = Isolation::new(client);
/// let students = Students::Range { first: VmId::new(201)?, last: VmId::new(210)? };
/// let allowed = ["10.10.0.10".parse()?];
/// let options = IsolationOptions::new(LabName::new("exam1")?);
/// println!("{}", iso.isolate(&students, &allowed, &options).await?);
/// assert!(iso.verify(&students, &allowed, &options).await?.is_isolated());
/// println!("{}", iso.unisolate(&students, &options).await?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Isolation {
    fw: Firewall,
    vms: VmApi,
    retry: Backoff,
}

/// Collects changes of one step.
type Changes = Vec<Change>;

/// What one guest step changed and noticed.
#[derive(Debug, Default)]
struct Outcome {
    changes: Changes,
    notes: Vec<String>,
}

impl Outcome {
    /// Notes once, however often a repeated step notices the same.
    fn note(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }
}

/// Retries of one step by default: 8, the first after a quarter of `timing`'s lock-retry
/// pause (0.5 s by default), doubling up to half its longest pause (7.5 s), none starting
/// after a fifth of its budget (60 s). Derived from the [`VmApi`]'s timing so that a
/// simulator's time scale, set once on `Timing`, applies here too.
fn default_retry(timing: &pve_vm::Timing) -> Backoff {
    let l = timing.lock_retry;
    Backoff {
        initial: l.initial / 4,
        max: l.max / 2,
        budget: l.budget / 5,
        max_retries: 8,
    }
}

impl Isolation {
    /// Over `client`.
    pub fn new(client: pve_auth::PveClient) -> Self {
        Self::with_vm_api(VmApi::new(client))
    }

    /// With an existing [`VmApi`] (shares its guest placement cache and its timing).
    pub fn with_vm_api(vms: VmApi) -> Self {
        Self {
            fw: Firewall::new(vms.client().clone()),
            retry: default_retry(vms.timing()),
            vms,
        }
    }

    /// How each step of `isolate`, `unisolate`, `prepare`, `lift_lab`, `verify` and the
    /// per-guest calls is repeated after a transient failure ([`Error::is_transient`]), a
    /// lock timeout or a concurrent change: the pause before retry *n* is
    /// `initial · 2^(n-1)` capped at `max`, with jitter, at most `max_retries` retries,
    /// none starting after `budget`. Only steps that re-read what they change are repeated,
    /// so a write whose answer was lost is never sent twice. The default: 8 retries from
    /// 0.5 s up to 7.5 s, within 60 s per step (scaled with the [`VmApi`]'s timing).
    /// `Backoff { max_retries: 0, .. }` turns retrying off.
    #[must_use]
    pub fn retry(mut self, retry: Backoff) -> Self {
        self.retry = retry;
        self
    }

    /// The retry settings in use (see [`Isolation::retry`]).
    pub fn retry_policy(&self) -> &Backoff {
        &self.retry
    }

    /// The firewall primitives.
    pub fn firewall(&self) -> &Firewall {
        &self.fw
    }

    fn check_inputs(allowed: &[Cidr], options: &IsolationOptions) -> Result<()> {
        if allowed.is_empty() {
            return Err(Error::invalid(
                "allowed",
                "",
                "give at least one address or network the students may reach (the teacher)",
            ));
        }
        for c in allowed
            .iter()
            .chain(&options.dns)
            .chain(&options.management)
            .chain(&options.student_addresses)
        {
            if c.prefix() == 0 {
                return Err(Error::invalid(
                    "cidr",
                    c.to_string(),
                    "a /0 network is not allowed in an IP set",
                ));
            }
        }
        if options.concurrency == 0 {
            return Err(Error::invalid("concurrency", "0", "at least 1"));
        }
        Ok(())
    }

    /// Fences `students` off so they reach only `allowed` (and each other not at all).
    ///
    /// Idempotent: a second run reports no changes. If some guests fail, the others are
    /// still processed, the datacenter firewall is not switched on, and
    /// [`Error::Incomplete`] carries the report; running it again completes the job.
    pub async fn isolate(
        &self,
        students: &Students,
        allowed: &[Cidr],
        options: &IsolationOptions,
    ) -> Result<Report> {
        Self::check_inputs(allowed, options)?;
        let ids = students.ids()?;
        if options.teacher.is_some_and(|t| ids.contains(&t)) {
            return Err(Error::invalid(
                "teacher",
                options.teacher.map(|t| t.to_string()).unwrap_or_default(),
                "the teacher cannot be one of the students",
            ));
        }
        let lab = &options.lab;
        let mut report = Report {
            lab: lab.to_string(),
            ..Report::default()
        };
        let cluster = self.lab_wide(allowed, options, &mut report).await?;
        // 5. The students.
        let group = lab.group();
        let results: Vec<(VmId, Outcome, Result<()>)> = stream::iter(ids.iter().copied())
            .map(|vmid| {
                let group = group.clone();
                async move {
                    let mut out = Outcome::default();
                    let r = retry_step!(self, format!("isolate guest {vmid}"), {
                        self.isolate_guest(vmid, &group, options, &mut out).await
                    });
                    (vmid, out, r)
                }
            })
            .buffer_unordered(options.concurrency)
            .collect()
            .await;
        let failures = merge(&mut report, results);
        if !failures.is_empty() {
            return Err(Error::Incomplete {
                operation: "isolate",
                lab: lab.to_string(),
                report: Box::new(report),
                failures,
            });
        }
        // 6. The datacenter switch, last, once every student is fenced.
        self.enable_cluster(&cluster, options, &mut report).await?;
        Ok(report)
    }

    /// Lifts the fence of `options.lab` from `students` and restores every recorded prior
    /// value; removes the lab's group and sets, its management entries, the teacher's rule,
    /// and switches the datacenter firewall back off if this lab switched it on (unless
    /// other labs are still isolated, then the duty is handed over to them). A lab that is
    /// not isolated is a no-op.
    pub async fn unisolate(
        &self,
        students: &Students,
        options: &IsolationOptions,
    ) -> Result<Report> {
        let ids = students.ids()?;
        let lab = &options.lab;
        let mut report = Report {
            lab: lab.to_string(),
            ..Report::default()
        };
        let results: Vec<(VmId, Outcome, Result<()>)> = stream::iter(ids.iter().copied())
            .map(|vmid| async move {
                let mut out = Outcome::default();
                let r = retry_step!(self, format!("unisolate guest {vmid}"), {
                    self.unisolate_guest(vmid, lab, &mut out).await
                });
                (vmid, out, r)
            })
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;
        let failures = merge(&mut report, results);
        if !failures.is_empty() {
            // The group stays while any guest still references it.
            return Err(Error::Incomplete {
                operation: "unisolate",
                lab: lab.to_string(),
                report: Box::new(report),
                failures,
            });
        }
        self.lift(options, &mut report).await?;
        Ok(report)
    }

    /// Reads everything back and reports, per student, whether the three switches and the
    /// group rule are in place, and the datacenter-level state (switch, group rules, sets).
    pub async fn verify(
        &self,
        students: &Students,
        allowed: &[Cidr],
        options: &IsolationOptions,
    ) -> Result<Verification> {
        Self::check_inputs(allowed, options)?;
        let ids = students.ids()?;
        let lab = &options.lab;
        let cluster = retry_step!(self, "read datacenter options", {
            self.fw.options(&Scope::Cluster).await
        })?;
        let mut cluster_problems = Vec::new();
        if !cluster.enabled() {
            cluster_problems
                .push("datacenter firewall is disabled (enable=0): nothing is filtered".to_owned());
        }
        let group = lab.group();
        let groups = retry_step!(self, "read security groups", { self.fw.groups().await })?;
        if !groups.iter().any(|g| g.group == group.as_str()) {
            cluster_problems.push(format!("security group {group} does not exist"));
        } else {
            let scope = Scope::Group(group.clone());
            let rules = retry_step!(self, "read group rules", { self.fw.rules(&scope).await })?;
            let want = self.group_rules(options);
            let same =
                rules.len() == want.len() && want.iter().zip(&rules).all(|(w, r)| w.matches(r));
            if !same {
                let have: Vec<String> = rules.iter().map(describe).collect();
                let want: Vec<String> = want.iter().map(ToString::to_string).collect();
                cluster_problems.push(format!(
                    "group {group} rules are [{}], expected [{}]",
                    have.join("; "),
                    want.join("; ")
                ));
            }
            for r in rules.iter().filter(|r| !r.errors.is_empty()) {
                cluster_problems.push(format!(
                    "group {group} rule {} is skipped by PVE: {}",
                    r.pos,
                    r.error_text()
                ));
            }
        }
        let set = lab.allowed_set();
        let entries = retry_step!(self, "read IP set", {
            self.fw.ipset_entries(&Scope::Cluster, &set).await
        });
        match entries {
            Ok(entries) => {
                let have: BTreeSet<String> = entries.iter().map(entry_key).collect();
                let want: BTreeSet<String> = allowed.iter().map(ToString::to_string).collect();
                if have != want {
                    cluster_problems.push(format!(
                        "IP set {set} holds {{{}}}, expected {{{}}}",
                        have.into_iter().collect::<Vec<_>>().join(", "),
                        want.into_iter().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            Err(e) if e.is_not_found() => {
                cluster_problems.push(format!("IP set {set} does not exist"))
            }
            Err(e) => return Err(e),
        }
        let results: Vec<Result<GuestCheck>> = stream::iter(ids.iter().copied())
            .map(|vmid| {
                let group = group.clone();
                async move {
                    retry_step!(self, format!("verify guest {vmid}"), {
                        self.verify_guest(vmid, &group, lab, &|_: &str| false).await
                    })
                }
            })
            .buffered(options.concurrency)
            .collect()
            .await;
        let guests = results.into_iter().collect::<Result<Vec<_>>>()?;
        Ok(Verification {
            lab: lab.to_string(),
            cluster_enabled: cluster.enabled(),
            cluster_problems,
            guests,
        })
    }

    /// The group body in evaluation order.
    fn group_rules(&self, options: &IsolationOptions) -> Vec<Rule> {
        let lab = &options.lab;
        let marker = lab.fence_marker();
        let allowed = AddrSpec::ipset(&lab.allowed_set());
        let mut rules = vec![
            Rule::accept_in().source(allowed.clone()).comment(&marker),
            Rule::accept_out().dest(allowed).comment(&marker),
        ];
        if !options.dns.is_empty() {
            let dns = Rule::accept_out()
                .macro_name("DNS")
                .expect("DNS is a valid macro name")
                .dest(AddrSpec::ipset(&lab.dns_set()))
                .comment(&marker);
            rules.push(dns);
        }
        rules.push(Rule::drop_in().comment(&marker));
        rules.push(Rule::drop_out().comment(&marker));
        rules
    }

    async fn guest(&self, vmid: VmId) -> Result<(Guest, Scope)> {
        let guest = self.vms.guest(vmid).await?;
        let scope = Scope::guest(guest.node().clone(), guest.kind(), vmid);
        Ok((guest, scope))
    }

    // ----- datacenter -----

    async fn add_management(
        &self,
        lab: &LabName,
        nets: &[Cidr],
        changes: &mut Changes,
    ) -> Result<()> {
        if nets.is_empty() {
            return Ok(());
        }
        let set = IpSetName::new(MANAGEMENT_SET).expect("'management' is a valid set name");
        let sets = self.fw.ipsets(&Scope::Cluster).await?;
        if !sets.iter().any(|s| s.name == MANAGEMENT_SET) {
            match self
                .fw
                .create_ipset(&Scope::Cluster, &set, Some(&lab.fence_marker()))
                .await
            {
                Ok(()) => changes.push(Change::IpSetCreated(MANAGEMENT_SET.to_owned())),
                // Another lab created it meanwhile: shared, so that is as good.
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e),
            }
        }
        for net in nets {
            retry_digest!({
                let entries = self.fw.ipset_entries(&Scope::Cluster, &set).await?;
                let key = net.to_string();
                match entries.iter().find(|e| entry_key(e) == key) {
                    None => {
                        self.fw
                            .add_ipset_entry(
                                &Scope::Cluster,
                                &set,
                                net,
                                false,
                                Some(&lab.fence_marker()),
                            )
                            .await?;
                        changes.push(Change::IpSetEntryAdded {
                            set: set.to_string(),
                            cidr: key,
                        });
                    }
                    // Someone else's entry that another lab owns: co-own it so its removal
                    // waits for the last lab.
                    Some(e)
                        if !lab.owns(e.comment.as_deref())
                            && e.comment.as_deref().is_some_and(|c| c.contains("labctl:")) =>
                    {
                        let comment = format!(
                            "{} {}",
                            e.comment.as_deref().unwrap_or(""),
                            lab.fence_marker()
                        );
                        self.fw
                            .update_ipset_entry(
                                &Scope::Cluster,
                                &set,
                                &e.cidr,
                                e.nomatch,
                                Some(&comment),
                                e.digest.as_deref(),
                            )
                            .await?;
                        changes.push(Change::IpSetEntryComment {
                            set: set.to_string(),
                            cidr: key,
                            comment,
                        });
                    }
                    // The admin's own entry, or ours already: nothing to do.
                    Some(_) => {}
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Creates `set` (marked as the lab's) if missing and makes its entries exactly `want`.
    async fn sync_set(
        &self,
        lab: &LabName,
        set: &IpSetName,
        want: &[Cidr],
        changes: &mut Changes,
    ) -> Result<()> {
        let sets = self.fw.ipsets(&Scope::Cluster).await?;
        match sets.iter().find(|s| s.name == set.as_str()) {
            None => {
                self.fw
                    .create_ipset(&Scope::Cluster, set, Some(&lab.fence_marker()))
                    .await?;
                changes.push(Change::IpSetCreated(set.to_string()));
            }
            Some(s) if !lab.owns(s.comment.as_deref()) => {
                return Err(Error::Inconsistent {
                    object: format!("IP set {set}"),
                    message: format!(
                        "it exists but is not marked {}; choose another lab name or remove it",
                        lab.fence_marker()
                    ),
                })
            }
            Some(_) => {}
        }
        let want: BTreeSet<String> = want.iter().map(ToString::to_string).collect();
        let entries = self.fw.ipset_entries(&Scope::Cluster, set).await?;
        let have: BTreeSet<String> = entries.iter().map(entry_key).collect();
        for add in want.difference(&have) {
            let cidr: Cidr = add.parse()?;
            self.fw
                .add_ipset_entry(
                    &Scope::Cluster,
                    set,
                    &cidr,
                    false,
                    Some(&lab.fence_marker()),
                )
                .await?;
            changes.push(Change::IpSetEntryAdded {
                set: set.to_string(),
                cidr: add.clone(),
            });
        }
        for extra in entries.iter().filter(|e| !want.contains(&entry_key(e))) {
            self.fw
                .delete_ipset_entry(&Scope::Cluster, set, &extra.cidr, None)
                .await?;
            changes.push(Change::IpSetEntryRemoved {
                set: set.to_string(),
                cidr: extra.cidr.clone(),
            });
        }
        Ok(())
    }

    /// Deletes `set` with its entries if it exists and carries the lab's marker.
    async fn delete_set_if_ours(
        &self,
        lab: &LabName,
        set: &IpSetName,
        changes: &mut Changes,
    ) -> Result<()> {
        let sets = self.fw.ipsets(&Scope::Cluster).await?;
        let Some(s) = sets.iter().find(|s| s.name == set.as_str()) else {
            return Ok(());
        };
        if !lab.owns(s.comment.as_deref()) {
            return Ok(());
        }
        self.fw.delete_ipset(&Scope::Cluster, set, true).await?;
        changes.push(Change::IpSetDeleted(set.to_string()));
        Ok(())
    }

    async fn ensure_group(
        &self,
        lab: &LabName,
        cluster: &Options,
        changes: &mut Changes,
    ) -> Result<()> {
        let group = lab.group();
        let groups = self.fw.groups().await?;
        match groups.iter().find(|g| g.group == group.as_str()) {
            None => {
                let mut record = Record::default();
                record.note(cluster_record_key(), cluster.get("enable"));
                let comment = record.comment(lab);
                self.fw.create_group(&group, Some(&comment)).await?;
                changes.push(Change::GroupCreated(group.to_string()));
                Ok(())
            }
            Some(g) if lab.owns(g.comment.as_deref()) => {
                // Checks the record parses; it is used by unisolate.
                Record::parse(
                    lab,
                    g.comment.as_deref().unwrap_or(""),
                    &format!("security group {group}"),
                )
                .map(drop)
            }
            Some(_) => Err(Error::Inconsistent {
                object: format!("security group {group}"),
                message: format!(
                    "it exists but is not marked {}; choose another lab name or remove it",
                    lab.fence_marker()
                ),
            }),
        }
    }

    /// Makes the group body exactly `want`, sending rules in reverse because each POST
    /// inserts at position 0.
    async fn sync_group_rules(
        &self,
        lab: &LabName,
        want: &[Rule],
        changes: &mut Changes,
    ) -> Result<()> {
        let scope = Scope::Group(lab.group());
        let have = self.fw.rules(&scope).await?;
        let matches_from = |offset: usize| -> bool {
            have.len() + offset == want.len()
                && want[offset..].iter().zip(&have).all(|(w, h)| w.matches(h))
        };
        if matches_from(0) {
            return Ok(());
        }
        // An interrupted earlier run leaves a tail of the wanted list: add the missing head.
        let missing = if have.len() <= want.len() && matches_from(want.len() - have.len()) {
            want.len() - have.len()
        } else {
            want.len()
        };
        for rule in want[..missing].iter().rev() {
            self.fw.create_rule(&scope, rule).await?;
            changes.push(Change::RuleCreated {
                scope: scope.to_string(),
                rule: rule.to_string(),
            });
        }
        if missing == want.len() && !have.is_empty() {
            // Foreign or stale rules below the fresh body: remove them from the bottom, so
            // the body with its DROPs stays in force the whole time.
            self.delete_rules_while(&scope, changes, |rules| {
                rules.last().filter(|r| r.pos as usize >= want.len())
            })
            .await?;
        }
        Ok(())
    }

    /// Switches the datacenter firewall on (if it is off and the options allow it) with
    /// PVE's anti-lockout step. Every write carries the digest just read, and the whole
    /// step is repeated on transient failures: an `enable=2` whose answer was lost reads
    /// back as a timestamp, which is then confirmed, never left to expire.
    async fn enable_cluster(
        &self,
        before: &Options,
        options: &IsolationOptions,
        report: &mut Report,
    ) -> Result<()> {
        let mut switched = false;
        let policy = retry_step!(self, "datacenter firewall", {
            self.switch_cluster_on(options, &mut switched).await
        })?;
        let policy = match policy {
            Switch::On(policy) => policy,
            Switch::WasOn => {
                if !before.enabled() {
                    report.notes.push(
                        "datacenter firewall was switched on meanwhile by someone else".to_owned(),
                    );
                }
                return Ok(());
            }
            Switch::Off => {
                report.notes.push(
                    "datacenter firewall is off and enable_cluster is false: the fence is configured but NOT in force".to_owned(),
                );
                return Ok(());
            }
        };
        report.changes.push(Change::ClusterFirewall {
            from: before.get("enable"),
            to: Some("1".to_owned()),
        });
        report.notes.push(format!(
            "datacenter firewall switched on; host input policy stays {policy}: hosts accept 8006/22/VNC/SPICE only from \
             the 'management' IP set and the cluster network{}",
            if options.management.is_empty() { " (no management networks were given)" } else { "" }
        ));
        Ok(())
    }

    /// One attempt of [`Isolation::enable_cluster`]. `switched` remembers a write that may
    /// have arrived, so an attempt after a lost answer still knows the switch was ours.
    async fn switch_cluster_on(
        &self,
        options: &IsolationOptions,
        switched: &mut bool,
    ) -> Result<Switch> {
        let current = self.fw.options(&Scope::Cluster).await?;
        let policy = current
            .get("policy_in")
            .unwrap_or_else(|| "DROP (default)".to_owned());
        let pending = current.enable().is_some_and(|e| e > 1);
        if current.enabled() && !pending {
            return Ok(if *switched {
                Switch::On(policy)
            } else {
                Switch::WasOn
            });
        }
        if !options.enable_cluster {
            return Ok(if current.enabled() {
                Switch::WasOn
            } else {
                Switch::Off
            });
        }
        let mut confirm_digest = current.digest.clone();
        if !pending {
            // PVE's anti-lockout step (Part B.9): enable=2 is stored as a timestamp that
            // reads back as 0 after 60 s; confirming with enable=1 only works if we still
            // reach the API.
            let mut update = OptionsUpdate::new().set("enable", 2u8);
            if let Some(d) = &current.digest {
                update = update.digest(d);
            }
            *switched = true;
            self.fw.set_options(&Scope::Cluster, &update).await?;
            confirm_digest = self.fw.options(&Scope::Cluster).await?.digest;
        }
        // A pending timestamp (ours from an attempt whose answer was lost, or someone's
        // anti-lockout step under way) is confirmed: the fence needs the switch on.
        let mut confirm = OptionsUpdate::new().enable(true);
        if let Some(d) = &confirm_digest {
            confirm = confirm.digest(d);
        }
        *switched = true;
        self.fw.set_options(&Scope::Cluster, &confirm).await?;
        Ok(Switch::On(policy))
    }

    /// Lifts the lab's datacenter objects: the switch (restored or handed over), then the
    /// group's rules, the group, the sets and the management entries. Each part is its own
    /// step, repeated on transient failures, and each reads what it removes, so a repeat
    /// after a lost answer removes nothing twice.
    async fn teardown_cluster(&self, lab: &LabName, report: &mut Report) -> Result<()> {
        let group = lab.group();
        let object = format!("security group {group}");
        let groups = retry_step!(self, "read security groups", { self.fw.groups().await })?;
        let ours = groups
            .iter()
            .find(|g| g.group == group.as_str() && lab.owns(g.comment.as_deref()));
        if let Some(g) = ours {
            let record = Record::parse(lab, g.comment.as_deref().unwrap_or(""), &object)?;
            if let Some(prior) = record.get(cluster_record_key()).cloned() {
                self.restore_cluster(lab, &prior, &groups, report).await?;
            }
            // Rules first, then the group, then the sets (Part B.11 item 4).
            let scope = Scope::Group(group.clone());
            let changes = &mut report.changes;
            retry_step!(self, format!("rules of {object}"), {
                self.delete_rules_while(&scope, changes, |rules| rules.last())
                    .await
            })?;
            retry_step!(self, object.clone(), {
                match self.fw.delete_group(&group).await {
                    Ok(()) => {
                        changes.push(Change::GroupDeleted(group.to_string()));
                        Ok(())
                    }
                    // Deleted by an attempt whose answer was lost.
                    Err(e) if e.is_not_found() => Ok(()),
                    Err(e) => Err(e),
                }
            })?;
        }
        for set in [lab.allowed_set(), lab.dns_set(), lab.students_set()] {
            retry_step!(self, format!("IP set {set}"), {
                self.delete_set_if_ours(lab, &set, &mut report.changes)
                    .await
            })?;
        }
        retry_step!(self, "management networks", {
            self.remove_management(lab, &mut report.changes).await
        })
    }

    /// Restores the datacenter switch to `prior` (what it was before `lab` was fenced), or,
    /// while other labs are still fenced, leaves it on and hands the duty over to them.
    /// Every write is its own digest-safe update (see `retry_digest!`): one handover per
    /// group, each on a fresh read of the group list, so several labs never share a digest.
    async fn restore_cluster(
        &self,
        lab: &LabName,
        prior: &Option<String>,
        groups: &[crate::api::GroupInfo],
        report: &mut Report,
    ) -> Result<()> {
        let own = lab.group();
        // Other labs' groups, named `iso-<lab>` and marked by that lab, as listed (each
        // handover re-reads the list before it writes).
        let others: Vec<(LabName, GroupName)> = groups
            .iter()
            .filter(|g| g.group != own.as_str())
            .filter_map(|g| {
                let other = g
                    .comment
                    .as_deref()?
                    .split_whitespace()
                    .next()?
                    .strip_prefix("labctl:")?;
                let other = LabName::new(other).ok()?;
                (other.group().as_str() == g.group).then(|| (other.clone(), other.group()))
            })
            .collect();
        if !others.is_empty() {
            let now = retry_step!(self, "read datacenter options", {
                self.fw.options(&Scope::Cluster).await
            })?
            .get("enable");
            if now == *prior {
                return Ok(());
            }
            // Other labs are still fenced and need the switch. Hand our record over to those
            // that recorded "on" (they saw it on because of us), so the last one restores it.
            for (other, name) in &others {
                let changes = &mut report.changes;
                retry_step!(self, format!("security group {name}"), {
                    retry_digest!({ self.hand_over(other, name, prior, changes).await })
                })?;
            }
            report.notes.push(format!(
                "datacenter firewall left on: other labs are still isolated ({})",
                others
                    .iter()
                    .map(|(_, g)| g.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return Ok(());
        }
        let changes = &mut report.changes;
        retry_step!(self, "datacenter firewall", {
            retry_digest!({
                let current = self.fw.options(&Scope::Cluster).await?;
                let now = current.get("enable");
                if now == *prior {
                    return Ok(());
                }
                let mut update = match prior {
                    Some(v) => OptionsUpdate::new().set("enable", v.as_str()),
                    None => OptionsUpdate::new().delete("enable"),
                };
                if let Some(d) = &current.digest {
                    update = update.digest(d);
                }
                self.fw.set_options(&Scope::Cluster, &update).await?;
                changes.push(Change::ClusterFirewall {
                    from: now,
                    to: prior.clone(),
                });
                Ok(())
            })
        })
    }

    /// One read-modify-write of another lab's group comment: its record of the datacenter
    /// switch becomes `prior` if it recorded "on". Reads the group list afresh and writes
    /// with that digest; a group gone meanwhile needs nothing.
    async fn hand_over(
        &self,
        other: &LabName,
        name: &GroupName,
        prior: &Option<String>,
        changes: &mut Changes,
    ) -> Result<()> {
        let groups = self.fw.groups().await?;
        let Some(g) = groups.iter().find(|g| g.group == name.as_str()) else {
            return Ok(());
        };
        let Some(comment) = g.comment.as_deref() else {
            return Ok(());
        };
        let Ok(mut rec) = Record::parse(other, comment, &format!("security group {name}")) else {
            return Ok(());
        };
        let theirs = rec.get(cluster_record_key()).cloned().flatten();
        if theirs.as_deref().is_none_or(|v| v == "0") || theirs == *prior {
            return Ok(());
        }
        rec.values
            .insert(cluster_record_key().to_owned(), prior.clone());
        let new = rec.comment(other);
        self.fw
            .set_group_comment(name, &new, g.digest.as_deref())
            .await?;
        changes.push(Change::GroupComment {
            group: name.to_string(),
            comment: new,
        });
        Ok(())
    }

    /// Removes the lab's marks from the `management` IP set: an entry only this lab owns
    /// goes, one co-owned by another lab loses our marker. One entry per digest-safe
    /// update (a fresh read each), then the set itself if labctl created it (for any
    /// lab) and it is empty.
    async fn remove_management(&self, lab: &LabName, changes: &mut Changes) -> Result<()> {
        let set = IpSetName::new(MANAGEMENT_SET).expect("'management' is a valid set name");
        let sets = self.fw.ipsets(&Scope::Cluster).await?;
        let Some(info) = sets.iter().find(|s| s.name == MANAGEMENT_SET) else {
            return Ok(());
        };
        let marker = lab.fence_marker();
        loop {
            let more = retry_digest!({
                let entries = self.fw.ipset_entries(&Scope::Cluster, &set).await?;
                let Some(e) = entries.iter().find(|e| lab.owns(e.comment.as_deref())) else {
                    // A set labctl created (for this lab or another one whose entries
                    // are gone meanwhile) goes with its last entry.
                    let created_by_labctl = info
                        .comment
                        .as_deref()
                        .and_then(|c| c.split_whitespace().next())
                        .is_some_and(|w| w.starts_with("labctl:"));
                    if created_by_labctl && entries.is_empty() {
                        match self.fw.delete_ipset(&Scope::Cluster, &set, false).await {
                            Ok(()) => changes.push(Change::IpSetDeleted(MANAGEMENT_SET.to_owned())),
                            Err(e) if e.is_not_found() => {}
                            Err(e) => return Err(e),
                        }
                    }
                    return Ok(false);
                };
                let rest: Vec<&str> = e
                    .comment
                    .as_deref()
                    .unwrap_or("")
                    .split_whitespace()
                    .filter(|w| *w != marker)
                    .collect();
                if rest.iter().any(|w| w.starts_with("labctl:")) {
                    // Another lab co-owns the entry: it stays, without our marker.
                    let comment = rest.join(" ");
                    self.fw
                        .update_ipset_entry(
                            &Scope::Cluster,
                            &set,
                            &e.cidr,
                            e.nomatch,
                            Some(&comment),
                            e.digest.as_deref(),
                        )
                        .await?;
                    changes.push(Change::IpSetEntryComment {
                        set: set.to_string(),
                        cidr: e.cidr.clone(),
                        comment,
                    });
                } else {
                    self.fw
                        .delete_ipset_entry(&Scope::Cluster, &set, &e.cidr, e.digest.as_deref())
                        .await?;
                    changes.push(Change::IpSetEntryRemoved {
                        set: set.to_string(),
                        cidr: e.cidr.clone(),
                    });
                }
                Ok(true)
            })?;
            if !more {
                return Ok(());
            }
        }
    }

    // ----- teacher -----

    async fn open_teacher(
        &self,
        teacher: VmId,
        options: &IsolationOptions,
        report: &mut Report,
    ) -> Result<()> {
        let lab = &options.lab;
        let (guest, scope) = self.guest(teacher).await?;
        let opts = self.fw.options(&scope).await?;
        let config = guest.config().await?;
        let rules = self.fw.rules(&scope).await?;
        let has_marker = rules.iter().any(|r| lab.owns(r.comment.as_deref()));
        let filtering = opts.enabled()
            && config.nics().iter().any(|(_, n)| n.firewall())
            && opts.get("policy_in").as_deref() != Some("ACCEPT");
        if !filtering && !has_marker {
            report.notes.push(format!(
                "teacher {teacher}: its firewall does not filter inbound traffic; left unchanged"
            ));
            return Ok(());
        }
        if options.student_addresses.is_empty() {
            return Err(Error::invalid(
                "student_addresses",
                "",
                format!("teacher {teacher} has its firewall on (policy_in DROP); give the students' addresses or network so it can accept them"),
            ));
        }
        let set = lab.students_set();
        self.sync_set(lab, &set, &options.student_addresses, &mut report.changes)
            .await?;
        let rule = Rule::accept_in()
            .source(AddrSpec::ipset(&set))
            .comment(&lab.fence_marker());
        self.place_first(&scope, lab, &rule, &mut report.changes)
            .await
    }

    /// Makes `rule` the only rule carrying the lab's marker and puts it at position 0.
    async fn place_first(
        &self,
        scope: &Scope,
        lab: &LabName,
        rule: &Rule,
        changes: &mut Changes,
    ) -> Result<()> {
        retry_digest!({
            loop {
                let rules = self.fw.rules(scope).await?;
                let markers: Vec<&RuleEntry> = rules
                    .iter()
                    .filter(|r| lab.owns(r.comment.as_deref()))
                    .collect();
                match markers.as_slice() {
                    [] => {
                        self.fw.create_rule(scope, rule).await?;
                        changes.push(Change::RuleCreated {
                            scope: scope.to_string(),
                            rule: rule.to_string(),
                        });
                        return Ok(());
                    }
                    [only] => {
                        if !rule.matches(only) {
                            self.fw
                                .update_rule(scope, only.pos, rule, only.digest.as_deref())
                                .await?;
                            changes.push(Change::RuleUpdated {
                                scope: scope.to_string(),
                                pos: only.pos,
                                rule: rule.to_string(),
                            });
                            continue;
                        }
                        if only.pos != 0 {
                            self.fw
                                .move_rule(scope, only.pos, 0, only.digest.as_deref())
                                .await?;
                            changes.push(Change::RuleMoved {
                                scope: scope.to_string(),
                                from: only.pos,
                                to: 0,
                            });
                        }
                        return Ok(());
                    }
                    // Duplicates (hand edits): keep the bottom one, the original.
                    [first, ..] => {
                        self.fw
                            .delete_rule(scope, first.pos, first.digest.as_deref())
                            .await?;
                        changes.push(Change::RuleDeleted {
                            scope: scope.to_string(),
                            pos: first.pos,
                            rule: describe(first),
                        });
                    }
                }
            }
        })
    }

    /// Deletes the rule `pick` chooses, one at a time and re-reading the list before each
    /// (positions shift after a delete), until it chooses none; records each deletion.
    async fn delete_rules_while(
        &self,
        scope: &Scope,
        changes: &mut Changes,
        pick: impl Fn(&[RuleEntry]) -> Option<&RuleEntry>,
    ) -> Result<()> {
        retry_digest!({
            loop {
                let rules = self.fw.rules(scope).await?;
                let Some(rule) = pick(&rules) else {
                    return Ok(());
                };
                self.fw
                    .delete_rule(scope, rule.pos, rule.digest.as_deref())
                    .await?;
                changes.push(Change::RuleDeleted {
                    scope: scope.to_string(),
                    pos: rule.pos,
                    rule: describe(rule),
                });
            }
        })
    }

    // ----- students -----

    async fn isolate_guest(
        &self,
        vmid: VmId,
        group: &GroupName,
        options: &IsolationOptions,
        out: &mut Outcome,
    ) -> Result<()> {
        let lab = &options.lab;
        let changes = &mut out.changes;
        let mut notes = Vec::new();
        let (guest, scope) = self.guest(vmid).await?;
        let config = guest.config().await?;
        let opts = self.fw.options(&scope).await?;
        let rules = self.fw.rules(&scope).await?;
        let object = format!("{scope} marker rule");
        let mut record = match rules.iter().rev().find(|r| lab.owns(r.comment.as_deref())) {
            Some(m) => Record::parse(lab, m.comment.as_deref().unwrap_or(""), &object)?,
            None => Record::default(),
        };
        // Record what is about to change, before changing anything.
        let want_enable = opts.flag("enable") != Some(true);
        let want_dhcp = options.dhcp && opts.flag("dhcp") != Some(true);
        if want_enable {
            record.note("enable", opts.get("enable"));
        }
        if want_dhcp {
            record.note("dhcp", opts.get("dhcp"));
        }
        let nics = config.nics();
        if nics.is_empty() {
            notes.push(format!("guest {vmid} has no network devices"));
        }
        for (i, nic) in &nics {
            if !nic.firewall() && !options.is_inner(nic) {
                record.note(&nic_key(*i), nic.get("firewall").map(str::to_owned));
            }
        }
        let rule = Rule::group(group.clone()).comment(&record.comment(lab));
        self.place_first(&scope, lab, &rule, changes).await?;

        if want_enable || want_dhcp {
            retry_digest!({
                let opts = self.fw.options(&scope).await?;
                let mut update = OptionsUpdate::new();
                let mut local = Vec::new();
                if opts.flag("enable") != Some(true) {
                    update = update.enable(true);
                    local.push(Change::GuestOption {
                        vmid,
                        key: "enable".into(),
                        from: opts.get("enable"),
                        to: Some("1".into()),
                    });
                }
                if options.dhcp && opts.flag("dhcp") != Some(true) {
                    update = update.dhcp(true);
                    local.push(Change::GuestOption {
                        vmid,
                        key: "dhcp".into(),
                        from: opts.get("dhcp"),
                        to: Some("1".into()),
                    });
                }
                if let Some(d) = &opts.digest {
                    update = update.digest(d);
                }
                self.fw.set_options(&scope, &update).await?;
                changes.extend(local);
                Ok(())
            })?;
        }

        if nics
            .iter()
            .any(|(_, n)| !n.firewall() && !options.is_inner(n))
        {
            let mut local = Vec::new();
            guest
                .modify_config(|cfg| {
                    local.clear();
                    let mut update = ConfigUpdate::new();
                    for (i, mut nic) in cfg.nics() {
                        if !nic.firewall() && !options.is_inner(&nic) {
                            let from = nic.get("firewall").map(str::to_owned);
                            nic.set_firewall(true);
                            update = update.set(&nic_key(i), nic.to_string());
                            local.push(Change::NicFirewall {
                                vmid,
                                nic: i,
                                from,
                                to: Some("1".into()),
                            });
                        }
                    }
                    Ok(update)
                })
                .await?;
            changes.extend(local);
        }
        for n in notes {
            out.note(n);
        }
        Ok(())
    }

    async fn unisolate_guest(&self, vmid: VmId, lab: &LabName, out: &mut Outcome) -> Result<()> {
        let (guest, scope) = match self.guest(vmid).await {
            Ok(g) => g,
            Err(e) if e.is_not_found() => {
                out.note(format!("guest {vmid} does not exist; nothing to restore"));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let changes = &mut out.changes;
        let rules = self.fw.rules(&scope).await?;
        let Some(marker) = rules.iter().rev().find(|r| lab.owns(r.comment.as_deref())) else {
            return Ok(());
        };
        let record = Record::parse(
            lab,
            marker.comment.as_deref().unwrap_or(""),
            &format!("{scope} marker rule"),
        )?;

        // NICs and options first; the marker (the record) goes last.
        let nic_restores: Vec<(u32, Option<String>)> = record
            .values
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("net")?.parse::<u32>().ok()?, v.clone())))
            .collect();
        if !nic_restores.is_empty() {
            let mut local = Vec::new();
            guest
                .modify_config(|cfg| {
                    local.clear();
                    let mut update = ConfigUpdate::new();
                    let nics: BTreeMap<u32, _> = cfg.nics().into_iter().collect();
                    for (i, prior) in &nic_restores {
                        let Some(nic) = nics.get(i) else { continue };
                        let now = nic.get("firewall").map(str::to_owned);
                        if now == *prior {
                            continue;
                        }
                        let mut nic = nic.clone();
                        match prior {
                            Some(v) => nic.set("firewall", v),
                            None => {
                                nic.remove("firewall");
                            }
                        }
                        update = update.set(&nic_key(*i), nic.to_string());
                        local.push(Change::NicFirewall {
                            vmid,
                            nic: *i,
                            from: now,
                            to: prior.clone(),
                        });
                    }
                    Ok(update)
                })
                .await?;
            changes.extend(local);
        }
        retry_digest!({
            let opts = self.fw.options(&scope).await?;
            let mut update = OptionsUpdate::new();
            let mut local = Vec::new();
            for key in ["enable", "dhcp"] {
                let Some(prior) = record.get(key) else {
                    continue;
                };
                let now = opts.get(key);
                if now == *prior {
                    continue;
                }
                update = match prior {
                    Some(v) => update.set(key, v.as_str()),
                    None => update.delete(key),
                };
                local.push(Change::GuestOption {
                    vmid,
                    key: key.into(),
                    from: now,
                    to: prior.clone(),
                });
            }
            if let Some(d) = &opts.digest {
                update = update.digest(d);
            }
            self.fw.set_options(&scope, &update).await?;
            changes.extend(local);
            Ok(())
        })?;
        self.delete_rules_while(&scope, changes, |rules| {
            rules.iter().find(|r| lab.owns(r.comment.as_deref()))
        })
        .await?;
        Ok(())
    }

    async fn verify_guest(
        &self,
        vmid: VmId,
        group: &GroupName,
        lab: &LabName,
        exempt: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<GuestCheck> {
        let mut problems = Vec::new();
        let (guest, scope) = match self.guest(vmid).await {
            Ok(g) => g,
            Err(e) if e.is_not_found() => {
                return Ok(GuestCheck {
                    vmid,
                    firewall_enabled: false,
                    nics: Vec::new(),
                    group_rule_first: false,
                    problems: vec!["guest does not exist".to_owned()],
                })
            }
            Err(e) => return Err(e),
        };
        let opts = self.fw.options(&scope).await?;
        let config = guest.config().await?;
        let rules = self.fw.rules(&scope).await?;
        let firewall_enabled = opts.flag("enable") == Some(true);
        if !firewall_enabled {
            problems.push(format!(
                "guest firewall option enable is {} (needs 1)",
                opts.get("enable").unwrap_or_else(|| "unset".into())
            ));
        }
        let nics: Vec<(u32, bool)> = config
            .nics()
            .iter()
            .map(|(i, n)| (*i, n.firewall() || n.bridge().is_some_and(exempt)))
            .collect();
        if nics.is_empty() {
            problems.push("guest has no network devices".to_owned());
        }
        for (i, on) in &nics {
            if !on {
                problems.push(format!(
                    "net{i} lacks firewall=1: its traffic bypasses the firewall"
                ));
            }
        }
        let first = rules.first();
        let group_rule_first = first.is_some_and(|r| {
            r.is_group(group) && r.enable && r.errors.is_empty() && r.iface.is_none()
        });
        if !group_rule_first {
            match rules.iter().find(|r| r.is_group(group)) {
                None => problems.push(format!("no GROUP {group} rule")),
                Some(r) if !r.enable => problems.push(format!(
                    "GROUP {group} rule at position {} is disabled",
                    r.pos
                )),
                Some(r) if !r.errors.is_empty() => problems.push(format!(
                    "GROUP {group} rule is skipped by PVE: {}",
                    r.error_text()
                )),
                Some(r) if r.iface.is_some() => problems.push(format!(
                    "GROUP {group} rule applies only to {}",
                    r.iface.as_deref().unwrap_or_default()
                )),
                Some(r) => problems.push(format!(
                    "GROUP {group} rule is at position {}, after: {}",
                    r.pos,
                    rules
                        .iter()
                        .take_while(|x| x.pos < r.pos)
                        .map(describe)
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
            }
        }
        if !rules.iter().any(|r| lab.owns(r.comment.as_deref())) {
            problems.push(format!(
                "no {} marker rule: unisolate would not know what to restore",
                lab.fence_marker()
            ));
        }
        Ok(GuestCheck {
            vmid,
            firewall_enabled,
            nics,
            group_rule_first,
            problems,
        })
    }
}

/// What every fresh clone of a template starts with. Clone copies the template's firewall
/// file and NICs (reference §4.3), so one read of the template tells what each clone's
/// fence changes and records, and each clone is fenced without being read.
#[derive(Debug, Clone)]
pub struct CloneBaseline {
    template: VmId,
    enable: Option<String>,
    enabled: bool,
    dhcp: Option<String>,
    dhcp_on: bool,
    /// The template carries a marker rule of the lab (its clones are not plain copies).
    marked: bool,
    nics: Vec<(u32, pve_vm::NetDevice)>,
}

impl CloneBaseline {
    /// The template it was read from.
    pub fn template(&self) -> VmId {
        self.template
    }

    /// The template's NICs, as every fresh clone has them (with other MACs).
    pub fn nics(&self) -> &[(u32, pve_vm::NetDevice)] {
        &self.nics
    }
}

impl Isolation {
    /// Reads what fresh clones of `template` start with, for [`Isolation::fence_clone`]
    /// (three reads: firewall options, rules, config).
    pub async fn clone_baseline(&self, template: VmId, lab: &LabName) -> Result<CloneBaseline> {
        retry_step!(self, format!("read template {template}"), {
            self.read_baseline(template, lab).await
        })
    }

    async fn read_baseline(&self, template: VmId, lab: &LabName) -> Result<CloneBaseline> {
        let (guest, scope) = self.guest(template).await?;
        let opts = self.fw.options(&scope).await?;
        let rules = self.fw.rules(&scope).await?;
        let config = guest.config().await?;
        Ok(CloneBaseline {
            template,
            enable: opts.get("enable"),
            enabled: opts.flag("enable") == Some(true),
            dhcp: opts.get("dhcp"),
            dhcp_on: opts.flag("dhcp") == Some(true),
            marked: rules.iter().any(|r| lab.owns(r.comment.as_deref())),
            nics: config.nics(),
        })
    }

    /// The lab-wide part of [`Isolation::isolate`]: management networks, the lab's IP sets
    /// and security group, the teacher, and the datacenter switch (on, if it is off and
    /// [`IsolationOptions::enable_cluster`]). A student fenced afterwards
    /// ([`Isolation::fence_clone`], [`Isolation::isolate_one`]) is fenced the moment its own
    /// part is in place, so it can be started fenced.
    pub async fn prepare(&self, allowed: &[Cidr], options: &IsolationOptions) -> Result<Report> {
        Self::check_inputs(allowed, options)?;
        let lab = &options.lab;
        let mut report = Report {
            lab: lab.to_string(),
            ..Report::default()
        };
        let cluster = self.lab_wide(allowed, options, &mut report).await?;
        self.enable_cluster(&cluster, options, &mut report).await?;
        Ok(report)
    }

    /// Steps 1-4 of [`Isolation::isolate`]: management networks first (host access must
    /// survive the datacenter switch), the sets before the rules that reference them, the
    /// group (recording the datacenter's prior state in its comment), the teacher. Answers
    /// the datacenter options as they were before.
    async fn lab_wide(
        &self,
        allowed: &[Cidr],
        options: &IsolationOptions,
        report: &mut Report,
    ) -> Result<Options> {
        let lab = &options.lab;
        let changes = &mut report.changes;
        let cluster = retry_step!(self, "read datacenter options", {
            self.fw.options(&Scope::Cluster).await
        })?;
        retry_step!(self, "management networks", {
            self.add_management(lab, &options.management, changes).await
        })?;
        retry_step!(self, "allowed IP set", {
            self.sync_set(lab, &lab.allowed_set(), allowed, changes)
                .await
        })?;
        if !options.dns.is_empty() {
            retry_step!(self, "DNS IP set", {
                self.sync_set(lab, &lab.dns_set(), &options.dns, changes)
                    .await
            })?;
        }
        retry_step!(self, "security group", {
            self.ensure_group(lab, &cluster, changes).await
        })?;
        let rules = self.group_rules(options);
        retry_step!(self, "security group rules", {
            self.sync_group_rules(lab, &rules, changes).await
        })?;
        if options.dns.is_empty() {
            // A DNS set of an earlier run is no longer referenced once the rules are synced.
            retry_step!(self, "DNS IP set", {
                self.delete_set_if_ours(lab, &lab.dns_set(), changes).await
            })?;
        }
        if let Some(teacher) = options.teacher {
            retry_step!(self, format!("teacher {teacher}"), {
                self.open_teacher(teacher, options, report).await
            })?;
        }
        Ok(cluster)
    }

    /// Fences one guest in whatever state it is (reads it first; idempotent). The
    /// lab-wide part must be in place ([`Isolation::prepare`]).
    pub async fn isolate_one(&self, vmid: VmId, options: &IsolationOptions) -> Result<Report> {
        let group = options.lab.group();
        let mut out = Outcome::default();
        retry_step!(self, format!("isolate guest {vmid}"), {
            self.isolate_guest(vmid, &group, options, &mut out).await
        })?;
        Ok(Report {
            lab: options.lab.to_string(),
            changes: out.changes,
            notes: out.notes,
        })
    }

    /// Fences a fresh clone of `baseline`'s template that nothing has touched since its
    /// clone task ended, without reading it: the marker rule (recording the template's
    /// values, which the clone has) and the guest options, two requests. Answers the NIC
    /// changes the caller must send in its own config `PUT` (so tags and NIC flags go in
    /// one request; the NICs are sent without MAC, so PVE generates new ones as clone did);
    /// `None` when the template itself carries the lab's marker and the clone must go
    /// through [`Isolation::isolate_one`] instead.
    pub async fn fence_clone(
        &self,
        guest: &Guest,
        baseline: &CloneBaseline,
        options: &IsolationOptions,
    ) -> Result<Option<ConfigUpdate>> {
        if baseline.marked {
            return Ok(None);
        }
        let lab = &options.lab;
        let vmid = guest.vmid();
        let scope = Scope::guest(guest.node().clone(), guest.kind(), vmid);
        let mut record = Record::default();
        let want_dhcp = options.dhcp && !baseline.dhcp_on;
        if !baseline.enabled {
            record.note("enable", baseline.enable.clone());
        }
        if want_dhcp {
            record.note("dhcp", baseline.dhcp.clone());
        }
        let mut update = ConfigUpdate::new();
        for (i, nic) in &baseline.nics {
            if !nic.firewall() && !options.is_inner(nic) {
                record.note(&nic_key(*i), nic.get("firewall").map(str::to_owned));
                let mut fenced = nic.clone().without_mac();
                fenced.set_firewall(true);
                update = update.set(&nic_key(*i), fenced.to_string());
            }
        }
        // Marker first: from here on, unisolate knows what to restore.
        let rule = Rule::group(lab.group()).comment(&record.comment(lab));
        // A POST is not idempotent: after a failure that may have reached the server, the
        // rules are read before it is sent again (a marker there means it arrived).
        let mut maybe_sent = false;
        retry_step!(self, format!("fence guest {vmid}"), {
            if maybe_sent {
                let rules = self.fw.rules(&scope).await?;
                if rules.iter().any(|r| lab.owns(r.comment.as_deref())) {
                    return Ok(());
                }
            }
            let r = self.fw.create_rule(&scope, &rule).await;
            maybe_sent = r.as_ref().is_err_and(|e| !e.was_never_sent());
            r
        })?;
        if !baseline.enabled || want_dhcp {
            let mut opts = OptionsUpdate::new();
            if !baseline.enabled {
                opts = opts.enable(true);
            }
            if want_dhcp {
                opts = opts.dhcp(true);
            }
            // Setting values (no digest) is idempotent: repeated as it is.
            retry_step!(self, format!("firewall options of guest {vmid}"), {
                self.fw.set_options(&scope, &opts).await
            })?;
        }
        Ok(Some(update))
    }

    /// Lifts the lab-wide part of the fence once no student needs it (they were destroyed,
    /// or unisolated one by one): the teacher's rule, the lab's group and sets, its
    /// management entries, and the datacenter switch if this lab turned it on. A lab that
    /// is not isolated is a no-op.
    pub async fn lift_lab(&self, options: &IsolationOptions) -> Result<Report> {
        let mut report = Report {
            lab: options.lab.to_string(),
            ..Report::default()
        };
        self.lift(options, &mut report).await?;
        Ok(report)
    }

    /// The lab-wide part of lifting: the teacher's rule, then group, sets, management and
    /// the datacenter switch.
    async fn lift(&self, options: &IsolationOptions, report: &mut Report) -> Result<()> {
        let lab = &options.lab;
        if let Some(teacher) = options.teacher {
            let mut out = Outcome::default();
            let r = retry_step!(self, format!("teacher {teacher}"), {
                self.unisolate_guest(teacher, lab, &mut out).await
            });
            report.changes.extend(out.changes);
            report.notes.extend(out.notes);
            match r {
                Ok(()) => {}
                Err(e) if e.is_not_found() => report
                    .notes
                    .push(format!("teacher {teacher} not found; nothing to restore")),
                Err(e) => return Err(e),
            }
        }
        self.teardown_cluster(lab, report).await
    }

    /// Whether the lab's fence holds on one guest: its marker rule first, its firewall on,
    /// every NIC filtered (three reads).
    pub async fn holds(&self, vmid: VmId, lab: &LabName) -> Result<bool> {
        self.holds_except(vmid, lab, &|_: &str| false).await
    }

    /// [`Isolation::holds`], not asking `firewall=1` of the NICs on a bridge `exempt`
    /// names: segments of a student's own (a lab's vnet), which no other student shares.
    /// A guest whose NICs are all exempt holds the fence when its rule and firewall do.
    pub async fn holds_except(
        &self,
        vmid: VmId,
        lab: &LabName,
        exempt: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<bool> {
        let group = lab.group();
        let check = retry_step!(self, format!("verify guest {vmid}"), {
            self.verify_guest(vmid, &group, lab, exempt).await
        })?;
        Ok(check.is_isolated())
    }
}

/// Folds per-guest results into the report (in id order; what a failed guest changed
/// before it gave up is reported too) and returns the failures.
fn merge(
    report: &mut Report,
    mut results: Vec<(VmId, Outcome, Result<()>)>,
) -> Vec<(Option<u32>, Error)> {
    results.sort_by_key(|(id, _, _)| *id);
    let mut failures = Vec::new();
    for (vmid, o, r) in results {
        report.changes.extend(o.changes);
        report.notes.extend(o.notes);
        if let Err(e) = r {
            failures.push((Some(vmid.get()), e));
        }
    }
    failures
}

/// Normalised text of an IP set entry for comparisons.
fn entry_key(e: &IpSetEntry) -> String {
    let base = e
        .net()
        .map(|c| c.to_string())
        .unwrap_or_else(|| e.cidr.clone());
    if e.nomatch {
        format!("!{base}")
    } else {
        base
    }
}

/// A listed rule in `.fw` syntax (falls back to the raw fields).
fn describe(r: &RuleEntry) -> String {
    r.to_rule()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| format!("{} {}", r.kind, r.action))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_names_and_derived_names() {
        let lab = LabName::new("exam-2026a").unwrap();
        assert_eq!(lab.group().as_str(), "iso-exam-2026a");
        assert_eq!(lab.allowed_set().as_str(), "iso-exam-2026a-allowed");
        assert_eq!(lab.fence_marker(), "labctl:exam-2026a");
        LabName::new("abcdefghijklmn").unwrap();
        let err = LabName::new("abcdefghijklmno").unwrap_err().to_string();
        assert!(err.contains("18 characters"), "{err}");
        assert!(LabName::new("Exam").is_err());
        assert!(LabName::new("").is_err());
        assert!(lab.owns(Some("labctl:exam-2026a enable=-")));
        assert!(!lab.owns(Some("labctl:exam-2026ab")));
        assert!(!lab.owns(None));
    }

    #[test]
    fn records_round_trip_and_never_overwrite() {
        let lab = LabName::new("l1").unwrap();
        let mut r = Record::default();
        assert!(r.note("enable", None));
        assert!(r.note("net0", Some("0".into())));
        assert!(
            !r.note("enable", Some("1".into())),
            "a recorded prior value is kept"
        );
        let c = r.comment(&lab);
        assert_eq!(c, "labctl:l1 enable=- net0=0");
        let back = Record::parse(&lab, &c, "x").unwrap();
        assert_eq!(back, r);
        assert_eq!(back.get("enable"), Some(&None));
        for bad in [
            "labctl:l2 enable=-",
            "labctl:l1 enable",
            "labctl:l1 a=b=c",
            "labctl:l1 x=$",
        ] {
            assert!(Record::parse(&lab, bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn students_ranges_and_lists() {
        let id = |n| VmId::new(n).unwrap();
        let r = Students::Range {
            first: id(200),
            last: id(203),
        }
        .ids()
        .unwrap();
        assert_eq!(r, vec![id(200), id(201), id(202), id(203)]);
        assert!(Students::Range {
            first: id(203),
            last: id(200)
        }
        .ids()
        .is_err());
        assert!(Students::Range {
            first: id(100),
            last: id(5000)
        }
        .ids()
        .is_err());
        let l = Students::List(vec![id(300), id(200), id(300)])
            .ids()
            .unwrap();
        assert_eq!(l, vec![id(200), id(300)]);
        assert!(Students::List(vec![]).ids().is_err());
    }

    #[test]
    fn a_range_or_list_of_exactly_max_students_is_taken_and_one_more_refused() {
        let id = |n| VmId::new(n).unwrap();
        let full = Students::Range {
            first: id(1000),
            last: id(1999),
        }
        .ids()
        .unwrap();
        assert_eq!(full.len(), MAX_STUDENTS);
        assert_eq!((full[0], full[MAX_STUDENTS - 1]), (id(1000), id(1999)));
        let err = Students::Range {
            first: id(1000),
            last: id(2000),
        }
        .ids()
        .unwrap_err()
        .to_string();
        assert!(err.contains("1001 guests"), "{err}");
        let one = Students::Range {
            first: id(300),
            last: id(300),
        }
        .ids()
        .unwrap();
        assert_eq!(one, vec![id(300)], "a range of one guest");
        let list: Vec<VmId> = (1000..2000).map(id).collect();
        assert_eq!(Students::List(list.clone()).ids().unwrap(), list);
        let mut more = list;
        more.push(id(5000));
        let err = Students::List(more).ids().unwrap_err().to_string();
        assert!(err.contains("1001 ids"), "{err}");
    }

    #[test]
    fn records_accept_dashes_and_underscores_in_keys_and_values() {
        let lab = LabName::new("l1").unwrap();
        let r = Record::parse(&lab, "labctl:l1 cluster-enable=- net_0=a_b-c", "x").unwrap();
        assert_eq!(r.get("cluster-enable"), Some(&None));
        assert_eq!(r.get("net_0"), Some(&Some("a_b-c".to_owned())));
        assert_eq!(r.get("enable"), None);
        assert!(Record::parse(&lab, "labctl:l1 x=", "x").is_err());
    }

    #[test]
    fn changes_and_reports_read_as_sentences_with_unset_for_absent_values() {
        let vmid = VmId::new(301).unwrap();
        let cluster = Change::ClusterFirewall {
            from: None,
            to: Some("1".into()),
        };
        assert_eq!(
            cluster.to_string(),
            "datacenter firewall enable: unset -> 1"
        );
        let option = Change::GuestOption {
            vmid,
            key: "dhcp".into(),
            from: Some("0".into()),
            to: None,
        };
        assert_eq!(
            option.to_string(),
            "guest 301: firewall option dhcp: 0 -> unset"
        );
        let nic = Change::NicFirewall {
            vmid,
            nic: 1,
            from: None,
            to: Some("1".into()),
        };
        assert_eq!(nic.to_string(), "guest 301: net1 firewall: unset -> 1");
        let mut report = Report {
            lab: "exam1".into(),
            ..Report::default()
        };
        assert!(report.is_unchanged());
        assert_eq!(report.to_string(), "lab exam1: nothing to change\n");
        report
            .changes
            .push(Change::IpSetCreated("iso-exam1-allowed".into()));
        report.notes.push("guest 302 has no network devices".into());
        assert!(!report.is_unchanged());
        assert_eq!(
            report.to_string(),
            "lab exam1: 1 change(s)\n  created IP set iso-exam1-allowed\n  \
             note: guest 302 has no network devices\n"
        );
    }

    #[test]
    fn a_fence_is_in_force_only_when_the_datacenter_and_every_student_are_in_place() {
        let guest = |n, problems: &[&str]| GuestCheck {
            vmid: VmId::new(n).unwrap(),
            firewall_enabled: true,
            nics: vec![(0, true)],
            group_rule_first: problems.is_empty(),
            problems: problems.iter().map(|p| (*p).to_owned()).collect(),
        };
        let mut v = Verification {
            lab: "exam1".into(),
            cluster_enabled: true,
            cluster_problems: Vec::new(),
            guests: vec![guest(301, &[]), guest(302, &[])],
        };
        assert!(v.is_isolated());
        assert_eq!(
            v.to_string(),
            "lab exam1: isolated\n  guest 301: ok\n  guest 302: ok\n"
        );
        v.guests[1] = guest(302, &["no GROUP iso-exam1 rule"]);
        assert!(!v.guests[1].is_isolated());
        assert!(!v.is_isolated(), "one student escapes");
        assert_eq!(
            v.to_string(),
            "lab exam1: NOT isolated\n  guest 301: ok\n  guest 302: no GROUP iso-exam1 rule\n"
        );
        v.guests[1] = guest(302, &[]);
        v.cluster_problems
            .push("security group iso-exam1 does not exist".into());
        assert!(!v.is_isolated(), "the datacenter part is missing");
        assert!(
            v.to_string()
                .contains("\n  datacenter: security group iso-exam1 does not exist\n"),
            "{v}"
        );
    }

    #[test]
    fn steps_are_retried_eight_times_from_half_a_second_within_a_minute_by_default() {
        use std::time::Duration;
        let timing = pve_vm::Timing::default();
        assert_eq!(
            default_retry(&timing),
            Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_millis(7500),
                budget: Duration::from_secs(60),
                max_retries: 8,
            }
        );
    }
}
