//! Acceptance 3: the served routes and the schema extract agree, in both directions,
//! and every served route is really dispatched (no 501) over HTTP.

use reqwest::Method;

use crate::common::{enc, Api};

#[test]
fn every_extract_endpoint_is_served_or_listed_as_not_served() {
    let schema = pve_schema::schema();
    let mut missing = Vec::new();
    for ep in schema.endpoints() {
        let listed = pve_sim::NOT_SERVED
            .iter()
            .any(|(m, p, _)| *m == ep.method && *p == ep.path);
        if !pve_sim::is_served(&ep.method, &ep.path) && !listed {
            missing.push(format!("{} {}", ep.method, ep.path));
        }
    }
    assert!(missing.is_empty(), "not served: {missing:?}");
    for (m, p, reason) in pve_sim::NOT_SERVED {
        assert!(
            schema.endpoint(m, p).is_some(),
            "{m} {p} is not in the extract"
        );
        assert!(!reason.is_empty());
    }
}

#[test]
fn every_served_template_is_in_the_extract_with_the_same_method() {
    let schema = pve_schema::schema();
    for (m, p) in pve_sim::SERVED {
        assert!(
            schema.endpoint(m, p).is_some(),
            "{m} {p} is served but not in the extract"
        );
    }
    // Firewall templates are served by pattern; only extract templates reach the
    // dispatcher, and the pattern claims nothing that is not a firewall path.
    assert!(!pve_sim::is_served(
        "GET",
        "/nodes/{node}/qemu/{vmid}/rrddata"
    ));
    assert!(!pve_sim::is_served(
        "POST",
        "/nodes/{node}/lxc/{vmid}/config"
    ));
    assert!(pve_sim::is_served("GET", "/cluster/firewall/rules"));
}

/// A concrete path for a template, with values that exist in the initial inventory.
fn concrete(template: &str, upid: &str) -> String {
    let lxc = template.contains("/lxc/");
    template
        .replace("{node}", "pve1")
        .replace("{vmid}", if lxc { "9001" } else { "100" })
        .replace("{upid}", &enc(upid))
        .replace("{pos}", "0")
        .replace("{group}", "g1")
        .replace("{name}", "x1")
        .replace("{cidr}", &enc("10.0.0.0/24"))
        .replace("{poolid}", "p1")
}

#[tokio::test]
async fn every_served_route_is_dispatched_over_http() {
    let api = Api::start(0.001).await;
    let upid = api.post("/nodes/pve1/qemu/100/status/reboot", &[]).await;
    let upid = upid.as_str().unwrap().to_owned();
    let schema = pve_schema::schema();
    let mut not_dispatched = Vec::new();
    for ep in schema.endpoints() {
        let path = concrete(&ep.path, &upid);
        let method = Method::from_bytes(ep.method.as_bytes()).unwrap();
        let a = api.call(method, &path, &[]).await;
        if a.status == 501 {
            not_dispatched.push(format!("{} {path}: {}", ep.method, a.message().trim_end()));
        }
    }
    assert!(not_dispatched.is_empty(), "{not_dispatched:#?}");
    // Every request was counted under its template.
    let counts = api.sim.requests();
    for ep in schema.endpoints() {
        let key = format!("{} {}", ep.method, ep.path);
        assert!(counts.get(&key).is_some(), "{key} not counted");
    }
}
