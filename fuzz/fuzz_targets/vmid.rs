//! Guest ids: `pve_vm::VmId` and `lab_core::VmId` from text and JSON; both agree, print
//! back and stay in 100..=999999999.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let a = s.parse::<pve_vm::VmId>();
        let b = s.parse::<lab_core::VmId>();
        assert_eq!(
            a.as_ref().ok().map(|v| v.get()),
            b.as_ref().ok().map(|v| v.get())
        );
        if let Ok(id) = a {
            assert!((100..=999_999_999).contains(&id.get()));
            assert_eq!(id.to_string().parse::<pve_vm::VmId>().ok(), Some(id));
        }
        if let Err(e) = b {
            // Text that is no number is quoted; a number out of range is named as a number.
            let named = e.to_string().contains(&format!("{s:?}"))
                || s.trim()
                    .parse::<u32>()
                    .is_ok_and(|n| e.to_string().contains(&n.to_string()));
            assert!(named, "{e}");
        }
    }
    let a = serde_json::from_slice::<pve_vm::VmId>(data);
    let b = serde_json::from_slice::<lab_core::VmId>(data);
    if let (Ok(a), Ok(b)) = (&a, &b) {
        assert_eq!(a.get(), b.get());
    }
    if let Ok(id) = a {
        let json = serde_json::to_value(id).expect("a VmId serialises");
        assert_eq!(serde_json::from_value::<pve_vm::VmId>(json).ok(), Some(id));
    }
});
