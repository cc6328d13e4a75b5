//! Security groups (`[group name]` in `cluster.fw`): `/cluster/firewall/groups`,
//! `/groups/{group}` (its rules; DELETE removes an empty group) and `/groups/{group}/{pos}`
//! (`API2/Firewall/Groups.pm`, `GroupRules` in `Rules.pm`).
//!
//! Group names are lower-cased by PVE's parser; a rule naming a group with capitals
//! therefore points at nothing and compiles to an empty chain (B.11 #3).

use http::Method;
use serde_json::{json, Map, Value};

use super::rules::{self, Target};
use super::{
    assert_digest, check_allowed, digest, file_comment, no_params, required, Firewall, Group, Scope,
};
use crate::error::{ApiError, ApiResult, Params};

fn group_list(fw: &Firewall) -> (Vec<Value>, String) {
    digest::list_with_digest(
        fw.groups
            .iter()
            .map(|(name, g)| {
                let mut m = Map::new();
                m.insert("group".into(), json!(name));
                if let Some(c) = &g.comment {
                    m.insert("comment".into(), json!(c));
                }
                m
            })
            .collect(),
    )
}

/// `/_sim/state` rendering.
pub(super) fn state(fw: &Firewall) -> Value {
    Value::Object(
        fw.groups
            .iter()
            .map(|(name, g)| {
                let rules = rules::state_list(fw, Target::Group(name), &g.rules);
                (
                    name.clone(),
                    json!({ "comment": g.comment, "rules": rules }),
                )
            })
            .collect(),
    )
}

/// Dispatch; `rest` starts after `groups`.
pub(super) fn handle(
    fw: &mut Firewall,
    method: &Method,
    rest: &[&str],
    params: &Params,
) -> ApiResult<Value> {
    match rest {
        [] => match method.as_str() {
            "GET" => {
                no_params(params)?;
                Ok(Value::Array(group_list(fw).0))
            }
            "POST" => create_or_rename(fw, params),
            _ => Err(super::not_implemented(method, &Scope::Cluster, &["groups"])),
        },
        [name] if method == Method::DELETE => {
            no_params(params)?;
            let group = fw.groups.get(*name).ok_or_else(|| no_such(name))?;
            if !group.rules.is_empty() {
                return Err(ApiError::internal(format!(
                    "Security group '{name}' is not empty"
                )));
            }
            fw.groups.remove(*name);
            Ok(Value::Null)
        }
        [name] => rules::handle(fw, Target::Group(name), method, None, params, || {
            no_such(name)
        }),
        [name, pos] => rules::handle(fw, Target::Group(name), method, Some(pos), params, || {
            no_such(name)
        }),
        _ => Err(super::not_implemented(
            method,
            &Scope::Cluster,
            &[&["groups"], rest].concat(),
        )),
    }
}

fn no_such(name: &str) -> ApiError {
    ApiError::internal(format!("no such security group '{name}'"))
}

fn create_or_rename(fw: &mut Firewall, params: &Params) -> ApiResult<Value> {
    check_allowed(params, &["group", "comment", "rename", "digest"])?;
    let group = required(params, "group")?;
    let comment = params.get("comment");
    let key = group.to_lowercase();
    if let Some(rename) = params.get("rename").filter(|r| !r.is_empty()) {
        assert_digest(&group_list(fw).1, params.get("digest"))?;
        if !fw.groups.contains_key(rename.as_str()) {
            return Err(ApiError::param(
                "group",
                format!("Security group '{rename}' does not exist"),
            ));
        }
        if fw.groups.contains_key(group) && group != rename {
            return Err(ApiError::param(
                "group",
                format!("Security group '{group}' does already exist"),
            ));
        }
        let mut data = fw.groups.remove(rename.as_str()).unwrap_or_default();
        if comment.is_some() {
            data.comment = file_comment(comment);
        }
        fw.groups.insert(key, data);
        if group != rename {
            // PVE rewrites `GROUP old` in every host, guest and datacenter rule list to the
            // new name exactly as given (the group itself is read back lower-cased).
            let all = std::iter::once(&mut fw.cluster)
                .chain(fw.nodes.values_mut())
                .chain(fw.guests.values_mut());
            for file in all {
                for rule in &mut file.rules {
                    rule.rename_group(rename, group);
                }
            }
        }
    } else {
        if fw.groups.contains_key(group) {
            return Err(ApiError::param(
                "group",
                format!("Security group '{group}' already exists"),
            ));
        }
        // A capitalised twin of an existing group collapses into it on PVE's next read.
        fw.groups.entry(key).or_insert_with(|| Group {
            comment: file_comment(comment),
            rules: Vec::new(),
        });
    }
    Ok(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::super::tests::call;
    use super::*;

    #[test]
    fn create_list_rename_delete() {
        let mut fw = Firewall::new();
        let c = Scope::Cluster;
        call(
            &mut fw,
            &c,
            "POST",
            &["groups"],
            &[("group", "Iso-Student"), ("comment", "exam")],
        )
        .expect("create");
        let list = call(&mut fw, &c, "GET", &["groups"], &[]).expect("list");
        assert_eq!(
            list[0]["group"], "iso-student",
            "the parser lower-cases group names"
        );
        assert_eq!(list[0]["comment"], "exam");
        let dup = call(
            &mut fw,
            &c,
            "POST",
            &["groups"],
            &[("group", "iso-student")],
        )
        .unwrap_err();
        assert_eq!(
            dup.errors.expect("param error")["group"],
            "Security group 'iso-student' already exists"
        );

        call(
            &mut fw,
            &c,
            "POST",
            &["groups", "iso-student"],
            &[("type", "in"), ("action", "DROP"), ("enable", "1")],
        )
        .expect("rule in group");
        call(
            &mut fw,
            &Scope::Guest(105),
            "POST",
            &["rules"],
            &[("type", "group"), ("action", "iso-student")],
        )
        .expect("reference");
        let digest = list[0]["digest"].as_str().expect("digest").to_owned();
        call(
            &mut fw,
            &c,
            "POST",
            &["groups"],
            &[
                ("group", "iso"),
                ("rename", "iso-student"),
                ("digest", &digest),
            ],
        )
        .expect("rename");
        let list = call(&mut fw, &c, "GET", &["groups"], &[]).expect("list");
        assert_eq!(list[0]["group"], "iso");
        let r = call(&mut fw, &Scope::Guest(105), "GET", &["rules", "0"], &[]).expect("rule");
        assert_eq!(r["action"], "iso", "references follow the rename");
        let rules = call(&mut fw, &c, "GET", &["groups", "iso"], &[]).expect("group rules");
        assert_eq!(rules[0]["action"], "DROP");

        let busy = call(&mut fw, &c, "DELETE", &["groups", "iso"], &[]).unwrap_err();
        assert_eq!(
            (busy.status.as_u16(), busy.message.as_str()),
            (500, "Security group 'iso' is not empty")
        );
        call(&mut fw, &c, "DELETE", &["groups", "iso", "0"], &[]).expect("delete rule");
        call(&mut fw, &c, "DELETE", &["groups", "iso"], &[]).expect("delete group");
        let gone = call(&mut fw, &c, "GET", &["groups", "iso"], &[]).unwrap_err();
        assert_eq!(gone.message, "no such security group 'iso'");
        let gone = call(
            &mut fw,
            &c,
            "POST",
            &["groups", "iso"],
            &[("type", "in"), ("action", "DROP")],
        )
        .unwrap_err();
        assert_eq!(gone.message, "no such security group 'iso'");
    }

    #[test]
    fn rename_errors() {
        let mut fw = Firewall::new();
        let c = Scope::Cluster;
        call(&mut fw, &c, "POST", &["groups"], &[("group", "a1")]).expect("a1");
        call(&mut fw, &c, "POST", &["groups"], &[("group", "b1")]).expect("b1");
        let e = call(
            &mut fw,
            &c,
            "POST",
            &["groups"],
            &[("group", "c1"), ("rename", "zz")],
        )
        .unwrap_err();
        assert_eq!(
            e.errors.expect("param error")["group"],
            "Security group 'zz' does not exist"
        );
        let e = call(
            &mut fw,
            &c,
            "POST",
            &["groups"],
            &[("group", "b1"), ("rename", "a1")],
        )
        .unwrap_err();
        assert_eq!(
            e.errors.expect("param error")["group"],
            "Security group 'b1' does already exist"
        );
        let e = call(
            &mut fw,
            &c,
            "POST",
            &["groups"],
            &[("group", "c1"), ("rename", "a1"), ("digest", "x")],
        )
        .unwrap_err();
        assert_eq!(e.status.as_u16(), 500);
        // rename == group only updates the comment.
        call(
            &mut fw,
            &c,
            "POST",
            &["groups"],
            &[("group", "a1"), ("rename", "a1"), ("comment", "new")],
        )
        .expect("comment");
        assert_eq!(
            call(&mut fw, &c, "GET", &["groups"], &[]).expect("list")[0]["comment"],
            "new"
        );
    }
}
