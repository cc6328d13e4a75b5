//! Guest configuration: reading (all raw keys kept), updates, tags.

use std::collections::BTreeMap;

use pve_auth::Params;
use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};
use crate::netdev::NetDevice;

/// A guest's configuration as `GET …/config` returns it: every key kept raw (PVE's types are
/// loose: `"cores": 2` or `"cpulimit": "4"`), plus the file digest for safe updates.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GuestConfig {
    /// SHA1 of the config file; send it with an update to detect concurrent changes.
    pub digest: Option<String>,
    /// All other keys with their values as sent.
    pub raw: BTreeMap<String, serde_json::Value>,
}

impl<'de> Deserialize<'de> for GuestConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let mut raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
        let digest = match raw.remove("digest") {
            Some(serde_json::Value::String(s)) => Some(s),
            _ => None,
        };
        Ok(Self { digest, raw })
    }
}

impl GuestConfig {
    /// The value of `key` as text (numbers written in decimal, booleans as `0`/`1`).
    pub fn get(&self, key: &str) -> Option<String> {
        match self.raw.get(key)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_owned()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// Reads a PVE boolean key (`1`, `"1"`, `true`, `on`, `yes`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key).as_deref(), Some("1" | "true" | "on" | "yes"))
    }

    /// `template: 1`.
    pub fn is_template(&self) -> bool {
        self.flag("template")
    }

    /// The config lock (`clone`, `create`, `disk`, `backup`, …), if any.
    pub fn lock(&self) -> Option<String> {
        self.get("lock")
    }

    /// The QEMU `name` or LXC `hostname`.
    pub fn name(&self) -> Option<String> {
        self.get("name").or_else(|| self.get("hostname"))
    }

    /// The tags, split as PVE stores them (`a;b`).
    pub fn tags(&self) -> Vec<String> {
        self.get("tags")
            .map(|t| split_tags(&t).map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// QEMU: the guest agent is enabled (`agent: 1` or `agent: enabled=1,…`).
    pub fn agent_enabled(&self) -> bool {
        let Some(agent) = self.get("agent") else {
            return false;
        };
        agent.split(',').any(|part| match part.split_once('=') {
            None => matches!(part, "1" | "on" | "yes" | "true"),
            Some(("enabled", v)) => matches!(v, "1" | "on" | "yes" | "true"),
            Some(_) => false,
        })
    }

    /// The network devices `netN`, ordered by N. Entries that do not parse are skipped with
    /// a debug log (PVE accepted them, so they are not ours to judge).
    pub fn nics(&self) -> Vec<(u32, NetDevice)> {
        let mut out: Vec<(u32, NetDevice)> = self
            .raw
            .keys()
            .filter_map(|k| {
                let n: u32 = k.strip_prefix("net")?.parse().ok()?;
                let value = self.get(k)?;
                match NetDevice::parse(&value) {
                    Ok(dev) => Some((n, dev)),
                    Err(e) => {
                        tracing::debug!(key = %k, error = %e, "skipping unparsable NIC");
                        None
                    }
                }
            })
            .collect();
        out.sort_by_key(|(n, _)| *n);
        out
    }
}

/// A config change: keys to set, keys to delete, and optionally the digest the change was
/// based on (PVE then refuses if someone changed the config meanwhile).
///
/// ```
/// use pve_vm::ConfigUpdate;
/// let u = ConfigUpdate::new().set("cores", 2).set("name", "stud-01").delete("description");
/// assert_eq!(u.to_params().to_query(), "cores=2&name=stud-01&delete=description");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct ConfigUpdate {
    set: Vec<(String, String)>,
    delete: Vec<String>,
    digest: Option<String>,
}

impl ConfigUpdate {
    /// No change.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` (booleans as `0`/`1`).
    pub fn set(mut self, key: &str, value: impl pve_auth::ParamValue) -> Self {
        let value = value.to_param();
        match self.set.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value,
            None => self.set.push((key.to_owned(), value)),
        }
        self.delete.retain(|k| k != key);
        self
    }

    /// Removes `key` from the config.
    pub fn delete(mut self, key: &str) -> Self {
        self.set.retain(|(k, _)| k != key);
        if !self.delete.iter().any(|k| k == key) {
            self.delete.push(key.to_owned());
        }
        self
    }

    /// Only apply if the config still has this digest.
    pub fn digest(mut self, digest: impl Into<String>) -> Self {
        self.digest = Some(digest.into());
        self
    }

    /// `true` when nothing would change.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty()
    }

    /// Checks the keys: names of letters, digits, `_` and `-` (no parameters of the call
    /// itself such as `node`, `vmid`, `digest`, `delete`).
    pub(crate) fn check(&self) -> Result<()> {
        for key in self
            .set
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(self.delete.iter().map(String::as_str))
        {
            let ok = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                return Err(Error::InvalidInput {
                    what: format!("config key {key:?}"),
                    why: "keys are letters, digits, '_' and '-'".to_owned(),
                });
            }
            if matches!(
                key,
                "node" | "vmid" | "digest" | "delete" | "revert" | "skiplock"
            ) {
                return Err(Error::InvalidInput {
                    what: format!("config key {key:?}"),
                    why: "this is a parameter of the call, not a config key".to_owned(),
                });
            }
        }
        Ok(())
    }

    /// The request parameters.
    pub fn to_params(&self) -> Params {
        let mut p = Params::new();
        for (k, v) in &self.set {
            p.insert(k, v.as_str());
        }
        if !self.delete.is_empty() {
            p.insert("delete", self.delete.join(","));
        }
        if let Some(d) = &self.digest {
            p.insert("digest", d.as_str());
        }
        p
    }
}

fn split_tags(input: &str) -> impl Iterator<Item = &str> {
    input
        .split([';', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Normalises tags as PVE stores them by default: checked against
/// `[a-z0-9_][a-z0-9_\-+.]*`, lower-cased, de-duplicated, sorted, joined with `;`.
/// Each input may itself hold several tags separated by `;`, `,` or spaces.
///
/// ```
/// let t = pve_vm::normalize_tags(["Student-07", "exam.2024;lab", "lab"]).unwrap();
/// assert_eq!(t, "exam.2024;lab;student-07");
/// assert!(pve_vm::normalize_tags(["a=b"]).unwrap_err().to_string().contains("'='"));
/// ```
pub fn normalize_tags<I, S>(tags: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    for input in tags {
        for tag in split_tags(input.as_ref()) {
            let lower = tag.to_ascii_lowercase();
            let mut chars = lower.chars();
            let first_ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if !first_ok {
                return Err(Error::InvalidInput {
                    what: format!("tag {tag:?}"),
                    why: "a tag starts with a letter, digit or '_'".to_owned(),
                });
            }
            if let Some(c) = lower
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.')))
            {
                return Err(Error::InvalidInput {
                    what: format!("tag {tag:?}"),
                    why: format!(
                        "character {c:?} is not allowed (letters, digits, '_', '-', '+', '.')"
                    ),
                });
            }
            out.push(lower);
        }
    }
    out.sort();
    out.dedup();
    Ok(out.join(";"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> GuestConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn keeps_raw_keys_and_reads_loose_types() {
        let c = cfg(
            r#"{"digest":"abc","cores":2,"cpulimit":"4","name":"stud-01","template":1,
                "agent":"1,fstrim_cloned_disks=1","tags":"exam;lab","x-future":{"a":1},
                "net1":"virtio=BC:24:11:00:00:02,bridge=vmbr1",
                "net0":"virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1","net10":"e1000",
                "netbad":"x","net2":"bridge"}"#,
        );
        assert_eq!(c.digest.as_deref(), Some("abc"));
        assert!(!c.raw.contains_key("digest"));
        assert_eq!(c.get("cores").as_deref(), Some("2"));
        assert_eq!(c.get("cpulimit").as_deref(), Some("4"));
        assert_eq!(c.get("x-future").as_deref(), Some(r#"{"a":1}"#));
        assert!(c.is_template() && c.agent_enabled());
        assert_eq!(c.name().as_deref(), Some("stud-01"));
        assert_eq!(c.tags(), vec!["exam", "lab"]);
        let nics = c.nics();
        let ids: Vec<u32> = nics.iter().map(|(n, _)| *n).collect();
        assert_eq!(ids, vec![0, 1, 10]);
        assert!(nics[0].1.firewall());
        assert_eq!(nics[1].1.mac(), Some("BC:24:11:00:00:02"));
    }

    #[test]
    fn agent_spellings() {
        assert!(cfg(r#"{"agent":1}"#).agent_enabled());
        assert!(cfg(r#"{"agent":"enabled=1,type=virtio"}"#).agent_enabled());
        assert!(!cfg(r#"{"agent":"0"}"#).agent_enabled());
        assert!(!cfg(r#"{"agent":"enabled=0,fstrim_cloned_disks=1"}"#).agent_enabled());
        assert!(!cfg(r#"{}"#).agent_enabled());
        assert_eq!(cfg(r#"{"hostname":"ct1"}"#).name().as_deref(), Some("ct1"));
    }

    #[test]
    fn update_params_and_checks() {
        let u = ConfigUpdate::new()
            .set("onboot", true)
            .delete("tags")
            .set("tags", "a")
            .delete("description")
            .digest("d1");
        assert_eq!(
            u.to_params().to_query(),
            "onboot=1&tags=a&delete=description&digest=d1"
        );
        assert!(!u.is_empty());
        u.check().unwrap();
        assert!(ConfigUpdate::new().is_empty());
        let e = ConfigUpdate::new().set("vmid", 5u32).check().unwrap_err();
        assert!(e.to_string().contains("parameter of the call"), "{e}");
        let e = ConfigUpdate::new().delete("a,b").check().unwrap_err();
        assert!(e.to_string().contains("\"a,b\""), "{e}");
    }

    #[test]
    fn tags_normalise_like_pve() {
        assert_eq!(
            normalize_tags(["B a", "a,c;B"]).unwrap(),
            "a;b;c",
            "split on space/comma/semicolon, lower, dedup, sort"
        );
        assert_eq!(normalize_tags(Vec::<String>::new()).unwrap(), "");
        for (bad, needle) in [("-x", "starts with"), ("a:b", "':'"), ("a/b", "'/'")] {
            let e = normalize_tags([bad]).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
