//! Property tests of every parser of outside input, through the crates' public APIs: UPIDs,
//! NIC property strings (`pve-vm` and `pve-schema`), tags, MAC addresses, guest ids, host
//! strings, the lab spec's text inputs and firewall specs.
//!
//! Three kinds of property: no input panics; where a type has a printer, parse(print(x)) ==
//! x; a refused input is named in the error. Case counts are modest so the file stays well
//! under 30 s in a debug build (`cargo test -p labctl-e2e --test properties`); the fuzz
//! targets in `fuzz/` run the same families for millions of inputs.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;

/// Case count for the cheap properties; the schema checks use fewer.
const CASES: u32 = 1000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text that mixes any printable characters with the separators parsers split on.
fn messy(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::string::string_regex(&format!("\\PC{{0,{max}}}")).unwrap(),
        proptest::string::string_regex(&format!("[a-zA-Z0-9:=,;.@!/_ \\[\\]{{}}%+-]{{0,{max}}}"))
            .unwrap(),
        proptest::string::string_regex(&format!("[\\x00-\\x7f]{{0,{max}}}")).unwrap(),
    ]
}

/// A DNS label as PVE node names allow (letters, digits, inner `-`).
fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9-]{0,14}[a-zA-Z0-9])?"
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

mod upid {
    use super::*;
    use pve_vm::Upid;

    /// The parts of a valid UPID and its text.
    fn valid() -> impl Strategy<Value = (String, String, u32, u64, u32, String, String, String)> {
        (
            label(),
            any::<u32>(),
            prop_oneof![
                any::<u32>().prop_map(u64::from),
                (0x1_0000_0000u64..=0xF_FFFF_FFFF)
            ],
            any::<u32>(),
            "[a-z]{1,10}",
            prop_oneof![Just(String::new()), "[0-9]{3,9}", "[a-z0-9.-]{1,12}"],
            "[a-z]{1,8}@(pam|pve)(![a-z0-9]{1,6})?",
        )
            .prop_map(|(node, pid, pstart, start, ty, id, user)| {
                let text =
                    format!("UPID:{node}:{pid:08X}:{pstart:08X}:{start:08X}:{ty}:{id}:{user}:");
                (text, node, pid, pstart, start, ty, id, user)
            })
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn valid_upids_parse_into_their_parts_and_print_back(
            (text, node, pid, pstart, start, ty, id, user) in valid()
        ) {
            let u: Upid = text.parse().unwrap();
            prop_assert_eq!(u.to_string(), text.clone());
            prop_assert_eq!(u.node().as_str(), node.as_str());
            prop_assert_eq!(u.pid(), pid);
            prop_assert_eq!(u.pstart(), pstart);
            prop_assert_eq!(u.starttime(), u64::from(start));
            prop_assert_eq!(u.task_type(), ty.as_str());
            prop_assert_eq!(u.id(), id.as_str());
            prop_assert_eq!(u.user(), user.as_str());
            prop_assert_eq!(u.vmid().map(|v| v.get().to_string()), id.parse::<u32>().ok()
                .filter(|n| (100..=999_999_999).contains(n)).map(|n| n.to_string()));
            let json = serde_json::to_string(&u).unwrap();
            prop_assert_eq!(serde_json::from_str::<Upid>(&json).unwrap(), u);
        }

        #[test]
        fn any_text_parses_or_is_named_in_the_error(s in messy(80)) {
            match s.parse::<Upid>() {
                Ok(u) => prop_assert_eq!(u.to_string(), s),
                Err(e) => prop_assert!(e.to_string().contains(&quoted(&s)), "{}", e),
            }
        }

        #[test]
        fn a_valid_upid_with_one_field_replaced_never_panics(
            (text, ..) in valid(), field in 0usize..9, junk in messy(12)
        ) {
            let mut parts: Vec<String> = text.split(':').map(str::to_owned).collect();
            parts[field] = junk;
            let s = parts.join(":");
            match s.parse::<Upid>() {
                Ok(u) => {
                    prop_assert_eq!(u.to_string(), s.clone());
                    prop_assert_eq!(u.to_string().parse::<Upid>().unwrap(), u);
                }
                Err(e) => prop_assert!(e.to_string().contains(&quoted(&s)), "{}", e),
            }
        }
    }
}

mod nic {
    use super::*;
    use pve_vm::NetDevice;

    fn mac() -> impl Strategy<Value = String> {
        any::<[u8; 6]>().prop_map(|o| {
            // Unicast, as PVE requires for a NIC.
            let o = [o[0] & 0xFE, o[1], o[2], o[3], o[4], o[5]];
            o.iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        })
    }

    /// A QEMU NIC that PVE's schema accepts, with its MAC, bridge, firewall and tag.
    fn qemu_nic() -> impl Strategy<Value = (String, String, String, bool, Option<u16>)> {
        (
            prop::sample::select(vec!["virtio", "e1000", "rtl8139", "vmxnet3"]),
            mac(),
            "vmbr[0-9]{1,3}",
            any::<bool>(),
            prop::option::of(1u16..=4094),
        )
            .prop_map(|(model, mac, bridge, fw, tag)| {
                let mut s = format!("{model}={mac},bridge={bridge},firewall={}", u8::from(fw));
                if let Some(t) = tag {
                    s.push_str(&format!(",tag={t}"));
                }
                (s, mac, bridge, fw, tag)
            })
    }

    fn validate(method: &str, path: &str, net0: &str) -> Result<(), BTreeMap<String, String>> {
        let m = pve_schema::schema().find(method, path).unwrap();
        let mut params = m.path_params.clone();
        params.insert("net0".into(), net0.into());
        m.endpoint.validate(&params)
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_text_parses_to_a_fixed_point_or_is_named(s in messy(60)) {
            match NetDevice::parse(&s) {
                Ok(nic) => {
                    let printed = nic.to_string();
                    prop_assert_eq!(NetDevice::parse(&printed).unwrap(), nic.clone());
                    prop_assert_eq!(nic.to_string(), printed);
                }
                Err(e) => prop_assert!(e.to_string().contains(&quoted(&s)), "{}", e),
            }
        }

        #[test]
        fn generated_entries_print_and_parse_back(
            entries in prop::collection::btree_map("[a-z][a-z0-9_-]{0,8}", "[a-zA-Z0-9:._=-]{0,12}", 1..8)
        ) {
            let text = entries.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
            let nic = NetDevice::parse(&text).unwrap();
            prop_assert_eq!(nic.to_string(), text);
            let got: BTreeMap<String, String> = nic
                .entries()
                .map(|(k, v)| (k.to_owned(), v.unwrap_or_default().to_owned()))
                .collect();
            prop_assert_eq!(got, entries);
        }

        #[test]
        fn qemu_nics_read_their_parts_and_toggle_the_firewall(
            (s, mac, bridge, fw, tag) in qemu_nic()
        ) {
            let mut nic = NetDevice::parse(&s).unwrap();
            prop_assert_eq!(nic.mac(), Some(mac.as_str()));
            prop_assert_eq!(nic.bridge(), Some(bridge.as_str()));
            prop_assert_eq!(nic.firewall(), fw);
            prop_assert_eq!(nic.get("tag").map(str::to_owned), tag.map(|t| t.to_string()));
            prop_assert!(!nic.is_lxc());
            nic.set_firewall(!fw);
            prop_assert_eq!(NetDevice::parse(&nic.to_string()).unwrap().firewall(), !fw);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..config() })]

        #[test]
        fn the_schema_accepts_valid_qemu_nics((s, ..) in qemu_nic()) {
            prop_assert_eq!(validate("PUT", "/nodes/pve1/qemu/100/config", &s), Ok(()));
        }

        #[test]
        fn the_schema_names_net0_for_an_unknown_key((s, ..) in qemu_nic(), key in "x[a-z]{2,6}") {
            let errors = validate("PUT", "/nodes/pve1/qemu/100/config", &format!("{s},{key}=1"))
                .unwrap_err();
            prop_assert!(errors["net0"].contains(&key), "{:?}", errors);
        }

        #[test]
        fn the_schema_refuses_multicast_macs(o in any::<[u8; 5]>(), first in any::<u8>()) {
            let mac = format!("{:02X}:{}", first | 1,
                o.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"));
            let errors = validate("PUT", "/nodes/pve1/qemu/100/config", &format!("virtio={mac}"))
                .unwrap_err();
            prop_assert!(errors.contains_key("net0"), "{:?}", errors);
        }

        #[test]
        fn the_schema_never_panics_on_any_net0(s in messy(60)) {
            for (method, path) in [
                ("PUT", "/nodes/pve1/qemu/100/config"),
                ("PUT", "/nodes/pve1/lxc/100/config"),
            ] {
                if let Err(errors) = validate(method, path, &s) {
                    prop_assert!(!errors.is_empty());
                }
            }
        }
    }
}

mod tags {
    use super::*;

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn normalised_tags_are_a_fixed_point_or_the_bad_tag_is_named(
            inputs in prop::collection::vec(messy(24), 0..4)
        ) {
            match pve_vm::normalize_tags(&inputs) {
                Ok(t) => {
                    prop_assert_eq!(pve_vm::normalize_tags([&t]).unwrap(), t.clone());
                    let list: Vec<&str> = t.split(';').filter(|x| !x.is_empty()).collect();
                    let mut sorted = list.clone();
                    sorted.sort_unstable();
                    sorted.dedup();
                    prop_assert_eq!(&list, &sorted);
                }
                Err(e) => prop_assert!(e.to_string().contains("tag \""), "{}", e),
            }
        }

        #[test]
        fn valid_tags_come_back_lower_sorted_and_unique(
            tags in prop::collection::vec("[a-zA-Z0-9_][a-zA-Z0-9_+.-]{0,10}", 1..6),
            sep in prop::sample::select(vec![";", ",", " "])
        ) {
            let got = pve_vm::normalize_tags([tags.join(sep)]).unwrap();
            let mut want: Vec<String> = tags.iter().map(|t| t.to_ascii_lowercase()).collect();
            want.sort();
            want.dedup();
            prop_assert_eq!(got, want.join(";"));
        }

        #[test]
        fn a_bad_character_is_named(good in "[a-z]{1,5}", bad in "[=:/'\"]") {
            let tag = format!("{good}{bad}");
            let e = pve_vm::normalize_tags([&tag]).unwrap_err().to_string();
            prop_assert!(e.contains(&quoted(&tag)), "{}", e);
        }
    }
}

mod mac {
    use super::*;
    use fosscloud_api::MacAddr;

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn octets_print_and_parse_back_in_either_case(o in any::<[u8; 6]>()) {
            let mac = MacAddr::new(o);
            let text = mac.to_string();
            prop_assert_eq!(text.parse::<MacAddr>().unwrap(), mac);
            prop_assert_eq!(text.to_ascii_uppercase().parse::<MacAddr>().unwrap(), mac);
            prop_assert_eq!(mac.octets(), o);
            let json = serde_json::Value::String(text.to_ascii_uppercase());
            prop_assert_eq!(serde_json::from_value::<MacAddr>(json).unwrap(), mac);
        }

        #[test]
        fn any_text_parses_back_or_is_named(s in messy(24)) {
            match s.parse::<MacAddr>() {
                Ok(mac) => prop_assert_eq!(mac.to_string(), s.to_ascii_lowercase()),
                Err(e) => prop_assert!(e.to_string().contains(&quoted(&s)), "{}", e),
            }
        }

        #[test]
        fn other_spellings_are_refused(o in any::<[u8; 6]>(), sep in prop::sample::select(vec!["-", ".", ""])) {
            let text = o.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(sep);
            prop_assert!(text.parse::<MacAddr>().is_err());
        }

        #[test]
        fn pve_nics_keep_the_mac_as_written(o in any::<[u8; 6]>(), lxc in any::<bool>()) {
            let text = o.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
            let s = if lxc {
                format!("name=eth0,bridge=vmbr0,hwaddr={text},ip=dhcp")
            } else {
                format!("virtio={text},bridge=vmbr0")
            };
            let nic = pve_vm::NetDevice::parse(&s).unwrap();
            prop_assert_eq!(nic.mac(), Some(text.as_str()));
            prop_assert_eq!(nic.is_lxc(), lxc);
            // What PVE reports and what FOSS-Cloud keys its mappings by are the same address.
            prop_assert_eq!(text.parse::<MacAddr>().unwrap().octets(), o);
        }
    }
}

mod vmid {
    use super::*;

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn both_vmids_accept_exactly_the_pve_range(n in prop_oneof![any::<u32>(), 0u32..1000, 999_999_000u32..=1_000_001_000]) {
            let ok = (100..=999_999_999).contains(&n);
            let a = pve_vm::VmId::new(n);
            let b = lab_core::VmId::new(n);
            prop_assert_eq!(a.is_ok(), ok);
            prop_assert_eq!(b.is_ok(), ok);
            if let (Ok(a), Ok(b)) = (a, b) {
                prop_assert_eq!(a.to_string().parse::<pve_vm::VmId>().unwrap(), a);
                prop_assert_eq!(b.to_string().parse::<lab_core::VmId>().unwrap(), b);
                // JSON: a number or a numeric string in, a number out.
                for json in [n.to_string(), format!("\"{n}\"")] {
                    prop_assert_eq!(serde_json::from_str::<pve_vm::VmId>(&json).unwrap(), a);
                    prop_assert_eq!(serde_json::from_str::<lab_core::VmId>(&json).unwrap(), b);
                }
                prop_assert_eq!(serde_json::to_string(&a).unwrap(), n.to_string());
                prop_assert_eq!(serde_json::to_string(&b).unwrap(), n.to_string());
            } else {
                let e = lab_core::VmId::new(n).unwrap_err().to_string();
                prop_assert!(e.contains(&n.to_string()), "{}", e);
                let e = pve_vm::VmId::new(n).unwrap_err().to_string();
                prop_assert!(e.contains(&n.to_string()), "{}", e);
            }
        }

        #[test]
        fn any_text_gives_the_same_answer_in_both_crates(s in prop_oneof![messy(14), "[ +-]?[0-9]{1,12} ?"]) {
            let a = s.parse::<pve_vm::VmId>();
            let b = s.parse::<lab_core::VmId>();
            prop_assert_eq!(a.as_ref().ok().map(|v| v.get()), b.as_ref().ok().map(|v| v.get()));
            if let Err(e) = b {
                prop_assert!(e.to_string().contains(&quoted(&s)) || s.trim().parse::<u32>().is_ok(),
                    "{}", e);
            }
        }

        #[test]
        fn any_json_value_never_panics(v in json::value()) {
            let a = serde_json::from_value::<pve_vm::VmId>(v.clone()).ok();
            let b = serde_json::from_value::<lab_core::VmId>(v).ok();
            if let (Some(a), Some(b)) = (a, b) {
                prop_assert_eq!(a.get(), b.get());
            }
        }
    }
}

mod host {
    use super::*;

    /// `url` with its port written out, as `labctl` shows a host.
    fn explicit(url: &reqwest::Url) -> String {
        let port = url.port_or_known_default().unwrap();
        format!(
            "{}://{}:{port}/api2/json",
            url.scheme(),
            url.host_str().unwrap()
        )
    }

    /// Found by the property below on CI: a port that is the scheme's own is left out of the
    /// URL, and the URL still reaches that port.
    #[test]
    fn a_port_the_scheme_implies_is_written_the_short_way() {
        for (typed, want, port) in [
            ("http://a:80", "http://a/api2/json", 80),
            ("https://a:443", "https://a/api2/json", 443),
            ("a:443", "https://a/api2/json", 443),
            ("http://a:443", "http://a:443/api2/json", 443),
            ("a", "https://a:8006/api2/json", 8006),
        ] {
            let url = pve_auth::base_uri(typed).unwrap();
            assert_eq!(url.as_str(), want, "{typed}");
            assert_eq!(url.port_or_known_default(), Some(port), "{typed}");
        }
    }

    fn host() -> impl Strategy<Value = (String, String)> {
        prop_oneof![
            // (what a user types for the host, how the URL writes it)
            // Host names; a name ending in a number would be read as an IPv4 address.
            prop::collection::vec("[a-zA-Z]([a-zA-Z0-9-]{0,14}[a-zA-Z0-9])?", 1..4).prop_map(|l| {
                let h = l.join(".");
                (h.clone(), h.to_ascii_lowercase())
            }),
            any::<[u8; 4]>().prop_map(|o| {
                let h = format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3]);
                (h.clone(), h)
            }),
            any::<[u16; 8]>().prop_map(|s| {
                let ip = std::net::Ipv6Addr::from(s);
                (format!("[{ip}]"), format!("[{ip}]"))
            }),
        ]
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn host_port_scheme_and_path_forms_give_the_expected_url(
            (typed, written) in host(),
            port in prop::option::of(1u16..),
            scheme in prop::sample::select(vec!["", "https://", "http://", "HTTPS://"]),
            path in prop::sample::select(vec!["", "/", "/api2/json", "/api2/json/"]),
        ) {
            let input = format!(
                "{scheme}{typed}{}{path}",
                port.map(|p| format!(":{p}")).unwrap_or_default()
            );
            let url = pve_auth::base_uri(&input).unwrap();
            let want_scheme = if scheme == "http://" { "http" } else { "https" };
            // A URL leaves out the port its scheme implies (80 for http, 443 for https): the
            // same address, written the short way.
            let port = port.unwrap_or(8006);
            let default_port = if want_scheme == "http" { 80 } else { 443 };
            let want = if port == default_port {
                format!("{want_scheme}://{written}/api2/json")
            } else {
                format!("{want_scheme}://{written}:{port}/api2/json")
            };
            prop_assert_eq!(url.as_str(), want.as_str());
            // Its own output, with the port written out, is accepted unchanged (written
            // the short way, a URL without a port means 8006).
            prop_assert_eq!(pve_auth::base_uri(&explicit(&url)).unwrap(), url);
        }

        #[test]
        fn any_text_is_a_url_or_named_in_the_error(s in messy(40)) {
            match pve_auth::base_uri(&s) {
                Ok(url) => {
                    prop_assert!(matches!(url.scheme(), "https" | "http"));
                    prop_assert_eq!(url.path(), "/api2/json");
                    prop_assert_eq!(pve_auth::base_uri(&explicit(&url)).unwrap(), url);
                }
                Err(e) => prop_assert!(e.to_string().contains(&quoted(&s)), "{}", e),
            }
        }

        #[test]
        fn shorthand_ipv4_forms_are_refused(a in 0u8..=255, b in 0u32..=0xFF_FFFF, octal in any::<bool>()) {
            // `a.b` means a.(b as 24 bits) to the URL standard; `0a.…` is octal.
            let input = if octal { format!("0{}.0.0.1", a % 7 + 1) } else { format!("{a}.{b}") };
            let e = pve_auth::base_uri(&input).unwrap_err().to_string();
            prop_assert!(e.contains(&quoted(&input)) && e.contains("dotted-quad"), "{}", e);
        }

        #[test]
        fn ports_out_of_range_are_refused_with_the_input(port in prop_oneof![Just(0u32), 65536u32..]) {
            let input = format!("pve1:{port}");
            let e = pve_auth::base_uri(&input).unwrap_err().to_string();
            prop_assert!(e.contains(&quoted(&input)) && e.contains("port"), "{}", e);
        }
    }

    proptest! {
        // Each case builds two HTTP clients (TLS set-up), so fewer cases.
        #![proptest_config(ProptestConfig { cases: 200, ..config() })]

        #[test]
        fn fosscloud_base_urls_keep_the_host_as_written(
            o in any::<[u8; 4]>(), b in 0u32..=0xFF_FFFF, port in prop::option::of(1u16..)
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let quad = format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3]);
            let url = format!("https://{quad}{port}/vm-manager");
            let client = fosscloud_api::FossCloudClient::builder(url.as_str()).build().unwrap();
            prop_assert_eq!(client.base_url().host_str(), Some(quad.as_str()));
            let short = format!("https://{}.{b}{port}/vm-manager", o[0]);
            let e = fosscloud_api::FossCloudClient::builder(short.as_str()).build().unwrap_err();
            prop_assert!(e.to_string().contains(&quoted(&short)), "{}", e);
        }
    }
}

mod lab_spec {
    use super::*;
    use lab_core::{HostnamePattern, IdRange, LabName, MAX_STUDENTS};

    fn is_dns_label(s: &str) -> bool {
        (1..=63).contains(&s.len())
            && !s.starts_with('-')
            && !s.ends_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn valid_patterns_render_zero_padded_dns_labels(
            prefix in "[a-zA-Z]([a-zA-Z0-9-]{0,10})?",
            suffix in "([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?",
            width in prop::option::of(1usize..=9),
            n in 1u32..=MAX_STUDENTS,
        ) {
            let placeholder = width.map(|w| format!("{{n:0{w}}}")).unwrap_or_else(|| "{n}".into());
            let text = format!("{prefix}{placeholder}{suffix}");
            let p: HostnamePattern = text.parse().unwrap();
            prop_assert_eq!(p.to_string(), text.clone());
            prop_assert_eq!(text.parse::<HostnamePattern>().unwrap(), p.clone());
            let name = p.render(n);
            prop_assert!(is_dns_label(&name), "{}", name);
            let want = format!(
                "{}{:0w$}{}",
                prefix.to_ascii_lowercase(),
                n,
                suffix.to_ascii_lowercase(),
                w = width.unwrap_or(1)
            );
            prop_assert_eq!(name, want);
        }

        #[test]
        fn any_pattern_text_renders_labels_or_is_named(s in messy(40)) {
            match s.parse::<HostnamePattern>() {
                Ok(p) => {
                    prop_assert_eq!(p.to_string().parse::<HostnamePattern>().unwrap(), p.clone());
                    for n in [1, 10, 100, MAX_STUDENTS] {
                        prop_assert!(is_dns_label(&p.render(n)), "{:?} -> {}", s, p.render(n));
                    }
                }
                Err(e) => prop_assert!(e.to_string().contains(&quoted(&s)), "{}", e),
            }
        }

        #[test]
        fn id_ranges_print_and_parse_back(a in 100u32..=999_999_999, b in 100u32..=999_999_999) {
            let text = format!("{a}-{b}");
            match text.parse::<IdRange>() {
                Ok(r) => {
                    prop_assert!(a <= b);
                    prop_assert_eq!(r.to_string(), text);
                    prop_assert_eq!(r.len(), u64::from(b - a) + 1);
                    prop_assert!(r.contains(r.first()) && r.contains(r.last()));
                    prop_assert_eq!(r.iter().next(), Some(r.first()));
                }
                Err(e) => {
                    prop_assert!(a > b);
                    prop_assert!(e.to_string().contains(&text), "{}", e);
                }
            }
        }

        #[test]
        fn any_range_text_never_panics(s in prop_oneof![messy(24), "[0-9 ]{0,10}-[0-9 -]{0,10}"]) {
            if let Ok(r) = s.parse::<IdRange>() {
                prop_assert!(r.first() <= r.last());
                prop_assert_eq!(r.to_string().parse::<IdRange>().unwrap(), r);
            }
        }

        #[test]
        fn lab_names_round_trip_and_derive_valid_pve_names(s in prop_oneof![messy(16), "[a-z][a-z0-9-]{0,15}"]) {
            match LabName::new(&s) {
                Ok(name) => {
                    prop_assert_eq!(name.to_string(), s.clone());
                    prop_assert_eq!(s.parse::<LabName>().unwrap(), name.clone());
                    let json = serde_json::to_value(&name).unwrap();
                    prop_assert_eq!(serde_json::from_value::<LabName>(json).unwrap(), name.clone());
                    prop_assert_eq!(pve_vm::normalize_tags([name.tag()]).unwrap(), name.tag());
                    prop_assert!(pve_vm::PoolId::new(name.pool()).is_ok());
                }
                Err(e) => prop_assert!(e.to_string().contains(&quoted(&s)), "{}", e),
            }
        }
    }
}

mod whole_spec {
    use super::*;
    use lab_core::{IdRange, LabName, LabSpec, VmId, MAX_CONCURRENCY, MAX_STUDENTS};

    fn is_dns_label(s: &str) -> bool {
        (1..=63).contains(&s.len())
            && !s.starts_with('-')
            && !s.ends_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }

    proptest! {
        #![proptest_config(config())]

        /// Any combination of values either validates into distinct DNS host names, one per
        /// student, with ids that fit and avoid the template — or is refused, naming the input.
        #[test]
        fn a_spec_validates_into_distinct_labels_or_names_the_bad_value(
            count in prop_oneof![0u32..=12, 490u32..=510],
            first in 100u32..10_000,
            span in 0u32..700,
            template in 100u32..12_000,
            concurrency in 0usize..=70,
            names in prop::option::of(prop::collection::vec(
                prop_oneof![label(), "[a-z0-9-]{1,8}", messy(10)], 0..14)),
            teachers in prop::collection::vec(any::<std::net::IpAddr>(), 0..3),
        ) {
            let mut spec =
                LabSpec::new(LabName::new("exam").unwrap(), VmId::new(9000).unwrap(), 1).unwrap();
            spec.count = count;
            spec.ids = IdRange::new(VmId::new(first).unwrap(), VmId::new(first + span).unwrap()).unwrap();
            spec.template = VmId::new(template).unwrap();
            spec.concurrency = concurrency;
            spec.names = names.clone();
            spec.teachers = teachers;
            match spec.validate() {
                Ok(()) => {
                    prop_assert!((1..=MAX_STUDENTS).contains(&count));
                    prop_assert!((1..=MAX_CONCURRENCY).contains(&concurrency));
                    prop_assert!(u64::from(count) <= spec.ids.len());
                    prop_assert!(!spec.ids.contains(spec.template));
                    let hosts = spec.hostnames();
                    prop_assert_eq!(hosts.len(), count as usize);
                    let distinct: std::collections::BTreeSet<&String> = hosts.iter().collect();
                    prop_assert_eq!(distinct.len(), hosts.len());
                    for h in &hosts {
                        prop_assert!(is_dns_label(h), "{:?}", h);
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    prop_assert!(text.starts_with("invalid "), "{}", text);
                    prop_assert!(text.contains('"'), "the refused value is quoted: {}", text);
                }
            }
        }
    }
}

mod firewall {
    use super::*;
    use pve_firewall::{AddrSpec, Cidr, Iface, LogLevel, PortSpec, Proto};

    /// parse(print(x)) == x for every accepted input, and a refusal names the input.
    fn check<T>(s: &str) -> Result<(), TestCaseError>
    where
        T: std::str::FromStr + std::fmt::Display + PartialEq + std::fmt::Debug,
        T::Err: std::fmt::Display,
    {
        match s.parse::<T>() {
            Ok(x) => {
                let again = x.to_string().parse::<T>().ok();
                prop_assert_eq!(again.as_ref(), Some(&x), "{:?} printed as {}", s, x);
            }
            Err(e) => prop_assert!(e.to_string().contains(&quoted(s)), "{}", e),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn firewall_specs_round_trip_or_name_the_input(
            s in prop_oneof![messy(30), "[0-9./:,!a-f+-]{0,30}", "(\\+)?[a-z0-9_-]{1,12}"]
        ) {
            check::<Cidr>(&s)?;
            check::<AddrSpec>(&s)?;
            check::<PortSpec>(&s)?;
            check::<Proto>(&s)?;
            check::<LogLevel>(&s)?;
            check::<Iface>(&s)?;
        }

        #[test]
        fn ipv4_cidrs_round_trip(o in any::<[u8; 4]>(), len in prop::option::of(0u8..=32)) {
            let text = match len {
                Some(l) => format!("{}.{}.{}.{}/{l}", o[0], o[1], o[2], o[3]),
                None => format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3]),
            };
            let c: Cidr = text.parse().unwrap();
            prop_assert_eq!(c.to_string().parse::<Cidr>().unwrap(), c);
        }
    }
}

/// Arbitrary JSON, biased towards the keys and values of PVE and FOSS-Cloud answers so that
/// the interesting branches of the decoders are reached.
pub mod json {
    use proptest::prelude::*;
    use serde_json::{Map, Number, Value};

    const KEYS: &[&str] = &[
        "vmid",
        "node",
        "type",
        "status",
        "name",
        "template",
        "pool",
        "tags",
        "lock",
        "qmpstatus",
        "agent",
        "uptime",
        "digest",
        "net0",
        "net1",
        "hostname",
        "result",
        "error",
        "class",
        "desc",
        "ip-addresses",
        "ip-address",
        "ip-address-type",
        "prefix",
        "hardware-address",
        "hwaddr",
        "inet",
        "inet6",
        "pos",
        "action",
        "enable",
        "macro",
        "source",
        "dest",
        "proto",
        "dport",
        "sport",
        "iface",
        "log",
        "comment",
        "cidr",
        "nomatch",
        "group",
        "policy_in",
        "code",
        "devDescription",
        "vms",
        "vm",
        "realms",
        "uid",
        "displayName",
        "default",
        "uuid",
        "ip",
        "port",
        "password",
        "subtype",
        "os",
        "data",
    ];

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
            prop::sample::select(vec![
                "1",
                "0",
                "",
                "running",
                "stopped",
                "qemu",
                "lxc",
                "101",
                "-1",
                "200031",
                "assignable",
                "10.0.0.5",
                "fe80::1%eth0",
                "BC:24:11:00:00:01",
                "virtio,bridge=vmbr0",
                "UPID:pve1:0012D68C:8206F38C:65144CB7:qmclone:501:root@pam:",
                "4294967296",
            ])
            .prop_map(|s| Value::String(s.to_owned())),
            "\\PC{0,16}".prop_map(Value::String),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(KEYS).prop_map(str::to_owned),
            1 => "\\PC{0,8}",
        ]
    }

    /// An arbitrary JSON value (depth ≤ 4).
    pub fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(4, 48, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key(), inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }
}

mod pve_json {
    use super::*;
    use serde_json::{json, Value};

    /// Every PVE answer type of `pve-vm`, `pve-net` and `pve-firewall` read from `v`; each
    /// either decodes or errs, and what decoded answers its accessors.
    fn read_all(v: &Value) {
        if let Ok(list) = serde_json::from_value::<Vec<pve_vm::GuestSummary>>(v.clone()) {
            for g in list {
                let _ = (g.vmid.get(), g.node.as_str(), g.kind.as_str());
            }
        }
        if let Ok(s) = serde_json::from_value::<pve_vm::GuestStatus>(v.clone()) {
            let _ = s.is_running();
        }
        if let Ok(c) = serde_json::from_value::<pve_vm::GuestConfig>(v.clone()) {
            let _ = (c.tags(), c.nics(), c.name(), c.lock(), c.agent_enabled());
        }
        let _ = serde_json::from_value::<pve_vm::Upid>(v.clone());
        let _ = serde_json::from_value::<pve_firewall::Options>(v.clone());
        let _ = serde_json::from_value::<Vec<pve_firewall::RuleEntry>>(v.clone());
        let _ = serde_json::from_value::<Vec<pve_firewall::IpSetInfo>>(v.clone());
        if let Ok(list) = serde_json::from_value::<Vec<pve_firewall::IpSetEntry>>(v.clone()) {
            for e in list {
                let _ = e.net();
            }
        }
        let _ = serde_json::from_value::<Vec<pve_firewall::GroupInfo>>(v.clone());
        let _ = serde_json::from_value::<Vec<pve_firewall::AliasEntry>>(v.clone());
        let vmid = pve_vm::VmId::MIN;
        if let Ok(i) = pve_net::parse_agent_interfaces("test", vmid, v.clone()) {
            let _ = pve_net::choose_primary_ipv4(&i, &[]);
        }
        if let Ok(i) = pve_net::parse_lxc_interfaces("test", vmid, v.clone()) {
            let _ = pve_net::choose_primary_ipv4(&i, &[]);
        }
    }

    /// A JSON boolean as Perl sends it.
    fn perl_bool(b: bool) -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!(u8::from(b))),
            Just(json!(u8::from(b).to_string())),
            Just(json!(b)),
        ]
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn arbitrary_json_never_panics_a_pve_decoder(v in json::value()) {
            read_all(&v);
            // The same value nested where the decoders look for lists.
            read_all(&json!([v.clone()]));
            read_all(&json!({"result": [v]}));
        }

        #[test]
        fn guest_listings_read_lenient_spellings(
            vmid in 100u32..=999_999_999,
            as_string in any::<bool>(),
            node in label(),
            lxc in any::<bool>(),
            template in any::<bool>(),
            tpl in any::<bool>().prop_flat_map(perl_bool),
            name in prop::option::of("[a-z][a-z0-9-]{0,10}"),
            extra in json::value(),
        ) {
            let _ = template;
            let mut g = json!({
                "vmid": if as_string { json!(vmid.to_string()) } else { json!(vmid) },
                "node": node, "type": if lxc { "lxc" } else { "qemu" },
                "status": "running", "template": tpl.clone(), "x-future": extra,
            });
            if let Some(n) = &name {
                g["name"] = json!(n);
            }
            let list: Vec<pve_vm::GuestSummary> = serde_json::from_value(json!([g])).unwrap();
            prop_assert_eq!(list[0].vmid.get(), vmid);
            prop_assert_eq!(list[0].node.as_str(), node.as_str());
            prop_assert_eq!(list[0].kind.as_str(), if lxc { "lxc" } else { "qemu" });
            prop_assert_eq!(list[0].name.clone(), name);
            let want = matches!(tpl, Value::Bool(true)) || tpl == json!(1) || tpl == json!("1");
            prop_assert_eq!(list[0].template, Some(want));
        }

        #[test]
        fn agent_interfaces_keep_names_lowercase_macs_and_addresses(
            ifaces in prop::collection::vec(
                ("[a-z]{2,5}[0-9]{0,2}", any::<[u8; 6]>(), any::<[u8; 4]>(), 0u8..=32),
                1..5,
            )
        ) {
            let list: Vec<Value> = ifaces.iter().map(|(name, mac, ip, prefix)| {
                let mac = mac.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
                json!({"name": name, "hardware-address": mac, "ip-addresses": [
                    {"ip-address": std::net::Ipv4Addr::from(*ip).to_string(),
                     "ip-address-type": "ipv4", "prefix": prefix},
                    {"ip-address": "fe80::1%x", "ip-address-type": "ipv6", "prefix": 64},
                ]})
            }).collect();
            let vmid = pve_vm::VmId::new(101).unwrap();
            let got = pve_net::parse_agent_interfaces("test", vmid, json!({"result": list}))
                .unwrap();
            prop_assert_eq!(got.len(), ifaces.len());
            for (i, (name, mac, ip, prefix)) in got.iter().zip(&ifaces) {
                prop_assert_eq!(&i.name, name);
                let want = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
                prop_assert_eq!(i.mac.as_deref(), Some(want.as_str()));
                prop_assert_eq!(i.addresses[0].ip, std::net::IpAddr::from(*ip));
                prop_assert_eq!(i.addresses[0].prefix, Some(*prefix));
                prop_assert_eq!(i.addresses[1].ip.to_string(), "fe80::1");
            }
        }

        #[test]
        fn an_agent_error_names_the_vm_and_a_stopped_ct_is_not_running(
            class in "[A-Za-z]{1,12}", desc in "\\PC{0,20}"
        ) {
            let vmid = pve_vm::VmId::new(4242).unwrap();
            let e = pve_net::parse_agent_interfaces(
                "test", vmid, json!({"result": {"error": {"class": class, "desc": desc}}}),
            ).unwrap_err().to_string();
            prop_assert!(e.contains("4242") && e.contains(&class), "{}", e);
            let e = pve_net::parse_lxc_interfaces("test", vmid, Value::Null).unwrap_err();
            prop_assert!(e.is_pending(), "{}", e);
        }
    }
}

mod fosscloud_json {
    use super::*;
    use fosscloud_api::{read_answer, Vm, VmStatus};
    use serde_json::{json, Value};

    /// A value as FOSS-Cloud's `JSON_NUMERIC_CHECK` may send it: numeric strings become numbers.
    fn numeric_or_string(s: String) -> Value {
        match s.parse::<u64>() {
            Ok(n) if !s.starts_with('0') || s == "0" => json!(n),
            _ => json!(s),
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn arbitrary_bodies_never_panic_and_errors_never_show_a_password(
            v in json::value(),
            status in prop::sample::select(vec![200u16, 400, 401, 403, 404, 500, 502]),
            secret in "[A-Za-z0-9]{12,20}",
        ) {
            // Whatever the shape, a password anywhere in it stays out of the error.
            let mut body = json!({"code": v.clone(), "vms": [{"password": secret, "x": v.clone()}],
                                  "vm": v.clone(), "realms": v});
            for code in [json!(200_031), json!("200031"), json!(500_043), Value::Null] {
                body["code"] = code;
                let bytes = serde_json::to_vec(&body).unwrap();
                match read_answer("https://fc.test/vm/list", status, None, &bytes) {
                    Ok(answer) => {
                        for r in [
                            answer.take::<Vec<Vm>>("vms").map(|_| ()),
                            answer.take::<Vm>("vm").map(|_| ()),
                            answer.take::<Vec<fosscloud_api::Realm>>("realms").map(|_| ()),
                        ] {
                            if let Err(e) = r {
                                let text = format!("{e} {e:?}");
                                prop_assert!(!text.contains(&secret), "{}", text);
                            }
                        }
                        let dbg = format!("{answer:?}");
                        prop_assert!(!dbg.contains(&secret), "{}", dbg);
                    }
                    Err(e) => {
                        let text = format!("{e} {e:?}");
                        prop_assert!(!text.contains(&secret), "{}", text);
                    }
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Err(e) = read_answer("https://fc.test/vm/list", 200, Some("text/html"), &body) {
                prop_assert!(!e.to_string().is_empty());
            }
        }

        #[test]
        fn listed_vms_read_numeric_and_string_spellings(
            name in "[A-Za-z0-9 -]{1,12}",
            ip in any::<[u8; 4]>(),
            port in 1u16..,
            port_as_string in any::<bool>(),
            password in "[0-9]{1,9}|[a-zA-Z0-9]{4,16}",
            status in prop::sample::select(vec!["online", "offline", "assignable", "assigned", "later"]),
        ) {
            let vm = json!({
                "uuid": "b4e9c1a0-0000-4000-8000-000000000001", "name": numeric_or_string(name.clone()),
                "ip": std::net::Ipv4Addr::from(ip).to_string(), "node": "node1",
                "port": if port_as_string { json!(port.to_string()) } else { json!(port) },
                "password": numeric_or_string(password.clone()), "status": status,
                "type": "dynamic", "subtype": "Desktop", "os": null, "pool": "p-1",
            });
            let body = serde_json::to_vec(&json!({"code": 200_031, "vms": [vm]})).unwrap();
            let answer = read_answer("https://fc.test/vm/list", 200, None, &body).unwrap();
            let vms: Vec<Vm> = answer.take("vms").unwrap();
            prop_assert_eq!(vms[0].name.as_deref(), Some(name.as_str()));
            prop_assert_eq!(vms[0].port, Some(port));
            let pw = vms[0].password.as_ref().unwrap();
            prop_assert_eq!(pw.expose(), password.as_str());
            let dbg = format!("{pw:?}");
            prop_assert!(!dbg.contains(&password), "{}", dbg);
            prop_assert_eq!(vms[0].status.as_ref().map(VmStatus::as_str), Some(status));
            prop_assert_eq!(vms[0].is_assignable(), status == "assignable");
        }
    }
}
