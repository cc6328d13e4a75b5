//! Access control: users, roles, ACLs with propagation, tokens with privilege
//! separation, the 403 texts route by route, `/cluster/resources` filtering,
//! disabled/expired users, console tasks, and `/_sim/state`.

use std::path::Path;

use reqwest::Method;
use serde_json::Value;

use crate::common::{enc, Answer, Api};

/// A logged-in user (ticket + CSRF) or a token, talking to the simulator.
struct As<'a> {
    api: &'a Api,
    auth: Auth,
}

enum Auth {
    Ticket { ticket: String, csrf: String },
    Token(String),
}

impl<'a> As<'a> {
    async fn login(api: &'a Api, user: &str, password: &str) -> Self {
        let a = Self::try_login(api, user, password).await;
        assert_eq!(a.status, 200, "login {user}: {a:?}");
        Self {
            api,
            auth: Auth::Ticket {
                ticket: a.data()["ticket"].as_str().unwrap().to_owned(),
                csrf: a.data()["CSRFPreventionToken"].as_str().unwrap().to_owned(),
            },
        }
    }

    async fn try_login(api: &Api, user: &str, password: &str) -> Answer {
        let resp = api
            .http
            .post(api.url("/access/ticket"))
            .form(&[("username", user), ("password", password)])
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        Answer { status, body }
    }

    fn token(api: &'a Api, full: &str) -> Self {
        Self {
            api,
            auth: Auth::Token(full.to_owned()),
        }
    }

    async fn call(&self, method: Method, path: &str, params: &[(&str, &str)]) -> Answer {
        let mut req = self.api.http.request(method.clone(), self.api.url(path));
        req = match &self.auth {
            Auth::Ticket { ticket, csrf } => req
                .header("Cookie", format!("PVEAuthCookie={}", enc(ticket)))
                .header("CSRFPreventionToken", csrf),
            Auth::Token(t) => req.header("Authorization", format!("PVEAPIToken={t}")),
        };
        req = if method == Method::GET || method == Method::DELETE {
            req.query(params)
        } else {
            req.form(params)
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, body }
    }
}

const PW: &str = "student-pass-1";

async fn user(api: &Api, id: &str) {
    api.post("/access/users", &[("userid", id), ("password", PW)])
        .await;
}

async fn role(api: &Api, id: &str, privs: &str) {
    api.post("/access/roles", &[("roleid", id), ("privs", privs)])
        .await;
}

async fn grant(api: &Api, path: &str, who: (&str, &str), role: &str, propagate: &str) {
    api.put(
        "/access/acl",
        &[
            ("path", path),
            (who.0, who.1),
            ("roles", role),
            ("propagate", propagate),
        ],
    )
    .await;
}

fn assert_403(a: &Answer, what: &str) {
    assert_eq!(a.status, 403, "{a:?}");
    assert_eq!(a.message(), format!("Permission check failed ({what})\n"));
}

#[test]
fn the_enforced_permissions_are_the_schemas() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/pve-api-schema.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the full schema at {} is needed: {e}", path.display()));
    let full: Value = serde_json::from_str(&text).unwrap();
    let mut index = std::collections::BTreeMap::new();
    fn walk(n: &Value, index: &mut std::collections::BTreeMap<(String, String), Value>) {
        match n {
            Value::Array(a) => a.iter().for_each(|x| walk(x, index)),
            Value::Object(o) => {
                if let (Some(info), Some(p)) = (o.get("info"), o.get("path")) {
                    for (m, d) in info.as_object().unwrap() {
                        index.insert((p.as_str().unwrap().to_owned(), m.clone()), d.clone());
                    }
                }
                if let Some(c) = o.get("children") {
                    walk(c, index);
                }
            }
            _ => {}
        }
    }
    walk(&full, &mut index);
    let mut checked = 0;
    for ep in pve_schema::schema().endpoints() {
        let info = &index[&(ep.path.clone(), ep.method.clone())];
        let mut want = info
            .get("permissions")
            .cloned()
            .unwrap_or(Value::Object(Default::default()));
        if info.get("allowtoken").and_then(Value::as_i64) == Some(0) {
            want["allowtoken"] = 0.into();
        }
        let got = pve_sim::route_permissions(&ep.method, &ep.path)
            .unwrap_or_else(|| panic!("no permissions for {} {}", ep.method, ep.path));
        assert_eq!(got, &want, "{} {}", ep.method, ep.path);
        checked += 1;
    }
    assert!(checked > 140, "{checked}");
}

/// One privilege at a time: refused with PVE's text without it, allowed with a role
/// that holds just that privilege on the path.
#[tokio::test]
async fn each_route_needs_the_privilege_the_schema_names() {
    let api = Api::start(0.01).await;
    api.clone_vm(300, "victim").await;
    api.clone_vm(301, "tmpl").await;
    user(&api, "u1@pve").await;
    let u1 = As::login(&api, "u1@pve", PW).await;

    struct Case {
        method: Method,
        path: &'static str,
        params: &'static [(&'static str, &'static str)],
        acl_path: &'static str,
        privs: &'static str,
        denied: &'static str,
    }
    let cases = [
        Case {
            method: Method::GET,
            path: "/nodes/pve1/qemu/100/status/current",
            params: &[],
            acl_path: "/vms/100",
            privs: "VM.Audit",
            denied: "/vms/100, VM.Audit",
        },
        Case {
            method: Method::POST,
            path: "/nodes/pve1/qemu/100/vncproxy",
            params: &[("websocket", "1")],
            acl_path: "/vms/100",
            privs: "VM.Console",
            denied: "/vms/100, VM.Console",
        },
        Case {
            method: Method::POST,
            path: "/nodes/pve1/qemu/300/status/start",
            params: &[],
            acl_path: "/vms/300",
            privs: "VM.PowerMgmt",
            denied: "/vms/300, VM.PowerMgmt",
        },
        Case {
            method: Method::PUT,
            path: "/nodes/pve1/qemu/100/config",
            params: &[("description", "x")],
            acl_path: "/vms/100",
            privs: "VM.Config.Options",
            denied: "/vms/100, VM.Config.Disk|VM.Config.CDROM|VM.Config.CPU|VM.Config.Memory|VM.Config.Network|VM.Config.HWType|VM.Config.Options|VM.Config.Cloudinit",
        },
        Case {
            method: Method::POST,
            path: "/nodes/pve1/qemu/301/template",
            params: &[],
            acl_path: "/vms/301",
            privs: "VM.Allocate",
            denied: "/vms/301, VM.Allocate",
        },
        Case {
            method: Method::POST,
            path: "/pools",
            params: &[("poolid", "p1")],
            acl_path: "/pool/p1",
            privs: "Pool.Allocate",
            denied: "/pool/p1, Pool.Allocate",
        },
        Case {
            method: Method::GET,
            path: "/cluster/status",
            params: &[],
            acl_path: "/",
            privs: "Sys.Audit",
            denied: "/, Sys.Audit",
        },
        Case {
            method: Method::PUT,
            path: "/nodes/pve1/qemu/100/firewall/options",
            params: &[("enable", "1")],
            acl_path: "/vms/100",
            privs: "VM.Config.Network",
            denied: "/vms/100, VM.Config.Network",
        },
        Case {
            method: Method::POST,
            path: "/access/roles",
            params: &[("roleid", "Made"), ("privs", "VM.Audit")],
            acl_path: "/access",
            privs: "Sys.Modify",
            denied: "/access, Sys.Modify",
        },
        Case {
            method: Method::PUT,
            path: "/access/acl",
            params: &[("path", "/vms/100"), ("users", "u1@pve"), ("roles", "PVEAuditor")],
            acl_path: "/vms/100",
            privs: "Permissions.Modify",
            denied: "/vms/100, Permissions.Modify|VM.Allocate",
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        let a = u1.call(c.method.clone(), c.path, c.params).await;
        assert_403(&a, c.denied);
        let role_id = format!("Only{i}");
        role(&api, &role_id, c.privs).await;
        grant(&api, c.acl_path, ("users", "u1@pve"), &role_id, "0").await;
        let a = u1.call(c.method.clone(), c.path, c.params).await;
        assert_eq!(
            a.status, 200,
            "{} {} with {}: {a:?}",
            c.method, c.path, c.privs
        );
    }
}

#[tokio::test]
async fn user_administration_needs_realm_and_group_privileges() {
    let api = Api::start(0.01).await;
    user(&api, "admin@pve").await;
    let admin = As::login(&api, "admin@pve", PW).await;
    let a = admin
        .call(Method::POST, "/access/users", &[("userid", "new@pve")])
        .await;
    assert_403(&a, "/access/realm/pve, Realm.AllocateUser");
    role(&api, "RealmUsers", "Realm.AllocateUser").await;
    grant(
        &api,
        "/access/realm/pve",
        ("users", "admin@pve"),
        "RealmUsers",
        "1",
    )
    .await;
    let a = admin
        .call(Method::POST, "/access/users", &[("userid", "new@pve")])
        .await;
    assert_403(&a, "/access/groups, User.Modify");
    grant(
        &api,
        "/access/groups",
        ("users", "admin@pve"),
        "PVEUserAdmin",
        "1",
    )
    .await;
    let a = admin
        .call(Method::POST, "/access/users", &[("userid", "new@pve")])
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let a = admin
        .call(Method::PUT, "/access/users/new@pve", &[("enable", "0")])
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(api.get("/access/users/new@pve", &[]).await["enable"], 0);
}

#[tokio::test]
async fn propagation_pools_groups_and_noaccess() {
    let api = Api::start(0.01).await;
    user(&api, "u1@pve").await;
    let u1 = As::login(&api, "u1@pve", PW).await;
    let status = "/nodes/pve1/qemu/100/status/current";

    // On `/` without propagate: only `/` itself.
    grant(&api, "/", ("users", "u1@pve"), "PVEAuditor", "0").await;
    assert_eq!(
        u1.call(Method::GET, "/cluster/status", &[]).await.status,
        200
    );
    assert_403(
        &u1.call(Method::GET, status, &[]).await,
        "/vms/100, VM.Audit",
    );
    // With propagate: everything below.
    grant(&api, "/", ("users", "u1@pve"), "PVEAuditor", "1").await;
    assert_eq!(u1.call(Method::GET, status, &[]).await.status, 200);
    // NoAccess on the guest wins over the inherited role.
    grant(&api, "/vms/100", ("users", "u1@pve"), "NoAccess", "1").await;
    assert_403(
        &u1.call(Method::GET, status, &[]).await,
        "/vms/100, VM.Audit",
    );

    // A pool's ACL reaches its guests; a group's ACL reaches its members.
    user(&api, "u2@pve").await;
    api.post("/access/groups", &[("groupid", "students")]).await;
    api.put("/access/users/u2@pve", &[("groups", "students")])
        .await;
    api.post("/pools", &[("poolid", "exam")]).await;
    api.put("/pools/exam", &[("vms", "200")]).await;
    grant(&api, "/pool/exam", ("groups", "students"), "PVEVMUser", "1").await;
    let u2 = As::login(&api, "u2@pve", PW).await;
    assert_eq!(
        u2.call(Method::GET, "/nodes/pve2/qemu/200/status/current", &[])
            .await
            .status,
        200
    );
    assert_403(
        &u2.call(Method::GET, status, &[]).await,
        "/vms/100, VM.Audit",
    );
    // A user entry at the same path replaces the group's.
    grant(&api, "/pool/exam", ("users", "u2@pve"), "NoAccess", "1").await;
    assert_403(
        &u2.call(Method::GET, "/nodes/pve2/qemu/200/status/current", &[])
            .await,
        "/vms/200, VM.Audit",
    );
    let perms = api
        .get(
            "/access/permissions",
            &[("userid", "u1@pve"), ("path", "/vms/100")],
        )
        .await;
    assert_eq!(perms["/vms/100"], serde_json::json!({}));
}

#[tokio::test]
async fn tokens_with_privilege_separation_get_the_intersection() {
    let api = Api::start(0.01).await;
    user(&api, "u1@pve").await;
    grant(&api, "/vms/100", ("users", "u1@pve"), "PVEVMUser", "1").await;
    let sep = api
        .post("/access/users/u1@pve/token/sep", &[("privsep", "1")])
        .await;
    assert_eq!(sep["full-tokenid"], "u1@pve!sep");
    let full = format!("u1@pve!sep={}", sep["value"].as_str().unwrap());
    let tok = As::token(&api, &full);
    let status = "/nodes/pve1/qemu/100/status/current";
    assert_403(
        &tok.call(Method::GET, status, &[]).await,
        "/vms/100, VM.Audit",
    );
    // The token's own ACL: audit and allocate; the user has no allocate → audit only.
    role(&api, "AuditAlloc", "VM.Audit,VM.Allocate").await;
    grant(
        &api,
        "/vms/100",
        ("tokens", "u1@pve!sep"),
        "AuditAlloc",
        "1",
    )
    .await;
    assert_eq!(tok.call(Method::GET, status, &[]).await.status, 200);
    assert_403(
        &tok.call(Method::POST, "/nodes/pve1/qemu/100/vncproxy", &[])
            .await,
        "/vms/100, VM.Console",
    );
    assert_403(
        &tok.call(Method::POST, "/nodes/pve1/qemu/100/template", &[])
            .await,
        "/vms/100, VM.Allocate",
    );
    // Without privilege separation a token has its user's privileges.
    let open = api
        .post("/access/users/u1@pve/token/open", &[("privsep", "0")])
        .await;
    let open = As::token(
        &api,
        &format!("u1@pve!open={}", open["value"].as_str().unwrap()),
    );
    assert_eq!(
        open.call(Method::POST, "/nodes/pve1/qemu/100/vncproxy", &[])
            .await
            .status,
        200
    );
    // Tokens cannot change passwords.
    let a = open
        .call(
            Method::PUT,
            "/access/password",
            &[("userid", "u1@pve"), ("password", "another-one")],
        )
        .await;
    assert_eq!(a.status, 403, "{a:?}");
    assert!(
        a.message().contains("not available with API token"),
        "{a:?}"
    );
    // A wrong secret is refused.
    let bad = As::token(&api, "u1@pve!sep=00000000-0000-0000-0000-000000000000");
    assert_eq!(bad.call(Method::GET, status, &[]).await.status, 401);
}

#[tokio::test]
async fn resources_and_lists_show_only_what_the_user_may_audit() {
    let api = Api::start(0.01).await;
    user(&api, "u1@pve").await;
    grant(&api, "/vms/200", ("users", "u1@pve"), "PVEVMUser", "1").await;
    let u1 = As::login(&api, "u1@pve", PW).await;
    let res = u1.call(Method::GET, "/cluster/resources", &[]).await;
    let ids: Vec<String> = res
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec!["qemu/200".to_owned()]);
    let on_pve2 = u1.call(Method::GET, "/nodes/pve2/qemu", &[]).await;
    assert_eq!(on_pve2.data().as_array().unwrap().len(), 1);
    let on_pve1 = u1.call(Method::GET, "/nodes/pve1/qemu", &[]).await;
    assert_eq!(on_pve1.data(), &serde_json::json!([]));
    // Root still sees everything.
    let all = api.get("/cluster/resources", &[("type", "vm")]).await;
    assert!(all.as_array().unwrap().len() >= 5);
    // The user list shows only themselves.
    let users = u1.call(Method::GET, "/access/users", &[]).await;
    let ids: Vec<&str> = users
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userid"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["u1@pve"]);
}

#[tokio::test]
async fn disabled_or_expired_users_are_refused_on_their_next_request() {
    let api = Api::start(0.01).await;
    user(&api, "u1@pve").await;
    user(&api, "u2@pve").await;
    let u1 = As::login(&api, "u1@pve", PW).await;
    let u2 = As::login(&api, "u2@pve", PW).await;
    assert_eq!(u1.call(Method::GET, "/version", &[]).await.status, 200);
    api.put("/access/users/u1@pve", &[("enable", "0")]).await;
    assert_eq!(u1.call(Method::GET, "/version", &[]).await.status, 401);
    assert_eq!(As::try_login(&api, "u1@pve", PW).await.status, 401);
    api.put("/access/users/u2@pve", &[("expire", "1000")]).await;
    assert_eq!(u2.call(Method::GET, "/version", &[]).await.status, 401);
    assert_eq!(As::try_login(&api, "u2@pve", PW).await.status, 401);
    assert_eq!(As::try_login(&api, "u3@pve", PW).await.status, 401);
    // Re-enabled: works again.
    api.put("/access/users/u1@pve", &[("enable", "1")]).await;
    assert_eq!(u1.call(Method::GET, "/version", &[]).await.status, 200);
}

#[tokio::test]
async fn a_console_task_outlives_its_disabled_user_until_it_is_stopped() {
    let api = Api::start(0.01).await;
    user(&api, "u1@pve").await;
    user(&api, "u2@pve").await;
    grant(&api, "/vms/100", ("users", "u1@pve"), "PVEVMUser", "1").await;
    let u1 = As::login(&api, "u1@pve", PW).await;
    let u2 = As::login(&api, "u2@pve", PW).await;
    let a = u1
        .call(
            Method::POST,
            "/nodes/pve1/qemu/100/vncproxy",
            &[("websocket", "1"), ("generate-password", "1")],
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let d = a.data();
    assert!(d["ticket"].as_str().unwrap().starts_with("PVEVNC:"));
    assert!(d["cert"].as_str().unwrap().contains("BEGIN CERTIFICATE"));
    assert_eq!(d["user"], "u1@pve");
    assert_eq!(d["password"].as_str().unwrap().len(), 8);
    let upid = d["upid"].as_str().unwrap().to_owned();
    assert!(upid.contains(":vncproxy:100:u1@pve:"), "{upid}");
    let task = format!("/nodes/pve1/tasks/{}", enc(&upid));

    // The owner sees their task; another user needs Sys.Audit / Sys.Modify.
    let own = u1.call(Method::GET, &format!("{task}/status"), &[]).await;
    assert_eq!(own.data()["status"], "running");
    assert_403(
        &u2.call(Method::GET, &format!("{task}/status"), &[]).await,
        "/nodes/pve1, Sys.Audit",
    );
    assert_403(
        &u2.call(Method::DELETE, &task, &[]).await,
        "/nodes/pve1, Sys.Modify",
    );
    let u2_tasks = u2
        .call(Method::GET, "/nodes/pve1/tasks", &[("source", "active")])
        .await;
    assert_eq!(u2_tasks.data(), &serde_json::json!([]));

    // Disabling the user refuses their requests but leaves the console running.
    api.put("/access/users/u1@pve", &[("enable", "0")]).await;
    assert_eq!(u1.call(Method::GET, "/version", &[]).await.status, 401);
    let active = api
        .get(
            "/nodes/pve1/tasks",
            &[
                ("source", "active"),
                ("typefilter", "vncproxy"),
                ("vmid", "100"),
            ],
        )
        .await;
    assert_eq!(active.as_array().unwrap().len(), 1);
    assert_eq!(api.sim.state()["consoles"].as_array().unwrap().len(), 1);
    api.delete(&task, &[]).await;
    let st = api.get(&format!("{task}/status"), &[]).await;
    assert_eq!(st["status"], "stopped");
    assert_eq!(st["exitstatus"], "interrupted by signal");
    assert_eq!(api.sim.state()["consoles"], serde_json::json!([]));

    // termproxy forks the same kind of task; stopping the guest ends it.
    let t = api
        .post("/nodes/pve1/qemu/100/termproxy", &[("serial", "serial0")])
        .await;
    let term_upid = t["upid"].clone();
    let running = api
        .get(
            &format!(
                "/nodes/pve1/tasks/{}/status",
                enc(term_upid.as_str().unwrap())
            ),
            &[],
        )
        .await;
    assert_eq!(running["status"], "running");
    api.post_ok("/nodes/pve1/qemu/100/status/stop", &[]).await;
    assert_eq!(api.wait_task(&term_upid).await["exitstatus"], "OK");
    let refused = api
        .call(Method::POST, "/nodes/pve1/qemu/100/vncproxy", &[])
        .await;
    assert_eq!(refused.status, 500);
    assert_eq!(refused.message(), "VM 100 not running\n");
}

#[tokio::test]
async fn state_shows_users_and_acl_but_no_secret_and_destroy_drops_vm_acls() {
    let api = Api::start(0.01).await;
    api.clone_vm(300, "s1").await;
    api.post(
        "/access/users",
        &[
            ("userid", "s1@pve"),
            ("password", "very-secret-pw"),
            ("comment", "labctl lab x"),
        ],
    )
    .await;
    let tok = api.post("/access/users/s1@pve/token/tk", &[]).await;
    grant(&api, "/vms/300", ("users", "s1@pve"), "PVEVMUser", "1").await;
    let state = api.sim.state();
    let text = state.to_string();
    assert!(!text.contains("very-secret-pw"));
    assert!(!text.contains(tok["value"].as_str().unwrap()));
    let acc = &state["access"];
    assert_eq!(acc["users"]["s1@pve"]["comment"], "labctl lab x");
    assert_eq!(acc["users"]["s1@pve"]["has_password"], true);
    assert_eq!(acc["users"]["s1@pve"]["tokens"]["tk"]["privsep"], true);
    assert!(acc["acl"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["path"] == "/vms/300" && e["ugid"] == "s1@pve"));
    assert!(acc["user_cfg_writes"].as_u64().unwrap() >= 3);
    api.post_ok("/nodes/pve1/qemu/300/status/stop", &[])
        .await
        .to_string();
    let upid = api.delete("/nodes/pve1/qemu/300", &[]).await;
    api.wait_task(&upid).await;
    let acl = api.get("/access/acl", &[]).await;
    assert!(!acl
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["path"] == "/vms/300"));
}

#[tokio::test]
async fn access_objects_validate_their_input() {
    let api = Api::start(0.01).await;
    let a = api
        .call(Method::POST, "/access/users", &[("userid", "nobody")])
        .await;
    assert_eq!(a.status, 400, "{a:?}");
    user(&api, "u1@pve").await;
    let a = api
        .call(Method::POST, "/access/users", &[("userid", "u1@pve")])
        .await;
    assert_eq!(
        a.message(),
        "create user failed: user 'u1@pve' already exists\n"
    );
    let a = api
        .call(
            Method::POST,
            "/access/roles",
            &[("roleid", "R"), ("privs", "VM.Monitor")],
        )
        .await;
    assert_eq!(a.message(), "invalid privilege 'VM.Monitor'\n");
    let a = api
        .call(
            Method::PUT,
            "/access/roles/PVEVMUser",
            &[("privs", "VM.Audit")],
        )
        .await;
    assert_eq!(a.status, 500, "{a:?}");
    let a = api
        .call(
            Method::PUT,
            "/access/acl",
            &[
                ("path", "/vms/100"),
                ("users", "ghost@pve"),
                ("roles", "PVEVMUser"),
            ],
        )
        .await;
    assert_eq!(a.message(), "user 'ghost@pve' does not exist\n");
    let a = api
        .call(
            Method::PUT,
            "/access/acl",
            &[
                ("path", "/nowhere"),
                ("users", "u1@pve"),
                ("roles", "PVEVMUser"),
            ],
        )
        .await;
    assert_eq!(a.status, 400, "{a:?}");
    let roles = api.get("/access/roles", &[]).await;
    let vmuser = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["roleid"] == "PVEVMUser")
        .unwrap();
    assert_eq!(
        vmuser["privs"],
        "VM.Audit,VM.Backup,VM.Config.CDROM,VM.Config.Cloudinit,VM.Console,VM.GuestAgent.Audit,VM.GuestAgent.FileRead,VM.GuestAgent.FileSystemMgmt,VM.GuestAgent.FileWrite,VM.PowerMgmt"
    );
    // A user changes their own password with their current one as confirmation.
    let u1 = As::login(&api, "u1@pve", PW).await;
    let a = u1
        .call(
            Method::PUT,
            "/access/password",
            &[
                ("userid", "u1@pve"),
                ("password", "brand-new-pw"),
                ("confirmation-password", PW),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(As::try_login(&api, "u1@pve", PW).await.status, 401);
    As::login(&api, "u1@pve", "brand-new-pw").await;
}
