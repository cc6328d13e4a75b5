//! `down`: destroys exactly the lab's guests, then lifts the lab-wide fence and removes
//! the pool.

use futures::stream::{self, StreamExt};

use crate::engine::{plan_teardown, retrying, DownOptions, Event, Progress, Step, TeardownPlan};
use crate::error::{Error, Failure, Result};
use crate::hypervisor::Hypervisor;
use crate::spec::Retry;
use crate::types::{GuestInfo, LabName};
use crate::up::Interrupt;

/// Tears the lab down; see [`teardown_with`]. Never interrupted.
pub async fn teardown(
    hv: &dyn Hypervisor,
    lab: &LabName,
    options: &DownOptions,
    progress: Progress<'_>,
) -> Result<TeardownPlan> {
    teardown_with(hv, lab, options, progress, &Interrupt::new()).await
}

/// Tears the lab down: per guest (at most `options.concurrency` at once) re-checks
/// ownership right before acting, stops and destroys it (its firewall configuration goes
/// with it, so it needs no unfencing); once every lab guest is gone, lifts the lab-wide
/// fence (restoring the datacenter's prior state) and removes the lab's pool. Touches only
/// guests in the lab's pool with its tag or clone marker, never a template. Guests that
/// could not be destroyed stay fenced, and so does the lab; running it again resumes.
pub async fn teardown_with(
    hv: &dyn Hypervisor,
    lab: &LabName,
    options: &DownOptions,
    progress: Progress<'_>,
    interrupt: &Interrupt,
) -> Result<TeardownPlan> {
    let options = &patient(options)?;
    let retry = &options.retry;
    retrying(retry, "clones in flight", || hv.quiesce(None)).await?;
    let mut plan = plan_teardown(
        lab,
        retrying(retry, "lab members", || hv.lab_members(lab)).await?,
    );
    plan.networks = retrying(retry, "lab networks", || {
        crate::engine::lab_networks(hv, lab)
    })
    .await?;
    carry_out(hv, plan, options, progress, interrupt).await
}

/// Carries out a plan of [`plan_down`](crate::plan_down) (the one `--dry-run` showed and
/// the user confirmed) without listing the lab again; every guest is still re-checked
/// right before it is destroyed. Otherwise as [`teardown_with`].
pub async fn teardown_planned(
    hv: &dyn Hypervisor,
    plan: TeardownPlan,
    options: &DownOptions,
    progress: Progress<'_>,
    interrupt: &Interrupt,
) -> Result<TeardownPlan> {
    let options = &patient(options)?;
    carry_out(hv, plan, options, progress, interrupt).await
}

/// Checks the options; teardown is what must converge whatever the cluster does, so each
/// step may use the whole per-guest budget, not only the few attempts of a lab-wide read.
fn patient(options: &DownOptions) -> Result<DownOptions> {
    let concurrency = options.concurrency;
    if !(1..=crate::MAX_CONCURRENCY).contains(&concurrency) {
        return Err(Error::invalid(
            "concurrency",
            concurrency.to_string(),
            format!("between 1 and {}", crate::MAX_CONCURRENCY),
        ));
    }
    Ok(DownOptions {
        retry: Retry {
            attempts: options.retry.attempts.max(options.retry.per_guest),
            ..options.retry
        },
        ..*options
    })
}

async fn carry_out(
    hv: &dyn Hypervisor,
    plan: TeardownPlan,
    options: &DownOptions,
    progress: Progress<'_>,
    interrupt: &Interrupt,
) -> Result<TeardownPlan> {
    let retry = &options.retry;
    let lab = &plan.lab.clone();
    progress(Event::Begin {
        operation: "down",
        subjects: plan.destroy.iter().map(subject).collect(),
    });
    let results: Vec<(String, Result<bool>)> = stream::iter(plan.destroy.clone())
        .map(|g| async move {
            let who = subject(&g);
            if interrupt.is_triggered() {
                return (who, Ok(false));
            }
            let r = take_down(hv, lab, &g, options, progress).await;
            match &r {
                Ok(_) => progress(Event::Done {
                    subject: who.clone(),
                    summary: format!("vm {} destroyed", g.vmid),
                }),
                Err(e) => progress(Event::Failed {
                    subject: who.clone(),
                    message: e.to_string(),
                }),
            }
            (who, r.map(|()| true))
        })
        .buffer_unordered(options.concurrency)
        .collect()
        .await;
    let mut finished = Vec::new();
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    for (who, r) in results {
        match r {
            Ok(true) => finished.push(who),
            Ok(false) => skipped.push(Failure {
                subject: who,
                message: "not destroyed".to_owned(),
            }),
            Err(e) => failures.push(Failure {
                subject: who,
                message: e.to_string(),
            }),
        }
    }
    if !skipped.is_empty() {
        skipped.extend(failures);
        return Err(Error::Interrupted {
            operation: "down",
            lab: lab.to_string(),
            finished,
            unfinished: skipped,
            total: plan.destroy.len(),
        });
    }
    if !failures.is_empty() {
        // The survivors still reference the lab's fence: it stays up with them.
        return Err(Error::Incomplete {
            operation: "down",
            lab: lab.to_string(),
            failures,
        });
    }
    progress(Event::Lab {
        step: Step::Unfence,
    });
    retrying(retry, "lifting the lab's fence", || {
        hv.unisolate(lab, Vec::new())
    })
    .await
    .map_err(|e| lab_wide_failed(lab, "fence", "the lab-wide fence could not be lifted", e))?;
    if plan.skipped.is_empty() && !plan.networks.is_empty() {
        // After the guests: a vnet in use would cut a guest off. Looked up again, so a
        // network made after the plan (a run of `up` meanwhile) goes too.
        progress(Event::Lab {
            step: Step::Networks,
        });
        retrying(retry, "removing the networks", || hv.remove_networks(lab))
            .await
            .map_err(|e| {
                lab_wide_failed(
                    lab,
                    "networks",
                    "the lab's networks could not be removed",
                    e,
                )
            })?;
    }
    if plan.skipped.is_empty() {
        progress(Event::Lab {
            step: Step::Release,
        });
        retrying(retry, "removing the pool", || hv.release_lab(lab))
            .await
            .map_err(|e| lab_wide_failed(lab, "pool", "the lab's pool could not be removed", e))?;
    }
    Ok(plan)
}

/// A lab-wide step of `down` that failed after every guest was destroyed: the down is
/// incomplete (the same command finishes it), said once for the lab. Only a backend
/// that cannot do the step at all keeps its own error.
fn lab_wide_failed(lab: &LabName, subject: &str, what: &str, e: Error) -> Error {
    match e {
        Error::Unsupported { .. } => e,
        e => Error::Incomplete {
            operation: "down",
            lab: lab.to_string(),
            failures: vec![Failure {
                subject: subject.to_owned(),
                message: format!("{what} (the guests are gone): {e}"),
            }],
        },
    }
}

fn subject(g: &GuestInfo) -> String {
    g.name.clone().unwrap_or_else(|| format!("vm {}", g.vmid))
}

async fn take_down(
    hv: &dyn Hypervisor,
    lab: &LabName,
    listed: &GuestInfo,
    options: &DownOptions,
    progress: Progress<'_>,
) -> Result<()> {
    let retry = &options.retry;
    // Read it again: it may have changed (turned into a template, re-tagged) since listing.
    let mut g = match retrying(retry, "guest", || hv.guest(listed.vmid)).await {
        Ok(g) => g,
        // Gone already (an earlier, interrupted run): nothing left to do.
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    // The listing knew the pool and the marker; a fresh read keeps what it does not carry.
    if g.pool.is_none() {
        g.pool.clone_from(&listed.pool);
    }
    if g.description.is_none() {
        g.description.clone_from(&listed.description);
    }
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
    retrying(retry, "destroy", || hv.destroy(g.vmid)).await
}
