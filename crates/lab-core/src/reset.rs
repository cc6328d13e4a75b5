//! Putting one student's guest back (`lab reset`): a rollback where the guest's storage
//! can reach the snapshot, otherwise a re-clone from the lab's template that keeps what
//! makes the guest the student's: its id, name, the lab's marks (pool, description),
//! each NIC's MAC (so its DHCP address), its tags and its fence.
//!
//! The re-clone is safe to interrupt and repeat: [`reclone`] destroys whatever guest of
//! the lab holds the id (the old one, or a half-made clone of an earlier try) and clones
//! again with the same id, so the caller records the [`GuestIdentity`] *before* the first
//! try and hands the same record to every later one.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::hypervisor::{
    CloneRequest, CloneSource, GuestIdentity, Hypervisor, Probe, RollbackReach, Secure,
    SnapshotInfo, Snapshots,
};
use crate::spec::CloneMode;
use crate::types::{GuestInfo, LabName, NodeName, VmId, VmKind};

/// How a student's guest gets back to the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetPath {
    /// Roll back to the snapshot.
    Rollback,
    /// Destroy and clone again from the template, keeping the identity.
    Reclone,
}

impl ResetPath {
    /// `rollback` or `re-clone`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetPath::Rollback => "rollback",
            ResetPath::Reclone => "re-clone",
        }
    }
}

/// The path and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetChoice {
    /// The path.
    pub path: ResetPath,
    /// Why, in words for the plan.
    pub why: String,
    /// The snapshot exists.
    pub found: bool,
    /// The guest's snapshots, oldest first: a re-clone destroys every one of them.
    pub snapshots: Vec<String>,
}

/// Chooses the path to snapshot `to` from the guest's snapshots (oldest first) and what
/// its storage can reach: a rollback when `to` exists and is reachable (any snapshot on
/// [`RollbackReach::Any`], only the most recent on [`RollbackReach::Latest`]), else a
/// re-clone.
pub fn choose_reset(snapshots: &[SnapshotInfo], reach: RollbackReach, to: &str) -> ResetChoice {
    let all: Vec<String> = snapshots.iter().map(|s| s.name.clone()).collect();
    let lost = if all.is_empty() {
        String::new()
    } else {
        format!(", destroying its snapshots {}", all.join(", "))
    };
    let Some(pos) = snapshots.iter().position(|s| s.name == to) else {
        return ResetChoice {
            path: ResetPath::Reclone,
            why: format!("no snapshot {to}: a fresh clone of the template{lost}"),
            found: false,
            snapshots: all,
        };
    };
    let newer: Vec<&str> = snapshots[pos + 1..]
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    match reach {
        RollbackReach::Latest if !newer.is_empty() => ResetChoice {
            path: ResetPath::Reclone,
            why: format!(
                "snapshot {to} is behind newer snapshots ({}) and the storage rolls back only \
                 to the most recent one (ZFS): a fresh clone of the template{lost}",
                newer.join(", ")
            ),
            found: true,
            snapshots: all,
        },
        RollbackReach::Latest => ResetChoice {
            path: ResetPath::Rollback,
            why: format!("snapshot {to} is the most recent one"),
            found: true,
            snapshots: all,
        },
        RollbackReach::Any => ResetChoice {
            path: ResetPath::Rollback,
            why: if newer.is_empty() {
                format!("snapshot {to} exists")
            } else {
                format!(
                    "snapshot {to} exists; the storage rolls back past newer ones ({})",
                    newer.join(", ")
                )
            },
            found: true,
            snapshots: all,
        },
    }
}

/// Reads what [`choose_reset`] needs (the snapshot list, and the storage's reach when the
/// snapshot exists) and chooses.
pub async fn plan_reset<H>(hv: &H, vmid: VmId, to: &str) -> Result<ResetChoice>
where
    H: Snapshots + ?Sized,
{
    let list = hv.snapshots(vmid).await?;
    if !list.iter().any(|s| s.name == to) {
        return Ok(choose_reset(&list, RollbackReach::Any, to));
    }
    let reach = hv.rollback_reach(vmid).await?;
    Ok(choose_reset(&list, reach, to))
}

/// Rolls `vmid` back to `to` and starts it when the snapshot left it stopped (a disk-only
/// snapshot); answers the rollback's task id.
pub async fn rollback<H>(hv: &H, vmid: VmId, to: &str) -> Result<Option<String>>
where
    H: Hypervisor + Snapshots + ?Sized,
{
    let task = hv.rollback(vmid, to.to_owned()).await?;
    if !hv.guest(vmid).await?.status.is_running() {
        hv.start(vmid).await?;
    }
    Ok(task)
}

/// One re-clone: which guest, from which template, with which identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reclone {
    /// The lab (its pool and marks).
    pub lab: LabName,
    /// The lab's template.
    pub template: VmId,
    /// Linked or full, as the lab clones.
    pub mode: CloneMode,
    /// The student's id, kept.
    pub vmid: VmId,
    /// The student's host name, kept.
    pub hostname: String,
    /// What the guest had before (read before the first try).
    pub identity: GuestIdentity,
    /// The guest was fenced: the new one is fenced before it first starts.
    pub fence: bool,
    /// Where the new clone comes from and lands: the guest's own node (the template, its
    /// replica there, or shared storage), as [`reclone_source`] finds it; `None` clones
    /// the template where it is (a backend without placement).
    pub source: Option<CloneSource>,
}

/// Whether `template` can give back a guest of kind `kind` by a re-clone in `mode`: it
/// must be a template (a linked clone needs one, and `lab up` clones nothing else) of
/// the same kind as the student's guest (a VM never comes back as a container). Checked
/// before anything is stopped or destroyed.
pub fn check_reclone_template(template: &GuestInfo, kind: VmKind, mode: CloneMode) -> Result<()> {
    if !template.template {
        return Err(Error::invalid(
            "template",
            template.vmid.to_string(),
            format!(
                "VM {} ({}) is not a template, so a {} re-clone cannot be made of it; \
                 convert it first or set the lab's template",
                template.vmid,
                template.name.as_deref().unwrap_or("no name"),
                mode
            ),
        ));
    }
    if template.kind != kind {
        let what = |k: VmKind| match k {
            VmKind::Vm => "a VM (QEMU)",
            VmKind::Container => "a container (LXC)",
        };
        return Err(Error::invalid(
            "template",
            template.vmid.to_string(),
            format!(
                "template {} is {}, the student's guest is {}: a re-clone must give back \
                 the same kind; set the lab's template to one of the guest's kind",
                template.vmid,
                what(template.kind),
                what(kind)
            ),
        ));
    }
    Ok(())
}

/// The source a re-clone of a guest on `node` uses: among `sources` (what
/// [`Placement::placement`](crate::Placement::placement) read), the one landing on that
/// node, so the student stays where `up` put them. `None` when no copy of the template
/// reaches `node`.
pub fn reclone_source(sources: &[CloneSource], node: &NodeName) -> Option<CloneSource> {
    let here: Vec<&CloneSource> = sources.iter().filter(|s| &s.node == node).collect();
    // The template or a replica on the node itself before a shared source sent there.
    here.iter()
        .find(|s| !s.target)
        .or_else(|| here.first())
        .map(|s| (*s).clone())
}

/// Destroys the lab's guest at `r.vmid` (stopping it first) if there is one, clones the
/// template again under the same id with the lab's marks, gives it back its MACs and tags,
/// its fence (before it first runs) and starts it. Refuses a guest at that id that is not
/// the lab's (a template, another pool). Repeating it after an interruption at any point
/// ends in the same state.
pub async fn reclone<H>(hv: &H, r: &Reclone) -> Result<GuestInfo>
where
    H: Hypervisor + Snapshots + ?Sized,
{
    // A clone of an interrupted try may still be running: it must land before the id is
    // looked at (else its guest would be locked, or appear after the destroy).
    let template = r.source.as_ref().map_or(r.template, |s| s.template);
    hv.quiesce(Some(template)).await?;
    match hv.guest(r.vmid).await {
        Ok(g) => {
            let pool = r.lab.pool();
            if g.template || g.pool.as_deref() != Some(pool.as_str()) {
                return Err(Error::NotOwned {
                    vmid: r.vmid,
                    reason: if g.template {
                        "it is a template".to_owned()
                    } else {
                        format!(
                            "it is not in the lab's pool {pool} (pool {})",
                            g.pool.as_deref().unwrap_or("none")
                        )
                    },
                });
            }
            if g.status.is_running() {
                hv.stop(r.vmid).await?;
            }
            hv.destroy(r.vmid).await?;
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    let guest = hv
        .clone_guest(CloneRequest {
            template,
            vmid: r.vmid,
            last_id: r.vmid,
            hostname: r.hostname.clone(),
            mode: r.mode,
            lab: r.lab.clone(),
            // On the guest's own node (placement was decided by `up`; a reset only gives
            // the student their machine back where it was).
            source: r.source.clone(),
        })
        .await?;
    let mut identity = r.identity.clone();
    let tag = r.lab.tag();
    if !identity.tags.contains(&tag) {
        identity.tags.push(tag);
    }
    hv.restore(r.vmid, identity.clone()).await?;
    let guest = GuestInfo {
        tags: identity.tags,
        ..guest
    };
    hv.secure(
        guest.clone(),
        Secure {
            lab: r.lab.clone(),
            fresh: false,
            fence: r.fence,
            nics: Vec::new(),
        },
    )
    .await?;
    hv.start(r.vmid).await?;
    Ok(guest)
}

/// Waits until the guest is ready and reports an address (as `up` does), probing every
/// `poll` (doubling up to 8 × `poll`) for at most `timeout`.
pub async fn wait_ready<H>(hv: &H, vmid: VmId, poll: Duration, timeout: Duration) -> Result<Probe>
where
    H: Hypervisor + ?Sized,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = poll.max(Duration::from_millis(1));
    loop {
        let p = hv.probe(vmid).await?;
        if p.ready && !p.addresses.is_empty() {
            return Ok(p);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(Error::Timeout {
                what: format!(
                    "VM {vmid} to be ready with an address{}",
                    if p.ready { " (its agent answers)" } else { "" }
                ),
                after: timeout,
            });
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(poll * 8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeHypervisor;
    use crate::hypervisor::{Fencing, Inventory, Provisioning};

    fn snap(name: &str) -> SnapshotInfo {
        SnapshotInfo {
            name: name.into(),
            taken: None,
            vmstate: false,
        }
    }

    #[test]
    fn the_path_follows_the_snapshot_and_the_storage() {
        let list = [snap("baseline"), snap("deadline-x")];
        let c = choose_reset(&list, RollbackReach::Any, "baseline");
        assert_eq!(c.path, ResetPath::Rollback);
        assert!(c.why.contains("deadline-x"), "{}", c.why);
        let c = choose_reset(&list, RollbackReach::Latest, "baseline");
        assert_eq!(c.path, ResetPath::Reclone);
        assert!(
            c.why.contains("ZFS")
                && c.why
                    .contains("destroying its snapshots baseline, deadline-x"),
            "{}",
            c.why
        );
        assert!(c.found);
        assert_eq!(c.snapshots, ["baseline", "deadline-x"]);
        let c = choose_reset(&list, RollbackReach::Latest, "deadline-x");
        assert_eq!(c.path, ResetPath::Rollback);
        let c = choose_reset(&list, RollbackReach::Any, "other");
        assert_eq!(c.path, ResetPath::Reclone);
        assert!(c.why.contains("no snapshot other"), "{}", c.why);
        assert!(!c.found);
        assert_eq!(
            choose_reset(&[], RollbackReach::Any, "baseline").path,
            ResetPath::Reclone
        );
    }

    fn guest(vmid: u32, kind: VmKind, template: bool) -> GuestInfo {
        GuestInfo {
            vmid: VmId::new(vmid).unwrap(),
            name: Some("t".into()),
            node: NodeName::new("pve1").unwrap(),
            kind,
            status: crate::types::VmStatus::Stopped,
            template,
            pool: None,
            tags: Vec::new(),
            description: None,
        }
    }

    #[test]
    fn a_reclone_template_must_be_a_template_of_the_guests_kind() {
        let t = guest(9000, VmKind::Vm, true);
        assert!(check_reclone_template(&t, VmKind::Vm, CloneMode::Linked).is_ok());
        let e = check_reclone_template(
            &guest(100, VmKind::Vm, false),
            VmKind::Vm,
            CloneMode::Linked,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a template") && e.contains("100"), "{e}");
        let e = check_reclone_template(
            &guest(9001, VmKind::Container, true),
            VmKind::Vm,
            CloneMode::Full,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("a container (LXC)") && e.contains("a VM (QEMU)"),
            "{e}"
        );
    }

    #[test]
    fn a_reclone_source_is_the_copy_on_the_guests_node() {
        let src = |node: &str, template: u32, target: bool| CloneSource {
            node: NodeName::new(node).unwrap(),
            template: VmId::new(template).unwrap(),
            target,
            capacity: crate::hypervisor::CloneCapacity {
                key: format!("{node}/local-lvm"),
                slots: 3,
                queue: 0,
            },
        };
        let sources = [
            src("pve1", 9000, false),
            src("pve3", 9000, true),
            src("pve3", 9102, false),
        ];
        let at = |n: &str| reclone_source(&sources, &NodeName::new(n).unwrap());
        assert_eq!(at("pve1").unwrap().template.get(), 9000);
        assert_eq!(
            at("pve3").unwrap().template.get(),
            9102,
            "the replica there"
        );
        assert!(at("pve2").is_none());
    }

    async fn one_student(hv: &FakeHypervisor) -> (LabName, VmId) {
        let lab = LabName::new("rst").unwrap();
        let vmid = VmId::new(5000).unwrap();
        hv.prepare_lab(&lab).await.unwrap();
        hv.prepare_fence(&lab, vec!["10.0.0.1".parse().unwrap()])
            .await
            .unwrap();
        let g = hv
            .clone_guest(CloneRequest {
                template: VmId::new(9000).unwrap(),
                vmid,
                last_id: vmid,
                hostname: "rst-01".into(),
                mode: CloneMode::Linked,
                lab: lab.clone(),
                source: None,
            })
            .await
            .unwrap();
        hv.secure(
            g,
            Secure {
                lab: lab.clone(),
                fresh: true,
                fence: true,
                nics: Vec::new(),
            },
        )
        .await
        .unwrap();
        crate::hypervisor::Power::start(hv, vmid).await.unwrap();
        (lab, vmid)
    }

    #[tokio::test]
    async fn a_reclone_keeps_id_mac_tags_and_fence_and_can_be_repeated() {
        let hv = FakeHypervisor::new()
            .with_template(9000, "pve1")
            .with_rollback_reach(RollbackReach::Latest);
        let (lab, vmid) = one_student(&hv).await;
        let mut identity = hv.identity(vmid).await.unwrap();
        identity.tags.push("extra".into());
        hv.restore(vmid, identity.clone()).await.unwrap();
        let mac = hv.mac(5000);
        hv.snapshot(vmid, "baseline".into(), false).await.unwrap();
        hv.snapshot(vmid, "deadline-1".into(), false).await.unwrap();
        let choice = plan_reset(&hv, vmid, "baseline").await.unwrap();
        assert_eq!(choice.path, ResetPath::Reclone);
        let r = Reclone {
            lab: lab.clone(),
            template: VmId::new(9000).unwrap(),
            mode: CloneMode::Linked,
            vmid,
            hostname: "rst-01".into(),
            identity: hv.identity(vmid).await.unwrap(),
            fence: hv.fenced(&lab, vmid).await.unwrap(),
            source: None,
        };
        assert!(r.fence);
        // Killed after the destroy: the next try completes it.
        hv.crash_after(2);
        assert!(reclone(&hv, &r).await.is_err());
        hv.heal();
        assert!(hv.guest(vmid).await.is_err(), "destroyed, not yet cloned");
        let g = reclone(&hv, &r).await.unwrap();
        assert_eq!(g.vmid, vmid);
        let now = hv.guest(vmid).await.unwrap();
        assert_eq!(now.name.as_deref(), Some("rst-01"));
        assert_eq!(now.pool.as_deref(), Some(lab.pool().as_str()));
        assert!(now.status.is_running());
        assert!(now.tags.contains(&"extra".to_owned()) && now.tags.contains(&lab.tag()));
        assert_eq!(hv.mac(5000), mac, "the MAC is back");
        assert!(hv.fenced(&lab, vmid).await.unwrap());
        assert!(hv.snapshots(vmid).await.unwrap().is_empty());
        // Once more (a re-run after the answer was lost): the same end state.
        reclone(&hv, &r).await.unwrap();
        assert_eq!(hv.mac(5000), mac);
        let p = wait_ready(&hv, vmid, Duration::from_millis(1), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(p.ready);
    }

    #[tokio::test]
    async fn a_rollback_starts_the_guest_and_a_guest_not_the_labs_is_refused() {
        let hv = FakeHypervisor::new().with_template(9000, "pve1");
        let (lab, vmid) = one_student(&hv).await;
        hv.snapshot(vmid, "baseline".into(), false).await.unwrap();
        hv.snapshot(vmid, "later".into(), false).await.unwrap();
        assert_eq!(
            plan_reset(&hv, vmid, "baseline").await.unwrap().path,
            ResetPath::Rollback
        );
        rollback(&hv, vmid, "baseline").await.unwrap();
        assert_eq!(hv.rollbacks(), 1);
        assert!(hv.guest(vmid).await.unwrap().status.is_running());
        let r = Reclone {
            lab: LabName::new("other").unwrap(),
            template: VmId::new(9000).unwrap(),
            mode: CloneMode::Linked,
            vmid,
            hostname: "rst-01".into(),
            identity: GuestIdentity::default(),
            fence: false,
            source: None,
        };
        let e = reclone(&hv, &r).await.unwrap_err();
        assert!(matches!(e, Error::NotOwned { .. }), "{e}");
        assert!(hv.guest(vmid).await.is_ok(), "{lab}'s guest untouched");
        let t = Reclone {
            vmid: VmId::new(9000).unwrap(),
            lab,
            ..r
        };
        assert!(matches!(
            reclone(&hv, &t).await.unwrap_err(),
            Error::NotOwned { .. }
        ));
    }
}
