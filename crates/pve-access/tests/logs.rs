//! No password, ticket or console ticket reaches the logs, even at TRACE. A test binary
//! of its own: the capturing subscriber must be the only one in the process.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::{student, Lab, PASSWORD};
use pve_access::exam;
use pve_access::AccessApi;
use pve_auth::Params;
use serde_json::Value;

/// A `MakeWriter` collecting every log line.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_password_ticket_or_console_ticket_in_trace_logs() {
    let logs = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let lab = Lab::start().await;
    let seats = lab.seats(2).await;
    let granted = exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    let login = lab.login();
    let v = exam::verify(&lab.admin, &granted.sheet, &seats, &login)
        .await
        .unwrap();
    assert!(v.passed());
    let s1 = student(&lab, &granted.sheet, &seats[0]).await;
    let ticket_probe: Value = s1
        .post(
            "/access/ticket",
            &Params::new()
                .with("username", "s01@pve")
                .with("password", granted.sheet.rows[0].password.clone().unwrap()),
        )
        .await
        .unwrap();
    let vnc = AccessApi::new(s1)
        .open_vnc(
            &pve_access::NodeName::new("pve1").unwrap(),
            pve_access::GuestKind::Qemu,
            seats[0].vmid,
        )
        .await
        .unwrap();
    exam::revoke(&lab.admin, &lab.revoke_opts(), &seats)
        .await
        .unwrap();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("access step"),
        "the capture saw the run: {}",
        &text[..text.len().min(3000)]
    );
    assert!(text.contains("TRACE") || text.contains("DEBUG"));
    let mut secrets: Vec<String> = granted
        .sheet
        .rows
        .iter()
        .filter_map(|r| r.password.clone())
        .collect();
    secrets.push(PASSWORD.to_owned());
    secrets.push(ticket_probe["ticket"].as_str().unwrap().to_owned());
    secrets.push(vnc.ticket.expose().to_owned());
    let sig = |t: &str| t.rsplit("::").next().unwrap().to_owned();
    secrets.push(sig(ticket_probe["ticket"].as_str().unwrap()));
    secrets.push(sig(vnc.ticket.expose()));
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "a secret leaked into the logs");
    }
    // And the sheet is the one place they are.
    let on_disk = std::fs::read_to_string(lab.sheet_path()).unwrap();
    assert!(on_disk.contains(granted.sheet.rows[0].password.as_deref().unwrap()));
}
