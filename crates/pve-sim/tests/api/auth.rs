//! Tickets, CSRF, tokens, TOTP, expiry, the 401/403 texts and HTTPS.

use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{builder, raw, Api, PASSWORD, TOKEN};

async fn login(api: &Api, params: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = api
        .http
        .post(api.url("/access/ticket"))
        .form(params)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn login_request(extra_headers: &str, body: &str) -> String {
    format!(
        "POST /api2/json/access/ticket HTTP/1.1\r\nHost: x\r\n{extra_headers}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn with_ticket(
    api: &Api,
    method: reqwest::Method,
    path: &str,
    ticket: &str,
) -> reqwest::RequestBuilder {
    api.http.request(method, api.url(path)).header(
        "Cookie",
        format!("PVEAuthCookie={}", crate::common::enc(ticket)),
    )
}

#[tokio::test]
async fn password_login_ticket_cookie_and_csrf_on_writes() {
    let api = Api::start(0.01).await;
    let (status, body) = login(&api, &[("username", "root@pam"), ("password", PASSWORD)]).await;
    assert_eq!(status, 200);
    let d = &body["data"];
    let ticket = d["ticket"].as_str().unwrap();
    let csrf = d["CSRFPreventionToken"].as_str().unwrap();
    assert!(ticket.starts_with("PVE:root@pam:"), "{ticket}");
    let hex_time = ticket.split(':').nth(2).unwrap();
    assert_eq!(hex_time.len(), 8);
    assert!(ticket.contains("::"));
    assert_eq!(csrf.split(':').next().unwrap(), hex_time);
    assert_eq!(d["username"], "root@pam");
    assert_eq!(d["cap"]["vms"]["VM.Clone"], 1);
    assert_eq!(d["clustername"], "labsim");

    // GET with the cookie alone works.
    let r = with_ticket(&api, reqwest::Method::GET, "/version", ticket)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["release"], "9.1");

    // A write without CSRF token is refused; with it, it goes through.
    let r = with_ticket(&api, reqwest::Method::POST, "/pools", ticket)
        .form(&[("poolid", "p1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.text().await.unwrap(),
        "",
        "auth-stage 401s have an empty body"
    );
    let r = with_ticket(&api, reqwest::Method::POST, "/pools", ticket)
        .header("CSRFPreventionToken", "6B000000:forged")
        .form(&[("poolid", "p1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = with_ticket(&api, reqwest::Method::POST, "/pools", ticket)
        .header("CSRFPreventionToken", csrf)
        .form(&[("poolid", "p1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Authorization: PVEAuthCookie=… is accepted as well.
    let r = api
        .http
        .get(api.url("/nodes"))
        .header("Authorization", format!("PVEAuthCookie={ticket}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn exact_401_texts_in_the_reason_phrase() {
    let api = Api::start(0.01).await;
    let addr = api.sim.addr();
    let (line, rest) = raw(addr, "GET /api2/json/version HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(line, "HTTP/1.1 401 No ticket");
    assert!(rest.ends_with("\r\n\r\n"), "empty body: {rest:?}");
    let (line, _) = raw(addr, "GET /api2/json/version HTTP/1.1\r\nHost: x\r\nCookie: PVEAuthCookie=PVE:root@pam:6B000000::AAAA\r\n\r\n").await;
    assert_eq!(line, "HTTP/1.1 401 Authentication failed!");
    let (line, _) = raw(addr, "GET /api2/json/version HTTP/1.1\r\nHost: x\r\nAuthorization: PVEAPIToken=root@pam!ci=wrong\r\n\r\n").await;
    assert_eq!(line, "HTTP/1.1 401 Authentication failed!");
    let (status, body) = login(&api, &[("username", "root@pam"), ("password", "nope")]).await;
    assert_eq!(status, 401);
    assert_eq!(body["message"], "authentication failure\n");
    assert_eq!(body["data"], Value::Null);
    let (line, _) = raw(
        addr,
        &login_request("", "username=root@pam&password=nopexx"),
    )
    .await;
    assert_eq!(line, "HTTP/1.1 401 authentication failure");
    let (status, _) = login(&api, &[("username", "lab@pve"), ("password", PASSWORD)]).await;
    assert_eq!(status, 401, "unknown user");
}

#[tokio::test]
async fn token_header_both_forms_and_403_on_ticket_endpoint() {
    let api = Api::start(0.01).await;
    for header in [
        format!("PVEAPIToken={TOKEN}"),
        format!("PVEAPIToken {TOKEN}"),
    ] {
        let r = api
            .http
            .get(api.url("/nodes"))
            .header("Authorization", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{header}");
        // Writes with a token need no CSRF token.
        let r = api
            .http
            .post(api.url("/nodes/pve1/qemu/100/agent/ping"))
            .header("Authorization", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let (line, rest) = raw(
        api.sim.addr(),
        &login_request(
            &format!("Authorization: PVEAPIToken={TOKEN}\r\n"),
            "username=root@pam&password=secret",
        ),
    )
    .await;
    assert_eq!(
        line,
        "HTTP/1.1 403 Permission check failed (URI '/access/ticket' not available with API token, need proper ticket."
    );
    assert!(rest.contains("need proper ticket.\\n)"), "{rest}");
    // Tasks started with a token carry it in the UPID and in `tokenid`.
    let upid = api.post("/nodes/pve1/qemu/100/status/reboot", &[]).await;
    assert!(upid.as_str().unwrap().ends_with(":root@pam!ci:"), "{upid}");
    let st = api.wait_task(&upid).await;
    assert_eq!(st["user"], "root@pam");
    assert_eq!(st["tokenid"], "ci");
}

#[tokio::test]
async fn tickets_expire_and_renewal_gives_fresh_ticket_and_csrf() {
    let api = Api::with(builder(0.01).ticket_lifetime(Duration::from_secs(1))).await;
    let (_, body) = login(&api, &[("username", "root@pam"), ("password", PASSWORD)]).await;
    let ticket = body["data"]["ticket"].as_str().unwrap().to_owned();
    // Renewal: the ticket as password.
    let (status, renewed) = login(&api, &[("username", "root@pam"), ("password", &ticket)]).await;
    assert_eq!(status, 200);
    assert!(renewed["data"]["ticket"]
        .as_str()
        .unwrap()
        .starts_with("PVE:root@pam:"));
    assert!(renewed["data"]["CSRFPreventionToken"].is_string());
    // A ticket of another user cannot renew.
    let (status, _) = login(&api, &[("username", "lab@pve"), ("password", &ticket)]).await;
    assert_eq!(status, 401);
    let r = with_ticket(&api, reqwest::Method::GET, "/version", &ticket)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = with_ticket(&api, reqwest::Method::GET, "/version", &ticket)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "expired after the lifetime");
    let (status, _) = login(&api, &[("username", "root@pam"), ("password", &ticket)]).await;
    assert_eq!(status, 401, "an expired ticket cannot be renewed");
}

#[tokio::test]
async fn two_step_totp_login() {
    const SECRET: &str = "JBSWY3DPEHPK3PXP";
    let api = Api::with(builder(0.01).totp_secret(SECRET)).await;
    let (status, body) = login(&api, &[("username", "root@pam"), ("password", PASSWORD)]).await;
    assert_eq!(status, 200);
    let d = &body["data"];
    assert_eq!(d["NeedTFA"], 1);
    assert!(d.get("cap").is_none());
    let challenge = d["ticket"].as_str().unwrap().to_owned();
    assert!(challenge.starts_with("PVE:!tfa!"), "{challenge}");
    // The half ticket does not authenticate API calls.
    let r = with_ticket(&api, reqwest::Method::GET, "/version", &challenge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = pve_sim::totp_code(SECRET, now).unwrap();
    let wrong = format!(
        "{:06}",
        (code.parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    let (status, _) = login(
        &api,
        &[
            ("username", "root@pam"),
            ("tfa-challenge", &challenge),
            ("password", &format!("totp:{wrong}")),
        ],
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = login(
        &api,
        &[
            ("username", "root@pam"),
            ("tfa-challenge", &challenge),
            ("password", &format!("totp:{code}")),
            ("otp", &code),
        ],
    )
    .await;
    assert_eq!(status, 401, "otp together with tfa-challenge is refused");
    let (status, body) = login(
        &api,
        &[
            ("username", "root@pam"),
            ("tfa-challenge", &challenge),
            ("password", &format!("totp:{code}")),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ticket = body["data"]["ticket"].as_str().unwrap();
    assert!(ticket.starts_with("PVE:root@pam:"));
    let r = with_ticket(&api, reqwest::Method::GET, "/version", ticket)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Renewal needs no second factor.
    let (status, body) = login(&api, &[("username", "root@pam"), ("password", ticket)]).await;
    assert_eq!(status, 200);
    assert!(body["data"].get("NeedTFA").is_none());
}

#[tokio::test]
async fn https_with_self_signed_certificate_and_pve_style_fingerprint() {
    let sim = pve_sim::Simulator::builder()
        .token(TOKEN)
        .time_scale(0.01)
        .start()
        .await
        .unwrap();
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));
    assert!(sim.password_generated());
    assert_eq!(sim.password().len(), 16);
    let fp = sim.fingerprint();
    assert_eq!(fp.len(), 95);
    assert!(
        fp.chars()
            .all(|c| c == ':' || c.is_ascii_digit() || c.is_ascii_uppercase()),
        "{fp}"
    );
    // The fingerprint is the SHA-256 of the certificate the server presents.
    let pem = sim.certificate_pem();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let expected: Vec<String> = Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(fp, expected.join(":"));
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = client
        .get(format!("{}/nodes", sim.base_url()))
        .header("Authorization", format!("PVEAPIToken={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"][0]["ssl_fingerprint"], fp);
    // Without trusting the certificate the handshake fails.
    assert!(reqwest::Client::new()
        .get(format!("{}/version", sim.base_url()))
        .send()
        .await
        .is_err());
    sim.shutdown().await;
}

#[tokio::test]
async fn root_only_options_need_root_at_pam_with_a_ticket() {
    let api = Api::start(0.01).await;
    // The token root@pam!ci is not root@pam.
    for (path, param) in [
        ("/nodes/pve1/qemu/100/status/stop", "skiplock"),
        ("/nodes/pve1/qemu/100/status/shutdown", "keepActive"),
        ("/nodes/pve1/qemu/9000/config", "skiplock"),
    ] {
        let method = if path.ends_with("config") {
            reqwest::Method::PUT
        } else {
            reqwest::Method::POST
        };
        let a = api.call(method, path, &[(param, "1")]).await;
        assert_eq!(a.status, 400, "{path} {a:?}");
        assert_eq!(
            a.body["errors"][param], "Only root may use this option.",
            "{path}"
        );
    }
    let a = api
        .call(
            reqwest::Method::DELETE,
            "/nodes/pve1/qemu/9000",
            &[("skiplock", "1")],
        )
        .await;
    assert_eq!(
        a.body["errors"]["skiplock"],
        "Only root may use this option."
    );
    assert!(api.sim.state()["guests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["vmid"] == 9000));
    // Unset (0) is fine for anyone.
    api.post_ok("/nodes/pve1/qemu/100/status/stop", &[("skiplock", "0")])
        .await;

    // root@pam logged in with a password may.
    let (_, body) = login(&api, &[("username", "root@pam"), ("password", PASSWORD)]).await;
    let (ticket, csrf) = (
        body["data"]["ticket"].as_str().unwrap(),
        body["data"]["CSRFPreventionToken"].as_str().unwrap(),
    );
    let r = with_ticket(
        &api,
        reqwest::Method::POST,
        "/nodes/pve1/qemu/100/status/start",
        ticket,
    )
    .header("CSRFPreventionToken", csrf)
    .form(&[("skiplock", "1")])
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let upid: Value = r.json().await.unwrap();
    assert!(upid["data"]
        .as_str()
        .unwrap()
        .contains(":qmstart:100:root@pam:"));
}
