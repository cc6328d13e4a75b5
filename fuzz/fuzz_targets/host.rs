//! Host strings: `pve_auth::base_uri` never panics, names the input when it refuses it,
//! and accepts its own output unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    match pve_auth::base_uri(s) {
        Ok(url) => {
            assert!(matches!(url.scheme(), "https" | "http"));
            assert_eq!(url.path(), "/api2/json");
            assert!(url.port().is_some() || url.port_or_known_default().is_some());
            let again = pve_auth::base_uri(url.as_str()).expect("base_uri accepts its output");
            assert_eq!(again, url);
        }
        Err(e) => assert!(e.to_string().contains(&format!("{s:?}")), "{e}"),
    }
});
