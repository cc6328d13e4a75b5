//! The vocabulary shared by labctl's crates: one type per concept.
//!
//! [`VmId`], [`NodeName`], [`LabName`], [`Secret`] and [`CloneMode`] are defined here, the
//! lowest crate that needs them, and re-exported by every crate whose API takes or returns
//! them (`pve_auth::Secret`, `pve_vm::{VmId, NodeName, CloneMode}`, `lab_core::{VmId,
//! NodeName, LabName, CloneMode}`, `pve_firewall::{VmId, LabName}`, …). They are the same
//! types, so a value flows from one crate to another without a conversion; depend on the
//! crate of the capability you use, not on this one.
//!
//! Every checked constructor fails with [`Invalid`], which names the input and what is
//! allowed; each crate's `Error` converts from it.
//!
//! **Semver.** These types are part of the public API of every crate that re-exports them:
//! a change here is a change there (see CONTRIBUTING.md, "What is public API").
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

// The README's example is compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// An input one of this crate's constructors refused: what it was, the value, what is
/// allowed. Displays as `invalid VMID "42": a guest id is a number from 100 to 999999999`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Which input (`VMID`, `node name`, `lab name`).
    pub what: &'static str,
    /// The value as given.
    pub input: String,
    /// What is wrong and what is allowed.
    pub allowed: String,
}

impl Invalid {
    fn new(what: &'static str, input: impl Into<String>, allowed: impl Into<String>) -> Self {
        Invalid {
            what,
            input: input.into(),
            allowed: allowed.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} {:?}: {}",
            self.what, self.input, self.allowed
        )
    }
}

impl std::error::Error for Invalid {}

/// What a guest id allows, for error messages.
const VMID_RULE: &str = "a guest id is a number from 100 to 999999999";

/// A guest id (VMID), `100..=999_999_999` as Proxmox VE allows.
///
/// Reads a JSON number or a numeric string (PVE sends both), writes a number.
///
/// ```
/// use lab_types::VmId;
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
    pub fn new(id: u32) -> Result<Self, Invalid> {
        if (Self::MIN.0..=Self::MAX.0).contains(&id) {
            Ok(VmId(id))
        } else {
            Err(Invalid::new("VMID", id.to_string(), VMID_RULE))
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
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for VmId {
    type Err = Invalid;

    /// Parses a decimal id; the error names the text as typed (`01`, not `1`).
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::new("VMID", s, VMID_RULE);
        let n: u32 = s.trim().parse().map_err(|_| bad())?;
        VmId::new(n).map_err(|_| bad())
    }
}

impl TryFrom<u32> for VmId {
    type Error = Invalid;

    fn try_from(id: u32) -> Result<Self, Invalid> {
        VmId::new(id)
    }
}

impl From<VmId> for u32 {
    fn from(id: VmId) -> u32 {
        id.0
    }
}

impl<'de> Deserialize<'de> for VmId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // PVE's Perl sends ids as numbers or as numeric strings.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => u32::try_from(n)
                .map_err(|_| Invalid::new("VMID", n.to_string(), VMID_RULE))
                .and_then(VmId::new),
            Raw::S(s) => s.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// A cluster node's name as PVE accepts it: letters, digits and inner `-`, at most 63
/// characters (one DNS label). Case-sensitive.
///
/// ```
/// use lab_types::NodeName;
/// let n: NodeName = "pve-1".parse().unwrap();
/// assert_eq!(n.as_str(), "pve-1");
/// assert!("pve1.example.org".parse::<NodeName>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct NodeName(String);

impl NodeName {
    /// Checks the name.
    pub fn new(name: impl Into<String>) -> Result<Self, Invalid> {
        let name = name.into();
        check_label(&name, "node name")?;
        Ok(NodeName(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks one DNS label: `[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?`, 1..=63 characters.
fn check_label(name: &str, what: &'static str) -> Result<(), Invalid> {
    let bad = |why: String| Invalid::new(what, name, why);
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
        // `pad`, so tables can align node names with `{:<8}`.
        f.pad(&self.0)
    }
}

impl FromStr for NodeName {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Invalid> {
        NodeName::new(s)
    }
}

impl TryFrom<&str> for NodeName {
    type Error = Invalid;

    fn try_from(s: &str) -> Result<Self, Invalid> {
        NodeName::new(s)
    }
}

impl AsRef<str> for NodeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for NodeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NodeName::new(s).map_err(serde::de::Error::custom)
    }
}

/// What a lab name allows, for error messages.
const LAB_NAME_RULE: &str = "1-14 characters: a lower-case letter, then lower-case letters, \
     digits or '-' (the firewall group iso-<lab> must fit PVE's 18 characters)";

/// A lab's name: 1-14 characters, a lower-case letter, then lower-case letters, digits or
/// `-`. Short and plain so it fits everywhere it is used: the pool id, the tag
/// `labctl.<lab>`, the clone marker in a guest's description and the firewall group
/// `iso-<lab>` (18 characters at most in PVE).
///
/// ```
/// use lab_types::LabName;
/// let lab = LabName::new("exam1").unwrap();
/// assert_eq!((lab.pool(), lab.tag()), ("exam1".to_owned(), "labctl.exam1".to_owned()));
/// assert_eq!(lab.marked_student(&lab.marker("exam1-03")), Some("exam1-03"));
/// assert!(LabName::new("Exam_1").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct LabName(String);

impl LabName {
    /// The longest lab name.
    pub const MAX_LEN: usize = 14;

    /// Checks the syntax.
    pub fn new(name: &str) -> Result<Self, Invalid> {
        let mut chars = name.chars();
        let ok = (1..=Self::MAX_LEN).contains(&name.len())
            && chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(LabName(name.to_owned()))
        } else {
            Err(Invalid::new("lab name", name, LAB_NAME_RULE))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The pool the lab's guests join: the lab name itself.
    pub fn pool(&self) -> String {
        self.0.clone()
    }

    /// The tag every lab guest carries (PVE tag syntax: no `:` or `=`).
    pub fn tag(&self) -> String {
        format!("labctl.{}", self.0)
    }

    /// The description a clone request writes, naming lab and student: the first mark a
    /// guest gets, in the same request that creates it.
    pub fn marker(&self, hostname: &str) -> String {
        format!("{}student {hostname}", self.marker_prefix())
    }

    fn marker_prefix(&self) -> String {
        format!("labctl lab {}: ", self.0)
    }

    /// `true` when `description` starts with this lab's clone marker.
    pub fn is_marker(&self, description: &str) -> bool {
        description.starts_with(&self.marker_prefix())
    }

    /// The student host name a clone marker names.
    pub fn marked_student<'a>(&self, description: &'a str) -> Option<&'a str> {
        description
            .strip_prefix(&self.marker_prefix())?
            .strip_prefix("student ")?
            .split_whitespace()
            .next()
    }
}

impl fmt::Display for LabName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl FromStr for LabName {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Invalid> {
        LabName::new(s)
    }
}

impl<'de> Deserialize<'de> for LabName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        LabName::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A string that must never be printed: passwords, tickets, CSRF tokens, token secrets.
/// `Debug` and `Display` print `***`; read it with [`Secret::expose`] only where the value
/// goes on the wire. Not `Serialize`, so it cannot be written out by accident.
///
/// Compared in constant time with respect to the content, so a comparison does not leak
/// timing information. Reads a JSON string or number (a server that turns an all-digit
/// password into a number).
///
/// ```
/// use lab_types::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(format!("{s} {s:?}"), "*** ***");
/// assert_eq!(s.expose(), "hunter2");
/// ```
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Call this only where the value goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `true` when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        // Length is not secret enough to matter; the content comparison does not short-circuit.
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl FromStr for Secret {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Infallible> {
        Ok(Secret::new(s))
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            U(u64),
            I(i64),
        }
        Ok(Secret(match Raw::deserialize(d)? {
            Raw::S(s) => s,
            Raw::U(n) => n.to_string(),
            Raw::I(n) => n.to_string(),
        }))
    }
}

/// Linked (fast, copy-on-write, needs the template kept) or full (independent) clones.
///
/// `Auto`, the default, is PVE's own: linked when the source is a template, full otherwise.
/// A lab clones from a template, so for a lab `Auto` and `Linked` are the same request (the
/// lab engine's spec says `Linked` unless told `Full`).
///
/// ```
/// use lab_types::CloneMode;
/// assert_eq!("full".parse::<CloneMode>().unwrap(), CloneMode::Full);
/// assert_eq!(CloneMode::default().to_string(), "auto");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CloneMode {
    /// PVE's default: no `full` parameter (linked for templates, full for other guests).
    #[default]
    Auto,
    /// Copy-on-write clone of the template's base disks (`full=0`).
    Linked,
    /// Independent copy of every disk (`full=1`).
    Full,
}

impl CloneMode {
    /// `true` unless a full copy is asked for: the clone shares the template's disks
    /// (always so from a template with [`CloneMode::Auto`]).
    pub fn is_linked(self) -> bool {
        self != CloneMode::Full
    }
}

impl fmt::Display for CloneMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            CloneMode::Auto => "auto",
            CloneMode::Linked => "linked",
            CloneMode::Full => "full",
        })
    }
}

impl FromStr for CloneMode {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "auto" => Ok(CloneMode::Auto),
            "linked" => Ok(CloneMode::Linked),
            "full" => Ok(CloneMode::Full),
            _ => Err(Invalid::new(
                "clone mode",
                s,
                "\"linked\", \"full\" or \"auto\"",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn vmid_range_and_lenient_reading() {
        assert!(VmId::new(99).is_err());
        assert!(VmId::new(1_000_000_000).is_err());
        assert_eq!(VmId::new(100).unwrap().get(), 100);
        assert_eq!(VmId::MAX.next(), None);
        let a: VmId = serde_json::from_str("\"5001\"").unwrap();
        let b: VmId = serde_json::from_str("5001").unwrap();
        assert_eq!(a, b);
        assert_eq!(serde_json::to_string(&a).unwrap(), "5001");
        assert!(serde_json::from_str::<VmId>("99").is_err());
        assert!(serde_json::from_str::<VmId>("5000000000").is_err());
        let e = "abc".parse::<VmId>().unwrap_err().to_string();
        assert!(
            e.contains("\"abc\"") && e.contains("100 to 999999999"),
            "{e}"
        );
        // The text as typed, not the number it parsed to.
        let e = "01".parse::<VmId>().unwrap_err().to_string();
        assert!(e.contains("\"01\""), "{e}");
    }

    #[test]
    fn node_names_are_dns_labels() {
        for good in ["pve1", "PVE-1", "a", &"n".repeat(63)] {
            assert!(NodeName::new(good).is_ok(), "{good}");
        }
        for (bad, says) in [
            ("", "empty"),
            ("-pve", "start or end"),
            ("pve.lan", "'.'"),
            (&"n".repeat(64), "at most 63"),
        ] {
            let e = NodeName::new(bad).unwrap_err().to_string();
            assert!(e.contains("node name") && e.contains(says), "{bad}: {e}");
        }
        assert_eq!(format!("{:<6}|", NodeName::new("pve").unwrap()), "pve   |");
        assert!(serde_json::from_str::<NodeName>("\"a b\"").is_err());
    }

    #[test]
    fn lab_name_rules_and_names_derived() {
        assert!(LabName::new("exam1").is_ok());
        assert!(LabName::new("a-b-3").is_ok());
        for bad in ["", "1exam", "Exam", "exam_1", "fifteen-chars-x", "ex am"] {
            let e = LabName::new(bad).unwrap_err().to_string();
            assert!(e.contains("lab name") && e.contains("1-14"), "{bad}: {e}");
        }
        let lab = LabName::new("exam1").unwrap();
        assert_eq!(lab.tag(), "labctl.exam1");
        assert_eq!(lab.pool(), "exam1");
        let m = lab.marker("exam1-02");
        assert!(lab.is_marker(&m));
        assert!(!LabName::new("exam").unwrap().is_marker(&m));
        assert_eq!(lab.marked_student(&m), Some("exam1-02"));
        assert_eq!(lab.marked_student("labctl lab exam1: other"), None);
    }

    #[test]
    fn secrets_never_print_and_read_numbers() {
        let s: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(
            (format!("{s:?}"), s.to_string()),
            ("***".into(), "***".into())
        );
        let n: Secret = serde_json::from_str("1234").unwrap();
        assert_eq!(n.expose(), "1234");
        assert_ne!(Secret::new("a"), Secret::new("b"));
        assert_eq!(Secret::new("a"), Secret::from("a"));
        assert!(Secret::default().is_empty());
    }

    #[test]
    fn clone_modes() {
        for m in [CloneMode::Auto, CloneMode::Linked, CloneMode::Full] {
            assert_eq!(m.to_string().parse::<CloneMode>().unwrap(), m);
        }
        assert!(CloneMode::Auto.is_linked() && !CloneMode::Full.is_linked());
        let e = "thin".parse::<CloneMode>().unwrap_err().to_string();
        assert!(e.contains("\"thin\"") && e.contains("linked"), "{e}");
    }

    proptest! {
        #[test]
        fn a_vmid_reads_back_what_it_writes(n in 100u32..=999_999_999) {
            let id = VmId::new(n).unwrap();
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(serde_json::from_str::<VmId>(&json).unwrap(), id);
            prop_assert_eq!(id.to_string().parse::<VmId>().unwrap(), id);
        }

        #[test]
        fn any_text_is_either_a_node_name_or_a_named_refusal(s in ".{0,70}") {
            match NodeName::new(s.clone()) {
                Ok(n) => prop_assert_eq!(n.as_str(), s.as_str()),
                Err(e) => prop_assert!(e.to_string().starts_with("invalid node name")),
            }
        }
    }
}
