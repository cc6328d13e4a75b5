//! Identifier newtypes: guest ids, node names, guest kinds, pool ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};

/// A guest id (VMID), `100..=999_999_999` as PVE allows.
///
/// Reads a JSON number or a numeric string (PVE sends both), writes a number.
///
/// ```
/// use pve_vm::VmId;
/// let id: VmId = "105".parse().unwrap();
/// assert_eq!(id.get(), 105);
/// assert!(VmId::try_from(99).is_err());
/// assert_eq!(serde_json::from_str::<VmId>("\"9000\"").unwrap(), VmId::new(9000).unwrap());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct VmId(u32);

impl VmId {
    /// The smallest id PVE accepts.
    pub const MIN: VmId = VmId(100);
    /// The largest id PVE accepts.
    pub const MAX: VmId = VmId(999_999_999);

    /// Checks the range.
    pub fn new(id: u32) -> Result<Self> {
        if (Self::MIN.0..=Self::MAX.0).contains(&id) {
            Ok(Self(id))
        } else {
            Err(Error::InvalidInput {
                what: format!("guest id {id}"),
                why: "guest ids are 100..=999999999".to_owned(),
            })
        }
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The following id, `None` after [`VmId::MAX`].
    pub fn next(self) -> Option<VmId> {
        (self.0 < Self::MAX.0).then_some(VmId(self.0 + 1))
    }
}

impl fmt::Display for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<u32> for VmId {
    type Error = Error;

    fn try_from(id: u32) -> Result<Self> {
        VmId::new(id)
    }
}

impl From<VmId> for u32 {
    fn from(id: VmId) -> u32 {
        id.0
    }
}

impl FromStr for VmId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let n: u32 = s.trim().parse().map_err(|_| Error::InvalidInput {
            what: format!("guest id {s:?}"),
            why: "not a number; guest ids are 100..=999999999".to_owned(),
        })?;
        VmId::new(n)
    }
}

impl<'de> Deserialize<'de> for VmId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        pve_auth::perl::vmid(d).map(VmId)
    }
}

impl pve_auth::ParamValue for VmId {
    fn to_param(&self) -> String {
        self.0.to_string()
    }
}

/// A cluster node name as PVE accepts it: letters, digits and inner `-`, at most 63
/// characters (one DNS label). Case-sensitive.
///
/// ```
/// use pve_vm::NodeName;
/// let n: NodeName = "pve-1".parse().unwrap();
/// assert_eq!(n.as_str(), "pve-1");
/// assert!("pve1.example.org".parse::<NodeName>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct NodeName(String);

impl NodeName {
    /// Checks the name.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        check_label(&name, "node name")?;
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks one DNS label: `[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?`, 1..=63 characters.
fn check_label(name: &str, what: &str) -> Result<()> {
    let bad = |why: String| Error::InvalidInput {
        what: format!("{what} {name:?}"),
        why,
    };
    if name.is_empty() {
        return Err(bad("it is empty".to_owned()));
    }
    if name.len() > 63 {
        return Err(bad(format!(
            "it has {} characters, at most 63 are allowed",
            name.len()
        )));
    }
    if let Some((i, c)) = name
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(bad(format!(
            "character {c:?} at position {} is not allowed (only letters, digits and '-')",
            i + 1
        )));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(bad("it must not start or end with '-'".to_owned()));
    }
    Ok(())
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for NodeName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        NodeName::new(s)
    }
}

impl TryFrom<&str> for NodeName {
    type Error = Error;

    fn try_from(s: &str) -> Result<Self> {
        NodeName::new(s)
    }
}

impl AsRef<str> for NodeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for NodeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NodeName::new(s).map_err(serde::de::Error::custom)
    }
}

/// The two kinds of PVE guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    /// A QEMU/KVM virtual machine (`/nodes/{node}/qemu/{vmid}`).
    Qemu,
    /// An LXC container (`/nodes/{node}/lxc/{vmid}`).
    Lxc,
}

impl GuestKind {
    /// The API path segment: `qemu` or `lxc`.
    pub fn as_str(self) -> &'static str {
        match self {
            GuestKind::Qemu => "qemu",
            GuestKind::Lxc => "lxc",
        }
    }

    /// How PVE's messages name this kind: `VM` or `CT`.
    pub fn noun(self) -> &'static str {
        match self {
            GuestKind::Qemu => "VM",
            GuestKind::Lxc => "CT",
        }
    }
}

impl fmt::Display for GuestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GuestKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "qemu" => Ok(GuestKind::Qemu),
            "lxc" => Ok(GuestKind::Lxc),
            _ => Err(Error::InvalidInput {
                what: format!("guest kind {s:?}"),
                why: "expected \"qemu\" or \"lxc\"".to_owned(),
            }),
        }
    }
}

/// A resource pool id: segments of letters, digits, `-` and `_` starting with a letter,
/// optionally nested up to three levels with `/` (PVE ≥ 8.1).
///
/// ```
/// use pve_vm::PoolId;
/// assert!("exam-2024".parse::<PoolId>().is_ok());
/// assert!("lab/exam_1".parse::<PoolId>().is_ok());
/// assert!("9lab".parse::<PoolId>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PoolId(String);

impl PoolId {
    /// Checks the id.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        let bad = |why: String| Error::InvalidInput {
            what: format!("pool id {id:?}"),
            why,
        };
        let segments: Vec<&str> = id.split('/').collect();
        if segments.len() > 3 {
            return Err(bad("pools nest at most three levels deep".to_owned()));
        }
        for seg in segments {
            let Some(first) = seg.chars().next() else {
                return Err(bad("it has an empty segment".to_owned()));
            };
            if !first.is_ascii_alphabetic() {
                return Err(bad(format!("it must start with a letter, not {first:?}")));
            }
            if let Some(c) = seg
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
            {
                return Err(bad(format!(
                    "character {c:?} is not allowed (letters, digits, '-', '_', '/' for nesting)"
                )));
            }
        }
        Ok(Self(id))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PoolId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        PoolId::new(s)
    }
}

impl<'de> Deserialize<'de> for PoolId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PoolId::new(s).map_err(serde::de::Error::custom)
    }
}

/// Checks a host name as PVE's `dns-name` format does (labels of letters, digits and inner
/// `-`, joined by `.`), naming the first character that is not allowed.
///
/// ```
/// assert!(pve_vm::validate_hostname("stud-01.exam").is_ok());
/// let err = pve_vm::validate_hostname("stud_01").unwrap_err().to_string();
/// assert!(err.contains("'_'"), "{err}");
/// ```
pub fn validate_hostname(name: &str) -> Result<()> {
    let bad = |why: String| Error::InvalidInput {
        what: format!("hostname {name:?}"),
        why,
    };
    if name.is_empty() {
        return Err(bad("it is empty".to_owned()));
    }
    if name.len() > 253 {
        return Err(bad(format!(
            "it has {} characters, at most 253 are allowed",
            name.len()
        )));
    }
    if let Some((i, c)) = name
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(bad(format!(
            "character {c:?} at position {} is not allowed in a DNS name (only letters, digits, '-' and '.')",
            name[..i].chars().count() + 1
        )));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(bad(
                "it has an empty label (leading, trailing or double '.')".to_owned(),
            ));
        }
        if label.len() > 63 {
            return Err(bad(format!("label {label:?} is longer than 63 characters")));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad(format!(
                "label {label:?} must not start or end with '-'"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmid_range_and_parsing() {
        assert_eq!(VmId::new(100).unwrap().get(), 100);
        assert_eq!(VmId::new(999_999_999).unwrap(), VmId::MAX);
        for bad in [0, 99, 1_000_000_000] {
            let e = VmId::try_from(bad).unwrap_err().to_string();
            assert!(
                e.contains(&bad.to_string()) && e.contains("100..=999999999"),
                "{e}"
            );
        }
        assert_eq!("  101 ".parse::<VmId>().unwrap().get(), 101);
        assert!("abc"
            .parse::<VmId>()
            .unwrap_err()
            .to_string()
            .contains("abc"));
        assert_eq!(VmId::MAX.next(), None);
        assert_eq!(VmId::MIN.next().unwrap().get(), 101);
    }

    #[test]
    fn vmid_serde_is_lenient_in_and_numeric_out() {
        assert_eq!(serde_json::from_str::<VmId>("105").unwrap().get(), 105);
        assert_eq!(serde_json::from_str::<VmId>("\"105\"").unwrap().get(), 105);
        assert!(serde_json::from_str::<VmId>("42").is_err());
        assert!(serde_json::from_str::<VmId>("\"x\"").is_err());
        assert_eq!(serde_json::to_string(&VmId::MIN).unwrap(), "100");
    }

    #[test]
    fn node_names() {
        for ok in ["pve", "pve1", "PVE-node-2", "a"] {
            assert_eq!(NodeName::new(ok).unwrap().to_string(), ok);
        }
        for (bad, needle) in [
            ("", "empty"),
            ("-pve", "start or end"),
            ("pve-", "start or end"),
            ("pve.lan", "'.'"),
            ("pve 1", "' '"),
        ] {
            let e = NodeName::new(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        assert!(NodeName::new("a".repeat(64)).is_err());
        assert!(serde_json::from_str::<NodeName>("\"pve_1\"").is_err());
    }

    #[test]
    fn guest_kind_round_trip() {
        assert_eq!("qemu".parse::<GuestKind>().unwrap(), GuestKind::Qemu);
        assert_eq!(GuestKind::Lxc.to_string(), "lxc");
        assert_eq!(GuestKind::Lxc.noun(), "CT");
        assert!("vm".parse::<GuestKind>().is_err());
        assert_eq!(
            serde_json::from_str::<GuestKind>("\"lxc\"").unwrap(),
            GuestKind::Lxc
        );
    }

    #[test]
    fn hostnames_name_the_offending_character() {
        for ok in ["stud-01", "a", "stud01.exam.lan", "A1"] {
            validate_hostname(ok).unwrap();
        }
        let e = validate_hostname("stud_01").unwrap_err().to_string();
        assert!(e.contains("'_'") && e.contains("position 5"), "{e}");
        let e = validate_hostname("stud 01").unwrap_err().to_string();
        assert!(e.contains("' '"), "{e}");
        let e = validate_hostname("stüd").unwrap_err().to_string();
        assert!(e.contains("'ü'") && e.contains("position 3"), "{e}");
        assert!(validate_hostname("")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(validate_hostname("a..b").is_err());
        assert!(validate_hostname("-a").is_err());
        assert!(validate_hostname(&"a".repeat(64)).is_err());
    }

    #[test]
    fn pool_ids() {
        assert!(PoolId::new("lab/a/b").is_ok());
        assert!(PoolId::new("lab/a/b/c").is_err());
        assert!(PoolId::new("lab//a").is_err());
        assert!(PoolId::new("la b").unwrap_err().to_string().contains("' '"));
    }
}
