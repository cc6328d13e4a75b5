//! The committed extract against `endpoints.txt` and the full reference schema.

use std::collections::BTreeSet;
use std::path::Path;

use pve_schema::{build_extract, parse_endpoint_list, schema, ENDPOINTS_TXT, EXTRACT_JSON};

#[test]
fn extract_lists_exactly_the_endpoints_of_endpoints_txt() {
    let listed: BTreeSet<(String, String)> = parse_endpoint_list(ENDPOINTS_TXT)
        .expect("endpoints.txt parses")
        .into_iter()
        .map(|e| (e.method, e.path))
        .collect();
    let extracted: BTreeSet<(String, String)> = schema()
        .endpoints()
        .map(|e| (e.method.clone(), e.path.clone()))
        .collect();
    assert_eq!(listed, extracted);
    assert_eq!(listed.len(), 186);
}

#[test]
fn extract_is_sorted_by_path_then_method() {
    let order: Vec<(&str, &str)> = schema()
        .endpoints()
        .map(|e| (e.path.as_str(), e.method.as_str()))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
}

#[test]
fn regenerating_from_the_full_schema_gives_the_committed_extract() {
    let full =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/pve-api-schema.json");
    let Ok(text) = std::fs::read_to_string(&full) else {
        println!(
            "skipped: the full schema {} is absent (it lives outside the repository)",
            full.display()
        );
        return;
    };
    let value: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    let fresh = build_extract(&value, ENDPOINTS_TXT).expect("extract builds");
    assert!(
        fresh == EXTRACT_JSON,
        "schema/extract.json is out of date: run `cargo xtask schema` and commit it"
    );
}

/// Formats the validator accepts unchecked. Extending the endpoint list may add names
/// here; then either implement them in `format.rs` or extend this list on purpose.
#[test]
fn unchecked_formats_are_the_known_ones() {
    let expected = [
        // Node-local data (/etc/protocols, zone.tab, the privilege table, storage.cfg).
        "pve-ct-timezone",
        "pve-fw-protocol-spec",
        "pve-priv-list",
        "pve-volume-id",
        "pve-volume-id-or-absolute-path",
        "pve-volume-id-or-qm-path",
        "storage-pair-list",
        // Parsers of qemu-server / pve-container not ported.
        "pve-cpuset",
        "pve-lxc-dev-string",
        "pve-lxc-mp-string",
        "pve-qm-bootdisk",
        // Property strings registered by name in qemu-server; the schema names them
        // without describing their keys, so they are accepted as plain strings.
        "pve-qemu-sev-fmt",
        "pve-qemu-tdx-fmt",
        "pve-qm-boot",
        "pve-qm-cicustom",
        "pve-qm-hostpci",
        "pve-qm-ide",
        "pve-qm-ipconfig",
        "pve-qm-rng",
        "pve-qm-smbios1",
        "pve-qm-watchdog",
        "pve-vm-cpu-conf",
        // vzdump's job options (`POST /nodes/{node}/vzdump`); pve-sim accepts them and
        // does not simulate fleecing, performance tuning, mail or pruning.
        "backup-fleecing",
        "backup-performance",
        "email-or-username-list",
        "prune-backups",
        // Access-control ids; pve-sim's handlers check userid, groupid and roleid
        // themselves.
        "email-opt",
        "pve-groupid",
        "pve-groupid-list",
        "pve-roleid",
        "pve-roleid-list",
        // SDN ids: pve-sdn checks them itself before sending, pve-sim with PVE's texts.
        "pve-sdn-bgp-rt-list",
        "pve-sdn-fabric-id",
        "pve-sdn-subnet-id",
        "pve-sdn-vnet-id",
        "pve-sdn-zone-id",
        "pve-tokenid-list",
        "pve-userid",
        "pve-userid-list",
    ];
    let actual = schema().unchecked_formats();
    let actual: Vec<&str> = actual.iter().map(String::as_str).collect();
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    assert_eq!(actual, expected);
}

/// Every schema pattern compiles once Perl's `(?^:`, `\0` and `{,n}` are translated.
#[test]
fn every_schema_pattern_compiles() {
    assert_eq!(schema().uncompilable_patterns(), BTreeSet::<String>::new());
}
