//! `lab-grade`: evaluate an exam. *Probes* collect, *checks* judge.
//!
//! - [`Spec`] (the `[[probe]]` and `[[check]]` tables of a lab file, or a file it names)
//!   plans, per student, the [`PlannedProbe`]s to run with the roster's values filled in;
//! - a collector (labctl's `lab collect`, through the guest agent and from the host) runs
//!   them and records each raw result as [`Evidence`] in a [`Store`], sealed per student
//!   with a `MANIFEST.sha256`;
//! - [`grade`] is a pure function of the spec and the evidence: it sends nothing, and the
//!   same input gives the same [`Sheet`], byte for byte, in every format of [`report`].
//!
//! Nothing here talks to a cluster; this crate has no network code. The collector runs
//! probes through a [`collect::Runner`]; `lab_proxmox::probes::PveRunner` is the one for
//! Proxmox VE.
//!
//! Re-grading a stored collection after a check was fixed, offline:
//!
//! ```no_run
//! use lab_grade::{grade, report, Spec, Store};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let spec = Spec::parse(&std::fs::read_to_string("exam-checks.toml")?, "exam-checks.toml")?;
//! let store = Store::open("exam1-evidence")?;
//! let meta = store.meta()?.ok_or("no collection here")?;
//! let mut students = Vec::new();
//! for key in store.students()? {
//!     students.push(store.load(&key)?);
//! }
//! let sheet = grade(&spec, &meta.lab, &meta.spec_sha256, &students);
//! print!("{}", report::table(&sheet));
//! # Ok(())
//! # }
//! ```

mod evidence;
mod probe;
pub mod report;
mod sheet;
pub mod time;

// The check language and the grader (grade-core).
mod grade;
mod lint;
mod matcher;
#[cfg(test)]
mod proptests;

/// The README's check-language example: its first TOML block that is not the
/// `[dependencies]` line.
#[cfg(test)]
pub(crate) fn readme_example() -> &'static str {
    include_str!("../README.md")
        .split("```toml\n")
        .skip(1)
        .map(|b| b.find("```").map_or(b, |end| &b[..end]))
        .find(|b| !b.starts_with("[dependencies]"))
        .unwrap_or_default()
}
mod spec;
mod template;

pub use evidence::{
    sha256_hex, write_atomic, Blob, CollectMeta, ErrorKind, Evidence, ProbeError, Store,
    StoreError, StudentEvidence, StudentInfo, Target,
};
pub use probe::{AgentQuery, PlannedProbe, Request, RetryUntil, Source};
pub use sheet::{CheckInfo, CheckResult, Outcome, Sheet, StudentGrade};
pub mod collect;

pub use grade::grade;
pub use lint::{Finding, Level};
pub use spec::{Mutant, Problem, Spec, SpecError};

/// The README's examples, compiled (and the runnable ones run) as doctests, so the
/// README cannot drift from the API.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
