//! What a command started through `guest-exec` answers: built-in tools that read the
//! guest model (and, for probes, the firewall oracle and the other guests), then the
//! guest's command table, else the shell's "command not found" (exit 127).
//!
//! There is no shell: qemu-ga runs `argv[0]` directly, so a single string with spaces
//! (`["ip -j addr"]`) names a program that does not exist and the spawn fails
//! (an `Agent error`, as on PVE). `["/bin/sh", "-c", "ONE SIMPLE COMMAND"]` is
//! understood for one simple command (words and quotes, no redirections) or a pipe of
//! them without quotes (`cat /etc/hostname | head -c 4`). A bare unknown name answers as
//! bash would (exit 127, `bash: NAME: command not found`; real qemu-ga fails the spawn
//! instead, which labctl reports as exit 127 too).

use tokio::time::Instant;

use super::net;
use super::os::sha256_hex;
use super::probes;
use crate::state::SimState;

/// Seconds a built-in that only reads state takes.
const QUICK: f64 = 0.01;

/// What a finished command left.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
    /// Seconds (simulated) until it finishes.
    pub run_time: f64,
}

impl Outcome {
    pub(crate) fn ok(stdout: impl Into<Vec<u8>>) -> Self {
        Self {
            stdout: stdout.into(),
            stderr: Vec::new(),
            exit_code: 0,
            run_time: QUICK,
        }
    }

    pub(crate) fn fail(code: i32, stderr: impl Into<Vec<u8>>) -> Self {
        Self {
            stdout: Vec::new(),
            stderr: stderr.into(),
            exit_code: code,
            run_time: QUICK,
        }
    }

    pub(crate) fn took(mut self, secs: f64) -> Self {
        self.run_time = secs;
        self
    }
}

/// The `guest-exec` spawn failure of a program that does not exist (glib's text).
pub(crate) fn spawn_error(program: &str) -> String {
    format!(
        "Guest agent command failed, error was 'Failed to execute child process \u{201c}{program}\u{201d} (No such file or directory)'"
    )
}

/// Run `argv` inside guest `vmid`. `Err` = the spawn failed (no process, no pid).
pub(crate) fn run(
    st: &SimState,
    vmid: u32,
    argv: &[String],
    stdin: &[u8],
    now: Instant,
) -> Result<Outcome, String> {
    let Some(program) = argv.first() else {
        // guest-exec without `path` (only input-data): QMP's missing-argument error.
        return Err("Parameter 'path' is missing".into());
    };
    if let Some(out) = builtin(st, vmid, argv, stdin, now) {
        return Ok(out);
    }
    let g = st
        .guests
        .get(&vmid)
        .ok_or_else(|| format!("guest {vmid} is gone"))?;
    if let Some(c) = g.os.commands.get(argv) {
        return Ok(Outcome {
            stdout: c.stdout.clone(),
            stderr: c.stderr.clone(),
            exit_code: c.exit_code,
            run_time: c.run_time,
        });
    }
    if program.chars().any(char::is_whitespace) || program.is_empty() {
        return Err(spawn_error(program));
    }
    let name = basename(program);
    if BUILTINS.contains(&name) {
        // The program exists; this use of it is beyond the simulation.
        return Ok(Outcome::fail(
            1,
            format!(
                "{name}: pve-sim does not simulate {argv:?}; give the guest a command table entry for it\n"
            ),
        ));
    }
    Ok(Outcome::fail(
        127,
        format!("bash: {name}: command not found\n"),
    ))
}

/// Programs the guest has (some of their uses are built in, see [`builtin`]).
const BUILTINS: &[&str] = &[
    "true",
    "false",
    "echo",
    "hostname",
    "uname",
    "cat",
    "head",
    "sha256sum",
    "test",
    "[",
    "systemctl",
    "ip",
    "ping",
    "nc",
    "netcat",
    "nc.openbsd",
    "dig",
    "curl",
    "sh",
    "bash",
    "dash",
];

fn basename(p: &str) -> &str {
    for dir in [
        "/usr/local/sbin/",
        "/usr/local/bin/",
        "/usr/sbin/",
        "/usr/bin/",
        "/sbin/",
        "/bin/",
    ] {
        if let Some(rest) = p.strip_prefix(dir) {
            return rest;
        }
    }
    p
}

/// The built-in tools; `None` = not a built-in (or a built-in asked for something it
/// does not simulate, which then falls back to the command table).
fn builtin(
    st: &SimState,
    vmid: u32,
    argv: &[String],
    stdin: &[u8],
    now: Instant,
) -> Option<Outcome> {
    let g = st.guests.get(&vmid)?;
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    let os = &g.os;
    match basename(&argv[0]) {
        "true" => Some(Outcome::ok(Vec::new())),
        "false" => Some(Outcome::fail(1, Vec::new())),
        "echo" => Some(Outcome::ok(format!("{}\n", args.join(" ")))),
        "hostname" => match args.as_slice() {
            [] => Some(Outcome::ok(format!("{}\n", os.hostname()))),
            ["-I"] => {
                let ifs = net::interfaces(g, now);
                let addrs: Vec<String> = ifs
                    .iter()
                    .filter(|i| i.kind.is_some() && i.admin_up)
                    .flat_map(|i| i.addrs.iter())
                    .filter(|a| match a.ip {
                        std::net::IpAddr::V4(_) => true,
                        std::net::IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 != 0xfe80,
                    })
                    .map(|a| a.ip.to_string())
                    .collect();
                Some(Outcome::ok(format!("{} \n", addrs.join(" "))))
            }
            _ => None,
        },
        "uname" => {
            let line = match args.as_slice() {
                [] | ["-s"] => "Linux".to_owned(),
                ["-r"] => super::os::KERNEL_RELEASE.to_owned(),
                ["-n"] => os.hostname(),
                ["-m"] => "x86_64".to_owned(),
                ["-a"] => format!(
                    "Linux {} {} {} x86_64 GNU/Linux",
                    os.hostname(),
                    super::os::KERNEL_RELEASE,
                    super::os::KERNEL_VERSION
                ),
                _ => return None,
            };
            Some(Outcome::ok(format!("{line}\n")))
        }
        "cat" => Some(cat(os, &args, stdin)),
        "head" => head(os, &args, stdin),
        "sha256sum" => Some(sha256sum(os, &args, stdin)),
        "test" => Some(test(os, &args)),
        "[" => match args.split_last() {
            Some((&"]", rest)) => Some(test(os, rest)),
            _ => Some(Outcome::fail(2, "[: missing `]'\n")),
        },
        "systemctl" => systemctl(os, &args),
        "ip" => ip(g, &args, now),
        "ping" => Some(probes::ping(st, vmid, &args, now)),
        "nc" | "netcat" | "nc.openbsd" => Some(probes::nc(st, vmid, &args, now)),
        "dig" => Some(probes::dig(st, vmid, &args, now)),
        "curl" => Some(probes::curl(st, vmid, &args, now)),
        "sh" | "bash" | "dash" => shell(st, vmid, &argv[0], &args, stdin, now),
        _ => None,
    }
}

fn cat(os: &super::os::GuestOs, args: &[&str], stdin: &[u8]) -> Outcome {
    let files: Vec<&str> = args.iter().copied().filter(|a| *a != "--").collect();
    if files.is_empty() {
        return Outcome::ok(stdin.to_vec());
    }
    let mut out = Vec::new();
    let mut err = Vec::new();
    for f in files {
        if f == "-" {
            out.extend_from_slice(stdin);
            continue;
        }
        match os.files.get(f) {
            Some(file) => out.extend_from_slice(&file.content),
            None if is_dir(os, f) => err.extend(format!("cat: {f}: Is a directory\n").bytes()),
            None => err.extend(format!("cat: {f}: No such file or directory\n").bytes()),
        }
    }
    Outcome {
        exit_code: i32::from(!err.is_empty()),
        stdout: out,
        stderr: err,
        run_time: QUICK,
    }
}

/// `head [-c N | -n N] [FILE]` (10 lines by default).
fn head(os: &super::os::GuestOs, args: &[&str], stdin: &[u8]) -> Option<Outcome> {
    let (bytes, lines, file) = match args {
        [] => (None, 10, None),
        [f] if !f.starts_with('-') => (None, 10, Some(*f)),
        ["-c", n, rest @ ..] if rest.len() <= 1 => {
            (Some(n.parse::<usize>().ok()?), 0, rest.first().copied())
        }
        ["-n", n, rest @ ..] if rest.len() <= 1 => {
            (None, n.parse::<usize>().ok()?, rest.first().copied())
        }
        _ => return None,
    };
    let data: &[u8] = match file {
        None => stdin,
        Some(f) => match os.files.get(f) {
            Some(file) => &file.content,
            None => {
                return Some(Outcome::fail(
                    1,
                    format!("head: cannot open '{f}' for reading: No such file or directory\n"),
                ))
            }
        },
    };
    let out = match bytes {
        Some(n) => data[..n.min(data.len())].to_vec(),
        None => {
            let mut end = 0;
            for _ in 0..lines {
                match data[end..].iter().position(|&b| b == b'\n') {
                    Some(i) => end += i + 1,
                    None => {
                        end = data.len();
                        break;
                    }
                }
            }
            data[..end].to_vec()
        }
    };
    Some(Outcome::ok(out))
}

fn sha256sum(os: &super::os::GuestOs, args: &[&str], stdin: &[u8]) -> Outcome {
    let files: Vec<&str> = args.iter().copied().filter(|a| *a != "--").collect();
    let files = if files.is_empty() { vec!["-"] } else { files };
    let mut out = String::new();
    let mut err = String::new();
    for f in files {
        if f == "-" {
            out.push_str(&format!("{}  -\n", sha256_hex(stdin)));
        } else if let Some(file) = os.files.get(f) {
            out.push_str(&format!("{}  {f}\n", sha256_hex(&file.content)));
        } else if is_dir(os, f) {
            err.push_str(&format!("sha256sum: {f}: Is a directory\n"));
        } else {
            err.push_str(&format!("sha256sum: {f}: No such file or directory\n"));
        }
    }
    Outcome {
        exit_code: i32::from(!err.is_empty()),
        stdout: out.into_bytes(),
        stderr: err.into_bytes(),
        run_time: QUICK,
    }
}

/// A directory exists when a file lies below it.
fn is_dir(os: &super::os::GuestOs, path: &str) -> bool {
    let p = path.trim_end_matches('/');
    let prefix = format!("{p}/");
    p.is_empty() || os.files.keys().any(|k| k.starts_with(&prefix))
}

fn test(os: &super::os::GuestOs, args: &[&str]) -> Outcome {
    let result = match args {
        [] => false,
        ["!", rest @ ..] => !test_expr(os, rest).unwrap_or(true),
        _ => match test_expr(os, args) {
            Some(r) => r,
            None => {
                return Outcome::fail(
                    2,
                    format!("test: unsupported expression: {}\n", args.join(" ")),
                )
            }
        },
    };
    Outcome::fail(i32::from(!result), Vec::new())
}

fn test_expr(os: &super::os::GuestOs, args: &[&str]) -> Option<bool> {
    Some(match args {
        [s] => !s.is_empty(),
        ["-e", p] => os.files.contains_key(*p) || is_dir(os, p),
        ["-f", p] => os.files.contains_key(*p),
        ["-d", p] => is_dir(os, p),
        ["-s", p] => os.files.get(*p).is_some_and(|f| !f.content.is_empty()),
        ["-r", p] => os.files.get(*p).is_some_and(|f| f.mode & 0o444 != 0) || is_dir(os, p),
        ["-w", p] => os.files.get(*p).is_some_and(|f| f.mode & 0o222 != 0) || is_dir(os, p),
        ["-x", p] => os.files.get(*p).is_some_and(|f| f.mode & 0o111 != 0) || is_dir(os, p),
        ["-n", s] => !s.is_empty(),
        ["-z", s] => s.is_empty(),
        [a, "=", b] | [a, "==", b] => a == b,
        [a, "!=", b] => a != b,
        _ => return None,
    })
}

/// `systemctl is-active UNIT…`: `active`/`inactive` per unit, exit 0 only if all are
/// active (3 otherwise, as systemd). Units come from the guest's services; the agent
/// and networking are active (the command runs through the agent, after all).
fn systemctl(os: &super::os::GuestOs, args: &[&str]) -> Option<Outcome> {
    let (verb, units) = args.split_first()?;
    if *verb != "is-active" {
        return None;
    }
    let units: Vec<&str> = units
        .iter()
        .copied()
        .filter(|u| !u.starts_with('-'))
        .collect();
    if units.is_empty() {
        return Some(Outcome::fail(1, "Too few arguments.\n"));
    }
    let mut out = String::new();
    let mut all = true;
    for u in units {
        let name = u.strip_suffix(".service").unwrap_or(u);
        let active = matches!(name, "qemu-guest-agent" | "networking" | "systemd-journald")
            || os.services.values().any(|s| {
                s.active
                    && s.unit
                        .as_deref()
                        .is_some_and(|x| x.strip_suffix(".service").unwrap_or(x) == name)
            });
        all &= active;
        out.push_str(if active { "active\n" } else { "inactive\n" });
    }
    Some(Outcome {
        stdout: out.into_bytes(),
        stderr: Vec::new(),
        exit_code: if all { 0 } else { 3 },
        run_time: QUICK,
    })
}

/// `ip [-j] [-d] [-4|-6] [-p] addr|link|route [show [dev NAME]]`.
fn ip(g: &super::Guest, args: &[&str], now: Instant) -> Option<Outcome> {
    let mut json = false;
    let mut details = false;
    let mut pretty = false;
    let mut family = None;
    let mut rest = args;
    while let Some((first, tail)) = rest.split_first() {
        match *first {
            "-j" | "-json" | "--json" => json = true,
            "-d" | "-details" | "--details" => details = true,
            "-p" | "-pretty" | "--pretty" => pretty = true,
            "-4" => family = Some(4),
            "-6" => family = Some(6),
            "-c" | "-color" | "--color" | "-br" | "-brief" => {}
            s if s.starts_with('-') => {
                return Some(Outcome::fail(
                    255,
                    format!("Option \"{s}\" is unknown, try \"ip -help\".\n"),
                ))
            }
            _ => break,
        }
        rest = tail;
    }
    let (object, cmd) = rest.split_first()?;
    let object = match *object {
        o if "address".starts_with(o) => "addr",
        o if "link".starts_with(o) => "link",
        o if "route".starts_with(o) => "route",
        _ => return None,
    };
    let mut dev: Option<&str> = None;
    match cmd {
        [] | ["show"] | ["list"] | ["ls"] => {}
        ["show", "dev", d] | ["show", d] | ["dev", d] => dev = Some(*d),
        _ => return None,
    }
    let ifs = net::interfaces(g, now);
    if let Some(d) = dev {
        if !ifs.iter().any(|i| i.name == d) {
            return Some(Outcome::fail(
                1,
                format!("Device \"{d}\" does not exist.\n"),
            ));
        }
    }
    let selected: Vec<net::IfView> = ifs
        .iter()
        .filter(|i| dev.is_none_or(|d| i.name == d))
        .cloned()
        .collect();
    let text = if object == "route" {
        let routes: Vec<net::RouteView> = net::routes(g, &ifs)
            .into_iter()
            .filter(|r| dev.is_none_or(|d| r.dev == d))
            .filter(|_| family != Some(6))
            .collect();
        if json {
            render(&net::route_json(&routes), pretty)
        } else {
            net::route_text(&routes)
        }
    } else if json {
        render(
            &net::ip_json(&selected, details, object == "addr", family),
            pretty,
        )
    } else {
        net::ip_text(&selected, details, object == "addr")
    };
    Some(Outcome::ok(text))
}

fn render(v: &serde_json::Value, pretty: bool) -> String {
    if pretty {
        format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default())
    } else {
        format!("{v}\n")
    }
}

/// `sh -c 'one simple command'`, or a pipe of simple commands (`a | b`, no quotes around
/// a `|`): each command's stdout is the next one's stdin; the last one's exit code counts,
/// stderr is collected from all.
fn shell(
    st: &SimState,
    vmid: u32,
    sh: &str,
    args: &[&str],
    stdin: &[u8],
    now: Instant,
) -> Option<Outcome> {
    let ["-c", script, ..] = args else {
        return None;
    };
    if script.contains([';', '&', '>', '<', '$', '`', '(', ')', '\n']) {
        // More than one simple command: only the command table knows the answer.
        return None;
    }
    if script.contains('|') {
        if script.contains(['\'', '"', '\\']) || script.contains("||") {
            return None;
        }
        let mut input = stdin.to_vec();
        let mut stderr = Vec::new();
        let mut last = Outcome::ok(Vec::new());
        let mut run_time: f64 = 0.0;
        for part in script.split('|') {
            let o = simple(st, vmid, sh, part, &input, now)?;
            stderr.extend_from_slice(&o.stderr);
            input.clone_from(&o.stdout);
            run_time = run_time.max(o.run_time);
            last = o;
        }
        last.stderr = stderr;
        last.run_time = run_time;
        return Some(last);
    }
    simple(st, vmid, sh, script, stdin, now)
}

/// One simple command of a shell script.
fn simple(
    st: &SimState,
    vmid: u32,
    sh: &str,
    script: &str,
    stdin: &[u8],
    now: Instant,
) -> Option<Outcome> {
    let name = basename(sh);
    let words = split_words(script)?;
    if words.is_empty() {
        return Some(Outcome::ok(Vec::new()));
    }
    match run(st, vmid, &words, stdin, now) {
        Ok(o) if o.exit_code == 127 && builtin(st, vmid, &words, stdin, now).is_none() => {
            let known = st
                .guests
                .get(&vmid)
                .is_some_and(|g| g.os.commands.contains_key(&words));
            if known {
                Some(o)
            } else if name == "bash" {
                Some(Outcome::fail(
                    127,
                    format!("bash: line 1: {}: command not found\n", words[0]),
                ))
            } else {
                Some(Outcome::fail(
                    127,
                    format!("sh: 1: {}: not found\n", words[0]),
                ))
            }
        }
        Ok(o) => Some(o),
        // Inside a shell a missing program is the shell's error, not a spawn failure.
        Err(_) => Some(Outcome::fail(
            127,
            format!("sh: 1: {}: not found\n", words[0]),
        )),
    }
}

/// Split a shell word list with single and double quotes and backslashes.
pub(crate) fn split_words(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        x => cur.push(x),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => cur.push(chars.next()?),
                        x => cur.push(x),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.push(chars.next()?);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words(r#"curl -s -w '%{http_code}' "a b" c\ d"#).unwrap(),
            vec!["curl", "-s", "-w", "%{http_code}", "a b", "c d"]
        );
        assert!(split_words("echo 'open").is_none());
    }
}
