//! Access control as `pve-access-control` does it: users (realm `pve`; `root@pam`),
//! groups, roles (PVE 9's built-in ones and custom roles), ACL entries with propagation,
//! API tokens with privilege separation, and the permission check every API call of a
//! non-root caller goes through (the schema's `permissions` of each route, in
//! [`checks`]).
//!
//! Privileges of a path follow `PVE::AccessControl::roles`: walking from `/` to the path,
//! each level's user entries (or, if none, the user's groups' entries) replace what was
//! inherited, entries above the path count only with `propagate`, `NoAccess` wins; a
//! `/vms/<id>` also gets the roles of its pool's `/pool/<pool>`. `root@pam` has every
//! privilege; a token without privilege separation has its user's, one with privilege
//! separation the intersection of its user's and its own ACL entries'.

pub(crate) mod api;
pub(crate) mod checks;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use http::StatusCode;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::state::{unix_now, Caller, SimState};
use crate::Secret;

/// The superuser.
pub(crate) const ROOT: &str = "root@pam";

/// Privileges grouped as `$privgroups` of PVE 9's `PVE/AccessControl.pm`:
/// `(group, root-only, admin, user, audit)`.
type PrivGroup = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);
const PRIVGROUPS: &[PrivGroup] = &[
    (
        "VM",
        &[],
        &[
            "VM.Config.Disk",
            "VM.Config.CPU",
            "VM.Config.Memory",
            "VM.Config.Network",
            "VM.Config.HWType",
            "VM.Config.Options",
            "VM.Allocate",
            "VM.Clone",
            "VM.Migrate",
            "VM.GuestAgent.Unrestricted",
            "VM.Snapshot",
            "VM.Snapshot.Rollback",
        ],
        &[
            "VM.Config.CDROM",
            "VM.Config.Cloudinit",
            "VM.Console",
            "VM.Backup",
            "VM.PowerMgmt",
            "VM.GuestAgent.Audit",
            "VM.GuestAgent.FileRead",
            "VM.GuestAgent.FileWrite",
            "VM.GuestAgent.FileSystemMgmt",
        ],
        &["VM.Audit"],
    ),
    (
        "Sys",
        &[
            "Sys.PowerMgmt",
            "Sys.Modify",
            "Sys.Incoming",
            "Sys.AccessNetwork",
        ],
        &["Sys.Console", "Sys.Syslog"],
        &[],
        &["Sys.Audit"],
    ),
    (
        "Datastore",
        &[],
        &["Datastore.Allocate", "Datastore.AllocateTemplate"],
        &["Datastore.AllocateSpace"],
        &["Datastore.Audit"],
    ),
    (
        "SDN",
        &[],
        &["SDN.Allocate", "SDN.Audit"],
        &["SDN.Use"],
        &["SDN.Audit"],
    ),
    (
        "User",
        &["Realm.Allocate"],
        &["User.Modify", "Group.Allocate", "Realm.AllocateUser"],
        &[],
        &[],
    ),
    ("Pool", &[], &["Pool.Allocate"], &[], &["Pool.Audit"]),
    (
        "Mapping",
        &[],
        &["Mapping.Modify"],
        &["Mapping.Use"],
        &["Mapping.Audit"],
    ),
    ("Permissions", &["Permissions.Modify"], &[], &[], &[]),
];

/// Every privilege PVE 9 knows.
pub(crate) fn all_privs() -> BTreeSet<&'static str> {
    PRIVGROUPS
        .iter()
        .flat_map(|(_, r, a, u, au)| r.iter().chain(*a).chain(*u).chain(*au))
        .copied()
        .collect()
}

fn group_privs(group: &str, levels: &[usize]) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    for (g, root, admin, user, audit) in PRIVGROUPS {
        if *g != group {
            continue;
        }
        let sets: [&[&'static str]; 4] = [root, admin, user, audit];
        for l in levels {
            out.extend(sets[*l].iter().copied());
        }
    }
    out
}

const ADMIN: usize = 1;
const USER: usize = 2;
const AUDIT: usize = 3;

/// The built-in roles of PVE 9 (`$builtin_roles`), with their privileges.
pub(crate) fn builtin_roles() -> &'static BTreeMap<&'static str, BTreeSet<&'static str>> {
    static ROLES: OnceLock<BTreeMap<&'static str, BTreeSet<&'static str>>> = OnceLock::new();
    ROLES.get_or_init(|| {
        let mut m = BTreeMap::new();
        m.insert("NoAccess", BTreeSet::new());
        m.insert("Administrator", all_privs());
        let groups = ["VM", "Sys", "Datastore", "SDN", "User", "Pool", "Mapping"];
        let mut admin = BTreeSet::new();
        let mut auditor = BTreeSet::new();
        for g in groups {
            admin.extend(group_privs(g, &[ADMIN, USER, AUDIT]));
            auditor.extend(group_privs(g, &[AUDIT]));
        }
        m.insert("PVEAdmin", admin);
        m.insert("PVEAuditor", auditor);
        m.insert("PVEVMAdmin", group_privs("VM", &[ADMIN, USER, AUDIT]));
        m.insert("PVEVMUser", group_privs("VM", &[USER, AUDIT]));
        let mut user_admin = group_privs("User", &[ADMIN, USER, AUDIT]);
        user_admin.insert("Sys.Audit");
        m.insert("PVEUserAdmin", user_admin);
        m.insert("PVEPoolAdmin", group_privs("Pool", &[ADMIN, USER, AUDIT]));
        m.insert("PVEPoolUser", group_privs("Pool", &[USER, AUDIT]));
        m.insert(
            "PVEDatastoreAdmin",
            group_privs("Datastore", &[ADMIN, USER, AUDIT]),
        );
        m.insert("PVEDatastoreUser", group_privs("Datastore", &[USER, AUDIT]));
        m.insert("PVESysAdmin", group_privs("Sys", &[ADMIN, USER, AUDIT]));
        m.insert("PVESDNAdmin", group_privs("SDN", &[ADMIN, USER, AUDIT]));
        m.insert("PVESDNUser", group_privs("SDN", &[USER, AUDIT]));
        m.insert(
            "PVEMappingAdmin",
            group_privs("Mapping", &[ADMIN, USER, AUDIT]),
        );
        m.insert("PVEMappingUser", group_privs("Mapping", &[USER, AUDIT]));
        m.insert(
            "PVETemplateUser",
            ["VM.Clone", "VM.Audit"].into_iter().collect(),
        );
        m
    })
}

/// An API token of a user (`user.cfg`).
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub comment: Option<String>,
    /// Epoch seconds, 0 = never (a token also ends with its user's `expire`).
    pub expire: u64,
    pub privsep: bool,
    pub secret: Secret,
}

/// A user (`user.cfg`). The password lives here only for realm `pve` (shadow.cfg).
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub enable: bool,
    pub expire: u64,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub email: Option<String>,
    pub comment: Option<String>,
    pub groups: BTreeSet<String>,
    pub password: Option<Secret>,
    pub tokens: BTreeMap<String, Token>,
}

impl User {
    pub(crate) fn new() -> Self {
        Self {
            enable: true,
            expire: 0,
            firstname: None,
            lastname: None,
            email: None,
            comment: None,
            groups: BTreeSet::new(),
            password: None,
            tokens: BTreeMap::new(),
        }
    }

    /// `check_user_enabled`: enabled and not expired.
    pub(crate) fn usable(&self) -> bool {
        self.enable && (self.expire == 0 || self.expire > unix_now())
    }
}

/// A group.
#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    pub comment: Option<String>,
}

/// Who an ACL entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum UgType {
    User,
    Group,
    Token,
}

impl UgType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
            Self::Token => "token",
        }
    }
}

/// ACL entries of one path: `(type, ugid) → role → propagate`.
pub(crate) type PathAcl = BTreeMap<(UgType, String), BTreeMap<String, bool>>;

/// Users, groups, custom roles and the ACL tree (`user.cfg`).
#[derive(Debug, Default)]
pub(crate) struct Access {
    pub users: BTreeMap<String, User>,
    pub groups: BTreeMap<String, Group>,
    /// Custom roles only; built-in ones come from [`builtin_roles`].
    pub roles: BTreeMap<String, BTreeSet<String>>,
    pub acl: BTreeMap<String, PathAcl>,
    /// The API token of the simulator's command line (`--token`): no privilege separation.
    pub cli_token: Option<(String, String)>,
}

/// `normalize_path`: collapse `//`, drop a trailing `/`.
pub(crate) fn normalize_path(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// A caller's identity for permission checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    Root,
    User(String),
    Token { user: String, id: String },
}

impl Principal {
    pub(crate) fn of(caller: &Caller) -> Self {
        match &caller.tokenid {
            Some(id) => Self::Token {
                user: caller.user.clone(),
                id: id.clone(),
            },
            None if caller.user == ROOT => Self::Root,
            None => Self::User(caller.user.clone()),
        }
    }

    /// `user@realm` or `user@realm!token`, as PVE's `get_user` has it.
    pub(crate) fn name(&self) -> String {
        match self {
            Self::Root => ROOT.to_owned(),
            Self::User(u) => u.clone(),
            Self::Token { user, id } => format!("{user}!{id}"),
        }
    }
}

impl Access {
    /// The privileges of a role (built-in or custom).
    pub(crate) fn role_privs(&self, role: &str) -> Option<BTreeSet<String>> {
        if let Some(p) = builtin_roles().get(role) {
            return Some(p.iter().map(|s| (*s).to_owned()).collect());
        }
        self.roles.get(role).cloned()
    }

    pub(crate) fn role_exists(&self, role: &str) -> bool {
        builtin_roles().contains_key(role) || self.roles.contains_key(role)
    }

    /// `roles()` for a user (with groups) or a token (without), at one path.
    fn roles_at(&self, who: (UgType, &str), path: &str) -> BTreeMap<String, bool> {
        let mut roles: BTreeMap<String, bool> = BTreeMap::new();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let groups: BTreeSet<String> = match who.0 {
            UgType::User => self
                .users
                .get(who.1)
                .map(|u| u.groups.clone())
                .unwrap_or_default(),
            _ => BTreeSet::new(),
        };
        for depth in 0..=parts.len() {
            let p = format!("/{}", parts[..depth].join("/"));
            let last = depth == parts.len();
            let Some(acl) = self.acl.get(&p) else {
                continue;
            };
            let pick = |entry: Option<&BTreeMap<String, bool>>,
                        new: &mut BTreeMap<String, bool>| {
                for (role, propagate) in entry.into_iter().flatten() {
                    if last || *propagate {
                        new.insert(role.clone(), *propagate);
                    }
                }
            };
            let mut own = BTreeMap::new();
            pick(acl.get(&(who.0, who.1.to_owned())), &mut own);
            if !own.is_empty() {
                roles = own;
                continue;
            }
            let mut from_groups = BTreeMap::new();
            for g in &groups {
                pick(acl.get(&(UgType::Group, g.clone())), &mut from_groups);
            }
            if !from_groups.is_empty() {
                roles = from_groups;
            }
        }
        if let Some(p) = roles.get("NoAccess").copied() {
            return [("NoAccess".to_owned(), p)].into_iter().collect();
        }
        roles
    }

    fn privs_of_roles(&self, roles: &BTreeMap<String, bool>) -> BTreeSet<String> {
        roles
            .keys()
            .filter_map(|r| self.role_privs(r))
            .flatten()
            .collect()
    }

    /// Privileges of `who` (a user or a token's own ACL) at `path`, pools included.
    fn acl_privs(
        &self,
        st_pool: Option<&str>,
        who: (UgType, &str),
        path: &str,
    ) -> BTreeSet<String> {
        let mut privs = self.privs_of_roles(&self.roles_at(who, path));
        if let Some(pool) = st_pool {
            privs.extend(self.privs_of_roles(&self.roles_at(who, &format!("/pool/{pool}"))));
        }
        privs
    }

    /// Is the principal allowed to make requests at all (`check_user_enabled`, token
    /// existence and expiry)?
    pub(crate) fn usable(&self, p: &Principal) -> bool {
        match p {
            Principal::Root => true,
            Principal::User(u) => self.users.get(u).is_some_and(User::usable),
            Principal::Token { user, id } => {
                if self.cli_token.as_ref() == Some(&(user.clone(), id.clone())) {
                    return user == ROOT || self.users.get(user).is_some_and(User::usable);
                }
                let Some(u) = self.users.get(user) else {
                    return false;
                };
                let token_ok = u
                    .tokens
                    .get(id)
                    .is_some_and(|t| t.expire == 0 || t.expire > unix_now());
                (user == ROOT || u.usable()) && token_ok
            }
        }
    }
}

/// `root@pam`, or a token of `root@pam` without privilege separation: every privilege
/// everywhere, no ACL walk needed.
fn is_superuser(acc: &Access, p: &Principal) -> bool {
    match p {
        Principal::Root => true,
        Principal::Token { user, id } if user == ROOT => {
            acc.cli_token.as_ref() == Some(&(user.clone(), id.clone()))
                || acc
                    .users
                    .get(ROOT)
                    .and_then(|u| u.tokens.get(id))
                    .is_some_and(|t| !t.privsep)
        }
        _ => false,
    }
}

/// The privileges of a principal at a path (`RPCEnvironment::permissions`).
pub(crate) fn permissions(st: &SimState, p: &Principal, path: &str) -> BTreeSet<String> {
    let path = normalize_path(path);
    let acc = &st.access;
    let pool = path
        .strip_prefix("/vms/")
        .and_then(|id| id.parse::<u32>().ok())
        .and_then(|id| st.pool_of(id));
    let user_privs = |user: &str| -> BTreeSet<String> {
        if user == ROOT {
            return all_privs().into_iter().map(str::to_owned).collect();
        }
        if !acc.users.get(user).is_some_and(User::usable) {
            return BTreeSet::new();
        }
        acc.acl_privs(pool, (UgType::User, user), &path)
    };
    match p {
        Principal::Root => user_privs(ROOT),
        Principal::User(u) => user_privs(u),
        Principal::Token { user, id } => {
            if !acc.usable(p) {
                return BTreeSet::new();
            }
            let mine = user_privs(user);
            if acc.cli_token.as_ref() == Some(&(user.clone(), id.clone())) {
                return mine;
            }
            let privsep = acc
                .users
                .get(user)
                .and_then(|u| u.tokens.get(id))
                .is_none_or(|t| t.privsep);
            if !privsep {
                return mine;
            }
            let full = format!("{user}!{id}");
            let own = acc.acl_privs(pool, (UgType::Token, &full), &path);
            mine.intersection(&own).cloned().collect()
        }
    }
}

/// `403 Permission check failed (<what>)`.
pub(crate) fn perm_exc(what: Option<&str>) -> ApiError {
    let msg = match what {
        Some(w) => format!("Permission check failed ({w})"),
        None => "Permission check failed".to_owned(),
    };
    ApiError::status(StatusCode::FORBIDDEN, msg)
}

/// `check` / `check_any`: all (or any) of `privs` at `path`.
pub(crate) fn check(
    st: &SimState,
    p: &Principal,
    path: &str,
    privs: &[&str],
    any: bool,
) -> ApiResult<()> {
    let path = normalize_path(path);
    if is_superuser(&st.access, p) && st.access.usable(p) {
        return Ok(());
    }
    let have = permissions(st, p, &path);
    if any {
        if privs.iter().any(|x| have.contains(*x)) {
            return Ok(());
        }
        return Err(perm_exc(Some(&format!("{path}, {}", privs.join("|")))));
    }
    match privs.iter().find(|x| !have.contains(**x)) {
        None => Ok(()),
        Some(missing) => Err(perm_exc(Some(&format!("{path}, {missing}")))),
    }
}

/// `check_perm_modify`: Permissions.Modify, or the allocate privilege of the object type.
pub(crate) fn check_perm_modify(st: &SimState, p: &Principal, path: &str) -> ApiResult<()> {
    let path = normalize_path(path);
    let mut privs = vec!["Permissions.Modify"];
    if path.starts_with("/storage/") {
        privs.push("Datastore.Allocate");
    } else if path.starts_with("/vms/") {
        privs.push("VM.Allocate");
    } else if path.starts_with("/pool/") {
        privs.push("Pool.Allocate");
    }
    check(st, p, &path, &privs, true)
}

fn checks_index() -> &'static HashMap<String, Value> {
    static INDEX: OnceLock<HashMap<String, Value>> = OnceLock::new();
    INDEX.get_or_init(|| {
        checks::CHECKS
            .iter()
            .map(|(m, t, j)| {
                // The table is generated from the schema and checked by a test.
                let v: Value = serde_json::from_str(j).unwrap_or(Value::Null);
                (format!("{m} {t}"), v)
            })
            .collect()
    })
}

/// The `permissions` object of a route as the simulator enforces it (the schema's,
/// with `"allowtoken":0` added where the schema refuses tokens).
pub fn route_permissions(method: &str, template: &str) -> Option<&'static Value> {
    checks_index().get(&format!("{method} {template}"))
}

/// `template_replace`: `{name}` → the parameter's value (empty if absent).
fn template_replace(tmpl: &str, params: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = tmpl;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = &rest[start + 1..start + end];
        out.push_str(params.get(key).map_or("", String::as_str));
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

fn str_list(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Options after the fixed elements of a check array (`"any", 1, "require_param", "pool"`).
fn options(items: &[Value]) -> BTreeMap<&str, &Value> {
    items
        .chunks(2)
        .filter_map(|c| Some((c.first()?.as_str()?, c.get(1)?)))
        .collect()
}

fn truthy(v: Option<&&Value>) -> bool {
    v.is_some_and(|v| v.as_i64() == Some(1) || v.as_bool() == Some(true) || v.as_str() == Some("1"))
}

/// Groups in which the principal has any of `privs` on `/access/groups/<group>`.
fn allowed_groups(st: &SimState, p: &Principal, privs: &[&str]) -> BTreeSet<String> {
    st.access
        .groups
        .keys()
        .filter(|g| check(st, p, &format!("/access/groups/{g}"), privs, true).is_ok())
        .cloned()
        .collect()
}

/// `exec_api2_perm_check`.
fn exec_check(
    st: &SimState,
    p: &Principal,
    chk: &Value,
    params: &BTreeMap<String, String>,
) -> ApiResult<()> {
    let items = chk.as_array().map(Vec::as_slice).unwrap_or_default();
    let test = items.first().and_then(Value::as_str).unwrap_or_default();
    match test {
        "and" => {
            for sub in &items[1..] {
                exec_check(st, p, sub, params)?;
            }
            Ok(())
        }
        "or" => {
            if items[1..]
                .iter()
                .any(|sub| exec_check(st, p, sub, params).is_ok())
            {
                Ok(())
            } else {
                Err(perm_exc(None))
            }
        }
        "perm" => {
            let tmpl = items.get(1).and_then(Value::as_str).unwrap_or("/");
            let privs = items.get(2).map(str_list).unwrap_or_default();
            let opts = options(items.get(3..).unwrap_or_default());
            if let Some(req) = opts.get("require_param").and_then(|v| v.as_str()) {
                if !params.contains_key(req) {
                    return Err(perm_exc(None));
                }
            }
            let path = template_replace(tmpl, params);
            check(st, p, &path, &privs, truthy(opts.get("any")))
        }
        "perm-modify" => {
            let tmpl = items.get(1).and_then(Value::as_str).unwrap_or("/");
            check_perm_modify(st, p, &template_replace(tmpl, params))
        }
        "userid-param" => {
            let userid = params.get("userid").map_or("", String::as_str);
            match items.get(1).and_then(Value::as_str) {
                Some("self") => {
                    if st.access.users.contains_key(userid) && p.name() == userid {
                        Ok(())
                    } else {
                        Err(perm_exc(None))
                    }
                }
                _ => {
                    let realm = userid.rsplit_once('@').map_or("", |(_, r)| r);
                    check(
                        st,
                        p,
                        &format!("/access/realm/{realm}"),
                        &["Realm.AllocateUser"],
                        false,
                    )
                }
            }
        }
        "userid-group" => {
            let privs = items.get(1).map(str_list).unwrap_or_default();
            let opts = options(items.get(2..).unwrap_or_default());
            let groups_param = opts.get("groups_param").and_then(|v| v.as_str());
            let userid = params.get("userid").map_or("", String::as_str);
            let allowed = allowed_groups(st, p, &privs);
            if let (Some(_), Some(list)) = (groups_param, params.get("groups")) {
                for g in list.split([',', ';', ' ']).filter(|g| !g.is_empty()) {
                    if !allowed.contains(g) && check(st, p, "/access/groups", &privs, true).is_err()
                    {
                        return Err(perm_exc(Some(&format!(
                            "/access/groups/{g}, {}",
                            privs.join("|")
                        ))));
                    }
                }
            }
            if check(st, p, "/access/groups", &privs, true).is_ok() {
                return Ok(());
            }
            if groups_param != Some("create") {
                if let Some(u) = st.access.users.get(userid) {
                    if u.groups.iter().any(|g| allowed.contains(g)) {
                        return Ok(());
                    }
                }
            }
            Err(perm_exc(Some(&format!(
                "/access/groups, {}",
                privs.join("|")
            ))))
        }
        _ => Err(perm_exc(None)),
    }
}

/// `check_api2_permissions` of a routed request: `Ok` when the caller may call it.
/// `params` are the request's parameters with the path parameters merged in.
pub(crate) fn authorize(
    st: &SimState,
    caller: &Caller,
    method: &str,
    template: &str,
    params: &BTreeMap<String, String>,
) -> ApiResult<()> {
    let p = Principal::of(caller);
    let perms = route_permissions(method, template);
    if caller.tokenid.is_some() && perms.is_some_and(|v| v.get("allowtoken") == Some(&json!(0))) {
        return Err(perm_exc(Some(&format!(
            "URI '{template}' not available with API token, need proper ticket.\n"
        ))));
    }
    if p == Principal::Root {
        return Ok(());
    }
    let Some(perms) = perms else {
        return Err(perm_exc(Some("user != root@pam")));
    };
    if let Some("all" | "world") = perms.get("user").and_then(Value::as_str) {
        return Ok(());
    }
    match perms.get("check") {
        Some(chk) => exec_check(st, &p, chk, params),
        None => Err(perm_exc(None)),
    }
}

/// May the principal see (audit) this path? Used by the list filters of `user: all`
/// routes (`/cluster/resources`, guest lists, pools, tasks).
pub(crate) fn may(st: &SimState, caller: &Caller, path: &str, privs: &[&str]) -> bool {
    let p = Principal::of(caller);
    p == Principal::Root || check(st, &p, path, privs, true).is_ok()
}

/// Remove every ACL entry of `/vms/<vmid>` (`remove_vm_access`, called by destroy).
pub(crate) fn remove_vm_access(st: &mut SimState, vmid: u32) {
    st.access.acl.remove(&format!("/vms/{vmid}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvevmuser_is_what_pve9_grants() {
        let r = &builtin_roles()["PVEVMUser"];
        let want: BTreeSet<&str> = [
            "VM.Audit",
            "VM.Console",
            "VM.PowerMgmt",
            "VM.Backup",
            "VM.Config.CDROM",
            "VM.Config.Cloudinit",
            "VM.GuestAgent.Audit",
            "VM.GuestAgent.FileRead",
            "VM.GuestAgent.FileWrite",
            "VM.GuestAgent.FileSystemMgmt",
        ]
        .into_iter()
        .collect();
        assert_eq!(r, &want);
        assert!(!all_privs().contains("VM.Monitor"), "dropped in PVE 9");
        assert!(!builtin_roles()["PVEAdmin"].contains("Permissions.Modify"));
        assert!(!builtin_roles()["PVEAdmin"].contains("Sys.Modify"));
    }

    #[test]
    fn template_replace_and_normalize() {
        let p: BTreeMap<String, String> = [("vmid".to_owned(), "101".to_owned())].into();
        assert_eq!(template_replace("/vms/{vmid}", &p), "/vms/101");
        assert_eq!(template_replace("/pool/{pool}", &p), "/pool/");
        assert_eq!(normalize_path("//vms/101/"), "/vms/101");
        assert_eq!(normalize_path("/"), "/");
    }
}
