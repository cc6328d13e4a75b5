//! Firewall rule inputs of `pve-firewall` (`Cidr`, `AddrSpec`, `PortSpec`, `Proto`,
//! `LogLevel`, `Iface`): no panic; parse(print(x)) == x; errors quote the input.
#![no_main]

use std::fmt::{Debug, Display};
use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use pve_firewall::{AddrSpec, Cidr, Iface, LogLevel, PortSpec, Proto};

fn check<T>(s: &str)
where
    T: FromStr + Display + PartialEq + Debug,
    T::Err: Display,
{
    match s.parse::<T>() {
        Ok(x) => {
            let again = x.to_string().parse::<T>().ok();
            assert_eq!(again.as_ref(), Some(&x), "{s:?} printed as {x}");
        }
        Err(e) => assert!(e.to_string().contains(&format!("{s:?}")), "{e}"),
    }
}

fuzz_target!(|s: &str| {
    check::<Cidr>(s);
    check::<AddrSpec>(s);
    check::<PortSpec>(s);
    check::<Proto>(s);
    check::<LogLevel>(s);
    check::<Iface>(s);
});
