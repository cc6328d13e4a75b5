//! Firewall rules at datacenter, node and guest level and inside security groups
//! (`API2/Firewall/Rules.pm`, `verify_rule` in `Firewall.pm`).
//!
//! A rule is stored as PVE's parser would read it back after a save: `enable` 0/1
//! (a rule without `enable` reads back enabled), the macro in its preferred spelling,
//! group rules without address/port fields, comments trimmed. Whether a rule is valid
//! (`ipversion`, `errors`) is derived on every read from the current IP sets and
//! aliases, so deleting a set that a rule references marks the rule as PVE would on its
//! next reload (B.11 #4).

use std::collections::BTreeMap;

use http::Method;
use serde_json::{json, Map, Value};

use super::address::{is_name, parse_addr_spec, AddrSpec, Ctx};
use super::catalog;
use super::{
    assert_digest, check_allowed, digest, file_comment, format_error, no_params, Firewall, Scope,
};
use crate::error::{ApiError, ApiResult, Params};

/// Rule fields the API reads and writes (`$rule_properties` without `pos`/`digest`).
const FIELDS: &[&str] = &[
    "type",
    "action",
    "macro",
    "iface",
    "source",
    "dest",
    "proto",
    "enable",
    "log",
    "sport",
    "dport",
    "comment",
    "icmp-type",
];

/// Properties `delete=` may name (`$rule_properties`).
const PROPERTIES: &[&str] = &[
    "pos",
    "digest",
    "type",
    "action",
    "macro",
    "iface",
    "source",
    "dest",
    "proto",
    "enable",
    "log",
    "sport",
    "dport",
    "comment",
    "icmp-type",
];

const LOG_LEVELS: &[&str] = &[
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "nolog",
];

/// One firewall rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Rule {
    fields: BTreeMap<String, String>,
}

impl Rule {
    /// A field, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// Does the compiled ruleset include it (`enable` not 0)?
    pub fn enabled(&self) -> bool {
        self.get("enable") != Some("0")
    }

    /// A `GROUP old` rule now names `new` (security group rename).
    pub fn rename_group(&mut self, old: &str, new: &str) {
        if self.get("type") == Some("group") && self.get("action") == Some(old) {
            self.fields.insert("action".into(), new.into());
        }
    }

    /// The rule in file syntax, for oracle reasons: `in DROP`, `out DNS(ACCEPT) -dest +x`.
    pub fn describe(&self) -> String {
        let mut s = self.get("type").unwrap_or("?").to_owned();
        let action = self.get("action").unwrap_or("?");
        match self.get("macro") {
            Some(m) => s.push_str(&format!(" {m}({action})")),
            None => s.push_str(&format!(" {action}")),
        }
        for (key, flag) in [
            ("iface", "-i"),
            ("source", "-source"),
            ("dest", "-dest"),
            ("proto", "-p"),
            ("dport", "-dport"),
            ("sport", "-sport"),
            ("icmp-type", "-icmp-type"),
        ] {
            if let Some(v) = self.get(key) {
                s.push_str(&format!(" {flag} {v}"));
            }
        }
        s
    }
}

/// The `rule_env` a list of rules is verified in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Env {
    Cluster,
    Host,
    Vm,
    Group,
}

impl Env {
    fn name(self) -> &'static str {
        match self {
            Self::Cluster => "cluster",
            Self::Host => "host",
            Self::Vm => "vm",
            Self::Group => "group",
        }
    }

    fn types(self) -> &'static [&'static str] {
        match self {
            Self::Cluster | Self::Host => &["in", "out", "forward", "group"],
            Self::Vm => &["in", "out", "group"],
            Self::Group => &["in", "out", "forward"],
        }
    }

    fn allows_iface(self) -> bool {
        self != Self::Group
    }
}

/// What `verify_rule` derives: the IP version and the per-parameter errors in the order
/// they were found (the API raises the first one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Checked {
    pub ipversion: Option<u8>,
    pub errors: Vec<(String, String)>,
    macro_name: Option<&'static str>,
}

impl Checked {
    /// The `errors` object of a GET: the first message per parameter.
    fn error_map(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (k, v) in &self.errors {
            m.entry(k.clone()).or_insert_with(|| json!(v));
        }
        m
    }
}

/// `pve-iface`: `[a-z][a-z0-9_]{1,20}` with an optional `:N`/`.N` suffix.
fn valid_iface(s: &str) -> bool {
    let (base, suffix) = match s.find([':', '.']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut chars = base.chars();
    (2..=21).contains(&base.len())
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && suffix.is_none_or(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// `parse_port_name_number_or_range`: the port ranges of a `dport`/`sport` spec.
/// With `icmp` (a dport of an ICMP rule) ICMP type names are accepted and yield no range.
pub(super) fn parse_ports(spec: &str, icmp: bool) -> Result<Vec<(u16, u16)>, String> {
    if spec.ends_with(',') {
        return Err("extraneous commas in list".to_owned());
    }
    let port = |p: &str| p.parse::<u64>().ok().and_then(|n| u16::try_from(n).ok());
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let mut ranges = Vec::new();
    let mut count = 0;
    let mut icmp_port = false;
    for item in spec.split(',') {
        if let Some((a, b)) = item.split_once(':').filter(|(a, b)| digits(a) && digits(b)) {
            count += 2;
            let lo = port(a).ok_or_else(|| format!("invalid port '{a}'"))?;
            let hi = port(b).ok_or_else(|| format!("invalid port '{b}'"))?;
            if lo > hi {
                return Err(format!(
                    "backwards range '{a}:{b}' not allowed, did you mean '{b}:{a}'?"
                ));
            }
            ranges.push((lo, hi));
        } else if digits(item) {
            count += 1;
            let p = port(item).ok_or_else(|| format!("invalid port '{item}'"))?;
            ranges.push((p, p));
        } else if icmp && catalog::is_icmp_type_name(item) {
            icmp_port = true;
        } else {
            let p = catalog::service_port(item).ok_or_else(|| format!("invalid port '{item}'"))?;
            ranges.push((p, p));
        }
    }
    if icmp_port && count > 0 {
        return Err("ICMP ports not allowed in port range".to_owned());
    }
    if count > 15 {
        return Err("too many entries in port list (> 15 numbers)".to_owned());
    }
    Ok(ranges)
}

fn push(errors: &mut Vec<(String, String)>, param: &str, message: String) {
    errors.push((param.to_owned(), message));
}

fn non_empty<'a>(r: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    r.get(key).map(String::as_str).filter(|v| !v.is_empty())
}

/// `verify_rule` against the definitions visible in `ctx`.
pub(super) fn verify(r: &BTreeMap<String, String>, env: Env, ctx: &Ctx<'_>) -> Checked {
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut ipversion: Option<u8> = None;
    let mut set_version = |v: Option<u8>| -> bool {
        match (ipversion, v) {
            (Some(old), Some(new)) if old != new => false,
            (_, Some(new)) => {
                ipversion = Some(new);
                true
            }
            _ => true,
        }
    };

    let typ = non_empty(r, "type");
    let action = non_empty(r, "action");
    if typ.is_none() {
        push(&mut errors, "type", "missing property".into());
    }
    if action.is_none() {
        push(&mut errors, "action", "missing property".into());
    }
    if let Some(t) = typ {
        if !env.types().contains(&t) {
            push(
                &mut errors,
                "type",
                format!("invalid rule type '{t}' for rule_env '{}'", env.name()),
            );
        }
        match t {
            "in" | "out" | "forward" => {
                if t == "forward" && action == Some("REJECT") {
                    push(
                        &mut errors,
                        "action",
                        "cannot define REJECT rules on forward chain".into(),
                    );
                }
                if let Some(a) = action.filter(|a| !matches!(*a, "ACCEPT" | "DROP" | "REJECT")) {
                    push(&mut errors, "action", format!("unknown action '{a}'"));
                }
            }
            "group" => {
                if env == Env::Group {
                    push(&mut errors, "type", "security groups not allowed".into());
                }
                if action.is_some_and(|a| !is_name(a)) {
                    push(
                        &mut errors,
                        "action",
                        "invalid characters in security group name".into(),
                    );
                }
            }
            other => push(&mut errors, "type", format!("unknown rule type '{other}'")),
        }
    }

    if let Some(iface) = non_empty(r, "iface") {
        if !env.allows_iface() {
            push(
                &mut errors,
                "type",
                "parameter -i not allowed for this rule type".into(),
            );
        }
        if !valid_iface(iface) {
            push(
                &mut errors,
                "iface",
                format!("invalid network interface name '{iface}'"),
            );
        }
        let net_n = iface
            .strip_prefix("net")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if env == Env::Vm && !net_n {
            push(
                &mut errors,
                "iface",
                "value does not match the regex pattern 'net\\d+'".into(),
            );
        }
    }

    let mut macro_name = None;
    if let Some(m) = non_empty(r, "macro") {
        match catalog::find_macro(m) {
            Some(found) => macro_name = Some(found.name),
            None => push(&mut errors, "macro", format!("unknown macro '{m}'")),
        }
    }

    let proto = non_empty(r, "proto");
    let mut is_icmp = false;
    if let Some(p) = proto {
        if catalog::protocol_number(p).is_none() {
            push(&mut errors, "proto", format!("unknown protocol '{p}'"));
        }
        match p {
            "icmp" => {
                set_version(Some(4));
            }
            "icmpv6" | "ipv6-icmp" => {
                set_version(Some(6));
            }
            _ => {}
        }
        is_icmp = catalog::is_icmp(p);
    }

    let dport = non_empty(r, "dport");
    if let Some(d) = dport {
        if let Err(e) = parse_ports(d, is_icmp) {
            push(&mut errors, "dport", e);
        }
        if proto.is_none() {
            push(
                &mut errors,
                "proto",
                "missing property - 'dport' requires this property".into(),
            );
        }
        if !catalog::has_ports(proto.unwrap_or("")) && !is_icmp {
            push(
                &mut errors,
                "dport",
                format!("protocol '{}' does not support ports", proto.unwrap_or("")),
            );
        }
    }

    if let Some(t) = non_empty(r, "icmp-type") {
        if !is_icmp {
            push(
                &mut errors,
                "proto",
                "missing property - 'icmp-type' requires this property".into(),
            );
        }
        if dport.is_some() {
            push(
                &mut errors,
                "icmp-type",
                "'icmp-type' cannot be specified together with 'dport'".into(),
            );
        }
        match proto {
            Some("icmp") if !catalog::ICMP_TYPES.contains(&t) => {
                push(
                    &mut errors,
                    "icmp-type",
                    format!("invalid icmp-type '{t}' for proto 'icmp'"),
                );
            }
            Some(p @ ("icmpv6" | "ipv6-icmp")) if !catalog::ICMPV6_TYPES.contains(&t) => {
                push(
                    &mut errors,
                    "icmp-type",
                    format!("invalid icmp-type '{t}' for proto '{p}'"),
                );
            }
            _ => {}
        }
    }

    if let Some(s) = non_empty(r, "sport") {
        if let Err(e) = parse_ports(s, false) {
            push(&mut errors, "sport", e);
        }
        if proto.is_none() {
            push(
                &mut errors,
                "proto",
                "missing property - 'sport' requires this property".into(),
            );
        }
        if !catalog::has_ports(proto.unwrap_or("")) {
            push(
                &mut errors,
                "sport",
                format!("protocol '{}' does not support ports", proto.unwrap_or("")),
            );
        }
    }

    for key in ["source", "dest"] {
        let Some(value) = non_empty(r, key) else {
            continue;
        };
        match parse_addr_spec(value) {
            Err(e) => push(&mut errors, key, e),
            Ok((spec, v)) => {
                if !set_version(v) {
                    push(
                        &mut errors,
                        key,
                        "detected mixed ipv4/ipv6 addresses in rule".into(),
                    );
                }
                match spec {
                    AddrSpec::IpSet {
                        name: Some(name), ..
                    } => {
                        if !ctx.ipset_exists(&name) {
                            push(&mut errors, key, format!("no such ipset '{name}'"));
                        }
                    }
                    AddrSpec::IpSet { name: None, .. } => {
                        push(&mut errors, key, format!("invalid ipset name '{value}'"))
                    }
                    AddrSpec::Alias { scope, name } => {
                        if !ctx.alias_exists(&name) {
                            push(&mut errors, key, format!("no such alias '{value}'"));
                        }
                        let v = ctx.alias(scope, &name).and_then(|a| a.ipversion());
                        if !set_version(v) {
                            push(
                                &mut errors,
                                key,
                                "detected mixed ipv4/ipv6 addresses in rule".into(),
                            );
                        }
                    }
                    AddrSpec::Range(..) | AddrSpec::List(_) => {}
                }
            }
        }
    }

    if let (Some(name), true) = (macro_name, errors.is_empty()) {
        if let Some(m) = catalog::find_macro(name) {
            for line in m.lines {
                for (key, templ) in [
                    ("proto", Some(line.proto)),
                    ("dport", line.dport),
                    ("sport", line.sport),
                ] {
                    if let (Some(templ), Some(given)) = (templ, non_empty(r, key)) {
                        if given != templ {
                            push(
                                &mut errors,
                                key,
                                format!(
                                    "parameter '{key}' already define in macro (value = '{templ}')"
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    Checked {
        ipversion,
        errors,
        macro_name,
    }
}

/// The stored form of a rule: what PVE's parser reads back after `format_rules`.
fn normalize(mut fields: BTreeMap<String, String>, checked: &Checked, env: Env) -> Rule {
    fields.retain(|k, v| FIELDS.contains(&k.as_str()) && !v.is_empty());
    let enabled = fields
        .get("enable")
        .is_none_or(|e| e.parse::<u64>() != Ok(0));
    fields.insert("enable".into(), if enabled { "1" } else { "0" }.into());
    match file_comment(fields.get("comment")) {
        Some(c) => fields.insert("comment".into(), c),
        None => fields.remove("comment"),
    };
    if let Some(name) = checked.macro_name {
        fields.insert("macro".into(), name.into());
    }
    if !env.allows_iface() {
        fields.remove("iface");
    }
    if fields.get("type").map(String::as_str) == Some("group") {
        fields.retain(|k, _| {
            matches!(
                k.as_str(),
                "type" | "action" | "enable" | "iface" | "comment"
            )
        });
    }
    Rule { fields }
}

/// A rule as a GET shows it (without `pos`/`digest`).
fn loaded_json(rule: &Rule, checked: &Checked) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in &rule.fields {
        let value = if k == "enable" {
            json!(if v == "0" { 0 } else { 1 })
        } else {
            json!(v)
        };
        m.insert(k.clone(), value);
    }
    if let Some(v) = checked.ipversion {
        m.insert("ipversion".into(), json!(v));
    }
    let errors = checked.error_map();
    if !errors.is_empty() {
        m.insert("errors".into(), Value::Object(errors));
    }
    m
}

/// Which rule list a request addresses.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target<'a> {
    Level(&'a Scope),
    Group(&'a str),
}

impl Target<'_> {
    fn env(self) -> Env {
        match self {
            Target::Level(Scope::Cluster) => Env::Cluster,
            Target::Level(Scope::Node(_)) => Env::Host,
            Target::Level(Scope::Guest(_)) => Env::Vm,
            Target::Group(_) => Env::Group,
        }
    }
}

/// The definitions rules of `target` see: guest rules their own sets and aliases too,
/// group rules only the datacenter's (B.7).
pub(super) fn ctx<'a>(fw: &'a Firewall, target: Target<'_>) -> Ctx<'a> {
    let local = match target {
        Target::Level(scope @ Scope::Guest(_)) => fw.file(scope),
        _ => None,
    };
    Ctx {
        cluster: &fw.cluster,
        local,
    }
}

/// The rules with what a reload derives for each (used by GETs and the oracle).
pub(super) fn checked<'a>(
    fw: &'a Firewall,
    target: Target<'_>,
    rules: &'a [Rule],
) -> Vec<(&'a Rule, Checked)> {
    let ctx = ctx(fw, target);
    rules
        .iter()
        .map(|r| (r, verify(&r.fields, target.env(), &ctx)))
        .collect()
}

fn list_json(fw: &Firewall, target: Target<'_>, rules: &[Rule]) -> (Vec<Value>, String) {
    let items = checked(fw, target, rules)
        .iter()
        .map(|(r, c)| loaded_json(r, c))
        .collect();
    digest::list_with_digest(items)
}

/// `/_sim/state` rendering: as listed by GET, with `pos`, without digests.
pub(super) fn state_list(fw: &Firewall, target: Target<'_>, rules: &[Rule]) -> Vec<Value> {
    checked(fw, target, rules)
        .iter()
        .enumerate()
        .map(|(pos, (r, c))| {
            let mut m = loaded_json(r, c);
            m.insert("pos".into(), json!(pos));
            Value::Object(m)
        })
        .collect()
}

fn rules_of<'a>(fw: &'a Firewall, target: Target<'_>) -> Option<&'a [Rule]> {
    match target {
        Target::Level(scope) => Some(fw.file(scope).map_or(&[][..], |f| f.rules.as_slice())),
        Target::Group(name) => fw.groups.get(name).map(|g| g.rules.as_slice()),
    }
}

fn store(fw: &mut Firewall, target: Target<'_>, rules: Vec<Rule>) {
    match target {
        Target::Level(scope) => {
            fw.file_mut(scope).rules = rules;
            fw.prune(scope);
        }
        Target::Group(name) => {
            if let Some(g) = fw.groups.get_mut(name) {
                g.rules = rules;
            }
        }
    }
}

/// Schema formats of the rule parameters (`pve-fw-addr-spec`, `pve-fw-dport-spec`, …)
/// and the cheap type checks, so direct callers get PVE's 400s too.
fn check_formats(params: &Params) -> ApiResult<()> {
    for (key, value) in params {
        if value.is_empty() {
            continue;
        }
        let result = match key.as_str() {
            "type" if !["in", "out", "forward", "group"].contains(&value.as_str()) => Err(ApiError::param(
                key,
                format!("value '{value}' does not have a value in the enumeration 'in, out, forward, group'"),
            )),
            "log" if !LOG_LEVELS.contains(&value.as_str()) => Err(ApiError::param(
                key,
                format!("value '{value}' does not have a value in the enumeration '{}'", LOG_LEVELS.join(", ")),
            )),
            "action" if !is_name(value) || value.len() > 20 => {
                Err(ApiError::param(key, "value does not match the regex pattern"))
            }
            "enable" | "pos" | "moveto" if value.parse::<u64>().is_err() => {
                Err(ApiError::param(key, format!("type check ('integer') failed - got '{value}'")))
            }
            "source" | "dest" if value.len() > 512 => {
                Err(ApiError::param(key, "value may only be 512 characters long"))
            }
            "source" | "dest" => parse_addr_spec(value).map(|_| ()).map_err(|e| format_error(key, &e)),
            "dport" => parse_ports(value, true).map(|_| ()).map_err(|e| format_error(key, &e)),
            "sport" => parse_ports(value, false).map(|_| ()).map_err(|e| format_error(key, &e)),
            "proto" if catalog::protocol_number(value).is_none() => {
                Err(format_error(key, &format!("unknown protocol '{value}'")))
            }
            "icmp-type" if !catalog::is_icmp_type_name(value) => {
                Err(format_error(key, &format!("invalid icmp-type value '{value}'")))
            }
            "iface" if !valid_iface(value) => {
                Err(format_error(key, &format!("invalid network interface name '{value}'")))
            }
            _ => Ok(()),
        };
        result?;
    }
    Ok(())
}

/// `copy_rule_data`: set the given fields; `''` or `-` removes one.
fn copy_rule_data(fields: &mut BTreeMap<String, String>, params: &Params) {
    for key in FIELDS {
        if let Some(v) = params.get(*key) {
            if v.is_empty() || v == "-" {
                fields.remove(*key);
            } else {
                fields.insert((*key).to_owned(), v.clone());
            }
        }
    }
}

fn raise_first(checked: &Checked) -> ApiResult<()> {
    match checked.errors.first() {
        Some((param, msg)) => Err(ApiError::param(param, msg)),
        None => Ok(()),
    }
}

fn no_rule(pos: usize) -> ApiError {
    ApiError::internal(format!("no rule at position {pos}"))
}

/// GET/POST on a rule list, GET/PUT/DELETE on `{pos}`.
pub(super) fn handle(
    fw: &mut Firewall,
    target: Target<'_>,
    method: &Method,
    pos: Option<&str>,
    params: &Params,
    missing: impl Fn() -> ApiError,
) -> ApiResult<Value> {
    let env = target.env();
    let pos = pos
        .map(|p| {
            p.parse::<usize>().map_err(|_| {
                ApiError::param("pos", format!("type check ('integer') failed - got '{p}'"))
            })
        })
        .transpose()?;
    let rules: Vec<Rule> = rules_of(fw, target).ok_or_else(&missing)?.to_vec();
    match (pos, method.as_str()) {
        (None, "GET") => {
            no_params(params)?;
            let (list, _) = list_json(fw, target, &rules);
            Ok(Value::Array(
                list.into_iter()
                    .enumerate()
                    .map(|(i, mut item)| {
                        item["pos"] = json!(i);
                        item
                    })
                    .collect(),
            ))
        }
        (None, "POST") => {
            let mut allowed = FIELDS.to_vec();
            allowed.extend(["pos", "digest"]);
            check_allowed(params, &allowed)?;
            check_formats(params)?;
            let mut fields = BTreeMap::new();
            copy_rule_data(&mut fields, params);
            let checked = verify(&fields, env, &ctx(fw, target));
            raise_first(&checked)?;
            if !params.contains_key("enable") {
                fields.insert("enable".into(), "0".into());
            }
            let rule = normalize(fields, &checked, env);
            let mut rules = rules;
            // B.6 / §7.3: create always inserts at the top; `pos` is ignored.
            rules.insert(0, rule);
            store(fw, target, rules);
            Ok(Value::Null)
        }
        (Some(pos), "GET") => {
            no_params(params)?;
            let (list, _) = list_json(fw, target, &rules);
            let mut item = list.into_iter().nth(pos).ok_or_else(|| no_rule(pos))?;
            item["pos"] = json!(pos);
            Ok(item)
        }
        (Some(pos), "PUT") => {
            let mut allowed = FIELDS.to_vec();
            allowed.extend(["pos", "digest", "moveto", "delete"]);
            check_allowed(params, &allowed)?;
            check_formats(params)?;
            assert_digest(&list_json(fw, target, &rules).1, params.get("digest"))?;
            if pos >= rules.len() {
                return Err(no_rule(pos));
            }
            let moveto = params.get("moveto").and_then(|m| m.parse::<usize>().ok());
            let rules = match moveto {
                Some(to) if to != pos => {
                    let moving = rules[pos].clone();
                    let mut out = Vec::with_capacity(rules.len());
                    for (i, r) in rules.iter().enumerate() {
                        if i == pos {
                            continue;
                        }
                        if i == to {
                            out.push(moving.clone());
                        }
                        out.push(r.clone());
                    }
                    if to >= rules.len() {
                        out.push(moving);
                    }
                    out
                }
                _ => {
                    let mut fields = rules[pos].fields.clone();
                    copy_rule_data(&mut fields, params);
                    if let Some(delete) = params.get("delete") {
                        for opt in delete
                            .split(|c: char| c == ',' || c == ';' || c == '\0' || c.is_whitespace())
                        {
                            if opt.is_empty() {
                                continue;
                            }
                            if !PROPERTIES.contains(&opt) {
                                return Err(ApiError::param(
                                    "delete",
                                    format!("no such property ('{opt}')"),
                                ));
                            }
                            if opt == "type" || opt == "action" {
                                return Err(ApiError::param(
                                    "delete",
                                    format!("unable to delete required property '{opt}'"),
                                ));
                            }
                            fields.remove(opt);
                        }
                    }
                    let checked = verify(&fields, env, &ctx(fw, target));
                    raise_first(&checked)?;
                    let mut rules = rules;
                    rules[pos] = normalize(fields, &checked, env);
                    rules
                }
            };
            store(fw, target, rules);
            Ok(Value::Null)
        }
        (Some(pos), "DELETE") => {
            check_allowed(params, &["digest", "pos"])?;
            assert_digest(&list_json(fw, target, &rules).1, params.get("digest"))?;
            if pos >= rules.len() {
                return Err(no_rule(pos));
            }
            let mut rules = rules;
            rules.remove(pos);
            store(fw, target, rules);
            Ok(Value::Null)
        }
        (pos, _) => {
            let p = pos.map(|p| p.to_string());
            let mut rest: Vec<&str> = match target {
                Target::Level(_) => vec!["rules"],
                Target::Group(name) => vec!["groups", name],
            };
            rest.extend(p.as_deref());
            let scope = match target {
                Target::Level(scope) => scope.clone(),
                Target::Group(_) => Scope::Cluster,
            };
            Err(super::not_implemented(method, &scope, &rest))
        }
    }
}

/// `…/firewall/rules[/{pos}]` of a level.
pub(super) fn handle_level(
    fw: &mut Firewall,
    scope: &Scope,
    method: &Method,
    pos: Option<&str>,
    params: &Params,
) -> ApiResult<Value> {
    handle(fw, Target::Level(scope), method, pos, params, || {
        ApiError::internal("no rules")
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::call;
    use super::*;

    fn guest() -> Scope {
        Scope::Guest(101)
    }

    #[test]
    fn create_inserts_at_top_disabled_by_default() {
        let mut fw = Firewall::new();
        call(
            &mut fw,
            &guest(),
            "POST",
            &["rules"],
            &[("type", "in"), ("action", "ACCEPT"), ("source", "10.0.0.1")],
        )
        .expect("first");
        call(
            &mut fw,
            &guest(),
            "POST",
            &["rules"],
            &[
                ("type", "out"),
                ("action", "DROP"),
                ("enable", "1"),
                ("pos", "5"),
            ],
        )
        .expect("second");
        let list = call(&mut fw, &guest(), "GET", &["rules"], &[]).expect("list");
        assert_eq!(list[0]["type"], "out");
        assert_eq!(list[0]["enable"], 1);
        assert_eq!(list[0]["pos"], 0);
        assert_eq!(list[1]["type"], "in");
        assert_eq!(
            list[1]["enable"], 0,
            "API create without enable stores a disabled rule"
        );
        assert_eq!(list[1]["ipversion"], 4);
        assert_eq!(list[1]["pos"], 1);
        assert_eq!(list[0]["digest"], list[1]["digest"]);
        let one = call(&mut fw, &guest(), "GET", &["rules", "1"], &[]).expect("read");
        assert_eq!(one["source"], "10.0.0.1");
        assert_eq!(one["digest"], list[0]["digest"]);
        let missing = call(&mut fw, &guest(), "GET", &["rules", "2"], &[]).unwrap_err();
        assert_eq!(
            (missing.status.as_u16(), missing.message.as_str()),
            (500, "no rule at position 2")
        );
    }

    #[test]
    fn validation_errors_carry_pve_texts() {
        let mut fw = Firewall::new();
        let err = |fw: &mut Firewall, scope: &Scope, params: &[(&str, &str)]| {
            let e = call(fw, scope, "POST", &["rules"], params).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{e:?}");
            e.errors
                .expect("param errors")
                .into_iter()
                .next()
                .expect("one error")
        };
        assert_eq!(
            err(&mut fw, &guest(), &[("type", "in"), ("action", "ALLOW")]),
            ("action".to_owned(), "unknown action 'ALLOW'".to_owned())
        );
        assert_eq!(
            err(
                &mut fw,
                &guest(),
                &[("type", "in"), ("action", "ACCEPT"), ("source", "+missing")]
            ),
            ("source".to_owned(), "no such ipset 'missing'".to_owned())
        );
        assert_eq!(
            err(
                &mut fw,
                &guest(),
                &[
                    ("type", "in"),
                    ("action", "ACCEPT"),
                    ("dest", "nosuchalias")
                ]
            ),
            ("dest".to_owned(), "no such alias 'nosuchalias'".to_owned())
        );
        assert_eq!(
            err(
                &mut fw,
                &guest(),
                &[("type", "in"), ("action", "ACCEPT"), ("iface", "eth0")]
            ),
            (
                "iface".to_owned(),
                "value does not match the regex pattern 'net\\d+'".to_owned()
            )
        );
        assert_eq!(
            err(
                &mut fw,
                &guest(),
                &[("type", "in"), ("action", "ACCEPT"), ("dport", "22")]
            ),
            (
                "proto".to_owned(),
                "missing property - 'dport' requires this property".to_owned()
            )
        );
        assert_eq!(
            err(
                &mut fw,
                &guest(),
                &[
                    ("type", "in"),
                    ("action", "ACCEPT"),
                    ("proto", "icmp"),
                    ("sport", "22")
                ]
            ),
            (
                "sport".to_owned(),
                "protocol 'icmp' does not support ports".to_owned()
            )
        );
        assert_eq!(
            err(
                &mut fw,
                &guest(),
                &[("type", "forward"), ("action", "ACCEPT")]
            ),
            (
                "type".to_owned(),
                "invalid rule type 'forward' for rule_env 'vm'".to_owned()
            )
        );
        assert_eq!(
            err(
                &mut fw,
                &Scope::Cluster,
                &[("type", "forward"), ("action", "REJECT")]
            ),
            (
                "action".to_owned(),
                "cannot define REJECT rules on forward chain".to_owned()
            )
        );
        assert_eq!(
            err(
                &mut fw,
                &guest(),
                &[("type", "in"), ("action", "ACCEPT"), ("macro", "Nope")]
            ),
            ("macro".to_owned(), "unknown macro 'Nope'".to_owned())
        );
        assert_eq!(
            err(
                &mut fw,
                &guest(),
                &[
                    ("type", "in"),
                    ("action", "ACCEPT"),
                    ("macro", "SSH"),
                    ("proto", "udp")
                ]
            ),
            (
                "proto".to_owned(),
                "parameter 'proto' already define in macro (value = 'tcp')".to_owned()
            )
        );
        assert_eq!(
            err(
                &mut fw,
                &guest(),
                &[
                    ("type", "in"),
                    ("action", "ACCEPT"),
                    ("proto", "tcp"),
                    ("dport", "90:80")
                ]
            ),
            (
                "dport".to_owned(),
                "invalid format - backwards range '90:80' not allowed, did you mean '80:90'?\n"
                    .to_owned()
            )
        );
        assert_eq!(
            err(
                &mut fw,
                &guest(),
                &[
                    ("type", "in"),
                    ("action", "ACCEPT"),
                    ("proto", "tcp"),
                    ("dport", "nosvc")
                ]
            ),
            (
                "dport".to_owned(),
                "invalid format - invalid port 'nosvc'\n".to_owned()
            )
        );
        assert_eq!(
            err(
                &mut fw,
                &guest(),
                &[("type", "in"), ("action", "ACCEPT"), ("proto", "bogus")]
            ),
            (
                "proto".to_owned(),
                "invalid format - unknown protocol 'bogus'\n".to_owned()
            )
        );
        assert_eq!(
            err(&mut fw, &guest(), &[("type", "in"), ("action", "ACCEPT"), ("source", "10.0.0.1,fd00::1")]),
            (
                "source".to_owned(),
                "invalid format - detected mixed ipv4/ipv6 addresses in address list '10.0.0.1,fd00::1'\n".to_owned()
            )
        );
        // Host-level rules may name any interface.
        call(
            &mut fw,
            &Scope::Cluster,
            "POST",
            &["rules"],
            &[("type", "in"), ("action", "ACCEPT"), ("iface", "vmbr0")],
        )
        .expect("cluster rule with a bridge interface");
        assert!(fw.guests.is_empty(), "failed creates write nothing");
    }

    #[test]
    fn macro_names_are_normalised_and_ports_checked() {
        let mut fw = Firewall::new();
        call(
            &mut fw,
            &guest(),
            "POST",
            &["rules"],
            &[("type", "in"), ("action", "ACCEPT"), ("macro", "ssh")],
        )
        .expect("macro rule");
        let list = call(&mut fw, &guest(), "GET", &["rules"], &[]).expect("list");
        assert_eq!(list[0]["macro"], "SSH");
        assert_eq!(
            parse_ports("22,80:90,https", false).expect("valid"),
            vec![(22, 22), (80, 90), (443, 443)]
        );
        assert_eq!(parse_ports("echo-request", true).expect("icmp"), vec![]);
        assert_eq!(
            parse_ports("echo-request,8", true).unwrap_err(),
            "ICMP ports not allowed in port range"
        );
        assert_eq!(
            parse_ports("70000", false).unwrap_err(),
            "invalid port '70000'"
        );
        assert_eq!(
            parse_ports("1:2,3:4,5:6,7:8,9:10,11:12,13:14,15", false).expect("15 numbers are fine"),
            vec![
                (1, 2),
                (3, 4),
                (5, 6),
                (7, 8),
                (9, 10),
                (11, 12),
                (13, 14),
                (15, 15)
            ]
        );
        assert_eq!(
            parse_ports("1:2,3:4,5:6,7:8,9:10,11:12,13:14,15:16", false).unwrap_err(),
            "too many entries in port list (> 15 numbers)"
        );
    }

    #[test]
    fn update_moveto_delete_and_digest() {
        let mut fw = Firewall::new();
        for action in ["DROP", "REJECT", "ACCEPT"] {
            call(
                &mut fw,
                &guest(),
                "POST",
                &["rules"],
                &[("type", "in"), ("action", action), ("comment", "c")],
            )
            .expect("create");
        }
        // Order now: ACCEPT, REJECT, DROP.
        let list = call(&mut fw, &guest(), "GET", &["rules"], &[]).expect("list");
        let digest = list[0]["digest"].as_str().expect("digest").to_owned();
        let stale = call(
            &mut fw,
            &guest(),
            "PUT",
            &["rules", "0"],
            &[("enable", "1"), ("digest", "bad")],
        )
        .unwrap_err();
        assert_eq!(
            stale.message,
            "detected modified configuration - file changed by other user? Try again."
        );
        call(
            &mut fw,
            &guest(),
            "PUT",
            &["rules", "0"],
            &[("moveto", "2"), ("digest", &digest)],
        )
        .expect("move");
        let actions: Vec<Value> = call(&mut fw, &guest(), "GET", &["rules"], &[])
            .expect("list")
            .as_array()
            .expect("array")
            .iter()
            .map(|r| r["action"].clone())
            .collect();
        // PVE's moveto inserts before the rule currently at `moveto`.
        assert_eq!(
            actions,
            vec![json!("REJECT"), json!("ACCEPT"), json!("DROP")]
        );

        call(
            &mut fw,
            &guest(),
            "PUT",
            &["rules", "0"],
            &[("enable", "1"), ("delete", "comment")],
        )
        .expect("update");
        let r0 = call(&mut fw, &guest(), "GET", &["rules", "0"], &[]).expect("read");
        assert_eq!(r0["enable"], 1);
        assert!(r0.get("comment").is_none());
        let e = call(
            &mut fw,
            &guest(),
            "PUT",
            &["rules", "0"],
            &[("delete", "action")],
        )
        .unwrap_err();
        assert_eq!(
            e.errors.expect("param error")["delete"],
            "unable to delete required property 'action'"
        );
        let e = call(
            &mut fw,
            &guest(),
            "PUT",
            &["rules", "0"],
            &[("delete", "bogus")],
        )
        .unwrap_err();
        assert_eq!(
            e.errors.expect("param error")["delete"],
            "no such property ('bogus')"
        );
        let e = call(
            &mut fw,
            &guest(),
            "PUT",
            &["rules", "7"],
            &[("enable", "1")],
        )
        .unwrap_err();
        assert_eq!(e.message, "no rule at position 7");

        // A rule whose `enable` was deleted reads back enabled (the file has no '|').
        call(
            &mut fw,
            &guest(),
            "PUT",
            &["rules", "2"],
            &[("delete", "enable")],
        )
        .expect("delete enable");
        assert_eq!(
            call(&mut fw, &guest(), "GET", &["rules", "2"], &[]).expect("read")["enable"],
            1
        );

        let digest = call(&mut fw, &guest(), "GET", &["rules"], &[]).expect("list")[0]["digest"]
            .as_str()
            .expect("digest")
            .to_owned();
        call(
            &mut fw,
            &guest(),
            "DELETE",
            &["rules", "0"],
            &[("digest", &digest)],
        )
        .expect("delete");
        let e = call(
            &mut fw,
            &guest(),
            "DELETE",
            &["rules", "0"],
            &[("digest", &digest)],
        )
        .unwrap_err();
        assert_eq!(
            e.status.as_u16(),
            500,
            "positions shifted: the old digest no longer matches"
        );
        assert_eq!(
            call(&mut fw, &guest(), "GET", &["rules"], &[])
                .expect("list")
                .as_array()
                .expect("array")
                .len(),
            2
        );
    }

    #[test]
    fn rules_referencing_a_deleted_ipset_show_errors() {
        let mut fw = Firewall::new();
        call(
            &mut fw,
            &Scope::Cluster,
            "POST",
            &["ipset"],
            &[("name", "teachers")],
        )
        .expect("set");
        call(
            &mut fw,
            &guest(),
            "POST",
            &["rules"],
            &[
                ("type", "in"),
                ("action", "DROP"),
                ("source", "+teachers"),
                ("enable", "1"),
            ],
        )
        .expect("rule");
        assert!(
            call(&mut fw, &guest(), "GET", &["rules"], &[]).expect("list")[0]
                .get("errors")
                .is_none()
        );
        call(
            &mut fw,
            &Scope::Cluster,
            "DELETE",
            &["ipset", "teachers"],
            &[],
        )
        .expect("delete set");
        let list = call(&mut fw, &guest(), "GET", &["rules"], &[]).expect("list");
        assert_eq!(
            list[0]["errors"],
            json!({ "source": "no such ipset 'teachers'" })
        );
    }

    #[test]
    fn group_rules_keep_only_group_fields_and_no_iface_in_groups() {
        let mut fw = Firewall::new();
        call(
            &mut fw,
            &Scope::Cluster,
            "POST",
            &["groups"],
            &[("group", "g1")],
        )
        .expect("group");
        let e = call(
            &mut fw,
            &Scope::Cluster,
            "POST",
            &["groups", "g1"],
            &[("type", "in"), ("action", "ACCEPT"), ("iface", "net0")],
        )
        .unwrap_err();
        assert_eq!(
            e.errors.expect("param error")["type"],
            "parameter -i not allowed for this rule type"
        );
        let e = call(
            &mut fw,
            &Scope::Cluster,
            "POST",
            &["groups", "g1"],
            &[("type", "group"), ("action", "g1")],
        )
        .unwrap_err();
        assert_eq!(
            e.errors.expect("param error")["type"],
            "invalid rule type 'group' for rule_env 'group'"
        );
        call(
            &mut fw,
            &guest(),
            "POST",
            &["rules"],
            &[
                ("type", "group"),
                ("action", "g1"),
                ("iface", "net0"),
                ("source", "10.0.0.1"),
                ("enable", "1"),
            ],
        )
        .expect("group rule");
        let r = call(&mut fw, &guest(), "GET", &["rules", "0"], &[]).expect("read");
        assert_eq!(r["iface"], "net0");
        assert!(
            r.get("source").is_none(),
            "format_rules drops address fields of GROUP rules"
        );
        assert!(r.get("ipversion").is_none());
    }
}
