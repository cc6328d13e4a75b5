//! The `/access/…` handlers: users, tokens, groups, roles, ACL, password, permissions.
//!
//! Every write goes through [`user_cfg_write`], which holds the cluster-wide `user.cfg`
//! lock for a simulated pmxcfs write; `/_sim/state` reports the most writers ever seen
//! waiting for it at once, so tests can prove a client serialises its writes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::{
    all_privs, builtin_roles, check, normalize_path, permissions, Group, Principal, Token, UgType,
    User, ROOT,
};
use crate::error::{ApiError, ApiResult};
use crate::routing::Req;
use crate::state::{Shared, SimState};
use crate::Secret;

/// Simulated seconds one `user.cfg` write holds the lock.
const USER_CFG_WRITE: f64 = 0.05;

/// Run `f` as one `user.cfg` write: wait for the lock, hold it for the write.
pub(crate) async fn user_cfg_write<T>(
    sh: &Arc<Shared>,
    f: impl FnOnce(&mut SimState) -> ApiResult<T>,
) -> ApiResult<T> {
    let waiting = sh.user_cfg_waiting.fetch_add(1, Ordering::SeqCst) + 1;
    {
        let mut st = sh.lock();
        st.user_cfg_peak = st.user_cfg_peak.max(waiting);
    }
    let guard = sh.user_cfg.lock().await;
    sh.sleep(USER_CFG_WRITE).await;
    let out = {
        let mut st = sh.lock();
        let out = f(&mut st);
        if out.is_ok() {
            st.user_cfg_writes += 1;
        }
        out
    };
    drop(guard);
    sh.user_cfg_waiting.fetch_sub(1, Ordering::SeqCst);
    out
}

fn pp<'a>(r: &'a Req<'_>, key: &str) -> &'a str {
    r.pp.get(key)
        .map(String::as_str)
        .or_else(|| r.param(key))
        .unwrap_or_default()
}

fn split_list(v: &str) -> Vec<String> {
    v.split([',', ';', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `pve-userid`: `name@realm`, name without whitespace, `:` or `/`, realm a word.
pub(crate) fn valid_userid(u: &str) -> bool {
    let Some((name, realm)) = u.rsplit_once('@') else {
        return false;
    };
    !name.is_empty()
        && !name.contains(|c: char| c.is_whitespace() || c == ':' || c == '/')
        && valid_word(realm)
        && u.len() <= 64
}

/// `[A-Za-z][A-Za-z0-9\.\-_]+`.
fn valid_word(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic())
        && s.len() >= 2
        && c.all(|x| x.is_ascii_alphanumeric() || matches!(x, '.' | '-' | '_'))
}

fn no_user(userid: &str) -> ApiError {
    ApiError::internal(format!("no such user ('{userid}')"))
}

fn check_realm(userid: &str) -> ApiResult<()> {
    let realm = userid.rsplit_once('@').map_or("", |(_, r)| r);
    if matches!(realm, "pve" | "pam") {
        Ok(())
    } else {
        Err(ApiError::internal(format!(
            "domain '{realm}' does not exist"
        )))
    }
}

fn user_json(userid: &str, u: &User, full: bool, as_list: bool) -> Value {
    let mut m = Map::new();
    if as_list {
        m.insert("userid".into(), json!(userid));
        let realm = userid.rsplit_once('@').map_or("", |(_, r)| r);
        m.insert("realm-type".into(), json!(realm));
    }
    m.insert("enable".into(), json!(u8::from(u.enable)));
    m.insert("expire".into(), json!(u.expire));
    for (k, v) in [
        ("firstname", &u.firstname),
        ("lastname", &u.lastname),
        ("email", &u.email),
        ("comment", &u.comment),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    if as_list {
        if !u.groups.is_empty() {
            let g: Vec<&str> = u.groups.iter().map(String::as_str).collect();
            m.insert("groups".into(), json!(g.join(",")));
        }
        if full {
            let tokens: Vec<Value> = u
                .tokens
                .iter()
                .map(|(id, t)| {
                    let mut v = token_json(t);
                    v["tokenid"] = json!(id);
                    v
                })
                .collect();
            m.insert("tokens".into(), json!(tokens));
        }
    } else {
        m.insert("groups".into(), json!(u.groups));
        let tokens: Map<String, Value> = u
            .tokens
            .iter()
            .map(|(id, t)| (id.clone(), token_json(t)))
            .collect();
        m.insert("tokens".into(), Value::Object(tokens));
    }
    Value::Object(m)
}

fn token_json(t: &Token) -> Value {
    let mut m = Map::new();
    if let Some(c) = &t.comment {
        m.insert("comment".into(), json!(c));
    }
    m.insert("expire".into(), json!(t.expire));
    m.insert("privsep".into(), json!(u8::from(t.privsep)));
    Value::Object(m)
}

/// May the caller see user `userid` in lists (`User.Modify` or `Sys.Audit` on
/// `/access/groups` or one of the user's groups; always themselves)?
fn may_see_user(st: &SimState, p: &Principal, userid: &str, u: &User) -> bool {
    let privs = ["User.Modify", "Sys.Audit"];
    let own = match p {
        Principal::Token { user, .. } => user == userid,
        other => other.name() == userid,
    };
    own || check(st, p, "/access/groups", &privs, true).is_ok()
        || u.groups
            .iter()
            .any(|g| check(st, p, &format!("/access/groups/{g}"), &privs, true).is_ok())
}

/// `GET /access/users`.
pub(crate) fn list_users(sh: &Shared, r: &Req<'_>) -> Value {
    let st = sh.lock();
    let p = Principal::of(r.caller);
    let enabled = r.param("enabled");
    let full = r.flag("full");
    let items: Vec<Value> = st
        .access
        .users
        .iter()
        .filter(|(id, u)| may_see_user(&st, &p, id, u))
        .filter(|(_, u)| enabled.is_none_or(|e| (e == "1") == u.enable))
        .map(|(id, u)| user_json(id, u, full, true))
        .collect();
    Value::Array(items)
}

/// `GET /access/users/{userid}`.
pub(crate) fn get_user(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let userid = pp(r, "userid");
    let st = sh.lock();
    let u = st.access.users.get(userid).ok_or_else(|| no_user(userid))?;
    Ok(user_json(userid, u, true, false))
}

fn apply_user_fields(st: &SimState, u: &mut User, r: &Req<'_>, append: bool) -> ApiResult<()> {
    if let Some(v) = r.param("enable") {
        u.enable = v == "1";
    }
    if let Some(v) = r.param("expire") {
        u.expire = v.parse().unwrap_or(0);
    }
    for (k, slot) in [
        ("firstname", &mut u.firstname),
        ("lastname", &mut u.lastname),
        ("email", &mut u.email),
        ("comment", &mut u.comment),
    ] {
        if let Some(v) = r.param(k) {
            *slot = (!v.is_empty()).then(|| v.to_owned());
        }
    }
    if let Some(groups) = r.param("groups") {
        let list = split_list(groups);
        for g in &list {
            if !st.access.groups.contains_key(g) {
                return Err(ApiError::internal(format!("no such group '{g}'")));
            }
        }
        if !append {
            u.groups.clear();
        }
        u.groups.extend(list);
    }
    Ok(())
}

/// `POST /access/users`.
pub(crate) async fn create_user(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let userid = pp(r, "userid").to_owned();
    if !valid_userid(&userid) {
        return Err(ApiError::param(
            "userid",
            format!("value '{userid}' does not look like a valid user name"),
        ));
    }
    user_cfg_write(sh, |st| {
        check_realm(&userid)?;
        if st.access.users.contains_key(&userid) {
            return Err(ApiError::internal(format!(
                "create user failed: user '{userid}' already exists"
            )));
        }
        let mut u = User::new();
        apply_user_fields(st, &mut u, r, false)?;
        if let Some(pw) = r.param("password") {
            u.password = Some(Secret::new(pw));
        }
        st.access.users.insert(userid.clone(), u);
        Ok(Value::Null)
    })
    .await
}

/// `PUT /access/users/{userid}`.
pub(crate) async fn update_user(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let userid = pp(r, "userid").to_owned();
    let append = r.flag("append");
    if append && r.param("groups").is_none() {
        return Err(ApiError::param("append", "missing parameter 'groups'"));
    }
    user_cfg_write(sh, |st| {
        let mut u = st
            .access
            .users
            .get(&userid)
            .cloned()
            .ok_or_else(|| no_user(&userid))?;
        apply_user_fields(st, &mut u, r, append)?;
        st.access.users.insert(userid.clone(), u);
        Ok(Value::Null)
    })
    .await
}

fn drop_acl_of(st: &mut SimState, kind: UgType, ugid: &str) {
    for entries in st.access.acl.values_mut() {
        entries.remove(&(kind, ugid.to_owned()));
    }
    st.access.acl.retain(|_, e| !e.is_empty());
}

/// `DELETE /access/users/{userid}`.
pub(crate) async fn delete_user(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let userid = pp(r, "userid").to_owned();
    user_cfg_write(sh, |st| {
        if userid == ROOT {
            return Err(ApiError::internal(
                "delete user failed: cannot delete 'root@pam'",
            ));
        }
        let u = st.access.users.remove(&userid).ok_or_else(|| {
            ApiError::internal(format!("delete user failed: no such user ('{userid}')"))
        })?;
        drop_acl_of(st, UgType::User, &userid);
        for id in u.tokens.keys() {
            drop_acl_of(st, UgType::Token, &format!("{userid}!{id}"));
        }
        Ok(Value::Null)
    })
    .await
}

fn no_token(userid: &str, tokenid: &str) -> ApiError {
    ApiError::internal(format!("no such token '{tokenid}' for user '{userid}'"))
}

/// `GET /access/users/{userid}/token`.
pub(crate) fn list_tokens(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let userid = pp(r, "userid");
    let st = sh.lock();
    let u = st.access.users.get(userid).ok_or_else(|| no_user(userid))?;
    Ok(Value::Array(
        u.tokens
            .iter()
            .map(|(id, t)| {
                let mut v = token_json(t);
                v["tokenid"] = json!(id);
                v
            })
            .collect(),
    ))
}

/// `GET /access/users/{userid}/token/{tokenid}`.
pub(crate) fn get_token(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let (userid, tokenid) = (pp(r, "userid"), pp(r, "tokenid"));
    let st = sh.lock();
    let u = st.access.users.get(userid).ok_or_else(|| no_user(userid))?;
    u.tokens
        .get(tokenid)
        .map(token_json)
        .ok_or_else(|| no_token(userid, tokenid))
}

fn apply_token_fields(t: &mut Token, r: &Req<'_>) {
    if let Some(c) = r.param("comment") {
        t.comment = (!c.is_empty()).then(|| c.to_owned());
    }
    if let Some(e) = r.param("expire") {
        t.expire = e.parse().unwrap_or(0);
    }
    if let Some(p) = r.param("privsep") {
        t.privsep = p == "1";
    }
    for key in split_list(r.param("delete").unwrap_or_default()) {
        match key.as_str() {
            "comment" => t.comment = None,
            "expire" => t.expire = 0,
            _ => {}
        }
    }
}

/// `POST /access/users/{userid}/token/{tokenid}` → `{full-tokenid, info, value}`.
pub(crate) async fn create_token(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let (userid, tokenid) = (pp(r, "userid").to_owned(), pp(r, "tokenid").to_owned());
    user_cfg_write(sh, |st| {
        let expire = st
            .access
            .users
            .get(&userid)
            .ok_or_else(|| no_user(&userid))?
            .expire;
        let value = crate::guest::random_uuid(&mut st.rng);
        let u = st
            .access
            .users
            .get_mut(&userid)
            .ok_or_else(|| no_user(&userid))?;
        if u.tokens.contains_key(&tokenid) {
            return Err(ApiError::internal("Token already exists."));
        }
        let mut t = Token {
            comment: None,
            expire,
            privsep: true,
            secret: Secret::new(value.clone()),
        };
        apply_token_fields(&mut t, r);
        let info = token_json(&t);
        u.tokens.insert(tokenid.clone(), t);
        Ok(json!({"full-tokenid": format!("{userid}!{tokenid}"), "info": info, "value": value}))
    })
    .await
}

/// `PUT /access/users/{userid}/token/{tokenid}` → the token's info.
pub(crate) async fn update_token(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let (userid, tokenid) = (pp(r, "userid").to_owned(), pp(r, "tokenid").to_owned());
    user_cfg_write(sh, |st| {
        let u = st
            .access
            .users
            .get_mut(&userid)
            .ok_or_else(|| no_user(&userid))?;
        let t = u
            .tokens
            .get_mut(&tokenid)
            .ok_or_else(|| no_token(&userid, &tokenid))?;
        apply_token_fields(t, r);
        Ok(token_json(t))
    })
    .await
}

/// `DELETE /access/users/{userid}/token/{tokenid}`.
pub(crate) async fn delete_token(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let (userid, tokenid) = (pp(r, "userid").to_owned(), pp(r, "tokenid").to_owned());
    user_cfg_write(sh, |st| {
        let u = st
            .access
            .users
            .get_mut(&userid)
            .ok_or_else(|| no_user(&userid))?;
        u.tokens
            .remove(&tokenid)
            .ok_or_else(|| no_token(&userid, &tokenid))?;
        drop_acl_of(st, UgType::Token, &format!("{userid}!{tokenid}"));
        Ok(Value::Null)
    })
    .await
}

fn members_of(st: &SimState, group: &str) -> Vec<String> {
    st.access
        .users
        .iter()
        .filter(|(_, u)| u.groups.contains(group))
        .map(|(id, _)| id.clone())
        .collect()
}

/// `GET /access/groups`.
pub(crate) fn list_groups(sh: &Shared, r: &Req<'_>) -> Value {
    let st = sh.lock();
    let p = Principal::of(r.caller);
    let privs = ["User.Modify", "Sys.Audit", "Group.Allocate"];
    Value::Array(
        st.access
            .groups
            .iter()
            .filter(|(g, _)| check(&st, &p, &format!("/access/groups/{g}"), &privs, true).is_ok())
            .map(|(g, grp)| {
                let mut m = Map::new();
                m.insert("groupid".into(), json!(g));
                if let Some(c) = &grp.comment {
                    m.insert("comment".into(), json!(c));
                }
                m.insert("users".into(), json!(members_of(&st, g).join(",")));
                Value::Object(m)
            })
            .collect(),
    )
}

fn no_group(g: &str) -> ApiError {
    ApiError::internal(format!("group '{g}' does not exist"))
}

/// `pve-groupid`: `[A-Za-z0-9\.\-_]+`.
fn valid_groupid(g: &str) -> bool {
    !g.is_empty()
        && g.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// `GET /access/groups/{groupid}`.
pub(crate) fn get_group(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let g = pp(r, "groupid");
    let st = sh.lock();
    let grp = st.access.groups.get(g).ok_or_else(|| no_group(g))?;
    let mut m = Map::new();
    if let Some(c) = &grp.comment {
        m.insert("comment".into(), json!(c));
    }
    m.insert("members".into(), json!(members_of(&st, g)));
    Ok(Value::Object(m))
}

/// `POST /access/groups`.
pub(crate) async fn create_group(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let g = pp(r, "groupid").to_owned();
    if !valid_groupid(&g) {
        return Err(ApiError::param(
            "groupid",
            format!("value '{g}' does not look like a valid group name"),
        ));
    }
    user_cfg_write(sh, |st| {
        if st.access.groups.contains_key(&g) {
            return Err(ApiError::internal(format!(
                "create group failed: group '{g}' already exists"
            )));
        }
        let comment = r.param("comment").map(str::to_owned);
        st.access.groups.insert(g.clone(), Group { comment });
        Ok(Value::Null)
    })
    .await
}

/// `PUT /access/groups/{groupid}`.
pub(crate) async fn update_group(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let g = pp(r, "groupid").to_owned();
    user_cfg_write(sh, |st| {
        let grp = st.access.groups.get_mut(&g).ok_or_else(|| no_group(&g))?;
        if let Some(c) = r.param("comment") {
            grp.comment = (!c.is_empty()).then(|| c.to_owned());
        }
        Ok(Value::Null)
    })
    .await
}

/// `DELETE /access/groups/{groupid}`: members lose the group, its ACL entries go.
pub(crate) async fn delete_group(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let g = pp(r, "groupid").to_owned();
    user_cfg_write(sh, |st| {
        st.access.groups.remove(&g).ok_or_else(|| no_group(&g))?;
        for u in st.access.users.values_mut() {
            u.groups.remove(&g);
        }
        drop_acl_of(st, UgType::Group, &g);
        Ok(Value::Null)
    })
    .await
}

/// `GET /access/roles`.
pub(crate) fn list_roles(sh: &Shared) -> Value {
    let st = sh.lock();
    let mut out: Vec<Value> = builtin_roles()
        .iter()
        .map(|(id, privs)| {
            let p: Vec<&str> = privs.iter().copied().collect();
            json!({"roleid": id, "privs": p.join(","), "special": 1})
        })
        .collect();
    out.extend(st.access.roles.iter().map(|(id, privs)| {
        let p: Vec<&str> = privs.iter().map(String::as_str).collect();
        json!({"roleid": id, "privs": p.join(",")})
    }));
    Value::Array(out)
}

/// `GET /access/roles/{roleid}`: `{priv: 1, …}`.
pub(crate) fn get_role(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let id = pp(r, "roleid");
    let st = sh.lock();
    let privs = st
        .access
        .role_privs(id)
        .ok_or_else(|| ApiError::internal(format!("role '{id}' does not exist")))?;
    Ok(Value::Object(
        privs.into_iter().map(|p| (p, json!(1))).collect(),
    ))
}

fn parse_privs(list: Option<&str>) -> ApiResult<BTreeSet<String>> {
    let known = all_privs();
    let mut out = BTreeSet::new();
    for p in split_list(list.unwrap_or_default()) {
        if !known.contains(p.as_str()) {
            return Err(ApiError::internal(format!("invalid privilege '{p}'")));
        }
        out.insert(p);
    }
    Ok(out)
}

/// `pve-roleid`: `[A-Za-z0-9\.\-_]+`, not starting with `PVE` (reserved).
fn valid_roleid(id: &str) -> bool {
    valid_groupid(id)
}

/// `POST /access/roles`.
pub(crate) async fn create_role(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let id = pp(r, "roleid").to_owned();
    if !valid_roleid(&id) {
        return Err(ApiError::param(
            "roleid",
            format!("value '{id}' does not look like a valid role name"),
        ));
    }
    let privs = parse_privs(r.param("privs"))?;
    user_cfg_write(sh, |st| {
        if st.access.role_exists(&id) {
            return Err(ApiError::internal(format!(
                "create role failed: role '{id}' already exists"
            )));
        }
        st.access.roles.insert(id.clone(), privs);
        Ok(Value::Null)
    })
    .await
}

/// `PUT /access/roles/{roleid}` {privs, append}.
pub(crate) async fn update_role(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let id = pp(r, "roleid").to_owned();
    let privs = parse_privs(r.param("privs"))?;
    let append = r.flag("append");
    user_cfg_write(sh, |st| {
        if builtin_roles().contains_key(id.as_str()) {
            return Err(ApiError::internal(format!(
                "update role failed: cannot modify built-in role '{id}'"
            )));
        }
        let role = st
            .access
            .roles
            .get_mut(&id)
            .ok_or_else(|| ApiError::internal(format!("role '{id}' does not exist")))?;
        if !append {
            role.clear();
        }
        role.extend(privs);
        Ok(Value::Null)
    })
    .await
}

/// `DELETE /access/roles/{roleid}`: ACL entries with the role go too.
pub(crate) async fn delete_role(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let id = pp(r, "roleid").to_owned();
    user_cfg_write(sh, |st| {
        if builtin_roles().contains_key(id.as_str()) {
            return Err(ApiError::internal(format!(
                "cannot delete role '{id}' - builtin role"
            )));
        }
        st.access
            .roles
            .remove(&id)
            .ok_or_else(|| ApiError::internal(format!("role '{id}' does not exist")))?;
        for entries in st.access.acl.values_mut() {
            for roles in entries.values_mut() {
                roles.remove(&id);
            }
            entries.retain(|_, r| !r.is_empty());
        }
        st.access.acl.retain(|_, e| !e.is_empty());
        Ok(Value::Null)
    })
    .await
}

/// `GET /access/acl`: entries on paths where the caller may modify permissions.
pub(crate) fn list_acl(sh: &Shared, r: &Req<'_>) -> Value {
    let st = sh.lock();
    let p = Principal::of(r.caller);
    let mut out = Vec::new();
    for (path, entries) in &st.access.acl {
        if super::check_perm_modify(&st, &p, path).is_err() {
            continue;
        }
        for ((kind, ugid), roles) in entries {
            for (role, propagate) in roles {
                out.push(json!({
                    "path": path, "type": kind.as_str(), "ugid": ugid,
                    "roleid": role, "propagate": u8::from(*propagate),
                }));
            }
        }
    }
    Value::Array(out)
}

/// `check_path`: the ACL paths PVE accepts.
fn valid_acl_path(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'))
    };
    match parts.as_slice() {
        [""] => true,
        ["access"] | ["access", "groups" | "realm"] => true,
        ["access", "groups" | "realm", x] => word(x),
        ["vms" | "nodes" | "storage" | "pool" | "sdn" | "mapping"] => true,
        ["vms", id] => id.parse::<u32>().is_ok_and(|n| n >= 100),
        ["nodes" | "storage", x] => word(x),
        ["pool", rest @ ..] => !rest.is_empty() && rest.len() <= 3 && rest.iter().all(|x| word(x)),
        ["sdn" | "mapping", rest @ ..] => rest.iter().all(|x| word(x)),
        _ => false,
    }
}

/// `PUT /access/acl`.
pub(crate) async fn update_acl(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let path = normalize_path(r.param("path").unwrap_or("/"));
    if !valid_acl_path(&path) {
        return Err(ApiError::param(
            "path",
            format!("invalid ACL path '{path}'"),
        ));
    }
    let roles = split_list(r.param("roles").unwrap_or_default());
    let users = split_list(r.param("users").unwrap_or_default());
    let groups = split_list(r.param("groups").unwrap_or_default());
    let tokens = split_list(r.param("tokens").unwrap_or_default());
    if users.is_empty() && groups.is_empty() && tokens.is_empty() {
        return Err(ApiError::internal(
            "either 'users', 'groups' or 'tokens' is required.",
        ));
    }
    let delete = r.flag("delete");
    let propagate = r.param("propagate") != Some("0");
    user_cfg_write(sh, |st| {
        for role in &roles {
            if !st.access.role_exists(role) {
                return Err(ApiError::internal(format!("role '{role}' does not exist")));
            }
        }
        let mut targets = Vec::new();
        for u in &users {
            if !st.access.users.contains_key(u) {
                return Err(ApiError::internal(format!("user '{u}' does not exist")));
            }
            targets.push((UgType::User, u.clone()));
        }
        for g in &groups {
            if !st.access.groups.contains_key(g) {
                return Err(ApiError::internal(format!("group '{g}' does not exist")));
            }
            targets.push((UgType::Group, g.clone()));
        }
        for t in &tokens {
            let (u, id) = t.split_once('!').unwrap_or((t, ""));
            let exists = st
                .access
                .users
                .get(u)
                .is_some_and(|user| user.tokens.contains_key(id));
            if !exists {
                return Err(ApiError::internal(format!(
                    "no such token '{id}' for user '{u}'"
                )));
            }
            targets.push((UgType::Token, t.clone()));
        }
        let entries = st.access.acl.entry(path.clone()).or_default();
        for target in targets {
            let slot = entries.entry(target).or_default();
            for role in &roles {
                if delete {
                    slot.remove(role);
                } else {
                    slot.insert(role.clone(), propagate);
                }
            }
        }
        entries.retain(|_, r| !r.is_empty());
        if entries.is_empty() {
            st.access.acl.remove(&path);
        }
        Ok(Value::Null)
    })
    .await
}

/// `PUT /access/password` (tickets only; others than `root@pam` confirm with their own
/// password).
pub(crate) async fn change_password(sh: &Arc<Shared>, r: &Req<'_>) -> ApiResult<Value> {
    let userid = pp(r, "userid").to_owned();
    let password = r.param("password").unwrap_or_default().to_owned();
    let caller = r.caller.user.clone();
    if caller != ROOT {
        let confirm = r.param("confirmation-password").unwrap_or_default();
        let ok = {
            let st = sh.lock();
            let own = if caller == sh.cfg.user {
                Some(sh.cfg.password.expose().to_owned())
            } else {
                st.access
                    .users
                    .get(&caller)
                    .and_then(|u| u.password.as_ref())
                    .map(|p| p.expose().to_owned())
            };
            own.is_some_and(|p| p == confirm)
        };
        if !ok {
            return Err(ApiError::status(
                StatusCode::UNAUTHORIZED,
                "authentication failure",
            ));
        }
    }
    user_cfg_write(sh, |st| {
        let u = st
            .access
            .users
            .get_mut(&userid)
            .ok_or_else(|| no_user(&userid))?;
        u.password = Some(Secret::new(password));
        Ok(Value::Null)
    })
    .await
}

/// `GET /access/permissions[?userid=&path=]`: `{path: {priv: 1}}`.
pub(crate) fn get_permissions(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let st = sh.lock();
    let me = Principal::of(r.caller);
    let target = match r.param("userid") {
        None => me.clone(),
        Some(id) => {
            let (user, token) = match id.split_once('!') {
                Some((u, t)) => (u, Some(t)),
                None => (id, None),
            };
            let own = match &me {
                Principal::Token { user: u, .. } => u == user && token.is_some() && me.name() == id,
                other => other.name() == user,
            };
            if !own {
                check(&st, &me, "/access", &["Sys.Audit"], false)?;
            }
            match (user, token) {
                (ROOT, None) => Principal::Root,
                (u, None) => Principal::User(u.to_owned()),
                (u, Some(t)) => Principal::Token {
                    user: u.to_owned(),
                    id: t.to_owned(),
                },
            }
        }
    };
    let mut paths: BTreeSet<String> = BTreeSet::new();
    match r.param("path") {
        Some(p) => {
            paths.insert(normalize_path(p));
        }
        None => {
            paths.insert("/".into());
            paths.extend(st.access.acl.keys().cloned());
            for (pool, members) in &st.pools {
                if st.access.acl.contains_key(&format!("/pool/{pool}")) {
                    paths.extend(members.vms.iter().map(|id| format!("/vms/{id}")));
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    for path in paths {
        let privs: Map<String, Value> = permissions(&st, &target, &path)
            .into_iter()
            .map(|p| (p, json!(1)))
            .collect();
        out.insert(path, Value::Object(privs));
    }
    Ok(json!(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_paths_and_ids() {
        for ok in [
            "/",
            "/vms/101",
            "/pool/exam1",
            "/pool/exam1/s07",
            "/access/groups/g1",
            "/nodes/pve1",
        ] {
            assert!(valid_acl_path(ok), "{ok}");
        }
        for bad in ["/vms/12", "/vms/abc", "/foo", "/pool"] {
            if bad == "/pool" {
                assert!(valid_acl_path(bad));
                continue;
            }
            assert!(!valid_acl_path(bad), "{bad}");
        }
        assert!(valid_userid("s07@pve"));
        assert!(!valid_userid("s07"));
        assert!(!valid_userid("a b@pve"));
        assert!(!valid_userid("s@1x"));
    }
}
