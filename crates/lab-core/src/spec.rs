//! The lab specification: what a teacher asks for.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::types::{LabName, VmId};

/// Most students one lab may have (a typo should not clone a thousand guests).
pub const MAX_STUDENTS: u32 = 500;
/// Most guests processed at the same time.
pub const MAX_CONCURRENCY: usize = 64;

/// A host name pattern such as `exam-{n:02}`: literal DNS characters and one placeholder
/// `{n}` (the student number, from 1) or `{n:0W}` (zero-padded to `W` digits, 1-9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostnamePattern {
    prefix: String,
    width: usize,
    suffix: String,
    source: String,
}

const PATTERN_RULE: &str = "letters, digits and '-' around exactly one placeholder {n} or \
     {n:0W} (W = 1..9), e.g. exam-{n:02}; the result must be a DNS label (1-63 characters, \
     not starting or ending with '-')";

impl HostnamePattern {
    /// Parses and checks a pattern.
    pub fn new(pattern: &str) -> Result<Self> {
        let bad = || Error::invalid("hostname pattern", pattern, PATTERN_RULE);
        let open = pattern.find('{').ok_or_else(bad)?;
        let close = pattern[open..].find('}').ok_or_else(bad)? + open;
        let (prefix, inner, suffix) = (
            &pattern[..open],
            &pattern[open + 1..close],
            &pattern[close + 1..],
        );
        let width = match inner {
            "n" => 1,
            _ => inner
                .strip_prefix("n:0")
                .filter(|w| w.len() == 1)
                .and_then(|w| w.parse::<usize>().ok())
                .filter(|w| (1..=9).contains(w))
                .ok_or_else(bad)?,
        };
        let literal_ok = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !literal_ok(prefix) || !literal_ok(suffix) {
            return Err(bad());
        }
        let p = HostnamePattern {
            prefix: prefix.to_ascii_lowercase(),
            width,
            suffix: suffix.to_ascii_lowercase(),
            source: pattern.to_owned(),
        };
        // The shortest rendering decides the edges; the longest the length.
        p.check_rendered(&p.render(1), pattern)?;
        p.check_rendered(&p.render(MAX_STUDENTS), pattern)?;
        Ok(p)
    }

    fn check_rendered(&self, name: &str, pattern: &str) -> Result<()> {
        if name.len() > 63 || name.starts_with('-') || name.ends_with('-') {
            return Err(Error::invalid("hostname pattern", pattern, PATTERN_RULE));
        }
        Ok(())
    }

    /// The host name of student `n` (1-based).
    pub fn render(&self, n: u32) -> String {
        format!(
            "{}{:0width$}{}",
            self.prefix,
            n,
            self.suffix,
            width = self.width
        )
    }
}

impl fmt::Display for HostnamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for HostnamePattern {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        HostnamePattern::new(s)
    }
}

/// An inclusive range of guest ids the lab may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    first: VmId,
    last: VmId,
}

impl IdRange {
    /// `first..=last`; `first <= last`.
    pub fn new(first: VmId, last: VmId) -> Result<Self> {
        if first > last {
            return Err(Error::invalid(
                "id range",
                format!("{first}-{last}"),
                "the first id must not be above the last",
            ));
        }
        Ok(IdRange { first, last })
    }

    /// First id.
    pub fn first(&self) -> VmId {
        self.first
    }

    /// Last id.
    pub fn last(&self) -> VmId {
        self.last
    }

    /// How many ids.
    pub fn len(&self) -> u64 {
        u64::from(self.last.get() - self.first.get()) + 1
    }

    /// Never empty; for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `id` is inside.
    pub fn contains(&self, id: VmId) -> bool {
        (self.first..=self.last).contains(&id)
    }

    /// The ids, in order.
    pub fn iter(&self) -> impl Iterator<Item = VmId> {
        // Every number between two valid ids is a valid id.
        (self.first.get()..=self.last.get()).filter_map(|n| VmId::new(n).ok())
    }
}

impl FromStr for IdRange {
    type Err = Error;
    /// `5000-5099`.
    fn from_str(s: &str) -> Result<Self> {
        let (a, b) = s.split_once('-').ok_or_else(|| {
            Error::invalid(
                "id range",
                s,
                "FIRST-LAST, e.g. 5000-5099 (ids 100..=999999999)",
            )
        })?;
        IdRange::new(a.parse()?, b.parse()?)
    }
}

impl fmt::Display for IdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

pub use lab_types::CloneMode;

/// How the engine repeats an idempotent step (lab-wide fence, pool, listings) that failed
/// transiently ([`Error::is_transient`]): `attempts` tries in all, pausing `pause`, then
/// twice that, and so on. A step that failed only after running for `long_step` or more
/// is not repeated: the backend has already waited out its own retries (a guest lock held
/// by a backup, say), and repeating would multiply that wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Tries in all (1 = no retry).
    pub attempts: u32,
    /// Pause before the first retry; doubles after each.
    pub pause: Duration,
    /// A failure after a step ran this long is final.
    pub long_step: Duration,
    /// Retries one guest may use over all its steps (a budget per guest, not per lab:
    /// one unlucky guest cannot starve the others, and a flaky cluster still converges).
    pub per_guest: u32,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 4,
            pause: Duration::from_secs(2),
            long_step: Duration::from_secs(60),
            per_guest: 16,
        }
    }
}

impl Retry {
    /// Pauses multiplied by `factor` (for simulators running at a time scale). `long_step`
    /// stays as it is: it is a safety valve against multiplying long waits, and scaling it
    /// down would refuse ordinary retries of a fast simulation under injected faults.
    #[must_use]
    pub fn scaled(self, factor: f64) -> Self {
        Self {
            pause: scale_duration(self.pause, factor),
            ..self
        }
    }
}

/// Waits of [`apply`](crate::apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest wait until a started guest is ready (its agent answers).
    pub ready: Duration,
    /// Longest wait for its address once ready.
    pub address: Duration,
    /// Repeats of idempotent steps that failed transiently.
    pub retry: Retry,
    /// When to look at a started guest first: a guest agent rarely answers sooner
    /// (reference §9.5: 10-60 s). The engine learns the real boot time from the first
    /// guests and uses it for the rest, so this only shapes the first few checks.
    pub boot_hint: Duration,
    /// When to look again at a ready guest that has no address yet (DHCP, a few s).
    pub address_hint: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            ready: Duration::from_secs(300),
            address: Duration::from_secs(120),
            retry: Retry::default(),
            boot_hint: Duration::from_secs(10),
            address_hint: Duration::from_secs(2),
        }
    }
}

impl Timeouts {
    /// Every duration multiplied by `factor` (for simulators running at a time scale).
    #[must_use]
    pub fn scaled(self, factor: f64) -> Self {
        Self {
            ready: scale_duration(self.ready, factor),
            address: scale_duration(self.address, factor),
            retry: self.retry.scaled(factor),
            boot_hint: scale_duration(self.boot_hint, factor),
            address_hint: scale_duration(self.address_hint, factor),
        }
    }
}

/// `d` times `factor` (clamped to 0..=1e6, NaN read as 1), saturating at `Duration::MAX`
/// instead of panicking as `Duration::mul_f64` does on overflow (a huge `--ready-timeout`
/// times a time scale must be an error-free long wait, not a crash).
fn scale_duration(d: Duration, factor: f64) -> Duration {
    let f = if factor.is_nan() {
        1.0
    } else {
        factor.clamp(0.0, 1e6)
    };
    Duration::try_from_secs_f64(d.as_secs_f64() * f).unwrap_or(Duration::MAX)
}

/// What a teacher asks for: `count` students cloned from `template`, named by `hostname`,
/// with ids from `ids`, reaching only `teachers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabSpec {
    /// The lab's name (pool, tag and firewall group derive from it).
    pub name: LabName,
    /// The template every student is cloned from.
    pub template: VmId,
    /// Number of students, 1..=[`MAX_STUDENTS`].
    pub count: u32,
    /// Ids the students may take (the lowest free ones are used).
    pub ids: IdRange,
    /// Host names.
    pub hostname: HostnamePattern,
    /// Explicit host names, student 1 first (from a roster); when set, `count` must equal
    /// its length and [`LabSpec::hostname`] is not used.
    pub names: Option<Vec<String>>,
    /// Addresses the students may reach; empty = no fence.
    pub teachers: Vec<IpAddr>,
    /// Linked or full clones.
    pub clone_mode: CloneMode,
    /// Guests processed at the same time, 1..=[`MAX_CONCURRENCY`].
    pub concurrency: usize,
    /// Waits.
    pub timeouts: Timeouts,
    /// Nodes new students may land on (empty: every node that holds the template), for a
    /// backend with [`Placement`](crate::Placement).
    pub nodes: Vec<crate::NodeName>,
    /// How new students are distributed over those nodes.
    pub placement: crate::PlacementPolicy,
    /// Clone even when the class does not fit the nodes' memory (starts may then fail).
    pub overcommit: bool,
    /// Several machines per student on networks of their own ([`Topology`](crate::Topology)); `None`: one
    /// machine per student cloned from [`LabSpec::template`], as always. With a topology,
    /// `template` is the first machine's.
    pub topology: Option<crate::Topology>,
}

impl LabSpec {
    /// A spec with defaults: ids `5000-5999`, host names `<lab>-{n:02}`, linked clones,
    /// 4 at a time, no teacher (add [`LabSpec::teachers`] to fence).
    pub fn new(name: LabName, template: VmId, count: u32) -> Result<Self> {
        let hostname = HostnamePattern::new(&format!("{name}-{{n:02}}"))?;
        let spec = LabSpec {
            name,
            template,
            count,
            ids: IdRange::new(VmId::new(5000)?, VmId::new(5999)?)?,
            hostname,
            names: None,
            teachers: Vec::new(),
            clone_mode: CloneMode::Linked,
            concurrency: 4,
            timeouts: Timeouts::default(),
            nodes: Vec::new(),
            placement: crate::PlacementPolicy::Spread,
            overcommit: false,
            topology: None,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the values against each other; every error names the input and what is
    /// allowed.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_STUDENTS).contains(&self.count) {
            return Err(Error::invalid(
                "count",
                self.count.to_string(),
                format!("the number of students must be between 1 and {MAX_STUDENTS}"),
            ));
        }
        if let Some(t) = &self.topology {
            t.validate(self.count)?;
            if t.machines[0].template != self.template {
                return Err(Error::invalid(
                    "template",
                    self.template.to_string(),
                    format!(
                        "a lab with machines clones each from its own template; the lab's \
                         template must be the first machine's ({})",
                        t.machines[0].template
                    ),
                ));
            }
            if !self.nodes.is_empty() {
                return Err(Error::invalid(
                    "nodes",
                    self.nodes
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    "a lab with several machines per student is cloned where its templates \
                     are (a student's machines share one node); leave nodes out",
                ));
            }
            let guests = u64::from(self.count) * t.machines.len() as u64;
            if guests > self.ids.len() {
                return Err(Error::invalid(
                    "id range",
                    self.ids.to_string(),
                    format!(
                        "holds {} ids but {} students with {} machines need {guests}",
                        self.ids.len(),
                        self.count,
                        t.machines.len()
                    ),
                ));
            }
            let longest = self
                .hostnames()
                .into_iter()
                .max_by_key(String::len)
                .unwrap_or_default();
            for m in &t.machines {
                if longest.len() + 1 + m.role.len() > 63 {
                    return Err(Error::invalid(
                        "machine role",
                        m.role.clone(),
                        format!(
                            "host names are <student>-<role> and must fit 63 characters; \
                             {longest}-{} has {}: shorten that student's host name (a \
                             shorter hostname_prefix or name) or the role",
                            m.role,
                            longest.len() + 1 + m.role.len()
                        ),
                    ));
                }
                if self.ids.contains(m.template) {
                    return Err(Error::invalid(
                        "id range",
                        self.ids.to_string(),
                        format!("must not contain the template {} ({})", m.template, m.role),
                    ));
                }
            }
        }
        if u64::from(self.count) > self.ids.len() {
            return Err(Error::invalid(
                "id range",
                self.ids.to_string(),
                format!(
                    "holds {} ids but {} students need one each",
                    self.ids.len(),
                    self.count
                ),
            ));
        }
        if self.ids.contains(self.template) {
            return Err(Error::invalid(
                "id range",
                self.ids.to_string(),
                format!("must not contain the template {}", self.template),
            ));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(Error::invalid(
                "concurrency",
                self.concurrency.to_string(),
                format!("between 1 and {MAX_CONCURRENCY}"),
            ));
        }
        if let Some(names) = &self.names {
            if names.len() != self.count as usize {
                return Err(Error::invalid(
                    "names",
                    names.len().to_string(),
                    format!(
                        "one host name per student: {} names for {} students",
                        names.len(),
                        self.count
                    ),
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for n in names {
                let label = !n.is_empty()
                    && n.len() <= 63
                    && !n.starts_with('-')
                    && !n.ends_with('-')
                    && n.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                if !label || !seen.insert(n.as_str()) {
                    return Err(Error::invalid(
                        "names",
                        n.clone(),
                        "distinct DNS labels: 1-63 lower-case letters, digits or '-', not \
                         starting or ending with '-'",
                    ));
                }
            }
        }
        if let Some((base, prefix)) = self.topology.as_ref().and_then(|t| t.plan.subnets) {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            if let Some(t) = self.teachers.iter().find(|t| match t {
                IpAddr::V4(a) => a.to_bits() & mask == base.to_bits(),
                IpAddr::V6(_) => false,
            }) {
                return Err(Error::invalid(
                    "subnets",
                    format!("{base}/{prefix}"),
                    format!(
                        "holds the teacher's address {t}: the students' own networks must not \
                         overlap the network the teacher is on; pick another range, e.g. \
                         10.100.0.0/16"
                    ),
                ));
            }
        }
        for t in &self.teachers {
            if t.is_unspecified() || t.is_multicast() {
                return Err(Error::invalid(
                    "teacher address",
                    t.to_string(),
                    "a unicast address of the teacher's machine",
                ));
            }
        }
        Ok(())
    }

    /// The host names, student 1 first.
    pub fn hostnames(&self) -> Vec<String> {
        if let Some(names) = &self.names {
            return names.clone();
        }
        (1..=self.count).map(|n| self.hostname.render(n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vmid(n: u32) -> VmId {
        VmId::new(n).unwrap()
    }

    #[test]
    fn explicit_names_replace_the_pattern_and_are_checked() {
        let mut spec = LabSpec::new(LabName::new("exam").unwrap(), vmid(9000), 2).unwrap();
        spec.names = Some(vec!["anna".into(), "bruno-2".into()]);
        spec.validate().unwrap();
        assert_eq!(spec.hostnames(), ["anna", "bruno-2"]);
        spec.names = Some(vec!["anna".into()]);
        assert!(spec
            .validate()
            .unwrap_err()
            .to_string()
            .contains("1 names for 2"));
        spec.names = Some(vec!["anna".into(), "anna".into()]);
        assert!(spec.validate().is_err());
        spec.names = Some(vec!["anna".into(), "Bruno".into()]);
        assert!(spec.validate().is_err());
    }

    #[test]
    fn scaling_saturates_instead_of_panicking() {
        let huge = Timeouts {
            ready: Duration::from_secs(99_999_999_999_999_999),
            ..Timeouts::default()
        };
        assert_eq!(huge.scaled(1e6).ready, Duration::MAX);
        assert_eq!(huge.scaled(f64::INFINITY).ready, Duration::MAX);
        let t = Timeouts::default();
        assert_eq!(t.scaled(f64::NAN), t);
        assert_eq!(t.scaled(-1.0).ready, Duration::ZERO);
        assert_eq!(t.scaled(0.5).ready, Duration::from_secs(150));
        assert_eq!(t.scaled(0.5).retry.pause, Duration::from_secs(1));
    }

    #[test]
    fn pattern_renders_padding() {
        let p = HostnamePattern::new("exam-{n:02}").unwrap();
        assert_eq!(p.render(1), "exam-01");
        assert_eq!(p.render(12), "exam-12");
        assert_eq!(p.render(123), "exam-123");
        let p = HostnamePattern::new("pc{n}-lab").unwrap();
        assert_eq!(p.render(7), "pc7-lab");
        assert!(HostnamePattern::new("Stud-{n:3}").is_err());
    }

    #[test]
    fn bad_patterns_name_input_and_rule() {
        for bad in [
            "exam",
            "exam-{x}",
            "exam_{n}",
            "{n}-",
            "-{n}",
            "exam-{n:0}",
            "exam-{n:010}",
            "a{n}b{n}",
            "exam-{n",
        ] {
            let e = HostnamePattern::new(bad).unwrap_err().to_string();
            assert!(
                e.contains("hostname pattern") && e.contains(bad) && e.contains("{n:0W}"),
                "{bad}: {e}"
            );
        }
        let long = format!("{}{{n}}", "a".repeat(62));
        assert!(HostnamePattern::new(&long).is_err());
    }

    #[test]
    fn spec_validation() {
        let lab = LabName::new("exam1").unwrap();
        let mut s = LabSpec::new(lab.clone(), vmid(9000), 5).unwrap();
        assert_eq!(s.hostnames()[4], "exam1-05");
        let e = LabSpec::new(lab.clone(), vmid(9000), 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("count") && e.contains("between 1 and 500"),
            "{e}"
        );
        s.ids = "5000-5002".parse().unwrap();
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("holds 3 ids but 5"), "{e}");
        s.ids = "8990-9010".parse().unwrap();
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("template 9000"));
        s.ids = "5000-5010".parse().unwrap();
        s.concurrency = 0;
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("concurrency"));
        s.concurrency = 4;
        s.teachers = vec!["0.0.0.0".parse().unwrap()];
        assert!(s.validate().unwrap_err().to_string().contains("teacher"));
    }

    #[test]
    fn id_range_parsing() {
        let r: IdRange = "5000-5002".parse().unwrap();
        assert_eq!(
            r.iter().map(VmId::get).collect::<Vec<_>>(),
            [5000, 5001, 5002]
        );
        assert!("5002-5000".parse::<IdRange>().is_err());
        assert!("50"
            .parse::<IdRange>()
            .unwrap_err()
            .to_string()
            .contains("FIRST-LAST"));
    }
}
