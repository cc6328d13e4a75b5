//! Seeded fault injection (acceptance 4).

use reqwest::Method;

use crate::common::{builder, Api};

/// What happened to each of `n` sequential requests: status code or "reset".
async fn outcomes(api: &Api, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        match api.try_call(Method::GET, "/version", &[]).await {
            Ok(a) if a.status == 200 => out.push("ok".to_owned()),
            Ok(a) => out.push(format!("{} {}", a.status, a.message().trim_end())),
            Err(_) => out.push("reset".to_owned()),
        }
    }
    out
}

#[tokio::test]
async fn same_seed_and_requests_give_the_same_faults() {
    let a = Api::with(builder(0.001).seed(7).fault_rate(0.4)).await;
    let b = Api::with(builder(0.001).seed(7).fault_rate(0.4)).await;
    let c = Api::with(builder(0.001).seed(8).fault_rate(0.4)).await;
    let oa = outcomes(&a, 60).await;
    let ob = outcomes(&b, 60).await;
    let oc = outcomes(&c, 60).await;
    assert_eq!(oa, ob);
    assert_ne!(oa, oc);
    for kind in [
        "500 got no worker upid - start worker failed",
        "503 Service Unavailable",
        "596 Connection timed out",
        "reset",
        "ok",
    ] {
        assert!(oa.iter().any(|o| o == kind), "{kind} occurs in {oa:?}");
    }
    // Introspection is never faulted.
    let all = Api::with(builder(0.001).fault_rate(1.0)).await;
    for _ in 0..20 {
        let r = all
            .http
            .get(format!("{}/_sim/state", all.sim.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // At rate 1 every request draws a fault; only added latency still answers 200.
    let faulted = outcomes(&all, 20).await;
    assert!(
        faulted.iter().filter(|o| *o != "ok").count() >= 10,
        "{faulted:?}"
    );
    all.sim.set_fault_rate(0.0).unwrap();
    assert!(outcomes(&all, 5).await.iter().all(|o| o == "ok"));
    assert!(all.sim.set_fault_rate(1.5).is_err());
}

#[tokio::test]
async fn clone_tasks_fail_with_real_texts() {
    let api = Api::with(builder(0.001).seed(3).fault_rate(0.3)).await;
    let mut failures = Vec::new();
    for newid in 400..460u32 {
        let id = newid.to_string();
        let Ok(a) = api
            .try_call(
                Method::POST,
                "/nodes/pve1/qemu/9000/clone",
                &[("newid", &id)],
            )
            .await
        else {
            continue;
        };
        if a.status != 200 {
            continue;
        }
        let upid = a.data().as_str().unwrap().to_owned();
        let node_path = format!("/nodes/pve1/tasks/{}/status", crate::common::enc(&upid));
        let exit = loop {
            if let Ok(s) = api.try_call(Method::GET, &node_path, &[]).await {
                if s.status == 200 && s.data()["status"] == "stopped" {
                    break s.data()["exitstatus"].as_str().unwrap().to_owned();
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        };
        if exit != "OK" {
            failures.push(exit);
        }
    }
    assert!(!failures.is_empty());
    for f in &failures {
        assert!(
            f.starts_with("clone failed: ") && f.ends_with("timeout"),
            "{f}"
        );
    }
}
