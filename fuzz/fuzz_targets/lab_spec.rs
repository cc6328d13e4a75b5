//! The lab spec's text inputs: `HostnamePattern`, `IdRange`, `LabName` of `lab-core`.
//! No panic; parse(print(x)) == x; every rendered host name is a DNS label.
#![no_main]

use lab_core::{HostnamePattern, IdRange, LabName, MAX_STUDENTS};
use libfuzzer_sys::fuzz_target;

fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fuzz_target!(|s: &str| {
    if let Ok(p) = s.parse::<HostnamePattern>() {
        assert_eq!(
            p.to_string().parse::<HostnamePattern>().ok(),
            Some(p.clone())
        );
        for n in [1, 9, 10, 99, 100, MAX_STUDENTS] {
            let name = p.render(n);
            assert!(is_dns_label(&name), "{s:?} renders {n} as {name:?}");
        }
    }
    if let Ok(r) = s.parse::<IdRange>() {
        assert!(r.first() <= r.last());
        assert_eq!(r.to_string().parse::<IdRange>().ok(), Some(r));
        assert_eq!(r.iter().take(3).count() as u64, r.len().min(3));
    }
    match LabName::new(s) {
        Ok(name) => {
            assert_eq!(name.as_str(), s);
            assert!(
                pve_vm::normalize_tags([name.tag()]).is_ok(),
                "the lab tag is a PVE tag"
            );
            assert!(
                pve_vm::PoolId::new(name.pool()).is_ok(),
                "the lab pool is a PVE pool id"
            );
            let json = serde_json::to_value(&name).expect("a lab name serialises");
            assert_eq!(serde_json::from_value::<LabName>(json).ok(), Some(name));
        }
        Err(e) => assert!(e.to_string().contains(&format!("{s:?}")), "{e}"),
    }
});
