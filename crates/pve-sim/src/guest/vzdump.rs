//! `POST /nodes/{node}/vzdump`: a `vzdump` task that backs up the node's guests named in
//! `vmid` and leaves one backup volume each (`<storage>:backup/vzdump-qemu-<vmid>-
//! <YYYY_MM_DD-HH_MM_SS>.vma.zst`), kept with the guest's config and inside as they
//! were (listed in `/_sim/state` under `backups`).
//!
//! Permissions as PVE's description says: `VM.Backup` on each guest and
//! `Datastore.AllocateSpace` on the target storage (default `local`). `mode=stop` stops
//! a running guest for the backup and starts it again; `snapshot` (default) and
//! `suspend` keep it running. A guest locked by another operation fails its part of the
//! job (`job errors`).

use std::sync::Arc;

use serde_json::{json, Value};

use super::os::GuestOs;
use super::Kind;
use crate::error::{ApiError, ApiResult};
use crate::routing::Req;
use crate::state::{unix_now, Shared};
use crate::tasks::spawn_task;

/// Simulated seconds per guest.
pub(crate) const BACKUP: f64 = 5.0;

/// A backup volume.
#[derive(Debug, Clone)]
pub(crate) struct Backup {
    pub volid: String,
    pub vmid: u32,
    pub node: String,
    pub ctime: u64,
    pub notes: Option<String>,
    pub protected: bool,
    pub config: std::collections::BTreeMap<String, String>,
    pub os: GuestOs,
}

impl Backup {
    /// As `/_sim/state` lists it.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "volid": self.volid, "vmid": self.vmid, "node": self.node, "ctime": self.ctime,
            "notes": self.notes, "protected": self.protected, "config": self.config,
            "files": self.os.files.len(),
        })
    }
}

/// `YYYY_MM_DD-HH_MM_SS` (UTC) of a Unix time.
fn stamp(t: u64) -> String {
    let days = t / 86_400;
    let secs = t % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}_{m:02}_{d:02}-{:02}_{:02}_{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

fn vmids(r: &Req<'_>) -> ApiResult<Vec<u32>> {
    if r.flag("all") && r.param("vmid").is_some() {
        return Err(ApiError::param(
            "all",
            "option conflicts with option 'vmid'",
        ));
    }
    let Some(list) = r.param("vmid") else {
        return Err(ApiError::param("vmid", "property is missing"));
    };
    list.split([',', ';', ' '])
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>().map_err(|_| {
                ApiError::param(
                    "vmid",
                    format!("value '{s}' does not look like a valid VM ID"),
                )
            })
        })
        .collect()
}

/// `POST /nodes/{node}/vzdump`.
pub(crate) fn start(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let node = r.node().to_owned();
    let ids = vmids(r)?;
    let storage = r.param("storage").unwrap_or("local").to_owned();
    let mode = r.param("mode").unwrap_or("snapshot").to_owned();
    let ext = match r.param("compress") {
        None | Some("0") => "vma",
        Some("gzip") => "vma.gz",
        Some("lzo" | "1") => "vma.lzo",
        Some(_) => "vma.zst",
    };
    let notes = r.param("notes-template").map(str::to_owned);
    let protected = r.flag("protected");
    {
        let st = sh.lock();
        let p = crate::access::Principal::of(r.caller);
        if p != crate::access::Principal::Root {
            for id in &ids {
                crate::access::check(&st, &p, &format!("/vms/{id}"), &["VM.Backup"], false)?;
            }
            crate::access::check(
                &st,
                &p,
                &format!("/storage/{storage}"),
                &["Datastore.AllocateSpace"],
                false,
            )?;
        }
    }
    let task_id = if ids.len() == 1 {
        ids[0].to_string()
    } else {
        String::new()
    };
    let cmdline = format!(
        "INFO: starting new backup job: vzdump {} --mode {mode} --storage {storage}{}",
        ids.iter().map(u32::to_string).collect::<Vec<_>>().join(" "),
        r.param("compress")
            .map(|c| format!(" --compress {c}"))
            .unwrap_or_default()
    );
    let sh2 = Arc::clone(sh);
    let upid = spawn_task(
        sh,
        &node.clone(),
        "vzdump",
        &task_id,
        r.caller,
        vec![cmdline],
        move |upid| async move {
            let mut failed = false;
            let log = |line: String| sh2.lock().tasks.log(&upid, line);
            let external: Vec<String> = {
                let st = sh2.lock();
                ids.iter()
                    .filter(|id| st.guests.get(id).is_none_or(|g| g.node != node))
                    .map(u32::to_string)
                    .collect()
            };
            if !external.is_empty() {
                log(format!("INFO: skip external VMs: {}", external.join(",")));
            }
            for id in ids.iter().copied() {
                let started = unix_now();
                let (kind, was_running) = {
                    let mut st = sh2.lock();
                    let Some(g) = st.guests.get_mut(&id).filter(|g| g.node == node) else {
                        continue;
                    };
                    if let Err(e) = g.check_lock() {
                        let msg = format!("ERROR: Backup of VM {id} failed - {}", e.message);
                        st.tasks.log(&upid, msg);
                        failed = true;
                        continue;
                    }
                    g.config.insert("lock".into(), "backup".into());
                    let was_running = g.running;
                    if mode == "stop" && was_running {
                        crate::lifecycle::power_off(g);
                    }
                    (g.kind, was_running)
                };
                let typ = if kind == Kind::Qemu { "qemu" } else { "lxc" };
                log(format!("INFO: Starting Backup of VM {id} ({typ})"));
                let volname = format!(
                    "vzdump-{typ}-{id}-{}.{}",
                    stamp(started),
                    if kind == Kind::Qemu {
                        ext.to_owned()
                    } else {
                        ext.replace("vma", "tar")
                    }
                );
                log(format!(
                    "INFO: creating vzdump archive '/var/lib/vz/dump/{volname}'"
                ));
                sh2.sleep(BACKUP).await;
                let mut st = sh2.lock();
                let Some(g) = st.guests.get_mut(&id) else {
                    failed = true;
                    continue;
                };
                g.config.remove("lock");
                let backup = Backup {
                    volid: format!("{storage}:backup/{volname}"),
                    vmid: id,
                    node: node.clone(),
                    ctime: started,
                    notes: notes.as_ref().map(|t| {
                        t.replace("{{guestname}}", g.name().unwrap_or_default())
                            .replace("{{vmid}}", &id.to_string())
                            .replace("{{node}}", &node)
                    }),
                    protected,
                    config: g.config.as_map().clone(),
                    os: g.os.snapshot(),
                };
                if mode == "stop" && was_running {
                    crate::lifecycle::boot(&sh2, &mut st, id);
                }
                st.tasks.log(
                    &upid,
                    format!("INFO: Finished Backup of VM {id} (00:00:05)"),
                );
                st.backups.push(backup);
            }
            if failed {
                return Err("job errors".into());
            }
            log("INFO: Backup job finished successfully".into());
            Ok(0)
        },
    );
    Ok(json!(upid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_calendar_times() {
        assert_eq!(stamp(0), "1970_01_01-00_00_00");
        assert_eq!(stamp(1_733_355_725), "2024_12_04-23_42_05");
        assert_eq!(stamp(951_782_400), "2000_02_29-00_00_00");
    }
}
