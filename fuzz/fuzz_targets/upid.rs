//! `pve_vm::Upid`: parsing never panics, a parsed UPID prints back unchanged, and its JSON
//! form (a string) reads back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pve_vm::Upid;

fuzz_target!(|s: &str| {
    match s.parse::<Upid>() {
        Ok(upid) => {
            assert_eq!(upid.to_string(), s, "Display writes the original UPID");
            let again: Upid = upid.to_string().parse().expect("a printed UPID parses");
            assert_eq!(again, upid);
            let json = serde_json::to_value(&upid).expect("a UPID serialises");
            assert_eq!(serde_json::from_value::<Upid>(json).ok(), Some(upid));
        }
        Err(e) => assert!(e.to_string().contains(&format!("{s:?}")), "{e}"),
    }
});
