//! `pve_vm::normalize_tags`: never panics; its output is a fixed point; errors name the tag.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    match pve_vm::normalize_tags([s]) {
        Ok(tags) => {
            assert_eq!(
                pve_vm::normalize_tags([tags.as_str()]).ok().as_deref(),
                Some(tags.as_str()),
                "normalising twice changes nothing"
            );
            for tag in tags.split(';').filter(|t| !t.is_empty()) {
                assert!(tag.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'-' | b'+' | b'.')));
            }
        }
        Err(e) => assert!(e.to_string().contains("tag \""), "{e}"),
    }
});
