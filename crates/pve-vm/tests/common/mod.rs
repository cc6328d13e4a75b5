//! A simulator lab for the integration tests: starts `pve-sim` on 127.0.0.1 (plain HTTP,
//! small time scale), builds clients whose observer records every request, and checks the
//! recorded requests against the PVE schema extract (acceptance 3).
#![allow(dead_code)] // each test file uses a different subset
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use pve_auth::{PveClient, RequestRecord, Secret};
use pve_sim::{SimHandle, Simulator};
use pve_vm::{Timing, VmApi};
use serde_json::Value;

/// Simulated durations are multiplied by this.
pub const SCALE: f64 = 0.02;
pub const PASSWORD: &str = "secret";

pub struct Lab {
    pub sim: SimHandle,
    log: Arc<Mutex<Vec<RequestRecord>>>,
}

impl Lab {
    pub async fn start() -> Lab {
        let sim = Simulator::builder()
            .password(PASSWORD)
            .plain_http(true)
            .time_scale(SCALE)
            .start()
            .await
            .unwrap();
        Lab {
            sim,
            log: Arc::default(),
        }
    }

    /// A fresh client (its own login, like another process) recording into the lab's log.
    pub fn client(&self) -> PveClient {
        let log = self.log.clone();
        PveClient::builder(&self.sim.base_url())
            .password("root@pam", Secret::new(PASSWORD))
            .observer(Arc::new(move |r: &RequestRecord| {
                log.lock().unwrap().push(r.clone())
            }))
            .build()
            .unwrap()
    }

    /// A `VmApi` with its own client and timing scaled like the simulator.
    pub fn api(&self) -> VmApi {
        VmApi::with_timing(self.client(), Timing::default().scaled(SCALE))
    }

    pub fn records(&self) -> Vec<RequestRecord> {
        self.log.lock().unwrap().clone()
    }

    /// The simulator's guests by id.
    pub fn guests(&self) -> BTreeMap<u64, Value> {
        self.sim.state()["guests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| (g["vmid"].as_u64().unwrap(), g.clone()))
            .collect()
    }

    /// Every recorded request exists in the schema with valid parameter names and types.
    /// Returns the distinct `METHOD /template`s seen.
    pub fn check_schema(&self) -> BTreeSet<String> {
        let schema = pve_schema::schema();
        let records = self.records();
        assert!(!records.is_empty(), "nothing was recorded");
        let mut seen = BTreeSet::new();
        for r in &records {
            let method = r.method.as_str();
            let m = schema
                .find(method, &r.path)
                .unwrap_or_else(|| panic!("{method} {} is not in the PVE schema", r.path));
            let mut params = m.path_params.clone();
            for (k, v) in &r.params {
                params.insert(k.clone(), v.clone());
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
