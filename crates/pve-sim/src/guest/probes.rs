//! Probes from inside a guest to other guests — `ping`, `nc` (TCP connect), `dig`,
//! `curl` — answered by one path model: the sender's routes and link state, the
//! firewall oracle (the fence applies: a `DROP` times out, a `REJECT` is refused at
//! once), the receiver's link state and the services it runs.
//!
//! The lab is one L2 segment (the DHCP network 10.10.0.0/16 on `vmbr0`): an address is
//! reached when a running guest has it on a cabled interface (its lease, or a static
//! address a student added). VLAN tags are not separate segments here.

use std::net::{IpAddr, Ipv4Addr};

use tokio::time::Instant;

use super::exec::Outcome;
use super::net;
use super::os::fqdn;
use crate::firewall::{Host, Proto};
use crate::state::SimState;

/// Seconds Linux keeps retrying a SYN nobody answers (6 retries).
const TCP_SYN_TIMEOUT: f64 = 127.0;

/// Where a packet from a guest to an address ends up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Path {
    /// An address of the sender itself (or loopback).
    Local,
    /// Delivered to this guest.
    Delivered(u32),
    /// Nobody has the address (or the receiver's link is down): lost.
    Lost(String),
    /// The firewall dropped it (lost) or rejected it (refused at once).
    Blocked { reject: bool, reason: String },
    /// No route, or the outgoing interface has no carrier (`link_down`).
    Unreachable(String),
}

fn own_addresses(ifs: &[net::IfView]) -> impl Iterator<Item = IpAddr> + '_ {
    ifs.iter()
        .filter(|i| i.admin_up)
        .flat_map(|i| i.addrs.iter().map(|a| a.ip))
}

/// The path of a new `proto` connection/packet from guest `from` to `dst`.
pub(crate) fn path(
    st: &SimState,
    from: u32,
    dst: IpAddr,
    proto: Proto,
    port: Option<u16>,
    now: Instant,
) -> Path {
    let Some(g) = st.guests.get(&from) else {
        return Path::Unreachable(format!("guest {from} does not exist"));
    };
    let ifs = net::interfaces(g, now);
    if dst.is_loopback() || own_addresses(&ifs).any(|a| a == dst) {
        return Path::Local;
    }
    let routes = net::routes(g, &ifs);
    let Some(route) = net::route_to(&routes, dst) else {
        return Path::Unreachable("Network is unreachable".into());
    };
    let Some(out) = ifs.iter().find(|i| i.name == route.dev) else {
        return Path::Unreachable("Network is unreachable".into());
    };
    if !out.running() || out.nic.is_none() {
        // link_down=1: the cable is pulled, nothing leaves.
        return Path::Lost(format!("{}: no carrier", out.name));
    }
    let Some(src_ip) = route
        .prefsrc
        .or_else(|| out.addrs.iter().map(|a| a.ip).find(IpAddr::is_ipv4))
    else {
        return Path::Unreachable("Network is unreachable".into());
    };
    // The receiver: a running guest with `dst` on a cabled interface.
    let owner = st
        .guests
        .values()
        .filter(|t| t.vmid != from && t.running)
        .find_map(|t| {
            let tifs = net::interfaces(t, now);
            let iface = tifs
                .iter()
                .filter(|i| i.nic.is_some())
                .find(|i| i.addrs.iter().any(|a| a.ip == dst))?;
            Some((t, iface.running()))
        });
    let Some((target, target_up)) = owner else {
        return Path::Lost(format!("no host has {dst}"));
    };
    if !target_up {
        return Path::Lost(format!("{dst}: the receiver's link is down"));
    }
    // Layer 2: the two must share a segment (or a routing guest must join theirs).
    let (src_nic, dst_nic) = match crate::sdn::segments::connect(st, g, target) {
        Ok(pair) => pair,
        Err(why) => return Path::Lost(why),
    };
    let mut src = Host {
        vmid: Some(from),
        ip: src_ip,
        nics: g.nics(),
    };
    src.nics.retain(|n| n.index == src_nic);
    let mut dsth = Host {
        vmid: Some(target.vmid),
        ip: dst,
        nics: target.nics(),
    };
    dsth.nics.retain(|n| n.index == dst_nic);
    let v = st.firewall.reachability(&src, &dsth, proto, port);
    if v.allowed {
        Path::Delivered(target.vmid)
    } else {
        Path::Blocked {
            reject: v.reason.starts_with("rejected"),
            reason: v.reason,
        }
    }
}

/// Why a name did not resolve.
enum NoAddress {
    /// NXDOMAIN.
    Unknown,
    /// No resolver answered.
    Temporary,
}

/// getaddrinfo for IPv4: an address literal, `/etc/hosts`, then the resolvers of
/// `/etc/resolv.conf` asked through the network.
fn resolve(st: &SimState, from: u32, name: &str, now: Instant) -> Result<IpAddr, NoAddress> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(ip);
    }
    if name == "localhost" {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let Some(g) = st.guests.get(&from) else {
        return Err(NoAddress::Temporary);
    };
    if let Some(hosts) = g.os.files.get("/etc/hosts") {
        for line in String::from_utf8_lossy(&hosts.content).lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut parts = line.split_whitespace();
            if let Some(ip) = parts.next().and_then(|a| a.parse::<IpAddr>().ok()) {
                if ip.is_ipv4() && parts.any(|n| n.eq_ignore_ascii_case(name)) {
                    return Ok(ip);
                }
            }
        }
    }
    let mut answered = false;
    for server in g.os.nameservers() {
        if let Answer::Records(recs, exists) = query(st, from, server, name, "A", now) {
            answered = true;
            if let Some(ip) = recs.iter().find_map(|r| r.parse::<IpAddr>().ok()) {
                return Ok(ip);
            }
            if exists {
                return Err(NoAddress::Unknown);
            }
        }
    }
    if answered {
        Err(NoAddress::Unknown)
    } else {
        Err(NoAddress::Temporary)
    }
}

/// What one DNS query got.
enum Answer {
    /// The records of the type (empty: none), and whether the name exists at all.
    Records(Vec<String>, bool),
    /// ICMP port unreachable (nothing on udp/53, or a REJECT).
    Refused,
    /// No answer.
    TimedOut,
    Unreachable,
}

fn query(st: &SimState, from: u32, server: IpAddr, name: &str, typ: &str, now: Instant) -> Answer {
    let target = match path(st, from, server, Proto::Udp, Some(53), now) {
        Path::Local => from,
        Path::Delivered(t) => t,
        Path::Blocked { reject: true, .. } => return Answer::Refused,
        Path::Blocked { .. } | Path::Lost(_) => return Answer::TimedOut,
        Path::Unreachable(_) => return Answer::Unreachable,
    };
    let Some(svc) = st
        .guests
        .get(&target)
        .and_then(|t| t.os.listening("udp", 53))
    else {
        return Answer::Refused;
    };
    match svc.dns.get(&fqdn(name)) {
        Some(types) => Answer::Records(types.get(typ).cloned().unwrap_or_default(), true),
        None => Answer::Records(Vec::new(), false),
    }
}

/// Split `-w3` / `-w 3` style options; returns (flags, positional).
fn value_of<'a>(args: &[&'a str], i: &mut usize, flag: char) -> Option<&'a str> {
    let a = args[*i];
    let rest = &a[a.find(flag)? + 1..];
    if rest.is_empty() {
        *i += 1;
        args.get(*i).copied()
    } else {
        Some(rest)
    }
}

fn secs(v: Option<&str>) -> Option<f64> {
    v.and_then(|s| s.parse::<f64>().ok())
        .filter(|f| f.is_finite() && *f >= 0.0)
}

/// `ping [-c N] [-W S] [-i S] [-q] HOST`.
pub(crate) fn ping(st: &SimState, from: u32, args: &[&str], now: Instant) -> Outcome {
    let mut count: Option<u32> = None;
    let mut wait = 1.0f64;
    let mut interval = 1.0f64;
    let mut quiet = false;
    let mut host = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        if let Some(opts) = a.strip_prefix('-').filter(|o| !o.is_empty()) {
            match opts.chars().next() {
                Some('c') => match value_of(args, &mut i, 'c').and_then(|v| v.parse().ok()) {
                    Some(n) if n > 0 => count = Some(n),
                    _ => return Outcome::fail(1, "ping: invalid argument: bad count\n".to_owned()),
                },
                Some('W') => wait = secs(value_of(args, &mut i, 'W')).unwrap_or(1.0),
                Some('i') => interval = secs(value_of(args, &mut i, 'i')).unwrap_or(1.0),
                Some('w') => {
                    let _ = value_of(args, &mut i, 'w');
                }
                Some('q') => quiet = true,
                Some('4' | 'n' | 'O' | 'D') => {}
                _ => {
                    return Outcome::fail(2, format!("ping: invalid option -- '{opts}'\n"));
                }
            }
        } else {
            host = Some(a);
        }
        i += 1;
    }
    let Some(host) = host else {
        return Outcome::fail(2, "ping: usage error: Destination address required\n");
    };
    let dst = match resolve(st, from, host, now) {
        Ok(ip) => ip,
        Err(NoAddress::Unknown) => {
            return Outcome::fail(2, format!("ping: {host}: Name or service not known\n"))
        }
        Err(NoAddress::Temporary) => {
            return Outcome::fail(
                2,
                format!("ping: {host}: Temporary failure in name resolution\n"),
            )
        }
    };
    // Without -c ping runs until it is killed.
    let Some(n) = count else {
        return Outcome::ok(format!("PING {host} ({dst}) 56(84) bytes of data.\n")).took(86_400.0);
    };
    let reply = match path(st, from, dst, Proto::Icmp, None, now) {
        Path::Local | Path::Delivered(_) => true,
        Path::Unreachable(why) => {
            return Outcome::fail(2, format!("ping: connect: {why}\n"));
        }
        Path::Lost(_) | Path::Blocked { .. } => false,
    };
    let mut out = format!("PING {host} ({dst}) 56(84) bytes of data.\n");
    let span = f64::from(n - 1) * interval;
    let received = if reply { n } else { 0 };
    if reply && !quiet {
        for seq in 1..=n {
            out.push_str(&format!(
                "64 bytes from {dst}: icmp_seq={seq} ttl=64 time=0.{} ms\n",
                400 + (seq % 10) * 7
            ));
        }
    }
    let elapsed_ms = (span * 1000.0).round() as u64 + if reply { 2 } else { 40 };
    out.push_str(&format!(
        "\n--- {host} ping statistics ---\n{n} packets transmitted, {received} received, {}% packet loss, time {elapsed_ms}ms\n",
        if reply { 0 } else { 100 }
    ));
    if reply {
        out.push_str("rtt min/avg/max/mdev = 0.407/0.431/0.463/0.021 ms\n");
    }
    let mut o = Outcome::ok(out);
    if reply {
        o.run_time = span + 0.001;
    } else {
        o.exit_code = 1;
        o.run_time = span + wait;
    }
    o
}

/// The `/etc/services` name of a TCP port, as nc prints it.
fn service_name(port: u16) -> &'static str {
    match port {
        22 => "ssh",
        25 => "smtp",
        53 => "domain",
        80 => "http",
        443 => "https",
        3306 => "mysql",
        5432 => "postgresql",
        _ => "*",
    }
}

/// `nc [-z] [-v] [-u] [-w S] HOST PORT` (OpenBSD netcat).
pub(crate) fn nc(st: &SimState, from: u32, args: &[&str], now: Instant) -> Outcome {
    let mut zero = false;
    let mut verbose = false;
    let mut udp = false;
    let mut timeout: Option<f64> = None;
    let mut pos = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        if let Some(flags) = a.strip_prefix('-').filter(|f| !f.is_empty()) {
            for (k, c) in flags.char_indices() {
                match c {
                    'z' => zero = true,
                    'v' => verbose = true,
                    'u' => udp = true,
                    'n' | 'N' | '4' => {}
                    'w' => {
                        let rest = &flags[k + 1..];
                        let v = if rest.is_empty() {
                            i += 1;
                            args.get(i).copied()
                        } else {
                            Some(rest)
                        };
                        timeout = secs(v);
                        break;
                    }
                    other => {
                        return Outcome::fail(1, format!("nc: invalid option -- '{other}'\n"));
                    }
                }
            }
        } else {
            pos.push(a);
        }
        i += 1;
    }
    let [host, port] = pos.as_slice() else {
        return Outcome::fail(
            1,
            "usage: nc [-46CDdFhklNnrStUuvZz] [-I length] [-i interval] [-M ttl]\n",
        );
    };
    let Some(port) = port.parse::<u16>().ok().filter(|p| *p > 0) else {
        return Outcome::fail(1, format!("nc: port number invalid: {port}\n"));
    };
    let dst = match resolve(st, from, host, now) {
        Ok(ip) => ip,
        Err(_) => {
            return Outcome::fail(
                1,
                format!(
                    "nc: getaddrinfo for host \"{host}\" port {port}: Name or service not known\n"
                ),
            )
        }
    };
    let proto_name = if udp { "udp" } else { "tcp" };
    let quiet_fail = |secs: f64, why: &str| {
        let msg = if verbose {
            format!("nc: connect to {host} port {port} ({proto_name}) {why}\n")
        } else {
            String::new()
        };
        Outcome::fail(1, msg).took(secs)
    };
    let p = path(
        st,
        from,
        dst,
        if udp { Proto::Udp } else { Proto::Tcp },
        Some(port),
        now,
    );
    let target = match p {
        Path::Local => from,
        Path::Delivered(t) => t,
        Path::Unreachable(why) => return quiet_fail(0.0, &format!("failed: {why}")),
        Path::Blocked { reject: true, .. } if !udp => {
            return quiet_fail(0.0, "failed: Connection refused")
        }
        Path::Blocked { .. } | Path::Lost(_) if !udp => {
            return match timeout {
                Some(w) => quiet_fail(w, "timed out: Operation now in progress"),
                None => quiet_fail(TCP_SYN_TIMEOUT, "failed: Connection timed out"),
            };
        }
        // UDP has no handshake: `nc -zu` reports success unless told otherwise.
        Path::Blocked { .. } | Path::Lost(_) => from,
    };
    let listening = st
        .guests
        .get(&target)
        .and_then(|t| t.os.listening(proto_name, port))
        .cloned();
    if udp {
        let msg = if verbose {
            format!(
                "Connection to {host} {port} port [udp/{}] succeeded!\n",
                service_name(port)
            )
        } else {
            String::new()
        };
        return Outcome {
            stdout: Vec::new(),
            stderr: msg.into_bytes(),
            exit_code: 0,
            run_time: 0.01,
        };
    }
    match listening {
        Some(svc) => Outcome {
            stdout: if zero {
                Vec::new()
            } else {
                svc.banner.unwrap_or_default().into_bytes()
            },
            stderr: if verbose {
                format!(
                    "Connection to {host} {port} port [tcp/{}] succeeded!\n",
                    service_name(port)
                )
                .into_bytes()
            } else {
                Vec::new()
            },
            exit_code: 0,
            run_time: 0.01,
        },
        None => quiet_fail(0.0, "failed: Connection refused"),
    }
}

/// `dig [+short] [@SERVER] NAME [TYPE]`.
pub(crate) fn dig(st: &SimState, from: u32, args: &[&str], now: Instant) -> Outcome {
    let mut short = false;
    let mut server: Option<&str> = None;
    let mut name: Option<&str> = None;
    let mut typ = "A".to_owned();
    let mut time = 5.0f64;
    let mut tries = 3u32;
    const TYPES: &[&str] = &[
        "A", "AAAA", "MX", "TXT", "CNAME", "NS", "PTR", "SOA", "SRV", "ANY",
    ];
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        if let Some(s) = a.strip_prefix('@') {
            server = Some(s);
        } else if a == "+short" {
            short = true;
        } else if let Some(t) = a.strip_prefix("+time=") {
            time = secs(Some(t)).unwrap_or(5.0).max(1.0);
        } else if let Some(t) = a.strip_prefix("+tries=") {
            tries = t.parse().unwrap_or(3).max(1);
        } else if let Some(t) = a.strip_prefix("+retry=") {
            tries = t.parse::<u32>().unwrap_or(2) + 1;
        } else if a.starts_with('+') {
        } else if a == "-t" {
            i += 1;
            typ = args.get(i).copied().unwrap_or("A").to_uppercase();
        } else if TYPES.contains(&a.to_uppercase().as_str()) && name.is_some() {
            typ = a.to_uppercase();
        } else if a.eq_ignore_ascii_case("IN") {
        } else if name.is_none() {
            name = Some(a);
        }
        i += 1;
    }
    let name = name.unwrap_or(".");
    let Some(g) = st.guests.get(&from) else {
        return Outcome::fail(9, Vec::new());
    };
    let server_ip = match server {
        Some(s) => match resolve(st, from, s, now) {
            Ok(ip) => ip,
            Err(_) => {
                return Outcome::fail(
                    10,
                    format!("dig: couldn't get address for '{s}': not found\n"),
                )
            }
        },
        None => match g.os.nameservers().first() {
            Some(ip) => *ip,
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        },
    };
    let fail = |what: &str, attempts: u32, secs: f64| {
        let mut out = String::new();
        for _ in 0..attempts {
            out.push_str(&format!(
                ";; communications error to {server_ip}#53: {what}\n"
            ));
        }
        out.push_str(";; no servers could be reached\n");
        Outcome {
            stdout: out.into_bytes(),
            stderr: Vec::new(),
            exit_code: 9,
            run_time: secs,
        }
    };
    match query(st, from, server_ip, name, &typ, now) {
        Answer::Refused => fail("connection refused", tries, 0.01),
        Answer::TimedOut => fail("timed out", tries, time * f64::from(tries)),
        Answer::Unreachable => fail("network unreachable", tries, 0.01),
        Answer::Records(recs, exists) => {
            let mut out = String::new();
            if short {
                for r in &recs {
                    out.push_str(r);
                    out.push('\n');
                }
            } else {
                let status = if exists { "NOERROR" } else { "NXDOMAIN" };
                let q = fqdn(name);
                out.push_str(&format!(
                    "\n; <<>> DiG 9.18.28-1~deb12u2-Debian <<>> @{server_ip} {name} {typ}\n; (1 server found)\n;; global options: +cmd\n;; Got answer:\n;; ->>HEADER<<- opcode: QUERY, status: {status}, id: 4242\n;; flags: qr aa rd ra; QUERY: 1, ANSWER: {}, AUTHORITY: 0, ADDITIONAL: 1\n\n;; QUESTION SECTION:\n;{q}\t\t\tIN\t{typ}\n",
                    recs.len()
                ));
                if !recs.is_empty() {
                    out.push_str("\n;; ANSWER SECTION:\n");
                    for r in &recs {
                        out.push_str(&format!("{q}\t\t300\tIN\t{typ}\t{r}\n"));
                    }
                }
                out.push_str(&format!(
                    "\n;; Query time: 0 msec\n;; SERVER: {server_ip}#53({server_ip}) (UDP)\n;; MSG SIZE  rcvd: {}\n\n",
                    40 + recs.iter().map(|r| r.len() + 12).sum::<usize>()
                ));
            }
            Outcome::ok(out)
        }
    }
}

/// `curl [-s] [-S] [-f] [-o FILE] [-w FORMAT] [-m S] [--connect-timeout S] URL`.
pub(crate) fn curl(st: &SimState, from: u32, args: &[&str], now: Instant) -> Outcome {
    let mut silent = false;
    let mut show_error = false;
    let mut fail_flag = false;
    let mut discard = false;
    let mut head = false;
    let mut write_out: Option<String> = None;
    let mut max_time: Option<f64> = None;
    let mut url: Option<&str> = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        let take = |i: &mut usize| {
            *i += 1;
            args.get(*i).copied()
        };
        match a {
            "--silent" => silent = true,
            "--show-error" => show_error = true,
            "--fail" => fail_flag = true,
            "--head" => head = true,
            "--insecure" | "--location" => {}
            "--output" => discard = take(&mut i) == Some("/dev/null"),
            "--write-out" => write_out = take(&mut i).map(str::to_owned),
            "--max-time" | "--connect-timeout" => {
                let v = secs(take(&mut i));
                max_time = match (max_time, v) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            s if s.starts_with("--") => {}
            s if s.starts_with('-') && s.len() > 1 => {
                let flags: Vec<char> = s[1..].chars().collect();
                for (k, c) in flags.iter().enumerate() {
                    let last = k + 1 == flags.len();
                    match c {
                        's' => silent = true,
                        'S' => show_error = true,
                        'f' => fail_flag = true,
                        'I' => head = true,
                        'k' | 'L' | 'v' => {}
                        'o' if last => discard = take(&mut i) == Some("/dev/null"),
                        'w' if last => write_out = take(&mut i).map(str::to_owned),
                        'm' if last => {
                            let v = secs(take(&mut i));
                            max_time = match (max_time, v) {
                                (Some(a), Some(b)) => Some(a.min(b)),
                                (a, b) => a.or(b),
                            };
                        }
                        _ => {}
                    }
                }
            }
            s => url = Some(s),
        }
        i += 1;
    }
    let Some(url) = url else {
        return Outcome::fail(2, "curl: no URL specified!\ncurl: try 'curl --help' or 'curl --manual' for more information\n");
    };
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        other => {
            return Outcome::fail(1, format!("curl: (1) Protocol \"{other}\" not supported\n"));
        }
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
            Ok(p) => (h.trim_matches(['[', ']']), p),
            Err(_) => {
                return Outcome::fail(
                    3,
                    "curl: (3) URL rejected: Port number was not a decimal number between 0 and 65535\n",
                )
            }
        },
        _ => (authority.trim_matches(['[', ']']), default_port),
    };
    let finish = |code: i32, http: u16, body: String, err: String, secs: f64| {
        let mut out = String::new();
        if !discard && !head {
            out.push_str(&body);
        }
        if head && http > 0 {
            out.push_str(&format!("HTTP/1.1 {http}\r\n\r\n"));
        }
        if let Some(w) = &write_out {
            out.push_str(
                &w.replace("%{http_code}", &format!("{http:03}"))
                    .replace("%{response_code}", &format!("{http:03}"))
                    .replace("%{exitcode}", &code.to_string())
                    .replace("\\n", "\n"),
            );
        }
        let stderr = if code != 0 && (!silent || show_error) {
            format!("curl: ({code}) {err}\n")
        } else {
            String::new()
        };
        Outcome {
            stdout: out.into_bytes(),
            stderr: stderr.into_bytes(),
            exit_code: code,
            run_time: secs,
        }
    };
    let dst = match resolve(st, from, host, now) {
        Ok(ip) => ip,
        Err(_) => {
            return finish(
                6,
                0,
                String::new(),
                format!("Could not resolve host: {host}"),
                0.01,
            )
        }
    };
    let refused = |ms: u64| {
        format!("Failed to connect to {host} port {port} after {ms} ms: Couldn't connect to server")
    };
    let target = match path(st, from, dst, Proto::Tcp, Some(port), now) {
        Path::Local => from,
        Path::Delivered(t) => t,
        Path::Unreachable(_) | Path::Blocked { reject: true, .. } => {
            return finish(7, 0, String::new(), refused(0), 0.01)
        }
        Path::Blocked { .. } | Path::Lost(_) => {
            let t = max_time.unwrap_or(TCP_SYN_TIMEOUT);
            let ms = (t * 1000.0) as u64;
            let why = if max_time.is_some() {
                format!(
                    "Failed to connect to {host} port {port} after {ms} ms: Timeout was reached"
                )
            } else {
                refused(ms)
            };
            let code = if max_time.is_some() { 28 } else { 7 };
            return finish(code, 0, String::new(), why, t);
        }
    };
    let svc = st
        .guests
        .get(&target)
        .and_then(|t| t.os.listening("tcp", port))
        .cloned();
    match svc {
        None => finish(7, 0, String::new(), refused(0), 0.01),
        Some(s) => match s.http {
            Some((status, body)) => {
                if fail_flag && status >= 400 {
                    finish(
                        22,
                        status,
                        String::new(),
                        format!("The requested URL returned error: {status}"),
                        0.02,
                    )
                } else {
                    finish(0, status, body, String::new(), 0.02)
                }
            }
            None if s.banner.is_some() => finish(
                1,
                0,
                String::new(),
                "Received HTTP/0.9 when not allowed".into(),
                0.02,
            ),
            None => finish(52, 0, String::new(), "Empty reply from server".into(), 0.02),
        },
    }
}
