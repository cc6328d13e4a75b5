//! A simulator lab shared by the test binaries.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pve_access::exam::{GrantOptions, Realm, RevokeOptions, Seat};
use pve_access::{AccessApi, Result, Sheet, Userid, VmId};
use pve_auth::{Observer, Params, PveClient, RequestRecord, Secret};
use pve_sim::{SimHandle, Simulator};
use serde_json::Value;

pub const PASSWORD: &str = "secret";
pub const LAB: &str = "exam1";

pub struct Lab {
    pub sim: SimHandle,
    pub log: Arc<Mutex<Vec<RequestRecord>>>,
    pub admin: AccessApi,
    pub dir: tempfile::TempDir,
}

impl Lab {
    pub async fn start() -> Self {
        let sim = Simulator::builder()
            .password(PASSWORD)
            .plain_http(true)
            .time_scale(0.01)
            .start()
            .await
            .unwrap();
        let log: Arc<Mutex<Vec<RequestRecord>>> = Arc::default();
        let client = PveClient::builder(&sim.base_url())
            .password("root@pam", Secret::new(PASSWORD))
            .observer(recorder(&log))
            .build()
            .unwrap();
        Self {
            sim,
            log,
            admin: AccessApi::new(client),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn client(&self) -> &PveClient {
        self.admin.client()
    }

    pub async fn wait(&self, upid: &str) {
        let node = upid.split(':').nth(1).unwrap();
        let path = pve_auth::api_path(&["nodes", node, "tasks", upid, "status"]);
        for _ in 0..4000 {
            let s: Value = self.client().get(&path, &Params::new()).await.unwrap();
            if s["status"] == "stopped" {
                assert_eq!(s["exitstatus"], "OK", "{upid}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{upid} did not finish");
    }

    /// `n` running guests 1001… cloned from template 9000, one seat each.
    pub async fn seats(&self, n: u32) -> Vec<Seat> {
        // PVE admits about 3 clones at once per storage: clone in batches of 3.
        let mut upids: Vec<String> = Vec::new();
        for i in 1..=n {
            if upids.len() == 3 {
                for u in upids.drain(..) {
                    self.wait(&u).await;
                }
            }
            let p = Params::new()
                .with("newid", 1000 + i)
                .with("name", format!("exam-{i:02}"));
            let upid: String = self
                .client()
                .post("/nodes/pve1/qemu/9000/clone", &p)
                .await
                .unwrap();
            upids.push(upid);
        }
        for u in &upids {
            self.wait(u).await;
        }
        let mut seats = Vec::new();
        for i in 1..=n {
            let path = format!("/nodes/pve1/qemu/{}/status/start", 1000 + i);
            let upid: String = self.client().post(&path, &Params::new()).await.unwrap();
            self.wait(&upid).await;
            let mut s = Seat::new(
                &format!("s{i:02}"),
                &Realm::Pve,
                VmId::new(1000 + i).unwrap(),
            )
            .unwrap();
            s.hostname = Some(format!("exam-{i:02}"));
            seats.push(s);
        }
        seats
    }

    pub fn sheet_path(&self) -> PathBuf {
        self.dir.path().join("sheet.json")
    }

    pub fn opts(&self) -> GrantOptions {
        GrantOptions {
            lab: LAB.into(),
            realm: Realm::Pve,
            sheet: self.sheet_path(),
            console_host: Some("pve.example".into()),
            reset: pve_access::exam::Reset::Nobody,
            dry_run: false,
        }
    }

    pub fn revoke_opts(&self) -> RevokeOptions {
        RevokeOptions {
            lab: LAB.into(),
            dry_run: false,
        }
    }

    pub fn login(&self) -> impl Fn(&Userid, &Secret) -> Result<PveClient> + Send + Sync {
        let base = self.sim.base_url();
        let log = self.log.clone();
        move |u: &Userid, pw: &Secret| {
            Ok(PveClient::builder(&base)
                .password(u.as_str(), pw.clone())
                .observer(recorder(&log))
                .build()?)
        }
    }

    pub fn state(&self) -> Value {
        self.sim.state()
    }

    pub fn writes(&self) -> u64 {
        self.state()["access"]["user_cfg_writes"].as_u64().unwrap()
    }

    pub fn acl_has(&self, path: &str, ugid: &str) -> bool {
        self.state()["access"]["acl"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == path && e["ugid"] == ugid)
    }

    /// A user and an ACL entry that are not the lab's.
    pub async fn foreign(&self, on_vm: u32) {
        let p = Params::new()
            .with("userid", "teacher@pve")
            .with("password", "teacher-pass")
            .with("comment", "the teacher");
        let _: Value = self.client().post("/access/users", &p).await.unwrap();
        let p = Params::new()
            .with("path", format!("/vms/{on_vm}"))
            .with("users", "teacher@pve")
            .with("roles", "PVEVMUser");
        let _: Value = self.client().put("/access/acl", &p).await.unwrap();
    }

    pub fn foreign_untouched(&self, on_vm: u32) {
        let t = &self.state()["access"]["users"]["teacher@pve"];
        assert_eq!(t["enable"], true, "{t}");
        assert_eq!(t["expire"], 0);
        assert_eq!(t["comment"], "the teacher");
        assert!(self.acl_has(&format!("/vms/{on_vm}"), "teacher@pve"));
    }
}

pub async fn student(lab: &Lab, sheet: &Sheet, seat: &Seat) -> PveClient {
    let pw = sheet.get(seat.userid.as_str()).unwrap().secret().unwrap();
    let c = (lab.login())(&seat.userid, &pw).unwrap();
    c.login().await.unwrap();
    c
}

fn recorder(log: &Arc<Mutex<Vec<RequestRecord>>>) -> Observer {
    let log = log.clone();
    Arc::new(move |r: &RequestRecord| log.lock().unwrap().push(r.clone()))
}

impl Lab {
    /// Every request the clients sent exists in the PVE schema with valid parameters
    /// (redacted secrets stand in as 8 characters); returns the `METHOD /template`s seen.
    pub fn check_schema(&self) -> BTreeSet<String> {
        let schema = pve_schema::schema();
        let records = self.log.lock().unwrap().clone();
        assert!(!records.is_empty(), "nothing was recorded");
        let mut seen = BTreeSet::new();
        for r in &records {
            let method = r.method.as_str();
            let m = schema
                .find(method, &r.path)
                .unwrap_or_else(|| panic!("{method} {} is not in the PVE schema", r.path));
            let mut params = m.path_params.clone();
            for (k, v) in &r.params {
                let v = if v == "***" {
                    "********".to_owned()
                } else {
                    v.clone()
                };
                params.insert(k.clone(), v);
            }
            if let Err(errors) = m.endpoint.validate(&params) {
                panic!(
                    "{method} {} with {:?} violates the schema: {errors:?}",
                    r.path, r.params
                );
            }
            seen.insert(format!("{method} {}", m.endpoint.path));
        }
        seen
    }
}
