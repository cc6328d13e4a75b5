//! Parameter validation with PVE's texts, against endpoints of the embedded extract.

use std::collections::BTreeMap;

use pve_schema::{schema, Endpoint};

const NOT_DEFINED: &str =
    "property is not defined in schema and the schema does not allow additional properties";

fn ep(method: &str, template: &str) -> &'static Endpoint {
    schema()
        .endpoint(method, template)
        .unwrap_or_else(|| panic!("{method} {template} is in the extract"))
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The error map for `pairs`, which must fail.
fn errors(e: &Endpoint, pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    e.validate(&params(pairs))
        .expect_err("these parameters must be rejected")
}

fn clone_ep() -> &'static Endpoint {
    ep("POST", "/nodes/{node}/qemu/{vmid}/clone")
}

const CLONE_OK: &[(&str, &str)] = &[("node", "pve1"), ("vmid", "9000"), ("newid", "123")];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut v = CLONE_OK.to_vec();
    for (k, val) in extra {
        v.retain(|(key, _)| key != k);
        v.push((k, val));
    }
    v
}

#[test]
fn a_valid_clone_passes() {
    assert_eq!(clone_ep().validate(&params(CLONE_OK)), Ok(()));
    let full = with(&[
        ("name", "stud-01"),
        ("full", "0"),
        ("pool", "exam"),
        ("target", "pve2"),
        ("storage", "local-lvm"),
        ("description", "exam lab"),
    ]);
    assert_eq!(clone_ep().validate(&params(&full)), Ok(()));
}

#[test]
fn missing_required_parameter() {
    let e = errors(clone_ep(), &[("node", "pve1"), ("vmid", "9000")]);
    assert_eq!(e.len(), 1);
    assert_eq!(e["newid"], "property is missing and it is not optional");
}

#[test]
fn unknown_parameter() {
    let e = errors(clone_ep(), &with(&[("linked", "1")]));
    assert_eq!(e.len(), 1);
    assert_eq!(e["linked"], NOT_DEFINED);
}

#[test]
fn booleans_are_only_0_or_1() {
    for bad in ["true", "false", "yes", "2", ""] {
        let e = errors(clone_ep(), &with(&[("full", bad)]));
        assert_eq!(
            e["full"],
            format!("type check ('boolean') failed - got '{bad}'")
        );
    }
    assert!(clone_ep()
        .validate(&params(&with(&[("full", "1")])))
        .is_ok());
}

#[test]
fn integer_and_number_types() {
    let e = errors(clone_ep(), &with(&[("newid", "abc")]));
    assert_eq!(e["newid"], "type check ('integer') failed - got 'abc'");
    let e = errors(clone_ep(), &with(&[("bwlimit", "1.5")]));
    assert_eq!(e["bwlimit"], "type check ('integer') failed - got '1.5'");
    assert!(clone_ep()
        .validate(&params(&with(&[("bwlimit", "+10")])))
        .is_ok());

    let config = ep("PUT", "/nodes/{node}/qemu/{vmid}/config");
    let base = [("node", "pve1"), ("vmid", "100")];
    for good in ["0.5", "1", ".5", "5.", "1e1", "+2"] {
        let mut p = base.to_vec();
        p.push(("cpulimit", good));
        assert_eq!(config.validate(&params(&p)), Ok(()), "{good}");
    }
    let mut p = base.to_vec();
    p.push(("cpulimit", "half"));
    assert_eq!(
        errors(config, &p)["cpulimit"],
        "type check ('number') failed - got 'half'"
    );
}

#[test]
fn minimum_and_maximum() {
    let config = ep("PUT", "/nodes/{node}/lxc/{vmid}/config");
    let base = [("node", "pve1"), ("vmid", "100")];
    let mut p = base.to_vec();
    p.push(("cores", "0"));
    assert_eq!(
        errors(config, &p)["cores"],
        "value must have a minimum value of 1"
    );
    let mut p = base.to_vec();
    p.push(("cores", "8193"));
    assert_eq!(
        errors(config, &p)["cores"],
        "value must have a maximum value of 8192"
    );
    let mut p = base.to_vec();
    p.push(("cpulimit", "8192.5"));
    assert_eq!(
        errors(config, &p)["cpulimit"],
        "value must have a maximum value of 8192"
    );
    let e = errors(clone_ep(), &with(&[("bwlimit", "-1")]));
    assert_eq!(e["bwlimit"], "value must have a minimum value of 0");
}

#[test]
fn vmid_out_of_range_fails_the_format_first() {
    // pve-vmid is `type integer, format pve-vmid, minimum 100, maximum 999999999`, and
    // check_prop tests the format before the bounds.
    for bad in ["99", "1000000000", "0100"] {
        let e = errors(clone_ep(), &with(&[("newid", bad)]));
        assert_eq!(
            e["newid"], "invalid format - value does not look like a valid VM ID\n",
            "{bad}"
        );
    }
    // Path parameters are validated the same way.
    let e = errors(clone_ep(), &with(&[("vmid", "42")]));
    assert_eq!(
        e["vmid"],
        "invalid format - value does not look like a valid VM ID\n"
    );
    let e = errors(clone_ep(), &with(&[("node", "pve_1")]));
    assert_eq!(
        e["node"],
        "invalid format - value does not look like a valid node name\n"
    );
}

#[test]
fn dns_name_format() {
    let e = errors(clone_ep(), &with(&[("name", "stud_01")]));
    assert_eq!(
        e["name"],
        "invalid format - value does not look like a valid DNS name\n"
    );
    let e = errors(clone_ep(), &with(&[("pool", "a b")]));
    assert_eq!(
        e["pool"],
        "invalid format - pool name 'a b' contains invalid characters\n"
    );
}

#[test]
fn max_and_min_length() {
    let ticket = ep("POST", "/access/ticket");
    let long = "u".repeat(65);
    let e = errors(ticket, &[("username", &long), ("password", "x")]);
    assert_eq!(e["username"], "value may only be 64 characters long");
    let exact = "u".repeat(64);
    assert!(ticket
        .validate(&params(&[("username", &exact), ("password", "x")]))
        .is_ok());

    let ipset = ep("POST", "/cluster/firewall/ipset");
    let e = errors(ipset, &[("name", "s")]);
    assert_eq!(e["name"], "value does not match the regex pattern");
    let e = errors(ipset, &[("name", &"s".repeat(65))]);
    assert_eq!(e["name"], "value may only be 64 characters long");
}

#[test]
fn pattern_is_anchored() {
    let ipset = ep("POST", "/cluster/firewall/ipset");
    assert!(ipset.validate(&params(&[("name", "students")])).is_ok());
    for bad in ["1students", "stud ents", "stud.ents", "-x"] {
        let e = errors(ipset, &[("name", bad)]);
        assert_eq!(e["name"], "value does not match the regex pattern", "{bad}");
    }
}

#[test]
fn enumeration() {
    let res = ep("GET", "/cluster/resources");
    assert!(res.validate(&params(&[("type", "vm")])).is_ok());
    let e = errors(res, &[("type", "qemu")]);
    assert_eq!(
        e["type"],
        "value 'qemu' does not have a value in the enumeration 'vm, storage, node, sdn'"
    );
}

#[test]
fn requires_names_the_missing_partner() {
    let ticket = ep("POST", "/access/ticket");
    let e = errors(
        ticket,
        &[
            ("username", "root@pam"),
            ("password", "x"),
            ("path", "/vms"),
        ],
    );
    assert_eq!(e.len(), 1);
    assert_eq!(e["privs"], "missing property required by 'path'");
}

#[test]
fn several_errors_are_reported_together() {
    let e = errors(
        clone_ep(),
        &[
            ("node", "pve1"),
            ("vmid", "9000"),
            ("full", "true"),
            ("x", "1"),
        ],
    );
    assert_eq!(
        e.keys().map(String::as_str).collect::<Vec<_>>(),
        ["full", "newid", "x"]
    );
}

#[test]
fn endpoints_without_parameters_reject_everything_extra() {
    let version = ep("GET", "/version");
    assert!(version.validate(&BTreeMap::new()).is_ok());
    // (`_dc`, the cache-buster, is dropped by PVE's HTTP layer before validation.)
    let e = errors(version, &[("verbose", "1")]);
    assert_eq!(e["verbose"], NOT_DEFINED);
}

#[test]
fn indexed_parameters_resolve_within_their_limits() {
    let qemu = ep("PUT", "/nodes/{node}/qemu/{vmid}/config");
    let lxc = ep("PUT", "/nodes/{node}/lxc/{vmid}/config");
    assert!(qemu.parameter("net0").is_some());
    assert!(qemu.parameter("net31").is_some());
    assert!(qemu.parameter("net32").is_none());
    assert!(qemu.parameter("net01").is_none());
    assert!(qemu.parameter("scsi30").is_some());
    assert!(qemu.parameter("scsi31").is_none());
    assert!(qemu.parameter("ide3").is_some());
    assert!(qemu.parameter("ide4").is_none());
    assert!(lxc.parameter("mp255").is_some());
    assert!(lxc.parameter("mp256").is_none());
    assert!(qemu.parameter("mp0").is_none());
    assert!(qemu.parameter("net[n]").is_none());
    assert!(
        qemu.parameter("rng0").is_some(),
        "plain names ending in a digit"
    );

    let base = [("node", "pve1"), ("vmid", "100")];
    let mut p = base.to_vec();
    p.push(("net32", "virtio,bridge=vmbr0"));
    p.push(("net[n]", "virtio,bridge=vmbr0"));
    let e = errors(qemu, &p);
    assert_eq!(e["net32"], NOT_DEFINED);
    assert_eq!(e["net[n]"], NOT_DEFINED);
}

#[test]
fn every_indexed_family_in_the_extract_has_a_limit() {
    for e in schema().endpoints() {
        for name in e.parameters.keys() {
            if let Some(family) = name.strip_suffix("[n]") {
                assert!(
                    pve_schema::INDEXED_FAMILIES
                        .iter()
                        .any(|(f, _)| *f == family),
                    "{} {}: no limit for {name}",
                    e.method,
                    e.path
                );
                assert!(
                    e.parameter(&format!("{family}0")).is_some(),
                    "{family}0 resolves"
                );
            }
        }
    }
}

#[test]
fn property_strings_are_parsed_like_pve() {
    let qemu = ep("PUT", "/nodes/{node}/qemu/{vmid}/config");
    let base = [("node", "pve1"), ("vmid", "100")];
    let check = |net: &str| {
        let mut p = base.to_vec();
        p.push(("net0", net));
        qemu.validate(&params(&p))
    };
    assert_eq!(
        check("virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1"),
        Ok(())
    );
    assert_eq!(check("model=virtio,bridge=vmbr0,firewall=yes"), Ok(()));
    assert_eq!(check("virtio,bridge=vmbr0"), Ok(()));

    let e = check("virtio=BC:24:11:00:00:01,bridge=vmbr0,colour=red").unwrap_err();
    assert_eq!(
        e["net0"],
        "invalid format - invalid key in comma-separated list property: colour\n"
    );
    let e = check("virtio=01:24:11:00:00:01,bridge=vmbr0").unwrap_err();
    assert_eq!(
        e["net0"],
        "invalid format - format error\nnet0.macaddr: invalid format - value does not look \
         like a valid unicast MAC address\n\n"
    );
    let e = check("virtio,e1000").unwrap_err();
    assert_eq!(
        e["net0"],
        "invalid format - duplicate key in comma-separated list property: model\n"
    );
    let e = check("bridge=vmbr0").unwrap_err();
    assert_eq!(
        e["net0"],
        "invalid format - format error\nnet0.model: property is missing and it is not optional\n"
    );
    let e = check("virtio,firewall=maybe").unwrap_err();
    assert_eq!(
        e["net0"],
        "invalid format - format error\nnet0.firewall: type check ('boolean') failed - got \
         'maybe'\n"
    );
    let e = check("virtio,bridge=").unwrap_err();
    assert_eq!(
        e["net0"],
        "invalid format - missing key in comma-separated list property\n"
    );
}

#[test]
fn perl_quantifier_without_minimum_is_enforced() {
    // scsi[n] `vendor` has the pattern `[A-Za-z0-9\-_\s]{,8}` (Perl >= 5.34: `{0,8}`).
    let qemu = ep("PUT", "/nodes/{node}/qemu/{vmid}/config");
    let check = |scsi: &str| {
        qemu.validate(&params(&[
            ("node", "pve1"),
            ("vmid", "100"),
            ("scsi0", scsi),
        ]))
    };
    assert_eq!(check("local-lvm:vm-100-disk-0,vendor=ACME"), Ok(()));
    assert_eq!(
        check("local-lvm:vm-100-disk-0,vendor="),
        Err(BTreeMap::from([(
            "scsi0".to_owned(),
            "invalid format - missing key in comma-separated list property\n".to_owned(),
        )]))
    );
    let e = check("local-lvm:vm-100-disk-0,vendor=ACMEACMEA").unwrap_err();
    assert_eq!(
        e["scsi0"],
        "invalid format - format error\nscsi0.vendor: value does not match the regex pattern\n"
    );
}

#[test]
fn patterns_are_anchored_like_perl_m_caret_pattern_dollar() {
    // parallel[n] is `/dev/parport\d+|/dev/usb/lp\d+`; PVE matches `m/^$pattern$/`, so the
    // first branch is anchored only at the start and the second only at the end.
    let qemu = ep("PUT", "/nodes/{node}/qemu/{vmid}/config");
    let check = |dev: &str| {
        qemu.validate(&params(&[
            ("node", "pve1"),
            ("vmid", "100"),
            ("parallel0", dev),
        ]))
    };
    assert_eq!(check("/dev/parport0"), Ok(()));
    assert_eq!(check("/dev/usb/lp1"), Ok(()));
    assert_eq!(check("/dev/parport0-and-more"), Ok(()));
    assert_eq!(
        check("/dev/ttyS0").unwrap_err()["parallel0"],
        "value does not match the regex pattern"
    );
}

#[test]
fn array_parameters_take_a_json_list_or_one_plain_value() {
    let e = ep("POST", "/nodes/{node}/qemu/{vmid}/agent/exec");
    let base = [("node", "pve1"), ("vmid", "100")];
    let with = |cmd: &'static str| {
        let mut p = base.to_vec();
        p.push(("command", cmd));
        p
    };
    assert!(e.validate(&params(&with(r#"["ip","-j","addr"]"#))).is_ok());
    // A single form value is a one-item list (the program name, spaces and all).
    assert!(e.validate(&params(&with("ip -j addr"))).is_ok());
    assert_eq!(
        errors(e, &with(r#"[["nested"]]"#))["command"],
        r#"type check ('array') failed - got '[["nested"]]'"#
    );
    assert_eq!(
        errors(e, &base)["command"],
        "property is missing and it is not optional"
    );
}
