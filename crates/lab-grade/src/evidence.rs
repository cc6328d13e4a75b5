//! Evidence: what every probe returned, kept raw, hashed and sealed per student.
//!
//! The layout of an evidence directory (one per lab and collection):
//!
//! ```text
//! EVIDENCE/
//!   collect.json                  # CollectMeta: lab, spec sha256, labctl version, times
//!   <student>/student.json        # StudentInfo: name, host name, VMID, node, roster values
//!   <student>/<probe-id>.json     # Evidence: request, source, UTC start/end, exit, output, sha256
//!   <student>/MANIFEST.sha256     # `sha256  file` per file above, sorted (sha256sum -c reads it)
//! ```
//!
//! `<student>` is the student's host name (a DNS label, unique in a lab). Every file is
//! written to a temporary name and renamed into place, so a killed collection leaves
//! only whole files; a probe whose file exists has finished and is not run again.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::probe::{Request, Source};

/// What can go wrong reading or writing evidence.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file is not what labctl writes.
    #[error("{path}: not labctl evidence ({why})")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Bytes as JSON: a UTF-8 string when they are text, else `{"base64": "…"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl Blob {
    /// The bytes as text (invalid UTF-8 replaced).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    /// Lower-case hex sha256 of the bytes.
    pub fn sha256(&self) -> String {
        sha256_hex(&self.0)
    }
}

impl From<&str> for Blob {
    fn from(s: &str) -> Self {
        Blob(s.as_bytes().to_vec())
    }
}

impl From<String> for Blob {
    fn from(s: String) -> Self {
        Blob(s.into_bytes())
    }
}

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(t) => s.serialize_str(t),
            Err(_) => {
                let mut m = BTreeMap::new();
                m.insert(
                    "base64",
                    base64::engine::general_purpose::STANDARD.encode(&self.0),
                );
                m.serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            B64 { base64: String },
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) => Ok(Blob(t.into_bytes())),
            Raw::B64 { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map(Blob)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Lower-case hex sha256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Why a probe has no result to judge. Grading turns each into the outcome `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The guest agent does not answer (not running, not installed, guest stopped).
    AgentDown,
    /// The guest is not running.
    NotRunning,
    /// The probe did not finish within its timeout.
    Timeout,
    /// The command ran but its result is lost (qemu-ga reports it once).
    ResultLost,
    /// The agent could not start the program.
    SpawnFailed,
    /// The cluster's API failed (HTTP error, connection) after the retries.
    Api,
    /// The guest (or the teacher's guest) does not exist any more.
    Missing,
    /// The probe cannot run where it was asked to (e.g. `exec` on the host).
    Unsupported,
}

impl ErrorKind {
    /// The snake_case name (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::AgentDown => "agent_down",
            ErrorKind::NotRunning => "not_running",
            ErrorKind::Timeout => "timeout",
            ErrorKind::ResultLost => "result_lost",
            ErrorKind::SpawnFailed => "spawn_failed",
            ErrorKind::Api => "api",
            ErrorKind::Missing => "missing",
            ErrorKind::Unsupported => "unsupported",
        }
    }
}

/// The probe could not run; what was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeError {
    /// The kind.
    pub kind: ErrorKind,
    /// PVE's text or the local error, for the sheet.
    pub message: String,
}

/// Where a probe ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The guest (`None` for the host running labctl).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    /// Its node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Its name (the host name, `labctl host` for the host).
    pub name: String,
}

/// One probe's raw result for one student.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The probe's id.
    pub probe: String,
    /// The student's key (host name).
    pub student: String,
    /// Where it ran.
    pub source: Source,
    /// What was asked, as sent.
    pub request: Request,
    /// The machine that ran it.
    pub target: Target,
    /// UTC start of the last try (RFC 3339).
    pub start: String,
    /// UTC end of the last try (RFC 3339).
    pub end: String,
    /// Tries made (more than 1 with a retry-until or after a lost result).
    pub attempts: u32,
    /// Exit code (`None` when the probe could not run, or a signal ended it).
    #[serde(default)]
    pub exit: Option<i64>,
    /// The signal that ended the program, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i64>,
    /// Standard output (for `file`: the content; for `agent`: the answer as JSON).
    #[serde(default)]
    pub stdout: Blob,
    /// Standard error.
    #[serde(default)]
    pub stderr: Blob,
    /// The agent cut stdout or stderr (grading reads this as an error).
    #[serde(default)]
    pub truncated: bool,
    /// Lower-case hex sha256 of `stdout`.
    pub sha256: String,
    /// Why there is no result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ProbeError>,
}

impl Evidence {
    /// Whether the probe produced something to judge (ran, not truncated, no error).
    pub fn usable(&self) -> Result<(), String> {
        if let Some(e) = &self.error {
            return Err(format!("{}: {}", e.kind.as_str(), e.message));
        }
        if self.truncated {
            return Err("truncated: the agent cut the output".to_owned());
        }
        if self.sha256 != self.stdout.sha256() {
            return Err(
                "the evidence was changed after it was collected (its sha256 does not match \
                 its stdout)"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

/// Who a student is, kept with their evidence so grading needs nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudentInfo {
    /// The key: the host name.
    pub key: String,
    /// The student's name (roster), else the host name.
    pub name: String,
    /// The host name.
    pub hostname: String,
    /// The guest.
    pub vmid: u32,
    /// Its node.
    pub node: String,
    /// The values `{{…}}` may use: `student`, `hostname`, `vmid`, `node`, `ip`, `teacher_ip`,
    /// every roster column, and `instance`: the guest's identity beyond its id (on Proxmox
    /// VE the `smbios1` UUID a clone gets), so that evidence of an earlier guest with the
    /// same id and address is never taken for this one's.
    pub vars: BTreeMap<String, String>,
}

/// One collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectMeta {
    /// The lab.
    pub lab: String,
    /// sha256 of the spec the probes came from.
    pub spec_sha256: String,
    /// `labctl X.Y.Z` (the tool that collected).
    pub tool: String,
    /// UTC start of the first run.
    pub started: String,
    /// UTC end of the last complete run (`None` while incomplete).
    #[serde(default)]
    pub finished: Option<String>,
}

/// Everything recorded for one student.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentEvidence {
    /// Who.
    pub info: StudentInfo,
    /// Probe id → evidence.
    pub probes: BTreeMap<String, Evidence>,
    /// Files whose hash does not match the manifest, or no manifest: (file, why).
    pub problems: Vec<(String, String)>,
}

/// An evidence directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

const META: &str = "collect.json";
const STUDENT: &str = "student.json";
const MANIFEST: &str = "MANIFEST.sha256";

/// Writes `data` to `path` whole or not at all (a temporary file renamed into place).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(data).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(path))
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    let mut s = serde_json::to_vec_pretty(v).unwrap_or_default();
    s.push(b'\n');
    s
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, StoreError> {
    let data = fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&data).map_err(|e| StoreError::Format {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

impl Store {
    /// The store at `root`, created if missing.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_err(&root))?;
        Ok(Store { root })
    }

    /// An existing store (it must hold `collect.json`).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        if !root.exists() {
            return Err(StoreError::Io {
                path: root,
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    "no such directory: run `labctl lab collect` first (or give --evidence)",
                ),
            });
        }
        let meta = root.join(META);
        if !meta.is_file() {
            return Err(StoreError::Format {
                path: root,
                why: format!("no {META}: run `labctl lab collect` first"),
            });
        }
        Ok(Store { root })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The collection's metadata.
    pub fn meta(&self) -> Result<Option<CollectMeta>, StoreError> {
        let p = self.root.join(META);
        if !p.exists() {
            return Ok(None);
        }
        read_json(&p).map(Some)
    }

    /// Writes the collection's metadata.
    pub fn write_meta(&self, meta: &CollectMeta) -> Result<(), StoreError> {
        write_atomic(&self.root.join(META), &to_json(meta))
    }

    fn dir(&self, student: &str) -> PathBuf {
        self.root.join(student)
    }

    /// Who a student was at the last collection into this store, if it is recorded.
    pub fn student(&self, key: &str) -> Option<StudentInfo> {
        read_json(&self.dir(key).join(STUDENT)).ok()
    }

    /// Whether a student's directory has a manifest.
    pub fn sealed(&self, key: &str) -> bool {
        self.dir(key).join(MANIFEST).is_file()
    }

    /// Records who a student is (creates their directory).
    pub fn write_student(&self, info: &StudentInfo) -> Result<(), StoreError> {
        let d = self.dir(&info.key);
        fs::create_dir_all(&d).map_err(io_err(&d))?;
        write_atomic(&d.join(STUDENT), &to_json(info))
    }

    /// The path of a probe's evidence file.
    pub fn probe_path(&self, student: &str, probe: &str) -> PathBuf {
        self.dir(student).join(format!("{probe}.json"))
    }

    /// The evidence of a probe, if it finished (a file that does not parse counts as
    /// not finished: it is run again).
    pub fn finished(&self, student: &str, probe: &str) -> Option<Evidence> {
        read_json(&self.probe_path(student, probe)).ok()
    }

    /// Records one probe's evidence (whole or not at all).
    pub fn write(&self, ev: &Evidence) -> Result<(), StoreError> {
        let d = self.dir(&ev.student);
        fs::create_dir_all(&d).map_err(io_err(&d))?;
        write_atomic(&self.probe_path(&ev.student, &ev.probe), &to_json(ev))
    }

    /// Writes the student's `MANIFEST.sha256` over every file in their directory.
    pub fn seal(&self, student: &str) -> Result<(), StoreError> {
        let d = self.dir(student);
        let mut lines = String::new();
        for name in files(&d)? {
            let data = fs::read(d.join(&name)).map_err(io_err(&d.join(&name)))?;
            lines.push_str(&format!("{}  {name}\n", sha256_hex(&data)));
        }
        write_atomic(&d.join(MANIFEST), lines.as_bytes())
    }

    /// The students with a directory, sorted.
    pub fn students(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let e = e.map_err(io_err(&self.root))?;
            if e.path().join(STUDENT).is_file() {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Checks a student's files against their manifest: (file, why) per problem.
    pub fn verify(&self, student: &str) -> Result<Vec<(String, String)>, StoreError> {
        let d = self.dir(student);
        let manifest = d.join(MANIFEST);
        let text = match fs::read_to_string(&manifest) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(vec![(
                    MANIFEST.to_owned(),
                    "missing: the collection of this student did not finish".to_owned(),
                )])
            }
            Err(e) => return Err(io_err(&manifest)(e)),
        };
        let mut listed = BTreeMap::new();
        for line in text.lines() {
            if let Some((hash, name)) = line.split_once("  ") {
                listed.insert(name.to_owned(), hash.to_owned());
            }
        }
        let mut problems = Vec::new();
        let present = files(&d)?;
        for name in &present {
            let data = fs::read(d.join(name)).map_err(io_err(&d.join(name)))?;
            match listed.get(name) {
                None => problems.push((name.clone(), "not in the manifest".to_owned())),
                Some(h) if *h != sha256_hex(&data) => problems.push((
                    name.clone(),
                    "changed since it was collected (sha256 differs from the manifest)".to_owned(),
                )),
                Some(_) => {}
            }
        }
        for name in listed.keys() {
            if !present.contains(name) {
                problems.push((
                    name.clone(),
                    "listed in the manifest but missing".to_owned(),
                ));
            }
        }
        Ok(problems)
    }

    /// Everything recorded for a student, with the manifest checked. A file that cannot
    /// be read as evidence is a problem of this student (their checks on it are errors),
    /// never a failure of the whole class.
    pub fn load(&self, student: &str) -> Result<StudentEvidence, StoreError> {
        let d = self.dir(student);
        let mut problems = self.verify(student)?;
        let info: StudentInfo = match read_json(&d.join(STUDENT)) {
            Ok(i) => i,
            Err(e) => {
                problems.push((STUDENT.to_owned(), format!("unreadable: {e}")));
                StudentInfo {
                    key: student.to_owned(),
                    name: student.to_owned(),
                    hostname: student.to_owned(),
                    vmid: 0,
                    node: String::new(),
                    vars: BTreeMap::new(),
                }
            }
        };
        let mut probes = BTreeMap::new();
        for name in files(&d)? {
            if name == STUDENT {
                continue;
            }
            match read_json::<Evidence>(&d.join(&name)) {
                Ok(ev) if format!("{}.json", ev.probe) == name => {
                    probes.insert(ev.probe.clone(), ev);
                }
                Ok(ev) => problems.push((
                    name.clone(),
                    format!(
                        "holds the evidence of probe {} (moved or renamed)",
                        ev.probe
                    ),
                )),
                Err(e) => problems.push((name.clone(), format!("unreadable: {e}"))),
            }
        }
        Ok(StudentEvidence {
            info,
            probes,
            problems,
        })
    }
}

/// The `.json` files of a directory (not temporaries, not the manifest), sorted.
fn files(d: &Path) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for e in fs::read_dir(d).map_err(io_err(d))? {
        let e = e.map_err(io_err(d))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !name.starts_with('.') && e.path().is_file() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(student: &str, probe: &str, out: &[u8]) -> Evidence {
        Evidence {
            probe: probe.into(),
            student: student.into(),
            source: Source::Guest,
            request: Request::File {
                path: "/etc/hostname".into(),
            },
            target: Target {
                vmid: Some(5000),
                node: Some("pve1".into()),
                name: student.into(),
            },
            start: "2026-12-05T10:00:00.000Z".into(),
            end: "2026-12-05T10:00:00.100Z".into(),
            attempts: 1,
            exit: Some(0),
            signal: None,
            stdout: Blob(out.to_vec()),
            stderr: Blob::default(),
            truncated: false,
            sha256: sha256_hex(out),
            error: None,
        }
    }

    fn info(key: &str) -> StudentInfo {
        StudentInfo {
            key: key.into(),
            name: "Zoë".into(),
            hostname: key.into(),
            vmid: 5000,
            node: "pve1".into(),
            vars: BTreeMap::new(),
        }
    }

    #[test]
    fn binary_output_round_trips_as_base64_and_text_as_text() {
        let text = serde_json::to_value(Blob::from("héllo\n")).unwrap();
        assert_eq!(text, "héllo\n");
        let bin = Blob(vec![0xff, 0, 1]);
        let j = serde_json::to_value(&bin).unwrap();
        assert_eq!(j["base64"], "/wAB");
        assert_eq!(serde_json::from_value::<Blob>(j).unwrap(), bin);
    }

    #[test]
    fn a_sealed_student_verifies_and_a_changed_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        store.write_student(&info("s1")).unwrap();
        store.write(&ev("s1", "host", b"s1\n")).unwrap();
        assert_eq!(store.verify("s1").unwrap().len(), 1, "no manifest yet");
        store.seal("s1").unwrap();
        assert!(store.verify("s1").unwrap().is_empty());
        let loaded = store.load("s1").unwrap();
        assert_eq!(loaded.probes["host"].stdout.text(), "s1\n");

        let mut changed = ev("s1", "host", b"cheat\n");
        changed.sha256 = sha256_hex(b"cheat\n");
        store.write(&changed).unwrap();
        let problems = store.verify("s1").unwrap();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "host.json");
        assert!(problems[0].1.contains("changed"));
    }

    #[test]
    fn a_corrupt_file_is_a_problem_of_its_student_not_an_error_of_the_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        store.write_student(&info("s1")).unwrap();
        store.write(&ev("s1", "a", b"1")).unwrap();
        store.write(&ev("s1", "b", b"2")).unwrap();
        store.seal("s1").unwrap();
        fs::write(store.probe_path("s1", "b"), b"{\"probe\": ").unwrap();
        let loaded = store.load("s1").unwrap();
        assert!(loaded.probes.contains_key("a") && !loaded.probes.contains_key("b"));
        assert!(loaded
            .problems
            .iter()
            .any(|(f, why)| f == "b.json" && why.contains("unreadable")));
        fs::write(dir.path().join("s1").join(STUDENT), b"").unwrap();
        let loaded = store.load("s1").unwrap();
        assert_eq!(loaded.info.key, "s1");
        assert!(loaded.problems.iter().any(|(f, _)| f == STUDENT));
    }

    #[test]
    fn evidence_with_a_wrong_hash_or_cut_output_is_not_usable() {
        let mut e = ev("s", "p", b"x");
        assert!(e.usable().is_ok());
        e.truncated = true;
        assert!(e.usable().unwrap_err().contains("truncated"));
        let mut e = ev("s", "p", b"x");
        e.sha256 = sha256_hex(b"y");
        assert!(e.usable().is_err());
    }

    #[test]
    fn a_finished_probe_is_found_and_a_torn_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        store.write(&ev("s1", "a", b"1")).unwrap();
        assert!(store.finished("s1", "a").is_some());
        fs::write(store.probe_path("s1", "b"), b"{\"probe\": ").unwrap();
        assert!(store.finished("s1", "b").is_none());
        assert!(store.finished("s1", "c").is_none());
    }
}
