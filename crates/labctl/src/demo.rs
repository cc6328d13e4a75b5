//! `labctl demo`: a whole exam lab against an embedded simulator, in seconds.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use lab_core::{
    apply, plan_down, teardown, DownOptions, HostnamePattern, Inventory, LabName, LabSpec,
    Timeouts, VmId,
};
use lab_proxmox::ProxmoxLab;
use pve_auth::{PveClient, Secret};
use pve_sim::{SimHandle, Simulator};
use pve_vm::Timing;
use serde_json::Value;

use crate::progress::Bars;
use crate::table;

/// The simulator's teacher VM and its address (see pve-sim's inventory).
const TEACHER_VM: u32 = 100;
const TEACHER_IP: &str = "10.10.0.1";
/// Guests a lab must never touch: the production VMs and the templates.
const BYSTANDERS: [u32; 4] = [200, 201, 9000, 9001];

/// `labctl demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of students.
    #[arg(long, default_value_t = 5, value_name = "N")]
    students: u32,
    /// Simulated time factor: 0.05 makes a 20 s boot take 1 s.
    #[arg(long, default_value_t = 0.05, value_name = "F")]
    time_scale: f64,
    /// Host name pattern of the students.
    #[arg(long, default_value = "exam-{n:02}", value_name = "PATTERN")]
    hostname: String,
    /// Write requests in flight per node for `up`, and guests torn down at the same time
    /// for `down` (1-64).
    #[arg(long, default_value_t = 5, value_name = "N")]
    concurrency: usize,
    /// Probability (0-1) that the simulator injects a fault into a request or a clone
    /// (500/503/596 answers, dropped connections, lock timeouts): watch labctl cope.
    #[arg(long, default_value_t = 0.0, value_name = "R")]
    fault_rate: f64,
}

/// Runs the demo; an error means a guarantee did not hold.
pub async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    if !(args.time_scale.is_finite() && args.time_scale > 0.0 && args.time_scale <= 1.0) {
        bail!(
            "invalid time scale {}: a number above 0 and at most 1",
            args.time_scale
        );
    }
    let lab = LabName::new("demo")?;
    let mut spec = LabSpec::new(lab.clone(), VmId::new(9000)?, args.students)?;
    spec.hostname = HostnamePattern::new(&args.hostname)?;
    spec.ids = "5000-5999".parse()?;
    spec.teachers = vec![TEACHER_IP.parse()?];
    spec.concurrency = args.concurrency;
    spec.timeouts = Timeouts::default().scaled(args.time_scale);
    spec.validate()?;

    println!(
        "== 1. Starting an embedded Proxmox VE simulator (3 nodes, time scale {})",
        args.time_scale
    );
    let sim = Simulator::builder()
        .nodes(3)
        .plain_http(true)
        .time_scale(args.time_scale)
        .fault_rate(args.fault_rate)
        .start()
        .await
        .context("starting the simulator")?;
    println!("   API at {} (user {})", sim.base_url(), sim.user());
    let client = PveClient::builder(&sim.url())
        .password(sim.user(), Secret::new(sim.password()))
        .build()?;
    let hv = ProxmoxLab::with_timing(client, Timing::default().scaled(args.time_scale));
    let before = sim.state();
    println!("   inventory before:");
    for g in hv.list_guests().await? {
        println!(
            "     {:<6} {:<16} {:<5} {:<8}{}",
            g.vmid,
            g.name.as_deref().unwrap_or("-"),
            g.node,
            g.status,
            if g.template { " template" } else { "" }
        );
    }

    println!(
        "\n== 2. lab up: {} students from template 9000, fenced to the teacher {TEACHER_IP}",
        args.students
    );
    let bars = Bars::new();
    let result = apply(&hv, &spec, &|e| bars.event(e)).await;
    bars.finish();
    let report = result.context("lab up")?;
    print!("{}", table::students(&report.students));

    println!("\n== 3. The firewall oracle of the simulator (new TCP connection to port 22)");
    let ids: Vec<(u32, &str)> = report
        .students
        .iter()
        .map(|s| (s.vmid.get(), s.hostname.as_str()))
        .collect();
    let mut wrong = 0;
    if let (Some(&(a, an)), Some(&(b, bn))) = (ids.first(), ids.get(1)) {
        wrong += verdict(&sim, a, an, &b.to_string(), bn, false)?;
        wrong += verdict(&sim, b, bn, &a.to_string(), an, false)?;
    }
    for &(s, sn) in &ids {
        wrong += verdict(&sim, s, sn, TEACHER_IP, "teacher", true)?;
    }
    if let Some(&(a, an)) = ids.first() {
        wrong += verdict(&sim, a, an, "200", "prod-db", false)?;
        wrong += verdict(&sim, TEACHER_VM, "teacher", &a.to_string(), an, true)?;
    }
    if wrong > 0 {
        bail!("{wrong} reachability verdicts differ from the fence's promise");
    }

    println!(
        "\n== 4. The exam: students at work (played through /_sim/guests/{{vmid}}/state), \
         then lab check (examples/exam-checks.toml)"
    );
    let expected = play_students(&sim, &report.students)?;
    let sheet = evaluate(&hv, &sim, args.time_scale, &report.students).await?;
    print!("{}", lab_grade::report::table(&sheet));
    let mut graded_wrong = Vec::new();
    for (host, want) in &expected {
        let got = sheet.students.iter().find(|s| &s.hostname == host);
        let got = got.map(|s| (s.points, s.errors));
        if got != Some(*want) {
            graded_wrong.push(format!(
                "{host}: expected {want:?} (points, errors), got {got:?}"
            ));
        }
    }
    if !graded_wrong.is_empty() {
        bail!(
            "the grade sheet differs from the work played: {}",
            graded_wrong.join("; ")
        );
    }
    println!("   every student graded as their work deserves (an agent that is down is `error`, not `fail`)");

    println!("\n== 5. lab down: what would go (dry run), then tear down");
    print!("{}", plan_down(&hv, &lab).await?);
    let bars = Bars::new();
    let down = DownOptions {
        concurrency: args.concurrency,
        retry: spec.timeouts.retry,
    };
    let result = teardown(&hv, &lab, &down, &|e| bars.event(e)).await;
    bars.finish();
    let plan = result.context("lab down")?;
    println!("   destroyed {} guests", plan.destroy.len());

    println!("\n== 6. What the lab did not touch");
    let after = sim.state();
    check_untouched(&before, &after)?;
    println!("\ndemo finished: every guarantee held");
    sim.shutdown().await;
    Ok(())
}

/// The demo's checks: the example of the README, run as it is.
const CHECKS: &str = include_str!("../../../examples/exam-checks.toml");

/// What one student did of the example's tasks.
#[derive(Debug, Clone, Copy, Default)]
struct Work {
    nginx: bool,
    page: bool,
    dns: bool,
    lan: Option<u8>,
    telnet: bool,
    agent_down: bool,
}

/// Plays each student's work into the simulated guests; the expected (points, errors)
/// per host name under examples/exam-checks.toml.
fn play_students(
    sim: &SimHandle,
    students: &[lab_core::StudentStatus],
) -> anyhow::Result<Vec<(String, (f64, usize))>> {
    let mut expected = Vec::new();
    for (i, s) in students.iter().enumerate() {
        let (work, story, points, errors) = match i {
            0 => (
                Work {
                    nginx: true,
                    page: true,
                    dns: true,
                    lan: Some(24),
                    ..Work::default()
                },
                "did everything right",
                11.0,
                0,
            ),
            1 => (
                Work {
                    nginx: true,
                    page: true,
                    telnet: true,
                    ..Work::default()
                },
                "web server only, and left telnet open (-1)",
                6.0,
                0,
            ),
            2 => (
                Work {
                    nginx: true,
                    page: true,
                    dns: true,
                    agent_down: true,
                    ..Work::default()
                },
                "web and DNS, but stopped the guest agent: inside checks are `error`",
                // ping, ssh, dns from the teacher; nginx-active is an error, so web-page
                // (which requires it) is skipped.
                4.0,
                3,
            ),
            3 => (
                Work {
                    dns: true,
                    lan: Some(16),
                    ..Work::default()
                },
                "DNS, and the LAN address with the wrong prefix",
                4.0,
                0,
            ),
            _ => (Work::default(), "nothing yet", 2.0, 0),
        };
        let ip = s
            .addresses
            .iter()
            .find(|a| a.is_ipv4())
            .map(ToString::to_string)
            .unwrap_or_default();
        let host = &s.hostname;
        let mut state = serde_json::Map::new();
        let mut services = serde_json::Map::new();
        let mut files = serde_json::Map::new();
        if work.nginx {
            services.insert(
                "tcp/80".into(),
                serde_json::json!({"unit": "nginx", "http": {"status": 200, "body": format!("<h1>{host}</h1>\n")}}),
            );
        }
        if work.page {
            files.insert(
                "/var/www/html/index.html".into(),
                serde_json::json!({"content": format!("<h1>{host}</h1>\n")}),
            );
        }
        if work.dns {
            services.insert(
                "udp/53".into(),
                serde_json::json!({"unit": "bind9", "dns": {format!("www.{host}.lab."): {"A": [ip]}}}),
            );
        }
        if work.telnet {
            services.insert(
                "tcp/23".into(),
                serde_json::json!({"unit": "inetd", "banner": "Debian GNU/Linux 12\r\nlogin: "}),
            );
        }
        state.insert("services".into(), Value::Object(services));
        state.insert("files".into(), Value::Object(files));
        if let Some(prefix) = work.lan {
            state.insert(
                "interfaces".into(),
                serde_json::json!({"ens18": {"addresses": [format!("192.168.100.1/{prefix}")]}}),
            );
        }
        if work.agent_down {
            state.insert("agent".into(), "stopped".into());
        }
        sim.put_guest_state(s.vmid.get(), Value::Object(state))
            .with_context(|| format!("playing {host}"))?;
        println!("   {host:<10} {story}");
        expected.push((host.clone(), (points, errors)));
    }
    Ok(expected)
}

/// `lab check` in-process: collect every probe through the agents, then grade.
async fn evaluate(
    hv: &ProxmoxLab,
    sim: &SimHandle,
    time_scale: f64,
    students: &[lab_core::StudentStatus],
) -> anyhow::Result<lab_grade::Sheet> {
    use lab_grade::collect::{collect, CollectOptions};
    let spec = lab_grade::Spec::parse(CHECKS, "examples/exam-checks.toml")?;
    let teacher = TEACHER_IP.parse().ok();
    let infos: Vec<lab_grade::StudentInfo> = students
        .iter()
        .map(|s| crate::evaluate::student_of(s, None, teacher))
        .collect();
    let mut plans = Vec::new();
    for i in &infos {
        plans.push((
            i.clone(),
            crate::evaluate::scaled(spec.plan(i)?, Some(time_scale)),
        ));
    }
    let dir = tempfile_dir()?;
    let store = lab_grade::Store::create(dir.path())?;
    let agent = pve_agent::AgentApi::with_options(
        hv.vm_api().clone(),
        pve_agent::AgentOptions::default().scaled(time_scale),
    );
    let runner = lab_proxmox::probes::PveRunner::new(agent, Some(pve_vm::VmId::new(TEACHER_VM)?));
    let before = sim.requests();
    let report = collect(
        &runner,
        &store,
        &plans,
        |s, ev| spec.settled(s, ev),
        &crate::evaluate::scaled_options(CollectOptions::default(), Some(time_scale)),
        |_, _| {},
    )
    .await?;
    let probes: usize = plans.iter().map(|(_, p)| p.len()).sum();
    println!(
        "   collected {probes} probes of {} students in {} runs ({} requests to the cluster)",
        infos.len(),
        report.runs,
        request_total(&sim.requests()) - request_total(&before)
    );
    let mut all = Vec::new();
    for i in &infos {
        all.push(store.load(&i.key)?);
    }
    Ok(lab_grade::grade(&spec, "demo", &spec.sha256(), &all))
}

/// All requests the simulator counted (`/_sim/requests` is a count per route).
fn request_total(requests: &Value) -> u64 {
    requests
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

/// A private temporary directory for the demo's evidence (removed when dropped).
fn tempfile_dir() -> anyhow::Result<TempDir> {
    let base = std::env::temp_dir().join(format!("labctl-demo-{}", std::process::id()));
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    Ok(TempDir(base))
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Asks the oracle and prints the verdict; returns 1 if it is not `expect_allowed`.
fn verdict(
    sim: &SimHandle,
    from: u32,
    from_name: &str,
    to: &str,
    to_name: &str,
    expect_allowed: bool,
) -> anyhow::Result<u32> {
    let v = sim.reachability(from, to, "tcp", Some(22))?;
    let word = if v.allowed { "ALLOWED" } else { "BLOCKED" };
    let ok = v.allowed == expect_allowed;
    println!(
        "   {from_name:>10} -> {to_name:<10} {word:<8} {} ({})",
        if ok { "as intended" } else { "UNEXPECTED" },
        v.reason
    );
    Ok(u32::from(!ok))
}

fn guest(state: &Value, vmid: u32) -> Option<&Value> {
    state["guests"]
        .as_array()?
        .iter()
        .find(|g| g["vmid"].as_u64() == Some(u64::from(vmid)))
}

/// Compares bystanders, pools and the firewall before and after; prints and fails on
/// any difference.
fn check_untouched(before: &Value, after: &Value) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for vmid in std::iter::once(TEACHER_VM).chain(BYSTANDERS) {
        let (b, a) = (guest(before, vmid), guest(after, vmid));
        let same = b.is_some() && b == a;
        let what = a.or(b);
        println!(
            "   {vmid:<6} {:<16} {:<8} {}",
            what.and_then(|g| g["name"].as_str()).unwrap_or("-"),
            what.and_then(|g| g["status"].as_str()).unwrap_or("gone"),
            if same { "untouched" } else { "CHANGED" }
        );
        if !same {
            problems.push(format!("guest {vmid} changed"));
        }
    }
    let lab_left = after["guests"].as_array().map_or(0, |gs| {
        gs.iter()
            .filter(|g| g["vmid"].as_u64() >= Some(5000) && g["vmid"].as_u64() < Some(6000))
            .count()
    });
    println!("   lab guests left: {lab_left}");
    if lab_left > 0 {
        problems.push(format!("{lab_left} lab guests left"));
    }
    let pools_same = before["pools"] == after["pools"];
    println!(
        "   pools: {}",
        if pools_same { "as before" } else { "CHANGED" }
    );
    if !pools_same {
        problems.push("pools changed".to_owned());
    }
    let fw_same = before["firewall"] == after["firewall"];
    println!(
        "   firewall configuration: {}",
        if fw_same {
            "restored exactly"
        } else {
            "CHANGED"
        }
    );
    if !fw_same {
        problems.push(format!(
            "firewall differs: before {} after {}",
            before["firewall"], after["firewall"]
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("the lab left traces: {}", problems.join("; "))
    }
}

/// Keeps the demo's wait bounded even if the simulator misbehaves.
pub const DEMO_TIMEOUT: Duration = Duration::from_secs(300);
