//! Identifier newtypes: guest kinds and pool ids; guest ids and node names are
//! `lab_types`' [`VmId`] and [`NodeName`], shared with every labctl crate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};

pub use lab_types::{Invalid, NodeName, VmId};

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
