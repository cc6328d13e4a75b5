//! Expectations: what a check looks at in a probe's evidence (the selector) and what it
//! must find there (the test). Parsing is strict (one selector at most, exactly one test,
//! patterns that compile); judging is total (never panics, whatever the student printed).

use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use regex::Regex;
use serde::Serialize;
use serde_json::Value;
use serde_json_path::JsonPath;

use crate::evidence::Evidence;
use crate::template::{Template, Vars};

/// The kinds of probes, as far as expectations care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Exec,
    File,
    Agent,
    Ping,
    Tcp,
    Dns,
    Http,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Exec => "exec",
            Kind::File => "file",
            Kind::Agent => "agent",
            Kind::Ping => "ping",
            Kind::Tcp => "tcp",
            Kind::Dns => "dns",
            Kind::Http => "http",
        }
    }

    fn default_field(self) -> Field {
        match self {
            Kind::Exec | Kind::File | Kind::Agent => Field::Stdout,
            Kind::Http => Field::Body,
            Kind::Dns => Field::Answers,
            Kind::Ping | Kind::Tcp => Field::Exit,
        }
    }
}

/// A part of the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Field {
    Stdout,
    Stderr,
    Lines,
    Exit,
    Status,
    Body,
    Answers,
    /// sha256 of stdout (the `sha256 = …` shorthand).
    Sha256,
}

const FIELDS: &str = "stdout, stderr, lines, exit, status (http), body (http), answers (dns)";

impl Field {
    fn parse(s: &str, kind: Kind) -> Result<Field, String> {
        let f = match s {
            "stdout" => Field::Stdout,
            "stderr" => Field::Stderr,
            "lines" => Field::Lines,
            "exit" => Field::Exit,
            "status" => Field::Status,
            "body" => Field::Body,
            "answers" => Field::Answers,
            _ => return Err(format!("\"{s}\" is not a field; allowed: {FIELDS}")),
        };
        match (f, kind) {
            (Field::Status | Field::Body, k) if k != Kind::Http => Err(format!(
                "field \"{s}\" needs an http probe (this probe is {})",
                k.name()
            )),
            (Field::Answers, k) if k != Kind::Dns => Err(format!(
                "field \"answers\" needs a dns probe (this probe is {})",
                k.name()
            )),
            _ => Ok(f),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Field::Stdout => "stdout",
            Field::Stderr => "stderr",
            Field::Lines => "lines",
            Field::Exit => "exit",
            Field::Status => "status",
            Field::Body => "body",
            Field::Answers => "answers",
            Field::Sha256 => "sha256 of stdout",
        }
    }
}

/// A pattern (regex or JSONPath) compiled once when it has no `{{…}}`, else per student.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub(crate) struct Pattern<T> {
    text: Template,
    #[serde(skip)]
    compiled: Option<Arc<T>>,
}

pub(crate) trait Compile: Sized {
    const WHAT: &'static str;
    fn compile(s: &str) -> Result<Self, String>;
}

impl Compile for Regex {
    const WHAT: &'static str = "regex";
    fn compile(s: &str) -> Result<Self, String> {
        regex::RegexBuilder::new(s)
            .size_limit(1 << 22)
            .build()
            .map_err(|e| e.to_string().replace('\n', " "))
    }
}

impl Compile for JsonPath {
    const WHAT: &'static str = "JSONPath (RFC 9535)";
    fn compile(s: &str) -> Result<Self, String> {
        JsonPath::parse(s).map_err(|e| e.to_string().replace('\n', " "))
    }
}

impl<T: Compile> Pattern<T> {
    fn parse(raw: &str) -> Result<Self, String> {
        let text = Template::parse(raw)?;
        let compiled = if text.is_literal() {
            Some(Arc::new(T::compile(&text.literal()).map_err(|e| {
                format!("{} {raw:?} does not compile: {e}", T::WHAT)
            })?))
        } else {
            None
        };
        Ok(Pattern { text, compiled })
    }

    fn get(&self, vars: &Vars) -> Result<(Arc<T>, String), String> {
        let s = self.text.render(vars).map_err(|m| m.to_string())?;
        match &self.compiled {
            Some(c) => Ok((Arc::clone(c), s)),
            None => T::compile(&s)
                .map(|c| (Arc::new(c), s.clone()))
                .map_err(|e| format!("{} {s:?} does not compile: {e}", T::WHAT)),
        }
    }
}

/// Where the values come from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Selector {
    Json(Pattern<JsonPath>),
    Field(Field),
}

/// A literal an `equals` compares with.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum Lit {
    Str(Template),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// A comparison of numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cmp {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
        }
    }
    fn sign(self) -> &'static str {
        match self {
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
        }
    }
}

/// What must hold for the selected values.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Test {
    Equals(Lit),
    Contains(Template),
    Regex(Pattern<Regex>),
    Compare(Cmp, f64),
    Set(Vec<Template>),
    Includes(Vec<Template>),
    Count(u64),
    Exists,
    InSubnet(Template),
    IpEq(Template),
    /// `sha256 = "hex"`: equal ignoring case.
    HashEq(Template),
}

impl Test {
    /// Tests of one value, applied to each selected value (any, or `all`).
    fn one_value(&self) -> bool {
        !matches!(
            self,
            Test::Set(_) | Test::Includes(_) | Test::Count(_) | Test::Exists
        )
    }
}

/// One item of a check's `expect`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Expectation {
    selector: Selector,
    test: Test,
    not: bool,
    all: bool,
    /// The shorthand written (`exit`, `status`, `reachable`, `sha256`), for messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    shorthand: Option<&'static str>,
}

/// The keys an expectation may have.
pub(crate) const EXPECT_KEYS: &str = "selectors json, field; tests equals, contains, regex, gt, ge, lt, le, set, includes, count, exists, in_subnet, ip_eq; shorthands exit, status, reachable, sha256; modifiers not, all";

/// What judging one expectation found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Judged {
    /// The expectation held.
    pub held: bool,
    /// When it did not hold: "expected …, found …" (or why nothing could be looked
    /// at), for the student; empty when it held.
    pub message: String,
    /// The selector, for the teacher's detail.
    pub selector: String,
}

fn type_name(v: &toml::Value) -> &'static str {
    v.type_str()
}

fn want_str<'a>(key: &str, v: &'a toml::Value) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("`{key}` must be a string, not {}", type_name(v)))
}

fn want_num(key: &str, v: &toml::Value) -> Result<f64, String> {
    match v {
        toml::Value::Integer(i) => Ok(*i as f64),
        toml::Value::Float(f) if f.is_finite() => Ok(*f),
        _ => Err(format!("`{key}` must be a number, not {}", type_name(v))),
    }
}

fn want_int(key: &str, v: &toml::Value) -> Result<i64, String> {
    v.as_integer()
        .ok_or_else(|| format!("`{key}` must be an integer, not {}", type_name(v)))
}

fn want_bool(key: &str, v: &toml::Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("`{key}` must be true or false, not {}", type_name(v)))
}

fn want_list(key: &str, v: &toml::Value) -> Result<Vec<Template>, String> {
    let arr = v
        .as_array()
        .ok_or_else(|| format!("`{key}` must be a list, not {}", type_name(v)))?;
    arr.iter()
        .map(|x| match x {
            toml::Value::String(s) => Template::parse(s),
            toml::Value::Integer(i) => Ok(Template::parse(&i.to_string())?),
            toml::Value::Float(f) => Ok(Template::parse(&f.to_string())?),
            toml::Value::Boolean(b) => Ok(Template::parse(&b.to_string())?),
            other => Err(format!(
                "`{key}` lists strings or numbers, not {}",
                type_name(other)
            )),
        })
        .collect()
}

fn check_ip(t: &Template, key: &str) -> Result<(), String> {
    if t.is_literal() {
        parse_ip(&t.literal())
            .ok_or_else(|| format!("`{key}` {:?} is not an IPv4 or IPv6 address", t.literal()))?;
    }
    Ok(())
}

fn check_cidr(t: &Template) -> Result<(), String> {
    if t.is_literal() {
        parse_cidr(&t.literal())?;
    }
    Ok(())
}

impl Expectation {
    /// Reads one `expect` item for a probe of `kind`. The error names the key.
    pub(crate) fn parse(v: &toml::Value, kind: Kind) -> Result<Expectation, String> {
        let t = v.as_table().ok_or_else(|| {
            format!(
                "an expectation is a table like {{ field = \"stdout\", equals = \"active\" }}, not {}",
                type_name(v)
            )
        })?;
        let mut selector = None::<Selector>;
        let mut tests: Vec<(&str, Test)> = Vec::new();
        let mut shorthand = None::<(&'static str, Selector, Test, bool)>;
        let mut not = false;
        let mut all = false;
        let mut set_selector = |s: Selector, key: &str| -> Result<(), String> {
            if selector.is_some() {
                return Err(format!(
                    "`{key}`: at most one selector (json or field) per expectation"
                ));
            }
            selector = Some(s);
            Ok(())
        };
        for (key, val) in t {
            let key = key.as_str();
            match key {
                "json" => set_selector(Selector::Json(Pattern::parse(want_str(key, val)?)?), key)?,
                "field" => set_selector(
                    Selector::Field(Field::parse(want_str(key, val)?, kind)?),
                    key,
                )?,
                "not" => not = want_bool(key, val)?,
                "all" => all = want_bool(key, val)?,
                "equals" => {
                    let lit = match val {
                        toml::Value::String(s) => Lit::Str(Template::parse(s)?),
                        toml::Value::Integer(i) => Lit::Int(*i),
                        toml::Value::Float(f) if f.is_finite() => Lit::Float(*f),
                        toml::Value::Boolean(b) => Lit::Bool(*b),
                        other => {
                            return Err(format!(
                                "`equals` must be a string, number or boolean, not {}",
                                type_name(other)
                            ))
                        }
                    };
                    tests.push((key, Test::Equals(lit)));
                }
                "contains" => {
                    tests.push((key, Test::Contains(Template::parse(want_str(key, val)?)?)))
                }
                "regex" => tests.push((key, Test::Regex(Pattern::parse(want_str(key, val)?)?))),
                "gt" | "ge" | "lt" | "le" => {
                    let c = match key {
                        "gt" => Cmp::Gt,
                        "ge" => Cmp::Ge,
                        "lt" => Cmp::Lt,
                        _ => Cmp::Le,
                    };
                    tests.push((key, Test::Compare(c, want_num(key, val)?)));
                }
                "set" => tests.push((key, Test::Set(want_list(key, val)?))),
                "includes" => {
                    let l = want_list(key, val)?;
                    if l.is_empty() {
                        return Err("`includes` needs at least one value (use `exists = true` to ask for anything)".into());
                    }
                    tests.push((key, Test::Includes(l)));
                }
                "count" => {
                    let n = want_int(key, val)?;
                    let n = u64::try_from(n)
                        .map_err(|_| format!("`count` must be 0 or more, not {n}"))?;
                    tests.push((key, Test::Count(n)));
                }
                "exists" => {
                    if !want_bool(key, val)? {
                        return Err("`exists` can only be true; write `exists = true, not = true` for \"nothing selected\"".into());
                    }
                    tests.push((key, Test::Exists));
                }
                "in_subnet" => {
                    let t = Template::parse(want_str(key, val)?)?;
                    check_cidr(&t)?;
                    tests.push((key, Test::InSubnet(t)));
                }
                "ip_eq" => {
                    let t = Template::parse(want_str(key, val)?)?;
                    check_ip(&t, key)?;
                    tests.push((key, Test::IpEq(t)));
                }
                "exit" | "status" | "reachable" | "sha256" => {
                    if shorthand.is_some() {
                        return Err(format!("`{key}`: one shorthand test per expectation"));
                    }
                    shorthand = Some(match key {
                        "exit" => (
                            "exit",
                            Selector::Field(Field::Exit),
                            Test::Equals(Lit::Int(want_int(key, val)?)),
                            false,
                        ),
                        "status" => {
                            if kind != Kind::Http {
                                return Err(format!(
                                    "`status` needs an http probe (this probe is {})",
                                    kind.name()
                                ));
                            }
                            let n = want_int(key, val)?;
                            if !(0..=999).contains(&n) {
                                return Err(format!("`status` is an HTTP status 0-999, not {n}"));
                            }
                            (
                                "status",
                                Selector::Field(Field::Status),
                                Test::Equals(Lit::Int(n)),
                                false,
                            )
                        }
                        "reachable" => {
                            if !matches!(kind, Kind::Ping | Kind::Tcp | Kind::Http) {
                                return Err(format!("`reachable` needs a ping, tcp or http probe (this probe is {})", kind.name()));
                            }
                            let r = want_bool(key, val)?;
                            (
                                "reachable",
                                Selector::Field(Field::Exit),
                                Test::Equals(Lit::Int(0)),
                                !r,
                            )
                        }
                        _ => {
                            let raw = want_str(key, val)?;
                            let t = Template::parse(&raw.to_ascii_lowercase())?;
                            if t.is_literal() {
                                let l = t.literal();
                                if l.len() != 64 || !l.bytes().all(|b| b.is_ascii_hexdigit()) {
                                    return Err(format!(
                                        "`sha256` must be 64 hex digits, not {raw:?}"
                                    ));
                                }
                            }
                            (
                                "sha256",
                                Selector::Field(Field::Sha256),
                                Test::HashEq(t),
                                false,
                            )
                        }
                    });
                }
                other => return Err(format!("unknown key `{other}`; allowed: {EXPECT_KEYS}")),
            }
        }
        if let Some((name, sel, test, negate)) = shorthand {
            if !tests.is_empty() || selector.is_some() {
                return Err(format!(
                    "`{name}` carries its own selector and test: write it alone (with `not` if needed)"
                ));
            }
            if all {
                return Err(format!("`all` does not apply to `{name}`"));
            }
            return Ok(Expectation {
                selector: sel,
                test,
                not: not != negate,
                all: false,
                shorthand: Some(name),
            });
        }
        let test = match tests.len() {
            0 => {
                return Err(
                    "no test; an expectation needs exactly one of equals, contains, regex, gt, ge, lt, le, set, includes, count, exists, in_subnet, ip_eq (or a shorthand exit, status, reachable, sha256)"
                    .into())
            }
            1 => tests.pop().map(|(_, t)| t),
            _ => {
                return Err(format!(
                    "exactly one test per expectation, found {} (write one expectation per test)",
                    tests.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                ))
            }
        };
        let Some(test) = test else {
            return Err("no test".into());
        };
        if all && !test.one_value() {
            return Err("`all` applies to one-value tests (equals, contains, regex, gt, ge, lt, le, in_subnet, ip_eq), not to set, includes, count or exists".into());
        }
        Ok(Expectation {
            selector: selector.unwrap_or(Selector::Field(kind.default_field())),
            test,
            not,
            all,
            shorthand: None,
        })
    }

    /// Whether a pass may be transient in the wrong direction: the expectation asks for
    /// something to be absent (`not`, `reachable = false`, `count = 0`). Retrying such a
    /// check until it passes would grade a lucky moment.
    pub(crate) fn is_negative(&self) -> bool {
        self.not != matches!(self.test, Test::Count(0))
    }

    /// Every template in the expectation (for lint).
    pub(crate) fn templates(&self) -> Vec<&Template> {
        let mut out = Vec::new();
        if let Selector::Json(p) = &self.selector {
            out.push(&p.text);
        }
        match &self.test {
            Test::Equals(Lit::Str(t))
            | Test::Contains(t)
            | Test::InSubnet(t)
            | Test::IpEq(t)
            | Test::HashEq(t) => out.push(t),
            Test::Regex(p) => out.push(&p.text),
            Test::Set(l) | Test::Includes(l) => out.extend(l.iter()),
            Test::Equals(_) | Test::Compare(..) | Test::Count(_) | Test::Exists => {}
        }
        out
    }

    /// Checks what only a student's values can tell (a templated regex, JSONPath, CIDR
    /// or address); `Err` is a problem of the spec for this student.
    pub(crate) fn prepare(&self, vars: &Vars) -> Result<Prepared, String> {
        let selector = match &self.selector {
            Selector::Json(p) => {
                let (path, text) = p.get(vars)?;
                PSel::Json(path, text)
            }
            Selector::Field(f) => PSel::Field(*f),
        };
        let r = |t: &Template| t.render(vars).map_err(|m| m.to_string());
        let test = match &self.test {
            Test::Equals(Lit::Str(t)) => PTest::Equals(PLit::Str(r(t)?)),
            Test::Equals(Lit::Int(i)) => PTest::Equals(PLit::Num(Num::I(*i))),
            Test::Equals(Lit::Float(f)) => PTest::Equals(PLit::Num(Num::F(*f))),
            Test::Equals(Lit::Bool(b)) => PTest::Equals(PLit::Bool(*b)),
            Test::Contains(t) => PTest::Contains(r(t)?),
            Test::Regex(p) => {
                let (re, _) = p.get(vars)?;
                PTest::Regex(re)
            }
            Test::Compare(c, n) => PTest::Compare(*c, *n),
            Test::Set(l) => PTest::Set(l.iter().map(r).collect::<Result<_, _>>()?),
            Test::Includes(l) => PTest::Includes(l.iter().map(r).collect::<Result<_, _>>()?),
            Test::Count(n) => PTest::Count(*n),
            Test::Exists => PTest::Exists,
            Test::InSubnet(t) => {
                let s = r(t)?;
                let net = parse_cidr(&s)?;
                PTest::InSubnet(net, s)
            }
            Test::IpEq(t) => {
                let s = r(t)?;
                let ip = parse_ip(&s)
                    .ok_or_else(|| format!("`ip_eq` {s:?} is not an IPv4 or IPv6 address"))?;
                PTest::IpEq(ip, s)
            }
            Test::HashEq(t) => PTest::HashEq(r(t)?.to_ascii_lowercase()),
        };
        Ok(Prepared {
            selector,
            test,
            not: self.not,
            all: self.all,
            shorthand: self.shorthand,
        })
    }
}

/// An expectation with one student's values filled in and its patterns compiled.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    selector: PSel,
    test: PTest,
    not: bool,
    all: bool,
    shorthand: Option<&'static str>,
}

#[derive(Debug, Clone)]
enum PSel {
    Json(Arc<JsonPath>, String),
    Field(Field),
}

#[derive(Debug, Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

impl Num {
    fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
    fn eq(self, o: Num) -> bool {
        match (self, o) {
            (Num::I(a), Num::I(b)) => a == b,
            _ => self.f() == o.f(),
        }
    }
    fn show(self) -> String {
        match self {
            Num::I(i) => i.to_string(),
            Num::F(f) => f.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
enum PLit {
    Str(String),
    Num(Num),
    Bool(bool),
}

#[derive(Debug, Clone)]
enum PTest {
    Equals(PLit),
    Contains(String),
    Regex(Arc<Regex>),
    Compare(Cmp, f64),
    Set(Vec<String>),
    Includes(Vec<String>),
    Count(u64),
    Exists,
    InSubnet(Net, String),
    IpEq(IpAddr, String),
    HashEq(String),
}

/// Drops one trailing newline (`\n` or `\r\n`).
fn chomp(s: &str) -> &str {
    match s.strip_suffix('\n') {
        Some(t) => t.strip_suffix('\r').unwrap_or(t),
        None => s,
    }
}

/// A value as text: strings as they are, everything else as compact JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_num(s: &str) -> Option<Num> {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Some(Num::I(i));
    }
    // Rust also reads "inf" and "NaN", which no program prints as a count: finite only.
    s.parse::<f64>().ok().filter(|f| f.is_finite()).map(Num::F)
}

fn num(v: &Value) -> Option<Num> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(Num::I)
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(Num::F)),
        Value::String(s) => parse_num(s),
        _ => None,
    }
}

/// An IP address, also written `addr/prefix` (as `ip -br addr` prints it); a trailing
/// newline is ignored. IPv4-mapped IPv6 addresses are read as IPv4.
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = chomp(s).trim();
    let s = s.split_once('/').map_or(s, |(a, _)| a);
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    s.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// A network: address and prefix length (host bits may be set; they are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Net {
    addr: IpAddr,
    prefix: u8,
}

/// Reads `10.0.0.0/24` or `fd00::/64`.
pub(crate) fn parse_cidr(s: &str) -> Result<Net, String> {
    let bad = || format!("`in_subnet` {s:?} is not a network such as 10.0.0.0/24 or fd00::/64");
    let (a, p) = s.trim().split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = a.parse().map_err(|_| bad())?;
    let prefix: u8 = p.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(format!(
            "`in_subnet` {s:?}: the prefix length is at most {max}"
        ));
    }
    Ok(Net { addr, prefix })
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Cuts text to `n` characters, marking the cut.
pub(crate) fn cut(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn show_values(vals: &[Value]) -> String {
    let s = match vals {
        [] => "nothing".to_owned(),
        [one] => one.to_string(),
        many => Value::Array(many.to_vec()).to_string(),
    };
    cut(&s, 200)
}

fn show_list(l: &[String]) -> String {
    Value::Array(l.iter().cloned().map(Value::String).collect()).to_string()
}

/// A probe's output parsed as JSON, once (stdout; for `http`: the body).
#[derive(Debug, Default)]
pub(crate) struct Doc(OnceCell<Result<Value, String>>);

impl Doc {
    fn get(&self, ev: &Evidence, kind: Kind) -> &Result<Value, String> {
        self.0.get_or_init(|| {
            let out = ev.stdout.text();
            let doc = if kind == Kind::Http {
                http_split(&out).0
            } else {
                &out
            };
            serde_json::from_str::<Value>(doc).map_err(|e| {
                format!(
                    "{} is not JSON: {e} (it begins {})",
                    if kind == Kind::Http {
                        "the body"
                    } else {
                        "stdout"
                    },
                    Value::String(cut(doc.trim_start(), 60)),
                )
            })
        })
    }
}

/// What is looked at, from the evidence and the probe's kind.
enum Selected {
    Values(Vec<Value>),
    NotJson(String),
}

fn lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| Value::String(l.to_owned()))
        .collect()
}

/// `curl -w '\n%{http_code}'`: (body, status) split at the last newline.
fn http_split(out: &str) -> (&str, &str) {
    match out.rsplit_once('\n') {
        Some((body, status)) => (body, status),
        None => ("", out),
    }
}

impl Prepared {
    fn select(&self, ev: &Evidence, kind: Kind, doc: &Doc) -> Selected {
        let out = ev.stdout.text();
        match &self.selector {
            PSel::Json(path, _) => match doc.get(ev, kind) {
                Ok(v) => Selected::Values(path.query(v).all().into_iter().cloned().collect()),
                Err(why) => Selected::NotJson(why.clone()),
            },
            PSel::Field(f) => Selected::Values(match f {
                Field::Stdout => vec![Value::String(out.into_owned())],
                Field::Stderr => vec![Value::String(ev.stderr.text().into_owned())],
                Field::Lines => lines(&out),
                Field::Exit => ev.exit.map(|e| vec![Value::from(e)]).unwrap_or_default(),
                Field::Status => {
                    let s = http_split(&out).1.trim();
                    match s.parse::<u16>() {
                        Ok(n) if s.len() == 3 => vec![Value::from(n)],
                        _ => Vec::new(),
                    }
                }
                Field::Body => vec![Value::String(http_split(&out).0.to_owned())],
                // `dig +short` prints its own complaints as `;; …` lines: not answers.
                Field::Answers => lines(&out)
                    .into_iter()
                    .filter(|v| !v.as_str().is_some_and(|s| s.starts_with(';')))
                    .collect(),
                Field::Sha256 => vec![Value::String(ev.stdout.sha256())],
            }),
        }
    }

    fn selector_text(&self) -> String {
        match &self.selector {
            PSel::Json(_, t) => format!("json {t}"),
            PSel::Field(f) => f.name().to_owned(),
        }
    }

    fn test_text(&self) -> String {
        let mut s = String::new();
        if let Some(sh) = self.shorthand {
            let PTest::Equals(PLit::Num(n)) = &self.test else {
                if let PTest::HashEq(h) = &self.test {
                    return format!("{}sha256 {h}", if self.not { "not " } else { "" });
                }
                return sh.to_owned();
            };
            return match sh {
                "reachable" => {
                    if self.not {
                        "not reachable".to_owned()
                    } else {
                        "reachable".to_owned()
                    }
                }
                "status" => format!(
                    "{}HTTP status {}",
                    if self.not { "not " } else { "" },
                    n.show()
                ),
                _ => format!("{}exit {}", if self.not { "not " } else { "" }, n.show()),
            };
        }
        if self.not {
            s.push_str("not ");
        }
        if self.all {
            s.push_str("every value ");
        }
        let _ = match &self.test {
            PTest::Equals(PLit::Str(v)) => {
                write!(s, "equals {}", Value::String(chomp(v).to_owned()))
            }
            PTest::Equals(PLit::Num(n)) => write!(s, "equals {}", n.show()),
            PTest::Equals(PLit::Bool(b)) => write!(s, "equals {b}"),
            PTest::Contains(v) => write!(s, "contains {}", Value::String(v.clone())),
            PTest::Regex(re) => {
                write!(s, "matches regex {}", Value::String(re.as_str().to_owned()))
            }
            PTest::Compare(c, n) => write!(s, "{} {n}", c.sign()),
            PTest::Set(l) => write!(s, "the set {}", show_list(l)),
            PTest::Includes(l) => write!(s, "includes {}", show_list(l)),
            PTest::Count(n) => write!(s, "count {n}"),
            PTest::Exists => write!(s, "exists"),
            PTest::InSubnet(_, t) => write!(s, "in subnet {t}"),
            PTest::IpEq(_, t) => write!(s, "address {t}"),
            PTest::HashEq(h) => write!(s, "sha256 {h}"),
        };
        s
    }

    /// Whether one value passes a one-value test.
    fn one(&self, v: &Value) -> bool {
        match &self.test {
            PTest::Equals(PLit::Str(want)) => match v {
                Value::String(s) => chomp(s) == chomp(want),
                Value::Number(_) => match (num(v), parse_num(want)) {
                    (Some(a), Some(b)) => a.eq(b),
                    _ => false,
                },
                Value::Bool(b) => chomp(want).trim() == b.to_string(),
                Value::Null => chomp(want).trim() == "null",
                Value::Array(_) | Value::Object(_) => {
                    serde_json::from_str::<Value>(want).is_ok_and(|w| &w == v)
                }
            },
            PTest::Equals(PLit::Num(want)) => num(v).is_some_and(|n| n.eq(*want)),
            PTest::Equals(PLit::Bool(want)) => match v {
                Value::Bool(b) => b == want,
                Value::String(s) => chomp(s).trim() == want.to_string(),
                _ => false,
            },
            PTest::Contains(want) => text(v).contains(want.as_str()),
            PTest::Regex(re) => re.is_match(&text(v)),
            PTest::Compare(c, n) => num(v).is_some_and(|x| c.holds(x.f(), *n)),
            PTest::InSubnet(net, _) => parse_ip(&text(v)).is_some_and(|ip| net.contains(ip)),
            PTest::IpEq(want, _) => parse_ip(&text(v)).is_some_and(|ip| ip == *want),
            PTest::HashEq(want) => chomp(&text(v)).eq_ignore_ascii_case(want),
            PTest::Set(_) | PTest::Includes(_) | PTest::Count(_) | PTest::Exists => false,
        }
    }

    /// Judges the evidence of a probe of `kind` (which must be usable).
    #[cfg(test)]
    pub(crate) fn judge(&self, ev: &Evidence, kind: Kind) -> Judged {
        self.judge_in(ev, kind, &Doc::default())
    }

    /// [`Prepared::judge`] with the JSON document of `ev` parsed at most once per `doc`
    /// (one `Doc` per student and probe serves every check on it).
    pub(crate) fn judge_in(&self, ev: &Evidence, kind: Kind, doc: &Doc) -> Judged {
        let selector = self.selector_text();
        let vals = match self.select(ev, kind, doc) {
            Selected::Values(v) => v,
            Selected::NotJson(why) => {
                // The student's program printed something else: a fail whatever `not` says.
                return Judged {
                    held: false,
                    message: why,
                    selector,
                };
            }
        };
        let as_set =
            || -> BTreeSet<String> { vals.iter().map(|v| chomp(&text(v)).to_owned()).collect() };
        let raw = match &self.test {
            PTest::Set(want) => as_set() == want.iter().map(|w| chomp(w).to_owned()).collect(),
            PTest::Includes(want) => {
                let have = as_set();
                want.iter().all(|w| have.contains(chomp(w)))
            }
            PTest::Count(n) => vals.len() as u64 == *n,
            PTest::Exists => !vals.is_empty(),
            _ if self.all => !vals.is_empty() && vals.iter().all(|v| self.one(v)),
            _ => vals.iter().any(|v| self.one(v)),
        };
        let held = raw != self.not;
        if held {
            return Judged {
                held,
                message: String::new(),
                selector,
            };
        }
        let found = match &self.test {
            PTest::Count(_) => format!("{} value(s): {}", vals.len(), show_values(&vals)),
            _ => show_values(&vals),
        };
        Judged {
            held,
            message: format!("expected {}, found {found}", self.test_text()),
            selector,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::evidence::{sha256_hex, Blob, Target};
    use crate::probe::{Request, Source};

    /// `ip -j addr` as the simulated guest prints it (crates/pve-sim guest/net.rs).
    pub(crate) const IP_J_ADDR: &str = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"::1","prefixlen":128,"scope":"host","noprefixroute":true,"valid_life_time":4294967295,"preferred_life_time":4294967295}]},{"ifindex":2,"ifname":"ens18","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"fq_codel","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":"bc:24:11:00:13:89","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[{"family":"inet","local":"192.168.10.10","prefixlen":24,"broadcast":"192.168.10.255","scope":"global","label":"ens18","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"fe80::be24:11ff:fe00:1389","prefixlen":64,"scope":"link","valid_life_time":4294967295,"preferred_life_time":4294967295}]}]"#;

    pub(crate) fn ev(kind: &str, stdout: &str, exit: i64) -> Evidence {
        let request = match kind {
            "http" => Request::Http {
                url: "http://192.168.10.10/".into(),
            },
            "dns" => Request::Dns {
                server: "192.168.10.10".into(),
                name: "www.s01.lab.".into(),
                rtype: "A".into(),
            },
            "ping" => Request::Ping {
                host: "192.168.10.10".into(),
            },
            _ => Request::Exec {
                argv: vec!["ip".into(), "-j".into(), "addr".into()],
            },
        };
        Evidence {
            probe: "p".into(),
            student: "s01".into(),
            source: Source::Guest,
            request,
            target: Target {
                vmid: Some(5001),
                node: Some("pve1".into()),
                name: "s01".into(),
            },
            start: "2026-12-05T10:00:00.000Z".into(),
            end: "2026-12-05T10:00:00.100Z".into(),
            attempts: 1,
            exit: Some(exit),
            signal: None,
            stdout: Blob::from(stdout),
            stderr: Blob::default(),
            truncated: false,
            sha256: sha256_hex(stdout.as_bytes()),
            error: None,
        }
    }

    fn exp(toml_src: &str, kind: Kind) -> Expectation {
        let v: toml::Table = toml::from_str(&format!("e = {toml_src}")).unwrap();
        Expectation::parse(&v["e"], kind).unwrap()
    }

    fn parse_err(toml_src: &str, kind: Kind) -> String {
        let v: toml::Table = toml::from_str(&format!("e = {toml_src}")).unwrap();
        Expectation::parse(&v["e"], kind).unwrap_err()
    }

    fn vars() -> Vars {
        let s = crate::evidence::StudentInfo {
            key: "s01".into(),
            name: "Ada".into(),
            hostname: "s01".into(),
            vmid: 5001,
            node: "pve1".into(),
            vars: BTreeMap::from([
                ("vlan".to_owned(), "10".to_owned()),
                ("ip".to_owned(), "192.168.10.10".to_owned()),
            ]),
        };
        Vars::of(&s)
    }

    fn judge(toml_src: &str, kind: Kind, e: &Evidence) -> Judged {
        exp(toml_src, kind).prepare(&vars()).unwrap().judge(e, kind)
    }

    fn holds(toml_src: &str, kind: Kind, e: &Evidence) -> bool {
        judge(toml_src, kind, e).held
    }

    const ENS18_LOCAL: &str = "\"$[?(@.ifname=='ens18')].addr_info[*].local\"";

    #[test]
    fn json_includes_finds_the_static_address_in_ip_j_addr() {
        let e = ev("exec", IP_J_ADDR, 0);
        let pass = format!("{{ json = {ENS18_LOCAL}, includes = [\"192.168.{{{{vlan}}}}.10\"] }}");
        assert!(holds(&pass, Kind::Exec, &e));
        let fail = format!("{{ json = {ENS18_LOCAL}, includes = [\"192.168.20.10\"] }}");
        let j = judge(&fail, Kind::Exec, &e);
        assert!(!j.held);
        assert_eq!(
            j.message,
            r#"expected includes ["192.168.20.10"], found ["192.168.10.10","fe80::be24:11ff:fe00:1389"]"#
        );
        assert_eq!(
            j.selector,
            "json $[?(@.ifname=='ens18')].addr_info[*].local"
        );
    }

    #[test]
    fn json_numbers_compare_typed_and_strings_that_parse_count() {
        let e = ev("exec", IP_J_ADDR, 0);
        let mtu = "\"$[?(@.ifname=='ens18')].mtu\"";
        assert!(holds(
            &format!("{{ json = {mtu}, equals = 1500 }}"),
            Kind::Exec,
            &e
        ));
        assert!(holds(
            &format!("{{ json = {mtu}, equals = \"1500\" }}"),
            Kind::Exec,
            &e
        ));
        assert!(!holds(
            &format!("{{ json = {mtu}, equals = 9000 }}"),
            Kind::Exec,
            &e
        ));
        assert!(holds(
            &format!("{{ json = {mtu}, ge = 1500 }}"),
            Kind::Exec,
            &e
        ));
        assert!(!holds(
            &format!("{{ json = {mtu}, gt = 1500 }}"),
            Kind::Exec,
            &e
        ));
        assert!(holds(
            &format!("{{ json = {mtu}, lt = 1500.5 }}"),
            Kind::Exec,
            &e
        ));
        assert!(!holds(
            &format!("{{ json = {mtu}, le = 1499 }}"),
            Kind::Exec,
            &e
        ));
        // Each comparison both ways, on the MTU (1500).
        for (test, pass) in [
            ("gt = 1499", true),
            ("gt = 1500", false),
            ("ge = 1500", true),
            ("ge = 1501", false),
            ("lt = 1501", true),
            ("lt = 1500", false),
            ("le = 1500", true),
            ("le = 1499.9", false),
        ] {
            assert_eq!(
                holds(&format!("{{ json = {mtu}, {test} }}"), Kind::Exec, &e),
                pass,
                "{test}"
            );
        }
        // `ss -H -t -l | wc -l` style text counts as a number.
        let n = ev("exec", "  3\n", 0);
        assert!(holds("{ ge = 2 }", Kind::Exec, &n));
        assert!(!holds("{ ge = 4 }", Kind::Exec, &n));
        // A string that is no number never compares.
        assert!(!holds("{ json = \"$[*].ifname\", ge = 0 }", Kind::Exec, &e));
        assert!(!holds("{ lt = 1 }", Kind::Exec, &ev("exec", "inf\n", 0)));
        // The prefix length is a JSON number; the string "24" also matches it.
        let plen = "\"$[?(@.ifname=='ens18')].addr_info[?(@.family=='inet')].prefixlen\"";
        assert!(holds(
            &format!("{{ json = {plen}, equals = \"24\" }}"),
            Kind::Exec,
            &e
        ));
        assert!(!holds(
            &format!("{{ json = {plen}, equals = \"25\" }}"),
            Kind::Exec,
            &e
        ));
        // Booleans.
        let nopr = "\"$[0].addr_info[1].noprefixroute\"";
        assert!(holds(
            &format!("{{ json = {nopr}, equals = true }}"),
            Kind::Exec,
            &e
        ));
        assert!(!holds(
            &format!("{{ json = {nopr}, equals = false }}"),
            Kind::Exec,
            &e
        ));
    }

    #[test]
    fn json_on_output_that_is_not_json_fails_even_with_not() {
        let e = ev(
            "exec",
            "Command \"addr\" is unknown, try \"ip help\".\n",
            255,
        );
        for src in [
            "{ json = \"$[*].ifname\", exists = true }",
            "{ json = \"$[*].ifname\", exists = true, not = true }",
        ] {
            let j = judge(src, Kind::Exec, &e);
            assert!(!j.held, "{src}");
            assert!(
                j.message.starts_with("stdout is not JSON: "),
                "{}",
                j.message
            );
        }
    }

    #[test]
    fn set_ignores_order_and_duplicates_and_includes_needs_every_item() {
        let e = ev("exec", IP_J_ADDR, 0);
        assert!(holds(
            "{ json = \"$[*].ifname\", set = [\"ens18\", \"lo\", \"lo\"] }",
            Kind::Exec,
            &e
        ));
        assert!(!holds(
            "{ json = \"$[*].ifname\", set = [\"ens18\"] }",
            Kind::Exec,
            &e
        ));
        assert!(holds(
            "{ json = \"$[*].ifname\", includes = [\"lo\"] }",
            Kind::Exec,
            &e
        ));
        assert!(!holds(
            "{ json = \"$[*].ifname\", includes = [\"lo\", \"ens19\"] }",
            Kind::Exec,
            &e
        ));
    }

    #[test]
    fn count_and_exists_look_at_how_many_values_are_selected() {
        let e = ev("exec", IP_J_ADDR, 0);
        assert!(holds(
            "{ json = \"$[*].addr_info[?(@.family=='inet')]\", count = 2 }",
            Kind::Exec,
            &e
        ));
        assert!(!holds(
            "{ json = \"$[*].addr_info[?(@.family=='inet')]\", count = 3 }",
            Kind::Exec,
            &e
        ));
        assert!(holds(
            "{ json = \"$[?(@.ifname=='ens18')]\", exists = true }",
            Kind::Exec,
            &e
        ));
        assert!(!holds(
            "{ json = \"$[?(@.ifname=='ens19')]\", exists = true }",
            Kind::Exec,
            &e
        ));
        assert!(holds(
            "{ json = \"$[?(@.ifname=='ens19')]\", exists = true, not = true }",
            Kind::Exec,
            &e
        ));
    }

    #[test]
    fn in_subnet_and_ip_eq_parse_addresses_v4_and_v6() {
        let e = ev("exec", IP_J_ADDR, 0);
        let all = "\"$[?(@.ifname=='ens18')].addr_info[*].local\"";
        assert!(holds(
            &format!("{{ json = {all}, in_subnet = \"192.168.{{{{vlan}}}}.0/24\" }}"),
            Kind::Exec,
            &e
        ));
        assert!(!holds(
            &format!("{{ json = {all}, in_subnet = \"10.0.0.0/8\" }}"),
            Kind::Exec,
            &e
        ));
        // `all`: the link-local v6 address is not in the v4 network.
        assert!(!holds(
            &format!("{{ json = {all}, in_subnet = \"192.168.10.0/24\", all = true }}"),
            Kind::Exec,
            &e
        ));
        assert!(holds(
            &format!("{{ json = {all}, in_subnet = \"fe80::/10\" }}"),
            Kind::Exec,
            &e
        ));
        assert!(holds(
            "{ json = \"$[0].addr_info[1].local\", ip_eq = \"0::1\" }",
            Kind::Exec,
            &e
        ));
        assert!(!holds(
            "{ json = \"$[0].addr_info[1].local\", ip_eq = \"::2\" }",
            Kind::Exec,
            &e
        ));
        // `ip -br addr` style values with a prefix.
        let br = ev("exec", "ens18  UP  192.168.10.10/24 fe80::1/64\n", 0);
        let e2 = ev("exec", "192.168.10.10/24\n", 0);
        assert!(holds("{ ip_eq = \"192.168.10.10\" }", Kind::Exec, &e2));
        assert!(!holds("{ ip_eq = \"192.168.10.10\" }", Kind::Exec, &br));
        assert!(holds(
            "{ in_subnet = \"192.168.10.0/24\" }",
            Kind::Exec,
            &e2
        ));
        assert!(!holds(
            "{ in_subnet = \"192.168.11.0/24\" }",
            Kind::Exec,
            &e2
        ));
    }

    #[test]
    fn dig_short_answers_are_a_set_of_trimmed_lines() {
        let e = ev("dns", "192.168.10.10\n192.168.10.11\n", 0);
        assert!(holds(
            "{ set = [\"192.168.10.11\", \"192.168.{{vlan}}.10\"] }",
            Kind::Dns,
            &e
        ));
        assert!(!holds("{ set = [\"192.168.10.10\"] }", Kind::Dns, &e));
        assert!(holds("{ includes = [\"192.168.10.10\"] }", Kind::Dns, &e));
        assert!(holds(
            "{ in_subnet = \"192.168.10.0/24\", all = true }",
            Kind::Dns,
            &e
        ));
        assert!(holds("{ count = 2 }", Kind::Dns, &e));
        // CNAME answers keep their trailing dot.
        let c = ev("dns", "web.s01.lab.\n192.168.10.10\n", 0);
        assert!(holds("{ includes = [\"web.s01.lab.\"] }", Kind::Dns, &c));
        assert!(!holds("{ includes = [\"web.s01.lab\"] }", Kind::Dns, &c));
        // No server: dig's complaint is not an answer.
        let down = ev(
            "dns",
            ";; connection timed out; no servers could be reached\n",
            9,
        );
        let j = judge("{ exists = true }", Kind::Dns, &down);
        assert!(!j.held);
        assert_eq!(j.message, "expected exists, found nothing");
    }

    #[test]
    fn http_status_and_body_come_from_curls_last_line() {
        let ok = ev("http", "<h1>s01</h1>\n\n200", 0);
        assert!(holds("{ status = 200 }", Kind::Http, &ok));
        assert!(!holds("{ status = 404 }", Kind::Http, &ok));
        assert!(holds(
            "{ contains = \"<h1>{{hostname}}</h1>\" }",
            Kind::Http,
            &ok
        ));
        assert!(!holds("{ contains = \"<h1>s02</h1>\" }", Kind::Http, &ok));
        assert!(holds(
            "{ field = \"body\", equals = \"<h1>s01</h1>\" }",
            Kind::Http,
            &ok
        ));
        assert!(holds("{ reachable = true }", Kind::Http, &ok));
        let refused = ev("http", "\n000", 7);
        assert!(holds("{ status = 0 }", Kind::Http, &refused));
        assert!(holds("{ reachable = false }", Kind::Http, &refused));
        assert!(!holds("{ reachable = true }", Kind::Http, &refused));
        let j = judge("{ status = 200 }", Kind::Http, &refused);
        assert_eq!(j.message, "expected HTTP status 200, found 0");
        let json = ev("http", "{\"ok\":true}\n200", 0);
        assert!(holds(
            "{ json = \"$.ok\", equals = true }",
            Kind::Http,
            &json
        ));
    }

    #[test]
    fn systemctl_is_active_equals_trims_one_newline() {
        let active = ev("exec", "active\n", 0);
        let inactive = ev("exec", "inactive\n", 3);
        assert!(holds("{ equals = \"active\" }", Kind::Exec, &active));
        assert!(!holds("{ equals = \"active\" }", Kind::Exec, &inactive));
        assert!(holds("{ exit = 0 }", Kind::Exec, &active));
        assert!(!holds("{ exit = 0 }", Kind::Exec, &inactive));
        assert!(holds("{ exit = 0, not = true }", Kind::Exec, &inactive));
        assert!(!holds(
            "{ equals = \"active\", not = true }",
            Kind::Exec,
            &active
        ));
        let j = judge("{ equals = \"active\" }", Kind::Exec, &inactive);
        assert_eq!(
            j.message,
            "expected equals \"active\", found \"inactive\\n\""
        );
    }

    #[test]
    fn contains_and_regex_look_into_text_and_lines() {
        let conf = ev("exec", "# sshd\nPermitRootLogin no\nPort 2222\n", 0);
        assert!(holds("{ contains = \"Port 2222\" }", Kind::File, &conf));
        assert!(!holds("{ contains = \"Port 22\\n\" }", Kind::File, &conf));
        assert!(holds(
            "{ regex = \"(?m)^PermitRootLogin\\\\s+no$\" }",
            Kind::File,
            &conf
        ));
        assert!(!holds(
            "{ regex = \"(?m)^PermitRootLogin\\\\s+yes$\" }",
            Kind::File,
            &conf
        ));
        assert!(holds(
            "{ field = \"lines\", regex = \"^Port \", all = false }",
            Kind::File,
            &conf
        ));
        assert!(!holds(
            "{ field = \"lines\", regex = \"^Port \", all = true }",
            Kind::File,
            &conf
        ));
        assert!(holds("{ field = \"lines\", count = 3 }", Kind::File, &conf));
        let err = ev("exec", "", 1);
        let mut err = err;
        err.stderr = Blob::from("ip: command not found\n");
        assert!(holds(
            "{ field = \"stderr\", contains = \"not found\" }",
            Kind::Exec,
            &err
        ));
        assert!(!holds(
            "{ field = \"stderr\", contains = \"denied\" }",
            Kind::Exec,
            &err
        ));
    }

    #[test]
    fn ping_and_tcp_default_to_the_exit_code() {
        let up = ev("ping", "1 packets transmitted, 1 received\n", 0);
        let down = ev("ping", "1 packets transmitted, 0 received\n", 1);
        assert!(holds("{ reachable = true }", Kind::Ping, &up));
        assert!(!holds("{ reachable = true }", Kind::Ping, &down));
        assert!(holds("{ equals = 0 }", Kind::Tcp, &up));
        assert!(!holds("{ equals = 0 }", Kind::Tcp, &down));
        let mut killed = up.clone();
        killed.exit = None;
        assert!(!holds("{ exit = 0 }", Kind::Ping, &killed));
    }

    #[test]
    fn sha256_is_of_stdout_and_ignores_case() {
        let body = "nameserver 192.168.10.1\n";
        let e = ev("exec", body, 0);
        let h = sha256_hex(body.as_bytes());
        assert!(holds(
            &format!("{{ sha256 = \"{}\" }}", h.to_uppercase()),
            Kind::File,
            &e
        ));
        assert!(!holds(
            &format!("{{ sha256 = \"{}\" }}", "0".repeat(64)),
            Kind::File,
            &e
        ));
    }

    #[test]
    fn malformed_expectations_name_the_key_and_what_is_allowed() {
        assert!(
            parse_err("{ equals = 1, contains = \"x\" }", Kind::Exec).contains("exactly one test")
        );
        assert!(parse_err("{ json = \"$\" }", Kind::Exec).contains("no test"));
        assert!(parse_err("{ foo = 1 }", Kind::Exec)
            .contains("unknown key `foo`; allowed: selectors json"));
        assert!(parse_err("{ regex = \"(\" }", Kind::Exec).contains("regex \"(\" does not compile"));
        assert!(parse_err("{ json = \"$[\", exists = true }", Kind::Exec).contains("JSONPath"));
        assert!(
            parse_err("{ field = \"status\", equals = 200 }", Kind::Exec)
                .contains("needs an http probe")
        );
        assert!(
            parse_err("{ field = \"answers\", exists = true }", Kind::Http)
                .contains("needs a dns probe")
        );
        assert!(parse_err("{ field = \"nope\", exists = true }", Kind::Exec)
            .contains("allowed: stdout"));
        assert!(parse_err("{ exit = 0, field = \"exit\" }", Kind::Exec)
            .contains("carries its own selector"));
        assert!(parse_err("{ reachable = true }", Kind::Exec).contains("ping, tcp or http"));
        assert!(parse_err("{ in_subnet = \"10.0.0.0\" }", Kind::Exec).contains("not a network"));
        assert!(parse_err("{ in_subnet = \"10.0.0.0/33\" }", Kind::Exec).contains("at most 32"));
        assert!(parse_err("{ ip_eq = \"10.0.0.01\" }", Kind::Exec).contains("not an IPv4 or IPv6"));
        assert!(parse_err("{ count = 2, all = true }", Kind::Exec).contains("`all` applies"));
        assert!(parse_err("{ exists = false }", Kind::Exec).contains("not = true"));
        assert!(parse_err("{ sha256 = \"abc\" }", Kind::File).contains("64 hex"));
        assert!(parse_err("\"active\"", Kind::Exec).contains("is a table"));
        assert!(parse_err("{ equals = [1] }", Kind::Exec).contains("string, number or boolean"));
    }

    #[test]
    fn negative_expectations_are_not_count_zero_and_unreachable() {
        assert!(exp("{ equals = \"x\", not = true }", Kind::Exec).is_negative());
        assert!(exp("{ reachable = false }", Kind::Ping).is_negative());
        assert!(exp("{ count = 0 }", Kind::Exec).is_negative());
        assert!(!exp("{ count = 0, not = true }", Kind::Exec).is_negative());
        assert!(!exp("{ reachable = true }", Kind::Ping).is_negative());
    }

    #[test]
    fn a_templated_pattern_that_breaks_for_a_student_is_a_spec_problem() {
        let e = exp("{ regex = \"^{{vlan}}(\" }", Kind::Exec);
        let err = e.prepare(&vars()).unwrap_err();
        assert!(err.contains("does not compile"), "{err}");
        let m = exp("{ contains = \"{{room}}\" }", Kind::Exec);
        assert!(m.prepare(&vars()).unwrap_err().contains("{{room}}"));
    }

    #[test]
    fn typed_equality_of_floats_big_integers_booleans_and_strings() {
        let e = ev(
            "exec",
            r#"{"load": 0.5, "big": 9007199254740993, "up": true, "down": false}"#,
            0,
        );
        assert!(holds(
            "{ json = \"$.load\", equals = 0.5 }",
            Kind::Agent,
            &e
        ));
        assert!(!holds(
            "{ json = \"$.load\", equals = 0.25 }",
            Kind::Agent,
            &e
        ));
        // Integers compare exactly, beyond what a float holds.
        assert!(holds(
            "{ json = \"$.big\", equals = 9007199254740993 }",
            Kind::Agent,
            &e
        ));
        assert!(!holds(
            "{ json = \"$.big\", equals = 9007199254740992 }",
            Kind::Agent,
            &e
        ));
        // A string against a JSON boolean; a boolean against text.
        assert!(holds(
            "{ json = \"$.up\", equals = \"true\" }",
            Kind::Agent,
            &e
        ));
        assert!(!holds(
            "{ json = \"$.down\", equals = \"true\" }",
            Kind::Agent,
            &e
        ));
        let t = ev("exec", "true\n", 0);
        assert!(holds("{ equals = true }", Kind::Exec, &t));
        assert!(!holds("{ equals = false }", Kind::Exec, &t));
    }

    #[test]
    fn an_ipv6_address_outside_the_network_is_not_in_it() {
        let e = ev("exec", IP_J_ADDR, 0);
        let v6 = "\"$[?(@.ifname=='ens18')].addr_info[?(@.family=='inet6')].local\"";
        assert!(holds(
            &format!("{{ json = {v6}, in_subnet = \"fe80::/64\" }}"),
            Kind::Exec,
            &e
        ));
        assert!(!holds(
            &format!("{{ json = {v6}, in_subnet = \"fd00::/64\" }}"),
            Kind::Exec,
            &e
        ));
        assert!(!holds(
            &format!("{{ json = {v6}, in_subnet = \"fe80:0:0:1::/64\" }}"),
            Kind::Exec,
            &e
        ));
    }

    #[test]
    fn a_count_failure_says_how_many_were_found() {
        let e = ev("dns", "10.0.0.1\n10.0.0.2\n", 0);
        let j = judge("{ count = 1 }", Kind::Dns, &e);
        assert_eq!(
            j.message,
            "expected count 1, found 2 value(s): [\"10.0.0.1\",\"10.0.0.2\"]"
        );
    }

    #[test]
    fn an_unusable_value_never_matches_a_typed_test() {
        let e = ev("exec", "{\"a\":null,\"b\":[1,2],\"c\":{\"d\":1}}", 0);
        assert!(holds(
            "{ json = \"$.a\", equals = \"null\" }",
            Kind::Exec,
            &e
        ));
        assert!(holds(
            "{ json = \"$.b\", equals = \"[1, 2]\" }",
            Kind::Exec,
            &e
        ));
        assert!(holds(
            "{ json = \"$.c\", contains = \"\\\"d\\\":1\" }",
            Kind::Exec,
            &e
        ));
        assert!(!holds("{ json = \"$.a\", ge = 0 }", Kind::Exec, &e));
        assert!(!holds(
            "{ json = \"$.c\", in_subnet = \"0.0.0.0/0\" }",
            Kind::Exec,
            &e
        ));
    }

    #[test]
    fn found_values_are_cut_at_200_characters() {
        let long = "x".repeat(500);
        let e = ev("exec", &long, 0);
        let j = judge("{ equals = \"y\" }", Kind::Exec, &e);
        assert!(j.message.ends_with('…'));
        assert!(j.message.chars().count() < 240, "{}", j.message.len());
    }

    #[test]
    fn a_field_or_shorthand_on_the_wrong_probe_names_the_probes_kind() {
        assert_eq!(
            parse_err("{ field = \"status\", equals = 200 }", Kind::Exec),
            "field \"status\" needs an http probe (this probe is exec)"
        );
        assert_eq!(
            parse_err("{ field = \"answers\", exists = true }", Kind::Http),
            "field \"answers\" needs a dns probe (this probe is http)"
        );
        assert_eq!(
            parse_err("{ status = 200 }", Kind::File),
            "`status` needs an http probe (this probe is file)"
        );
        assert_eq!(
            parse_err("{ reachable = true }", Kind::Agent),
            "`reachable` needs a ping, tcp or http probe (this probe is agent)"
        );
    }

    #[test]
    fn each_field_selects_its_part_of_the_evidence_and_is_named_in_the_detail() {
        let mut e = ev("exec", "active\n", 3);
        e.stderr = Blob::from("warning: unit is masked\n");
        let j = judge(
            "{ field = \"stdout\", equals = \"inactive\" }",
            Kind::Exec,
            &e,
        );
        assert_eq!((j.held, j.selector.as_str()), (false, "stdout"));
        let j = judge("{ field = \"exit\", equals = 0 }", Kind::Exec, &e);
        assert_eq!(
            (j.held, j.selector.as_str(), j.message.as_str()),
            (false, "exit", "expected equals 0, found 3")
        );
        assert!(holds("{ field = \"exit\", equals = 3 }", Kind::Exec, &e));
        assert!(holds(
            "{ field = \"stderr\", contains = \"masked\" }",
            Kind::Exec,
            &e
        ));
        assert_eq!(
            judge("{ field = \"stderr\", contains = \"x\" }", Kind::Exec, &e).selector,
            "stderr"
        );
        assert_eq!(
            judge("{ field = \"lines\", count = 9 }", Kind::Exec, &e).selector,
            "lines"
        );
        assert_eq!(
            judge(
                &format!("{{ sha256 = \"{}\" }}", "a".repeat(64)),
                Kind::File,
                &e
            )
            .selector,
            "sha256 of stdout"
        );
        // `answers` on a dns probe: the answer lines, dig's complaints left out.
        let d = ev("dns", ";; truncated, retrying in TCP mode\n10.0.0.5\n", 0);
        assert!(holds(
            "{ field = \"answers\", set = [\"10.0.0.5\"] }",
            Kind::Dns,
            &d
        ));
        assert_eq!(
            judge("{ field = \"answers\", count = 2 }", Kind::Dns, &d).selector,
            "answers"
        );
        let h = ev("http", "<p>hi</p>\n404", 0);
        assert_eq!(
            judge("{ field = \"body\", contains = \"x\" }", Kind::Http, &h).selector,
            "body"
        );
        assert_eq!(judge("{ status = 200 }", Kind::Http, &h).selector, "status");
    }

    #[test]
    fn a_failed_comparison_says_which_comparison_it_was() {
        let n = ev("exec", "3\n", 0);
        for (test, sign) in [
            ("gt = 4", ">"),
            ("ge = 4", ">="),
            ("lt = 2", "<"),
            ("le = 2", "<="),
        ] {
            let j = judge(&format!("{{ {test} }}"), Kind::Exec, &n);
            assert!(!j.held, "{test}");
            let n = &test[5..];
            assert_eq!(
                j.message,
                format!("expected {sign} {n}, found \"3\\n\""),
                "{test}"
            );
        }
    }

    #[test]
    fn a_key_of_the_wrong_type_is_named_with_the_type_found() {
        assert_eq!(
            parse_err("{ json = 1, exists = true }", Kind::Exec),
            "`json` must be a string, not integer"
        );
        assert_eq!(
            parse_err("{ gt = \"5\" }", Kind::Exec),
            "`gt` must be a number, not string"
        );
        assert_eq!(
            parse_err("{ not = 1, exists = true }", Kind::Exec),
            "`not` must be true or false, not integer"
        );
        assert_eq!(
            parse_err("{ exit = 0.5 }", Kind::Exec),
            "`exit` must be an integer, not float"
        );
        assert_eq!(
            parse_err("{ set = \"a\" }", Kind::Exec),
            "`set` must be a list, not string"
        );
    }

    #[test]
    fn infinite_or_nan_numbers_are_refused_where_a_number_is_compared() {
        for (src, why) in [
            ("{ gt = inf }", "`gt` must be a number, not float"),
            ("{ le = -inf }", "`le` must be a number, not float"),
            ("{ lt = nan }", "`lt` must be a number, not float"),
            (
                "{ equals = nan }",
                "`equals` must be a string, number or boolean, not float",
            ),
            (
                "{ equals = inf }",
                "`equals` must be a string, number or boolean, not float",
            ),
        ] {
            assert_eq!(parse_err(src, Kind::Exec), why, "{src}");
        }
    }

    #[test]
    fn a_full_length_prefix_is_one_address_and_a_longer_one_is_refused() {
        let one = ev("exec", "192.168.10.10\n", 0);
        let next = ev("exec", "192.168.10.11\n", 0);
        assert!(holds(
            "{ in_subnet = \"192.168.10.10/32\" }",
            Kind::Exec,
            &one
        ));
        assert!(!holds(
            "{ in_subnet = \"192.168.10.10/32\" }",
            Kind::Exec,
            &next
        ));
        let v6 = ev("exec", "fd00::1\n", 0);
        assert!(holds("{ in_subnet = \"fd00::1/128\" }", Kind::Exec, &v6));
        assert!(!holds("{ in_subnet = \"fd00::2/128\" }", Kind::Exec, &v6));
        assert_eq!(
            parse_err("{ in_subnet = \"fd00::/129\" }", Kind::Exec),
            "`in_subnet` \"fd00::/129\": the prefix length is at most 128"
        );
        // A templated network that breaks for a student says so when prepared.
        let t = exp("{ in_subnet = \"10.{{vlan}}.0.0/40\" }", Kind::Exec);
        assert_eq!(
            t.prepare(&vars()).unwrap_err(),
            "`in_subnet` \"10.10.0.0/40\": the prefix length is at most 32"
        );
    }

    #[test]
    fn a_last_line_that_is_no_three_digit_code_is_no_http_status() {
        // A body whose last line is a number, no `-w '\n%{http_code}'` status after it.
        let e = ev("http", "<p>total</p>\n42", 0);
        assert!(!holds("{ status = 42 }", Kind::Http, &e));
        assert!(holds(
            "{ field = \"status\", exists = true, not = true }",
            Kind::Http,
            &e
        ));
        let e = ev("http", "<p>total</p>\n2000", 0);
        assert!(holds("{ field = \"status\", count = 0 }", Kind::Http, &e));
        let ok = ev("http", "<p>total</p>\n204", 0);
        assert!(holds("{ status = 204 }", Kind::Http, &ok));
    }

    #[test]
    fn reachability_failures_say_reachable_or_not_reachable() {
        let up = ev("ping", "1 packets transmitted, 1 received\n", 0);
        let down = ev("ping", "1 packets transmitted, 0 received\n", 1);
        let j = judge("{ reachable = true }", Kind::Ping, &down);
        assert_eq!(j.message, "expected reachable, found 1");
        let j = judge("{ reachable = false }", Kind::Tcp, &up);
        assert_eq!(j.message, "expected not reachable, found 0");
        let j = judge("{ exit = 0, not = true }", Kind::Ping, &up);
        assert_eq!(j.message, "expected not exit 0, found 0");
    }
}
