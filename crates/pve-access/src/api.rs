//! [`AccessApi`]: users, groups, roles, ACL, permissions, passwords, and consoles.

use std::collections::{BTreeMap, BTreeSet};

use pve_auth::{api_path, Params, PveClient, PveClientBuilder, Secret};
use pve_vm::{GuestKind, NodeName, Upid, VmId};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ids::{priv_list, AclPath, GroupId, Privilege, RoleId, Userid};

/// Task types of console proxies (`vncproxy` also serves `termproxy` on QEMU; `vncshell`
/// is a node shell).
pub const CONSOLE_TASK_TYPES: &[&str] = &["vncproxy", "vncshell", "termproxy", "spiceproxy"];

fn lenient_userid<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Userid, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn csv_set<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeSet<String>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::String(s)) => s
            .split([',', ';', ' '])
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(a)) => a
            .into_iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => BTreeSet::new(),
    })
}

/// A user as `GET /access/users?full=1` lists it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct UserInfo {
    /// `name@realm`.
    #[serde(deserialize_with = "lenient_userid")]
    pub userid: Userid,
    /// Enabled (default true).
    #[serde(default = "yes", deserialize_with = "pve_auth::perl::bool")]
    pub enable: bool,
    /// Expiry, epoch seconds; 0 = never.
    #[serde(default, deserialize_with = "pve_auth::perl::u64")]
    pub expire: u64,
    /// Free text; labctl marks its users here.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub comment: Option<String>,
    /// First name.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub firstname: Option<String>,
    /// Last name.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub lastname: Option<String>,
    /// E-mail.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub email: Option<String>,
    /// Groups.
    #[serde(default, deserialize_with = "csv_set")]
    pub groups: BTreeSet<String>,
}

fn yes() -> bool {
    true
}

impl UserInfo {
    /// Enabled and not expired at `now` (epoch seconds) — PVE's `check_user_enabled`.
    pub fn usable_at(&self, now: u64) -> bool {
        self.enable && (self.expire == 0 || self.expire > now)
    }
}

/// A user to create (`POST /access/users`).
#[derive(Debug, Clone)]
pub struct NewUser {
    /// `name@realm`.
    pub userid: Userid,
    /// Password (realm `pve`; 8–64 characters); `None` for directory realms.
    pub password: Option<Secret>,
    /// Free text.
    pub comment: Option<String>,
    /// First name.
    pub firstname: Option<String>,
    /// Expiry, epoch seconds (0 = never).
    pub expire: u64,
    /// Enabled.
    pub enable: bool,
    /// Groups to join.
    pub groups: Vec<GroupId>,
}

impl NewUser {
    /// An enabled, non-expiring user without groups.
    pub fn new(userid: Userid) -> Self {
        Self {
            userid,
            password: None,
            comment: None,
            firstname: None,
            expire: 0,
            enable: true,
            groups: Vec::new(),
        }
    }
}

/// Changes to a user (`PUT /access/users/{userid}`); `None` = unchanged.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    /// Enable or disable.
    pub enable: Option<bool>,
    /// Expiry, epoch seconds (0 = never).
    pub expire: Option<u64>,
    /// Comment.
    pub comment: Option<String>,
}

/// A group (`GET /access/groups`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct GroupInfo {
    /// The id.
    pub groupid: GroupId,
    /// Comment.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub comment: Option<String>,
    /// Members.
    #[serde(default, deserialize_with = "csv_set")]
    pub users: BTreeSet<String>,
}

/// A role (`GET /access/roles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    /// The id.
    pub roleid: RoleId,
    /// Its privileges.
    pub privs: BTreeSet<Privilege>,
    /// Built in (cannot be changed).
    pub special: bool,
}

#[derive(Deserialize)]
struct RawRole {
    roleid: String,
    #[serde(default, deserialize_with = "csv_set")]
    privs: BTreeSet<String>,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_bool")]
    special: Option<bool>,
}

/// Who an ACL entry is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// A user.
    User(Userid),
    /// A group.
    Group(GroupId),
    /// An API token `user@realm!id`.
    Token(String),
}

impl Subject {
    fn param(&self) -> (&'static str, String) {
        match self {
            Subject::User(u) => ("users", u.to_string()),
            Subject::Group(g) => ("groups", g.to_string()),
            Subject::Token(t) => ("tokens", t.clone()),
        }
    }
}

/// One ACL entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclEntry {
    /// The path.
    pub path: AclPath,
    /// For whom.
    pub subject: Subject,
    /// The role.
    pub role: RoleId,
    /// Inherited below the path.
    pub propagate: bool,
}

#[derive(Deserialize)]
struct RawAcl {
    path: AclPath,
    #[serde(rename = "type")]
    typ: String,
    ugid: String,
    roleid: String,
    #[serde(default = "yes", deserialize_with = "pve_auth::perl::bool")]
    propagate: bool,
}

/// An active console task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleTask {
    /// The task.
    pub upid: Upid,
    /// The guest (`id` of the task).
    pub vmid: Option<VmId>,
    /// Who opened it (`user@realm` or `user@realm!token`).
    pub user: String,
}

#[derive(Deserialize)]
struct RawTask {
    upid: Upid,
}

/// What `vncproxy` returns: the one-time VNC ticket (valid about 40 s, never printed).
#[derive(Debug, Clone)]
pub struct VncProxy {
    /// The proxy's task.
    pub upid: Upid,
    /// The VNC port for `vncwebsocket`.
    pub port: u16,
    /// The VNC ticket.
    pub ticket: Secret,
    /// The VNC password (with `generate-password`).
    pub password: Option<Secret>,
    /// Who the ticket is for.
    pub user: String,
}

#[derive(Deserialize)]
struct RawVnc {
    upid: Upid,
    #[serde(deserialize_with = "pve_auth::perl::u16")]
    port: u16,
    ticket: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    user: Option<String>,
}

/// Permissions of one principal: path → privileges.
pub type PermissionMap = BTreeMap<String, BTreeSet<Privilege>>;

/// Access-control API over a [`PveClient`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AccessApi {
    client: PveClient,
}

fn user_path(u: &Userid) -> String {
    api_path(&["access", "users", u.as_str()])
}

impl AccessApi {
    /// Wrap a client.
    pub fn new(client: PveClient) -> Self {
        Self { client }
    }

    /// The client.
    pub fn client(&self) -> &PveClient {
        &self.client
    }

    /// Every user the caller may see, with groups.
    pub async fn users(&self) -> Result<Vec<UserInfo>> {
        let v: Vec<Value> = self
            .client
            .get("/access/users", &Params::new().with("full", true))
            .await?;
        // A user id this crate would refuse (a newer realm syntax) is skipped, not fatal.
        Ok(v.into_iter()
            .filter_map(|u| serde_json::from_value(u).ok())
            .collect())
    }

    /// One user, or `None` if it does not exist.
    pub async fn user(&self, userid: &Userid) -> Result<Option<UserInfo>> {
        match self
            .client
            .get::<Value>(&user_path(userid), &Params::new())
            .await
        {
            Ok(mut v) => {
                v["userid"] = Value::String(userid.to_string());
                if let Some(g) = v.get("groups").cloned() {
                    v["groups"] = g;
                }
                Ok(Some(serde_json::from_value(v).map_err(|e| {
                    Error::Api(pve_auth::Error::InvalidInput {
                        what: "user answer",
                        input: userid.to_string(),
                        reason: e.to_string(),
                    })
                })?))
            }
            Err(e) if e.is_not_found() || e.mentions("no such user") => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Create a user (one `user.cfg` write).
    pub async fn create_user(&self, user: &NewUser) -> Result<()> {
        if let Some(p) = &user.password {
            let n = p.expose().chars().count();
            if !(8..=64).contains(&n) {
                return Err(Error::InvalidInput {
                    what: format!("password of {}", user.userid),
                    why: format!("{n} characters (allowed: 8 to 64)"),
                });
            }
        }
        let groups: Vec<&str> = user.groups.iter().map(GroupId::as_str).collect();
        let params = Params::new()
            .with("userid", user.userid.as_str())
            .opt(
                "password",
                user.password.as_ref().map(|p| p.expose().to_owned()),
            )
            .opt("comment", user.comment.clone())
            .opt("firstname", user.firstname.clone())
            .with("enable", user.enable)
            .with("expire", user.expire)
            .opt("groups", (!groups.is_empty()).then(|| groups.join(",")));
        let _: Value = self.client.post("/access/users", &params).await?;
        Ok(())
    }

    /// Change a user (one `user.cfg` write).
    pub async fn update_user(&self, userid: &Userid, update: &UserUpdate) -> Result<()> {
        let params = Params::new()
            .opt("enable", update.enable)
            .opt("expire", update.expire)
            .opt("comment", update.comment.clone());
        let _: Value = self.client.put(&user_path(userid), &params).await?;
        Ok(())
    }

    /// Delete a user (PVE also drops its ACL entries and tokens).
    pub async fn delete_user(&self, userid: &Userid) -> Result<()> {
        let _: Value = self
            .client
            .delete(&user_path(userid), &Params::new())
            .await?;
        Ok(())
    }

    /// Groups the caller may see.
    pub async fn groups(&self) -> Result<Vec<GroupInfo>> {
        Ok(self.client.get("/access/groups", &Params::new()).await?)
    }

    /// Create a group.
    pub async fn create_group(&self, id: &GroupId, comment: Option<&str>) -> Result<()> {
        let params = Params::new()
            .with("groupid", id.as_str())
            .opt("comment", comment);
        let _: Value = self.client.post("/access/groups", &params).await?;
        Ok(())
    }

    /// Delete a group.
    pub async fn delete_group(&self, id: &GroupId) -> Result<()> {
        let path = api_path(&["access", "groups", id.as_str()]);
        let _: Value = self.client.delete(&path, &Params::new()).await?;
        Ok(())
    }

    /// Every role, built-in and custom.
    pub async fn roles(&self) -> Result<Vec<RoleInfo>> {
        let raw: Vec<RawRole> = self.client.get("/access/roles", &Params::new()).await?;
        Ok(raw
            .into_iter()
            .filter_map(|r| {
                Some(RoleInfo {
                    roleid: RoleId::new(r.roleid).ok()?,
                    privs: r.privs.iter().map(|p| Privilege::lenient(p)).collect(),
                    special: r.special.unwrap_or(false),
                })
            })
            .collect())
    }

    /// A role's privileges, or `None` if it does not exist.
    pub async fn role(&self, id: &RoleId) -> Result<Option<BTreeSet<Privilege>>> {
        let path = api_path(&["access", "roles", id.as_str()]);
        match self
            .client
            .get::<BTreeMap<String, Value>>(&path, &Params::new())
            .await
        {
            Ok(m) => Ok(Some(m.keys().map(|p| Privilege::lenient(p)).collect())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Create a custom role.
    pub async fn create_role(&self, id: &RoleId, privs: &[Privilege]) -> Result<()> {
        let params = Params::new()
            .with("roleid", id.as_str())
            .with("privs", priv_list(privs)?);
        let _: Value = self.client.post("/access/roles", &params).await?;
        Ok(())
    }

    /// Replace a custom role's privileges.
    pub async fn set_role_privs(&self, id: &RoleId, privs: &[Privilege]) -> Result<()> {
        let path = api_path(&["access", "roles", id.as_str()]);
        let params = Params::new().with("privs", priv_list(privs)?);
        let _: Value = self.client.put(&path, &params).await?;
        Ok(())
    }

    /// Delete a custom role.
    pub async fn delete_role(&self, id: &RoleId) -> Result<()> {
        let path = api_path(&["access", "roles", id.as_str()]);
        let _: Value = self.client.delete(&path, &Params::new()).await?;
        Ok(())
    }

    /// The ACL entries the caller may modify.
    pub async fn acl(&self) -> Result<Vec<AclEntry>> {
        let raw: Vec<RawAcl> = self.client.get("/access/acl", &Params::new()).await?;
        Ok(raw
            .into_iter()
            .filter_map(|a| {
                let subject = match a.typ.as_str() {
                    "user" => Subject::User(a.ugid.parse().ok()?),
                    "group" => Subject::Group(GroupId::new(a.ugid).ok()?),
                    "token" => Subject::Token(a.ugid),
                    _ => return None,
                };
                Some(AclEntry {
                    path: a.path,
                    subject,
                    role: RoleId::new(a.roleid).ok()?,
                    propagate: a.propagate,
                })
            })
            .collect())
    }

    async fn put_acl(&self, entry: &AclEntry, delete: bool) -> Result<()> {
        let (key, who) = entry.subject.param();
        let params = Params::new()
            .with("path", entry.path.as_str())
            .with("roles", entry.role.as_str())
            .with(key, who)
            .with("propagate", entry.propagate)
            .opt("delete", delete.then_some(true));
        let _: Value = self.client.put("/access/acl", &params).await?;
        Ok(())
    }

    /// Add an ACL entry (one `user.cfg` write).
    pub async fn grant(&self, entry: &AclEntry) -> Result<()> {
        self.put_acl(entry, false).await
    }

    /// Remove an ACL entry (one `user.cfg` write).
    pub async fn revoke(&self, entry: &AclEntry) -> Result<()> {
        self.put_acl(entry, true).await
    }

    /// Effective privileges of `userid` (default: the caller) on `path` (default: every
    /// path with an ACL entry).
    pub async fn permissions(
        &self,
        userid: Option<&Userid>,
        path: Option<&AclPath>,
    ) -> Result<PermissionMap> {
        let params = Params::new()
            .opt("userid", userid.map(Userid::to_string))
            .opt("path", path.map(AclPath::to_string));
        let raw: BTreeMap<String, BTreeMap<String, Value>> =
            self.client.get("/access/permissions", &params).await?;
        Ok(raw
            .into_iter()
            .map(|(p, privs)| (p, privs.keys().map(|x| Privilege::lenient(x)).collect()))
            .collect())
    }

    /// Set a password (`PUT /access/password`; needs a ticket, not a token). Callers other
    /// than `root@pam` confirm with their own password.
    pub async fn set_password(
        &self,
        userid: &Userid,
        password: &Secret,
        confirmation: Option<&Secret>,
    ) -> Result<()> {
        let params = Params::new()
            .with("userid", userid.as_str())
            .with("password", password.expose())
            .opt(
                "confirmation-password",
                confirmation.map(|c| c.expose().to_owned()),
            );
        let _: Value = self.client.put("/access/password", &params).await?;
        Ok(())
    }

    /// Active console tasks on `node`, of `vmid` if given (one request).
    pub async fn console_tasks(
        &self,
        node: &NodeName,
        vmid: Option<VmId>,
    ) -> Result<Vec<ConsoleTask>> {
        let path = api_path(&["nodes", node.as_str(), "tasks"]);
        let params = Params::new()
            .with("source", "active")
            .with("limit", 10_000u32)
            .opt("vmid", vmid.map(VmId::get));
        let raw: Vec<RawTask> = self.client.get(&path, &params).await?;
        Ok(raw
            .into_iter()
            .filter(|t| CONSOLE_TASK_TYPES.contains(&t.upid.task_type()))
            .map(|t| ConsoleTask {
                vmid: t.upid.vmid(),
                user: t.upid.user().to_owned(),
                upid: t.upid,
            })
            .collect())
    }

    /// Stop a task (`DELETE /nodes/{node}/tasks/{upid}`).
    pub async fn stop_task(&self, upid: &Upid) -> Result<()> {
        let path = api_path(&["nodes", upid.node().as_str(), "tasks", upid.as_str()]);
        let _: Value = self.client.delete(&path, &Params::new()).await?;
        Ok(())
    }

    /// Open a VNC console (`POST …/vncproxy`, websocket mode).
    pub async fn open_vnc(&self, node: &NodeName, kind: GuestKind, vmid: VmId) -> Result<VncProxy> {
        let path = api_path(&[
            "nodes",
            node.as_str(),
            kind.as_str(),
            &vmid.to_string(),
            "vncproxy",
        ]);
        let raw: RawVnc = self
            .client
            .post(&path, &Params::new().with("websocket", true))
            .await?;
        Ok(VncProxy {
            upid: raw.upid,
            port: raw.port,
            ticket: Secret::new(raw.ticket),
            password: raw.password.map(Secret::new),
            user: raw.user.unwrap_or_default(),
        })
    }
}

/// A client logged in as `userid` with a ticket: `builder` carries host and TLS.
pub async fn login_as(
    builder: PveClientBuilder,
    userid: &Userid,
    password: &Secret,
) -> Result<PveClient> {
    let client = builder
        .password(userid.as_str(), password.clone())
        .build()?;
    client.login().await?;
    Ok(client)
}
