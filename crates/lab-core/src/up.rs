//! `up`: the staged engine. Every student moves through states the cluster shows
//! (planned → cloned with marks → secured (tag, fence) → started → ready → addressed);
//! each transition is idempotent, so an interrupted run is resumed by running it again.
//!
//! Stages have their own limits instead of one worker pool: clones wait for a slot of the
//! capacity the backend declares (per source node and storage), a guest is secured and
//! started the moment its clone is done, and waits for agents and addresses hold no slot
//! at all: each student's probes run on a shared, learned schedule.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;

use crate::engine::{
    retrying, survey, Event, LabReport, PlannedStudent, Progress, Step, StudentAction,
};
use crate::error::{Error, Failure, Result};
use crate::hypervisor::{CloneRequest, CloneSource, Hypervisor, PlacementView, Secure};
use crate::placement::{place_plan, PlacementPlan};
use crate::spec::{LabSpec, Retry, Timeouts};
use crate::types::{GuestInfo, LabName, NodeName, StudentStatus, VmId, VmStatus};

/// A request to stop an operation early (Ctrl-C, SIGTERM). Cheap to clone; every clone
/// sees the same signal.
///
/// After [`Interrupt::trigger`] the engine starts no new step: requests and clone tasks in
/// flight settle, waits end at once, and the operation answers [`Error::Interrupted`]
/// with what was finished. The cluster then shows every student where it stopped, so the
/// same command resumes.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<InterruptInner>);

#[derive(Debug, Default)]
struct InterruptInner {
    set: AtomicBool,
    notify: Notify,
}

impl Interrupt {
    /// A signal that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the signal (idempotent).
    pub fn trigger(&self) {
        self.0.set.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// `true` once fired.
    pub fn is_triggered(&self) -> bool {
        self.0.set.load(Ordering::SeqCst)
    }

    /// Resolves once the signal fires.
    pub async fn triggered(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }
}

/// Brings the lab up; see [`apply_with`]. Never interrupted.
pub async fn apply(
    hv: &dyn Hypervisor,
    spec: &LabSpec,
    progress: Progress<'_>,
) -> Result<LabReport> {
    apply_with(hv, spec, progress, &Interrupt::new()).await
}

/// Brings the lab up: plans from what the cluster shows, creates the pool, puts up the
/// lab-wide fence while the first clones run, then per student — all at once, limited
/// only by the backend's clone capacity ([`CloneCapacity`](crate::CloneCapacity): its
/// slots plus the clones that may queue for them) — clones (the clone request carries the lab's
/// marks), tags and fences it, starts it, and probes it until it is ready and has an
/// address. With teachers given, no student ever runs without its fence.
///
/// Students that exist already (kept from an earlier or an interrupted run: in the lab's
/// pool with its tag or clone marker) are adopted: their marks and fence are completed and
/// they are started. Each student retries transient failures within its own budget
/// ([`Retry::per_guest`]); if some fail, the others still come up and
/// [`Error::Incomplete`] names each failed student and step; running `apply` again
/// completes the lab. `interrupt` stops it early ([`Error::Interrupted`]).
pub async fn apply_with(
    hv: &dyn Hypervisor,
    spec: &LabSpec,
    progress: Progress<'_>,
    interrupt: &Interrupt,
) -> Result<LabReport> {
    let (plan, listed) = survey(hv, spec).await?;
    let lab = &spec.name;
    let retry = &spec.timeouts.retry;
    progress(Event::Begin {
        operation: "up",
        subjects: plan.students.iter().map(|s| s.hostname.clone()).collect(),
    });
    // Where the new students land, read and checked before anything is created: a class
    // that does not fit the nodes' memory is refused here unless `overcommit`.
    // A topology lab is cloned where its templates are: a student's machines share one
    // node (a `simple` zone's vnets are node-local).
    let (clones, placed) = if plan.creates() > 0 && spec.topology.is_some() {
        let capacity = retrying(retry, "clone capacity", || {
            hv.clone_capacity(spec.template, spec.clone_mode)
        })
        .await?;
        (capacity.slots.max(1) + capacity.queue, None)
    } else if plan.creates() > 0 {
        match retrying(retry, "placement", || {
            hv.placement(spec.template, spec.clone_mode)
        })
        .await
        {
            Ok(view) => {
                let placed = Placed::plan(spec, &plan, &listed, view)?;
                tracing::debug!(nodes = placed.plan.nodes.len(), "placement");
                (1, Some(placed))
            }
            Err(Error::Unsupported { .. }) if spec.nodes.is_empty() => {
                let capacity = retrying(retry, "clone capacity", || {
                    hv.clone_capacity(spec.template, spec.clone_mode)
                })
                .await?;
                tracing::debug!(key = %capacity.key, slots = capacity.slots, queue = capacity.queue, "clone capacity");
                (capacity.slots.max(1) + capacity.queue, None)
            }
            Err(e) => return Err(e),
        }
    } else {
        (1, None)
    };
    progress(Event::Lab {
        step: Step::Prepare,
    });
    retrying(retry, "pool", || hv.prepare_lab(lab)).await?;
    // Ids for clones whose planned id turned out taken: the range's free ids that no
    // student was planned on, lowest first.
    let planned: Vec<VmId> = plan.students.iter().map(|s| s.vmid).collect();
    let spare: VecDeque<VmId> = spec
        .ids
        .iter()
        .filter(|id| !planned.contains(id))
        .filter(|id| *id != spec.template)
        .collect();
    let run = Run {
        hv,
        spec,
        progress,
        interrupt,
        clone_slots: Semaphore::new(clones),
        placed,
        spare: Mutex::new(spare),
        schedule: Schedule::new(spec.timeouts),
        fence: watch::channel(None).0,
        done: watch::channel(BTreeMap::new()).0,
        listed,
    };
    let fence_wanted = !spec.teachers.is_empty();
    // What every student waits for before its marks and fence: the lab-wide fence and, in
    // a topology, the students' networks (created pending and applied once).
    let fence_driver = async {
        let fence = async {
            if !fence_wanted {
                return Ok(());
            }
            progress(Event::Lab { step: Step::Fence });
            retrying(retry, "lab fence", || {
                hv.prepare_fence(lab, spec.teachers.clone())
            })
            .await
            .map_err(|e| format!("the lab-wide fence could not be put up: {e}"))
        };
        let networks = async {
            let Some(t) = &spec.topology else {
                return Ok(());
            };
            let wanted = crate::engine::student_networks(spec);
            retrying(retry, "networks", || {
                hv.ensure_networks(lab, &t.plan, wanted.clone())
            })
            .await
            .map(drop)
            .map_err(|e| format!("the students' networks could not be made: {e}"))
        };
        let (f, n) = tokio::join!(fence, networks);
        run.fence.send_replace(Some(f.and(n)));
    };
    let students = join_all(plan.students.iter().map(|s| run.student(s)));
    let ((), results) = tokio::join!(fence_driver, students);

    let mut ready = Vec::new();
    let mut failures = Vec::new();
    let mut unfinished = Vec::new();
    let mut blocked = Vec::new();
    for (s, r) in plan.students.iter().zip(results) {
        match r {
            Outcome::Ready(st) => ready.push(st),
            Outcome::Blocked => blocked.push(s.hostname.clone()),
            Outcome::Failed(step, e) => failures.push(Failure {
                subject: s.hostname.clone(),
                message: match run
                    .placed
                    .as_ref()
                    .and_then(|p| p.lost_node_of(&s.hostname))
                {
                    Some(node) => format!("{step} on node {node}, which went offline: {e}"),
                    None => format!("{step}: {e}"),
                },
            }),
            Outcome::Stopped(at) => unfinished.push(Failure {
                subject: s.hostname.clone(),
                message: at,
            }),
            Outcome::Held(why) => failures.push(Failure {
                subject: s.hostname.clone(),
                message: why,
            }),
        }
    }
    if let Some(Err(e)) = run.fence.borrow().clone() {
        // One cause, said once: the students that waited for it are summed up after it.
        let mut message = e;
        if !blocked.is_empty() {
            message.push_str(&format!(
                "; so {} {} were cloned and marked but not started ({}); run the same command again",
                blocked.len(),
                if spec.topology.is_some() {
                    "machine(s)"
                } else {
                    "student(s)"
                },
                name_some(&blocked)
            ));
        }
        failures.insert(
            0,
            Failure {
                subject: if spec.topology.is_some() {
                    "fence and networks"
                } else {
                    "fence"
                }
                .to_owned(),
                message,
            },
        );
    }
    if interrupt.is_triggered() && !unfinished.is_empty() {
        unfinished.extend(failures);
        return Err(Error::Interrupted {
            operation: "up",
            lab: lab.to_string(),
            finished: ready.iter().map(|s| s.hostname.clone()).collect(),
            unfinished,
            total: plan.students.len(),
        });
    }
    if !failures.is_empty() {
        return Err(Error::Incomplete {
            operation: "up",
            lab: lab.to_string(),
            failures,
        });
    }
    Ok(LabReport {
        lab: lab.clone(),
        plan,
        students: ready,
        fenced: fence_wanted,
    })
}

/// Up to three names, then how many more.
fn name_some(names: &[String]) -> String {
    let shown = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    match names.len() {
        0..=3 => shown,
        n => format!("{shown} and {} more", n - 3),
    }
}

/// How one student's run ended.
enum Outcome {
    Ready(StudentStatus),
    /// Cloned and marked, not started: the lab-wide fence it needs failed (reported once
    /// for the lab, not per student).
    Blocked,
    /// The step that failed and why.
    Failed(Step, Error),
    /// Interrupted; where the student stands.
    Stopped(String),
    /// Not started: the machine it starts after did not come up (why).
    Held(String),
}

/// What every student of one `up` run shares.
struct Run<'a> {
    hv: &'a dyn Hypervisor,
    spec: &'a LabSpec,
    progress: Progress<'a>,
    interrupt: &'a Interrupt,
    clone_slots: Semaphore,
    /// Where new students land, with the backend's [`Placement`](crate::Placement).
    placed: Option<Placed>,
    spare: Mutex<VecDeque<VmId>>,
    schedule: Schedule,
    /// The lab-wide fence: `None` while it is being put up.
    fence: watch::Sender<Option<std::result::Result<(), String>>>,
    /// Guests whose run ended, by host name: ready or not (for a machine that starts
    /// after another of its student).
    done: watch::Sender<BTreeMap<String, bool>>,
    /// The cluster as planned from (marks a fresh read may not carry).
    listed: Vec<GuestInfo>,
}

/// A student's retry budget over all its steps.
struct Budget {
    left: u32,
    retry: Retry,
}

impl Budget {
    /// Runs `op` again after transient failures while the budget lasts; a failure after
    /// the step already ran [`Retry::long_step`] is final.
    async fn run<T, F, Fut>(&mut self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut pause = self.retry.pause;
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            match op(attempt).await {
                Err(e)
                    if e.is_transient()
                        && self.left > 0
                        && started.elapsed() < self.retry.long_step =>
                {
                    self.left -= 1;
                    tracing::warn!("{what}: {e}; trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = pause
                        .saturating_mul(2)
                        .min(self.retry.pause.saturating_mul(8));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

impl Run<'_> {
    fn step(&self, s: &PlannedStudent, step: Step) {
        (self.progress)(Event::Step {
            subject: s.hostname.clone(),
            step,
        });
    }

    async fn student(&self, s: &PlannedStudent) -> Outcome {
        let outcome = self.bring_up(s).await;
        let ready = matches!(outcome, Outcome::Ready(_));
        self.done.send_modify(|m| {
            m.insert(s.hostname.clone(), ready);
        });
        match &outcome {
            Outcome::Ready(st) => (self.progress)(Event::Done {
                subject: s.hostname.clone(),
                summary: format!(
                    "vm {} on {}, {}",
                    st.vmid,
                    st.node,
                    st.primary_address()
                        .map_or_else(|| "no address".to_owned(), |a| a.to_string())
                ),
            }),
            Outcome::Failed(step, e) => (self.progress)(Event::Failed {
                subject: s.hostname.clone(),
                message: format!("{step}: {e}"),
            }),
            Outcome::Blocked => (self.progress)(Event::Failed {
                subject: s.hostname.clone(),
                message: if self.spec.topology.is_some() {
                    "not started: the lab-wide fence or the students' networks are missing"
                } else {
                    "not started: the lab-wide fence is missing"
                }
                .to_owned(),
            }),
            Outcome::Held(why) => (self.progress)(Event::Failed {
                subject: s.hostname.clone(),
                message: why.clone(),
            }),
            Outcome::Stopped(_) => {}
        }
        outcome
    }

    async fn bring_up(&self, s: &PlannedStudent) -> Outcome {
        let hv = self.hv;
        let spec = self.spec;
        let lab = &spec.name;
        let mut budget = Budget {
            left: spec.timeouts.retry.per_guest,
            retry: spec.timeouts.retry,
        };
        // 1. The guest: cloned now (with its marks), or the one the cluster has.
        let (guest, fresh) = if s.action == StudentAction::Create {
            match &self.placed {
                Some(placed) => match self.clone_placed(placed, s, &mut budget).await {
                    Ok(g) => (g, true),
                    Err(outcome) => return outcome,
                },
                None => {
                    let permit = tokio::select! {
                        p = self.clone_slots.acquire() => p,
                        () = self.interrupt.triggered() => return Outcome::Stopped("not cloned".into()),
                    };
                    if self.interrupt.is_triggered() {
                        return Outcome::Stopped("not cloned".into());
                    }
                    self.step(s, Step::Clone);
                    let cloned = self.clone(s, &mut budget, None).await;
                    drop(permit);
                    match cloned {
                        Ok(g) => (g, true),
                        Err(e) => return Outcome::Failed(Step::Clone, e),
                    }
                }
            }
        } else {
            match budget.run("guest", |_| hv.guest(s.vmid)).await {
                Ok(mut g) => {
                    if let Some(l) = self.listed.iter().find(|l| l.vmid == g.vmid) {
                        if g.pool.is_none() {
                            g.pool.clone_from(&l.pool);
                        }
                        if g.description.is_none() {
                            g.description.clone_from(&l.description);
                        }
                    }
                    (g, false)
                }
                Err(e) => return Outcome::Failed(Step::Clone, e),
            }
        };
        if let Some(problem) = guest.ownership_problem(lab) {
            // A backend that does not mark its clones would make teardown impossible.
            return Outcome::Failed(
                Step::Clone,
                Error::NotOwned {
                    vmid: guest.vmid,
                    reason: format!("the guest is not marked as the lab's: {problem}"),
                },
            );
        }
        let vmid = guest.vmid;
        if self.interrupt.is_triggered() {
            return Outcome::Stopped(format!("vm {vmid}: cloned and marked, not started"));
        }
        // 2. Marks and fence, before it first runs.
        let fence = !spec.teachers.is_empty();
        if fence || spec.topology.is_some() {
            self.step(s, Step::Fence);
            let mut rx = self.fence.subscribe();
            let lab_fence = tokio::select! {
                r = rx.wait_for(Option::is_some) => r.ok().and_then(|v| v.clone()),
                () = self.interrupt.triggered() => {
                    return Outcome::Stopped(format!("vm {vmid}: cloned and marked, not fenced"));
                }
            };
            if let Some(Err(_)) = lab_fence {
                return Outcome::Blocked;
            }
        }
        let secured = budget
            .run("marks and fence", |attempt| {
                hv.secure(
                    guest.clone(),
                    Secure {
                        lab: lab.clone(),
                        // A repeat must not trust what the first try may have changed.
                        fresh: fresh && attempt == 0,
                        fence,
                        nics: s.nics.clone(),
                    },
                )
            })
            .await;
        if let Err(e) = secured {
            return Outcome::Failed(Step::Fence, e);
        }
        if self.interrupt.is_triggered() {
            return Outcome::Stopped(format!("vm {vmid}: marked and fenced, not started"));
        }
        // 3. Start, unless it runs; after the machine it needs, if any (waiting here
        // holds no clone slot).
        if let Some(after) = &s.after {
            let mut rx = self.done.subscribe();
            let dep = tokio::select! {
                r = rx.wait_for(|m| m.contains_key(after)) => r.ok().and_then(|m| m.get(after).copied()),
                () = self.interrupt.triggered() => {
                    return Outcome::Stopped(format!("vm {vmid}: fenced, not started (waits for {after})"));
                }
            };
            if dep != Some(true) {
                return Outcome::Held(format!(
                    "marked and fenced, not started: it starts after {after}, which did not come up"
                ));
            }
        }
        let started_at = Instant::now();
        if !guest.status.is_running() {
            self.step(s, Step::Start);
            if let Err(e) = budget.run("start", |_| hv.start(vmid)).await {
                return Outcome::Failed(Step::Start, e);
            }
        }
        // 4. Ready and addressed, on the shared schedule.
        self.step(s, Step::WaitReady);
        let known = guest.status.is_running() && !fresh;
        match self
            .await_address(s, vmid, started_at, known, &mut budget)
            .await
        {
            Ok(addresses) => Outcome::Ready(StudentStatus {
                vmid,
                hostname: guest.name.clone().unwrap_or_else(|| s.hostname.clone()),
                node: guest.node.clone(),
                status: VmStatus::Running,
                addresses,
                fenced: fence.then_some(true),
            }),
            Err(Waited::Stopped) => {
                Outcome::Stopped(format!("vm {vmid}: fenced and started, not yet ready"))
            }
            Err(Waited::Failed(step, e)) => Outcome::Failed(step, e),
        }
    }

    /// Clones the student, moving to a spare id when its id turns out taken.
    async fn clone(
        &self,
        s: &PlannedStudent,
        budget: &mut Budget,
        source: Option<CloneSource>,
    ) -> Result<GuestInfo> {
        let spec = self.spec;
        let mut vmid = s.vmid;
        loop {
            let request = CloneRequest {
                template: s.template,
                vmid,
                last_id: vmid,
                hostname: s.hostname.clone(),
                mode: spec.clone_mode,
                lab: spec.name.clone(),
                source: source.clone(),
            };
            match budget
                .run("clone", |_| self.hv.clone_guest(request.clone()))
                .await
            {
                Err(Error::AlreadyExists { what }) => {
                    let next = self
                        .spare
                        .lock()
                        .map_err(|_| Error::invalid("id range", spec.ids.to_string(), "poisoned"))?
                        .pop_front();
                    let Some(next) = next else {
                        return Err(Error::invalid(
                            "id range",
                            spec.ids.to_string(),
                            format!("{what}, and no free id is left in the range; widen it"),
                        ));
                    };
                    tracing::info!(student = %s.hostname, taken = %vmid, next = %next, "id taken; moving");
                    vmid = next;
                }
                other => return other,
            }
        }
    }

    /// Probes the guest on the shared schedule until it reports an address.
    async fn await_address(
        &self,
        s: &PlannedStudent,
        vmid: VmId,
        started_at: Instant,
        known: bool,
        budget: &mut Budget,
    ) -> std::result::Result<Vec<IpAddr>, Waited> {
        let timeouts = self.spec.timeouts;
        let mut ready_at: Option<Instant> = None;
        let mut gap = self.schedule.first_gap();
        // A guest that ran before this run started is looked at at once.
        let mut explorer: Option<Explore> = None;
        let mut next_look = if known { Some(Duration::ZERO) } else { None };
        loop {
            // When to look: a guest that ran before this run is looked at at once; the
            // others follow the learned schedule, or wait while another guest explores.
            let look = match next_look.take() {
                Some(at) => at,
                None => match self.schedule.look(Instant::now() - started_at, gap) {
                    Look::At(at, token) => {
                        explorer = token;
                        at
                    }
                    Look::Hold => {
                        let changed = self.schedule.changed.notified();
                        tokio::select! {
                            () = changed => {}
                            () = tokio::time::sleep(self.schedule.max_gap()) => {}
                            () = self.interrupt.triggered() => return Err(Waited::Stopped),
                        }
                        continue;
                    }
                },
            };
            tokio::select! {
                () = tokio::time::sleep_until(started_at + look) => {}
                () = self.interrupt.triggered() => {
                    if let Some(e) = explorer.take() {
                        self.schedule.explored(e);
                    }
                    return Err(Waited::Stopped);
                }
            }
            let sent = Instant::now();
            let elapsed = sent - started_at;
            let probed = self.hv.probe(vmid).await;
            let explored = explorer.take();
            match probed {
                Ok(p) => {
                    if p.ready && ready_at.is_none() {
                        ready_at = Some(sent);
                        self.step(s, Step::WaitAddress);
                    }
                    if !p.addresses.is_empty() {
                        if !known {
                            self.schedule.addressed(elapsed);
                        }
                        if let Some(e) = explored {
                            self.schedule.explored(e);
                        }
                        return Ok(p.addresses);
                    }
                    if p.ready && !s.wait_address {
                        // On the student's own network without DHCP: the agent is all
                        // there is to wait for. A look that explored the schedule hands
                        // its turn back, or the guests behind it would wait for it forever.
                        if let Some(e) = explored {
                            self.schedule.explored(e);
                        }
                        return Ok(Vec::new());
                    }
                    if !known {
                        self.schedule.not_yet(elapsed);
                    }
                }
                Err(e) if e.is_transient() && budget.left > 0 => {
                    budget.left -= 1;
                    tracing::debug!(%vmid, error = %e, "probe failed; will look again");
                }
                Err(e) => {
                    if let Some(x) = explored {
                        self.schedule.explored(x);
                    }
                    let step = if ready_at.is_some() {
                        Step::WaitAddress
                    } else {
                        Step::WaitReady
                    };
                    return Err(Waited::Failed(step, e));
                }
            }
            if let Some(e) = explored {
                self.schedule.explored(e);
            }
            let now = Instant::now();
            match ready_at {
                None if now - started_at >= timeouts.ready => {
                    return Err(Waited::Failed(
                        Step::WaitReady,
                        Error::Timeout {
                            what: format!("VM {vmid} to be ready (its guest agent)"),
                            after: timeouts.ready,
                        },
                    ))
                }
                Some(r) if now - r >= timeouts.address => {
                    return Err(Waited::Failed(
                        Step::WaitAddress,
                        Error::Timeout {
                            what: format!("an address of VM {vmid}"),
                            after: timeouts.address,
                        },
                    ))
                }
                _ => {}
            }
            if known {
                // It ran before this run: nothing to learn from it or for it; cheap looks
                // at a growing gap. A guest started by this run, ready or not, follows the
                // shared schedule: once one guest had its address, the others are looked
                // at when it had it, so a class waiting for a slow DHCP server costs about
                // two looks per guest instead of one per growing gap (issue 24 found it).
                next_look = Some(now - started_at + gap);
            }
            gap = gap.mul_f64(1.5).min(self.schedule.max_gap());
        }
    }
}

/// Why a wait ended without an address.
enum Waited {
    Stopped,
    Failed(Step, Error),
}

/// When to look at started guests: learned from every probe of this run. The time from
/// a guest's start to its first address is bracketed by the latest look that saw none
/// (`lo`) and the earliest that saw one (`hi`); later guests are looked at when the first
/// guests had theirs, so most guests need one probe. While no guest has an address yet,
/// or while the bracket is wide, one guest at a time explores (a look at a guest whose
/// agent is not up yet costs the node a worker for seconds, reference §9.4).
struct Schedule {
    hint: Duration,
    address_hint: Duration,
    learned: Mutex<Learned>,
    /// Fires after every look, so held guests re-plan.
    changed: Notify,
}

#[derive(Default)]
struct Learned {
    lo: Option<Duration>,
    hi: Option<Duration>,
    exploring: bool,
}

/// A token: this probe explores; hand it back with [`Schedule::explored`].
struct Explore;

/// What [`Schedule::look`] decides.
enum Look {
    /// Look at this time since the start (exploring with the token).
    At(Duration, Option<Explore>),
    /// Another guest is exploring: wait for [`Schedule::changed`].
    Hold,
}

impl Schedule {
    fn new(t: Timeouts) -> Self {
        Self {
            hint: t.boot_hint,
            address_hint: t.address_hint,
            learned: Mutex::new(Learned::default()),
            changed: Notify::new(),
        }
    }

    fn learned(&self) -> std::sync::MutexGuard<'_, Learned> {
        self.learned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn first_gap(&self) -> Duration {
        (self.address_hint / 4).max(Duration::from_millis(1))
    }

    fn max_gap(&self) -> Duration {
        self.hint
            .max(self.address_hint)
            .max(Duration::from_millis(10))
    }

    /// The next look of a guest started `elapsed` ago whose looks so far saw no address.
    fn look(&self, elapsed: Duration, gap: Duration) -> Look {
        let mut l = self.learned();
        match (l.lo, l.hi) {
            (lo, Some(hi)) if elapsed < hi => {
                let lo = lo.unwrap_or_default();
                if hi.saturating_sub(lo) > hi / 16 && !l.exploring {
                    l.exploring = true;
                    let mid = lo + (hi - lo) / 2;
                    Look::At(mid.max(elapsed), Some(Explore))
                } else {
                    Look::At(hi, None)
                }
            }
            // Past the earliest address anyone had: look again soon.
            (_, Some(_)) => Look::At(elapsed + gap, None),
            (_, None) if l.exploring => Look::Hold,
            (lo, None) => {
                l.exploring = true;
                let after_lo = lo.map_or(self.hint, |lo| (lo + gap).max(self.hint));
                Look::At(after_lo.max(elapsed), Some(Explore))
            }
        }
    }

    fn addressed(&self, elapsed: Duration) {
        let mut l = self.learned();
        l.hi = Some(l.hi.map_or(elapsed, |h| h.min(elapsed)));
    }

    fn not_yet(&self, elapsed: Duration) {
        let mut l = self.learned();
        if l.hi.is_none_or(|h| elapsed < h) {
            l.lo = Some(l.lo.map_or(elapsed, |lo| lo.max(elapsed)));
        }
    }

    fn explored(&self, _: Explore) {
        self.learned().exploring = false;
        self.changed.notify_waiters();
    }
}

/// The lab's students as they are now: run state, addresses and whether the fence holds,
/// in id order.
pub async fn status(hv: &dyn Hypervisor, lab: &LabName) -> Result<Vec<StudentStatus>> {
    let mut members: Vec<GuestInfo> = hv
        .lab_members(lab)
        .await?
        .into_iter()
        .filter(|g| g.is_owned_by(lab))
        .collect();
    members.sort_by_key(|g| g.vmid);
    let gate = Semaphore::new(STATUS_CONCURRENCY);
    let rows = join_all(members.into_iter().map(|g| {
        let gate = &gate;
        async move {
            let _permit = gate.acquire().await;
            let addresses = if g.status.is_running() {
                hv.addresses(g.vmid).await?
            } else {
                Vec::new()
            };
            let fenced = match hv.fenced(lab, g.vmid).await {
                Ok(f) => Some(f),
                Err(Error::Unsupported { .. }) => None,
                Err(e) => return Err(e),
            };
            Ok(StudentStatus {
                vmid: g.vmid,
                hostname: g.name.unwrap_or_else(|| format!("vm {}", g.vmid)),
                node: g.node,
                status: g.status,
                addresses,
                fenced,
            })
        }
    }))
    .await;
    rows.into_iter().collect()
}

/// Guests read at the same time by [`status`].
const STATUS_CONCURRENCY: usize = 8;

// ---- Placement (issue 21): new students spread over the nodes holding the template ----

/// Where the new students of one `up` run land, and what changes when a node goes away.
struct Placed {
    plan: PlacementPlan,
    /// Clone slots per capacity key (sources on one shared storage share them).
    slots: HashMap<String, Semaphore>,
    /// The source of each new student; moves when its node is lost before its clone.
    assigned: Mutex<HashMap<String, CloneSource>>,
    /// Memory left per node after the plan (bytes; negative when overcommitted).
    left: Mutex<BTreeMap<String, i128>>,
    /// Nodes seen offline during the run.
    lost: Mutex<BTreeSet<String>>,
}

impl Placed {
    /// Places the plan's new students; refuses a plan that does not fit unless
    /// `spec.overcommit`.
    fn plan(
        spec: &LabSpec,
        plan: &crate::engine::Plan,
        listed: &[GuestInfo],
        view: PlacementView,
    ) -> Result<Self> {
        let placement = place_plan(spec, plan, listed, &view)?;
        if !spec.overcommit {
            if let Some(refusal) = placement.refusal() {
                return Err(refusal);
            }
        }
        Ok(Self::new(placement))
    }

    fn new(plan: PlacementPlan) -> Self {
        let mut slots = HashMap::new();
        let mut assigned = HashMap::new();
        let mut left = BTreeMap::new();
        for n in &plan.nodes {
            let c = &n.source.capacity;
            slots
                .entry(c.key.clone())
                .or_insert_with(|| Semaphore::new(c.slots.max(1) + c.queue));
            for s in &n.students {
                assigned.insert(s.clone(), n.source.clone());
            }
            left.insert(
                n.node.to_string(),
                i128::from(n.memory_free) - i128::from(n.memory_needed),
            );
        }
        Self {
            plan,
            slots,
            assigned: Mutex::new(assigned),
            left: Mutex::new(left),
            lost: Mutex::new(BTreeSet::new()),
        }
    }

    fn source_of(&self, hostname: &str) -> Option<CloneSource> {
        lock(&self.assigned).get(hostname).cloned()
    }

    fn is_lost(&self, node: &NodeName) -> bool {
        lock(&self.lost).contains(node.as_str())
    }

    /// The lost node a student was placed on, if its node went away.
    fn lost_node_of(&self, hostname: &str) -> Option<NodeName> {
        let source = self.source_of(hostname)?;
        self.is_lost(&source.node).then_some(source.node)
    }

    /// Moves a student off a lost node to the remaining node with the most memory left;
    /// `None` when no node is left.
    fn replace(&self, hostname: &str) -> Option<CloneSource> {
        let lost = lock(&self.lost).clone();
        let mut left = lock(&self.left);
        self.source_of(hostname)?;
        let best = self
            .plan
            .nodes
            .iter()
            .filter(|n| !lost.contains(n.node.as_str()))
            .max_by_key(|n| {
                (
                    left.get(n.node.as_str()).copied().unwrap_or(0),
                    std::cmp::Reverse(n.node.to_string()),
                )
            })?;
        // The lost node's memory is not given back: it is never chosen again in this run.
        if let Some(l) = left.get_mut(best.node.as_str()) {
            *l -= i128::from(self.plan.guest_memory);
        }
        lock(&self.assigned).insert(hostname.to_owned(), best.source.clone());
        Some(best.source.clone())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Run<'_> {
    /// Clones a new student on its placed node; a student whose node is lost (before or
    /// by its clone) moves to another node. `Err` is the student's outcome.
    async fn clone_placed(
        &self,
        placed: &Placed,
        s: &PlannedStudent,
        budget: &mut Budget,
    ) -> std::result::Result<GuestInfo, Outcome> {
        loop {
            let Some(mut source) = placed.source_of(&s.hostname) else {
                return Err(Outcome::Failed(
                    Step::Clone,
                    Error::invalid("placement", &s.hostname, "the student was not placed"),
                ));
            };
            if placed.is_lost(&source.node) {
                match placed.replace(&s.hostname) {
                    Some(next) => source = next,
                    None => {
                        return Err(Outcome::Failed(
                            Step::Clone,
                            Error::invalid(
                                "nodes",
                                source.node.as_str(),
                                "every node that holds the template went offline",
                            ),
                        ))
                    }
                }
            }
            let Some(slots) = placed.slots.get(&source.capacity.key) else {
                return Err(Outcome::Failed(
                    Step::Clone,
                    Error::invalid("placement", &source.capacity.key, "no clone slots"),
                ));
            };
            let permit = tokio::select! {
                p = slots.acquire() => p,
                () = self.interrupt.triggered() => return Err(Outcome::Stopped("not cloned".into())),
            };
            if self.interrupt.is_triggered() {
                return Err(Outcome::Stopped("not cloned".into()));
            }
            if placed.is_lost(&source.node) {
                // Lost while this student waited for a slot: place it again.
                continue;
            }
            self.step(s, Step::Clone);
            let cloned = self.clone(s, budget, Some(source.clone())).await;
            drop(permit);
            match cloned {
                Ok(g) => return Ok(g),
                Err(e) => {
                    if self.node_went_offline(placed, &source.node).await {
                        if self.may_have_landed(&source.node, &s.hostname).await {
                            // Its clone was accepted before the node went away: a second
                            // one elsewhere would give the student two guests. Reported
                            // as on the lost node; `up` again once it is back finishes it.
                            return Err(Outcome::Failed(Step::Clone, e));
                        }
                        tracing::warn!(student = %s.hostname, node = %source.node, error = %e, "node offline; placing the student elsewhere");
                        continue;
                    }
                    return Err(Outcome::Failed(Step::Clone, e));
                }
            }
        }
    }

    /// After a clone failed on `node`, which went offline: whether the clone may exist there
    /// (the cluster lists a guest of that name on that node, outside any other pool), or the
    /// listing failed so that nobody can tell. Only a student whose clone surely did not
    /// land is placed again.
    async fn may_have_landed(&self, node: &NodeName, hostname: &str) -> bool {
        let pool = self.spec.name.pool();
        match self.hv.list_guests().await {
            Ok(guests) => guests.iter().any(|g| {
                !g.template
                    && g.node == *node
                    && g.name.as_deref() == Some(hostname)
                    && g.pool.as_deref().is_none_or(|p| p == pool)
            }),
            Err(_) => true,
        }
    }

    /// After a failed clone: one read of the cluster tells whether `node` went offline
    /// (then it is marked lost and its students not yet cloned go elsewhere).
    async fn node_went_offline(&self, placed: &Placed, node: &NodeName) -> bool {
        if placed.is_lost(node) {
            return true;
        }
        let Ok(view) = self
            .hv
            .placement(self.spec.template, self.spec.clone_mode)
            .await
        else {
            return false;
        };
        let offline = view.nodes.iter().any(|n| n.node == *node && !n.online);
        if offline {
            lock(&placed.lost).insert(node.to_string());
        }
        offline
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod schedule_tests;
