//! Against the simulator (real HTTP on 127.0.0.1): a cloned, started VM's agent runs
//! commands, moves files and reports once per pid; every request the client sent exists in
//! the PVE schema with valid parameters.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pve_agent::{AgentApi, AgentOptions, Exec};
use pve_auth::{PveClient, RequestRecord, Secret};
use pve_sim::Simulator;
use pve_vm::{CloneOptions, NewId, Timing, VmApi, VmId};

const SCALE: f64 = 0.02;

#[tokio::test]
async fn agent_calls_against_the_simulator_follow_the_schema() {
    let sim = Simulator::builder()
        .password("secret")
        .plain_http(true)
        .time_scale(SCALE)
        .start()
        .await
        .unwrap();
    let log: Arc<Mutex<Vec<RequestRecord>>> = Arc::default();
    let l = log.clone();
    let client = PveClient::builder(&sim.base_url())
        .password("root@pam", Secret::new("secret"))
        .observer(Arc::new(move |r: &RequestRecord| {
            l.lock().unwrap().push(r.clone())
        }))
        .build()
        .unwrap();
    let vms = VmApi::with_timing(client, Timing::default().scaled(SCALE));
    let agent = AgentApi::with_options(vms.clone(), AgentOptions::default().scaled(SCALE));
    let work = async {
        let template = vms.guest(VmId::new(9000).unwrap()).await.unwrap();
        let vm = template
            .clone_to(CloneOptions {
                hostname: Some("stud-01".into()),
                newid: NewId::Exact(VmId::new(5000).unwrap()),
                ..CloneOptions::default()
            })
            .await
            .unwrap();
        vm.start().await.unwrap();
        vm.wait_agent(Duration::from_secs(60)).await.unwrap();

        let host = agent.exec(&vm, &Exec::new(["hostname"])).await.unwrap();
        assert_eq!((host.code(), host.stdout.trim()), (0, "stud-01"));
        let f = agent.exec(&vm, &Exec::new(["false"])).await.unwrap();
        assert_eq!(f.code(), 1);
        let sum = agent
            .exec(&vm, &Exec::new(["sha256sum"]).stdin("hello\n"))
            .await
            .unwrap();
        assert!(
            sum.stdout
                .starts_with("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"),
            "{}",
            sum.stdout
        );

        // One-shot: the result is reported once; the pid is unknown afterwards.
        let pid = agent
            .exec_start(&vm, &Exec::new(["cat", "/etc/hostname"]))
            .await
            .unwrap();
        let mut first = agent.exec_status(&vm, pid).await.unwrap();
        while !first.exited {
            tokio::time::sleep(Duration::from_millis(5)).await;
            first = agent.exec_status(&vm, pid).await.unwrap();
        }
        assert_eq!(first.out_data.as_deref(), Some("stud-01\n"));
        let again = agent.exec_status(&vm, pid).await.unwrap_err();
        assert!(again.to_string().contains("pid"), "{again}");

        let bytes = [0u8, 0xff, b'\n', 0x7f, 0x80];
        agent.file_write(&vm, "/root/blob", &bytes).await.unwrap();
        assert_eq!(
            agent.file_read(&vm, "/root/blob").await.unwrap().data,
            bytes
        );
        agent
            .file_write(&vm, "/root/note.txt", b"plain text\n")
            .await
            .unwrap();
        let note = agent.file_read(&vm, "/root/note.txt").await.unwrap();
        assert_eq!(
            (note.data.as_slice(), note.truncated),
            (&b"plain text\n"[..], false)
        );
        assert!(agent.info(&vm).await.unwrap().supports("guest-exec"));
        assert!(agent.osinfo(&vm).await.unwrap().id.is_some());
        agent.users(&vm).await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(120), work)
        .await
        .expect("the agent calls must not hang");

    let schema = pve_schema::schema();
    let records = log.lock().unwrap().clone();
    let mut agent_calls = 0;
    for r in &records {
        let method = r.method.as_str();
        let m = schema
            .find(method, &r.path)
            .unwrap_or_else(|| panic!("{method} {} is not in the PVE schema", r.path));
        let mut params = m.path_params.clone();
        for (k, v) in &r.params {
            params.insert(k.clone(), v.clone());
        }
        if let Err(errors) = m.endpoint.validate(&params) {
            panic!(
                "{method} {} with {:?} violates the schema: {errors:?}",
                r.path, r.params
            );
        }
        if r.path.contains("/agent/") {
            agent_calls += 1;
        }
    }
    assert!(agent_calls >= 10, "{agent_calls}");
    sim.shutdown().await;
}
