//! Envelope, 400/500/501 shapes, reason phrases over the wire, JSON bodies, loose types.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{raw, raw_request, Api, TOKEN};

#[tokio::test]
async fn unknown_paths_and_methods_are_501() {
    let api = Api::start(0.01).await;
    let a = api.call(Method::GET, "/foo", &[]).await;
    assert_eq!(a.status, 501);
    assert_eq!(a.message(), "Method 'GET /foo' not implemented\n");
    let a = api.call(Method::PUT, "/version", &[]).await;
    assert_eq!(a.status, 501);
    assert_eq!(a.message(), "Method 'PUT /version' not implemented\n");
    // Known in the full API but not in the extract: not served either.
    let a = api
        .call(Method::GET, "/nodes/pve1/qemu/100/rrddata", &[])
        .await;
    assert_eq!(a.status, 501);
    let (line, _) = raw(
        api.sim.addr(),
        &raw_request("GET", "/nodes/pve1/nothing", ""),
    )
    .await;
    assert_eq!(
        line,
        "HTTP/1.1 501 Method 'GET /nodes/pve1/nothing' not implemented"
    );
    // Authentication comes first: without credentials even an unknown path is a 401.
    let (line, _) = raw(
        api.sim.addr(),
        "GET /api2/json/foo HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(line, "HTTP/1.1 401 No ticket");
}

#[tokio::test]
async fn get_and_delete_with_a_body_are_501() {
    let api = Api::start(0.01).await;
    for m in ["GET", "DELETE"] {
        let (line, rest) = raw(api.sim.addr(), &raw_request(m, "/pools", "poolid=x")).await;
        assert_eq!(
            line,
            format!("HTTP/1.1 501 Unexpected content for method '{m}'")
        );
        assert!(
            rest.ends_with(&format!("Unexpected content for method '{m}'\n")),
            "{rest}"
        );
    }
}

#[tokio::test]
async fn schema_violations_are_400_with_errors_map() {
    let api = Api::start(0.01).await;
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "99"), ("name", "stud_01"), ("bogus", "1")],
        )
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.message(), "Parameter verification failed.\n");
    let errors = a.body["errors"].as_object().unwrap();
    assert!(errors.contains_key("newid"), "{errors:?}");
    assert_eq!(
        errors["name"],
        "invalid format - value does not look like a valid DNS name\n"
    );
    assert_eq!(
        errors["bogus"],
        "property is not defined in schema and the schema does not allow additional properties"
    );
    // Form booleans are 0/1 only.
    let a = api
        .call(
            Method::POST,
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "150"), ("full", "true")],
        )
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.body["errors"]["full"],
        "type check ('boolean') failed - got 'true'"
    );
    // Path parameters are validated too.
    let a = api
        .call(Method::GET, "/nodes/pve1/qemu/42/config", &[])
        .await;
    assert_eq!(a.status, 400);
    assert!(a.body["errors"]["vmid"].is_string(), "{:?}", a.body);
    let (line, _) = raw(
        api.sim.addr(),
        &raw_request("POST", "/nodes/pve1/qemu/9000/clone", "newid=99"),
    )
    .await;
    assert_eq!(line, "HTTP/1.1 400 Parameter verification failed.");
    // Query and body conflict.
    let a = api
        .call(Method::POST, "/pools?poolid=a", &[("poolid", "b")])
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.message(),
        "duplicate parameter (already defined in URI) with conflicting values!\n"
    );
}

#[tokio::test]
async fn handler_errors_are_500_with_the_text_in_reason_and_message() {
    let api = Api::start(0.01).await;
    let (line, rest) = raw(
        api.sim.addr(),
        &raw_request("DELETE", "/nodes/pve1/qemu/100", ""),
    )
    .await;
    assert_eq!(line, "HTTP/1.1 500 VM 100 is running - destroy failed");
    let body: Value = serde_json::from_str(rest.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"data": null, "message": "VM 100 is running - destroy failed\n"})
    );
    let a = api
        .call(Method::GET, "/nodes/pve2/qemu/100/status/current", &[])
        .await;
    assert_eq!(a.status, 500);
    assert_eq!(
        a.message(),
        "Configuration file 'nodes/pve2/qemu-server/100.conf' does not exist\n"
    );
    let a = api.call(Method::GET, "/nodes/pve9/qemu", &[]).await;
    assert_eq!(a.status, 500);
    assert!(
        a.message().starts_with("hostname lookup 'pve9' failed"),
        "{}",
        a.message()
    );
}

#[tokio::test]
async fn json_bodies_with_json_booleans_are_accepted() {
    let api = Api::start(0.01).await;
    let r = api
        .http
        .post(api.url("/nodes/pve1/qemu/9000/clone"))
        .header("Authorization", format!("PVEAPIToken={TOKEN}"))
        .json(&json!({"newid": 150, "name": "json-clone", "full": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let st = api.wait_task(&v["data"]).await;
    assert_eq!(st["exitstatus"], "OK");
    let log = api
        .get(
            &format!(
                "/nodes/pve1/tasks/{}/log",
                crate::common::enc(v["data"].as_str().unwrap())
            ),
            &[],
        )
        .await;
    assert_eq!(
        log[0]["t"],
        "create full clone of drive scsi0 (local-lvm:base-9000-disk-0)"
    );
    let cfg = api.get("/nodes/pve1/qemu/150/config", &[]).await;
    assert_eq!(cfg["scsi0"], "local-lvm:vm-150-disk-0,size=8G");
}

#[tokio::test]
async fn loose_types_nextid_string_booleans_numbers_absent_fields() {
    let api = Api::start(0.01).await;
    let id = api.get("/cluster/nextid", &[]).await;
    assert_eq!(id, json!("101"), "nextid is a JSON string");
    assert_eq!(
        api.get("/cluster/nextid", &[("vmid", "555")]).await,
        json!("555")
    );
    let a = api
        .call(Method::GET, "/cluster/nextid", &[("vmid", "100")])
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["errors"]["vmid"], "VM 100 already exists");
    let cfg = api.get("/nodes/pve1/qemu/9000/config", &[]).await;
    assert_eq!(cfg["template"], json!(1));
    assert_eq!(cfg["cores"], json!(2));
    assert_eq!(cfg["memory"], json!("2048"));
    assert_eq!(cfg["digest"].as_str().unwrap().len(), 40);
    let cur = api.get("/nodes/pve1/qemu/100/status/current", &[]).await;
    assert_eq!(cur["agent"], json!(1));
    assert!(
        cur.get("lock").is_none() && cur.get("template").is_none(),
        "{cur}"
    );
    let status = api.get("/cluster/status", &[]).await;
    assert_eq!(status[0]["quorate"], json!(1));
    assert_eq!(status[1]["local"], json!(1));
    assert_eq!(status[2]["local"], json!(0));
    // `_dc` cache busters are ignored.
    assert_eq!(
        api.get("/version", &[("_dc", "12345")]).await["release"],
        "9.1"
    );
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let api = Api::start(0.01).await;
    let addr = api.sim.addr();
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    api.sim.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "port closed after shutdown"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_by_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = Api::start(0.01).await;
    let mut s = tokio::net::TcpStream::connect(api.sim.addr())
        .await
        .unwrap();
    let req = format!(
        "GET /api2/json/version HTTP/1.1\r\nHost: x\r\nAuthorization: PVEAPIToken={TOKEN}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 OK"));
    // Keep-alive: the connection stays usable, then the server drops it when idle.
    let closed = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert_eq!(closed, Ok(true));
}
