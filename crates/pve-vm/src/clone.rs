//! Cloning a template (reference §4.3, §5, §9.2, §9.3).

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::time::Duration;

use pve_auth::Params;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::guest::Guest;
use crate::ids::{validate_hostname, GuestKind, NodeName, PoolId, VmId};
use crate::poll::Poll;

pub use lab_types::CloneMode;

/// Which id the new guest gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewId {
    /// Exactly this id; if it is taken the clone fails.
    Exact(VmId),
    /// The lowest free id in the range; if it turns out taken, the next one.
    Within(RangeInclusive<VmId>),
}

impl Default for NewId {
    fn default() -> Self {
        NewId::Within(VmId::MIN..=VmId::MAX)
    }
}

/// Options of [`Guest::clone_to`].
///
/// ```
/// use pve_vm::{CloneMode, CloneOptions, NewId, VmId};
/// let opts = CloneOptions {
///     hostname: Some("stud-01".into()),
///     mode: CloneMode::Linked,
///     newid: NewId::Within(VmId::new(5000).unwrap()..=VmId::new(5099).unwrap()),
///     ..CloneOptions::default()
/// };
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloneOptions {
    /// The new id.
    pub newid: NewId,
    /// Host name: sent as `name` for QEMU, `hostname` for LXC; checked as a DNS name first.
    pub hostname: Option<String>,
    /// Linked or full.
    pub mode: CloneMode,
    /// Target node (only when all disks are on shared storage).
    pub target: Option<NodeName>,
    /// Pool the new guest joins.
    pub pool: Option<PoolId>,
    /// Target storage (full clones only).
    pub storage: Option<String>,
    /// Description of the new guest.
    pub description: Option<String>,
    /// Longest wait for the clone task (default [`Timing::clone_timeout`](crate::Timing)).
    pub timeout: Option<Duration>,
}

impl CloneOptions {
    fn check(&self) -> Result<()> {
        if let Some(h) = &self.hostname {
            validate_hostname(h)?;
        }
        if let Some(s) = &self.storage {
            check_storage_id(s)?;
            if self.mode != CloneMode::Full {
                return Err(Error::InvalidInput {
                    what: format!("clone storage {s:?}"),
                    why: "a target storage only applies to full clones; set mode: CloneMode::Full"
                        .to_owned(),
                });
            }
        }
        if let NewId::Within(r) = &self.newid {
            if r.start() > r.end() {
                return Err(Error::InvalidInput {
                    what: format!("id range {}..={}", r.start(), r.end()),
                    why: "the start is above the end".to_owned(),
                });
            }
        }
        Ok(())
    }

    fn params(&self, kind: GuestKind, newid: VmId) -> Params {
        let name_key = match kind {
            GuestKind::Qemu => "name",
            GuestKind::Lxc => "hostname",
        };
        let full = match self.mode {
            CloneMode::Auto => None,
            CloneMode::Linked => Some(false),
            CloneMode::Full => Some(true),
        };
        Params::new()
            .with("newid", newid)
            .opt(name_key, self.hostname.as_deref())
            .opt("description", self.description.as_deref())
            .opt("pool", self.pool.as_ref().map(PoolId::as_str))
            .opt("full", full)
            .opt("storage", self.storage.as_deref())
            .opt("target", self.target.as_ref().map(NodeName::as_str))
    }
}

/// PVE's `pve-storage-id`: a letter, then letters, digits, `-`, `_`, `.`; ends in a letter
/// or digit.
fn check_storage_id(s: &str) -> Result<()> {
    let bad = |why: &str| Error::InvalidInput {
        what: format!("storage id {s:?}"),
        why: why.to_owned(),
    };
    let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let last_ok = s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !last_ok {
        return Err(bad(
            "it must start with a letter and end with a letter or digit",
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(bad(&format!(
            "character {c:?} is not allowed (letters, digits, '-', '_', '.')"
        )));
    }
    Ok(())
}

/// How one clone attempt ended.
enum Attempt {
    /// The new id was taken by someone else: pick another.
    IdTaken(Error),
    /// A lock was busy and nothing was created: try again later with the same id.
    Busy(Error),
    /// Give up.
    Fatal(Error),
}

impl Guest {
    /// Clones this guest (usually a template) and waits for the clone task.
    ///
    /// - The new id comes from [`CloneOptions::newid`]: reserved in-process, checked with
    ///   `nextid?vmid=`; if it turns out taken (`already exists`, or a lock timeout on the
    ///   new id's config) the next free id is used (not for [`NewId::Exact`]).
    /// - Busy storage locks (`got timeout`, `got lock request timeout`) and `CT is locked
    ///   (disk)` are retried with backoff and jitter within [`Timing::lock_retry`]; clones of
    ///   one LXC template are serialised inside this process, and at most
    ///   [`Timing::clones_per_node`] clones per source node run at once.
    /// - After a failed clone task the new id is checked and a partial guest this call
    ///   provably created (unlocked, named with [`CloneOptions::hostname`]) is removed; a
    ///   guest another client cloned into the freed id meanwhile is never touched.
    /// - After a lost answer the new id is looked for before sending the clone again.
    ///
    /// [`Timing::lock_retry`]: crate::Timing::lock_retry
    /// [`Timing::clones_per_node`]: crate::Timing::clones_per_node
    pub async fn clone_to(&self, opts: CloneOptions) -> Result<Guest> {
        opts.check()?;
        // PVE locks an LXC source (`lock: disk`) for the whole clone; queue here instead of
        // hammering the API with attempts that must fail.
        let serial = self.api().clone_lock(self.vmid());
        let _serial = match self.kind() {
            GuestKind::Lxc => Some(serial.lock().await),
            GuestKind::Qemu => None,
        };
        let started = Instant::now();
        let mut taken: BTreeSet<VmId> = BTreeSet::new();
        let mut moves = 0u32;
        let mut busy_retries = 0u32;
        let mut current: Option<VmId> = None;
        loop {
            let newid = match current {
                Some(id) => id,
                None => self.pick_newid(&opts.newid, &taken).await?,
            };
            current = Some(newid);
            let outcome = self.clone_attempt(newid, &opts).await;
            match outcome {
                Ok(guest) => {
                    self.api().release_ids(&[newid]);
                    return Ok(guest);
                }
                Err(Attempt::IdTaken(e)) => {
                    self.api().release_ids(&[newid]);
                    moves += 1;
                    if matches!(opts.newid, NewId::Exact(_))
                        || moves > self.api().timing().max_id_moves
                    {
                        return Err(e);
                    }
                    tracing::debug!(template = %self.vmid(), %newid, error = %e, "new id taken; moving on");
                    taken.insert(newid);
                    current = None;
                }
                Err(Attempt::Busy(e)) => {
                    busy_retries += 1;
                    let Some(delay) = self
                        .api()
                        .timing()
                        .lock_retry
                        .next_delay(busy_retries, started.elapsed())
                    else {
                        self.api().release_ids(&[newid]);
                        return Err(e);
                    };
                    tracing::debug!(template = %self.vmid(), %newid, error = %e, ?delay, "clone hit a busy lock; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(Attempt::Fatal(e)) => {
                    self.api().release_ids(&[newid]);
                    return Err(e);
                }
            }
        }
    }

    async fn pick_newid(&self, newid: &NewId, taken: &BTreeSet<VmId>) -> Result<VmId> {
        match newid {
            NewId::Exact(id) => {
                // Usually one of `allocate_ids`' ids, so already reserved by the caller.
                self.api().reserve(*id);
                Ok(*id)
            }
            NewId::Within(range) => {
                let mut ids = self.api().pick_ids(range.clone(), 1, taken).await?;
                ids.pop().ok_or_else(|| Error::NoFreeId {
                    why: format!("none in {}..={}", range.start(), range.end()),
                })
            }
        }
    }

    async fn clone_attempt(&self, newid: VmId, opts: &CloneOptions) -> Result<Guest, Attempt> {
        let _slot = self.api().clone_slot(self.node()).await;
        let params = opts.params(self.kind(), newid);
        let path = self.path(&["clone"]);
        let target = opts.target.clone().unwrap_or_else(|| self.node().clone());
        let new_guest = self.api().guest_on(target, self.kind(), newid);
        let timeout = opts.timeout.unwrap_or(self.api().timing().clone_timeout);

        let upid = match self
            .api()
            .client()
            .post::<crate::Upid>(&path, &params)
            .await
            .map_err(Error::from)
        {
            Ok(upid) => upid,
            Err(e) if e.is_id_taken(newid) => return Err(Attempt::IdTaken(e)),
            Err(e) if e.is_lock_timeout() || e.is_locked() => return Err(Attempt::Busy(e)),
            Err(e) if e.was_never_sent() && e.is_transient() => return Err(Attempt::Busy(e)),
            Err(e) if e.is_transient() => {
                // The clone may have started: look for the new guest before sending again.
                return match self.settle_lost_clone(&new_guest, timeout, opts).await {
                    Ok(Lost::Ours) => {
                        self.api().remember(newid, new_guest.node(), self.kind());
                        Ok(new_guest)
                    }
                    Ok(Lost::Absent) => Err(Attempt::Busy(e)),
                    // Another client's guest under that id: ours never was created.
                    Ok(Lost::Foreign) => Err(Attempt::IdTaken(e)),
                    Err(other) => Err(Attempt::Fatal(other)),
                };
            }
            Err(e) => return Err(Attempt::Fatal(e)),
        };

        match self.api().wait_task(&upid, timeout).await {
            Ok(_) => {
                self.api().remember(newid, new_guest.node(), self.kind());
                Ok(new_guest)
            }
            Err(e @ Error::TaskFailed { .. }) => {
                if e.is_id_taken(newid) {
                    // Someone else holds that id: nothing of ours exists under it.
                    return Err(Attempt::IdTaken(e));
                }
                if let Err(cleanup) = self
                    .remove_partial(&new_guest, opts.hostname.as_deref())
                    .await
                {
                    return Err(Attempt::Fatal(Error::Refused {
                        why: format!(
                            "clone into {newid} failed ({e}) and the partial guest it left could \
                             not be removed: {cleanup}"
                        ),
                    }));
                }
                if e.is_lock_timeout() || e.is_locked() {
                    Err(Attempt::Busy(e))
                } else {
                    Err(Attempt::Fatal(e))
                }
            }
            // Timeout: the task may still run; leave it alone.
            Err(e) => Err(Attempt::Fatal(e)),
        }
    }

    /// After a failed clone task of ours. PVE removes the partial guest before the task ends,
    /// so the new id is usually free again — and another client may already have taken it.
    /// A guest found under the id is therefore removed only when it is provably this clone's
    /// leftover: no clone in progress on it (no `lock`) and named with the hostname this
    /// clone sent. Anything else is left alone (the id counts as taken on the next attempt).
    async fn remove_partial(&self, new_guest: &Guest, hostname: Option<&str>) -> Result<()> {
        let timing = *self.api().timing();
        let what = format!("the config of {} after a failed clone", new_guest.vmid());
        let found = timing
            .task_poll
            .wait(&what, timing.task_timeout, || async {
                Poll::tolerate(match new_guest.config().await {
                    Err(e) if e.is_not_found() => Ok(Poll::Ready(None)),
                    Err(e) => Err(e),
                    Ok(config) => Ok(Poll::Ready(Some(config))),
                })
            })
            .await?;
        let Some(config) = found else {
            return Ok(());
        };
        let name = config.name();
        let lock = config.lock();
        if lock.is_some() || hostname.is_none() || name.as_deref() != hostname {
            tracing::warn!(
                vmid = %new_guest.vmid(), ?name, ?lock,
                "a guest exists under the id of a failed clone but is not provably its leftover; \
                 leaving it alone"
            );
            return Ok(());
        }
        tracing::warn!(vmid = %new_guest.vmid(), "failed clone left a guest behind; removing it");
        let params = Params::new()
            .with("purge", true)
            .with("destroy-unreferenced-disks", true);
        new_guest.delete_and_wait(&params).await
    }

    /// After a lost clone answer: does the new guest appear within [`Timing::settle`]? If so,
    /// wait until its clone lock is gone (`true`); if it never appears, `false`.
    ///
    /// [`Timing::settle`]: crate::Timing::settle
    async fn settle_lost_clone(
        &self,
        new_guest: &Guest,
        timeout: Duration,
        opts: &CloneOptions,
    ) -> Result<Lost> {
        let timing = *self.api().timing();
        let appeared = timing
            .task_poll
            .wait::<(), Error, _, _>("the new guest to appear", timing.settle, || async {
                Poll::tolerate(match new_guest.config().await {
                    Ok(_) => Ok(Poll::Ready(())),
                    Err(e) if e.is_not_found() => Ok(Poll::Pending(None)),
                    Err(e) => Err(e),
                })
            })
            .await;
        match appeared {
            Ok(()) => {}
            Err(Error::Timeout { .. }) => return Ok(Lost::Absent),
            Err(e) => return Err(e),
        }
        let what = format!("the clone into {} to finish", new_guest.vmid());
        let config = timing
            .task_poll
            .wait(&what, timeout, || async {
                Poll::tolerate(match new_guest.config().await {
                    Ok(c) if c.lock().is_none() => Ok(Poll::Ready(Some(c))),
                    Ok(_) => Ok(Poll::Pending(None)),
                    // Gone again: the clone failed and PVE cleaned up.
                    Err(e) if e.is_not_found() => Ok(Poll::Ready(None)),
                    Err(e) => Err(e),
                })
            })
            .await?;
        let Some(config) = config else {
            return Ok(Lost::Absent);
        };
        // A guest under the id is ours only if it has what this clone sent: another client
        // may have taken the id meanwhile (a guest is never claimed on its id alone).
        let name_key = match self.kind() {
            GuestKind::Qemu => "name",
            GuestKind::Lxc => "hostname",
        };
        let same = |sent: Option<&str>, key: &str| {
            sent.is_none_or(|v| config.get(key).as_deref().map(str::trim) == Some(v.trim()))
        };
        if same(opts.hostname.as_deref(), name_key)
            && same(opts.description.as_deref(), "description")
        {
            Ok(Lost::Ours)
        } else {
            Ok(Lost::Foreign)
        }
    }
}

/// What a clone whose answer was lost left under its id.
enum Lost {
    /// The guest this clone made.
    Ours,
    /// Nothing (it never started, or failed and PVE cleaned up): send it again.
    Absent,
    /// Someone else's guest.
    Foreign,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_per_kind() {
        let opts = CloneOptions {
            hostname: Some("stud-01".into()),
            mode: CloneMode::Full,
            storage: Some("local-lvm".into()),
            pool: Some(PoolId::new("exam").unwrap()),
            description: Some("exam 2024".into()),
            target: Some(NodeName::new("pve2").unwrap()),
            ..CloneOptions::default()
        };
        opts.check().unwrap();
        let id = VmId::new(123).unwrap();
        let p = opts.params(GuestKind::Qemu, id);
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            vec![
                ("newid", "123"),
                ("name", "stud-01"),
                ("description", "exam 2024"),
                ("pool", "exam"),
                ("full", "1"),
                ("storage", "local-lvm"),
                ("target", "pve2")
            ]
        );
        let lxc = CloneOptions {
            hostname: Some("ct-01".into()),
            mode: CloneMode::Linked,
            ..CloneOptions::default()
        };
        assert_eq!(
            lxc.params(GuestKind::Lxc, id).to_query(),
            "newid=123&hostname=ct-01&full=0"
        );
        assert_eq!(
            CloneOptions::default()
                .params(GuestKind::Qemu, id)
                .to_query(),
            "newid=123"
        );
    }

    #[test]
    fn checks_before_sending() {
        let bad_name = CloneOptions {
            hostname: Some("stud_01".into()),
            ..CloneOptions::default()
        };
        let e = bad_name.check().unwrap_err().to_string();
        assert!(e.contains("'_'") && e.contains("stud_01"), "{e}");
        let linked_storage = CloneOptions {
            storage: Some("local".into()),
            ..CloneOptions::default()
        };
        let e = linked_storage.check().unwrap_err().to_string();
        assert!(e.contains("full clones"), "{e}");
        assert!(check_storage_id("local-lvm").is_ok());
        assert!(check_storage_id("1local").is_err());
        assert!(check_storage_id("loc al")
            .unwrap_err()
            .to_string()
            .contains("' '"));
        let backwards = CloneOptions {
            newid: NewId::Within(VmId::new(200).unwrap()..=VmId::new(100).unwrap()),
            ..CloneOptions::default()
        };
        assert!(backwards.check().is_err());
    }

    #[test]
    fn id_taken_detection() {
        let id = VmId::new(104).unwrap();
        let api = |m: &str| {
            Error::Api(pve_auth::Error::Api {
                method: "POST".into(),
                path: "/x".into(),
                status: 500,
                message: m.into(),
                errors: Default::default(),
            })
        };
        assert!(api("unable to create VM 104: config file already exists").is_id_taken(id));
        assert!(
            api("can't lock file '/var/lock/qemu-server/lock-104.conf' - got timeout")
                .is_id_taken(id)
        );
        assert!(!api("clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout").is_id_taken(id));
    }
}
