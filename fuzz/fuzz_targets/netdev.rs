//! NIC property strings: `pve_vm::NetDevice` (parse, print, re-parse) and `pve-schema`'s
//! property-string checks of `net0` for QEMU and LXC config updates.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use pve_vm::NetDevice;

fuzz_target!(|s: &str| {
    match NetDevice::parse(s) {
        Ok(nic) => {
            let printed = nic.to_string();
            let again = NetDevice::parse(&printed).expect("a printed NIC parses");
            assert_eq!(again, nic, "parse(print(x)) == x for {printed:?}");
            let _ = (
                nic.mac(),
                nic.model(),
                nic.bridge(),
                nic.firewall(),
                nic.is_lxc(),
            );
        }
        Err(e) => assert!(e.to_string().contains(&format!("{s:?}")), "{e}"),
    }
    let schema = pve_schema::schema();
    for (method, path) in [
        ("PUT", "/nodes/pve1/qemu/100/config"),
        ("PUT", "/nodes/pve1/lxc/100/config"),
    ] {
        let m = schema
            .find(method, path)
            .expect("config endpoints are in the extract");
        let mut params = m.path_params.clone();
        params.insert("net0".to_owned(), s.to_owned());
        let _ = m.endpoint.validate(&params);
        let one: BTreeMap<String, String> = [("net0".to_owned(), s.to_owned())].into();
        let _ = m.endpoint.validate(&one);
    }
});
