//! MAC addresses: `fosscloud_api::MacAddr` (parse, print lower-case, re-parse) and the PVE
//! side (`mac-addr` checks of `pve-schema` through a NIC's `macaddr`, `NetDevice::mac`).
#![no_main]

use fosscloud_api::MacAddr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    match s.parse::<MacAddr>() {
        Ok(mac) => {
            assert_eq!(mac.to_string(), s.to_ascii_lowercase());
            assert_eq!(mac.to_string().parse::<MacAddr>().ok(), Some(mac));
            let json = serde_json::Value::String(s.to_owned());
            assert_eq!(serde_json::from_value::<MacAddr>(json).ok(), Some(mac));
        }
        Err(e) => assert!(e.to_string().contains(&format!("{s:?}")), "{e}"),
    }
    if !s.contains(',') {
        if let Ok(nic) = pve_vm::NetDevice::parse(&format!("virtio={s},bridge=vmbr0")) {
            assert_eq!(nic.mac(), Some(s.trim()));
        }
        let schema = pve_schema::schema();
        let m = schema
            .find("PUT", "/nodes/pve1/qemu/100/config")
            .expect("config endpoint is in the extract");
        let mut params = m.path_params.clone();
        params.insert(
            "net0".to_owned(),
            format!("model=virtio,macaddr={s},bridge=vmbr0"),
        );
        let _ = m.endpoint.validate(&params);
    }
});
