//! The task id (UPID) PVE returns for every asynchronous operation (reference §6.2).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::ids::{NodeName, VmId};

/// A parsed task id:
/// `UPID:<node>:<pid 8 hex>:<pstart 8–9 hex>:<starttime 8 hex>:<type>:<id>:<user>:`.
///
/// `Display` writes the original string back unchanged.
///
/// ```
/// use pve_vm::Upid;
/// let u: Upid = "UPID:pve1:0012D68C:8206F38C:65144CB7:qmclone:9000:lab@pve!runner:".parse().unwrap();
/// assert_eq!(u.node().as_str(), "pve1");
/// assert_eq!(u.task_type(), "qmclone");
/// assert_eq!(u.id(), "9000");
/// assert_eq!(u.user(), "lab@pve!runner");
/// assert_eq!(u.starttime(), 0x65144CB7);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Upid(Arc<Fields>);

#[derive(PartialEq, Eq, Hash)]
struct Fields {
    raw: String,
    node: NodeName,
    pid: u32,
    pstart: u64,
    starttime: u64,
    task_type: String,
    id: String,
    user: String,
}

impl fmt::Debug for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Upid").field(&self.0.raw).finish()
    }
}

impl Upid {
    /// The node that runs the task; its status and log are only known there.
    pub fn node(&self) -> &NodeName {
        &self.0.node
    }

    /// Process id of the worker.
    pub fn pid(&self) -> u32 {
        self.0.pid
    }

    /// Process start time in clock ticks.
    pub fn pstart(&self) -> u64 {
        self.0.pstart
    }

    /// Task start, Unix seconds.
    pub fn starttime(&self) -> u64 {
        self.0.starttime
    }

    /// The task type, e.g. `qmstart`, `qmclone`, `vzdestroy`.
    pub fn task_type(&self) -> &str {
        &self.0.task_type
    }

    /// The task's object id (for guest tasks the vmid; for clones the *source* id); may be empty.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The id field as a guest id, when it is one.
    pub fn vmid(&self) -> Option<VmId> {
        self.0.id.parse().ok()
    }

    /// Who started the task: `user@realm` or `user@realm!tokenid`.
    pub fn user(&self) -> &str {
        &self.0.user
    }

    /// The UPID string.
    pub fn as_str(&self) -> &str {
        &self.0.raw
    }
}

fn is_hex(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn field_ok(s: &str, allow_empty: bool) -> bool {
    (allow_empty || !s.is_empty()) && !s.chars().any(|c| c == '/' || c.is_whitespace())
}

impl FromStr for Upid {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidInput {
            what: format!("task id (UPID) {s:?}"),
            why: format!(
                "{why}; expected UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:"
            ),
        };
        let rest = s
            .strip_prefix("UPID:")
            .ok_or_else(|| bad("it does not start with \"UPID:\""))?;
        let rest = rest
            .strip_suffix(':')
            .ok_or_else(|| bad("it does not end with ':'"))?;
        let parts: Vec<&str> = rest.split(':').collect();
        let [node, pid, pstart, starttime, task_type, id, user] = parts[..] else {
            return Err(bad(&format!("it has {} fields instead of 7", parts.len())));
        };
        let node = NodeName::new(node).map_err(|_| bad("the node name is not valid"))?;
        if !is_hex(pid, 8, 8) {
            return Err(bad("the pid is not 8 hex digits"));
        }
        if !is_hex(pstart, 8, 9) {
            return Err(bad("pstart is not 8-9 hex digits"));
        }
        if !is_hex(starttime, 8, 8) {
            return Err(bad("the start time is not 8 hex digits"));
        }
        if !field_ok(task_type, false) || !field_ok(id, true) || !field_ok(user, false) {
            return Err(bad(
                "type, id or user contain '/' or whitespace, or are empty",
            ));
        }
        let hex = |v: &str| u64::from_str_radix(v, 16).map_err(|_| bad("bad hex number"));
        Ok(Upid(Arc::new(Fields {
            raw: s.to_owned(),
            node,
            pid: u32::from_str_radix(pid, 16).map_err(|_| bad("bad pid"))?,
            pstart: hex(pstart)?,
            starttime: hex(starttime)?,
            task_type: task_type.to_owned(),
            id: id.to_owned(),
            user: user.to_owned(),
        })))
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.raw)
    }
}

impl Serialize for Upid {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.raw)
    }
}

impl<'de> Deserialize<'de> for Upid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reference_examples() {
        let s = "UPID:pve-srv:0012D68C:8206F38C:65144CB7:qmclone:501:root@pam:";
        let u: Upid = s.parse().unwrap();
        assert_eq!(u.to_string(), s);
        assert_eq!(u.node().as_str(), "pve-srv");
        assert_eq!(u.pid(), 0x0012_D68C);
        assert_eq!(u.pstart(), 0x8206_F38C);
        assert_eq!(u.vmid().unwrap().get(), 501);
        let u: Upid = "UPID:node1:000FF1FD:10F9374CA:630D702C:vzdump::root@pam:"
            .parse()
            .unwrap();
        assert_eq!(u.id(), "");
        assert_eq!(u.vmid(), None);
        assert_eq!(u.pstart(), 0x0001_0F93_74CA);
        let json = serde_json::to_string(&u).unwrap();
        assert_eq!(serde_json::from_str::<Upid>(&json).unwrap(), u);
    }

    #[test]
    fn rejects_malformed_with_reason() {
        for (bad, needle) in [
            ("", "UPID:"),
            (
                "UPID:pve1:0012D68C:8206F38C:65144CB7:qmclone:501:root@pam",
                "end with",
            ),
            (
                "UPID:pve1:12D68C:8206F38C:65144CB7:qmclone:501:root@pam:",
                "pid",
            ),
            (
                "UPID:pve1:0012D68C:8206F38C:65144CB7:qmclone:501:",
                "fields",
            ),
            (
                "UPID:pve_1:0012D68C:8206F38C:65144CB7:qmclone:501:root@pam:",
                "node",
            ),
            (
                "UPID:pve1:0012D68C:8206F38C:65144CB7:qm clone:501:root@pam:",
                "whitespace",
            ),
        ] {
            let e = bad.parse::<Upid>().unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
