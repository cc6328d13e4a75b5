//! The check language: `[exam]`, `[[probe]]` and `[[check]]` tables, read strictly and
//! validated once, then planned per student (probes with the roster's values filled in).
//! The language is documented field by field in the crate's README.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::evidence::{sha256_hex, Evidence, StudentInfo};
use crate::matcher::{Doc, Expectation, Kind};
use crate::probe::{AgentQuery, PlannedProbe, Request, RetryUntil, Source};
use crate::sheet::CheckInfo;
use crate::template::{Template, Vars};

/// One thing wrong with a spec: where, which field, what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The table: `[exam]`, `[[probe]] #2 "addr"`, `[[check]] #3 "static-ip"`, or `TOML`.
    pub at: String,
    /// The field (`expect[1].regex`, `from`), when one is to blame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: `{field}`: {}", self.at, self.message),
            None => write!(f, "{}: {}", self.at, self.message),
        }
    }
}

/// A spec that cannot be used (every problem found, not only the first), or a value a
/// student lacks when planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The file (or lab file) the spec came from.
    pub origin: String,
    /// The problems, in the order of the spec.
    pub problems: Vec<Problem>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}: {p}", self.origin)?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

/// A check's mutant: a command that, run on a clone of the reference guest, must make
/// exactly `breaks` stop passing (the check fails; the checks requiring it are skipped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutant {
    /// The check it breaks.
    pub check: String,
    /// The argv as written (`{{…}}` not filled in; see [`Spec::mutant_argv`]).
    pub argv: Vec<String>,
    /// The check and every check that requires it, directly or not.
    pub breaks: BTreeSet<String>,
}

/// Where a spec's probe or check is, for messages (1-based, with its id).
pub(crate) fn label(table: &str, index: usize, id: &str) -> String {
    if id.is_empty() {
        format!("[[{table}]] #{}", index + 1)
    } else {
        format!("[[{table}]] #{} \"{id}\"", index + 1)
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Exam {
    pub teacher: Option<u32>,
    pub timeout: f64,
    pub floor: f64,
}

/// A probe's request with its `{{…}}` still in.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ReqT {
    Exec(Vec<Template>),
    File(Template),
    Agent(AgentQuery),
    Ping(Template),
    Tcp(Template),
    Dns {
        server: Template,
        name: Template,
        rtype: Template,
    },
    Http(Template),
}

const DNS_TYPES: [&str; 9] = ["A", "AAAA", "MX", "TXT", "CNAME", "NS", "PTR", "SOA", "SRV"];

/// A host name or address that a tool gets as an argument: nothing it would read as an
/// option (`-`, dig's `+` and `@`), no blanks.
fn check_host(what: &str, h: &str) -> Result<(), String> {
    if h.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if h.starts_with(['-', '+', '@']) || h.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{what} {h:?} is not a host name or address (no blanks, no leading - + @)"
        ));
    }
    Ok(())
}

/// `host:port` or `[v6]:port`.
fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let bad = || format!("{s:?} is not host:port or [IPv6]:port");
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
        (h, p)
    } else {
        let (h, p) = s.rsplit_once(':').ok_or_else(bad)?;
        if h.contains(':') {
            return Err(format!(
                "{s:?}: write an IPv6 address in brackets, [{h}]:{p}"
            ));
        }
        (h, p)
    };
    check_host("the host", host)?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{s:?}: the port must be 1-65535"))?;
    Ok((host.to_owned(), port))
}

impl ReqT {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            ReqT::Exec(_) => Kind::Exec,
            ReqT::File(_) => Kind::File,
            ReqT::Agent(_) => Kind::Agent,
            ReqT::Ping(_) => Kind::Ping,
            ReqT::Tcp(_) => Kind::Tcp,
            ReqT::Dns { .. } => Kind::Dns,
            ReqT::Http(_) => Kind::Http,
        }
    }

    fn field(&self) -> &'static str {
        match self {
            ReqT::Exec(_) => "exec",
            ReqT::File(_) => "file",
            ReqT::Agent(_) => "agent",
            ReqT::Ping(_) => "ping",
            ReqT::Tcp(_) => "tcp",
            ReqT::Dns { .. } => "dns",
            ReqT::Http(_) => "http",
        }
    }

    pub(crate) fn templates(&self) -> Vec<&Template> {
        match self {
            ReqT::Exec(a) => a.iter().collect(),
            ReqT::Agent(_) => Vec::new(),
            ReqT::File(t) | ReqT::Ping(t) | ReqT::Tcp(t) | ReqT::Http(t) => vec![t],
            ReqT::Dns {
                server,
                name,
                rtype,
            } => vec![server, name, rtype],
        }
    }

    fn is_literal(&self) -> bool {
        self.templates().iter().all(|t| t.is_literal())
    }

    /// The request for one student, checked: `Err((field, why))`.
    pub(crate) fn render(&self, vars: &Vars) -> Result<Request, (String, String)> {
        let f = self.field();
        let r = |t: &Template, field: &str| {
            t.render(vars)
                .map_err(|m| (field.to_owned(), m.to_string()))
        };
        let e = |why: String| (f.to_owned(), why);
        Ok(match self {
            ReqT::Exec(argv) => {
                let argv = argv
                    .iter()
                    .map(|t| r(t, f))
                    .collect::<Result<Vec<_>, _>>()?;
                if argv.first().is_none_or(|a| a.is_empty()) {
                    return Err(e("the program (the argv's first item) is empty".into()));
                }
                if argv.iter().any(|a| a.contains('\0')) {
                    return Err(e("an argument holds a NUL character".into()));
                }
                Request::Exec { argv }
            }
            ReqT::File(t) => {
                let path = r(t, f)?;
                if !path.starts_with('/') || path.contains('\0') {
                    return Err(e(format!("{path:?} is not an absolute path")));
                }
                Request::File { path }
            }
            ReqT::Agent(q) => Request::Agent { query: *q },
            ReqT::Ping(t) => {
                let host = r(t, f)?;
                check_host("the host", &host).map_err(e)?;
                Request::Ping { host }
            }
            ReqT::Tcp(t) => {
                let (host, port) = parse_host_port(&r(t, f)?).map_err(e)?;
                Request::Tcp { host, port }
            }
            ReqT::Dns {
                server,
                name,
                rtype,
            } => {
                let server = r(server, "dns.server")?;
                check_host("the server", &server).map_err(|m| ("dns.server".to_owned(), m))?;
                let name = r(name, "dns.name")?;
                check_host("the name", &name).map_err(|m| ("dns.name".to_owned(), m))?;
                let rtype = r(rtype, "dns.type")?.to_ascii_uppercase();
                if !DNS_TYPES.contains(&rtype.as_str()) {
                    return Err((
                        "dns.type".to_owned(),
                        format!("{rtype:?} is not one of {}", DNS_TYPES.join(", ")),
                    ));
                }
                Request::Dns {
                    server,
                    name,
                    rtype,
                }
            }
            ReqT::Http(t) => {
                let url = r(t, f)?;
                let rest = url
                    .strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://"));
                if rest.is_none_or(|h| h.is_empty())
                    || url.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(e(format!(
                        "{url:?} is not a URL starting with http:// or https://"
                    )));
                }
                Request::Http { url }
            }
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProbeSpec {
    pub id: String,
    #[serde(skip)]
    pub index: usize,
    pub request: ReqT,
    pub from: Source,
    pub timeout: f64,
}

impl ProbeSpec {
    pub(crate) fn at(&self) -> String {
        label("probe", self.index, &self.id)
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct CheckSpec {
    pub id: String,
    #[serde(skip)]
    pub index: usize,
    pub title: Template,
    pub probe: String,
    #[serde(skip)]
    pub probe_idx: usize,
    pub expect: Vec<Expectation>,
    pub points: f64,
    pub penalty: f64,
    pub partial: bool,
    pub requires: Vec<String>,
    #[serde(skip)]
    pub requires_idx: Vec<usize>,
    pub retry: Option<(f64, f64)>,
    pub fail: Option<Template>,
    pub pass: Option<Template>,
    pub tags: Vec<String>,
    pub mutant: Option<Vec<Template>>,
}

impl CheckSpec {
    pub(crate) fn at(&self) -> String {
        label("check", self.index, &self.id)
    }

    /// Whether an expectation asks for something to be absent (no retry for those).
    pub(crate) fn is_negative(&self) -> bool {
        self.expect.iter().any(Expectation::is_negative)
    }
}

/// A parsed, validated check spec: the `[exam]`, `[[probe]]` and `[[check]]` tables.
///
/// ```
/// let spec = lab_grade::Spec::parse(r#"
///     [[probe]]
///     id = "nginx"
///     exec = ["systemctl", "is-active", "nginx"]
///
///     [[check]]
///     id = "web-up"
///     probe = "nginx"
///     expect = [{ equals = "active" }]
///     points = 2
/// "#, "exam1-checks.toml").unwrap();
/// assert_eq!(spec.check_infos()[0].points, 2.0);
/// ```
#[derive(Debug, Clone)]
pub struct Spec {
    pub(crate) origin: String,
    pub(crate) exam: Exam,
    pub(crate) probes: Vec<ProbeSpec>,
    pub(crate) checks: Vec<CheckSpec>,
    /// Check indices such that every check comes after those it requires.
    pub(crate) order: Vec<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExam {
    teacher: Option<u32>,
    timeout: Option<f64>,
    floor: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    server: String,
    name: String,
    #[serde(rename = "type")]
    rtype: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    id: String,
    exec: Option<Vec<String>>,
    file: Option<String>,
    agent: Option<AgentQuery>,
    ping: Option<String>,
    tcp: Option<String>,
    dns: Option<RawDns>,
    http: Option<String>,
    from: Option<Source>,
    timeout: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    within: f64,
    every: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    id: String,
    title: Option<String>,
    probe: Option<String>,
    uses: Option<String>,
    expect: Vec<toml::Value>,
    points: Option<f64>,
    penalty: Option<f64>,
    partial: Option<bool>,
    requires: Option<Vec<String>>,
    retry: Option<RawRetry>,
    fail: Option<String>,
    pass: Option<String>,
    tags: Option<Vec<String>>,
    mutant: Option<Vec<String>>,
}

/// Collects problems while reading.
struct Errs(Vec<Problem>);

impl Errs {
    fn push(&mut self, at: &str, field: Option<&str>, message: impl Into<String>) {
        self.0.push(Problem {
            at: at.to_owned(),
            field: field.map(str::to_owned),
            message: message.into(),
        });
    }

    /// A serde error from a table: `…\nin `field`` or "missing field `x`" name the field.
    fn serde(&mut self, at: &str, e: &toml::de::Error) {
        let msg = e.to_string();
        let msg = msg.trim();
        let (message, field) = match msg.rsplit_once("\nin `") {
            Some((m, f)) => (
                m.trim().to_owned(),
                Some(f.trim_end_matches('`').to_owned()),
            ),
            None => {
                let f = msg
                    .strip_prefix("missing field `")
                    .and_then(|r| r.strip_suffix('`'))
                    .map(str::to_owned);
                (msg.to_owned(), f)
            }
        };
        self.0.push(Problem {
            at: at.to_owned(),
            field,
            message,
        });
    }
}

/// `[a-z0-9][a-z0-9._-]{0,63}`.
fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

const ID_RULE: &str = "an id is 1-64 of a-z 0-9 . _ - starting with a letter or digit";

fn seconds(v: f64, lo: f64, hi: f64) -> Result<f64, String> {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(v)
    } else {
        Err(format!("seconds from {lo} to {hi}, not {v}"))
    }
}

fn points(v: Option<f64>, default: f64) -> Result<f64, String> {
    let v = v.unwrap_or(default);
    if v.is_finite() && (0.0..=1e6).contains(&v) {
        Ok(v)
    } else {
        Err(format!("a number from 0 to 1000000, not {v}"))
    }
}

fn templ(errs: &mut Errs, at: &str, field: &str, raw: &str) -> Option<Template> {
    match Template::parse(raw) {
        Ok(t) => Some(t),
        Err(e) => {
            errs.push(at, Some(field), e);
            None
        }
    }
}

/// The tables of an array of tables, with a problem for anything else.
fn tables<'a>(
    errs: &mut Errs,
    name: &str,
    v: Option<&'a toml::Value>,
) -> Vec<Option<&'a toml::Table>> {
    match v {
        None => Vec::new(),
        Some(toml::Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let t = x.as_table();
                if t.is_none() {
                    errs.push(
                        &label(name, i, ""),
                        None,
                        format!("[[{name}]] items are tables, not {}", x.type_str()),
                    );
                }
                t
            })
            .collect(),
        Some(other) => {
            errs.push(
                "top level",
                Some(name),
                format!(
                    "`{name}` is an array of tables ([[{name}]]), not {}",
                    other.type_str()
                ),
            );
            Vec::new()
        }
    }
}

fn id_of(t: &toml::Table) -> String {
    t.get("id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

impl Spec {
    /// Reads a spec from TOML text; `origin` (a file name) starts every message.
    pub fn parse(text: &str, origin: &str) -> Result<Spec, SpecError> {
        match toml::from_str::<toml::Table>(text) {
            Ok(t) => Spec::from_table(&t, origin),
            Err(e) => Err(SpecError {
                origin: origin.to_owned(),
                problems: vec![Problem {
                    at: "TOML".into(),
                    field: None,
                    message: e.to_string().trim().to_owned(),
                }],
            }),
        }
    }

    /// Reads a spec from the `exam`, `probe` and `check` keys of a TOML table (any other
    /// key is an error: hand over only those).
    pub fn from_table(t: &toml::Table, origin: &str) -> Result<Spec, SpecError> {
        let mut errs = Errs(Vec::new());
        for k in t.keys() {
            if !matches!(k.as_str(), "exam" | "probe" | "check") {
                errs.push(
                    "top level",
                    Some(k),
                    "unknown key; a check spec holds [exam], [[probe]] and [[check]] tables",
                );
            }
        }
        let exam = read_exam(&mut errs, t.get("exam"));
        let probes = read_probes(&mut errs, t.get("probe"), &exam);
        let mut checks = read_checks(&mut errs, t.get("check"), &probes);
        let order = link_requires(&mut errs, &mut checks);
        if !errs.0.is_empty() {
            return Err(SpecError {
                origin: origin.to_owned(),
                problems: errs.0,
            });
        }
        Ok(Spec {
            origin: origin.to_owned(),
            exam,
            probes,
            checks,
            order,
        })
    }

    /// Where the spec came from (as given to [`Spec::parse`]).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Lower-case hex sha256 of the spec's canonical form: the meaning of every field
    /// with defaults filled in, so comments, whitespace, key order and `uses`/`probe`
    /// spellings do not change it.
    pub fn sha256(&self) -> String {
        #[derive(Serialize)]
        struct Canon<'a> {
            language: u32,
            exam: &'a Exam,
            probes: &'a [ProbeSpec],
            checks: &'a [CheckSpec],
        }
        let c = Canon {
            language: 1,
            exam: &self.exam,
            probes: &self.probes,
            checks: &self.checks,
        };
        sha256_hex(&serde_json::to_vec(&c).unwrap_or_default())
    }

    /// Whether the spec has no checks.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// The teacher's guest (`[exam] teacher`), through whose agent `from = "teacher"`
    /// probes run.
    pub fn teacher(&self) -> Option<u32> {
        self.exam.teacher
    }

    /// The lowest total a student can get (`[exam] floor`, default 0).
    pub fn floor(&self) -> f64 {
        self.exam.floor
    }

    /// The checks as the sheet lists them, in the spec's order.
    pub fn check_infos(&self) -> Vec<CheckInfo> {
        self.checks
            .iter()
            .map(|c| CheckInfo {
                id: c.id.clone(),
                title: c.title.raw().to_owned(),
                points: c.points,
                penalty: c.penalty,
                tags: c.tags.clone(),
            })
            .collect()
    }

    fn used(&self) -> BTreeSet<usize> {
        self.checks.iter().map(|c| c.probe_idx).collect()
    }

    /// The retry of a probe: the longest `within` and shortest `every` of the positive
    /// checks on it that ask for one.
    fn retry_of(&self, probe: usize) -> Option<RetryUntil> {
        self.checks
            .iter()
            .filter(|c| c.probe_idx == probe)
            .filter_map(|c| c.retry)
            .fold(None, |acc: Option<(f64, f64)>, (w, e)| {
                Some(acc.map_or((w, e), |(aw, ae)| (aw.max(w), ae.min(e))))
            })
            .map(|(w, e)| RetryUntil {
                within: Duration::from_secs_f64(w),
                every: Duration::from_secs_f64(e),
            })
    }

    fn student_label(s: &StudentInfo) -> String {
        if s.name == s.hostname {
            format!("student {}", s.hostname)
        } else {
            format!("student {} ({})", s.name, s.hostname)
        }
    }

    /// One probe planned for a student.
    pub(crate) fn plan_probe(
        &self,
        p: &ProbeSpec,
        vars: &Vars,
    ) -> Result<PlannedProbe, (String, String)> {
        let request = p.request.render(vars)?;
        Ok(PlannedProbe {
            id: p.id.clone(),
            source: p.from,
            request,
            timeout: Duration::from_secs_f64(p.timeout),
            retry: self.retry_of(p.index),
        })
    }

    /// Every probe some check uses, planned for a student (one result per probe, in the
    /// spec's order), so a collector can run the probes that could be planned and
    /// record the others' problems.
    pub fn plan_each(
        &self,
        student: &StudentInfo,
    ) -> Vec<(String, Result<PlannedProbe, SpecError>)> {
        let vars = Vars::of(student);
        let used = self.used();
        self.probes
            .iter()
            .filter(|p| used.contains(&p.index))
            .map(|p| {
                let r = self.plan_probe(p, &vars).map_err(|(field, why)| SpecError {
                    origin: self.origin.clone(),
                    problems: vec![Problem {
                        at: p.at(),
                        field: Some(field),
                        message: format!("{why} for {}", Self::student_label(student)),
                    }],
                });
                (p.id.clone(), r)
            })
            .collect()
    }

    /// Every probe some check uses, planned for a student: `{{…}}` filled in from their
    /// values. An error names the probe, the field, the value and the student.
    pub fn plan(&self, student: &StudentInfo) -> Result<Vec<PlannedProbe>, SpecError> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for (_, r) in self.plan_each(student) {
            match r {
                Ok(p) => out.push(p),
                Err(e) => problems.extend(e.problems),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(SpecError {
                origin: self.origin.clone(),
                problems,
            })
        }
    }

    /// Whether a collector may stop retrying a probe: every positive check with a
    /// `retry` on `ev.probe` passes on this evidence (true when no check asks for a
    /// retry, or the probe is not in the spec). Unusable evidence is not settled.
    pub fn settled(&self, student: &StudentInfo, ev: &Evidence) -> bool {
        let Some(p) = self.probes.iter().find(|p| p.id == ev.probe) else {
            return true;
        };
        let waiting: Vec<&CheckSpec> = self
            .checks
            .iter()
            .filter(|c| c.probe_idx == p.index && c.retry.is_some())
            .collect();
        if waiting.is_empty() {
            return true;
        }
        if ev.usable().is_err() {
            return false;
        }
        let vars = Vars::of(student);
        let kind = p.request.kind();
        let doc = Doc::default();
        waiting.iter().all(|c| {
            c.expect.iter().all(|e| {
                e.prepare(&vars)
                    .map(|pe| pe.judge_in(ev, kind, &doc).held)
                    .unwrap_or(false)
            })
        })
    }

    /// The checks that declare a mutant, in the spec's order.
    pub fn mutants(&self) -> Vec<Mutant> {
        self.checks
            .iter()
            .filter_map(|c| {
                let argv = c.mutant.as_ref()?;
                Some(Mutant {
                    check: c.id.clone(),
                    argv: argv.iter().map(|t| t.raw().to_owned()).collect(),
                    breaks: self.dependents(c.index),
                })
            })
            .collect()
    }

    /// A check and every check requiring it, directly or through others.
    fn dependents(&self, check: usize) -> BTreeSet<String> {
        let mut seen = BTreeSet::from([check]);
        let mut todo = vec![check];
        while let Some(c) = todo.pop() {
            for d in &self.checks {
                if d.requires_idx.contains(&c) && seen.insert(d.index) {
                    todo.push(d.index);
                }
            }
        }
        seen.into_iter()
            .map(|i| self.checks[i].id.clone())
            .collect()
    }

    /// A check's mutant argv with a student's values filled in (`None`: no such check
    /// or it declares no mutant).
    pub fn mutant_argv(
        &self,
        check: &str,
        student: &StudentInfo,
    ) -> Option<Result<Vec<String>, SpecError>> {
        let c = self.checks.iter().find(|c| c.id == check)?;
        let argv = c.mutant.as_ref()?;
        let vars = Vars::of(student);
        Some(
            argv.iter()
                .map(|t| t.render(&vars))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| SpecError {
                    origin: self.origin.clone(),
                    problems: vec![Problem {
                        at: c.at(),
                        field: Some("mutant".into()),
                        message: format!("{m} for {}", Self::student_label(student)),
                    }],
                }),
        )
    }
}

fn read_exam(errs: &mut Errs, v: Option<&toml::Value>) -> Exam {
    let mut exam = Exam {
        teacher: None,
        timeout: 10.0,
        floor: 0.0,
    };
    let Some(v) = v else { return exam };
    let raw: RawExam = match v.clone().try_into() {
        Ok(r) => r,
        Err(e) => {
            errs.serde("[exam]", &e);
            return exam;
        }
    };
    if let Some(t) = raw.teacher {
        if (100..=999_999_999).contains(&t) {
            exam.teacher = Some(t);
        } else {
            errs.push(
                "[exam]",
                Some("teacher"),
                format!("a VMID is 100-999999999, not {t}"),
            );
        }
    }
    if let Some(t) = raw.timeout {
        match seconds(t, 0.1, 3600.0) {
            Ok(t) => exam.timeout = t,
            Err(m) => errs.push("[exam]", Some("timeout"), m),
        }
    }
    if let Some(f) = raw.floor {
        if f.is_finite() {
            exam.floor = f;
        } else {
            errs.push("[exam]", Some("floor"), "`floor` is a number");
        }
    }
    exam
}

fn read_probes(errs: &mut Errs, v: Option<&toml::Value>, exam: &Exam) -> Vec<ProbeSpec> {
    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    for (index, t) in tables(errs, "probe", v).into_iter().enumerate() {
        let Some(t) = t else { continue };
        let at = label("probe", index, &id_of(t));
        let raw: RawProbe = match toml::Value::Table(t.clone()).try_into() {
            Ok(r) => r,
            Err(e) => {
                errs.serde(&at, &e);
                continue;
            }
        };
        let before = errs.0.len();
        if !valid_id(&raw.id) {
            errs.push(&at, Some("id"), format!("{:?}: {ID_RULE}", raw.id));
        } else if raw.id == "student" {
            errs.push(
                &at,
                Some("id"),
                "\"student\" is reserved (its evidence file would be student.json)",
            );
        } else if !ids.insert(raw.id.clone()) {
            errs.push(
                &at,
                Some("id"),
                format!(
                    "\"{}\" is the id of an earlier probe; ids are unique",
                    raw.id
                ),
            );
        }
        let given: Vec<&str> = [
            ("exec", raw.exec.is_some()),
            ("file", raw.file.is_some()),
            ("agent", raw.agent.is_some()),
            ("ping", raw.ping.is_some()),
            ("tcp", raw.tcp.is_some()),
            ("dns", raw.dns.is_some()),
            ("http", raw.http.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, b)| b.then_some(k))
        .collect();
        if given.len() != 1 {
            errs.push(
                &at,
                None,
                format!(
                    "a probe needs exactly one of exec, file, agent, ping, tcp, dns, http (found {})",
                    if given.is_empty() { "none".to_owned() } else { given.join(", ") }
                ),
            );
            continue;
        }
        let request = if let Some(argv) = &raw.exec {
            if argv.is_empty() {
                errs.push(&at, Some("exec"), "the argv is empty; write e.g. [\"ip\", \"-j\", \"addr\"] (a shell: [\"/bin/sh\", \"-c\", \"…\"])");
                continue;
            }
            let ts: Vec<Option<Template>> =
                argv.iter().map(|a| templ(errs, &at, "exec", a)).collect();
            if ts.iter().any(Option::is_none) {
                continue;
            }
            ReqT::Exec(ts.into_iter().flatten().collect())
        } else if let Some(f) = &raw.file {
            let Some(t) = templ(errs, &at, "file", f) else {
                continue;
            };
            ReqT::File(t)
        } else if let Some(q) = raw.agent {
            ReqT::Agent(q)
        } else if let Some(h) = &raw.ping {
            let Some(t) = templ(errs, &at, "ping", h) else {
                continue;
            };
            ReqT::Ping(t)
        } else if let Some(h) = &raw.tcp {
            let Some(t) = templ(errs, &at, "tcp", h) else {
                continue;
            };
            ReqT::Tcp(t)
        } else if let Some(d) = &raw.dns {
            let server = templ(errs, &at, "dns.server", &d.server);
            let name = templ(errs, &at, "dns.name", &d.name);
            let rtype = templ(errs, &at, "dns.type", d.rtype.as_deref().unwrap_or("A"));
            let (Some(server), Some(name), Some(rtype)) = (server, name, rtype) else {
                continue;
            };
            ReqT::Dns {
                server,
                name,
                rtype,
            }
        } else if let Some(u) = &raw.http {
            let Some(t) = templ(errs, &at, "http", u) else {
                continue;
            };
            ReqT::Http(t)
        } else {
            continue;
        };
        if request.is_literal() {
            if let Err((field, why)) = request.render(&Vars::default()) {
                errs.push(&at, Some(&field), why);
            }
        }
        let kind = request.kind();
        let inside = matches!(kind, Kind::Exec | Kind::File | Kind::Agent);
        let from = match raw.from {
            Some(Source::Host) if inside => {
                errs.push(
                    &at,
                    Some("from"),
                    format!(
                        "{} runs inside a guest: from = \"guest\" or \"teacher\"",
                        request.field()
                    ),
                );
                Source::Host
            }
            Some(s) => s,
            None if inside => Source::Guest,
            None if exam.teacher.is_some() => Source::Teacher,
            None => Source::Host,
        };
        let timeout = match raw.timeout.map(|t| seconds(t, 0.1, 3600.0)) {
            None => exam.timeout,
            Some(Ok(t)) => t,
            Some(Err(m)) => {
                errs.push(&at, Some("timeout"), m);
                exam.timeout
            }
        };
        if errs.0.len() == before {
            out.push(ProbeSpec {
                id: raw.id,
                index,
                request,
                from,
                timeout,
            });
        }
    }
    // A spec is only built when no probe was dropped, so `index` is then the position.
    out
}

fn read_checks(errs: &mut Errs, v: Option<&toml::Value>, probes: &[ProbeSpec]) -> Vec<CheckSpec> {
    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    for (index, t) in tables(errs, "check", v).into_iter().enumerate() {
        let Some(t) = t else { continue };
        let at = label("check", index, &id_of(t));
        let raw: RawCheck = match toml::Value::Table(t.clone()).try_into() {
            Ok(r) => r,
            Err(e) => {
                errs.serde(&at, &e);
                continue;
            }
        };
        let before = errs.0.len();
        if !valid_id(&raw.id) {
            errs.push(&at, Some("id"), format!("{:?}: {ID_RULE}", raw.id));
        } else if !ids.insert(raw.id.clone()) {
            errs.push(
                &at,
                Some("id"),
                format!(
                    "\"{}\" is the id of an earlier check; ids are unique",
                    raw.id
                ),
            );
        }
        let probe_id = match (&raw.probe, &raw.uses) {
            (Some(p), None) | (None, Some(p)) => Some(p.clone()),
            (Some(_), Some(_)) => {
                errs.push(
                    &at,
                    Some("uses"),
                    "`uses` is another name for `probe`: give one",
                );
                None
            }
            (None, None) => {
                errs.push(
                    &at,
                    Some("probe"),
                    "missing: the id of the [[probe]] this check judges",
                );
                None
            }
        };
        let probe = probe_id.as_ref().and_then(|id| {
            let p = probes.iter().find(|p| &p.id == id);
            if p.is_none() {
                let known: Vec<&str> = probes.iter().map(|p| p.id.as_str()).collect();
                errs.push(
                    &at,
                    Some(if raw.uses.is_some() { "uses" } else { "probe" }),
                    format!(
                        "\"{id}\" is not a [[probe]] id (known: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
            p
        });
        if raw.expect.is_empty() {
            errs.push(
                &at,
                Some("expect"),
                "empty: a check needs at least one expectation, e.g. [{ exit = 0 }]",
            );
        }
        let mut expect = Vec::new();
        if let Some(p) = probe {
            for (i, e) in raw.expect.iter().enumerate() {
                match Expectation::parse(e, p.request.kind()) {
                    Ok(x) => expect.push(x),
                    Err(m) => errs.push(&at, Some(&format!("expect[{}]", i + 1)), m),
                }
            }
        }
        let pts = points(raw.points, 1.0).unwrap_or_else(|m| {
            errs.push(&at, Some("points"), m);
            0.0
        });
        let penalty = points(raw.penalty, 0.0).unwrap_or_else(|m| {
            errs.push(&at, Some("penalty"), m);
            0.0
        });
        let retry = raw.retry.as_ref().and_then(|r| {
            let w = seconds(r.within, 0.1, 3600.0);
            let e = seconds(r.every, 0.1, 3600.0);
            match (w, e) {
                (Ok(w), Ok(e)) if e <= w => Some((w, e)),
                (Ok(_), Ok(_)) => {
                    errs.push(
                        &at,
                        Some("retry.every"),
                        "`every` must not be longer than `within`",
                    );
                    None
                }
                (w, e) => {
                    if let Err(m) = w {
                        errs.push(&at, Some("retry.within"), m);
                    }
                    if let Err(m) = e {
                        errs.push(&at, Some("retry.every"), m);
                    }
                    None
                }
            }
        });
        let title = templ(errs, &at, "title", raw.title.as_deref().unwrap_or(&raw.id));
        let fail = raw
            .fail
            .as_deref()
            .and_then(|s| templ(errs, &at, "fail", s));
        let pass = raw
            .pass
            .as_deref()
            .and_then(|s| templ(errs, &at, "pass", s));
        let mutant = match &raw.mutant {
            Some(a) if a.is_empty() || a[0].is_empty() => {
                errs.push(&at, Some("mutant"), "an argv that breaks this check, e.g. [\"ip\", \"addr\", \"flush\", \"dev\", \"ens18\"]");
                None
            }
            Some(a) => {
                let ts: Vec<Option<Template>> =
                    a.iter().map(|s| templ(errs, &at, "mutant", s)).collect();
                Some(ts.into_iter().flatten().collect())
            }
            None => None,
        };
        let check = CheckSpec {
            id: raw.id.clone(),
            index,
            title: title.unwrap_or_else(Template::empty),
            probe: probe_id.unwrap_or_default(),
            probe_idx: probe.map_or(0, |p| p.index),
            expect,
            points: pts,
            penalty,
            partial: raw.partial.unwrap_or(false),
            requires: raw.requires.clone().unwrap_or_default(),
            requires_idx: Vec::new(),
            retry,
            fail,
            pass,
            tags: raw.tags.clone().unwrap_or_default(),
            mutant,
        };
        if check.retry.is_some() && check.is_negative() {
            errs.push(
                &at,
                Some("retry"),
                "retry is for positive checks only; this check has `not`, `reachable = false` or `count = 0`, and retrying it would grade a lucky moment",
            );
        }
        if errs.0.len() == before {
            out.push(check);
        }
    }
    out
}

/// Resolves `requires` to indices and orders the checks so each follows those it
/// requires; unknown ids and cycles are problems.
fn link_requires(errs: &mut Errs, checks: &mut [CheckSpec]) -> Vec<usize> {
    let index: BTreeMap<String, usize> = checks
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.clone(), i))
        .collect();
    // Positions; a spec is only built when no check was dropped, so they equal `index`.
    for c in checks.iter_mut() {
        let mut idx = Vec::new();
        for r in &c.requires {
            match index.get(r) {
                Some(&j) if !idx.contains(&j) => idx.push(j),
                Some(_) => {}
                None => errs.push(
                    &c.at(),
                    Some("requires"),
                    format!("\"{r}\" is not a [[check]] id"),
                ),
            }
        }
        c.requires_idx = idx;
    }
    // Kahn's algorithm, taking the lowest ready index first (the spec's order).
    let n = checks.len();
    let mut missing: Vec<usize> = checks.iter().map(|c| c.requires_idx.len()).collect();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while let Some(i) = (0..n).find(|&i| !done[i] && missing[i] == 0) {
        done[i] = true;
        order.push(i);
        for (j, c) in checks.iter().enumerate() {
            if c.requires_idx.contains(&i) {
                missing[j] = missing[j].saturating_sub(1);
            }
        }
    }
    if order.len() < n {
        let cyclic: Vec<String> = (0..n)
            .filter(|&i| !done[i])
            .map(|i| checks[i].id.clone())
            .collect();
        for i in (0..n).filter(|&i| !done[i]) {
            errs.push(
                &checks[i].at(),
                Some("requires"),
                format!("requires form a cycle (among {})", cyclic.join(", ")),
            );
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{Blob, Target};

    const SPEC: &str = r#"
        [exam]
        teacher = 100
        timeout = 8

        [[probe]]
        id = "addr"
        exec = ["ip", "-j", "addr", "show", "dev", "ens{{nic}}"]
        timeout = 5

        [[probe]]
        id = "web"
        http = "http://{{ip}}/"

        [[probe]]
        id = "ssh"
        tcp = "{{ip}}:22"
        from = "host"

        [[probe]]
        id = "www"
        dns = { server = "{{ip}}", name = "www.{{domain}}.", type = "aaaa" }

        [[probe]]
        id = "spare"
        agent = "osinfo"

        [[check]]
        id = "static-ip"
        probe = "addr"
        expect = [{ json = "$[*].addr_info[*].local", includes = ["{{ip}}"] }]
        retry = { within = 30, every = 2 }
        mutant = ["ip", "addr", "flush", "dev", "ens{{nic}}"]

        [[check]]
        id = "web"
        uses = "web"
        requires = ["static-ip"]
        expect = [{ status = 200 }]
        retry = { within = 10, every = 1 }

        [[check]]
        id = "web-name"
        probe = "web"
        requires = ["web"]
        expect = [{ contains = "{{student}}" }]

        [[check]]
        id = "ssh-closed"
        probe = "ssh"
        expect = [{ reachable = false }]
        points = 0
        penalty = 2

        [[check]]
        id = "dns"
        probe = "www"
        expect = [{ includes = ["fd00::{{nic}}"] }]
    "#;

    fn student() -> StudentInfo {
        StudentInfo {
            key: "s01".into(),
            name: "Ada".into(),
            hostname: "s01".into(),
            vmid: 5001,
            node: "pve1".into(),
            vars: BTreeMap::from([
                ("ip".to_owned(), "10.0.1.10".to_owned()),
                ("nic".to_owned(), "18".to_owned()),
                ("domain".to_owned(), "s01.lab".to_owned()),
            ]),
        }
    }

    fn err(text: &str) -> String {
        Spec::parse(text, "exam1-checks.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn plan_fills_in_values_sources_timeouts_and_retries() {
        let spec = Spec::parse(SPEC, "x").unwrap();
        let plan = spec.plan(&student()).unwrap();
        let ids: Vec<&str> = plan.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            ["addr", "web", "ssh", "www"],
            "the unused probe is not planned"
        );
        assert_eq!(
            plan[0].request,
            Request::Exec {
                argv: ["ip", "-j", "addr", "show", "dev", "ens18"]
                    .map(String::from)
                    .to_vec()
            }
        );
        assert_eq!(
            (plan[0].source, plan[0].timeout),
            (Source::Guest, Duration::from_secs(5))
        );
        assert_eq!(
            plan[0].retry,
            Some(RetryUntil {
                within: Duration::from_secs(30),
                every: Duration::from_secs(2)
            })
        );
        assert_eq!(
            plan[1].request,
            Request::Http {
                url: "http://10.0.1.10/".into()
            }
        );
        assert_eq!(
            (plan[1].source, plan[1].timeout),
            (Source::Teacher, Duration::from_secs(8))
        );
        assert_eq!(
            plan[1].retry.map(|r| r.within),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            plan[2].request,
            Request::Tcp {
                host: "10.0.1.10".into(),
                port: 22
            }
        );
        assert_eq!((plan[2].source, plan[2].retry), (Source::Host, None));
        assert_eq!(
            plan[3].request,
            Request::Dns {
                server: "10.0.1.10".into(),
                name: "www.s01.lab.".into(),
                rtype: "AAAA".into()
            }
        );
    }

    #[test]
    fn outside_probes_run_from_the_host_without_a_teacher() {
        let spec = Spec::parse("[[probe]]\nid = \"p\"\nping = \"10.0.0.1\"\n[[check]]\nid = \"c\"\nprobe = \"p\"\nexpect = [{ reachable = true }]", "x").unwrap();
        assert_eq!(spec.plan(&student()).unwrap()[0].source, Source::Host);
        assert_eq!(spec.teacher(), None);
    }

    #[test]
    fn a_value_a_student_lacks_fails_the_plan_naming_probe_field_value_and_student() {
        let spec = Spec::parse(SPEC, "exam1-checks.toml").unwrap();
        let mut s = student();
        s.vars.remove("domain");
        let e = spec.plan(&s).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "exam1-checks.toml: [[probe]] #4 \"www\": `dns.name`: unknown value {{domain}}"
            ),
            "{e}"
        );
        assert!(e.ends_with("for student Ada (s01)"), "{e}");
        let each = spec.plan_each(&s);
        assert_eq!(each.iter().filter(|(_, r)| r.is_ok()).count(), 3);
    }

    #[test]
    fn values_that_make_a_bad_request_are_refused() {
        let spec = Spec::parse(SPEC, "x").unwrap();
        let mut s = student();
        s.vars.insert("ip".into(), "-f".into());
        let e = spec.plan(&s).unwrap_err().to_string();
        assert!(e.contains("not a host name or address"), "{e}");
        assert!(e.contains("`tcp`"), "{e}");
    }

    #[test]
    fn settled_waits_for_every_positive_retry_check_on_the_probe() {
        let spec = Spec::parse(SPEC, "x").unwrap();
        let s = student();
        let ev = |probe: &str, out: &str| Evidence {
            probe: probe.into(),
            student: "s01".into(),
            source: Source::Guest,
            request: Request::Exec {
                argv: vec!["ip".into()],
            },
            target: Target {
                vmid: Some(5001),
                node: None,
                name: "s01".into(),
            },
            start: String::new(),
            end: String::new(),
            attempts: 1,
            exit: Some(0),
            signal: None,
            stdout: Blob::from(out),
            stderr: Blob::default(),
            truncated: false,
            sha256: sha256_hex(out.as_bytes()),
            error: None,
        };
        let up = r#"[{"ifname":"ens18","addr_info":[{"local":"10.0.1.10"}]}]"#;
        let down = r#"[{"ifname":"ens18","addr_info":[]}]"#;
        assert!(spec.settled(&s, &ev("addr", up)));
        assert!(!spec.settled(&s, &ev("addr", down)));
        let mut truncated = ev("addr", up);
        truncated.truncated = true;
        assert!(!spec.settled(&s, &truncated));
        assert!(spec.settled(&s, &ev("web", "x\n200")));
        assert!(!spec.settled(&s, &ev("web", "x\n502")));
        // No retry on the probe, or not a probe of the spec: nothing to wait for.
        assert!(spec.settled(&s, &ev("ssh", "")));
        assert!(spec.settled(&s, &ev("unknown", "")));
    }

    #[test]
    fn mutants_break_their_check_and_every_dependent() {
        let spec = Spec::parse(SPEC, "x").unwrap();
        let m = spec.mutants();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].check, "static-ip");
        assert_eq!(m[0].argv, ["ip", "addr", "flush", "dev", "ens{{nic}}"]);
        assert_eq!(
            m[0].breaks.iter().map(String::as_str).collect::<Vec<_>>(),
            ["static-ip", "web", "web-name"]
        );
        let argv = spec.mutant_argv("static-ip", &student()).unwrap().unwrap();
        assert_eq!(argv, ["ip", "addr", "flush", "dev", "ens18"]);
        assert!(spec.mutant_argv("web", &student()).is_none());
    }

    #[test]
    fn check_infos_keep_the_spec_order_and_raw_titles() {
        let spec = Spec::parse(SPEC, "x").unwrap();
        let infos = spec.check_infos();
        assert_eq!(infos.len(), 5);
        assert_eq!(infos[0].title, "static-ip");
        assert_eq!((infos[3].points, infos[3].penalty), (0.0, 2.0));
        assert!(!spec.is_empty());
        assert_eq!(spec.teacher(), Some(100));
        assert!(Spec::parse("", "x").unwrap().is_empty());
    }

    #[test]
    fn sha256_ignores_comments_whitespace_order_and_aliases_but_not_meaning() {
        let a = Spec::parse(
            "[[probe]]\nid = \"p\"\nexec = [\"true\"]\n[[check]]\nid = \"c\"\nprobe = \"p\"\nexpect = [{ exit = 0 }]\n",
            "a",
        )
        .unwrap();
        let b = Spec::parse(
            "# the same\n[[check]]\nexpect = [ { exit = 0 } ]   # ok\npoints = 1\nuses = \"p\"\nid = \"c\"\n\n[[probe]]\nexec = [ \"true\" ]\nid = \"p\"\n[exam]\ntimeout = 10\n",
            "b",
        )
        .unwrap();
        assert_eq!(a.sha256(), b.sha256());
        assert_eq!(a.sha256().len(), 64);
        let c = Spec::parse(
            "[[probe]]\nid = \"p\"\nexec = [\"true\"]\n[[check]]\nid = \"c\"\nprobe = \"p\"\nexpect = [{ exit = 0 }]\npoints = 2\n",
            "c",
        )
        .unwrap();
        assert_ne!(a.sha256(), c.sha256());
    }

    #[test]
    fn errors_name_origin_table_id_field_and_what_is_allowed() {
        let e = err("[[probe]]\nid = \"p\"\nexec = [\"true\"]\ncolour = 1\n");
        assert!(e.starts_with("exam1-checks.toml: [[probe]] #1 \"p\": unknown field `colour`, expected one of `id`, `exec`"), "{e}");
        let e = err("[[probe]]\nid = \"p\"\nexec = \"ip -j addr\"\n");
        assert!(
            e.contains("[[probe]] #1 \"p\": `exec`: invalid type: string"),
            "{e}"
        );
        let e = err("[[probe]]\nid = \"p\"\nexec = [\"true\"]\n[[check]]\nid = \"c\"\nprobe = \"q\"\nexpect = [{ exit = 0 }]\n");
        assert!(
            e.contains("[[check]] #1 \"c\": `probe`: \"q\" is not a [[probe]] id (known: p)"),
            "{e}"
        );
        let e = err("[[probe]]\nid = \"p\"\nexec = [\"true\"]\n[[check]]\nid = \"c\"\nprobe = \"p\"\nexpect = [{ regex = \"(\" }]\n");
        assert!(
            e.contains("`expect[1]`: regex \"(\" does not compile"),
            "{e}"
        );
        let e = err("[exam]\nteacher = 5\ntimeout = 0\n");
        assert!(
            e.contains("[exam]: `teacher`: a VMID is 100-999999999, not 5"),
            "{e}"
        );
        assert!(
            e.contains("[exam]: `timeout`: seconds from 0.1 to 3600, not 0"),
            "{e}"
        );
        let e = err("colour = 1\n");
        assert!(e.contains("top level: `colour`: unknown key"), "{e}");
        let e = err("[[probe]\n");
        assert!(
            e.starts_with("exam1-checks.toml: TOML: TOML parse error at line 1"),
            "{e}"
        );
    }

    #[test]
    fn every_problem_is_reported_not_only_the_first() {
        let e = Spec::parse(
            r#"
            [[probe]]
            id = "Bad Id"
            exec = ["true"]
            [[probe]]
            id = "two"
            exec = ["true"]
            file = "/etc/x"
            [[probe]]
            id = "local"
            file = "etc/hostname"
            [[probe]]
            id = "here"
            agent = "info"
            from = "host"
            [[probe]]
            id = "port"
            tcp = "10.0.0.1:http"
            [[probe]]
            id = "v6"
            tcp = "fd00::1:22"
            [[probe]]
            id = "dig"
            dns = { server = "10.0.0.1", name = "+x", type = "ANY" }
            [[probe]]
            id = "ok"
            exec = ["true"]
            [[probe]]
            id = "ok"
            exec = ["true"]
            [[probe]]
            id = "student"
            exec = ["true"]
            [[probe]]
            id = "web"
            http = "ftp://x/"
            [[probe]]
            id = "tmpl"
            exec = ["echo", "{{vlan"]
            "#,
            "x",
        )
        .unwrap_err();
        let all = e.to_string();
        for want in [
            "[[probe]] #1 \"Bad Id\": `id`",
            "[[probe]] #2 \"two\": a probe needs exactly one of exec, file, agent, ping, tcp, dns, http (found exec, file)",
            "[[probe]] #3 \"local\": `file`: \"etc/hostname\" is not an absolute path",
            "[[probe]] #4 \"here\": `from`: agent runs inside a guest",
            "[[probe]] #5 \"port\": `tcp`: \"10.0.0.1:http\": the port must be 1-65535",
            "[[probe]] #6 \"v6\": `tcp`: \"fd00::1:22\": write an IPv6 address in brackets",
            "[[probe]] #7 \"dig\": `dns.name`",
            "[[probe]] #9 \"ok\": `id`: \"ok\" is the id of an earlier probe",
            "[[probe]] #10 \"student\": `id`: \"student\" is reserved",
            "[[probe]] #11 \"web\": `http`: \"ftp://x/\" is not a URL",
            "[[probe]] #12 \"tmpl\": `exec`: `{{` at character 1 has no closing `}}`",
        ] {
            assert!(all.contains(want), "missing {want:?} in\n{all}");
        }
        assert_eq!(e.problems.len(), 11, "{all}");
    }

    #[test]
    fn check_fields_are_validated() {
        let base = "[[probe]]\nid = \"p\"\nping = \"10.0.0.1\"\n";
        let check = |body: &str| {
            err(&format!(
                "{base}[[check]]\nid = \"c\"\nprobe = \"p\"\n{body}\n"
            ))
        };
        assert!(check("expect = []").contains("`expect`: empty"));
        assert!(check("expect = [{ reachable = true }]\npoints = -1")
            .contains("`points`: a number from 0 to 1000000, not -1"));
        assert!(check("expect = [{ reachable = true }]\nuses = \"p\"")
            .contains("`uses` is another name for `probe`"));
        assert!(
            check("expect = [{ reachable = true }]\nrequires = [\"nope\"]")
                .contains("`requires`: \"nope\" is not a [[check]] id")
        );
        assert!(
            check("expect = [{ reachable = false }]\nretry = { within = 5, every = 1 }")
                .contains("retry is for positive checks only")
        );
        assert!(
            check("expect = [{ reachable = true }]\nretry = { within = 5, every = 10 }")
                .contains("`every` must not be longer than `within`")
        );
        assert!(
            check("expect = [{ reachable = true }]\nretry = { within = 5 }")
                .contains("missing field `every`")
        );
        assert!(check("expect = [{ reachable = true }]\nmutant = []").contains("`mutant`"));
        let both = check("expect = [{ reachable = true }]\nretry = { within = 0, every = 5000 }");
        assert!(
            both.contains("`retry.within`: seconds from 0.1 to 3600, not 0"),
            "{both}"
        );
        assert!(
            both.contains("`retry.every`: seconds from 0.1 to 3600, not 5000"),
            "{both}"
        );
        let dup = err(&format!("{base}[[check]]\nid = \"c\"\nprobe = \"p\"\nexpect = [{{ exit = 0 }}]\n[[check]]\nid = \"c\"\nprobe = \"p\"\nexpect = [{{ exit = 0 }}]\n"));
        assert!(
            dup.contains("[[check]] #2 \"c\": `id`: \"c\" is the id of an earlier check"),
            "{dup}"
        );
        let missing = err(&format!(
            "{base}[[check]]\nprobe = \"p\"\nexpect = [{{ exit = 0 }}]\n"
        ));
        assert!(
            missing.contains("[[check]] #1: `id`: missing field `id`"),
            "{missing}"
        );
    }

    #[test]
    fn cyclic_requires_are_refused_naming_the_cycle() {
        let e = err("[[probe]]\nid = \"p\"\nexec = [\"true\"]\n\
             [[check]]\nid = \"a\"\nprobe = \"p\"\nrequires = [\"b\"]\nexpect = [{ exit = 0 }]\n\
             [[check]]\nid = \"b\"\nprobe = \"p\"\nrequires = [\"a\"]\nexpect = [{ exit = 0 }]\n\
             [[check]]\nid = \"c\"\nprobe = \"p\"\nrequires = [\"c\"]\nexpect = [{ exit = 0 }]\n");
        assert!(
            e.contains("[[check]] #1 \"a\": `requires`: requires form a cycle (among a, b, c)"),
            "{e}"
        );
        assert!(e.contains("[[check]] #3 \"c\""), "{e}");
    }

    #[test]
    fn from_table_takes_the_keys_of_a_lab_file() {
        let t: toml::Table = toml::from_str(SPEC).unwrap();
        let a = Spec::from_table(&t, "lab.toml").unwrap();
        let b = Spec::parse(SPEC, "other.toml").unwrap();
        assert_eq!(a.sha256(), b.sha256());
        assert_eq!(a.origin(), "lab.toml");
    }

    #[test]
    fn the_readme_example_parses_plans_and_lints_clean() {
        let spec = Spec::parse(crate::readme_example(), "README.md").unwrap();
        let mut s = student();
        s.vars.insert("vlan".into(), "10".into());
        let plan = spec.plan(&s).unwrap();
        assert_eq!(plan.len(), 7);
        assert_eq!(
            plan[4].request,
            Request::Dns {
                server: "192.168.10.10".into(),
                name: "www.s01.lab".into(),
                rtype: "A".into()
            }
        );
        assert!(plan[4..].iter().all(|p| p.source == Source::Teacher));
        assert_eq!(spec.lint(&[s]), []);
        assert_eq!(spec.mutants().len(), 2);
        assert_eq!(
            spec.mutants()[0]
                .breaks
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["static-ip", "web-page"]
        );
    }
}
