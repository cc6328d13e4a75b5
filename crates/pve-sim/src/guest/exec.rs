//! What a command started through `guest-exec` answers: built-in tools that change the
//! guest ([`super::admin`]: `rm`, `touch`, `mkdir`, `systemctl start|stop|…`, `ip addr
//! add|del`, `ip link set|del`, `ip route add|del`, `hostnamectl`), built-in tools that
//! read the guest model (and, for probes, the firewall oracle and the other guests),
//! then the guest's command table, else the shell's "command not found" (exit 127).
//!
//! qemu-ga runs `argv[0]` directly, so a single string with spaces (`["ip -j addr"]`)
//! names a program that does not exist and the spawn fails (an `Agent error`, as on
//! PVE). `["/bin/sh", "-c", SCRIPT]` (also `bash`, `dash`) is understood for simple
//! commands with quoted words, joined by pipes (`|`) and lists (`;`, `&&`, `||`,
//! newlines), with redirections (`>`, `>>`, `<`, `2>`, `2>>`, `2>&1`, `>&2`,
//! `/dev/null`) and comments — `sh -c 'systemctl stop nginx && echo broken >
//! /var/www/html/index.html'`. A script with expansions (`$`, backquotes, globs, `~`),
//! subshells, groups, background jobs or here-documents is answered by the command
//! table only. A bare unknown name answers as bash would (exit 127, `bash: NAME:
//! command not found`; real qemu-ga fails the spawn instead, which labctl reports as
//! exit 127 too); inside `sh -c` it is dash's `sh: 1: NAME: not found`.
//!
//! A command takes effect when it starts (the guest model changes at once); its output
//! is reported by `exec-status` once its run time has passed.

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

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A built-in tool (or a use of one beyond the simulation).
    Builtin,
    /// The guest's command table.
    Table,
    /// No such program.
    NotFound,
}

/// Run `argv` inside guest `vmid`. `Err` = the spawn failed (no process, no pid). A
/// command that changes the guest ([`super::admin`]) changes it now, when it starts.
pub(crate) fn run(
    st: &mut SimState,
    vmid: u32,
    argv: &[String],
    stdin: &[u8],
    now: Instant,
) -> Result<Outcome, String> {
    run_from(st, vmid, argv, stdin, now).map(|(o, _)| o)
}

fn run_from(
    st: &mut SimState,
    vmid: u32,
    argv: &[String],
    stdin: &[u8],
    now: Instant,
) -> Result<(Outcome, Source), String> {
    let Some(program) = argv.first() else {
        // guest-exec without `path` (only input-data): QMP's missing-argument error.
        return Err("Parameter 'path' is missing".into());
    };
    if let Some(out) = builtin(st, vmid, argv, stdin, now) {
        return Ok((out, Source::Builtin));
    }
    let g = st
        .guests
        .get(&vmid)
        .ok_or_else(|| format!("guest {vmid} is gone"))?;
    if let Some(c) = g.os.commands.get(argv) {
        let o = Outcome {
            stdout: c.stdout.clone(),
            stderr: c.stderr.clone(),
            exit_code: c.exit_code,
            run_time: c.run_time,
        };
        return Ok((o, Source::Table));
    }
    if program.chars().any(char::is_whitespace) || program.is_empty() {
        return Err(spawn_error(program));
    }
    let name = basename(program);
    if BUILTINS.contains(&name) {
        // The program exists; this use of it is beyond the simulation.
        let o = Outcome::fail(
            1,
            format!(
                "{name}: pve-sim does not simulate {argv:?}; give the guest a command table entry for it\n"
            ),
        );
        return Ok((o, Source::Builtin));
    }
    Ok((
        Outcome::fail(127, format!("bash: {name}: command not found\n")),
        Source::NotFound,
    ))
}

/// Programs the guest has (some of their uses are built in, see [`builtin`]).
const BUILTINS: &[&str] = &[
    "true",
    "false",
    "echo",
    "printf",
    "hostname",
    "uname",
    "cat",
    "head",
    "sha256sum",
    "test",
    "[",
    "systemctl",
    "ip",
    "rm",
    "touch",
    "mkdir",
    "hostnamectl",
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
    st: &mut SimState,
    vmid: u32,
    argv: &[String],
    stdin: &[u8],
    now: Instant,
) -> Option<Outcome> {
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    let name = basename(&argv[0]);
    if let Some(out) = super::admin::run(st.guests.get_mut(&vmid)?, name, &args, now) {
        return Some(out);
    }
    if matches!(name, "sh" | "bash" | "dash") {
        return shell(st, vmid, &argv[0], &args, stdin, now);
    }
    let st: &SimState = st;
    let g = st.guests.get(&vmid)?;
    let os = &g.os;
    match name {
        "true" => Some(Outcome::ok(Vec::new())),
        "false" => Some(Outcome::fail(1, Vec::new())),
        "printf" => Some(printf(&args)),
        "echo" => Some(Outcome::ok(match args.split_first() {
            Some((&"-n", rest)) => rest.join(" "),
            _ => format!("{}\n", args.join(" ")),
        })),
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
        _ => None,
    }
}

/// `printf FORMAT [ARG…]` with `%s`, `%d`, `%%` and the escapes `\n`, `\t`, `\\`;
/// the format is reused while arguments remain, as coreutils does.
fn printf(args: &[&str]) -> Outcome {
    let Some((format, mut rest)) = args.split_first() else {
        return Outcome::fail(
            1,
            "printf: missing operand\nTry 'printf --help' for more information.\n",
        );
    };
    let mut out = String::new();
    loop {
        let mut used = 0;
        let mut chars = format.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('\\') => out.push('\\'),
                    Some(x) => {
                        out.push('\\');
                        out.push(x);
                    }
                    None => out.push('\\'),
                },
                '%' => match chars.next() {
                    Some('%') => out.push('%'),
                    Some('s') => {
                        out.push_str(rest.get(used).copied().unwrap_or_default());
                        used += 1;
                    }
                    Some('d') => {
                        let arg = rest.get(used).copied().unwrap_or("0");
                        match arg.parse::<i64>() {
                            Ok(n) => out.push_str(&n.to_string()),
                            Err(_) => {
                                return Outcome {
                                    stdout: out.into_bytes(),
                                    stderr: format!("printf: '{arg}': expected a numeric value\n")
                                        .into_bytes(),
                                    exit_code: 1,
                                    run_time: QUICK,
                                }
                            }
                        }
                        used += 1;
                    }
                    Some(x) => {
                        out.push('%');
                        out.push(x);
                    }
                    None => out.push('%'),
                },
                c => out.push(c),
            }
        }
        if used == 0 || used >= rest.len() {
            break;
        }
        rest = &rest[used..];
    }
    Outcome::ok(out)
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

/// A directory exists when a file lies below it (see [`super::os::GuestOs::is_dir`]).
fn is_dir(os: &super::os::GuestOs, path: &str) -> bool {
    os.is_dir(path)
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

/// One token of a `sh -c` script.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    /// A word with an unquoted `*` or `?`: a pattern matched against the guest's files
    /// when the command runs (kept as it is when nothing matches, as sh does).
    Glob(String),
    /// `|`, `||`, `&&`, `;` (a newline counts as `;`).
    Op(&'static str),
    /// A redirection of file descriptor `fd`; the target word follows, except for `Dup`.
    Redir {
        fd: u8,
        kind: RedirKind,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum RedirKind {
    /// `>`
    Write,
    /// `>>`
    Append,
    /// `<`
    Read,
    /// `>&N`
    Dup(u8),
}

/// Split a script into words (single and double quotes, backslashes, `~` as `/root`),
/// operators and redirections. `None` = something the simulated shell does not take:
/// parameter and command expansions (`$`, backquotes), subshells, background jobs,
/// here-documents.
fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let chars: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut globby = false;
    let mut i = 0;
    let flush = |toks: &mut Vec<Tok>,
                 cur: &mut String,
                 in_word: &mut bool,
                 quoted: &mut bool,
                 globby: &mut bool| {
        if *in_word {
            let w = std::mem::take(cur);
            toks.push(if *globby { Tok::Glob(w) } else { Tok::Word(w) });
        }
        *in_word = false;
        *quoted = false;
        *globby = false;
    };
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\'' => {
                in_word = true;
                quoted = true;
                loop {
                    let x = *chars.get(i)?;
                    i += 1;
                    if x == '\'' {
                        break;
                    }
                    cur.push(x);
                }
            }
            '"' => {
                in_word = true;
                quoted = true;
                loop {
                    let x = *chars.get(i)?;
                    i += 1;
                    match x {
                        '"' => break,
                        '$' | '`' => return None,
                        '\\' => {
                            let y = *chars.get(i)?;
                            i += 1;
                            if !matches!(y, '"' | '\\' | '$' | '`' | '\n') {
                                cur.push('\\');
                            }
                            if y != '\n' {
                                cur.push(y);
                            }
                        }
                        x => cur.push(x),
                    }
                }
            }
            '\\' => {
                in_word = true;
                quoted = true;
                let y = *chars.get(i)?;
                i += 1;
                if y != '\n' {
                    cur.push(y);
                }
            }
            '$' | '`' | '(' | ')' => return None,
            '*' | '?' => {
                in_word = true;
                globby = true;
                cur.push(c);
            }
            '#' if !in_word => {
                // A comment runs to the end of the line.
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '~' if !in_word
                && chars
                    .get(i)
                    .is_none_or(|n| *n == '/' || n.is_whitespace() || ";|&<>".contains(*n)) =>
            {
                // The tilde prefix: root's home (qemu-ga runs as root).
                in_word = true;
                cur.push_str("/root");
            }
            '\n' | ';' => {
                flush(&mut toks, &mut cur, &mut in_word, &mut quoted, &mut globby);
                if chars.get(i) == Some(&';') {
                    return None; // `;;` belongs to case
                }
                toks.push(Tok::Op(";"));
            }
            '|' => {
                flush(&mut toks, &mut cur, &mut in_word, &mut quoted, &mut globby);
                if chars.get(i) == Some(&'|') {
                    i += 1;
                    toks.push(Tok::Op("||"));
                } else {
                    toks.push(Tok::Op("|"));
                }
            }
            '&' => {
                if chars.get(i) != Some(&'&') {
                    return None; // a background job, or bash's `&>`
                }
                i += 1;
                flush(&mut toks, &mut cur, &mut in_word, &mut quoted, &mut globby);
                toks.push(Tok::Op("&&"));
            }
            '>' | '<' => {
                // `2>`: a lone unquoted digit right before the operator names the fd.
                let fd = if in_word && !quoted && (cur == "1" || cur == "2") {
                    let fd = if cur == "1" { 1 } else { 2 };
                    cur.clear();
                    in_word = false;
                    fd
                } else {
                    flush(&mut toks, &mut cur, &mut in_word, &mut quoted, &mut globby);
                    if c == '<' {
                        0
                    } else {
                        1
                    }
                };
                let kind = if c == '<' {
                    if matches!(chars.get(i), Some('<' | '>' | '&')) || fd != 0 {
                        return None;
                    }
                    RedirKind::Read
                } else {
                    match chars.get(i) {
                        Some('>') => {
                            i += 1;
                            RedirKind::Append
                        }
                        Some('&') => {
                            let n = match chars.get(i + 1) {
                                Some('1') => 1,
                                Some('2') => 2,
                                _ => return None,
                            };
                            i += 2;
                            RedirKind::Dup(n)
                        }
                        Some('|') => return None,
                        _ => RedirKind::Write,
                    }
                };
                toks.push(Tok::Redir { fd, kind });
            }
            c if c.is_whitespace() => {
                flush(&mut toks, &mut cur, &mut in_word, &mut quoted, &mut globby)
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    flush(&mut toks, &mut cur, &mut in_word, &mut quoted, &mut globby);
    Some(toks)
}

/// Where a redirection sends a file descriptor.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Write(String),
    Append(String),
    Read(String),
    Dup(u8),
}

/// One simple command: its words and redirections (in order).
#[derive(Debug, Clone, Default, PartialEq)]
struct Cmd {
    words: Vec<String>,
    /// Indexes of the words that are patterns ([`Tok::Glob`]).
    globs: Vec<usize>,
    redirs: Vec<(u8, Target)>,
}

impl Cmd {
    fn is_empty(&self) -> bool {
        self.words.is_empty() && self.redirs.is_empty()
    }
}

/// A list of pipelines, each with the operator before it (`;` for the first).
type Script = Vec<(&'static str, Vec<Cmd>)>;

fn parse(toks: Vec<Tok>) -> Option<Script> {
    let mut items: Script = Vec::new();
    let mut pipeline: Vec<Cmd> = Vec::new();
    let mut cmd = Cmd::default();
    let mut conn = ";";
    let mut it = toks.into_iter();
    while let Some(t) = it.next() {
        let is_glob = matches!(t, Tok::Glob(_));
        match t {
            Tok::Word(w) | Tok::Glob(w) => {
                if cmd.words.is_empty() && w.contains('=') && !w.starts_with('=') {
                    return None; // a variable assignment
                }
                if is_glob {
                    cmd.globs.push(cmd.words.len());
                }
                cmd.words.push(w);
            }
            Tok::Redir { fd, kind } => {
                let target = match kind {
                    RedirKind::Dup(n) => Target::Dup(n),
                    k => {
                        let Some(Tok::Word(path) | Tok::Glob(path)) = it.next() else {
                            return None;
                        };
                        match k {
                            RedirKind::Write => Target::Write(path),
                            RedirKind::Append => Target::Append(path),
                            _ => Target::Read(path),
                        }
                    }
                };
                cmd.redirs.push((fd, target));
            }
            Tok::Op("|") => {
                if cmd.is_empty() {
                    return None;
                }
                pipeline.push(std::mem::take(&mut cmd));
            }
            Tok::Op(op) => {
                if cmd.is_empty() {
                    if op == ";" && pipeline.is_empty() && conn == ";" {
                        continue; // an empty line
                    }
                    return None;
                }
                pipeline.push(std::mem::take(&mut cmd));
                items.push((conn, std::mem::take(&mut pipeline)));
                conn = op;
            }
        }
    }
    if !cmd.is_empty() {
        pipeline.push(cmd);
    } else if !pipeline.is_empty() || conn != ";" {
        return None; // ends in `|`, `&&` or `||`
    }
    if !pipeline.is_empty() {
        items.push((conn, pipeline));
    }
    Some(items)
}

/// Where a file descriptor of a command goes.
#[derive(Debug, Clone, PartialEq)]
enum Fd {
    /// The shell's stdout (or the next command of the pipe).
    Out,
    /// The shell's stderr.
    Err,
    File(String),
    Null,
}

/// What one command of a script left.
struct Step {
    out: Vec<u8>,
    err: Vec<u8>,
    code: i32,
    time: f64,
}

/// The shell's own error about a redirection target (dash: exit 2; bash: exit 1).
fn redirect_error(bash: bool, path: &str, dash_text: &str, why: &str) -> Step {
    let (err, code) = if bash {
        (format!("bash: line 1: {path}: {why}\n"), 1)
    } else {
        (format!("sh: 1: {dash_text} {path}: {why}\n"), 2)
    };
    Step {
        out: Vec::new(),
        err: err.into_bytes(),
        code,
        time: QUICK,
    }
}

/// Run one simple command with its redirections (files are opened, and truncated for
/// `>`, before it runs, in the order written).
fn run_cmd(
    st: &mut SimState,
    vmid: u32,
    bash: bool,
    cmd: &Cmd,
    stdin: &[u8],
    now: Instant,
) -> Step {
    let mut fd1 = Fd::Out;
    let mut fd2 = Fd::Err;
    let mut input: Option<Vec<u8>> = None;
    {
        let Some(g) = st.guests.get_mut(&vmid) else {
            return Step {
                out: Vec::new(),
                err: Vec::new(),
                code: 1,
                time: QUICK,
            };
        };
        let os = &mut g.os;
        for (fd, t) in &cmd.redirs {
            let target = match t {
                Target::Dup(1) => fd1.clone(),
                Target::Dup(_) => fd2.clone(),
                Target::Read(p) => {
                    let abs = super::admin::absolute(p);
                    match os.files.get(&abs) {
                        Some(f) => input = Some(f.content.clone()),
                        None if os.is_dir(&abs) => input = Some(Vec::new()),
                        None if bash => {
                            return redirect_error(true, p, "", "No such file or directory")
                        }
                        None => return redirect_error(false, p, "cannot open", "No such file"),
                    }
                    continue;
                }
                Target::Write(p) | Target::Append(p) if p == "/dev/null" => Fd::Null,
                Target::Write(p) | Target::Append(p) => {
                    let abs = super::admin::absolute(p);
                    if os.is_dir(&abs) {
                        return redirect_error(bash, p, "cannot create", "Is a directory");
                    }
                    if os.parent_is_file(&abs) {
                        return redirect_error(bash, p, "cannot create", "Not a directory");
                    }
                    if !os.parent_exists(&abs) {
                        let why = if bash {
                            "No such file or directory"
                        } else {
                            "Directory nonexistent"
                        };
                        return redirect_error(bash, p, "cannot create", why);
                    }
                    let f = os.files.entry(abs.clone()).or_insert(super::os::File {
                        content: Vec::new(),
                        mode: 0o644,
                    });
                    if matches!(t, Target::Write(_)) {
                        f.content.clear();
                    }
                    Fd::File(abs)
                }
            };
            if *fd == 2 {
                fd2 = target;
            } else {
                fd1 = target;
            }
        }
    }
    if cmd.words.is_empty() {
        return Step {
            out: Vec::new(),
            err: Vec::new(),
            code: 0,
            time: QUICK,
        };
    }
    let stdin = input.as_deref().unwrap_or(stdin);
    let words: Vec<String> = match st.guests.get(&vmid) {
        Some(g) => cmd
            .words
            .iter()
            .enumerate()
            .flat_map(|(i, w)| {
                let found = if cmd.globs.contains(&i) {
                    glob(&g.os, w)
                } else {
                    Vec::new()
                };
                if found.is_empty() {
                    vec![w.clone()]
                } else {
                    found
                }
            })
            .collect(),
        None => cmd.words.clone(),
    };
    let o = match run_from(st, vmid, &words, stdin, now) {
        Ok((o, Source::Builtin | Source::Table)) => o,
        // Inside a shell a missing program is the shell's error, not a spawn failure.
        Ok((_, Source::NotFound)) | Err(_) => {
            let text = if bash {
                format!("bash: line 1: {}: command not found\n", words[0])
            } else {
                format!("sh: 1: {}: not found\n", words[0])
            };
            Outcome::fail(127, text)
        }
    };
    let mut step = Step {
        out: Vec::new(),
        err: Vec::new(),
        code: o.exit_code,
        time: o.run_time,
    };
    for (fd, bytes) in [(&fd1, o.stdout), (&fd2, o.stderr)] {
        match fd {
            Fd::Out => step.out.extend_from_slice(&bytes),
            Fd::Err => step.err.extend_from_slice(&bytes),
            Fd::Null => {}
            // A file the command itself removed is gone (its data with it).
            Fd::File(path) => {
                if let Some(f) = st
                    .guests
                    .get_mut(&vmid)
                    .and_then(|g| g.os.files.get_mut(path))
                {
                    f.content.extend_from_slice(&bytes);
                }
            }
        }
    }
    step
}

/// The paths (files and directories) a pattern with `*` and `?` matches, sorted; a
/// relative pattern is taken from `/` and answers relative paths. `*` and `?` do not
/// match `/` nor a leading `.`.
fn glob(os: &super::os::GuestOs, pattern: &str) -> Vec<String> {
    let relative = !pattern.starts_with('/');
    let pat: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    let mut paths: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut add_with_parents = |p: &str| {
        let mut cur = p;
        while cur.len() > 1 {
            paths.insert(cur.to_owned());
            cur = cur.rsplit_once('/').map_or("/", |(a, _)| a);
        }
    };
    for p in os.files.keys() {
        add_with_parents(p);
    }
    for d in os
        .dirs
        .iter()
        .map(String::as_str)
        .chain(super::os::STANDARD_DIRS.iter().copied())
    {
        add_with_parents(d);
    }
    paths
        .into_iter()
        .filter(|p| {
            let parts: Vec<&str> = p.split('/').filter(|x| !x.is_empty()).collect();
            parts.len() == pat.len() && parts.iter().zip(&pat).all(|(n, q)| wildcard(q, n))
        })
        .map(|p| if relative { p[1..].to_owned() } else { p })
        .collect()
}

/// Does one path component `name` match `pat` (`*`, `?`, literal characters)?
fn wildcard(pat: &str, name: &str) -> bool {
    if name.starts_with('.') && !pat.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matching with one backtrack point for the last `*`.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some('?') => {
                pi += 1;
                ni += 1;
            }
            Some(c) if *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `sh -c SCRIPT` (also `bash`, `dash`): simple commands with words in single or double
/// quotes, pipes (`|`), lists (`;`, `&&`, `||`, newlines), redirections (`>`, `>>`,
/// `<`, `2>`, `2>>`, `2>&1`, `>&2`, `/dev/null`) and comments. Each command's stdout
/// is the next one's stdin in a pipe; the exit code is the last pipeline's. A script
/// with anything else (`$` and backquote expansions, subshells, background jobs) is
/// `None`: only the command table knows its answer. Unquoted `*` and `?` match the
/// guest's files when the command runs; `~` is `/root`.
fn shell(
    st: &mut SimState,
    vmid: u32,
    sh: &str,
    args: &[&str],
    stdin: &[u8],
    now: Instant,
) -> Option<Outcome> {
    let ["-c", script, ..] = args else {
        return None;
    };
    let items = parse(tokenize(script)?)?;
    let bash = basename(sh) == "bash";
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut status = 0;
    let mut time = 0.0;
    for (conn, pipeline) in &items {
        let go = match *conn {
            "&&" => status == 0,
            "||" => status != 0,
            _ => true,
        };
        if !go {
            continue;
        }
        let mut input = stdin.to_vec();
        let mut pipe_time: f64 = 0.0;
        for cmd in pipeline {
            let step = run_cmd(st, vmid, bash, cmd, &input, now);
            stderr.extend_from_slice(&step.err);
            input = step.out;
            status = step.code;
            pipe_time = pipe_time.max(step.time);
        }
        stdout.extend_from_slice(&input);
        time += pipe_time;
    }
    Some(Outcome {
        stdout,
        stderr,
        exit_code: status,
        run_time: time.max(QUICK),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(script: &str) -> Option<Vec<String>> {
        let items = parse(tokenize(script)?)?;
        let [(_, pipeline)] = items.as_slice() else {
            return None;
        };
        let [cmd] = pipeline.as_slice() else {
            return None;
        };
        Some(cmd.words.clone())
    }

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            words(r#"curl -s -w '%{http_code}' "a b" c\ d"#).unwrap(),
            vec!["curl", "-s", "-w", "%{http_code}", "a b", "c d"]
        );
        assert!(tokenize("echo 'open").is_none());
    }

    #[test]
    fn printf_formats_like_coreutils() {
        let text = |args: &[&str]| String::from_utf8(printf(args).stdout).unwrap();
        assert_eq!(text(&["a\\tb\\n"]), "a\tb\n");
        assert_eq!(text(&["%s=%d%%\\n", "x", "5"]), "x=5%\n");
        assert_eq!(text(&["%s\\n", "a", "b"]), "a\nb\n");
        let bad = printf(&["%d", "x"]);
        assert_eq!(bad.exit_code, 1);
        assert_eq!(printf(&[]).exit_code, 1);
    }

    #[test]
    fn patterns_match_the_guests_files_like_sh() {
        assert!(wildcard("*.log", "a.log"));
        assert!(wildcard("a?c", "abc"));
        assert!(wildcard("*", "x"));
        assert!(!wildcard("*", ".hidden"));
        assert!(!wildcard("*.log", "a.txt"));
        assert!(wildcard("a*b*c", "aXbYbc"));
        let mut os = super::super::os::GuestOs::seeded("s1");
        os.apply_json(&serde_json::json!({"files": {
            "/tmp/a.log": {"content": ""}, "/tmp/b.log": {"content": ""},
            "/tmp/c.txt": {"content": ""}, "/tmp/.h.log": {"content": ""}}}))
            .unwrap();
        assert_eq!(glob(&os, "/tmp/*.log"), vec!["/tmp/a.log", "/tmp/b.log"]);
        assert_eq!(glob(&os, "tmp/?.txt"), vec!["tmp/c.txt"]);
        assert!(glob(&os, "/nope/*").is_empty());
        assert!(glob(&os, "/etc/host*").contains(&"/etc/hostname".to_owned()));
    }

    #[test]
    fn scripts_parse_into_lists_pipes_and_redirections() {
        let items =
            parse(tokenize("echo 'a|b' > /x; cat /x | head -c 1 && rm -f /x 2>&1").unwrap())
                .unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].0, ";");
        assert_eq!(items[0].1[0].words, vec!["echo", "a|b"]);
        assert_eq!(items[0].1[0].redirs, vec![(1, Target::Write("/x".into()))]);
        assert_eq!(items[1].1.len(), 2);
        assert_eq!(items[2].0, "&&");
        assert_eq!(items[2].1[0].redirs, vec![(2, Target::Dup(1))]);
        let items = parse(tokenize("echo x 2>> /log >>/out").unwrap()).unwrap();
        assert_eq!(
            items[0].1[0].redirs,
            vec![
                (2, Target::Append("/log".into())),
                (1, Target::Append("/out".into()))
            ]
        );
        // A quoted 2 is a word, not a file descriptor.
        assert_eq!(
            parse(tokenize("echo '2'>/x").unwrap()).unwrap()[0].1[0].words,
            vec!["echo", "2"]
        );
        // Patterns and the tilde.
        let items = parse(tokenize("rm -f /tmp/*.log ~/x 'a*' ?").unwrap()).unwrap();
        let cmd = &items[0].1[0];
        assert_eq!(
            cmd.words,
            vec!["rm", "-f", "/tmp/*.log", "/root/x", "a*", "?"]
        );
        assert_eq!(cmd.globs, vec![2, 5]);
        for unsupported in [
            "echo $HOME",
            "(cd /)",
            "sleep 1 &",
            "cat <<EOF",
            "a |",
            "a &&",
            "x=1 true",
            "echo `id`",
        ] {
            assert!(
                tokenize(unsupported).and_then(parse).is_none(),
                "{unsupported}"
            );
        }
    }
}
