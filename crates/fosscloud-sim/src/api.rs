//! The API controller: check order, envelope, codes and VM entries as vm-manager 1.3.2.1's
//! `ApiController` / `ApiBackend` implement them. FC4School's `MappingWrapper` is not public;
//! its part here is a guess (marked so).

use std::net::IpAddr;

use base64::Engine as _;

use crate::directory::{Config, Directory, PoolType, UserEntry, VmEntry, VmType};
use crate::php::{self, PhpValue};
use crate::routes::{self, Action, Route};

/// Everything the controller reads from a request.
pub(crate) struct Request<'a> {
    pub is_get: bool,
    /// The path after the application's base URL, still percent-encoded.
    pub path_info: &'a str,
    pub query: Option<&'a str>,
    pub authorization: Option<&'a [u8]>,
    pub remote_ip: IpAddr,
    pub server_ip: IpAddr,
}

/// A finished answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Set after a successful authentication (Yii logs the user into a session).
    pub session_cookie: bool,
}

/// The mutable server state the controller works on.
pub(crate) struct Server {
    pub config: Config,
    pub directory: Directory,
    /// When set, every directory access throws with this message (an LDAP outage).
    pub ldap_failure: Option<String>,
}

/// Why an action stopped early: a JSON answer (`JsonFormatter::display()` + `die`) or an
/// exception that Yii hands to the error action.
enum Stop {
    Json(Reply),
    Exception(String),
}

type Step<T> = Result<T, Stop>;

const JSON: &str = "application/json";

fn envelope(status: u16, code: u32, dev: Option<&str>, data: Vec<(String, PhpValue)>) -> Reply {
    let mut map = vec![
        ("status".to_owned(), PhpValue::Int(i64::from(status))),
        ("code".to_owned(), PhpValue::Int(i64::from(code))),
    ];
    // `$this->devDescription != null`: an empty description is left out too.
    if let Some(dev) = dev.filter(|d| !d.is_empty()) {
        map.push(("devDescription".to_owned(), PhpValue::Str(dev.to_owned())));
    }
    map.extend(data);
    Reply {
        status,
        content_type: JSON,
        body: php::json_encode(&PhpValue::Map(map)),
        session_cookie: false,
    }
}

fn fail<T>(status: u16, code: u32, dev: &str) -> Step<T> {
    Err(Stop::Json(envelope(status, code, Some(dev), vec![])))
}

/// Yii's `site/error` page for a route no controller serves.
pub(crate) fn html_not_found(route: &str) -> Reply {
    let route = route
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    Reply {
        status: 404,
        content_type: "text/html; charset=UTF-8",
        body: format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>FOSS-Cloud - Error</title>\n</head>\n<body>\n<h2>Error 404</h2>\n<div class=\"error\">\nUnable to resolve the request &quot;{route}&quot;.\n</div>\n</body>\n</html>\n"
        ),
        session_cookie: false,
    }
}

/// Apache's 404 for paths outside the application.
pub(crate) fn apache_not_found(path: &str) -> Reply {
    let path = path
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    Reply {
        status: 404,
        content_type: "text/html; charset=iso-8859-1",
        body: format!(
            "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>404 Not Found</title>\n</head><body>\n<h1>Not Found</h1>\n<p>The requested URL {path} was not found on this server.</p>\n</body></html>\n"
        ),
        session_cookie: false,
    }
}

/// PHP's `$_GET` after Yii's URL rules: the query string, overridden by path parameters.
struct Get(Vec<(String, String)>);

impl Get {
    fn new(query: Option<&str>, path_params: Vec<(String, String)>) -> Get {
        let mut get: Vec<(String, String)> = Vec::new();
        let mut set = |k: String, v: String| {
            if let Some(slot) = get.iter_mut().find(|(key, _)| *key == k) {
                slot.1 = v;
            } else {
                get.push((k, v));
            }
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            set(php::urldecode(k), php::urldecode(v));
        }
        for (k, v) in path_params {
            set(k, v);
        }
        Get(get)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The authenticated user, as Yii's `user` component holds it.
struct Session {
    user: UserEntry,
}

impl Session {
    fn has_right(&self, section_action: &str, value: &str) -> bool {
        // `COsbdUser::hasRight` compares exactly: "all" does not imply "owner".
        self.user.right(section_action) == Some(value)
    }

    fn is_in(&self, people: &[String]) -> bool {
        people.contains(&self.user.uid)
    }

    fn shares_group(&self, groups: &[String]) -> bool {
        groups.iter().any(|g| self.user.groups.contains(g))
    }
}

impl Server {
    /// Handles one request under the application's base URL.
    pub(crate) fn handle(&mut self, req: &Request<'_>) -> Reply {
        match routes::resolve(req.is_get, req.path_info) {
            Route::NotFound { route } => html_not_found(&route),
            // The controller exists, so its JSON error action answers (after its own
            // beforeAction checks).
            Route::MissingAction => self.error_action(Some(404), None),
            Route::Api { action, params } => {
                let get = Get::new(req.query, params);
                match self.run(action, &get, req) {
                    Ok(reply) => reply,
                    Err(Stop::Json(reply)) => reply,
                    Err(Stop::Exception(message)) => self.error_action(Some(500), Some(&message)),
                }
            }
        }
    }

    /// `beforeAction`, run before every action including the error action.
    fn before_action(&self) -> Step<()> {
        if !self.config.enable {
            return fail(500, 500_022, "You have to enable the api in vm_config.php");
        }
        if php::empty(Some(&self.config.default_realm)) {
            return fail(
                500,
                500_023,
                "You have to set a default realm in vm_config.php",
            );
        }
        Ok(())
    }

    /// `actionError`: `code` is the error's HTTP code (`None` when called directly).
    fn error_action(&self, code: Option<u16>, message: Option<&str>) -> Reply {
        if let Err(Stop::Json(reply)) = self.before_action() {
            return reply;
        }
        if code == Some(404) {
            envelope(404, 404_000, Some("Unkown action"), vec![])
        } else {
            // HTTP 400 with code 500000: the server's own (odd) pairing.
            envelope(400, 500_000, message, vec![])
        }
    }

    fn ldap(&self) -> Step<()> {
        match &self.ldap_failure {
            Some(message) => Err(Stop::Exception(message.clone())),
            None => Ok(()),
        }
    }

    fn run(&mut self, action: Action, get: &Get, req: &Request<'_>) -> Step<Reply> {
        self.before_action()?;
        let ok = |code: u32, data: Vec<(String, PhpValue)>| envelope(200, code, None, data);
        match action {
            Action::Error => Ok(self.error_action(None, None)),
            Action::ServerRealms => {
                let realms = self.realms()?;
                Ok(ok(200_011, vec![("realms".into(), realms)]))
            }
            Action::UserLogin => {
                self.authenticate(req, get.get("realm"))?;
                Ok(logged_in(ok(200_001, vec![])))
            }
            Action::VmList => {
                let session = self.authenticate(req, get.get("realm"))?;
                let vms = match get.get("type").unwrap_or("") {
                    "dynamic" => self.dynamic_vms(&session, false, req)?,
                    "persistent" => self.persistent_vms(&session, req)?,
                    "all" => {
                        let mut vms = self.dynamic_vms(&session, true, req)?;
                        vms.extend(self.persistent_vms(&session, req)?);
                        vms
                    }
                    "owner" | "" => {
                        let mut vms = self.dynamic_vms(&session, false, req)?;
                        vms.extend(self.persistent_vms(&session, req)?);
                        vms
                    }
                    _ => {
                        return fail(
                            400,
                            400_032,
                            "Unkown type - Use nothing,all(default),dynamic,persistent",
                        )
                    }
                };
                Ok(logged_in(ok(
                    200_031,
                    vec![("vms".into(), PhpValue::List(vms))],
                )))
            }
            Action::VmAssign => {
                let session = self.authenticate(req, get.get("realm"))?;
                let vm = self.assign(&session, get.get("pool").unwrap_or(""), req)?;
                Ok(logged_in(ok(200_041, vec![("vm".into(), vm)])))
            }
            Action::VmMappingList => {
                let session = self.authenticate(req, get.get("realm"))?;
                let mac = self.mac(get, req, 403_056)?;
                let vm = self.mapping_vm(&session, mac.as_deref(), req)?;
                Ok(logged_in(ok(200_051, vec![("vm".into(), vm)])))
            }
            Action::VmMappingAssign => {
                let session = self.authenticate(req, get.get("realm"))?;
                let mac = self.mac(get, req, 403_066)?;
                let pool = get.get("pool").unwrap_or("").to_owned();
                let vm = self.mapping_assign(&session, &pool, mac.as_deref(), req)?;
                Ok(logged_in(ok(200_061, vec![("vm".into(), vm)])))
            }
        }
    }

    /// `ApiBackend::checkAuthentification` + `LdapUserIdentity::authenticate` (internal
    /// directory).
    fn authenticate(&self, req: &Request<'_>, realm_param: Option<&str>) -> Step<Session> {
        let Some((user, password)) = req.authorization.and_then(php_auth) else {
            return fail(400, 400_002, "HTTP-Auth missing");
        };
        if php::trim(&user).is_empty() || php::trim(&password).is_empty() {
            return fail(400, 400_005, "Password or username empty");
        }
        let realm_id = if php::empty(realm_param) {
            self.config.default_realm.as_str()
        } else {
            realm_param.unwrap_or_default()
        };
        self.ldap()?;
        let Some(realm) = self
            .directory
            .realms
            .iter()
            .find(|r| r.uid.eq_ignore_ascii_case(realm_id))
        else {
            return fail(401, 401_004, "Incorrect realm");
        };
        let Some(entry) = self.directory.user_by_name(&user) else {
            return fail(401, 401_003, "Incorrect credentials");
        };
        if entry.password != password {
            return fail(401, 401_003, "Incorrect credentials");
        }
        // Checked only after the password: a wrong password in a foreign realm is 401003.
        if entry.customer != realm.customer {
            return fail(401, 401_004, "Incorrect realm");
        }
        Ok(Session {
            user: entry.clone(),
        })
    }

    fn realms(&self) -> Step<PhpValue> {
        self.ldap()?;
        let realms = self
            .directory
            .realms
            .iter()
            .filter(|r| !php::empty(Some(&r.uid)))
            .map(|r| {
                PhpValue::Map(vec![
                    ("uid".into(), PhpValue::Str(r.uid.clone())),
                    (
                        "displayName".into(),
                        PhpValue::opt_str(r.display_name.as_deref()),
                    ),
                    (
                        "default".into(),
                        PhpValue::Bool(php::loose_eq(&r.uid, &self.config.default_realm)),
                    ),
                ])
            })
            .collect();
        Ok(PhpValue::List(realms))
    }

    fn spice_ip(&self, vm: &VmEntry, req: &Request<'_>) -> String {
        let node = self.directory.nodes.iter().find(|n| n.name == vm.node);
        let ip = match (self.config.spice_by_name, node) {
            (true, _) => vm.node.clone(),
            (false, Some(node)) => node.spice_ip.clone(),
            // `validate` makes every VM's node exist.
            (false, None) => String::new(),
        };
        if ip == "0.0.0.0" {
            req.server_ip.to_string()
        } else {
            ip
        }
    }

    fn pool_name(&self, uuid: &str) -> Option<&str> {
        self.directory
            .pool(uuid)
            .and_then(|p| p.display_name.as_deref())
    }

    /// `getVmStatus`.
    fn status(vm: &VmEntry, session: &Session) -> &'static str {
        match vm.vm_type {
            VmType::Dynamic => {
                if vm.people.is_empty() && !session.is_in(&vm.people) {
                    "assignable"
                } else {
                    "assigned"
                }
            }
            VmType::Persistent => {
                if vm.running {
                    "online"
                } else {
                    "offline"
                }
            }
        }
    }

    /// `convertInfosToArray` for a real VM entry.
    fn entry(
        &self,
        vm: &VmEntry,
        name: Option<&str>,
        status: Option<&str>,
        req: &Request<'_>,
        hide_console: bool,
    ) -> PhpValue {
        let console = |v: PhpValue| if hide_console { PhpValue::Null } else { v };
        PhpValue::Map(vec![
            ("uuid".into(), PhpValue::Str(vm.uuid.clone())),
            ("name".into(), PhpValue::opt_str(name)),
            ("ip".into(), console(PhpValue::Str(self.spice_ip(vm, req)))),
            ("node".into(), console(PhpValue::Str(vm.node.clone()))),
            (
                "port".into(),
                console(PhpValue::Str(vm.spice_port.to_string())),
            ),
            (
                "password".into(),
                console(PhpValue::Str(vm.spice_password.clone())),
            ),
            ("status".into(), PhpValue::opt_str(status)),
            ("type".into(), PhpValue::Str(vm.vm_type.as_str().into())),
            ("subtype".into(), PhpValue::Str(vm.subtype.clone())),
            ("os".into(), PhpValue::opt_str(vm.os.as_deref())),
            ("pool".into(), PhpValue::Str(vm.pool.clone())),
        ])
    }

    /// The synthetic "assignable" entry for a pool.
    fn stub(name: Option<&str>, pool: &str) -> PhpValue {
        PhpValue::Map(vec![
            ("uuid".into(), PhpValue::Null),
            ("name".into(), PhpValue::opt_str(name)),
            ("ip".into(), PhpValue::Null),
            ("node".into(), PhpValue::Null),
            ("port".into(), PhpValue::Null),
            ("password".into(), PhpValue::Null),
            ("status".into(), PhpValue::Str("assignable".into())),
            ("type".into(), PhpValue::Str("dynamic".into())),
            ("subtype".into(), PhpValue::Null),
            ("os".into(), PhpValue::Null),
            ("pool".into(), PhpValue::Str(pool.to_owned())),
        ])
    }

    /// `runningDynVms`: dynamic Desktop VMs of the pool, whatever their power state.
    fn desktop_vms<'s>(&'s self, pool: &'s str) -> impl Iterator<Item = &'s VmEntry> + 's {
        self.directory.vms.iter().filter(move |vm| {
            vm.pool.eq_ignore_ascii_case(pool)
                && vm.vm_type == VmType::Dynamic
                && vm.subtype == "Desktop"
        })
    }

    /// `getDynamicVms`.
    fn dynamic_vms(
        &self,
        session: &Session,
        show_all: bool,
        req: &Request<'_>,
    ) -> Step<Vec<PhpValue>> {
        if show_all {
            if !session.has_right("dynamicVM.view", "all") {
                return fail(
                    403,
                    403_033,
                    "The user doesn't have permission to list all vms",
                );
            }
            self.ldap()?;
            return Ok(self
                .directory
                .vms
                .iter()
                .filter(|vm| vm.vm_type == VmType::Dynamic)
                .map(|vm| {
                    let golden = vm.subtype == "Golden-Image";
                    let status = (!golden).then(|| Self::status(vm, session));
                    self.entry(vm, vm.display_name.as_deref(), status, req, golden)
                })
                .collect());
        }
        if !session.has_right("dynamicVM.view", "owner")
            && !session.has_right("dynamicVM.view", "all")
        {
            return Ok(vec![]);
        }
        self.ldap()?;
        let mut out = Vec::new();
        for pool in self
            .directory
            .pools
            .iter()
            .filter(|p| p.pool_type == PoolType::Dynamic)
        {
            if !session.shares_group(&pool.groups) && !session.is_in(&pool.people) {
                continue;
            }
            let mut free = false;
            let mut assigned = false;
            for vm in self.desktop_vms(&pool.uuid) {
                if vm.people.is_empty() {
                    free = true;
                }
                if session.is_in(&vm.people) {
                    let name = pool.display_name.as_deref();
                    out.push(self.entry(vm, name, Some(Self::status(vm, session)), req, false));
                    assigned = true;
                }
            }
            if free && !assigned {
                out.push(Self::stub(pool.display_name.as_deref(), &pool.uuid));
            }
        }
        Ok(out)
    }

    /// `getPersistentVms` via `LdapVm::getAssignedVms('persistent', ...)`.
    fn persistent_vms(&self, session: &Session, req: &Request<'_>) -> Step<Vec<PhpValue>> {
        let persistent = |vm: &&VmEntry| vm.vm_type == VmType::Persistent;
        let mut chosen: Vec<&VmEntry> = Vec::new();
        if session.has_right("persistentVM.view", "all") {
            self.ldap()?;
            chosen.extend(self.directory.vms.iter().filter(persistent));
        } else if session.has_right("persistentVM.view", "owner") {
            self.ldap()?;
            // Pools assigned to the user (`LdapVmPool::getAssignedPools('persistent')`).
            let pools: Vec<&str> = self
                .directory
                .pools
                .iter()
                .filter(|p| p.pool_type == PoolType::Persistent)
                .filter(|p| {
                    session.has_right("vmPool.view", "all")
                        || (session.has_right("vmPool.view", "owner")
                            && (session.shares_group(&p.groups) || session.is_in(&p.people)))
                })
                .map(|p| p.uuid.as_str())
                .collect();
            let candidates = self.directory.vms.iter().filter(persistent);
            let by_pool = candidates
                .clone()
                .filter(|vm| pools.iter().any(|p| p.eq_ignore_ascii_case(&vm.pool)));
            let by_group = candidates
                .clone()
                .filter(|vm| session.shares_group(&vm.groups));
            let by_person = candidates.filter(|vm| session.is_in(&vm.people));
            // PHP keys the result by UUID: first occurrence wins, order kept.
            for vm in by_pool.chain(by_group).chain(by_person) {
                if !chosen.iter().any(|c| c.uuid == vm.uuid) {
                    chosen.push(vm);
                }
            }
        }
        Ok(chosen
            .into_iter()
            .map(|vm| {
                self.entry(
                    vm,
                    vm.display_name.as_deref(),
                    Some(Self::status(vm, session)),
                    req,
                    false,
                )
            })
            .collect())
    }

    /// `assignVm`: take the pool's first free Desktop VM. No membership check and no check for
    /// an existing assignment, as in the source.
    fn assign(&mut self, session: &Session, pool: &str, req: &Request<'_>) -> Step<PhpValue> {
        self.ldap()?;
        let Some(pool_entry) = self.directory.pool(pool) else {
            return fail(400, 400_042, "VM pool not found");
        };
        let pool_uuid = pool_entry.uuid.clone();
        let Some(uuid) = self
            .desktop_vms(&pool_uuid)
            .find(|vm| vm.people.is_empty())
            .map(|vm| vm.uuid.clone())
        else {
            return fail(500, 500_043, "No free vm available");
        };
        self.add_person(&uuid, &session.user.uid);
        Ok(self.assigned_entry(&uuid, req))
    }

    fn add_person(&mut self, vm_uuid: &str, uid: &str) {
        if let Some(vm) = self.directory.vms.iter_mut().find(|v| v.uuid == vm_uuid) {
            vm.people.push(uid.to_owned());
        }
    }

    fn assigned_entry(&self, vm_uuid: &str, req: &Request<'_>) -> PhpValue {
        match self.directory.vm(vm_uuid) {
            Some(vm) => self.entry(vm, self.pool_name(&vm.pool), Some("assigned"), req, false),
            None => PhpValue::Null,
        }
    }

    /// The MAC logic shared by both mapping actions; `disabled_code` differs (403056/403066).
    fn mac(&self, get: &Get, req: &Request<'_>, disabled_code: u32) -> Step<Option<String>> {
        // `getQuery("mac") != null`: absent and "" both count as not given.
        let given = get.get("mac").filter(|m| !m.is_empty());
        match (self.config.mac_by_parameter, given) {
            (true, Some(mac)) => Ok(Some(mac.to_owned())),
            (false, Some(_)) => fail(403, disabled_code, "MacByParameter is disabled in config"),
            (_, None) => Ok(self.arp_lookup(req.remote_ip)),
        }
    }

    /// `Utils::getMacAddress`: the ARP table's entry for the caller, lower-cased.
    fn arp_lookup(&self, ip: IpAddr) -> Option<String> {
        let ip = ip.to_canonical().to_string();
        self.directory
            .arp
            .iter()
            .find(|a| a.ip == ip && valid_mac(&a.mac))
            .map(|a| a.mac.to_lowercase())
    }

    /// [guess] `MappingWrapper::getMappedDynVM`: dynvmuser check, then the mapping.
    fn mapped_vm(
        &self,
        session: &Session,
        mac: &str,
        not_dynvmuser: (u32, &str),
        no_vm: (u32, &str),
    ) -> Step<VmEntry> {
        self.ldap()?;
        let is_dynvmuser = self
            .directory
            .dynvmuser
            .as_deref()
            .is_some_and(|d| d.eq_ignore_ascii_case(&session.user.name));
        if !is_dynvmuser {
            return fail(400, not_dynvmuser.0, not_dynvmuser.1);
        }
        let mac = mac.trim_end_matches('\n');
        self.directory
            .mappings
            .iter()
            .find(|m| m.mac.eq_ignore_ascii_case(mac))
            .and_then(|m| self.directory.vm(&m.vm))
            .cloned()
            .ok_or_else(|| Stop::Json(envelope(400, no_vm.0, Some(no_vm.1), vec![])))
    }

    /// `getMappingVm`.
    fn mapping_vm(
        &self,
        session: &Session,
        mac: Option<&str>,
        req: &Request<'_>,
    ) -> Step<PhpValue> {
        if !self.config.school_module {
            return fail(500, 500_052, "The school module isn't available");
        }
        let Some(mac) = mac.filter(|m| valid_mac(m)) else {
            return fail(
                400,
                400_055,
                "Invalid macaddress or don't connected locally",
            );
        };
        let vm = self.mapped_vm(
            session,
            mac,
            (400_053, "You've to use the dynvmuser"),
            (400_054, "There's no vm for this mac available"),
        )?;
        let pool_name = self.pool_name(&vm.pool);
        if session.is_in(&vm.people) {
            Ok(self.entry(&vm, pool_name, Some(Self::status(&vm, session)), req, false))
        } else {
            Ok(Self::stub(pool_name, &vm.pool))
        }
    }

    /// `assignMappingVm`; the wrapper's checks after the dynvmuser and mapping ones are a
    /// guess: the pool must be the mapped VM's, and the user must not be in its people yet.
    fn mapping_assign(
        &mut self,
        session: &Session,
        pool: &str,
        mac: Option<&str>,
        req: &Request<'_>,
    ) -> Step<PhpValue> {
        if !self.config.school_module {
            return fail(500, 500_062, "The school module isn't available");
        }
        let Some(mac) = mac.filter(|m| valid_mac(m)) else {
            return fail(
                400,
                400_065,
                "Invalid macaddress or don't connected locally",
            );
        };
        let vm = self.mapped_vm(
            session,
            mac,
            (400_063, "You've to use the dynvmuser"),
            (400_064, "There's no vm for this mac available"),
        )?;
        if self.directory.pool(pool).is_none() || !vm.pool.eq_ignore_ascii_case(pool) {
            return fail(400, 400_066, "This pool isn't valid");
        }
        if session.is_in(&vm.people) {
            return fail(
                400,
                400_067,
                "The user is already assigned to this mapped vm",
            );
        }
        self.add_person(&vm.uuid, &session.user.uid);
        Ok(self.assigned_entry(&vm.uuid, req))
    }
}

fn logged_in(mut reply: Reply) -> Reply {
    reply.session_cookie = true;
    reply
}

/// `Utils::isValidMacAddress`: `/^([0-9A-Fa-f]{2}[:]){5}([0-9A-Fa-f]{2})$/` — PCRE's `$` also
/// matches before one final newline.
pub(crate) fn valid_mac(mac: &str) -> bool {
    let mac = mac.strip_suffix('\n').unwrap_or(mac);
    let parts: Vec<&str> = mac.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// PHP's `PHP_AUTH_USER` / `PHP_AUTH_PW`: set only for a well-formed `Basic` header whose
/// decoded value contains a `:`.
fn php_auth(header: &[u8]) -> Option<(String, String)> {
    let header = std::str::from_utf8(header).ok()?;
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8_lossy(&decoded).into_owned();
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_rule_matches_the_source() {
        assert!(valid_mac("52:54:00:AB:cd:ef"));
        assert!(
            valid_mac("52:54:00:ab:cd:ef\n"),
            "PCRE $ before a final newline"
        );
        for bad in [
            "52-54-00-ab-cd-ef",
            "525400abcdef",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:ef:00",
            "",
            "52:54:00:ab:cd:eg",
        ] {
            assert!(!valid_mac(bad), "{bad:?}");
        }
    }

    #[test]
    fn php_auth_needs_basic_and_a_colon() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            php_auth(format!("Basic {}", b64("alice:pw:x")).as_bytes()),
            Some(("alice".into(), "pw:x".into()))
        );
        assert_eq!(
            php_auth(format!("basic {}", b64("a:")).as_bytes()),
            Some(("a".into(), String::new()))
        );
        assert_eq!(php_auth(format!("Basic {}", b64("alice")).as_bytes()), None);
        assert_eq!(php_auth(b"Bearer abc"), None);
        assert_eq!(php_auth(b"Basic !!!"), None);
    }
}
