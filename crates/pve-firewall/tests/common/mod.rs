//! Shared by the integration tests: a request log fed by pve-auth's observer, and the check
//! of every logged request against the PVE schema extract (acceptance 4).
#![allow(dead_code)] // each test file uses a different subset

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use pve_auth::{Observer, RequestRecord};
use pve_sim::SimHandle;
use serde_json::Value;

/// A write as sent: method, path, parameters in order.
pub type Write = (String, String, Vec<(String, String)>);

/// Records every request the client sends, in order.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<RequestRecord>>>);

impl Log {
    pub fn observer(&self) -> Observer {
        let log = self.0.clone();
        Arc::new(move |r: &RequestRecord| log.lock().expect("log lock").push(r.clone()))
    }

    pub fn records(&self) -> Vec<RequestRecord> {
        self.0.lock().expect("log lock").clone()
    }

    pub fn clear(&self) {
        self.0.lock().expect("log lock").clear();
    }

    /// `(method, path, params)` of the writes (everything but GET), in order.
    pub fn writes(&self) -> Vec<Write> {
        self.records()
            .into_iter()
            .filter(|r| r.method != pve_auth::Method::GET)
            .map(|r| (r.method.to_string(), r.path, r.params))
            .collect()
    }
}

/// Every request must exist in the schema extract with valid parameters. Returns how many
/// requests were checked.
pub fn check_against_schema(records: &[RequestRecord]) -> usize {
    let schema = pve_schema::schema();
    let mut problems = Vec::new();
    for r in records {
        let Some(m) = schema.find(r.method.as_str(), &r.path) else {
            problems.push(format!(
                "{} {} is not in the schema extract",
                r.method, r.path
            ));
            continue;
        };
        let mut params: BTreeMap<String, String> = m.path_params.clone();
        for (k, v) in &r.params {
            params.insert(k.clone(), v.clone());
        }
        if let Err(errors) = m.endpoint.validate(&params) {
            problems.push(format!(
                "{} {} {:?}: {errors:?}",
                r.method, r.path, r.params
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "requests the real API would reject:\n{}",
        problems.join("\n")
    );
    records.len()
}

/// What must come back after unisolate: the whole firewall model and every guest's NICs.
pub fn fw_state(sim: &SimHandle) -> (Value, BTreeMap<u64, Vec<(String, Value)>>) {
    let state = sim.state();
    let mut nics = BTreeMap::new();
    for g in state["guests"].as_array().expect("guests") {
        let vmid = g["vmid"].as_u64().expect("vmid");
        let config = g["config"].as_object().expect("config");
        let mut list: Vec<(String, Value)> = config
            .iter()
            .filter(|(k, _)| k.starts_with("net"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        nics.insert(vmid, list);
    }
    (state["firewall"].clone(), nics)
}
