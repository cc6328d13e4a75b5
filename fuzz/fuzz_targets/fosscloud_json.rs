//! FOSS-Cloud answers: `fosscloud_api::read_answer` on arbitrary bodies and statuses, then
//! every typed read (`vms`, `vm`, `realms`) of what it accepted. No panic; an error never
//! carries more than the documented body excerpt.
#![no_main]

use fosscloud_api::{read_answer, Realm, Vm};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data.split_first() {
        Some((first, rest)) => (
            if first % 2 == 0 {
                200
            } else {
                400 + u16::from(*first)
            },
            rest,
        ),
        None => (200, data),
    };
    match read_answer(
        "https://fc.test/vm/list",
        status,
        Some("application/json"),
        body,
    ) {
        Ok(answer) => {
            if let Ok(vms) = answer.take::<Vec<Vm>>("vms") {
                for vm in vms {
                    let _ = (vm.is_assignable(), vm.spice_endpoint(), format!("{vm:?}"));
                }
            }
            let _ = answer.take::<Vm>("vm");
            let _ = answer.take::<Vec<Realm>>("realms");
        }
        Err(e) => {
            let _ = (e.to_string(), format!("{e:?}"), e.code());
        }
    }
});
