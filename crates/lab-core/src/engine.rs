//! The orchestration engine: plan, apply, status, teardown — over any [`Hypervisor`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use futures::stream::{self, StreamExt};

use crate::error::{Error, Failure, Result};
use crate::hypervisor::{CloneRequest, Hypervisor};
use crate::spec::{CloneMode, LabSpec, Retry};
use crate::types::{GuestInfo, GuestStatus, LabName, VmId};

/// Guests read at the same time by [`status`].
const STATUS_CONCURRENCY: usize = 8;

/// Runs an idempotent step, repeating it after transient failures per `retry`.
async fn retrying<T, F, Fut>(retry: &Retry, what: &str, mut step: F) -> Result<T>
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
                pause = pause.saturating_mul(2);
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
    /// Clone it (with this planned id), start it, wait for it.
    Create,
    /// It exists but is stopped: start it, wait for it.
    Start,
    /// It exists and runs: only wait for it and read its address.
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
}

/// What `up` would change (`--dry-run` prints it; [`apply`] carries it out).
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
            CloneMode::Linked => "linked",
            CloneMode::Full => "full",
        };
        writeln!(
            f,
            "lab {}: {} students from template {} ({mode} clones), pool {:?}, tag {:?}",
            self.lab,
            self.students.len(),
            self.template,
            self.lab.pool(),
            self.lab.tag()
        )?;
        for s in &self.students {
            let what = match s.action {
                StudentAction::Create => "clone, start, wait for agent and address",
                StudentAction::Start => "exists (stopped): start, wait for agent and address",
                StudentAction::Keep => "exists (running): wait for agent and address",
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
    let template = current
        .iter()
        .find(|g| g.vmid == spec.template)
        .ok_or_else(|| Error::NotFound {
            what: format!("template {}", spec.template),
        })?;
    if !template.template {
        return Err(Error::invalid(
            "template",
            spec.template.to_string(),
            format!(
                "VM {} ({}) is not a template; convert it first or pick a template",
                spec.template,
                template.name.as_deref().unwrap_or("no name")
            ),
        ));
    }
    let lab = &spec.name;
    let members: Vec<&GuestInfo> = current.iter().filter(|g| g.is_owned_by(lab)).collect();
    let by_name: BTreeMap<&str, &GuestInfo> = members
        .iter()
        .filter_map(|g| g.name.as_deref().map(|n| (n, *g)))
        .collect();
    let used: BTreeSet<VmId> = current.iter().map(|g| g.vmid).collect();
    let mut free = spec.ids.iter().filter(|id| !used.contains(id));
    let hostnames = spec.hostnames();
    let mut students = Vec::with_capacity(hostnames.len());
    for (i, hostname) in hostnames.iter().enumerate() {
        let number = u32::try_from(i + 1).expect("count is at most MAX_STUDENTS");
        let (vmid, action) = match by_name.get(hostname.as_str()) {
            Some(g) if g.status.is_running() => (g.vmid, StudentAction::Keep),
            Some(g) => (g.vmid, StudentAction::Start),
            None => {
                let id = free.next().ok_or_else(|| {
                    Error::invalid(
                        "id range",
                        spec.ids.to_string(),
                        format!(
                            "not enough free ids: {} students need new guests, the range has \
                             fewer unused ids; widen it with --ids",
                            hostnames.len() - i
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
        });
    }
    let wanted: BTreeSet<&str> = hostnames.iter().map(String::as_str).collect();
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
    })
}

/// Lists the cluster and plans `up` (what `--dry-run` shows).
pub async fn plan_up(hv: &dyn Hypervisor, spec: &LabSpec) -> Result<Plan> {
    spec.validate()?;
    let current = retrying(&spec.timeouts.retry, "guest list", || hv.list_guests()).await?;
    plan(spec, &current)
}

/// What [`apply`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabReport {
    /// The lab.
    pub lab: LabName,
    /// The plan that was carried out.
    pub plan: Plan,
    /// Every student, ready, with its address, in student order.
    pub students: Vec<GuestStatus>,
    /// Whether the fence was put up.
    pub fenced: bool,
}

/// Brings the lab up: plans, creates the pool, then per student (at most
/// `spec.concurrency` at once) clones, starts, waits for the agent and the address; then
/// fences all students so they reach only the teacher addresses.
///
/// If some students fail, the others still come up and are fenced, and
/// [`Error::Incomplete`] names the failures; running `apply` again completes the lab
/// (existing students are kept).
pub async fn apply(
    hv: &dyn Hypervisor,
    spec: &LabSpec,
    progress: Progress<'_>,
) -> Result<LabReport> {
    let plan = plan_up(hv, spec).await?;
    let lab = &spec.name;
    progress(Event::Begin {
        operation: "up",
        subjects: plan.students.iter().map(|s| s.hostname.clone()).collect(),
    });
    progress(Event::Lab {
        step: Step::Prepare,
    });
    let retry = &spec.timeouts.retry;
    retrying(retry, "pool", || hv.prepare_lab(lab)).await?;
    let last_id = spec.ids.last();
    let results: Vec<(u32, String, Result<GuestStatus>)> = stream::iter(plan.students.clone())
        .map(|s| async move {
            let r = bring_up(hv, spec, &s, last_id, progress).await;
            match &r {
                Ok(st) => progress(Event::Done {
                    subject: s.hostname.clone(),
                    summary: format!(
                        "vm {} on {}, {}",
                        st.vmid,
                        st.node,
                        st.primary_address()
                            .map_or_else(|| "no address".to_owned(), |a| a.to_string())
                    ),
                }),
                Err(e) => progress(Event::Failed {
                    subject: s.hostname.clone(),
                    message: e.to_string(),
                }),
            }
            (s.number, s.hostname, r)
        })
        .buffer_unordered(spec.concurrency)
        .collect()
        .await;
    let mut ready = Vec::new();
    let mut failures = Vec::new();
    for (number, hostname, r) in results {
        match r {
            Ok(st) => ready.push((number, st)),
            Err(e) => failures.push(Failure {
                subject: hostname,
                message: e.to_string(),
            }),
        }
    }
    ready.sort_by_key(|(n, _)| *n);
    let students: Vec<GuestStatus> = ready.into_iter().map(|(_, s)| s).collect();
    let mut fenced = false;
    if !spec.teachers.is_empty() && !students.is_empty() {
        progress(Event::Lab { step: Step::Fence });
        // Fence every owned guest of the lab, also those that failed half-way.
        let mut ids: BTreeSet<VmId> = students.iter().map(|s| s.vmid).collect();
        for g in retrying(retry, "lab members", || hv.lab_members(lab)).await? {
            if g.is_owned_by(lab) {
                ids.insert(g.vmid);
            }
        }
        let ids: Vec<VmId> = ids.into_iter().collect();
        // Isolation is idempotent: a repeat completes what a failed try began.
        match retrying(retry, "fence", || {
            hv.isolate(lab, ids.clone(), spec.teachers.clone())
        })
        .await
        {
            Ok(()) => fenced = true,
            Err(e) => failures.push(Failure {
                subject: "fence".to_owned(),
                message: e.to_string(),
            }),
        }
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
        students,
        fenced,
    })
}

async fn bring_up(
    hv: &dyn Hypervisor,
    spec: &LabSpec,
    s: &PlannedStudent,
    last_id: VmId,
    progress: Progress<'_>,
) -> Result<GuestStatus> {
    let step = |step| {
        progress(Event::Step {
            subject: s.hostname.clone(),
            step,
        })
    };
    let mut vmid = s.vmid;
    if s.action == StudentAction::Create {
        step(Step::Clone);
        let g = hv
            .clone_guest(CloneRequest {
                template: spec.template,
                vmid,
                last_id,
                hostname: s.hostname.clone(),
                mode: spec.clone_mode,
                lab: spec.name.clone(),
            })
            .await?;
        if let Some(problem) = g.ownership_problem(&spec.name) {
            // A backend that does not mark its clones would make teardown impossible.
            return Err(Error::NotOwned {
                vmid: g.vmid,
                reason: format!("the new clone is not marked as the lab's: {problem}"),
            });
        }
        vmid = g.vmid;
    }
    let retry = &spec.timeouts.retry;
    if s.action != StudentAction::Keep {
        step(Step::Start);
        // Starting a running guest is success, so a repeat is safe.
        retrying(retry, "start", || hv.start(vmid)).await?;
    }
    step(Step::WaitReady);
    hv.wait_ready(vmid, spec.timeouts.ready).await?;
    step(Step::WaitAddress);
    let address = hv.wait_address(vmid, spec.timeouts.address).await?;
    let g = retrying(retry, "guest", || hv.guest(vmid)).await?;
    let mut addresses = retrying(retry, "addresses", || hv.addresses(vmid))
        .await
        .unwrap_or_default();
    if !addresses.contains(&address) {
        addresses.insert(0, address);
    }
    Ok(GuestStatus {
        vmid,
        hostname: g.name.unwrap_or_else(|| s.hostname.clone()),
        node: g.node,
        status: g.status,
        addresses,
    })
}

/// The lab's students as they are now: run state and addresses, in id order.
pub async fn status(hv: &dyn Hypervisor, lab: &LabName) -> Result<Vec<GuestStatus>> {
    let mut members: Vec<GuestInfo> = hv
        .lab_members(lab)
        .await?
        .into_iter()
        .filter(|g| g.is_owned_by(lab))
        .collect();
    members.sort_by_key(|g| g.vmid);
    let rows: Vec<Result<GuestStatus>> = stream::iter(members)
        .map(|g| async move {
            let addresses = if g.status.is_running() {
                hv.addresses(g.vmid).await?
            } else {
                Vec::new()
            };
            Ok(GuestStatus {
                vmid: g.vmid,
                hostname: g.name.unwrap_or_else(|| format!("vm {}", g.vmid)),
                node: g.node,
                status: g.status,
                addresses,
            })
        })
        .buffered(STATUS_CONCURRENCY)
        .collect()
        .await;
    rows.into_iter().collect()
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
                "lab {}: lift the fence, stop and destroy {} guests, then {pool}",
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
    }
}

/// Lists the lab and plans `down` (what `--dry-run` shows).
pub async fn plan_down(hv: &dyn Hypervisor, lab: &LabName) -> Result<TeardownPlan> {
    Ok(plan_teardown(lab, hv.lab_members(lab).await?))
}

/// Settings of [`teardown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownOptions {
    /// Guests stopped and destroyed at the same time, 1..=[`MAX_CONCURRENCY`](crate::MAX_CONCURRENCY).
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

/// Tears the lab down: lifts the fence (restoring what was there before), then per guest
/// (at most `concurrency` at once) re-checks ownership, stops and destroys it; finally
/// removes the lab's pool. Touches only guests in the lab's pool **and** with its tag,
/// never a template. If lifting the fence fails nothing is destroyed.
pub async fn teardown(
    hv: &dyn Hypervisor,
    lab: &LabName,
    options: &DownOptions,
    progress: Progress<'_>,
) -> Result<TeardownPlan> {
    let concurrency = options.concurrency;
    if !(1..=crate::MAX_CONCURRENCY).contains(&concurrency) {
        return Err(Error::invalid(
            "concurrency",
            concurrency.to_string(),
            format!("between 1 and {}", crate::MAX_CONCURRENCY),
        ));
    }
    let retry = &options.retry;
    let plan = plan_teardown(
        lab,
        retrying(retry, "lab members", || hv.lab_members(lab)).await?,
    );
    progress(Event::Begin {
        operation: "down",
        subjects: plan.destroy.iter().map(subject).collect(),
    });
    if !plan.destroy.is_empty() {
        progress(Event::Lab {
            step: Step::Unfence,
        });
        let ids: Vec<VmId> = plan.destroy.iter().map(|g| g.vmid).collect();
        retrying(retry, "lifting the fence", || {
            hv.unisolate(lab, ids.clone())
        })
        .await?;
    }
    let results: Vec<(String, Result<()>)> = stream::iter(plan.destroy.clone())
        .map(|g| async move {
            let who = subject(&g);
            let r = take_down(hv, lab, &g, retry, progress).await;
            match &r {
                Ok(()) => progress(Event::Done {
                    subject: who.clone(),
                    summary: format!("vm {} destroyed", g.vmid),
                }),
                Err(e) => progress(Event::Failed {
                    subject: who.clone(),
                    message: e.to_string(),
                }),
            }
            (who, r)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let failures: Vec<Failure> = results
        .into_iter()
        .filter_map(|(who, r)| {
            r.err().map(|e| Failure {
                subject: who,
                message: e.to_string(),
            })
        })
        .collect();
    if !failures.is_empty() {
        return Err(Error::Incomplete {
            operation: "down",
            lab: lab.to_string(),
            failures,
        });
    }
    if plan.skipped.is_empty() {
        progress(Event::Lab {
            step: Step::Release,
        });
        retrying(retry, "removing the pool", || hv.release_lab(lab)).await?;
    }
    Ok(plan)
}

fn subject(g: &GuestInfo) -> String {
    g.name.clone().unwrap_or_else(|| format!("vm {}", g.vmid))
}

async fn take_down(
    hv: &dyn Hypervisor,
    lab: &LabName,
    listed: &GuestInfo,
    retry: &Retry,
    progress: Progress<'_>,
) -> Result<()> {
    // Read it again: it may have changed (turned into a template, moved) since listing.
    let g = retrying(retry, "guest", || hv.guest(listed.vmid)).await?;
    if let Some(reason) = g.ownership_problem(lab) {
        return Err(Error::NotOwned {
            vmid: g.vmid,
            reason,
        });
    }
    let step = |step| {
        progress(Event::Step {
            subject: subject(listed),
            step,
        })
    };
    if g.status.is_running() {
        step(Step::Stop);
        // Stopping a stopped guest is success, so a repeat is safe.
        retrying(retry, "stop", || hv.stop(g.vmid)).await?;
    }
    step(Step::Destroy);
    hv.destroy(g.vmid).await
}

#[cfg(test)]
mod retry_tests {
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    use std::time::Duration;

    use super::*;

    fn busy() -> Error {
        Error::Busy {
            what: "VM 5001".into(),
            message: "VM is locked (backup)".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn quick_transient_failures_are_repeated_up_to_the_attempts() {
        let calls = AtomicU32::new(0);
        let e = retrying(&Retry::default(), "fence", || async {
            calls.fetch_add(1, SeqCst);
            Err::<(), _>(busy())
        })
        .await
        .unwrap_err();
        assert!(e.is_transient());
        assert_eq!(calls.load(SeqCst), Retry::default().attempts);
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
