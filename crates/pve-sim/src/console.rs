//! Consoles: `POST …/{qemu|lxc}/{vmid}/vncproxy` and `…/termproxy`.
//!
//! Each call forks a `vncproxy` worker task (PVE names the termproxy worker the same)
//! and returns a one-time VNC ticket bound to user, `/vms/<id>` and port. The simulator
//! has no websocket; it behaves as if the viewer connected at once, so the task stays
//! active until it is stopped (`DELETE /nodes/{node}/tasks/{upid}`) or the guest stops
//! or goes away — and, as on a real node, disabling or expiring its user does not end it.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::Rng;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::guest::Kind;
use crate::routing::Req;
use crate::state::{unix_now, Shared};
use crate::tasks::spawn_task;

/// Simulated seconds between the proxy's checks that its guest still runs.
const POLL: f64 = 1.0;

/// Which console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Console {
    Vnc,
    Term,
}

/// `vncproxy` / `termproxy` of a QEMU or LXC guest.
pub(crate) fn open(
    sh: &Arc<Shared>,
    r: &Req<'_>,
    kind: Kind,
    console: Console,
) -> ApiResult<Value> {
    let node = r.node().to_owned();
    let vmid = r.vmid();
    let (port, vnc_password) = {
        let mut st = sh.lock();
        let g = st.guest(kind, &node, vmid)?;
        if !g.running {
            return Err(ApiError::internal(format!(
                "{} {vmid} not running",
                kind.prefix()
            )));
        }
        let port: u16 = 5900 + st.rng.gen_range(0..100);
        let pw: String = (0..8)
            .map(|_| char::from(st.rng.gen_range(b'!'..=b'~')))
            .collect();
        (port, pw)
    };
    let user = r.caller.upid_user();
    let now = unix_now();
    let sig = sh.keys.sign(
        &format!("PVEVNC:{now:08X}"),
        &format!("{user}/vms/{vmid}{port}"),
    );
    let ticket = format!("PVEVNC:{now:08X}::{}", STANDARD.encode(sig));
    let sh2 = Arc::clone(sh);
    let upid = spawn_task(
        sh,
        &node,
        "vncproxy",
        &vmid.to_string(),
        r.caller,
        vec![format!(
            "starting {} proxy on port {port}",
            match console {
                Console::Vnc => "VNC",
                Console::Term => "terminal",
            }
        )],
        move |_upid| async move {
            loop {
                sh2.sleep(POLL).await;
                let running = sh2
                    .lock()
                    .guests
                    .get(&vmid)
                    .is_some_and(|g| g.running && g.kind == kind);
                if !running {
                    return Ok(0);
                }
                if sh2.scaled(POLL).is_zero() {
                    tokio::task::yield_now().await;
                }
            }
        },
    );
    let mut out = json!({"port": port, "ticket": ticket, "upid": upid, "user": user});
    if console == Console::Vnc {
        out["cert"] = json!(sh.cfg.cert_pem);
        if r.flag("generate-password") {
            out["password"] = json!(vnc_password);
        }
    }
    Ok(out)
}
