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
    assert_eq!(listed.len(), 119);
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
