//! What an endpoint's `permissions` object asks of a caller, as data.
//!
//! PVE's `check_api2_permissions` reads a small language (`perm`, `perm-modify`,
//! `userid-param`, `userid-group`, `and`, `or`; or `user => 'all'`); [`Rule`] is that
//! language parsed, and [`Rule::needs`] turns it into the privileges a caller needs for one
//! request with given parameters, choosing one branch of each `or` (the one the request's
//! parameters allow, else the first). [`privilege_set`] folds many requests' needs into the
//! smallest set of privilege names that satisfies them all: every privilege an `all` check
//! names, and for an `any` check the first of its privileges unless the set already holds
//! one of them.
//!
//! ```
//! use std::collections::BTreeSet;
//!
//! let schema = pve_schema::schema();
//! let clone = schema.endpoint("POST", "/nodes/{node}/qemu/{vmid}/clone").unwrap();
//! let sent: BTreeSet<String> = ["newid", "pool", "name"].map(String::from).into();
//! let needs = clone.permission_rule().unwrap().needs(&sent);
//! assert_eq!(needs[0].path, "/vms/{vmid}");
//! assert_eq!(needs[0].privs, ["VM.Clone"]);
//! let set = pve_schema::privilege_set(&needs);
//! assert!(set.contains("VM.Clone") && set.contains("VM.Allocate"));
//! ```

use std::collections::BTreeSet;

use serde_json::Value;

use crate::model::Endpoint;
use crate::Error;

/// One check of the permission language.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// `user => 'all'` (any logged-in caller) or `'world'` (anyone): no privilege needed.
    Anyone,
    /// No `permissions` object: only `root@pam` may call it.
    RootOnly,
    /// `['perm', PATH, [PRIVS], 'any', 1, 'require_param', P]`.
    Perm {
        /// ACL path template, e.g. `/vms/{vmid}`.
        path: String,
        /// Privileges named.
        privs: Vec<String>,
        /// One of them suffices (else all are needed).
        any: bool,
        /// The check only counts when the request carries this parameter.
        require_param: Option<String>,
    },
    /// `['perm-modify', PATH]`: `Permissions.Modify` on the path, or the allocate privilege
    /// of the object type (`VM.Allocate` on `/vms/…`, `Pool.Allocate` on `/pool/…`,
    /// `Datastore.Allocate` on `/storage/…`).
    PermModify {
        /// ACL path template, usually `{path}` (the request's `path` parameter).
        path: String,
    },
    /// `['userid-param', 'self']`: the caller is the user the request names.
    UseridSelf,
    /// `['userid-param', PRIV]`: the privilege on the realm of the named user.
    UseridRealm {
        /// Usually `Realm.AllocateUser`.
        privilege: String,
    },
    /// `['userid-group', [PRIVS], …]`: one of the privileges on `/access/groups` (or on a
    /// group of the named user).
    UseridGroup {
        /// Privileges, one suffices.
        privs: Vec<String>,
    },
    /// All of them.
    And(Vec<Rule>),
    /// One of them.
    Or(Vec<Rule>),
}

/// Privileges needed on one ACL path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Need {
    /// ACL path template, e.g. `/vms/{vmid}`, `/pool/{pool}`, `/access/realm/{realm}`.
    pub path: String,
    /// The privileges.
    pub privs: Vec<String>,
    /// One of [`Need::privs`] suffices (else all are needed).
    pub any: bool,
}

impl Endpoint {
    /// Privileges the `permissions` description asks for beyond its check, in the form
    /// `You also need 'Datastore.AllocateSpace' on any used storage and 'SDN.Use' on any
    /// used bridge/vnet` (clone): each quoted privilege with the ACL path template of the
    /// object the text names (`/storage/{storage}` for storage,
    /// `/sdn/zones/localnetwork/{bridge}` for a bridge, else `/`).
    pub fn also_needed(&self) -> Vec<Need> {
        let Some(text) = self
            .permissions
            .as_ref()
            .and_then(|p| p.get("description"))
            .and_then(Value::as_str)
        else {
            return Vec::new();
        };
        let Some(start) = text.find("also need") else {
            return Vec::new();
        };
        let tail = &text[start..];
        let mut out = Vec::new();
        // 'Priv' on WORDS ('…' quoted parts alternate with the text between them).
        let parts: Vec<&str> = tail.split('\'').collect();
        for (i, name) in parts.iter().enumerate().skip(1).step_by(2) {
            if !name.contains('.') || name.contains(' ') {
                continue;
            }
            let after = parts.get(i + 1).copied().unwrap_or_default();
            let path = if after.contains("storage") {
                "/storage/{storage}"
            } else if after.contains("bridge") {
                "/sdn/zones/localnetwork/{bridge}"
            } else {
                "/"
            };
            out.push(Need {
                path: path.to_owned(),
                privs: vec![(*name).to_owned()],
                any: false,
            });
        }
        out
    }

    /// The endpoint's `permissions` object parsed; an error names the endpoint and the part
    /// of the language that is not understood.
    pub fn permission_rule(&self) -> Result<Rule, Error> {
        let ctx = format!("{} {}", self.method, self.path);
        let Some(perms) = &self.permissions else {
            return Ok(Rule::RootOnly);
        };
        if let Some(user) = perms.get("user").and_then(Value::as_str) {
            if matches!(user, "all" | "world") {
                return Ok(Rule::Anyone);
            }
        }
        match perms.get("check") {
            Some(check) => parse_check(&ctx, check),
            None => Ok(Rule::RootOnly),
        }
    }
}

fn strings(ctx: &str, v: Option<&Value>) -> Result<Vec<String>, Error> {
    v.and_then(Value::as_array)
        .ok_or_else(|| Error::Schema(format!("{ctx}: a check lacks its privilege list")))?
        .iter()
        .map(|p| {
            p.as_str()
                .map(str::to_owned)
                .ok_or_else(|| Error::Schema(format!("{ctx}: a privilege is not a string")))
        })
        .collect()
}

fn truthy(v: &Value) -> bool {
    v.as_i64() == Some(1) || v.as_bool() == Some(true) || v.as_str() == Some("1")
}

fn parse_check(ctx: &str, check: &Value) -> Result<Rule, Error> {
    let items = check
        .as_array()
        .ok_or_else(|| Error::Schema(format!("{ctx}: check is not a list")))?;
    let op = items.first().and_then(Value::as_str).unwrap_or_default();
    let rest = items.get(1..).unwrap_or_default();
    match op {
        "and" | "or" => {
            let subs = rest
                .iter()
                .map(|c| parse_check(ctx, c))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if op == "and" {
                Rule::And(subs)
            } else {
                Rule::Or(subs)
            })
        }
        "perm" => {
            let path = rest
                .first()
                .and_then(Value::as_str)
                .ok_or_else(|| Error::Schema(format!("{ctx}: perm check without a path")))?;
            let privs = strings(ctx, rest.get(1))?;
            let mut any = false;
            let mut require_param = None;
            for pair in rest.get(2..).unwrap_or_default().chunks(2) {
                match (pair.first().and_then(Value::as_str), pair.get(1)) {
                    (Some("any"), Some(v)) => any = truthy(v),
                    (Some("require_param"), Some(v)) => {
                        require_param = v.as_str().map(str::to_owned);
                    }
                    _ => {
                        return Err(Error::Unsupported(format!(
                            "{ctx}: perm check option {pair:?} (known: any, require_param)"
                        )))
                    }
                }
            }
            Ok(Rule::Perm {
                path: path.to_owned(),
                privs,
                any,
                require_param,
            })
        }
        "perm-modify" => Ok(Rule::PermModify {
            path: rest
                .first()
                .and_then(Value::as_str)
                .unwrap_or("{path}")
                .to_owned(),
        }),
        "userid-param" => match rest.first().and_then(Value::as_str) {
            Some("self") => Ok(Rule::UseridSelf),
            Some(p) => Ok(Rule::UseridRealm {
                privilege: p.to_owned(),
            }),
            None => Err(Error::Schema(format!(
                "{ctx}: userid-param without argument"
            ))),
        },
        "userid-group" => Ok(Rule::UseridGroup {
            privs: strings(ctx, rest.first())?,
        }),
        other => Err(Error::Unsupported(format!(
            "{ctx}: permission check '{other}' (known: and, or, perm, perm-modify, \
             userid-param, userid-group)"
        ))),
    }
}

/// The allocate privilege `perm-modify` accepts instead of `Permissions.Modify` on a path.
fn allocate_for(path: &str) -> Option<&'static str> {
    if path.starts_with("/vms") {
        Some("VM.Allocate")
    } else if path.starts_with("/pool") {
        Some("Pool.Allocate")
    } else if path.starts_with("/storage") {
        Some("Datastore.Allocate")
    } else {
        None
    }
}

impl Rule {
    /// What a request carrying the parameters `sent` needs. An `or` takes its first branch
    /// the request can satisfy without being the named user itself (`userid-param self`
    /// holds only for one's own account); `perm-modify` on `{path}` becomes the path
    /// template `{path}` (the caller substitutes the request's ACL path).
    pub fn needs(&self, sent: &BTreeSet<String>) -> Vec<Need> {
        let mut out = Vec::new();
        self.collect(sent, &mut out);
        out
    }

    fn usable(&self, sent: &BTreeSet<String>) -> bool {
        match self {
            Rule::UseridSelf | Rule::RootOnly => false,
            Rule::Perm {
                require_param: Some(p),
                ..
            } => sent.contains(p),
            Rule::And(subs) => subs.iter().all(|s| s.usable(sent)),
            Rule::Or(subs) => subs.iter().any(|s| s.usable(sent)),
            _ => true,
        }
    }

    fn collect(&self, sent: &BTreeSet<String>, out: &mut Vec<Need>) {
        match self {
            Rule::Anyone | Rule::RootOnly | Rule::UseridSelf => {}
            Rule::Perm {
                path, privs, any, ..
            } => out.push(Need {
                path: path.clone(),
                privs: privs.clone(),
                any: *any,
            }),
            Rule::PermModify { path } => {
                let mut privs = vec!["Permissions.Modify".to_owned()];
                privs.extend(allocate_for(path).map(str::to_owned));
                out.push(Need {
                    path: path.clone(),
                    privs,
                    any: true,
                });
            }
            Rule::UseridRealm { privilege } => out.push(Need {
                path: "/access/realm/{realm}".to_owned(),
                privs: vec![privilege.clone()],
                any: false,
            }),
            Rule::UseridGroup { privs } => out.push(Need {
                path: "/access/groups".to_owned(),
                privs: privs.clone(),
                any: true,
            }),
            Rule::And(subs) => {
                for s in subs {
                    s.collect(sent, out);
                }
            }
            Rule::Or(subs) => {
                if let Some(first) = subs.iter().find(|s| s.usable(sent)).or(subs.first()) {
                    first.collect(sent, out);
                }
            }
        }
    }
}

/// The smallest set of privilege names that satisfies every need regardless of path (what
/// a role assigned once, high enough to propagate to every path, must hold): all
/// privileges of `all` needs, then, in order, for each `any` need already satisfied by the
/// set nothing, else its first privilege.
pub fn privilege_set(needs: &[Need]) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = needs
        .iter()
        .filter(|n| !n.any || n.privs.len() == 1)
        .flat_map(|n| n.privs.iter().cloned())
        .collect();
    for n in needs.iter().filter(|n| n.any && n.privs.len() > 1) {
        if !n.privs.iter().any(|p| set.contains(p)) {
            set.extend(n.privs.first().cloned());
        }
    }
    set
}

/// Is `need` met by the privileges `have` (of the need's path)?
pub fn satisfied(need: &Need, have: &BTreeSet<String>) -> bool {
    if need.any {
        need.privs.iter().any(|p| have.contains(p))
    } else {
        need.privs.iter().all(|p| have.contains(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(p: &[&str]) -> BTreeSet<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn every_endpoint_of_the_extract_has_a_rule_the_parser_reads() {
        for ep in crate::schema().endpoints() {
            ep.permission_rule()
                .unwrap_or_else(|e| panic!("{} {}: {e}", ep.method, ep.path));
        }
    }

    #[test]
    fn clone_with_a_pool_may_use_either_branch_and_takes_the_first() {
        let ep = crate::schema()
            .endpoint("POST", "/nodes/{node}/qemu/{vmid}/clone")
            .unwrap();
        let rule = ep.permission_rule().unwrap();
        let needs = rule.needs(&sent(&["newid", "pool"]));
        assert_eq!(
            needs,
            vec![
                Need {
                    path: "/vms/{vmid}".into(),
                    privs: vec!["VM.Clone".into()],
                    any: false
                },
                Need {
                    path: "/vms/{newid}".into(),
                    privs: vec!["VM.Allocate".into()],
                    any: false
                },
            ]
        );
    }

    #[test]
    fn an_or_skips_branches_the_request_cannot_satisfy() {
        let rule = Rule::Or(vec![
            Rule::UseridSelf,
            Rule::Perm {
                path: "/pool/{pool}".into(),
                privs: vec!["X".into()],
                any: false,
                require_param: Some("pool".into()),
            },
            Rule::UseridGroup {
                privs: vec!["User.Modify".into()],
            },
        ]);
        assert_eq!(rule.needs(&sent(&[]))[0].path, "/access/groups");
        assert_eq!(rule.needs(&sent(&["pool"]))[0].path, "/pool/{pool}");
        // Nothing usable: the first branch (here: none needed, as for one's own account).
        assert!(Rule::Or(vec![Rule::UseridSelf])
            .needs(&sent(&[]))
            .is_empty());
    }

    #[test]
    fn the_set_takes_all_of_all_needs_and_one_of_each_unmet_any() {
        let n = |privs: &[&str], any| Need {
            path: "/".into(),
            privs: privs.iter().map(|s| (*s).to_owned()).collect(),
            any,
        };
        let needs = [
            n(&["A", "B"], true),
            n(&["C", "D"], false),
            n(&["D", "E"], true),
            n(&["F"], true),
        ];
        let set: Vec<String> = privilege_set(&needs).into_iter().collect();
        assert_eq!(set, ["A", "C", "D", "F"]);
        assert!(satisfied(&needs[0], &sent(&["B"])));
        assert!(!satisfied(&needs[1], &sent(&["C"])));
    }

    #[test]
    fn clone_also_needs_storage_space_and_the_bridge() {
        let also = crate::schema()
            .endpoint("POST", "/nodes/{node}/qemu/{vmid}/clone")
            .unwrap()
            .also_needed();
        let got: Vec<(&str, &str)> = also
            .iter()
            .map(|n| (n.path.as_str(), n.privs[0].as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("/storage/{storage}", "Datastore.AllocateSpace"),
                ("/sdn/zones/localnetwork/{bridge}", "SDN.Use")
            ]
        );
        let start = crate::schema()
            .endpoint("POST", "/nodes/{node}/qemu/{vmid}/status/start")
            .unwrap();
        assert!(start.also_needed().is_empty());
    }

    #[test]
    fn perm_modify_accepts_the_allocate_privilege_of_the_object() {
        let rule = crate::schema()
            .endpoint("PUT", "/access/acl")
            .unwrap()
            .permission_rule()
            .unwrap();
        assert_eq!(
            rule,
            Rule::PermModify {
                path: "{path}".into()
            }
        );
        let needs = Rule::PermModify {
            path: "/vms/{vmid}".into(),
        }
        .needs(&sent(&[]));
        assert_eq!(needs[0].privs, ["Permissions.Modify", "VM.Allocate"]);
        assert!(needs[0].any);
    }
}
