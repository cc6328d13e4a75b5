//! The everyday commands that change a guest — what a student types, and what a
//! check's *mutant* runs to break one thing on a clone of the reference:
//!
//! | command | changes |
//! |---|---|
//! | `rm [-f] [-r\|-R] [-d] [-v] PATH…` | files (and directories with `-r`) |
//! | `touch [-c] PATH…` | creates an empty file |
//! | `mkdir [-p] [-v] [-m MODE] DIR…` | directories |
//! | `systemctl start\|stop\|restart UNIT…` | a service's `active` (every port of the unit); `qemu-guest-agent` stops the agent |
//! | `systemctl enable\|disable\|mask\|unmask [--now] UNIT…`, `is-enabled UNIT…` | a service's unit file state (`--now` starts/stops too) |
//! | `ip addr add\|del ADDR[/PFX] dev DEV`, `ip addr flush dev DEV` | static addresses, the DHCP lease (until the next boot) |
//! | `ip link set [dev] DEV up\|down [mtu N]`, `ip link del [dev] DEV` | link state, MTU, added interfaces |
//! | `ip route add\|del DST [via GW] [dev DEV] [metric N]` | static routes, the kernel's and DHCP's routes (until the next boot) |
//! | `hostnamectl set-hostname NAME`, `hostname NAME` | `/etc/hostname` |
//!
//! Each answers with the real tool's stdout, stderr and exit code (coreutils 9.1,
//! systemd 252, iproute2 6.1, Linux 6.1 as in Debian 12). Paths are relative to `/`
//! (qemu-ga's working directory). As on Linux, taking an interface down, deleting it or
//! removing the address a route's gateway was reached through also removes the static
//! routes through it.

use std::net::IpAddr;

use tokio::time::Instant;

use super::exec::Outcome;
use super::net;
use super::os::{parse_cidr, AgentState, File, GuestOs, IfKind, Iface, Route};
use super::Guest;

/// Run `name args` if it is a command that changes the guest; `None` = not one of
/// them (or a use of it the simulation does not cover).
pub(crate) fn run(g: &mut Guest, name: &str, args: &[&str], now: Instant) -> Option<Outcome> {
    match name {
        "rm" => Some(rm(&mut g.os, args)),
        "touch" => Some(touch(&mut g.os, args)),
        "mkdir" => Some(mkdir(&mut g.os, args)),
        "systemctl" => systemctl(&mut g.os, args),
        "hostnamectl" => hostnamectl(&mut g.os, args),
        "hostname" => hostname(&mut g.os, args),
        "ip" => ip(g, args, now),
        _ => None,
    }
}

/// `path` made absolute (relative to `/`) without `.`, `..` and repeated slashes.
pub(crate) fn absolute(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            x => parts.push(x),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Options of a coreutils command: short letters (combinable) and long names.
struct Opts<'a> {
    flags: Vec<char>,
    operands: Vec<&'a str>,
}

/// Split `args` into flags and operands; `Err` = coreutils' text for an unknown option.
/// `with_value` are short options that take the next argument (their value is dropped).
fn opts<'a>(
    tool: &str,
    args: &[&'a str],
    allowed: &str,
    long: &[(&str, char)],
    with_value: &str,
) -> Result<Opts<'a>, Outcome> {
    let mut o = Opts {
        flags: Vec::new(),
        operands: Vec::new(),
    };
    let mut done = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if done || !a.starts_with('-') || *a == "-" {
            o.operands.push(a);
            continue;
        }
        if *a == "--" {
            done = true;
            continue;
        }
        if let Some(name) = a.strip_prefix("--") {
            let name = name.split('=').next().unwrap_or(name);
            match long.iter().find(|(l, _)| *l == name) {
                Some((_, c)) => o.flags.push(*c),
                None => {
                    return Err(Outcome::fail(
                        1,
                        format!(
                            "{tool}: unrecognized option '{a}'\nTry '{tool} --help' for more information.\n"
                        ),
                    ))
                }
            }
            continue;
        }
        for c in a[1..].chars() {
            if !allowed.contains(c) {
                return Err(Outcome::fail(
                    1,
                    format!(
                        "{tool}: invalid option -- '{c}'\nTry '{tool} --help' for more information.\n"
                    ),
                ));
            }
            o.flags.push(c);
            if with_value.contains(c) {
                // `-m 0755`: the value is the next argument (or the rest of this one).
                if a.ends_with(c) {
                    it.next();
                }
                break;
            }
        }
    }
    Ok(o)
}

/// Collects stdout/stderr and the first failure of a multi-operand command.
#[derive(Default)]
struct Report {
    out: String,
    err: String,
    code: i32,
}

impl Report {
    fn fail(&mut self, code: i32, line: String) {
        self.err.push_str(&line);
        self.err.push('\n');
        if self.code == 0 {
            self.code = code;
        }
    }

    fn done(self) -> Outcome {
        Outcome {
            stdout: self.out.into_bytes(),
            stderr: self.err.into_bytes(),
            exit_code: self.code,
            run_time: Outcome::ok(Vec::new()).run_time,
        }
    }
}

fn rm(os: &mut GuestOs, args: &[&str]) -> Outcome {
    let o = match opts(
        "rm",
        args,
        "frRdv",
        &[
            ("force", 'f'),
            ("recursive", 'r'),
            ("dir", 'd'),
            ("verbose", 'v'),
        ],
        "",
    ) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let force = o.flags.contains(&'f');
    let recursive = o.flags.iter().any(|c| matches!(c, 'r' | 'R'));
    let dir_ok = o.flags.contains(&'d');
    let verbose = o.flags.contains(&'v');
    if o.operands.is_empty() {
        if force {
            return Outcome::ok(Vec::new());
        }
        return Outcome::fail(
            1,
            "rm: missing operand\nTry 'rm --help' for more information.\n",
        );
    }
    let mut r = Report::default();
    for p in o.operands {
        if p.is_empty() {
            if !force {
                r.fail(1, "rm: cannot remove '': No such file or directory".into());
            }
            continue;
        }
        let abs = absolute(p);
        if os.files.remove(&abs).is_some() {
            if verbose {
                r.out.push_str(&format!("removed '{p}'\n"));
            }
        } else if os.is_dir(&abs) {
            if abs == "/" && recursive {
                r.fail(
                    1,
                    "rm: it is dangerous to operate recursively on '/'\nrm: use --no-preserve-root to override this failsafe".into(),
                );
                continue;
            }
            let prefix = format!("{abs}/");
            let empty = !os.files.keys().any(|k| k.starts_with(&prefix))
                && !os.dirs.iter().any(|d| d.starts_with(&prefix));
            if !recursive && !dir_ok {
                r.fail(1, format!("rm: cannot remove '{p}': Is a directory"));
                continue;
            }
            if !recursive && !empty {
                r.fail(1, format!("rm: cannot remove '{p}': Directory not empty"));
                continue;
            }
            let gone: Vec<String> = os
                .files
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .cloned()
                .collect();
            for f in gone {
                os.files.remove(&f);
                if verbose {
                    r.out.push_str(&format!("removed '{f}'\n"));
                }
            }
            os.dirs.retain(|d| d != &abs && !d.starts_with(&prefix));
            if verbose {
                r.out.push_str(&format!("removed directory '{p}'\n"));
            }
        } else if force {
            // -f ignores a missing operand (ENOENT and ENOTDIR).
        } else if os.parent_is_file(&abs) {
            r.fail(1, format!("rm: cannot remove '{p}': Not a directory"));
        } else {
            r.fail(
                1,
                format!("rm: cannot remove '{p}': No such file or directory"),
            );
        }
    }
    r.done()
}

fn touch(os: &mut GuestOs, args: &[&str]) -> Outcome {
    let o = match opts(
        "touch",
        args,
        "acmd",
        &[("no-create", 'c'), ("date", 'd')],
        "d",
    ) {
        Ok(o) => o,
        Err(e) => return e,
    };
    if o.operands.is_empty() {
        return Outcome::fail(
            1,
            "touch: missing file operand\nTry 'touch --help' for more information.\n",
        );
    }
    let create = !o.flags.contains(&'c');
    let mut r = Report::default();
    for p in o.operands {
        if p.is_empty() {
            r.fail(
                1,
                "touch: cannot touch '': No such file or directory".into(),
            );
            continue;
        }
        let abs = absolute(p);
        if os.files.contains_key(&abs) || os.is_dir(&abs) || !create {
            continue;
        }
        if os.parent_is_file(&abs) {
            r.fail(1, format!("touch: cannot touch '{p}': Not a directory"));
        } else if !os.parent_exists(&abs) {
            r.fail(
                1,
                format!("touch: cannot touch '{p}': No such file or directory"),
            );
        } else {
            os.files.insert(
                abs,
                File {
                    content: Vec::new(),
                    mode: 0o644,
                },
            );
        }
    }
    r.done()
}

fn mkdir(os: &mut GuestOs, args: &[&str]) -> Outcome {
    let o = match opts(
        "mkdir",
        args,
        "pvm",
        &[("parents", 'p'), ("verbose", 'v'), ("mode", 'm')],
        "m",
    ) {
        Ok(o) => o,
        Err(e) => return e,
    };
    if o.operands.is_empty() {
        return Outcome::fail(
            1,
            "mkdir: missing operand\nTry 'mkdir --help' for more information.\n",
        );
    }
    let parents = o.flags.contains(&'p');
    let verbose = o.flags.contains(&'v');
    let mut r = Report::default();
    for p in o.operands {
        if p.is_empty() {
            r.fail(
                1,
                "mkdir: cannot create directory '': No such file or directory".into(),
            );
            continue;
        }
        let abs = absolute(p);
        if os.files.contains_key(&abs) || (os.is_dir(&abs) && !parents) {
            r.fail(
                1,
                format!("mkdir: cannot create directory '{p}': File exists"),
            );
            continue;
        }
        if os.is_dir(&abs) {
            continue;
        }
        if os.parent_is_file(&abs) {
            r.fail(
                1,
                format!("mkdir: cannot create directory '{p}': Not a directory"),
            );
            continue;
        }
        if !parents && !os.parent_exists(&abs) {
            r.fail(
                1,
                format!("mkdir: cannot create directory '{p}': No such file or directory"),
            );
            continue;
        }
        if verbose {
            // Every component that did not exist yet, outermost first.
            let mut made = Vec::new();
            let mut cur = abs.as_str();
            while cur.len() > 1 && !os.is_dir(cur) {
                made.push(cur.to_owned());
                cur = cur.rsplit_once('/').map_or("/", |(a, _)| a);
            }
            for d in made.iter().rev() {
                r.out.push_str(&format!("mkdir: created directory '{d}'\n"));
            }
        }
        os.dirs.insert(abs);
    }
    r.done()
}

/// Units every guest runs besides its services (`systemctl is-active` says active).
const SYSTEM_UNITS: &[&str] = &["qemu-guest-agent", "networking", "systemd-journald"];

/// `nginx` → `nginx.service`.
fn unit_file_name(u: &str) -> String {
    if u.contains('.') {
        u.to_owned()
    } else {
        format!("{u}.service")
    }
}

/// `systemctl start|stop|restart|enable|disable|mask|unmask|is-enabled`.
fn systemctl(os: &mut GuestOs, args: &[&str]) -> Option<Outcome> {
    let (flags, words): (Vec<&str>, Vec<&str>) = args.iter().partition(|a| a.starts_with('-'));
    let (verb, units) = words.split_first()?;
    let now_too = flags.contains(&"--now");
    if !matches!(
        *verb,
        "start" | "stop" | "restart" | "enable" | "disable" | "mask" | "unmask" | "is-enabled"
    ) {
        return None;
    }
    if flags
        .iter()
        .any(|f| !matches!(*f, "--now" | "-q" | "--quiet" | "--no-block" | "--no-pager"))
    {
        return None;
    }
    if units.is_empty() {
        return Some(Outcome::fail(1, "Too few arguments.\n"));
    }
    let quiet = flags.iter().any(|f| matches!(*f, "-q" | "--quiet"));
    let mut r = Report::default();
    for u in units {
        let base = u.strip_suffix(".service").unwrap_or(u);
        let full = unit_file_name(u);
        if SYSTEM_UNITS.contains(&base) {
            match (*verb, base) {
                ("stop", "qemu-guest-agent") => os.agent = AgentState::Stopped,
                ("start" | "restart", "qemu-guest-agent") => os.agent = AgentState::Running,
                ("is-enabled", "networking") => r.out.push_str("enabled\n"),
                ("is-enabled", _) => r.out.push_str("static\n"),
                // What stopping the network or the journal does is beyond the model.
                _ => return None,
            }
            continue;
        }
        let known = os.services.values().any(|s| s.is_unit(base));
        let masked = os.services.values().any(|s| s.is_unit(base) && s.masked);
        let set = |os: &mut GuestOs, f: &dyn Fn(&mut super::os::Service)| {
            for s in os.services.values_mut().filter(|s| s.is_unit(base)) {
                f(s);
            }
        };
        match *verb {
            "stop" if !known => {
                r.fail(5, format!("Failed to stop {full}: Unit {full} not loaded."));
            }
            "start" | "restart" if !known => {
                r.fail(
                    5,
                    format!("Failed to {verb} {full}: Unit {full} not found."),
                );
            }
            "start" | "restart" if masked => {
                r.fail(
                    1,
                    format!("Failed to {verb} {full}: Unit {full} is masked."),
                );
            }
            "stop" => set(os, &|s| s.active = false),
            "start" | "restart" => set(os, &|s| s.active = true),
            "enable" | "disable" if !known => {
                r.fail(
                    1,
                    format!("Failed to {verb} unit: Unit file {full} does not exist."),
                );
            }
            "enable" if masked => {
                r.fail(
                    1,
                    format!(
                        "Failed to enable unit: Unit file /etc/systemd/system/{full} is masked."
                    ),
                );
            }
            "enable" => {
                if !os.services.values().any(|s| s.is_unit(base) && s.enabled) && !quiet {
                    r.err.push_str(&format!(
                        "Created symlink /etc/systemd/system/multi-user.target.wants/{full} \u{2192} /lib/systemd/system/{full}.\n"
                    ));
                }
                set(os, &|s| s.enabled = true);
                if now_too {
                    set(os, &|s| s.active = true);
                }
            }
            "disable" => {
                if os.services.values().any(|s| s.is_unit(base) && s.enabled) && !quiet {
                    r.err.push_str(&format!(
                        "Removed \"/etc/systemd/system/multi-user.target.wants/{full}\".\n"
                    ));
                }
                set(os, &|s| s.enabled = false);
                if now_too {
                    set(os, &|s| s.active = false);
                }
            }
            "mask" => {
                if !masked && !quiet {
                    r.err.push_str(&format!(
                        "Created symlink /etc/systemd/system/{full} \u{2192} /dev/null.\n"
                    ));
                }
                set(os, &|s| s.masked = true);
                if now_too {
                    set(os, &|s| s.active = false);
                }
            }
            "unmask" => {
                if masked && !quiet {
                    r.err
                        .push_str(&format!("Removed \"/etc/systemd/system/{full}\".\n"));
                }
                set(os, &|s| s.masked = false);
            }
            "is-enabled" if !known => {
                r.fail(
                    1,
                    format!("Failed to get unit file state for {full}: No such file or directory"),
                );
            }
            _ => {
                // is-enabled
                let state = os
                    .services
                    .values()
                    .find(|s| s.is_unit(base))
                    .map(|s| s.unit_file());
                if let Some(state) = state {
                    if !quiet {
                        r.out.push_str(state.as_str());
                        r.out.push('\n');
                    }
                    if state != super::os::UnitFile::Enabled && r.code == 0 {
                        r.code = 1;
                    }
                }
            }
        }
    }
    Some(r.done())
}

/// A host name `hostname(1)`/systemd accept: 1-64 of letters, digits, `-` and `.`, no
/// empty label, not starting with `-`.
fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// `hostnamectl set-hostname NAME` (also `hostnamectl hostname NAME`).
fn hostnamectl(os: &mut GuestOs, args: &[&str]) -> Option<Outcome> {
    let words: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| !matches!(*a, "--static" | "--transient"))
        .collect();
    let ["set-hostname" | "hostname", name] = words.as_slice() else {
        return None;
    };
    if !valid_hostname(name) {
        return Some(Outcome::fail(
            1,
            format!("Could not set static hostname: Invalid static hostname '{name}'\n"),
        ));
    }
    os.write_hostname(name);
    Some(Outcome::ok(Vec::new()))
}

/// `hostname NAME` (the simulated guest has one host name, `/etc/hostname`).
fn hostname(os: &mut GuestOs, args: &[&str]) -> Option<Outcome> {
    let [name] = args else { return None };
    if name.starts_with('-') {
        return None;
    }
    if !valid_hostname(name) {
        return Some(Outcome::fail(
            1,
            "hostname: the specified hostname is invalid\n",
        ));
    }
    os.write_hostname(name);
    Some(Outcome::ok(Vec::new()))
}

/// iproute2's exit codes: 1 for its own checks, 2 when the kernel refused.
fn nodev(dev: &str) -> Outcome {
    Outcome::fail(1, format!("Cannot find device \"{dev}\"\n"))
}

fn rtnetlink(why: &str) -> Outcome {
    Outcome::fail(2, format!("RTNETLINK answers: {why}\n"))
}

fn extack(why: &str) -> Outcome {
    Outcome::fail(2, format!("Error: {why}.\n"))
}

/// The mutating forms of `ip`; the reading ones are in [`super::exec`].
fn ip(g: &mut Guest, args: &[&str], now: Instant) -> Option<Outcome> {
    let mut family = None;
    let mut rest = args;
    while let Some((first, tail)) = rest.split_first() {
        match *first {
            "-4" => family = Some(4),
            "-6" => family = Some(6),
            "-j" | "-json" | "--json" | "-d" | "-details" | "-p" | "-pretty" | "-c" | "-color"
            | "--color" | "-br" | "-brief" => {}
            _ => break,
        }
        rest = tail;
    }
    let (object, tail) = rest.split_first()?;
    let (verb, tail) = tail.split_first()?;
    let object = match *object {
        o if "address".starts_with(o) => "addr",
        o if "link".starts_with(o) => "link",
        o if "route".starts_with(o) => "route",
        _ => return None,
    };
    let out = match (object, *verb) {
        ("addr", "add" | "a") => addr_add(g, tail, now),
        ("addr", "del" | "delete" | "d") => addr_del(g, tail, now),
        ("addr", "flush" | "f") => addr_flush(g, tail, family, now),
        ("link", "set" | "s") => link_set(g, tail, now),
        ("link", "del" | "delete" | "d") => link_del(g, tail, now),
        ("route", "add" | "a") => route_add(g, tail, now),
        ("route", "del" | "delete" | "d") => route_del(g, tail, now),
        _ => return None,
    }?;
    if out.exit_code == 0 {
        prune_routes(g, now);
    }
    Some(out)
}

/// `ADDR[/PFX] dev DEV` and the options that do not change the model.
struct AddrArgs<'a> {
    local: Option<&'a str>,
    dev: Option<&'a str>,
}

fn addr_args<'a>(args: &[&'a str]) -> Option<AddrArgs<'a>> {
    let mut a = AddrArgs {
        local: None,
        dev: None,
    };
    let mut it = args.iter();
    while let Some(w) = it.next() {
        match *w {
            "dev" => a.dev = Some(it.next()?),
            "local" => a.local = Some(it.next()?),
            "label" | "brd" | "broadcast" | "scope" | "valid_lft" | "preferred_lft" => {
                it.next()?;
            }
            "noprefixroute" | "peer" | "metric" | "to" | "anycast" => return None,
            x if a.local.is_none() => a.local = Some(x),
            // A second address (`ip addr add A B`): iproute2's "Duplicate" error.
            _ => return None,
        }
    }
    Some(a)
}

/// The stored overlay of interface `dev` (created for a NIC without one).
fn overlay<'a>(g: &'a mut Guest, dev: &str) -> &'a mut Iface {
    g.os.interfaces.entry(dev.to_owned()).or_insert(Iface {
        kind: IfKind::Ether,
        link: None,
        vlan: None,
        mac: None,
        addresses: Vec::new(),
        up: true,
        master: None,
        mtu: 1500,
    })
}

fn bad_prefix(arg: &str) -> Outcome {
    Outcome::fail(
        1,
        format!("Error: any valid prefix is expected rather than \"{arg}\".\n"),
    )
}

/// `ADDR/PFX` or `ADDR` (a host address).
fn prefix_arg(arg: &str) -> Option<(IpAddr, u8)> {
    parse_cidr(arg).or_else(|| {
        arg.parse::<IpAddr>()
            .ok()
            .map(|ip| (ip, if ip.is_ipv4() { 32 } else { 128 }))
    })
}

fn addr_add(g: &mut Guest, args: &[&str], now: Instant) -> Option<Outcome> {
    let a = addr_args(args)?;
    let Some(local) = a.local else {
        return Some(Outcome::fail(
            1,
            "Not enough information: \"local\" argument is required.\n",
        ));
    };
    let Some((ip, prefix)) = prefix_arg(local) else {
        return Some(bad_prefix(local));
    };
    let Some(dev) = a.dev else {
        return Some(Outcome::fail(
            1,
            "Not enough information: \"dev\" argument is required.\n",
        ));
    };
    if dev == "lo" {
        return None;
    }
    let ifs = net::interfaces(g, now);
    let Some(view) = ifs.iter().find(|i| i.name == dev) else {
        return Some(nodev(dev));
    };
    if view.addrs.iter().any(|x| x.ip == ip && x.prefix == prefix) {
        return Some(rtnetlink("File exists"));
    }
    overlay(g, dev).addresses.push((ip, prefix));
    // The connected route comes back with the address.
    g.os.runtime
        .removed_routes
        .retain(|r| !r.ends_with(&format!(" dev {dev}")));
    Some(Outcome::ok(Vec::new()))
}

fn addr_del(g: &mut Guest, args: &[&str], now: Instant) -> Option<Outcome> {
    let a = addr_args(args)?;
    let Some(local) = a.local else {
        return Some(Outcome::fail(
            1,
            "Not enough information: \"local\" argument is required.\n",
        ));
    };
    let with_prefix = local.contains('/');
    let Some((ip, prefix)) = prefix_arg(local) else {
        return Some(bad_prefix(local));
    };
    let Some(dev) = a.dev else {
        return Some(Outcome::fail(
            1,
            "Not enough information: \"dev\" argument is required.\n",
        ));
    };
    if dev == "lo" {
        return None;
    }
    let ifs = net::interfaces(g, now);
    let Some(view) = ifs.iter().find(|i| i.name == dev) else {
        return Some(nodev(dev));
    };
    let Some(found) = view
        .addrs
        .iter()
        .find(|x| x.ip == ip && (!with_prefix || x.prefix == prefix))
        .cloned()
    else {
        return Some(rtnetlink("Cannot assign requested address"));
    };
    let mut warn = String::new();
    if !with_prefix && ip.is_ipv4() {
        warn = format!(
            "Warning: Executing wildcard deletion to stay compatible with old scripts.\n         Explicitly specify the prefix length ({ip}/32) to avoid this warning.\n         This special behaviour is likely to disappear in further releases,\n         fix your scripts today!\n"
        );
    }
    if found.dynamic {
        g.os.runtime.lease_removed = true;
    } else {
        let o = overlay(g, dev);
        let before = o.addresses.len();
        o.addresses
            .retain(|(x, p)| !(*x == found.ip && *p == found.prefix));
        if o.addresses.len() == before {
            // The IPv6 link-local address comes from the MAC; removing it is not modelled.
            return None;
        }
    }
    Some(Outcome {
        stderr: warn.into_bytes(),
        ..Outcome::ok(Vec::new())
    })
}

fn addr_flush(g: &mut Guest, args: &[&str], family: Option<u8>, now: Instant) -> Option<Outcome> {
    let dev = match args {
        [] => return Some(Outcome::fail(1, "Flush requires arguments.\n")),
        ["dev", d] | [d] => *d,
        _ => return None,
    };
    if dev == "lo" {
        return None;
    }
    let ifs = net::interfaces(g, now);
    let Some(view) = ifs.iter().find(|i| i.name == dev) else {
        return Some(Outcome::fail(
            1,
            format!("Device \"{dev}\" does not exist.\n"),
        ));
    };
    let keep = |ip: &IpAddr| match family {
        Some(4) => ip.is_ipv6(),
        Some(6) => ip.is_ipv4(),
        _ => false,
    };
    if view.addrs.iter().any(|a| a.dynamic && !keep(&a.ip)) {
        g.os.runtime.lease_removed = true;
    }
    if g.os.interfaces.contains_key(dev) {
        overlay(g, dev).addresses.retain(|(ip, _)| keep(ip));
    }
    Some(Outcome::ok(Vec::new()))
}

fn link_set(g: &mut Guest, args: &[&str], now: Instant) -> Option<Outcome> {
    let mut dev = None;
    let mut up = None;
    let mut mtu = None;
    let mut it = args.iter();
    while let Some(w) = it.next() {
        match *w {
            "dev" => dev = Some(*it.next()?),
            "up" => up = Some(true),
            "down" => up = Some(false),
            "mtu" => mtu = Some(it.next()?.parse::<u32>().ok()?),
            x if dev.is_none() && !x.starts_with('-') => dev = Some(x),
            _ => return None,
        }
    }
    let dev = dev?;
    if dev == "lo" || (up.is_none() && mtu.is_none()) {
        return None;
    }
    if !net::interfaces(g, now).iter().any(|i| i.name == dev) {
        return Some(nodev(dev));
    }
    if let Some(m) = mtu {
        if !(68..=65535).contains(&m) {
            return Some(rtnetlink("Invalid argument"));
        }
    }
    let o = overlay(g, dev);
    if let Some(u) = up {
        o.up = u;
    }
    if let Some(m) = mtu {
        o.mtu = m;
    }
    Some(Outcome::ok(Vec::new()))
}

fn link_del(g: &mut Guest, args: &[&str], now: Instant) -> Option<Outcome> {
    let dev = match args {
        ["dev", d] | [d] => *d,
        _ => return None,
    };
    let ifs = net::interfaces(g, now);
    let Some(view) = ifs.iter().find(|i| i.name == dev) else {
        return Some(nodev(dev));
    };
    if view.kind.is_none() || view.nic.is_some() && view.kind == Some(IfKind::Ether) {
        // Neither lo nor a NIC can be deleted.
        return Some(rtnetlink("Operation not supported"));
    }
    // The kernel deletes the VLANs on top of it and frees its bridge ports.
    let mut gone = vec![dev.to_owned()];
    while let Some(child) = g.os.interfaces.iter().find_map(|(n, i)| {
        (i.kind == IfKind::Vlan
            && i.link.as_ref().is_some_and(|l| gone.contains(l))
            && !gone.contains(n))
        .then(|| n.clone())
    }) {
        gone.push(child);
    }
    for n in &gone {
        g.os.interfaces.remove(n);
    }
    for i in g.os.interfaces.values_mut() {
        if i.master.as_ref().is_some_and(|m| gone.contains(m)) {
            i.master = None;
        }
    }
    g.os.routes
        .retain(|_, r| r.dev.as_ref().is_none_or(|d| !gone.contains(d)));
    Some(Outcome::ok(Vec::new()))
}

/// `DST [via GW] [dev DEV] [metric N]` of `ip route add|del`.
struct RouteArgs<'a> {
    dst: Option<&'a str>,
    via: Option<&'a str>,
    dev: Option<&'a str>,
    metric: Option<u32>,
}

fn route_args<'a>(args: &[&'a str]) -> Option<RouteArgs<'a>> {
    let mut r = RouteArgs {
        dst: None,
        via: None,
        dev: None,
        metric: None,
    };
    let mut it = args.iter();
    while let Some(w) = it.next() {
        match *w {
            "via" | "gw" => r.via = Some(it.next()?),
            "dev" | "oif" => r.dev = Some(it.next()?),
            "metric" | "preference" | "priority" => r.metric = Some(it.next()?.parse().ok()?),
            "to" => r.dst = Some(it.next()?),
            x if r.dst.is_none() => r.dst = Some(x),
            _ => return None,
        }
    }
    Some(r)
}

/// `default`, `ADDR/PFX` or `ADDR` as the table's `dst`; `Err` = the error answer.
fn route_dst(arg: &str) -> Result<Option<String>, Outcome> {
    if matches!(arg, "default" | "all" | "any" | "0/0" | "0.0.0.0/0") {
        return Ok(Some("default".into()));
    }
    let Some((ip, prefix)) = prefix_arg(arg) else {
        return Err(bad_prefix(arg));
    };
    if ip.is_ipv6() {
        // The simulated routing table is IPv4 only.
        return Ok(None);
    }
    if net::network(ip, prefix) != ip {
        return Err(extack("Invalid prefix for given prefix length"));
    }
    Ok(Some(format!("{ip}/{prefix}")))
}

fn bad_address(arg: &str) -> Outcome {
    Outcome::fail(
        1,
        format!("Error: any valid address is expected rather than \"{arg}\".\n"),
    )
}

fn route_add(g: &mut Guest, args: &[&str], now: Instant) -> Option<Outcome> {
    let a = route_args(args)?;
    let dst_arg = a.dst?;
    let dst = match route_dst(dst_arg) {
        Ok(Some(d)) => d,
        Ok(None) => return None,
        Err(e) => return Some(e),
    };
    let via = match a.via {
        None => None,
        Some(v) => match v.parse::<IpAddr>() {
            Ok(ip) if ip.is_ipv4() => Some(ip),
            Ok(_) => return None,
            Err(_) => return Some(bad_address(v)),
        },
    };
    let ifs = net::interfaces(g, now);
    if let Some(d) = a.dev {
        let Some(view) = ifs.iter().find(|i| i.name == d) else {
            return Some(nodev(d));
        };
        if !view.admin_up {
            return Some(extack(if via.is_some() {
                "Nexthop device is not up"
            } else {
                "Device for nexthop is not up"
            }));
        }
    }
    let routes = net::routes(g, &ifs);
    if let Some(gw) = via {
        let onlink = routes.iter().any(|r| {
            r.protocol == Some("kernel")
                && a.dev.is_none_or(|d| r.dev == d)
                && parse_cidr(&r.dst).is_some_and(|(n, p)| net::contains(n, p, gw))
        });
        if !onlink {
            return Some(extack("Nexthop has invalid gateway"));
        }
    } else if a.dev.is_none() {
        return Some(rtnetlink("No such device"));
    }
    let metric = a.metric.unwrap_or(0);
    if g.os.routes.contains_key(&dst)
        || routes
            .iter()
            .any(|r| r.dst == dst && r.metric.unwrap_or(0) == metric)
    {
        return Some(rtnetlink("File exists"));
    }
    g.os.routes.insert(
        dst.clone(),
        Route {
            dst,
            via,
            dev: a.dev.map(str::to_owned),
            metric: a.metric,
        },
    );
    Some(Outcome::ok(Vec::new()))
}

fn route_del(g: &mut Guest, args: &[&str], now: Instant) -> Option<Outcome> {
    let a = route_args(args)?;
    let dst_arg = a.dst?;
    let dst = match route_dst(dst_arg) {
        Ok(Some(d)) => d,
        Ok(None) => return None,
        Err(e) => return Some(e),
    };
    let via: Option<IpAddr> = match a.via {
        None => None,
        Some(v) => match v.parse() {
            Ok(ip) => Some(ip),
            Err(_) => return Some(bad_address(v)),
        },
    };
    if let Some(d) = a.dev {
        if !net::interfaces(g, now).iter().any(|i| i.name == d) {
            return Some(nodev(d));
        }
    }
    let ifs = net::interfaces(g, now);
    // The kernel deletes the first route (in table order) that matches what was given.
    let hit = net::routes(g, &ifs).into_iter().find(|r| {
        r.dst == dst
            && a.dev.is_none_or(|d| r.dev == d)
            && via.is_none_or(|v| r.gateway == Some(v))
            && a.metric.is_none_or(|m| r.metric.unwrap_or(0) == m)
    });
    let Some(hit) = hit else {
        return Some(rtnetlink("No such process"));
    };
    if hit.protocol.is_none() {
        g.os.routes.remove(&dst);
    } else {
        g.os.runtime
            .removed_routes
            .insert(format!("{} dev {}", hit.dst, hit.dev));
    }
    Some(Outcome::ok(Vec::new()))
}

/// Drop the static routes the kernel would have removed: their device is gone or down,
/// or their gateway is no longer on a connected network.
fn prune_routes(g: &mut Guest, now: Instant) {
    let ifs = net::interfaces(g, now);
    let view = net::routes(g, &ifs);
    let connected: Vec<&net::RouteView> = view
        .iter()
        .filter(|r| r.protocol == Some("kernel"))
        .collect();
    g.os.routes.retain(|_, r| {
        let dev_ok = |d: &str| ifs.iter().any(|i| i.name == d && i.admin_up);
        match (r.via, r.dev.as_deref()) {
            (None, Some(d)) => dev_ok(d),
            (Some(gw), dev) => connected.iter().any(|c| {
                dev.is_none_or(|d| c.dev == d)
                    && dev_ok(&c.dev)
                    && parse_cidr(&c.dst).is_some_and(|(n, p)| net::contains(n, p, gw))
            }),
            (None, None) => false,
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_made_absolute() {
        assert_eq!(absolute("x"), "/x");
        assert_eq!(absolute("/etc//nginx/./a/../b"), "/etc/nginx/b");
        assert_eq!(absolute("/"), "/");
        assert_eq!(absolute("../.."), "/");
    }

    #[test]
    fn rm_touch_mkdir_answer_like_coreutils() {
        let mut os = GuestOs::seeded("s1");
        let o = rm(&mut os, &["/nope"]);
        assert_eq!(o.exit_code, 1);
        assert_eq!(
            o.stderr,
            b"rm: cannot remove '/nope': No such file or directory\n"
        );
        assert_eq!(rm(&mut os, &["-f", "/nope"]).exit_code, 0);
        let o = rm(&mut os, &["/etc"]);
        assert_eq!(o.stderr, b"rm: cannot remove '/etc': Is a directory\n");
        assert!(os.files.contains_key("/etc/hostname"));
        let o = rm(&mut os, &["-x", "/etc/hostname"]);
        assert_eq!(o.exit_code, 1);
        assert!(String::from_utf8_lossy(&o.stderr).contains("invalid option -- 'x'"));
        assert!(os.files.contains_key("/etc/hostname"));
        let o = rm(&mut os, &["-v", "etc/hosts"]);
        assert_eq!(
            (o.exit_code, o.stdout.as_slice()),
            (0, &b"removed 'etc/hosts'\n"[..])
        );
        assert!(!os.files.contains_key("/etc/hosts"));

        assert_eq!(touch(&mut os, &["/srv/www/index.html"]).exit_code, 1);
        let o = mkdir(&mut os, &["/srv/www/a"]);
        assert_eq!(
            o.stderr,
            b"mkdir: cannot create directory '/srv/www/a': No such file or directory\n"
        );
        assert_eq!(mkdir(&mut os, &["-p", "/srv/www/a"]).exit_code, 0);
        assert!(os.is_dir("/srv/www") && os.is_dir("/srv/www/a"));
        assert_eq!(touch(&mut os, &["/srv/www/a/index.html"]).exit_code, 0);
        assert_eq!(os.files["/srv/www/a/index.html"].content, b"");
        let o = mkdir(&mut os, &["/srv/www"]);
        assert_eq!(
            o.stderr,
            b"mkdir: cannot create directory '/srv/www': File exists\n"
        );
        assert_eq!(rm(&mut os, &["-rf", "/srv/www"]).exit_code, 0);
        assert!(!os.is_dir("/srv/www"));
        assert!(!os.files.contains_key("/srv/www/a/index.html"));
        assert_eq!(rm(&mut os, &["-rf", "/"]).exit_code, 1);
        let o = rm(&mut os, &["-r", ""]);
        assert_eq!(
            o.stderr,
            b"rm: cannot remove '': No such file or directory\n"
        );
        assert!(os.files.contains_key("/etc/hostname"));
    }

    #[test]
    fn systemctl_changes_the_units_services() {
        let mut os = GuestOs::seeded("s1");
        let o = systemctl(&mut os, &["stop", "nginx"]).unwrap();
        assert_eq!(o.exit_code, 5);
        assert_eq!(
            o.stderr,
            b"Failed to stop nginx.service: Unit nginx.service not loaded.\n"
        );
        assert_eq!(systemctl(&mut os, &["stop", "ssh"]).unwrap().exit_code, 0);
        assert!(!os.services["tcp/22"].active);
        let o = systemctl(&mut os, &["mask", "ssh.service"]).unwrap();
        assert_eq!(
            o.stderr,
            "Created symlink /etc/systemd/system/ssh.service \u{2192} /dev/null.\n".as_bytes()
        );
        let o = systemctl(&mut os, &["start", "ssh"]).unwrap();
        assert_eq!(
            (o.exit_code, o.stderr.as_slice()),
            (
                1,
                &b"Failed to start ssh.service: Unit ssh.service is masked.\n"[..]
            )
        );
        assert!(!os.services["tcp/22"].active);
        systemctl(&mut os, &["unmask", "ssh"]).unwrap();
        let o = systemctl(&mut os, &["is-enabled", "ssh"]).unwrap();
        assert_eq!((o.exit_code, o.stdout.as_slice()), (0, &b"enabled\n"[..]));
        systemctl(&mut os, &["disable", "--now", "ssh"]).unwrap();
        let o = systemctl(&mut os, &["is-enabled", "ssh"]).unwrap();
        assert_eq!((o.exit_code, o.stdout.as_slice()), (1, &b"disabled\n"[..]));
        systemctl(&mut os, &["enable", "--now", "ssh"]).unwrap();
        assert!(os.services["tcp/22"].active && os.services["tcp/22"].enabled);
        assert!(systemctl(&mut os, &["stop", "networking"]).is_none());
        systemctl(&mut os, &["stop", "qemu-guest-agent"]).unwrap();
        assert_eq!(os.agent, AgentState::Stopped);
    }

    #[test]
    fn hostnames_are_checked() {
        let mut os = GuestOs::seeded("s1");
        let o = hostnamectl(&mut os, &["set-hostname", "bad name"]).unwrap();
        assert_eq!(o.exit_code, 1);
        assert_eq!(os.hostname(), "s1");
        hostnamectl(&mut os, &["set-hostname", "web-01"]).unwrap();
        assert_eq!(os.files["/etc/hostname"].content, b"web-01\n");
        assert_eq!(hostname(&mut os, &["x_y"]).unwrap().exit_code, 1);
        hostname(&mut os, &["web-02"]).unwrap();
        assert_eq!(os.hostname(), "web-02");
    }
}
