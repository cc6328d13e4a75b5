//! `[ALIASES]` of `cluster.fw` and `<vmid>.fw`: `…/firewall/aliases[/{name}]`
//! (`API2/Firewall/Aliases.pm`). Aliases are keyed by their lower-cased name; the
//! spelling given at creation is what the API shows.

use http::Method;
use serde_json::{json, Map, Value};

use super::address::{check_ip_or_cidr, normalize_cidr, parse_net, Net};
use super::{
    assert_digest, check_allowed, digest, file_comment, format_error, no_params, required,
    Firewall, Scope,
};
use crate::error::{ApiError, ApiResult, Params};

/// One alias: a name for an address or network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Alias {
    /// The name as given (lookups are case-insensitive).
    pub name: String,
    /// Address or network; a `/32` or `/128` suffix is dropped as the parser does.
    pub cidr: String,
    pub comment: Option<String>,
}

impl Alias {
    /// The network the alias stands for.
    pub fn net(&self) -> Option<Net> {
        parse_net(&self.cidr)
    }

    /// 4 or 6, derived from the address as PVE's parser does.
    pub fn ipversion(&self) -> Option<u8> {
        self.net().map(|n| n.version())
    }

    fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("cidr".into(), json!(self.cidr));
        if let Some(c) = &self.comment {
            m.insert("comment".into(), json!(c));
        }
        if let Some(v) = self.ipversion() {
            m.insert("ipversion".into(), json!(v));
        }
        m
    }
}

type Aliases = std::collections::BTreeMap<String, Alias>;

fn list(aliases: &Aliases) -> (Vec<Value>, String) {
    digest::list_with_digest(aliases.values().map(Alias::to_json).collect())
}

/// `/_sim/state` rendering.
pub(super) fn state(aliases: &Aliases) -> Value {
    Value::Array(
        aliases
            .values()
            .map(|a| Value::Object(a.to_json()))
            .collect(),
    )
}

/// Dispatch `aliases` (`name` = None) and `aliases/{name}`.
pub(super) fn handle(
    fw: &mut Firewall,
    scope: &Scope,
    method: &Method,
    name: Option<&str>,
    params: &Params,
) -> ApiResult<Value> {
    let empty = Aliases::new();
    let current = fw.file(scope).map_or(&empty, |f| &f.aliases);
    match (name, method.as_str()) {
        (None, "GET") => {
            no_params(params)?;
            Ok(Value::Array(list(current).0))
        }
        (None, "POST") => {
            check_allowed(params, &["name", "cidr", "comment"])?;
            let name = required(params, "name")?;
            let cidr = cidr_param(params)?;
            let key = name.to_lowercase();
            if current.contains_key(&key) {
                return Err(ApiError::param(
                    "name",
                    format!("alias '{name}' already exists"),
                ));
            }
            let alias = Alias {
                name: name.to_owned(),
                cidr,
                comment: file_comment(params.get("comment")),
            };
            fw.file_mut(scope).aliases.insert(key, alias);
            Ok(Value::Null)
        }
        (Some(name), "GET") => {
            no_params(params)?;
            current
                .get(&name.to_lowercase())
                .map(|a| Value::Object(a.to_json()))
                .ok_or_else(|| ApiError::param("name", "no such alias"))
        }
        (Some(name), "PUT") => {
            check_allowed(params, &["cidr", "comment", "digest", "rename"])?;
            let cidr = cidr_param(params)?;
            assert_digest(&list(current).1, params.get("digest"))?;
            let key = name.to_lowercase();
            if !current.contains_key(&key) {
                return Err(ApiError::param("name", "no such alias"));
            }
            let mut alias = Alias {
                name: name.to_owned(),
                cidr,
                comment: file_comment(params.get("comment")),
            };
            let mut new_key = key.clone();
            if let Some(rename) = params.get("rename").filter(|r| !r.is_empty()) {
                let rename_key = rename.to_lowercase();
                if rename_key != key {
                    if current.contains_key(&rename_key) {
                        return Err(ApiError::param(
                            "name",
                            format!("alias '{rename}' already exists"),
                        ));
                    }
                    alias.name = rename.clone();
                    new_key = rename_key;
                }
            }
            let aliases = &mut fw.file_mut(scope).aliases;
            aliases.remove(&key);
            aliases.insert(new_key, alias);
            Ok(Value::Null)
        }
        (Some(name), "DELETE") => {
            check_allowed(params, &["digest"])?;
            assert_digest(&list(current).1, params.get("digest"))?;
            let key = name.to_lowercase();
            if current.contains_key(&key) {
                fw.file_mut(scope).aliases.remove(&key);
                fw.prune(scope);
            }
            Ok(Value::Null)
        }
        _ => Err(super::not_implemented(
            method,
            scope,
            &[&["aliases"], name.as_slice()].concat(),
        )),
    }
}

/// The required `cidr` (format `IPorCIDR`), normalised as the parser reads it back.
fn cidr_param(params: &Params) -> ApiResult<String> {
    let cidr = required(params, "cidr")?;
    check_ip_or_cidr(cidr).map_err(|e| format_error("cidr", &e))?;
    Ok(normalize_cidr(cidr, false))
}

#[cfg(test)]
mod tests {
    use super::super::tests::call;
    use super::*;

    #[test]
    fn create_list_read_update_rename_delete() {
        let mut fw = Firewall::new();
        let s = Scope::Cluster;
        call(
            &mut fw,
            &s,
            "POST",
            &["aliases"],
            &[
                ("name", "Teacher"),
                ("cidr", "10.10.0.1/32"),
                ("comment", " t "),
            ],
        )
        .expect("create");
        let list = call(&mut fw, &s, "GET", &["aliases"], &[]).expect("list");
        assert_eq!(list[0]["name"], "Teacher");
        assert_eq!(list[0]["cidr"], "10.10.0.1");
        assert_eq!(list[0]["ipversion"], 4);
        assert_eq!(list[0]["comment"], "t");
        let digest = list[0]["digest"].as_str().expect("digest").to_owned();

        // Lookups are case-insensitive; duplicates by lower-cased name are rejected.
        let one = call(&mut fw, &s, "GET", &["aliases", "teacher"], &[]).expect("read");
        assert_eq!(one["cidr"], "10.10.0.1");
        assert!(one.get("digest").is_none());
        let dup = call(
            &mut fw,
            &s,
            "POST",
            &["aliases"],
            &[("name", "TEACHER"), ("cidr", "10.0.0.2")],
        )
        .unwrap_err();
        assert_eq!(
            dup.errors.expect("param error")["name"],
            "alias 'TEACHER' already exists"
        );

        let stale = call(
            &mut fw,
            &s,
            "PUT",
            &["aliases", "teacher"],
            &[("cidr", "10.0.0.3"), ("digest", "0000")],
        )
        .unwrap_err();
        assert_eq!(stale.status, 500);
        call(
            &mut fw,
            &s,
            "PUT",
            &["aliases", "teacher"],
            &[
                ("cidr", "10.10.0.2"),
                ("rename", "lehrer"),
                ("digest", &digest),
            ],
        )
        .expect("rename");
        let list = call(&mut fw, &s, "GET", &["aliases"], &[]).expect("list");
        assert_eq!(list.as_array().expect("array").len(), 1);
        assert_eq!(list[0]["name"], "lehrer");
        assert_eq!(list[0]["cidr"], "10.10.0.2");
        assert!(
            list[0].get("comment").is_none(),
            "PUT without comment drops it, as PVE does"
        );

        let missing = call(&mut fw, &s, "GET", &["aliases", "teacher"], &[]).unwrap_err();
        assert_eq!(
            missing.errors.expect("param error")["name"],
            "no such alias"
        );
        call(&mut fw, &s, "DELETE", &["aliases", "lehrer"], &[]).expect("delete");
        assert_eq!(
            call(&mut fw, &s, "GET", &["aliases"], &[]).expect("list"),
            json!([])
        );
    }

    #[test]
    fn cidr_format_is_checked() {
        let mut fw = Firewall::new();
        let e = call(
            &mut fw,
            &Scope::Guest(100),
            "POST",
            &["aliases"],
            &[("name", "x1"), ("cidr", "10.0.0")],
        )
        .unwrap_err();
        assert_eq!(
            e.errors.expect("param error")["cidr"],
            "invalid format - value does not look like a valid IP address or CIDR network\n"
        );
        assert!(fw.guests.is_empty(), "a failed write creates no file");
    }
}
