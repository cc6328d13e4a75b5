//! `[IPSET name]` sections of `cluster.fw` and `<vmid>.fw`:
//! `…/firewall/ipset[/{name}[/{cidr}]]` (`API2/Firewall/IPSet.pm`).
//!
//! Set names are lower-cased by PVE's parser, so they are stored lower-case and looked
//! up exactly (`GET …/ipset/Teacher` after creating `Teacher` fails as on PVE). Entries
//! are kept in the order the file is written in: sorted by `cidr`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::Method;
use serde_json::{json, Map, Value};

use super::address::{check_ip_or_cidr_or_alias, is_name, normalize_cidr, Ctx, RefScope};
use super::{
    assert_digest, bool_param, check_allowed, digest, file_comment, format_error, no_params,
    required, Firewall, Scope,
};
use crate::error::{ApiError, ApiResult, Params};

/// One IP set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct IpSet {
    pub comment: Option<String>,
    /// Sorted by `cidr`, unique.
    pub entries: Vec<Entry>,
}

/// One IP set entry: an address, a network or an alias name; `nomatch` excludes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub cidr: String,
    pub nomatch: bool,
    pub comment: Option<String>,
}

impl Entry {
    /// Split an alias entry into its scope and name; `None` for an address entry.
    fn alias_ref(&self) -> Option<(RefScope, &str)> {
        let (scope, name) = if let Some(n) = self.cidr.strip_prefix("dc/") {
            (RefScope::Dc, n)
        } else if let Some(n) = self.cidr.strip_prefix("guest/") {
            (RefScope::Guest, n)
        } else {
            (RefScope::Any, self.cidr.as_str())
        };
        is_name(name).then_some((scope, name))
    }

    /// The parser marks an entry naming a missing alias with `errors`.
    fn error(&self, ctx: &Ctx<'_>) -> Option<String> {
        let (scope, name) = self.alias_ref()?;
        ctx.alias(scope, name)
            .is_none()
            .then(|| format!("no such alias '{name}'"))
    }

    fn to_json(&self, ctx: &Ctx<'_>) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("cidr".into(), json!(self.cidr));
        if self.nomatch {
            m.insert("nomatch".into(), json!(1));
        }
        if let Some(c) = &self.comment {
            m.insert("comment".into(), json!(c));
        }
        if let Some(e) = self.error(ctx) {
            m.insert("errors".into(), json!({ "cidr": e }));
        }
        m
    }
}

impl IpSet {
    /// ipset `hash:net` semantics: the most specific entry containing the address
    /// decides, and a `nomatch` entry means "not in the set". Entries naming a missing
    /// alias are left out, as the compiler skips them.
    pub fn contains(&self, ip: IpAddr, ctx: &Ctx<'_>) -> bool {
        self.entries
            .iter()
            .filter_map(|e| ctx.entry_net(&e.cidr).map(|n| (n, e.nomatch)))
            .filter(|(net, _)| net.contains(ip))
            .max_by_key(|(net, nomatch)| (net.prefix, *nomatch))
            .is_some_and(|(_, nomatch)| !nomatch)
    }

    fn entries_json(&self, ctx: &Ctx<'_>) -> (Vec<Value>, String) {
        digest::list_with_digest(self.entries.iter().map(|e| e.to_json(ctx)).collect())
    }
}

type Sets = BTreeMap<String, IpSet>;

fn set_list(sets: &Sets) -> (Vec<Value>, String) {
    digest::list_with_digest(
        sets.iter()
            .map(|(name, set)| {
                let mut m = Map::new();
                m.insert("name".into(), json!(name));
                if let Some(c) = &set.comment {
                    m.insert("comment".into(), json!(c));
                }
                m
            })
            .collect(),
    )
}

/// `/_sim/state` rendering.
pub(super) fn state(sets: &Sets, ctx: &Ctx<'_>) -> Value {
    Value::Object(
        sets.iter()
            .map(|(name, set)| {
                let entries: Vec<Value> = set
                    .entries
                    .iter()
                    .map(|e| Value::Object(e.to_json(ctx)))
                    .collect();
                (
                    name.clone(),
                    json!({ "comment": set.comment, "entries": entries }),
                )
            })
            .collect(),
    )
}

/// Dispatch `ipset`, `ipset/{name}` and `ipset/{name}/{cidr}`; `rest` starts after
/// `ipset`. A CIDR whose slash was not percent-encoded arrives as two segments and is
/// joined again (PVE gives `{cidr}` the rest of the path).
pub(super) fn handle(
    fw: &mut Firewall,
    scope: &Scope,
    method: &Method,
    rest: &[&str],
    params: &Params,
) -> ApiResult<Value> {
    match rest {
        [] => handle_list(fw, scope, method, params),
        [name] => handle_set(fw, scope, method, name, params),
        [name, cidr @ ..] => handle_entry(fw, scope, method, name, &cidr.join("/"), params),
    }
}

fn ctx<'a>(fw: &'a Firewall, scope: &Scope) -> Ctx<'a> {
    match scope {
        Scope::Guest(_) => Ctx {
            cluster: &fw.cluster,
            local: fw.file(scope),
        },
        _ => Ctx {
            cluster: &fw.cluster,
            local: None,
        },
    }
}

fn sets<'a>(fw: &'a Firewall, scope: &Scope) -> Option<&'a Sets> {
    fw.file(scope).map(|f| &f.ipsets)
}

/// The named set or PVE's `no such IPSet` (500).
fn load<'a>(fw: &'a Firewall, scope: &Scope, name: &str) -> ApiResult<&'a IpSet> {
    sets(fw, scope)
        .and_then(|s| s.get(name))
        .ok_or_else(|| ApiError::internal(format!("no such IPSet '{name}'")))
}

fn handle_list(
    fw: &mut Firewall,
    scope: &Scope,
    method: &Method,
    params: &Params,
) -> ApiResult<Value> {
    let empty = Sets::new();
    let current = sets(fw, scope).unwrap_or(&empty);
    match method.as_str() {
        "GET" => {
            no_params(params)?;
            Ok(Value::Array(set_list(current).0))
        }
        "POST" => {
            check_allowed(params, &["name", "comment", "digest", "rename"])?;
            let name = required(params, "name")?;
            let key = name.to_lowercase();
            let comment = params.get("comment");
            if let Some(rename) = params.get("rename").filter(|r| !r.is_empty()) {
                assert_digest(&set_list(current).1, params.get("digest"))?;
                if !current.contains_key(rename.as_str()) {
                    return Err(ApiError::param(
                        "name",
                        format!("IPSet '{rename}' does not exist"),
                    ));
                }
                if current.contains_key(name) && name != rename {
                    return Err(ApiError::param(
                        "name",
                        format!("IPSet '{name}' does already exist"),
                    ));
                }
                let sets = &mut fw.file_mut(scope).ipsets;
                let mut set = sets.remove(rename.as_str()).unwrap_or_default();
                if comment.is_some() {
                    set.comment = file_comment(comment);
                }
                sets.insert(key, set);
            } else {
                if current.contains_key(name) {
                    return Err(ApiError::param(
                        "name",
                        format!("IPSet '{name}' already exists"),
                    ));
                }
                // `Teacher` next to an existing `teacher`: PVE writes both sections and
                // the parser keeps the lower-case one, so the existing set survives.
                fw.file_mut(scope)
                    .ipsets
                    .entry(key)
                    .or_insert_with(|| IpSet {
                        comment: file_comment(comment),
                        entries: Vec::new(),
                    });
            }
            Ok(Value::Null)
        }
        _ => Err(super::not_implemented(method, scope, &["ipset"])),
    }
}

fn handle_set(
    fw: &mut Firewall,
    scope: &Scope,
    method: &Method,
    name: &str,
    params: &Params,
) -> ApiResult<Value> {
    match method.as_str() {
        "GET" => {
            no_params(params)?;
            let set = load(fw, scope, name)?;
            Ok(Value::Array(set.entries_json(&ctx(fw, scope)).0))
        }
        "POST" => {
            check_allowed(params, &["cidr", "comment", "nomatch"])?;
            let cidr = required(params, "cidr")?;
            check_ip_or_cidr_or_alias(cidr).map_err(|e| format_error("cidr", &e))?;
            let nomatch = bool_param(params, "nomatch")?.unwrap_or(false);
            let set = load(fw, scope, name)?;
            let probe = Entry {
                cidr: cidr.to_owned(),
                nomatch: false,
                comment: None,
            };
            let cidr = if let Some((ref_scope, alias)) = probe.alias_ref() {
                if ctx(fw, scope).alias(ref_scope, alias).is_none() {
                    return Err(ApiError::internal(format!("no such alias '{alias}'")));
                }
                cidr.to_owned()
            } else {
                normalize_cidr(cidr, true)
            };
            if set.entries.iter().any(|e| e.cidr == cidr) {
                return Err(ApiError::param(
                    "cidr",
                    format!("address '{cidr}' already exists"),
                ));
            }
            if cidr
                .rsplit_once('/')
                .is_some_and(|(_, len)| !len.is_empty() && len.bytes().all(|b| b == b'0'))
            {
                return Err(ApiError::param(
                    "cidr",
                    "a zero prefix is not allowed in ipset entries",
                ));
            }
            let entry = Entry {
                cidr,
                nomatch,
                comment: file_comment(params.get("comment")),
            };
            let entries = &mut fw
                .file_mut(scope)
                .ipsets
                .entry(name.to_owned())
                .or_default()
                .entries;
            entries.push(entry);
            entries.sort_by(|a, b| a.cidr.cmp(&b.cidr));
            Ok(Value::Null)
        }
        "DELETE" => {
            check_allowed(params, &["force"])?;
            let force = bool_param(params, "force")?.unwrap_or(false);
            let set = load(fw, scope, name)?;
            if !set.entries.is_empty() && !force {
                return Err(ApiError::internal(format!("IPSet '{name}' is not empty")));
            }
            fw.file_mut(scope).ipsets.remove(name);
            fw.prune(scope);
            Ok(Value::Null)
        }
        _ => Err(super::not_implemented(method, scope, &["ipset", name])),
    }
}

fn handle_entry(
    fw: &mut Firewall,
    scope: &Scope,
    method: &Method,
    name: &str,
    cidr: &str,
    params: &Params,
) -> ApiResult<Value> {
    check_ip_or_cidr_or_alias(cidr).map_err(|e| format_error("cidr", &e))?;
    let no_such = || ApiError::param("cidr", "no such IP/Network");
    match method.as_str() {
        "GET" => {
            no_params(params)?;
            let set = load(fw, scope, name)?;
            let (list, _) = set.entries_json(&ctx(fw, scope));
            list.into_iter()
                .find(|e| e["cidr"] == cidr)
                .ok_or_else(no_such)
        }
        "PUT" => {
            check_allowed(params, &["comment", "digest", "nomatch"])?;
            let nomatch = bool_param(params, "nomatch")?.unwrap_or(false);
            let set = load(fw, scope, name)?;
            assert_digest(&set.entries_json(&ctx(fw, scope)).1, params.get("digest"))?;
            let pos = set
                .entries
                .iter()
                .position(|e| e.cidr == cidr)
                .ok_or_else(no_such)?;
            let entry = &mut fw
                .file_mut(scope)
                .ipsets
                .entry(name.to_owned())
                .or_default()
                .entries[pos];
            // PVE assigns both fields from the request: omitting one clears it.
            entry.nomatch = nomatch;
            entry.comment = file_comment(params.get("comment"));
            Ok(Value::Null)
        }
        "DELETE" => {
            check_allowed(params, &["digest"])?;
            let set = load(fw, scope, name)?;
            assert_digest(&set.entries_json(&ctx(fw, scope)).1, params.get("digest"))?;
            fw.file_mut(scope)
                .ipsets
                .entry(name.to_owned())
                .or_default()
                .entries
                .retain(|e| e.cidr != cidr);
            Ok(Value::Null)
        }
        _ => Err(super::not_implemented(
            method,
            scope,
            &["ipset", name, cidr],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::call;
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn sets_are_created_lower_case_renamed_and_deleted() {
        let mut fw = Firewall::new();
        let s = Scope::Cluster;
        call(
            &mut fw,
            &s,
            "POST",
            &["ipset"],
            &[("name", "Teachers"), ("comment", "exam")],
        )
        .expect("create");
        let list = call(&mut fw, &s, "GET", &["ipset"], &[]).expect("list");
        assert_eq!(list[0]["name"], "teachers");
        assert_eq!(list[0]["comment"], "exam");
        let dup = call(&mut fw, &s, "POST", &["ipset"], &[("name", "teachers")]).unwrap_err();
        assert_eq!(
            dup.errors.expect("param error")["name"],
            "IPSet 'teachers' already exists"
        );
        let missing = call(&mut fw, &s, "GET", &["ipset", "Teachers"], &[]).unwrap_err();
        assert_eq!(
            (missing.status.as_u16(), missing.message.as_str()),
            (500, "no such IPSet 'Teachers'")
        );

        let digest = list[0]["digest"].as_str().expect("digest").to_owned();
        let stale = call(
            &mut fw,
            &s,
            "POST",
            &["ipset"],
            &[("name", "staff"), ("rename", "teachers"), ("digest", "x")],
        )
        .unwrap_err();
        assert_eq!(
            stale.message,
            "detected modified configuration - file changed by other user? Try again."
        );
        call(
            &mut fw,
            &s,
            "POST",
            &["ipset"],
            &[
                ("name", "staff"),
                ("rename", "teachers"),
                ("digest", &digest),
            ],
        )
        .expect("rename");
        let list = call(&mut fw, &s, "GET", &["ipset"], &[]).expect("list");
        assert_eq!(list[0]["name"], "staff");
        assert_eq!(list[0]["comment"], "exam", "rename keeps the comment");
        let gone = call(
            &mut fw,
            &s,
            "POST",
            &["ipset"],
            &[("name", "x2"), ("rename", "teachers")],
        )
        .unwrap_err();
        assert_eq!(
            gone.errors.expect("param error")["name"],
            "IPSet 'teachers' does not exist"
        );

        call(
            &mut fw,
            &s,
            "POST",
            &["ipset", "staff"],
            &[("cidr", "10.0.0.1")],
        )
        .expect("add");
        let busy = call(&mut fw, &s, "DELETE", &["ipset", "staff"], &[]).unwrap_err();
        assert_eq!(busy.message, "IPSet 'staff' is not empty");
        call(
            &mut fw,
            &s,
            "DELETE",
            &["ipset", "staff"],
            &[("force", "1")],
        )
        .expect("forced delete");
        assert_eq!(
            call(&mut fw, &s, "GET", &["ipset"], &[]).expect("list"),
            json!([])
        );
    }

    #[test]
    fn entries_are_cleaned_deduplicated_and_updated() {
        let mut fw = Firewall::new();
        let s = Scope::Guest(101);
        call(&mut fw, &s, "POST", &["ipset"], &[("name", "lan")]).expect("create");
        call(
            &mut fw,
            &s,
            "POST",
            &["ipset", "lan"],
            &[("cidr", "10.1.2.3/24"), ("comment", "net")],
        )
        .expect("add");
        call(
            &mut fw,
            &s,
            "POST",
            &["ipset", "lan"],
            &[("cidr", "10.1.2.9/32"), ("nomatch", "1")],
        )
        .expect("add");
        let entries = call(&mut fw, &s, "GET", &["ipset", "lan"], &[]).expect("entries");
        assert_eq!(entries[0]["cidr"], "10.1.2.0/24");
        assert_eq!(entries[1]["cidr"], "10.1.2.9");
        assert_eq!(entries[1]["nomatch"], 1);
        let dup = call(
            &mut fw,
            &s,
            "POST",
            &["ipset", "lan"],
            &[("cidr", "10.1.2.0/24")],
        )
        .unwrap_err();
        assert_eq!(
            dup.errors.expect("param error")["cidr"],
            "address '10.1.2.0/24' already exists"
        );
        let zero = call(
            &mut fw,
            &s,
            "POST",
            &["ipset", "lan"],
            &[("cidr", "0.0.0.0/0")],
        )
        .unwrap_err();
        assert_eq!(
            zero.errors.expect("param error")["cidr"],
            "a zero prefix is not allowed in ipset entries"
        );
        let alias = call(
            &mut fw,
            &s,
            "POST",
            &["ipset", "lan"],
            &[("cidr", "gateway")],
        )
        .unwrap_err();
        assert_eq!(alias.message, "no such alias 'gateway'");

        // The slash of a CIDR may arrive unencoded, as two path segments.
        let one = call(&mut fw, &s, "GET", &["ipset", "lan", "10.1.2.0", "24"], &[]).expect("read");
        assert_eq!(one["comment"], "net");
        assert!(one["digest"].is_string());
        call(
            &mut fw,
            &s,
            "PUT",
            &["ipset", "lan", "10.1.2.0/24"],
            &[("nomatch", "1")],
        )
        .expect("update");
        let one = call(&mut fw, &s, "GET", &["ipset", "lan", "10.1.2.0/24"], &[]).expect("read");
        assert_eq!(one["nomatch"], 1);
        assert!(
            one.get("comment").is_none(),
            "PUT without comment clears it, as PVE does"
        );
        let missing = call(&mut fw, &s, "PUT", &["ipset", "lan", "10.9.9.9"], &[]).unwrap_err();
        assert_eq!(
            missing.errors.expect("param error")["cidr"],
            "no such IP/Network"
        );
        call(&mut fw, &s, "DELETE", &["ipset", "lan", "10.1.2.9"], &[]).expect("delete");
        let entries = call(&mut fw, &s, "GET", &["ipset", "lan"], &[]).expect("entries");
        assert_eq!(entries.as_array().expect("array").len(), 1);
    }

    #[test]
    fn membership_uses_most_specific_entry_and_nomatch() {
        let cluster = super::super::FwFile::default();
        let ctx = Ctx {
            cluster: &cluster,
            local: None,
        };
        let set = IpSet {
            comment: None,
            entries: vec![
                Entry {
                    cidr: "10.0.0.0/8".into(),
                    nomatch: false,
                    comment: None,
                },
                Entry {
                    cidr: "10.5.0.0/16".into(),
                    nomatch: true,
                    comment: None,
                },
                Entry {
                    cidr: "10.5.5.5".into(),
                    nomatch: false,
                    comment: None,
                },
            ],
        };
        assert!(set.contains(ip("10.1.1.1"), &ctx));
        assert!(!set.contains(ip("10.5.1.1"), &ctx));
        assert!(set.contains(ip("10.5.5.5"), &ctx));
        assert!(!set.contains(ip("192.168.1.1"), &ctx));
    }

    #[test]
    fn alias_entries_resolve_and_show_errors_when_the_alias_is_gone() {
        let mut fw = Firewall::new();
        let s = Scope::Cluster;
        call(
            &mut fw,
            &s,
            "POST",
            &["aliases"],
            &[("name", "teacher"), ("cidr", "10.10.0.1")],
        )
        .expect("alias");
        call(&mut fw, &s, "POST", &["ipset"], &[("name", "t")]).expect("set");
        call(&mut fw, &s, "POST", &["ipset", "t"], &[("cidr", "teacher")]).expect("alias entry");
        let ctx = Ctx {
            cluster: &fw.cluster,
            local: None,
        };
        assert!(fw.cluster.ipsets["t"].contains(ip("10.10.0.1"), &ctx));
        call(&mut fw, &s, "DELETE", &["aliases", "teacher"], &[]).expect("delete alias");
        let entries = call(&mut fw, &s, "GET", &["ipset", "t"], &[]).expect("entries");
        assert_eq!(entries[0]["errors"]["cidr"], "no such alias 'teacher'");
        let ctx = Ctx {
            cluster: &fw.cluster,
            local: None,
        };
        assert!(!fw.cluster.ipsets["t"].contains(ip("10.10.0.1"), &ctx));
    }
}
