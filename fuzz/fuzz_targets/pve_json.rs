//! PVE JSON answers: arbitrary bytes and arbitrary JSON values never panic the serde types
//! of `pve-vm`, `pve-net` and `pve-firewall`; accessors of what was read never panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn read<T: serde::de::DeserializeOwned>(data: &[u8], value: &Value) -> Option<T> {
    let _ = serde_json::from_slice::<T>(data);
    serde_json::from_value::<T>(value.clone()).ok()
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Some(list) = read::<Vec<pve_vm::GuestSummary>>(data, &value) {
        for g in list {
            let _ = (g.vmid.get(), g.node.as_str(), g.kind.as_str());
        }
    }
    if let Some(s) = read::<pve_vm::GuestStatus>(data, &value) {
        let _ = s.is_running();
    }
    if let Some(c) = read::<pve_vm::GuestConfig>(data, &value) {
        let _ = (
            c.tags(),
            c.nics(),
            c.name(),
            c.lock(),
            c.agent_enabled(),
            c.is_template(),
        );
    }
    if let Some(u) = read::<pve_vm::Upid>(data, &value) {
        assert_eq!(u.to_string().parse::<pve_vm::Upid>().ok(), Some(u));
    }
    let _ = read::<pve_firewall::Options>(data, &value);
    let _ = read::<Vec<pve_firewall::RuleEntry>>(data, &value);
    let _ = read::<Vec<pve_firewall::IpSetInfo>>(data, &value);
    let _ = read::<Vec<pve_firewall::IpSetEntry>>(data, &value);
    let _ = read::<Vec<pve_firewall::GroupInfo>>(data, &value);
    let _ = read::<Vec<pve_firewall::AliasEntry>>(data, &value);
    let vmid = pve_vm::VmId::MIN;
    if let Ok(ifaces) = pve_net::parse_agent_interfaces("fuzz", vmid, value.clone()) {
        let _ = pve_net::choose_primary_ipv4(&ifaces, &["bc:24:11:00:00:01".to_owned()]);
    }
    if let Ok(ifaces) = pve_net::parse_lxc_interfaces("fuzz", vmid, value) {
        let _ = pve_net::choose_primary_ipv4(&ifaces, &[]);
    }
});
