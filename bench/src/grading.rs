//! Group `grading`: `labctl lab grade` of a big class from stored evidence, with no
//! simulator: N students × 50 checks (default 500; quick 50).
//!
//! Set-up (timed apart, not part of the figures): a spec of 29 probes (24 inside the guest:
//! `ip -j addr`, `ip -j route`, `systemctl is-active|is-enabled` of 8 units, `nft -j list
//! ruleset`, `ss -H -tlnp`, four files; 5 from the teacher: HTTP, DNS, two TCP, ping) and 50
//! checks using every kind of expectation (JSON paths with typed comparisons, regex,
//! contains, sets, CIDR membership, counts, `partial`, `requires`, a penalty), and
//! evidence for each student written with `lab_grade::Store` (sealed, as `collect` leaves
//! it): realistic outputs, with a deterministic share of students who got things wrong and
//! one in 50 whose agent was down (their inside probes are errors).
//!
//! Measured, as `labctl lab grade` runs: loading the evidence (`Store::students` and
//! `Store::load`, which verifies every manifest), `lab_grade::grade`, and the `json`, `csv`
//! and `table` renderings of the sheet; seconds per step, students per second over the
//! whole, output sizes, and the peak resident set of the process while it ran.
//!
//! The evidence lives in `/dev/shm` when the machine has it: `Store` fsyncs every file it
//! writes, and the figures are about reading and grading, not the disk's flushes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lab_grade::{
    grade, report, Blob, ErrorKind, Evidence, PlannedProbe, ProbeError, Sheet, Source, Spec, Store,
    StudentEvidence, StudentInfo, Target,
};
use serde::Serialize;
use serde_json::json;

use crate::measure::{memory, per_second, reset_peak};
use crate::report::Group;
use crate::Settings;

/// The teacher's guest.
const TEACHER_VM: u32 = 100;
/// The lab's name in the evidence.
const LAB: &str = "gradebench";
/// The units whose state is checked.
const UNITS: [&str; 8] = [
    "nginx",
    "ssh",
    "bind9",
    "isc-dhcp-server",
    "nftables",
    "chrony",
    "rsyslog",
    "cron",
];
/// Every this many students one has its agent down.
const AGENT_DOWN_EVERY: usize = 50;

/// Students of a run: 500 (quick: 50).
pub fn students(quick: bool) -> usize {
    if quick {
        50
    } else {
        500
    }
}

/// What the group measured.
#[derive(Debug, Clone, Serialize)]
pub struct GradingResult {
    /// Students.
    pub students: usize,
    /// Checks per student.
    pub checks: usize,
    /// Probes (evidence files) per student.
    pub probes: usize,
    /// Writing the evidence (set-up, not part of the figures), seconds.
    pub write_s: f64,
    /// Bytes of evidence on disk.
    pub evidence_bytes: u64,
    /// Loading it (listing, reading, verifying manifests), seconds.
    pub load_s: f64,
    /// `lab_grade::grade`, seconds.
    pub grade_s: f64,
    /// `report::json`, seconds.
    pub json_s: f64,
    /// `report::csv`, seconds.
    pub csv_s: f64,
    /// `report::table`, seconds.
    pub table_s: f64,
    /// Load + grade + the three renderings, seconds.
    pub total_s: f64,
    /// Students per second over the total.
    pub students_per_s: f64,
    /// Sizes of the renderings, bytes.
    pub json_bytes: usize,
    /// CSV.
    pub csv_bytes: usize,
    /// Table.
    pub table_bytes: usize,
    /// Resident set before loading, KiB.
    pub rss_before_kib: Option<u64>,
    /// Peak resident set while loading, grading and rendering, KiB (`None` where the
    /// peak cannot be reset).
    pub peak_rss_kib: Option<u64>,
    /// Outcomes over the class: pass, fail, error, skipped.
    pub outcomes: BTreeMap<String, usize>,
}

/// Run the group.
pub fn run(settings: &Settings) -> Result<(Group, GradingResult)> {
    let n = students(settings.quick);
    let spec =
        Spec::parse(&spec_text(), "bench grading spec").map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = evidence_dir()?;
    eprintln!(
        "labctl-bench: grading: writing the evidence of {n} students to {} (set-up)",
        dir.path().display()
    );
    let t = Instant::now();
    let probes = write_class(&spec, dir.path(), n)?;
    let write_s = t.elapsed().as_secs_f64();
    let evidence_bytes = du(dir.path());
    let r = measure(&spec, dir.path(), n, probes, write_s, evidence_bytes)?;
    eprintln!(
        "labctl-bench: grading: {n} students × {} checks in {:.3} s ({:.0} students/s)",
        r.checks, r.total_s, r.students_per_s
    );
    Ok((group_of(&r), r))
}

fn evidence_dir() -> Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("labctl-bench-grading-");
        b
    };
    let dir = if shm.is_dir() {
        builder.tempdir_in(shm).or_else(|_| builder.tempdir())
    } else {
        builder.tempdir()
    };
    dir.context("creating a temporary evidence directory")
}

fn measure(
    spec: &Spec,
    root: &Path,
    n: usize,
    probes: usize,
    write_s: f64,
    evidence_bytes: u64,
) -> Result<GradingResult> {
    let rss_before_kib = memory().map(|m| m.rss_kib);
    let resets = reset_peak();
    let t = Instant::now();
    let (sha, all) = load(root)?;
    let load_d = t.elapsed();
    let t = Instant::now();
    let sheet = grade(spec, LAB, &sha, &all);
    let grade_d = t.elapsed();
    drop(all);
    let (json_out, json_d) = timed(|| report::json(&sheet));
    let (csv_out, csv_d) = timed(|| report::csv(&sheet));
    let (table_out, table_d) = timed(|| report::table(&sheet));
    let peak_rss_kib = memory().filter(|_| resets).map(|m| m.hwm_kib);
    let total = load_d + grade_d + json_d + csv_d + table_d;
    Ok(GradingResult {
        students: n,
        checks: sheet.checks.len(),
        probes,
        write_s,
        evidence_bytes,
        load_s: load_d.as_secs_f64(),
        grade_s: grade_d.as_secs_f64(),
        json_s: json_d.as_secs_f64(),
        csv_s: csv_d.as_secs_f64(),
        table_s: table_d.as_secs_f64(),
        total_s: total.as_secs_f64(),
        students_per_s: per_second(n as u64, total),
        json_bytes: json_out.len(),
        csv_bytes: csv_out.len(),
        table_bytes: table_out.len(),
        rss_before_kib,
        peak_rss_kib,
        outcomes: outcomes(&sheet),
    })
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

/// What `labctl lab grade` reads: the metadata, then every student's evidence.
fn load(root: &Path) -> Result<(String, Vec<StudentEvidence>)> {
    let store = Store::open(root).map_err(|e| anyhow::anyhow!("{e}"))?;
    let meta = store
        .meta()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .context("the evidence has no collect.json")?;
    let mut all = Vec::new();
    for s in store.students().map_err(|e| anyhow::anyhow!("{e}"))? {
        all.push(store.load(&s).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    Ok((meta.spec_sha256, all))
}

fn outcomes(sheet: &Sheet) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for c in sheet.students.iter().flat_map(|s| s.checks.iter()) {
        *out.entry(c.outcome.as_str().to_owned()).or_insert(0) += 1;
    }
    out
}

fn group_of(r: &GradingResult) -> Group {
    let mut g = Group::new(
        "grading",
        format!(
            "lab grade from stored evidence: {} students × {} checks ({} probes each), load \
             (manifests verified) + grade + json/csv/table, no simulator",
            r.students, r.checks, r.probes
        ),
    );
    let l = format!("grade-{}x{}", r.students, r.checks);
    g.metric(format!("{l}: load"), r.load_s * 1e3, "ms");
    g.metric(format!("{l}: grade"), r.grade_s * 1e3, "ms");
    g.metric(format!("{l}: json"), r.json_s * 1e3, "ms");
    g.metric(format!("{l}: csv"), r.csv_s * 1e3, "ms");
    g.metric(format!("{l}: table"), r.table_s * 1e3, "ms");
    g.metric(format!("{l}: total"), r.total_s * 1e3, "ms");
    g.metric(format!("{l}: students/s"), r.students_per_s, "ops/s");
    g.metric(format!("{l}: evidence"), r.evidence_bytes as f64, "bytes");
    g.metric(format!("{l}: json size"), r.json_bytes as f64, "bytes");
    if let Some(p) = r.peak_rss_kib {
        g.metric(format!("{l}: peak RSS"), p as f64, "KiB");
    }
    g.metric(format!("{l}: write (set-up)"), r.write_s * 1e3, "ms");
    g.details = json!({ "result": r });
    g
}

/// The spec: 29 probes, 50 checks.
pub fn spec_text() -> String {
    let mut s = String::from("[exam]\nteacher = 100\ntimeout = 10\n\n");
    let mut probe = |id: &str, body: &str| {
        let _ = writeln!(s, "[[probe]]\nid = \"{id}\"\n{body}\n");
    };
    probe(
        "addr",
        r#"exec = ["ip", "-j", "addr", "show", "dev", "ens18"]"#,
    );
    probe("route", r#"exec = ["ip", "-j", "route"]"#);
    for u in UNITS {
        probe(
            &format!("active-{u}"),
            &format!(r#"exec = ["systemctl", "is-active", "{u}"]"#),
        );
        probe(
            &format!("enabled-{u}"),
            &format!(r#"exec = ["systemctl", "is-enabled", "{u}"]"#),
        );
    }
    probe("ruleset", r#"exec = ["nft", "-j", "list", "ruleset"]"#);
    probe("ports", r#"exec = ["ss", "-H", "-tlnp"]"#);
    probe("resolv", r#"file = "/etc/resolv.conf""#);
    probe("hosts", r#"file = "/etc/hosts""#);
    probe("hostname", r#"file = "/etc/hostname""#);
    probe("index", r#"file = "/var/www/html/index.html""#);
    probe("web", r#"http = "http://192.168.{{vlan}}.10/""#);
    probe(
        "www",
        r#"dns = { server = "192.168.{{vlan}}.10", name = "www.{{domain}}", type = "A" }"#,
    );
    probe("ssh", r#"tcp = "192.168.{{vlan}}.10:22""#);
    probe("telnet", "tcp = \"192.168.{{vlan}}.10:23\"\ntimeout = 3");
    probe("gw", r#"ping = "192.168.{{vlan}}.10""#);

    let mut check = |id: &str, probe: &str, rest: &str| {
        let _ = writeln!(s, "[[check]]\nid = \"{id}\"\nprobe = \"{probe}\"\n{rest}\n");
    };
    // ip -j addr (6)
    check("static-ip", "addr", "points = 2\nexpect = [{ json = \"$[0].addr_info[?(@.family=='inet')].local\", includes = [\"192.168.{{vlan}}.10\"] }]");
    check("prefix", "addr", "expect = [{ json = \"$[0].addr_info[?(@.local=='192.168.{{vlan}}.10')].prefixlen\", equals = 24 }]\nrequires = [\"static-ip\"]");
    check(
        "mtu",
        "addr",
        "expect = [{ json = \"$[0].mtu\", equals = 1500 }]",
    );
    check(
        "link-up",
        "addr",
        "expect = [{ json = \"$[0].operstate\", equals = \"UP\" }]",
    );
    check(
        "in-lan",
        "addr",
        "expect = [{ json = \"$[0].addr_info[*].local\", in_subnet = \"192.168.0.0/16\" }]",
    );
    check("addr-partial", "addr", "partial = true\npoints = 2\nexpect = [\n  { json = \"$[0].addr_info[?(@.family=='inet')].local\", includes = [\"192.168.{{vlan}}.10\"] },\n  { json = \"$[0].addr_info[?(@.family=='inet6')].scope\", includes = [\"link\"] },\n]");
    // ip -j route (4)
    check(
        "default-route",
        "route",
        "expect = [{ json = \"$[?(@.dst=='default')].gateway\", ip_eq = \"192.168.{{vlan}}.1\" }]",
    );
    check(
        "default-dev",
        "route",
        "expect = [{ json = \"$[?(@.dst=='default')].dev\", equals = \"ens18\" }]",
    );
    check(
        "routes",
        "route",
        "expect = [{ json = \"$[*].dst\", count = 2 }]",
    );
    check(
        "route-src",
        "route",
        "expect = [{ json = \"$[?(@.scope=='link')].prefsrc\", ip_eq = \"192.168.{{vlan}}.10\" }]",
    );
    // systemctl (16 + 2)
    for u in UNITS {
        check(
            &format!("{u}-active"),
            &format!("active-{u}"),
            "expect = [{ equals = \"active\" }]",
        );
        check(
            &format!("{u}-enabled"),
            &format!("enabled-{u}"),
            "expect = [{ regex = \"^(enabled|static)$\" }]",
        );
    }
    check("nginx-exit", "active-nginx", "expect = [{ exit = 0 }]");
    check("bind9-exit", "active-bind9", "expect = [{ exit = 0 }]");
    // nft (5)
    check(
        "filter-table",
        "ruleset",
        "expect = [{ json = \"$.nftables[*].table.name\", includes = [\"filter\"] }]",
    );
    check("input-drop", "ruleset", "points = 2\nexpect = [{ json = \"$.nftables[?(@.chain.hook=='input')].chain.policy\", equals = \"drop\" }]");
    check("forward-drop", "ruleset", "expect = [{ json = \"$.nftables[?(@.chain.hook=='forward')].chain.policy\", equals = \"drop\" }]");
    check("ssh-rule", "ruleset", "expect = [{ json = \"$.nftables[*].rule.expr[*].match.right\", includes = [22] }]\nrequires = [\"input-drop\"]");
    check(
        "nft-quiet",
        "ruleset",
        "expect = [{ field = \"stderr\", equals = \"\" }]",
    );
    // ss (4)
    check("web-listens", "ports", "expect = [{ regex = \"(?m)^LISTEN\\\\s+\\\\S+\\\\s+\\\\S+\\\\s+0\\\\.0\\\\.0\\\\.0:80\\\\s\" }]");
    check(
        "ssh-listens",
        "ports",
        "expect = [{ field = \"lines\", regex = \":22\\\\s\" }]",
    );
    check("dns-listens", "ports", "expect = [{ field = \"lines\", regex = \"192\\\\.168\\\\.{{vlan}}\\\\.10:53\\\\s\" }]\nrequires = [\"bind9-active\"]");
    check(
        "no-telnetd",
        "ports",
        "expect = [{ contains = \":23 \", not = true }]",
    );
    // files (7)
    check(
        "resolver",
        "resolv",
        "expect = [{ regex = \"(?m)^nameserver\\\\s+192\\\\.168\\\\.{{vlan}}\\\\.1$\" }]",
    );
    check(
        "search",
        "resolv",
        "expect = [{ regex = \"(?m)^search\\\\s+{{domain}}$\" }]",
    );
    check(
        "hosts-entry",
        "hosts",
        "expect = [{ regex = \"(?m)^192\\\\.168\\\\.{{vlan}}\\\\.10\\\\s+{{hostname}}\" }]",
    );
    check(
        "hosts-localhost",
        "hosts",
        "expect = [{ regex = \"(?m)^127\\\\.0\\\\.0\\\\.1\\\\s+localhost$\" }]",
    );
    check(
        "hostname",
        "hostname",
        "expect = [{ equals = \"{{hostname}}\" }]",
    );
    check(
        "index-names-host",
        "index",
        "expect = [{ contains = \"{{hostname}}\" }]",
    );
    check(
        "index-title",
        "index",
        "expect = [{ regex = \"<title>{{hostname}}</title>\" }]",
    );
    // from the teacher (6)
    check(
        "web-200",
        "web",
        "points = 2\nexpect = [{ status = 200 }]\nrequires = [\"nginx-active\"]",
    );
    check(
        "web-body",
        "web",
        "expect = [{ contains = \"{{hostname}}\" }]\nrequires = [\"web-200\", \"static-ip\"]",
    );
    check(
        "dns-www",
        "www",
        "points = 2\nexpect = [{ set = [\"192.168.{{vlan}}.10\"] }]",
    );
    check("ssh-open", "ssh", "expect = [{ reachable = true }]");
    check(
        "telnet-closed",
        "telnet",
        "points = 0\npenalty = 1\nexpect = [{ reachable = false }]",
    );
    check("ping", "gw", "expect = [{ reachable = true }]");
    s
}

/// What one student did: deterministic by index, so runs are comparable.
struct Student {
    i: usize,
    info: StudentInfo,
    vlan: u32,
    agent_down: bool,
    wrong_ip: bool,
    telnet_open: bool,
}

impl Student {
    fn new(i: usize) -> Self {
        let hostname = format!("exam-{i:03}");
        let vlan = 10 + (i % 240) as u32;
        let vmid = 5000 + i as u32;
        let node = format!("pve{}", 1 + i % 3);
        let vars: BTreeMap<String, String> = [
            ("student", format!("Student {i:03}")),
            ("hostname", hostname.clone()),
            ("vmid", vmid.to_string()),
            ("node", node.clone()),
            ("ip", format!("10.10.{}.{}", i / 200, 2 + i % 200)),
            ("teacher_ip", "10.10.0.1".to_owned()),
            ("vlan", vlan.to_string()),
            ("domain", format!("s{i:03}.lab")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Student {
            i,
            info: StudentInfo {
                key: hostname.clone(),
                name: format!("Student {i:03}"),
                hostname,
                vmid,
                node,
                vars,
            },
            vlan,
            agent_down: i % AGENT_DOWN_EVERY == AGENT_DOWN_EVERY - 1,
            wrong_ip: i % 17 == 3,
            telnet_open: i % 19 == 5,
        }
    }

    fn unit_active(&self, k: usize) -> bool {
        (self.i + k) % 11 != 0
    }

    fn unit_enabled(&self, k: usize) -> bool {
        (self.i * 3 + k) % 13 != 0
    }

    /// The address on ens18.
    fn ip(&self) -> String {
        if self.wrong_ip {
            format!("10.10.{}.{}", self.i / 200, 2 + self.i % 200)
        } else {
            format!("192.168.{}.10", self.vlan)
        }
    }

    /// (exit, stdout, stderr) of a probe, or why it could not run.
    fn answer(&self, p: &PlannedProbe) -> Result<(i64, String, String), ProbeError> {
        if self.agent_down && p.source == Source::Guest {
            return Err(ProbeError {
                kind: ErrorKind::AgentDown,
                message: format!("VM {}: QEMU guest agent is not running", self.info.vmid),
            });
        }
        let host = &self.info.hostname;
        let v = self.vlan;
        let ip = self.ip();
        let ok = |s: String| Ok((0, s, String::new()));
        if let Some(u) = p.id.strip_prefix("active-") {
            let k = UNITS.iter().position(|x| *x == u).unwrap_or(0);
            return if self.unit_active(k) {
                ok("active\n".into())
            } else {
                Ok((3, "inactive\n".into(), String::new()))
            };
        }
        if let Some(u) = p.id.strip_prefix("enabled-") {
            let k = UNITS.iter().position(|x| *x == u).unwrap_or(0);
            return if self.unit_enabled(k) {
                ok("enabled\n".into())
            } else {
                Ok((1, "disabled\n".into(), String::new()))
            };
        }
        match p.id.as_str() {
            "addr" => {
                let (fam_pfx, mac) = (if self.wrong_ip { 16 } else { 24 }, 0x10 + self.i % 200);
                ok(format!(
                    "{}\n",
                    json!([{
                        "ifindex": 2, "ifname": "ens18", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
                        "mtu": 1500, "qdisc": "fq_codel", "operstate": "UP", "group": "default",
                        "txqlen": 1000, "link_type": "ether", "address": format!("bc:24:11:00:01:{mac:02x}"),
                        "broadcast": "ff:ff:ff:ff:ff:ff",
                        "addr_info": [
                            {"family": "inet", "local": ip, "prefixlen": fam_pfx, "scope": "global",
                             "label": "ens18", "valid_life_time": 4_294_967_295_u64, "preferred_life_time": 4_294_967_295_u64},
                            {"family": "inet6", "local": format!("fe80::be24:11ff:fe00:1{mac:02x}"), "prefixlen": 64,
                             "scope": "link", "valid_life_time": 4_294_967_295_u64, "preferred_life_time": 4_294_967_295_u64}
                        ]
                    }])
                ))
            }
            "route" => {
                let (net, gw) = if self.wrong_ip {
                    ("10.10.0.0/16".to_owned(), "10.10.0.1".to_owned())
                } else {
                    (format!("192.168.{v}.0/24"), format!("192.168.{v}.1"))
                };
                ok(format!(
                    "{}\n",
                    json!([
                        {"dst": "default", "gateway": gw, "dev": "ens18", "protocol": "static", "flags": []},
                        {"dst": net, "dev": "ens18", "protocol": "kernel", "scope": "link", "prefsrc": ip, "flags": []}
                    ])
                ))
            }
            "ruleset" => {
                let policy = if self.i % 7 == 2 { "accept" } else { "drop" };
                ok(format!(
                    "{}\n",
                    json!({"nftables": [
                        {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
                        {"table": {"family": "inet", "name": "filter", "handle": 1}},
                        {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1,
                                   "type": "filter", "hook": "input", "prio": 0, "policy": policy}},
                        {"chain": {"family": "inet", "table": "filter", "name": "forward", "handle": 2,
                                   "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
                        {"chain": {"family": "inet", "table": "filter", "name": "output", "handle": 3,
                                   "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}},
                        {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 4,
                                  "expr": [{"match": {"op": "==", "left": {"ct": {"key": "state"}},
                                            "right": ["established", "related"]}}, {"accept": null}]}},
                        {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 5,
                                  "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp",
                                            "field": "dport"}}, "right": 22}}, {"accept": null}]}}
                    ]})
                ))
            }
            "ports" => {
                let mut out = format!(
                    "LISTEN 0      511          0.0.0.0:80        0.0.0.0:*    users:((\"nginx\",pid=812,fd=6))\n\
                     LISTEN 0      128          0.0.0.0:22        0.0.0.0:*    users:((\"sshd\",pid=640,fd=3))\n\
                     LISTEN 0      10      {ip}:53        0.0.0.0:*    users:((\"named\",pid=701,fd=20))\n"
                );
                if self.telnet_open {
                    out.push_str("LISTEN 0      64           0.0.0.0:23        0.0.0.0:*    users:((\"inetd\",pid=655,fd=7))\n");
                }
                ok(out)
            }
            "resolv" => ok(format!(
                "domain s{:03}.lab\nsearch s{:03}.lab\nnameserver 192.168.{v}.1\n",
                self.i, self.i
            )),
            "hosts" => ok(format!(
                "127.0.0.1\tlocalhost\n{ip}\t{host}.s{:03}.lab {host}\n\n::1\tlocalhost ip6-localhost ip6-loopback\n",
                self.i
            )),
            "hostname" => ok(format!("{host}\n")),
            "index" => ok(format!(
                "<!DOCTYPE html>\n<html><head><title>{host}</title></head>\n<body><h1>Welcome to {host}</h1>\n<p>Served by nginx on 192.168.{v}.10</p></body></html>\n"
            )),
            "web" => {
                if self.unit_active(0) && !self.wrong_ip {
                    ok(format!("<!DOCTYPE html>\n<html><head><title>{host}</title></head><body><h1>Welcome to {host}</h1></body></html>\n\n200"))
                } else {
                    Ok((7, "\n000".into(), format!("curl: (7) Failed to connect to 192.168.{v}.10 port 80 after 3 ms: Couldn't connect to server\n")))
                }
            }
            "www" => ok(if self.unit_active(2) { format!("{ip}\n") } else { String::new() }),
            "ssh" => Ok((0, String::new(), format!("Connection to 192.168.{v}.10 22 port [tcp/ssh] succeeded!\n"))),
            "telnet" => {
                if self.telnet_open {
                    Ok((0, String::new(), format!("Connection to 192.168.{v}.10 23 port [tcp/telnet] succeeded!\n")))
                } else {
                    Ok((1, String::new(), format!("nc: connect to 192.168.{v}.10 port 23 (tcp) failed: Connection refused\n")))
                }
            }
            "gw" => ok(format!(
                "PING 192.168.{v}.10 (192.168.{v}.10) 56(84) bytes of data.\n64 bytes from 192.168.{v}.10: icmp_seq=1 ttl=64 time=0.412 ms\n\n--- 192.168.{v}.10 ping statistics ---\n1 packets transmitted, 1 received, 0% packet loss, time 0ms\nrtt min/avg/max/mdev = 0.412/0.412/0.412/0.000 ms\n"
            )),
            other => Err(ProbeError {
                kind: ErrorKind::Unsupported,
                message: format!("the benchmark scripts no answer for probe {other}"),
            }),
        }
    }

    fn evidence(&self, p: &PlannedProbe) -> Evidence {
        let target = match p.source {
            Source::Guest => Target {
                vmid: Some(self.info.vmid),
                node: Some(self.info.node.clone()),
                name: self.info.hostname.clone(),
            },
            _ => Target {
                vmid: Some(TEACHER_VM),
                node: Some("pve1".into()),
                name: "teacher".into(),
            },
        };
        let (exit, stdout, stderr, error) = match self.answer(p) {
            Ok((exit, out, err)) => (Some(exit), out, err, None),
            Err(e) => (None, String::new(), String::new(), Some(e)),
        };
        let stdout = Blob(stdout.into_bytes());
        Evidence {
            probe: p.id.clone(),
            student: self.info.key.clone(),
            source: p.source,
            request: p.request.clone(),
            target,
            start: "2026-12-05T10:00:00.120Z".into(),
            end: "2026-12-05T10:00:00.340Z".into(),
            attempts: 1,
            exit,
            signal: None,
            sha256: stdout.sha256(),
            stdout,
            stderr: Blob(stderr.into_bytes()),
            truncated: false,
            error,
        }
    }
}

/// Writes the class's evidence as `collect` leaves it; returns the probes per student.
fn write_class(spec: &Spec, root: &Path, n: usize) -> Result<usize> {
    let store = Store::create(root).map_err(|e| anyhow::anyhow!("{e}"))?;
    store
        .write_meta(&lab_grade::CollectMeta {
            lab: LAB.to_owned(),
            spec_sha256: spec.sha256(),
            tool: format!("labctl-bench {}", env!("CARGO_PKG_VERSION")),
            started: "2026-12-05T10:00:00Z".to_owned(),
            finished: Some("2026-12-05T10:01:00Z".to_owned()),
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut per_student = 0;
    for i in 0..n {
        let s = Student::new(i);
        let plan = spec.plan(&s.info).map_err(|e| anyhow::anyhow!("{e}"))?;
        per_student = plan.len();
        store
            .write_student(&s.info)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for p in &plan {
            store
                .write(&s.evidence(p))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        store
            .seal(&s.info.key)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(per_student)
}

/// Bytes of the files under `dir` (0 for what cannot be read).
fn du(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => du(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// Which outcome each check has for a student, for the tests.
#[cfg(test)]
fn outcome_of(sheet: &Sheet, student: &str, check: &str) -> Option<lab_grade::Outcome> {
    sheet
        .students
        .iter()
        .find(|s| s.hostname == student)?
        .checks
        .iter()
        .find(|c| c.id == check)
        .map(|c| c.outcome)
}

#[cfg(test)]
mod tests {
    use lab_grade::Outcome;

    use super::*;

    #[test]
    fn the_spec_has_fifty_checks_and_lints_clean_for_every_student() {
        let spec = Spec::parse(&spec_text(), "t").unwrap();
        assert_eq!(spec.check_infos().len(), 50);
        let class: Vec<StudentInfo> = (0..60).map(|i| Student::new(i).info).collect();
        let errors: Vec<_> = spec
            .lint(&class)
            .into_iter()
            .filter(|f| f.level == lab_grade::Level::Error)
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(spec.plan(&class[0]).unwrap().len(), 29);
    }

    #[test]
    fn scripted_students_get_the_outcomes_their_work_earns() {
        // 0: everything right; 3: a wrong address; 49: agent down; 5: telnet open.
        let spec = Spec::parse(&spec_text(), "t").unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_class(&spec, dir.path(), 50).unwrap();
        let (sha, all) = load(dir.path()).unwrap();
        assert_eq!(sha, spec.sha256());
        assert!(all.iter().all(|s| s.problems.is_empty()));
        let sheet = grade(&spec, LAB, &sha, &all);
        assert_eq!(sheet.students.len(), 50);
        let o = |s: &str, c: &str| outcome_of(&sheet, s, c);
        assert_eq!(o("exam-001", "static-ip"), Some(Outcome::Pass));
        assert_eq!(o("exam-001", "web-body"), Some(Outcome::Pass));
        assert_eq!(o("exam-001", "telnet-closed"), Some(Outcome::Pass));
        assert_eq!(o("exam-003", "static-ip"), Some(Outcome::Fail));
        assert_eq!(o("exam-003", "prefix"), Some(Outcome::Skipped));
        assert_eq!(o("exam-003", "web-body"), Some(Outcome::Skipped));
        assert_eq!(o("exam-005", "telnet-closed"), Some(Outcome::Fail));
        assert_eq!(o("exam-005", "no-telnetd"), Some(Outcome::Fail));
        assert_eq!(o("exam-049", "static-ip"), Some(Outcome::Error));
        assert_eq!(o("exam-049", "ping"), Some(Outcome::Pass));
        let counts = outcomes(&sheet);
        assert_eq!(counts.values().sum::<usize>(), 50 * 50);
        for k in ["pass", "fail", "error", "skipped"] {
            assert!(counts.get(k).copied().unwrap_or(0) > 0, "{k}: {counts:?}");
        }
    }

    #[test]
    fn evidence_is_sized_by_its_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/x"), b"12345").unwrap();
        std::fs::write(dir.path().join("y"), b"123").unwrap();
        assert_eq!(du(dir.path()), 8);
        assert_eq!(du(&dir.path().join("missing")), 0);
        assert_eq!(students(true), 50);
        assert_eq!(students(false), 500);
    }
}
