//! The orchestration engine: plan, apply, status, teardown — over any [`Hypervisor`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::hypervisor::Hypervisor;
use crate::spec::{CloneMode, LabSpec, Retry};
use crate::types::{GuestInfo, LabName, StudentStatus, VmId};

/// Runs an idempotent step, repeating it after transient failures per `retry`.
pub(crate) async fn retrying<T, F, Fut>(retry: &Retry, what: &str, mut step: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut pause = retry.pause;
    let mut attempt = 1;
    loop {
        let started = tokio::time::Instant::now();
        match step().await {
            Err(e) if e.is_transient() && started.elapsed() >= retry.long_step => {
                tracing::warn!(
                    "{what}: {e}; not repeated: the step already waited {:?}",
                    started.elapsed()
                );
                return Err(e);
            }
            Err(e) if e.is_transient() && attempt < retry.attempts.max(1) => {
                tracing::warn!("{what}: {e}; trying again in {pause:?} (attempt {attempt})");
                tokio::time::sleep(pause).await;
                // Doubling, but never past 8 × the first pause: a long run of faults must
                // not turn into minutes of sleep.
                pause = pause.saturating_mul(2).min(retry.pause.saturating_mul(8));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// What the engine is doing now; sent to the progress callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An operation starts on these subjects (host names), in order.
    Begin {
        /// `up` or `down`.
        operation: &'static str,
        /// Host names (or `vm <id>` when a guest has no name).
        subjects: Vec<String>,
    },
    /// A subject entered a step.
    Step {
        /// Host name.
        subject: String,
        /// The step now running.
        step: Step,
    },
    /// A subject is finished.
    Done {
        /// Host name.
        subject: String,
        /// One-line summary (`vm 5001 on pve1, 10.10.3.7`).
        summary: String,
    },
    /// A subject failed; the others go on.
    Failed {
        /// Host name.
        subject: String,
        /// What went wrong.
        message: String,
    },
    /// A lab-wide step (fence, unfence, pool) starts.
    Lab {
        /// The step.
        step: Step,
    },
}

/// The steps of `up` and `down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Creating the lab's pool.
    Prepare,
    /// Cloning from the template.
    Clone,
    /// Starting.
    Start,
    /// Waiting for the guest agent.
    WaitReady,
    /// Waiting for an address.
    WaitAddress,
    /// Fencing the lab.
    Fence,
    /// Lifting the fence.
    Unfence,
    /// Stopping.
    Stop,
    /// Destroying.
    Destroy,
    /// Removing the lab's pool.
    Release,
    /// Making or removing the students' networks (a topology lab).
    Networks,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Step::Prepare => "creating pool",
            Step::Clone => "cloning",
            Step::Start => "starting",
            Step::WaitReady => "waiting for guest agent",
            Step::WaitAddress => "waiting for address",
            Step::Fence => "fencing",
            Step::Unfence => "lifting fence",
            Step::Stop => "stopping",
            Step::Destroy => "destroying",
            Step::Release => "removing pool",
            Step::Networks => "networks",
        })
    }
}

/// The progress callback: called from the engine's task, must not block.
pub type Progress<'a> = &'a (dyn Fn(Event) + Send + Sync);

/// A callback that ignores every event.
pub fn no_progress(_: Event) {}

/// What `up` does for one student.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StudentAction {
    /// Clone it (with this planned id), fence and start it, wait for it.
    Create,
    /// It exists but is stopped (possibly left half-done by an interrupted run): complete
    /// its marks and fence, start it, wait for it.
    Start,
    /// It exists and runs: check its marks and fence, wait for it.
    Keep,
}

impl fmt::Display for StudentAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` so table columns (`{:<7}`) line up.
        f.pad(match self {
            StudentAction::Create => "create",
            StudentAction::Start => "start",
            StudentAction::Keep => "keep",
        })
    }
}

/// One student in a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStudent {
    /// Student number, from 1.
    pub number: u32,
    /// Host name.
    pub hostname: String,
    /// Existing id, or the id it would get.
    pub vmid: VmId,
    /// What happens.
    pub action: StudentAction,
    /// The template it is cloned from (the lab's, or its machine's in a topology).
    pub template: VmId,
    /// In a topology lab: the machine's role (`router`); the host name is
    /// `<student>-<role>`.
    pub role: Option<String>,
    /// In a topology lab: where its NICs are plugged.
    pub nics: Vec<crate::NicPlug>,
    /// In a topology lab: the host name of the student's machine that must be ready
    /// before this one starts.
    pub after: Option<String>,
    /// `up` waits for an address: always with one machine per student; in a topology
    /// only for a machine on the uplink or on networks with DHCP (subnets carved in a
    /// `simple` zone) — on the student's own network without DHCP, the student gives the
    /// addresses, and `up` waits for the agent only.
    pub wait_address: bool,
}

impl PlannedStudent {
    /// The student's name: the host name, or its stem before `-<role>` in a topology.
    pub fn student(&self) -> &str {
        match &self.role {
            Some(role) => self
                .hostname
                .strip_suffix(role.as_str())
                .and_then(|h| h.strip_suffix('-'))
                .unwrap_or(&self.hostname),
            None => &self.hostname,
        }
    }
}

/// What `up` would change (`--dry-run` prints it; [`apply`](crate::apply) carries it out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The lab.
    pub lab: LabName,
    /// The template.
    pub template: VmId,
    /// Linked or full.
    pub clone_mode: CloneMode,
    /// One entry per student, in order.
    pub students: Vec<PlannedStudent>,
    /// Lab guests that the spec does not name (left alone, reported).
    pub extra: Vec<GuestInfo>,
    /// Addresses the students will reach only; empty = no fence.
    pub fence: Vec<IpAddr>,
    /// A topology lab: every student network it makes sure of (created if missing).
    pub networks: Vec<crate::StudentNetwork>,
}

impl Plan {
    /// Number of guests that would be cloned.
    pub fn creates(&self) -> usize {
        self.students
            .iter()
            .filter(|s| s.action == StudentAction::Create)
            .count()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.clone_mode {
            CloneMode::Linked | CloneMode::Auto => "linked",
            CloneMode::Full => "full",
        };
        let roles: BTreeMap<&str, VmId> = self
            .students
            .iter()
            .filter_map(|s| s.role.as_deref().map(|r| (r, s.template)))
            .collect();
        if roles.is_empty() {
            writeln!(
                f,
                "lab {}: {} students from template {} ({mode} clones), pool {:?}, tag {:?}",
                self.lab,
                self.students.len(),
                self.template,
                self.lab.pool(),
                self.lab.tag()
            )?;
        } else {
            // In the order of the lab file (the first student's machines).
            let first = self.students.first().map_or(0, |s| s.number);
            let machines: Vec<String> = self
                .students
                .iter()
                .take_while(|s| s.number == first)
                .filter_map(|s| {
                    let role = s.role.as_deref()?;
                    Some(format!("{role} from {}", roles.get(role)?))
                })
                .collect();
            let count = self.students.last().map_or(0, |s| s.number);
            writeln!(
                f,
                "lab {}: {count} students with {} machines each ({}; {mode} clones), {} \
                 networks, pool {:?}, tag {:?}",
                self.lab,
                machines.len(),
                machines.join(", "),
                self.networks.len(),
                self.lab.pool(),
                self.lab.tag()
            )?;
        }
        for s in &self.students {
            let what = match s.action {
                StudentAction::Create => "clone, mark, fence, start, wait for agent and address",
                StudentAction::Start => {
                    "exists (stopped): complete marks and fence, start, wait for agent and address"
                }
                StudentAction::Keep => "exists (running): check marks and fence, wait for address",
            };
            let what = if s.wait_address {
                what.to_owned()
            } else {
                // No address to wait for: the student gives it on the student's network.
                what.replace("wait for agent and address", "wait for agent")
                    .replace(", wait for address", "")
            };
            writeln!(
                f,
                "  {:<7} vm {:<6} {:<20} {what}",
                s.action, s.vmid, s.hostname
            )?;
        }
        for g in &self.extra {
            writeln!(
                f,
                "  {:<7} vm {:<6} {:<20} lab guest not in the spec, left alone",
                "ignore",
                g.vmid,
                g.name.as_deref().unwrap_or("-")
            )?;
        }
        for n in &self.networks {
            writeln!(
                f,
                "  network vnet {:<8} {:<20} {}{} (made if missing; all in one SDN apply)",
                n.id,
                n.student,
                n.network,
                n.subnet
                    .map_or_else(String::new, |(a, p)| format!(" {a}/{p}"))
            )?;
        }
        if self.fence.is_empty() {
            writeln!(
                f,
                "  fence: not put up or changed (no teacher address given)"
            )?;
        } else {
            let allowed: Vec<String> = self.fence.iter().map(ToString::to_string).collect();
            writeln!(
                f,
                "  fence: students reach only {} and not each other",
                allowed.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Computes what `up` would do, from the spec and the cluster's current guests.
///
/// Students whose host name matches an owned lab guest are kept (or started); the rest
/// get the lowest ids in the spec's range that no guest uses.
pub fn plan(spec: &LabSpec, current: &[GuestInfo]) -> Result<Plan> {
    spec.validate()?;
    check_template(
        current,
        spec.template,
        spec.topology.as_ref().map(|t| t.machines[0].role.as_str()),
    )?;
    let lab = &spec.name;
    let members: Vec<&GuestInfo> = current.iter().filter(|g| g.is_owned_by(lab)).collect();
    let by_name: BTreeMap<&str, &GuestInfo> = members
        .iter()
        .filter_map(|g| g.name.as_deref().map(|n| (n, *g)))
        .collect();
    let used: BTreeSet<VmId> = current.iter().map(|g| g.vmid).collect();
    let guests = planned_guests(spec);
    for (_, template, role, _, _, _) in &guests {
        if *template != spec.template {
            check_template(current, *template, role.as_deref())?;
        }
    }
    // A topology lab gives each student a block of ids (see `Topology::block`); an id of
    // the block that is taken falls back to the lowest free id no block asks for.
    let preferred: Vec<Option<VmId>> = match &spec.topology {
        Some(t) => {
            let block = t.block(spec.count, spec.ids.len());
            let per = t.machines.len();
            (0..guests.len())
                .map(|i| {
                    let (n, k) = (i / per, i % per);
                    VmId::new(spec.ids.first().get() + n as u32 * block + k as u32)
                        .ok()
                        .filter(|id| spec.ids.contains(*id) && !used.contains(id))
                })
                .collect()
        }
        None => vec![None; guests.len()],
    };
    let asked: BTreeSet<VmId> = preferred.iter().flatten().copied().collect();
    let mut free = spec
        .ids
        .iter()
        .filter(|id| !used.contains(id) && !asked.contains(id));
    let mut students = Vec::with_capacity(guests.len());
    for (i, (hostname, template, role, nics, after, wait_address)) in guests.iter().enumerate() {
        let per = spec.topology.as_ref().map_or(1, |t| t.machines.len());
        let number = u32::try_from(i / per + 1).expect("count is at most MAX_STUDENTS");
        let (vmid, action) = match by_name.get(hostname.as_str()) {
            Some(g) if g.status.is_running() => (g.vmid, StudentAction::Keep),
            Some(g) => (g.vmid, StudentAction::Start),
            None => {
                let id = preferred[i].or_else(|| free.next()).ok_or_else(|| {
                    Error::invalid(
                        "id range",
                        spec.ids.to_string(),
                        format!(
                            "not enough free ids: {} guests need new ids, the range has \
                             fewer unused ids; widen it with --ids",
                            guests.len() - i
                        ),
                    )
                })?;
                (id, StudentAction::Create)
            }
        };
        students.push(PlannedStudent {
            number,
            hostname: hostname.clone(),
            vmid,
            action,
            template: *template,
            role: role.clone(),
            nics: nics.clone(),
            after: after.clone(),
            wait_address: *wait_address,
        });
    }
    let wanted: BTreeSet<&str> = guests.iter().map(|g| g.0.as_str()).collect();
    let extra = members
        .into_iter()
        .filter(|g| !g.name.as_deref().is_some_and(|n| wanted.contains(n)))
        .cloned()
        .collect();
    Ok(Plan {
        lab: lab.clone(),
        template: spec.template,
        clone_mode: spec.clone_mode,
        students,
        extra,
        fence: spec.teachers.clone(),
        networks: student_networks(spec),
    })
}

/// `template` is listed and is a template.
fn check_template(current: &[GuestInfo], template: VmId, role: Option<&str>) -> Result<()> {
    let of = role.map_or_else(String::new, |r| format!(" (machine {r})"));
    let listed = current
        .iter()
        .find(|g| g.vmid == template)
        .ok_or_else(|| Error::NotFound {
            what: format!("template {template}{of}"),
        })?;
    if !listed.template {
        return Err(Error::invalid(
            "template",
            template.to_string(),
            format!(
                "VM {template}{of} ({}) is not a template; convert it first or pick a template",
                listed.name.as_deref().unwrap_or("no name")
            ),
        ));
    }
    Ok(())
}

/// Every guest the spec asks for, student by student (and machine by machine in a
/// topology): host name, template, role, NIC plugs.
type PlannedGuest = (
    String,
    VmId,
    Option<String>,
    Vec<crate::NicPlug>,
    Option<String>,
    bool,
);

fn planned_guests(spec: &LabSpec) -> Vec<PlannedGuest> {
    let students = spec.hostnames();
    let Some(t) = &spec.topology else {
        return students
            .into_iter()
            .map(|h| (h, spec.template, None, Vec::new(), None, true))
            .collect();
    };
    let mut out = Vec::with_capacity(students.len() * t.machines.len());
    let dhcp = t.plan.subnets.is_some() && t.plan.kind == crate::ZoneKind::Simple;
    for (i, student) in students.iter().enumerate() {
        let number = u32::try_from(i + 1).expect("count is at most MAX_STUDENTS");
        for m in &t.machines {
            let nics = m
                .nics
                .iter()
                .enumerate()
                .map(|(index, nic)| crate::NicPlug {
                    index: index as u32,
                    bridge: match nic {
                        crate::NicSpec::Uplink => None,
                        crate::NicSpec::Network(n) => {
                            let k = t.networks.iter().position(|x| x == n).unwrap_or(0);
                            Some(crate::vnet_id(&spec.name, number, k))
                        }
                    },
                })
                .collect();
            out.push((
                format!("{student}-{}", m.role),
                m.template,
                Some(m.role.clone()),
                nics,
                m.after.as_ref().map(|a| format!("{student}-{a}")),
                m.has_uplink() || dhcp,
            ));
        }
    }
    out
}

/// The networks a topology lab wants, student by student.
pub fn student_networks(spec: &LabSpec) -> Vec<crate::StudentNetwork> {
    let Some(t) = &spec.topology else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, student) in spec.hostnames().iter().enumerate() {
        let number = u32::try_from(i + 1).expect("count is at most MAX_STUDENTS");
        for (k, network) in t.networks.iter().enumerate() {
            out.push(crate::StudentNetwork {
                id: crate::vnet_id(&spec.name, number, k),
                student: student.clone(),
                network: network.clone(),
                subnet: t.subnet(number, k),
            });
        }
    }
    out
}

/// Lists the cluster and plans `up` (what `--dry-run` shows).
pub async fn plan_up(hv: &dyn Hypervisor, spec: &LabSpec) -> Result<Plan> {
    Ok(survey(hv, spec).await?.0)
}

/// Lists the cluster and the lab's members and plans `up`; also answers the listing.
pub(crate) async fn survey(hv: &dyn Hypervisor, spec: &LabSpec) -> Result<(Plan, Vec<GuestInfo>)> {
    spec.validate()?;
    let retry = &spec.timeouts.retry;
    retrying(retry, "clones in flight", || {
        hv.quiesce(spec.topology.is_none().then_some(spec.template))
    })
    .await?;
    let mut current = retrying(retry, "guest list", || hv.list_guests()).await?;
    // The lab's members come with what the plain listing lacks (the clone marker of a guest
    // whose run died before tagging it), so an interrupted run's clones are adopted.
    let members = retrying(retry, "lab members", || hv.lab_members(&spec.name)).await?;
    for m in members {
        match current.iter_mut().find(|g| g.vmid == m.vmid) {
            Some(g) => *g = m,
            None => current.push(m),
        }
    }
    Ok((plan(spec, &current)?, current))
}

/// What [`apply`](crate::apply) achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabReport {
    /// The lab.
    pub lab: LabName,
    /// The plan that was carried out.
    pub plan: Plan,
    /// Every student, ready, with its address, in student order.
    pub students: Vec<StudentStatus>,
    /// Whether the fence was put up.
    pub fenced: bool,
}

/// What `down` would do: the guests it destroys and the lab guests it refuses to touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeardownPlan {
    /// The lab.
    pub lab: LabName,
    /// Unfenced, stopped and destroyed, in id order.
    pub destroy: Vec<GuestInfo>,
    /// Listed as the lab's but not provably owned (template, no tag, …): left alone.
    pub skipped: Vec<(GuestInfo, String)>,
    /// The lab's networks (vnets whose alias names the lab), removed after the guests
    /// with one apply; empty for a lab without them or a backend without networks.
    pub networks: Vec<crate::NetworkInfo>,
}

impl fmt::Display for TeardownPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // [`teardown`] removes the pool only when nothing foreign is left in it.
        let pool = if self.skipped.is_empty() {
            format!("remove pool {:?}", self.lab.pool())
        } else {
            format!(
                "keep pool {:?} (it holds guests that are not the lab's)",
                self.lab.pool()
            )
        };
        if self.destroy.is_empty() {
            writeln!(f, "lab {}: no guests to destroy; {pool}", self.lab)?;
        } else {
            writeln!(
                f,
                "lab {}: stop and destroy {} guests, lift the lab's fence, then {pool}",
                self.lab,
                self.destroy.len(),
            )?;
        }
        for g in &self.destroy {
            writeln!(
                f,
                "  destroy vm {:<6} {:<20} on {} ({})",
                g.vmid,
                g.name.as_deref().unwrap_or("-"),
                g.node,
                g.status
            )?;
        }
        for (g, why) in &self.skipped {
            writeln!(
                f,
                "  keep    vm {:<6} {:<20} not the lab's: {why}",
                g.vmid,
                g.name.as_deref().unwrap_or("-")
            )?;
        }
        if !self.networks.is_empty() {
            let what = if self.skipped.is_empty() {
                "remove (subnets, vnet, then one SDN apply)"
            } else {
                "keep (guests that are not the lab's may use them)"
            };
            writeln!(f, "  networks: {what}")?;
            for n in &self.networks {
                writeln!(
                    f,
                    "    vnet {:<8} zone {:<8} {} {}{}",
                    n.id,
                    n.zone,
                    n.student,
                    n.network,
                    n.subnet
                        .as_deref()
                        .map_or_else(String::new, |s| format!(" {s}"))
                )?;
            }
        }
        Ok(())
    }
}

/// Splits the listed members into provably owned guests and the rest.
pub fn plan_teardown(lab: &LabName, members: Vec<GuestInfo>) -> TeardownPlan {
    let mut destroy = Vec::new();
    let mut skipped = Vec::new();
    for g in members {
        match g.ownership_problem(lab) {
            None => destroy.push(g),
            Some(why) => skipped.push((g, why)),
        }
    }
    destroy.sort_by_key(|g| g.vmid);
    TeardownPlan {
        lab: lab.clone(),
        destroy,
        skipped,
        networks: Vec::new(),
    }
}

/// Lists the lab and plans `down` (what `--dry-run` shows).
pub async fn plan_down(hv: &dyn Hypervisor, lab: &LabName) -> Result<TeardownPlan> {
    hv.quiesce(None).await?;
    let mut plan = plan_teardown(lab, hv.lab_members(lab).await?);
    plan.networks = lab_networks(hv, lab).await?;
    Ok(plan)
}

/// The lab's networks; none on a backend without them.
pub(crate) async fn lab_networks(
    hv: &dyn Hypervisor,
    lab: &LabName,
) -> Result<Vec<crate::NetworkInfo>> {
    match hv.lab_networks(lab).await {
        Err(Error::Unsupported { .. }) => Ok(Vec::new()),
        other => other,
    }
}

/// Settings of [`teardown`](crate::teardown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownOptions {
    /// Guests stopped and destroyed at the same time, 1..=[`MAX_CONCURRENCY`](crate::MAX_CONCURRENCY)
    /// (the backend limits in-flight writes per node on its own).
    pub concurrency: usize,
    /// Repeats of idempotent steps (listing, lifting the fence, removing the pool) that
    /// failed transiently.
    pub retry: Retry,
}

impl DownOptions {
    /// `concurrency` at once, default retries.
    pub fn new(concurrency: usize) -> Self {
        Self {
            concurrency,
            retry: Retry::default(),
        }
    }
}

#[cfg(test)]
mod retry_tests {
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    use std::time::Duration;

    use super::*;

    fn busy() -> Error {
        crate::test_spec::watchdog();
        Error::Busy {
            what: "VM 5001".into(),
            message: "VM is locked (backup)".into(),
        }
    }

    /// Runs a retry loop under an hour of (paused, so instant) time: a loop that never
    /// stops, or one that never waits, fails here naming what it was doing instead of
    /// hanging the test run.
    async fn within_an_hour<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
        crate::test_spec::guarded(what, Duration::from_secs(3600), f).await
    }

    #[tokio::test(start_paused = true)]
    async fn quick_transient_failures_are_repeated_up_to_the_attempts() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let e = within_an_hour(
            "a step failing with a transient error",
            retrying(&Retry::default(), "fence", || async {
                calls.fetch_add(1, SeqCst);
                Err::<(), _>(busy())
            }),
        )
        .await
        .unwrap_err();
        // 2 s, 4 s, 8 s between the four attempts.
        assert_eq!(started.elapsed(), Duration::from_secs(14));
        assert!(e.is_transient());
        assert_eq!(calls.load(SeqCst), Retry::default().attempts);
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_is_returned_at_once_without_a_pause() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let e = within_an_hour(
            "a step failing with a permanent error",
            retrying(&Retry::default(), "destroy", || async {
                calls.fetch_add(1, SeqCst);
                Err::<(), _>(Error::NotFound {
                    what: "VM 5001".into(),
                })
            }),
        )
        .await
        .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert_eq!(calls.load(SeqCst), 1);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_that_recovers_returns_its_value_after_the_pauses() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let got = within_an_hour(
            "a step that succeeds on its third try",
            retrying(&Retry::default(), "start", || async {
                if calls.fetch_add(1, SeqCst) < 2 {
                    Err(busy())
                } else {
                    Ok(7)
                }
            }),
        )
        .await
        .unwrap();
        assert_eq!((got, calls.load(SeqCst)), (7, 3));
        // 2 s after the first failure, 4 s after the second.
        assert_eq!(started.elapsed(), Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_double_but_never_past_eight_times_the_first() {
        let retry = Retry {
            attempts: 7,
            ..Retry::default()
        };
        let started = tokio::time::Instant::now();
        within_an_hour(
            "seven transient failures",
            retrying(&retry, "fence", || async { Err::<(), _>(busy()) }),
        )
        .await
        .unwrap_err();
        // 2 + 4 + 8 + 16 + 16 + 16 s.
        assert_eq!(started.elapsed(), Duration::from_secs(62));
    }

    #[tokio::test(start_paused = true)]
    async fn no_attempts_still_means_one_try() {
        let calls = AtomicU32::new(0);
        let retry = Retry {
            attempts: 0,
            ..Retry::default()
        };
        within_an_hour(
            "a step with zero attempts",
            retrying(&retry, "fence", || async {
                calls.fetch_add(1, SeqCst);
                Err::<(), _>(busy())
            }),
        )
        .await
        .unwrap_err();
        assert_eq!(calls.load(SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_that_already_waited_long_is_not_repeated() {
        let calls = AtomicU32::new(0);
        let retry = Retry::default();
        let e = retrying(&retry, "fence", || async {
            calls.fetch_add(1, SeqCst);
            // The backend waited out its own lock retries before giving up.
            tokio::time::sleep(retry.long_step + Duration::from_secs(1)).await;
            Err::<(), _>(busy())
        })
        .await
        .unwrap_err();
        assert!(e.is_transient());
        assert_eq!(calls.load(SeqCst), 1);
    }
}
