//! Snapshots (create with or without RAM, list, rollback, delete), vzdump backups and the
//! link state of a NIC (reference `exam-features.md` §2–4).

use std::fmt;
use std::str::FromStr;

use pve_auth::{api_path, Method, Params};
use serde::Deserialize;

use crate::api::TaskStatus;
use crate::error::{Error, Result};
use crate::guest::Guest;
use crate::ids::GuestKind;

/// Names PVE refuses for a snapshot (`current` is the pseudo-entry of the list, `vzdump` is
/// what backups in snapshot mode use).
const RESERVED_SNAPSHOT_NAMES: [&str; 2] = ["current", "vzdump"];
/// `snapname` is a `pve-configid` of at most 40 characters.
const MAX_SNAPSHOT_NAME: usize = 40;

/// A snapshot name, checked as PVE checks it: a `pve-configid` (`[a-z][a-z0-9_-]+`, any
/// case), at most 40 characters, and not `current` or `vzdump`.
///
/// ```
/// use pve_vm::SnapshotName;
/// let n: SnapshotName = "deadline_2026-07-01".parse().unwrap();
/// assert_eq!(n.as_str(), "deadline_2026-07-01");
/// assert!("1st".parse::<SnapshotName>().unwrap_err().to_string().contains("letter"));
/// assert!("current".parse::<SnapshotName>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotName(String);

impl SnapshotName {
    /// Checks `name`.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let bad = |why: &str| Error::InvalidInput {
            what: format!("snapshot name {name:?}"),
            why: why.to_owned(),
        };
        let mut chars = name.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_alphabetic()) {
            return Err(bad("a snapshot name starts with a letter (a-z)"));
        }
        if name.len() < 2 {
            return Err(bad("a snapshot name has at least 2 characters"));
        }
        if chars.any(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')) {
            return Err(bad(
                "a snapshot name holds only letters, digits, '_' and '-'",
            ));
        }
        if name.len() > MAX_SNAPSHOT_NAME {
            return Err(bad("a snapshot name has at most 40 characters"));
        }
        if RESERVED_SNAPSHOT_NAMES.contains(&name.as_str()) {
            return Err(bad("the name is reserved by PVE (current, vzdump)"));
        }
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SnapshotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SnapshotName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

/// One entry of `GET …/snapshot`. The list also holds the pseudo-entry `current` (the
/// running state, whose `parent` is the latest snapshot); see [`Snapshot::is_current`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// The snapshot's name (`current` for the pseudo-entry).
    #[serde(deserialize_with = "pve_auth::perl::string")]
    pub name: String,
    /// The snapshot this one was taken after.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub parent: Option<String>,
    /// The description given at creation.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub description: Option<String>,
    /// Creation time, seconds since the epoch (absent for `current`).
    #[serde(default, deserialize_with = "pve_auth::perl::opt_u64")]
    pub snaptime: Option<u64>,
    /// The snapshot includes the RAM (QEMU only): rolling back starts the VM.
    #[serde(default, deserialize_with = "pve_auth::perl::bool")]
    pub vmstate: bool,
}

impl Snapshot {
    /// `true` for the pseudo-entry `current`.
    pub fn is_current(&self) -> bool {
        self.name == "current"
    }
}

/// What [`Guest::create_snapshot`] sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// The name.
    pub name: SnapshotName,
    /// A description (shown in the web UI).
    pub description: Option<String>,
    /// Include the RAM (`vmstate=1`, QEMU only): a rollback then resumes the running VM.
    pub vmstate: bool,
}

impl SnapshotOptions {
    /// A disk-only snapshot called `name`.
    pub fn new(name: SnapshotName) -> Self {
        Self {
            name,
            description: None,
            vmstate: false,
        }
    }
}

/// The backup mode of [`VzdumpOptions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackupMode {
    /// Live backup of a running guest (the default).
    #[default]
    Snapshot,
    /// Suspend the guest meanwhile.
    Suspend,
    /// Stop the guest meanwhile, start it again afterwards.
    Stop,
}

impl BackupMode {
    /// PVE's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupMode::Snapshot => "snapshot",
            BackupMode::Suspend => "suspend",
            BackupMode::Stop => "stop",
        }
    }
}

/// What [`Guest::vzdump`] sends to `POST /nodes/{node}/vzdump`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VzdumpOptions {
    /// The backup mode.
    pub mode: BackupMode,
    /// The backup storage (server default when `None`).
    pub storage: Option<String>,
    /// `zstd` (recommended), `gzip`, `lzo`, `1`, or `0` for none (server default when `None`).
    pub compress: Option<String>,
    /// Notes of the backup, e.g. `{{guestname}} at the deadline`.
    pub notes_template: Option<String>,
    /// Protect the backup from pruning and removal.
    pub protected: bool,
}

/// A finished backup.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backup {
    /// The vzdump task.
    pub task: TaskStatus,
    /// The archive the task log names (`creating vzdump archive '…'`), when it names one.
    pub archive: Option<String>,
}

/// The result of [`Guest::set_link`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkChange {
    /// The config key, e.g. `net0`.
    pub net: String,
    /// The NIC's MAC address, kept as it was.
    pub mac: String,
    /// The link was down before.
    pub was_down: bool,
    /// The link is down now.
    pub down: bool,
}

impl LinkChange {
    /// Something was written (the link state differed).
    pub fn changed(&self) -> bool {
        self.was_down != self.down
    }
}

impl Guest {
    /// `GET …/snapshot`: the snapshots, oldest first as PVE lists them, including the
    /// pseudo-entry `current`.
    pub async fn snapshots(&self) -> Result<Vec<Snapshot>> {
        self.api()
            .read(&self.path(&["snapshot"]), &Params::new())
            .await
    }

    /// `POST …/snapshot` and waits for the task. `vmstate` is refused for containers
    /// (nothing sent). After a lost answer the list is checked for the snapshot before the
    /// request is sent again.
    pub async fn create_snapshot(&self, opts: &SnapshotOptions) -> Result<()> {
        if opts.vmstate && self.kind() == GuestKind::Lxc {
            return Err(Error::InvalidInput {
                what: format!("snapshot {} of CT {} with vmstate", opts.name, self.vmid()),
                why: "containers have no RAM state to save; take a disk snapshot".to_owned(),
            });
        }
        let mut params = Params::new().with("snapname", opts.name.as_str());
        if let Some(d) = &opts.description {
            params.insert("description", d.as_str());
        }
        if opts.vmstate {
            params.insert("vmstate", true);
        }
        let name = opts.name.as_str();
        self.run_task(Method::POST, &self.path(&["snapshot"]), &params, || async {
            Ok(self.snapshots().await?.iter().any(|s| s.name == name))
        })
        .await
    }

    /// `POST …/snapshot/{name}/rollback` and waits for the task. The guest's disks and
    /// config (NICs, `link_down`, tags) return to the snapshot; a running VM is stopped. A
    /// snapshot with RAM resumes running; `start` also starts a guest after a disk-only one
    /// (QEMU and LXC; needs VM.PowerMgmt). PVE refuses on ZFS when newer snapshots exist.
    pub async fn rollback(&self, name: &SnapshotName, start: bool) -> Result<()> {
        let mut params = Params::new();
        if start {
            // QEMU and LXC rollbacks both take `start` (the API schema lists it for both).
            params.insert("start", true);
        }
        let path = self.path(&["snapshot", name.as_str(), "rollback"]);
        // A rollback whose answer was lost cannot be told apart from none on the guest;
        // repeating it to the same snapshot ends in the same state.
        self.run_task(Method::POST, &path, &params, || async { Ok(false) })
            .await
    }

    /// `DELETE …/snapshot/{name}` (`force` removes the config entry even if deleting a disk
    /// snapshot fails) and waits for the task. A snapshot found gone after a lost answer
    /// counts as deleted.
    pub async fn delete_snapshot(&self, name: &SnapshotName, force: bool) -> Result<()> {
        let mut params = Params::new();
        if force {
            params.insert("force", true);
        }
        let path = self.path(&["snapshot", name.as_str()]);
        let wanted = name.as_str();
        self.run_task(Method::DELETE, &path, &params, || async {
            Ok(!self.snapshots().await?.iter().any(|s| s.name == wanted))
        })
        .await
    }

    /// `POST /nodes/{node}/vzdump` for this guest and waits for the task (the guest's
    /// config lock `backup` makes other changes wait meanwhile). A lost answer is not
    /// repeated (a second backup would run): the error says so.
    pub async fn vzdump(&self, opts: &VzdumpOptions) -> Result<Backup> {
        let path = api_path(&["nodes", self.node().as_str(), "vzdump"]);
        let params = Params::new()
            .with("vmid", self.vmid())
            .with("mode", opts.mode.as_str())
            .opt("storage", opts.storage.as_deref())
            .opt("compress", opts.compress.as_deref())
            .opt("notes-template", opts.notes_template.as_deref())
            .opt("protected", opts.protected.then_some(true));
        let upid: crate::upid::Upid = self.api().client().post(&path, &params).await?;
        let timeout = self.api().timing().clone_timeout;
        let task = self.api().wait_task(&upid, timeout).await?;
        let archive = self
            .api()
            .task_log(&upid)
            .await
            .iter()
            .find_map(|line| archive_of(line));
        Ok(Backup { task, archive })
    }

    /// Sets the link of NIC `net` (`net0`, …) up or down: the whole `netX` value is written
    /// back with `link_down=1` added or removed, MAC included (a `netX` sent without its MAC
    /// gets a new one), guarded by the config digest. Applied live by PVE. Refuses a NIC
    /// without a MAC in its config (writing it back would make PVE generate one).
    pub async fn set_link(&self, net: &str, up: bool) -> Result<LinkChange> {
        let index = net
            .strip_prefix("net")
            .and_then(|i| i.parse::<u32>().ok())
            .filter(|i| net == format!("net{i}"))
            .ok_or_else(|| Error::InvalidInput {
                what: format!("network device {net:?}"),
                why: "a network device is named net0, net1, …".to_owned(),
            })?;
        let mut seen: Option<LinkChange> = None;
        let mut missing_mac = false;
        self.update_nic(index, |nic| {
            let was_down = nic.link_down();
            match nic.mac() {
                Some(mac) => {
                    missing_mac = false;
                    seen = Some(LinkChange {
                        net: net.to_owned(),
                        mac: mac.to_owned(),
                        was_down,
                        down: !up,
                    });
                    nic.set_link_down(!up);
                }
                // Leave it unchanged: nothing is written.
                None => missing_mac = true,
            }
        })
        .await?;
        if missing_mac {
            return Err(Error::Refused {
                why: format!(
                    "{net} of {} {} has no MAC address in its config; writing it back would \
                     make PVE generate a new one. Set its MAC first",
                    self.kind().noun(),
                    self.vmid()
                ),
            });
        }
        seen.ok_or_else(|| Error::Unexpected {
            what: format!("GET {}", self.path(&["config"])),
            why: format!("{net} was not read"),
        })
    }

    /// Sends a task-starting request and waits for its task. After a lost answer `done`
    /// is checked before the request is sent again; an effect seen there counts as done.
    async fn run_task<F, Fut>(
        &self,
        method: Method,
        path: &str,
        params: &Params,
        done: F,
    ) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool>>,
    {
        if let Some(upid) = self.send_task_checked(method, path, params, done).await? {
            self.api()
                .wait_task(&upid, self.api().timing().task_timeout)
                .await?;
        }
        Ok(())
    }
}

/// The archive named by a vzdump log line.
fn archive_of(line: &str) -> Option<String> {
    let rest = line
        .split_once("creating vzdump archive '")
        .or_else(|| line.split_once("creating Proxmox Backup Server archive '"))?
        .1;
    let end = rest.find('\'')?;
    Some(rest[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_follow_pve_configid() {
        for ok in ["baseline", "deadline_2026-07-01T12", "Ab", "x1"] {
            SnapshotName::new(ok).unwrap();
        }
        for (bad, needle) in [
            ("", "letter"),
            ("1st", "letter"),
            ("a", "at least 2"),
            ("a b", "only letters"),
            ("a.b", "only letters"),
            ("current", "reserved"),
            ("vzdump", "reserved"),
            (&"a".repeat(41), "at most 40"),
        ] {
            let e = SnapshotName::new(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn snapshot_list_reads_loose_fields() {
        let list: Vec<Snapshot> = serde_json::from_str(
            r#"[{"name":"base","snaptime":"1700000000","vmstate":0,"description":""},
                {"name":"ram","parent":"base","snaptime":1700000100,"vmstate":1},
                {"name":"current","parent":"ram","running":1,"digest":"x"}]"#,
        )
        .unwrap();
        assert_eq!(list[0].snaptime, Some(1_700_000_000));
        assert!(!list[0].vmstate && list[1].vmstate);
        assert!(list[2].is_current() && !list[1].is_current());
        assert_eq!(list[2].parent.as_deref(), Some("ram"));
    }

    #[test]
    fn archive_names_come_from_the_log() {
        assert_eq!(
            archive_of("INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-qemu-100-2026_07_01-12_00_00.vma.zst'")
                .as_deref(),
            Some("/var/lib/vz/dump/vzdump-qemu-100-2026_07_01-12_00_00.vma.zst")
        );
        assert_eq!(
            archive_of(
                "INFO: creating Proxmox Backup Server archive 'vm/100/2026-07-01T12:00:00Z'"
            )
            .as_deref(),
            Some("vm/100/2026-07-01T12:00:00Z")
        );
        assert_eq!(archive_of("INFO: starting new backup job"), None);
    }
}
