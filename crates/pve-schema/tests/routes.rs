//! Route matching against the embedded extract.

use pve_schema::{schema, Schema};

#[test]
fn concrete_paths_match_their_templates() {
    let s = schema();
    let m = s
        .find("POST", "/nodes/pve1/qemu/100/status/start")
        .expect("start exists");
    assert_eq!(m.endpoint.method, "POST");
    assert_eq!(m.endpoint.path, "/nodes/{node}/qemu/{vmid}/status/start");
    assert_eq!(m.path_params.len(), 2);
    assert_eq!(m.path_params["node"], "pve1");
    assert_eq!(m.path_params["vmid"], "100");
    assert!(m.endpoint.protected);
    assert_eq!(m.endpoint.proxyto.as_deref(), Some("node"));
    assert_eq!(m.endpoint.returns.as_deref(), Some("string"));

    let m = s.find("GET", "/version").expect("version exists");
    assert!(m.path_params.is_empty());
    assert!(!m.endpoint.protected);
}

#[test]
fn wrong_method_and_unknown_path_are_told_apart() {
    let s = schema();
    assert!(s.find("DELETE", "/version").is_none());
    assert!(s.path_exists("/version"));
    assert_eq!(s.methods("/version"), ["GET"]);
    assert_eq!(s.methods("/pools"), ["DELETE", "GET", "POST", "PUT"]);
    assert!(s.find("GET", "/nodes/pve1/qemu/100/status/start").is_none());
    assert!(s.path_exists("/nodes/pve1/qemu/100/status/start"));

    for unknown in [
        "/nodes/pve1/qemu/100/status",
        "/nodes/pve1/qemu/100/status/start/now",
        "/foo",
        "/nodes/pve1/storage",
        "/",
        "",
    ] {
        assert!(!s.path_exists(unknown), "{unknown:?}");
        assert!(s.find("GET", unknown).is_none(), "{unknown:?}");
        assert!(s.methods(unknown).is_empty(), "{unknown:?}");
    }
}

#[test]
fn literal_segments_win_over_parameters() {
    // In the extract `/cluster/firewall/groups/{group}` and `.../{group}/{pos}` share
    // a level with no literal, so build a small extract where they compete.
    let json = r#"{"endpoints": [
        {"additionalProperties": false, "method": "GET", "parameters": {}, "path": "/a/{x}", "protected": false},
        {"additionalProperties": false, "method": "GET", "parameters": {}, "path": "/a/b", "protected": true},
        {"additionalProperties": false, "method": "POST", "parameters": {}, "path": "/a/{x}/c", "protected": false}
    ]}"#;
    let s = Schema::from_extract(json).expect("valid extract");
    let m = s.find("GET", "/a/b").expect("literal");
    assert_eq!(m.endpoint.path, "/a/b");
    assert!(m.path_params.is_empty());
    let m = s.find("GET", "/a/z").expect("param");
    assert_eq!(m.endpoint.path, "/a/{x}");
    assert_eq!(m.path_params["x"], "z");
    // The literal branch has no `/c` below it, so the parameter branch serves `/a/b/c`.
    let m = s
        .find("POST", "/a/b/c")
        .expect("falls back to the parameter");
    assert_eq!(m.endpoint.path, "/a/{x}/c");
    assert_eq!(m.path_params["x"], "b");
}

#[test]
fn conflicting_parameter_names_are_rejected() {
    let json = r#"{"endpoints": [
        {"additionalProperties": false, "method": "GET", "parameters": {}, "path": "/a/{x}", "protected": false},
        {"additionalProperties": false, "method": "PUT", "parameters": {}, "path": "/a/{y}", "protected": false}
    ]}"#;
    let err = Schema::from_extract(json).unwrap_err().to_string();
    assert!(err.contains("{y}") && err.contains("{x}"), "{err}");
    let dup = r#"{"endpoints": [
        {"additionalProperties": false, "method": "GET", "parameters": {}, "path": "/a", "protected": false},
        {"additionalProperties": true, "method": "GET", "parameters": {}, "path": "/a", "protected": false}
    ]}"#;
    let err = Schema::from_extract(dup).unwrap_err().to_string();
    assert!(err.contains("'GET /a' appears twice"), "{err}");
}

#[test]
fn encoded_upid_and_cidr_segments_are_decoded() {
    let s = schema();
    let upid = "UPID:pve1:0012D68C:8206F38C:65144CB7:qmclone:9000:root@pam:";
    let encoded = upid.replace(':', "%3A").replace('@', "%40");
    let m = s
        .find("GET", &format!("/nodes/pve1/tasks/{encoded}/status"))
        .expect("task status");
    assert_eq!(m.endpoint.path, "/nodes/{node}/tasks/{upid}/status");
    assert_eq!(m.path_params["upid"], upid);
    // Unencoded ':' is fine too.
    let m = s
        .find("DELETE", &format!("/nodes/pve1/tasks/{upid}"))
        .expect("task stop");
    assert_eq!(m.path_params["upid"], upid);

    let m = s
        .find("DELETE", "/cluster/firewall/ipset/students/10.10.0.0%2F16")
        .expect("ipset entry");
    assert_eq!(m.endpoint.path, "/cluster/firewall/ipset/{name}/{cidr}");
    assert_eq!(m.path_params["name"], "students");
    assert_eq!(m.path_params["cidr"], "10.10.0.0/16");
    // An unencoded '/' splits the segment, so that path does not exist.
    assert!(!s.path_exists("/cluster/firewall/ipset/students/10.10.0.0/16"));
    // Invalid UTF-8 after decoding cannot match.
    assert!(!s.path_exists("/cluster/firewall/ipset/%FF"));
}

#[test]
fn empty_segments_are_skipped_like_pve() {
    let s = schema();
    let m = s.find("GET", "//nodes//pve1/qemu/").expect("qemu list");
    assert_eq!(m.endpoint.path, "/nodes/{node}/qemu");
    assert_eq!(m.path_params["node"], "pve1");
}

#[test]
fn endpoint_lookup_by_template() {
    let s = schema();
    let ep = s
        .endpoint("PUT", "/nodes/{node}/qemu/{vmid}/config")
        .expect("config PUT");
    assert!(ep.parameters.contains_key("net[n]"));
    assert!(s.endpoint("PUT", "/nodes/pve1/qemu/100/config").is_none());
    assert!(s
        .endpoint("PATCH", "/nodes/{node}/qemu/{vmid}/config")
        .is_none());
}
