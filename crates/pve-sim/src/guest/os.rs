//! The inside of a simulated QEMU guest: files, network configuration a student adds,
//! services, a command table, logged-in users and the state of its guest agent.
//!
//! What a guest's NICs give it (interface names, MACs, the DHCP lease, the DHCP default
//! route, link state) is not stored here but derived from the config and the lease at
//! the moment it is looked at (see [`super::net`]), so a config change is seen at once
//! by the agent, the built-in commands and the firewall oracle alike.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use base64::Engine as _;

/// The gateway and resolver the lab's DHCP server hands out (never a lease: leases stop
/// at 10.10.253.x).
pub(crate) const LAB_GATEWAY: &str = "10.10.255.254";

/// The state of the guest agent inside a running VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgentState {
    /// qemu-ga answers.
    Running,
    /// qemu-ga is not running: `guest-ping` times out (`QEMU guest agent is not running`).
    Stopped,
    /// qemu-ga answers `guest-ping` but every other command times out.
    Hung,
}

impl AgentState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Hung => "hung",
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "running" => Ok(Self::Running),
            "stopped" => Ok(Self::Stopped),
            "hung" => Ok(Self::Hung),
            other => Err(format!(
                "agent: '{other}' (allowed: running, stopped, hung)"
            )),
        }
    }
}

/// One file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct File {
    pub content: Vec<u8>,
    /// Permission bits, e.g. `0o644`.
    pub mode: u32,
}

/// What kind of interface a student added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfKind {
    /// A NIC (`netX`); only addresses, state and master can be set.
    Ether,
    /// An 802.1Q sub-interface of `link`.
    Vlan,
    /// A Linux bridge.
    Bridge,
    /// A dummy interface.
    Dummy,
}

impl IfKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ether => "ether",
            Self::Vlan => "vlan",
            Self::Bridge => "bridge",
            Self::Dummy => "dummy",
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "ether" => Ok(Self::Ether),
            "vlan" => Ok(Self::Vlan),
            "bridge" => Ok(Self::Bridge),
            "dummy" => Ok(Self::Dummy),
            other => Err(format!("'{other}' (allowed: ether, vlan, bridge, dummy)")),
        }
    }
}

/// An interface as configured inside the guest. For a NIC's name (`ens18`, …) this is
/// an overlay: its static addresses, admin state and bridge master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Iface {
    pub kind: IfKind,
    /// The parent of a VLAN sub-interface.
    pub link: Option<String>,
    pub vlan: Option<u16>,
    /// MAC of a VLAN/bridge/dummy (a VLAN defaults to its parent's, a bridge to its
    /// first port's).
    pub mac: Option<String>,
    /// Static addresses, `ADDR/PREFIX`.
    pub addresses: Vec<(IpAddr, u8)>,
    /// Administratively up (`ip link set … up`).
    pub up: bool,
    /// The bridge this interface is a port of.
    pub master: Option<String>,
    pub mtu: u32,
}

/// A static route a student added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// `default` or `ADDR/PREFIX`.
    pub dst: String,
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    pub metric: Option<u32>,
}

/// Whether systemd starts a unit at boot (`systemctl is-enabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnitFile {
    Enabled,
    Disabled,
    /// Linked to `/dev/null`: cannot be started.
    Masked,
}

impl UnitFile {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::Masked => "masked",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "enabled" => Some(Self::Enabled),
            "disabled" => Some(Self::Disabled),
            "masked" => Some(Self::Masked),
            _ => None,
        }
    }
}

/// A service listening on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Service {
    /// The systemd unit (`systemctl is-active UNIT`).
    pub unit: Option<String>,
    /// Listening (and the unit active).
    pub active: bool,
    /// Started at boot (`systemctl enable|disable`).
    pub enabled: bool,
    /// Linked to `/dev/null` (`systemctl mask|unmask`): cannot be started; unmasking
    /// brings back the enablement it had.
    pub masked: bool,
    /// What a TCP client reads first (SSH, SMTP …).
    pub banner: Option<String>,
    /// An HTTP server: status and body of every request.
    pub http: Option<(u16, String)>,
    /// A DNS server: name (lower case, with trailing dot) → type → records.
    pub dns: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl Service {
    /// What `systemctl is-enabled` says.
    pub(crate) fn unit_file(&self) -> UnitFile {
        if self.masked {
            UnitFile::Masked
        } else if self.enabled {
            UnitFile::Enabled
        } else {
            UnitFile::Disabled
        }
    }

    /// Is this the service of systemd unit `name` (`nginx` or `nginx.service`)?
    pub(crate) fn is_unit(&self, name: &str) -> bool {
        let want = name.strip_suffix(".service").unwrap_or(name);
        self.unit
            .as_deref()
            .is_some_and(|u| u.strip_suffix(".service").unwrap_or(u) == want)
    }
}

/// One entry of the command table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CommandResult {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
    /// Seconds (simulated) the command runs.
    pub run_time: f64,
}

/// A logged-in user (`guest-get-users`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoggedIn {
    pub user: String,
    pub login_time: f64,
}

/// A command started through `guest-exec`, until its status is reported once.
#[derive(Debug, Clone)]
pub(crate) struct Exec {
    pub done_at: Instant,
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// The guest's inside (everything a snapshot keeps, plus the running `guest-exec`s).
#[derive(Debug, Clone)]
pub(crate) struct GuestOs {
    pub files: BTreeMap<String, File>,
    pub interfaces: BTreeMap<String, Iface>,
    pub routes: BTreeMap<String, Route>,
    /// By `tcp/PORT` / `udp/PORT`.
    pub services: BTreeMap<String, Service>,
    pub commands: BTreeMap<Vec<String>, CommandResult>,
    pub users: Vec<LoggedIn>,
    pub agent: AgentState,
    /// Directories made with `mkdir` (other directories exist through the files in them
    /// or are part of the standard install, [`STANDARD_DIRS`]).
    pub dirs: BTreeSet<String>,
    /// What was undone by hand since the last boot (a boot brings it back).
    pub runtime: Runtime,
    /// Commands started with `guest-exec`, by pid (forgotten once reported finished).
    pub execs: BTreeMap<u32, Exec>,
    pub next_pid: u32,
}

/// Kernel state derived from the NICs that a command removed until the next boot:
/// `ip addr del|flush` of the DHCP lease, `ip route del` of a route the kernel or DHCP
/// made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Runtime {
    /// The DHCP lease was removed from the first NIC.
    pub lease_removed: bool,
    /// Derived routes deleted by hand, as `DST dev DEV`.
    pub removed_routes: BTreeSet<String>,
}

/// The directories of a fresh Debian 12 install that a simulated guest has even with no
/// file in them (other directories exist only through the files in them or `mkdir`).
pub(crate) const STANDARD_DIRS: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/etc/default",
    "/etc/network",
    "/etc/ssh",
    "/etc/systemd",
    "/etc/systemd/system",
    "/home",
    "/lib",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/local",
    "/usr/local/bin",
    "/usr/local/sbin",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/lib",
    "/var/log",
    "/var/tmp",
    "/var/www",
];

const OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL=\"https://www.debian.org/\"\nSUPPORT_URL=\"https://www.debian.org/support\"\nBUG_REPORT_URL=\"https://bugs.debian.org/\"\n";

/// The kernel `uname -r` and `guest-get-osinfo` report.
pub(crate) const KERNEL_RELEASE: &str = "6.1.0-28-amd64";
pub(crate) const KERNEL_VERSION: &str = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)";

impl GuestOs {
    /// A fresh Debian 12 install with host name `hostname`, DHCP on its first NIC and
    /// `sshd` listening.
    pub(crate) fn seeded(hostname: &str) -> Self {
        let mut files = BTreeMap::new();
        let mut put = |path: &str, text: String| {
            files.insert(
                path.to_owned(),
                File {
                    content: text.into_bytes(),
                    mode: 0o644,
                },
            );
        };
        put("/etc/hostname", format!("{hostname}\n"));
        put("/etc/os-release", OS_RELEASE.to_owned());
        put(
            "/etc/network/interfaces",
            "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\nallow-hotplug ens18\niface ens18 inet dhcp\n".to_owned(),
        );
        put(
            "/etc/resolv.conf",
            format!("domain lab\nsearch lab\nnameserver {LAB_GATEWAY}\n"),
        );
        put(
            "/etc/hosts",
            format!("127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
        );
        let mut services = BTreeMap::new();
        services.insert(
            "tcp/22".to_owned(),
            Service {
                unit: Some("ssh".into()),
                active: true,
                enabled: true,
                masked: false,
                banner: Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n".into()),
                http: None,
                dns: BTreeMap::new(),
            },
        );
        Self {
            files,
            interfaces: BTreeMap::new(),
            routes: BTreeMap::new(),
            services,
            commands: BTreeMap::new(),
            users: Vec::new(),
            agent: AgentState::Running,
            dirs: BTreeSet::new(),
            runtime: Runtime::default(),
            execs: BTreeMap::new(),
            next_pid: 1200,
        }
    }

    /// The copy a clone starts with: the template's inside, its own host name (set at
    /// first boot, as cloud-init does), nothing running.
    pub(crate) fn cloned_for(&self, hostname: &str) -> Self {
        let mut os = self.clone();
        os.execs.clear();
        os.users.clear();
        os.agent = AgentState::Running;
        os.write_hostname(hostname);
        os
    }

    /// Set `/etc/hostname` (keeping its mode).
    pub(crate) fn write_hostname(&mut self, hostname: &str) {
        let mode = self.files.get("/etc/hostname").map_or(0o644, |f| f.mode);
        self.files.insert(
            "/etc/hostname".into(),
            File {
                content: format!("{hostname}\n").into_bytes(),
                mode,
            },
        );
    }

    /// The host name: the first line of `/etc/hostname` (`localhost` without one).
    pub(crate) fn hostname(&self) -> String {
        self.files
            .get("/etc/hostname")
            .map(|f| String::from_utf8_lossy(&f.content).into_owned())
            .and_then(|s| s.lines().next().map(|l| l.trim().to_owned()))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".to_owned())
    }

    /// `nameserver` lines of `/etc/resolv.conf`.
    pub(crate) fn nameservers(&self) -> Vec<IpAddr> {
        self.files
            .get("/etc/resolv.conf")
            .map(|f| String::from_utf8_lossy(&f.content).into_owned())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .filter_map(|rest| rest.trim().parse().ok())
            .collect()
    }

    /// `/etc/os-release` as key → unquoted value.
    pub(crate) fn os_release(&self) -> BTreeMap<String, String> {
        self.files
            .get("/etc/os-release")
            .map(|f| String::from_utf8_lossy(&f.content).into_owned())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
            .collect()
    }

    /// Is `path` (absolute) a directory: `/`, a standard one, one made with `mkdir`, or
    /// one a file lies below?
    pub(crate) fn is_dir(&self, path: &str) -> bool {
        let trimmed = path.trim_end_matches('/');
        if trimmed.is_empty() {
            return path.starts_with('/');
        }
        let prefix = format!("{trimmed}/");
        STANDARD_DIRS.contains(&trimmed)
            || self.dirs.contains(trimmed)
            || self.files.keys().any(|k| k.starts_with(&prefix))
            || self.dirs.iter().any(|d| d.starts_with(&prefix))
    }

    /// Is a parent of `path` a file (so `path` is "Not a directory")?
    pub(crate) fn parent_is_file(&self, path: &str) -> bool {
        let mut p = path;
        while let Some((parent, _)) = p.rsplit_once('/') {
            if parent.is_empty() {
                return false;
            }
            if self.files.contains_key(parent) {
                return true;
            }
            p = parent;
        }
        false
    }

    /// Does the directory `path` is in exist?
    pub(crate) fn parent_exists(&self, path: &str) -> bool {
        match path.trim_end_matches('/').rsplit_once('/') {
            Some(("", _)) => true,
            Some((parent, _)) => self.is_dir(parent),
            None => false,
        }
    }

    /// The service on `proto/port` if it is listening.
    pub(crate) fn listening(&self, proto: &str, port: u16) -> Option<&Service> {
        self.services
            .get(&format!("{proto}/{port}"))
            .filter(|s| s.active)
    }

    /// Register a finished-at-`done_at` command and return its pid.
    pub(crate) fn start_exec(&mut self, exec: Exec) -> u32 {
        self.next_pid = self.next_pid.wrapping_add(1).max(1000);
        let pid = self.next_pid;
        self.execs.insert(pid, exec);
        pid
    }

    /// Everything a snapshot keeps (not the running commands).
    pub(crate) fn snapshot(&self) -> Self {
        let mut os = self.clone();
        os.execs.clear();
        os
    }

    /// `GET /_sim/guests/{vmid}/state` (without the derived network, added by the caller).
    pub(crate) fn to_json(&self) -> Value {
        let files: Map<String, Value> = self
            .files
            .iter()
            .map(|(p, f)| (p.clone(), file_json(f)))
            .collect();
        let interfaces: Map<String, Value> = self
            .interfaces
            .iter()
            .map(|(n, i)| (n.clone(), iface_json(i)))
            .collect();
        let routes: Map<String, Value> = self
            .routes
            .iter()
            .map(|(d, r)| {
                let mut m = Map::new();
                if let Some(v) = r.via {
                    m.insert("via".into(), json!(v.to_string()));
                }
                if let Some(d) = &r.dev {
                    m.insert("dev".into(), json!(d));
                }
                if let Some(x) = r.metric {
                    m.insert("metric".into(), json!(x));
                }
                (d.clone(), Value::Object(m))
            })
            .collect();
        let services: Map<String, Value> = self
            .services
            .iter()
            .map(|(k, s)| (k.clone(), service_json(s)))
            .collect();
        let commands: Vec<Value> = self
            .commands
            .iter()
            .map(|(argv, c)| {
                json!({
                    "argv": argv,
                    "stdout": String::from_utf8_lossy(&c.stdout),
                    "stderr": String::from_utf8_lossy(&c.stderr),
                    "exit_code": c.exit_code,
                    "run_time": c.run_time,
                })
            })
            .collect();
        let users: Vec<Value> = self
            .users
            .iter()
            .map(|u| json!({"user": u.user, "login-time": u.login_time}))
            .collect();
        json!({
            "files": files,
            "dirs": self.dirs,
            "interfaces": interfaces,
            "routes": routes,
            "services": services,
            "commands": commands,
            "users": users,
            "agent": self.agent.as_str(),
        })
    }

    /// Apply a `PUT /_sim/guests/{vmid}/state` body: only what it names changes. A
    /// `null` value removes a file, interface, route or service; a command item with
    /// `"remove": true` removes that argv. Checked completely before anything changes.
    pub(crate) fn apply_json(&mut self, body: &Value) -> Result<(), String> {
        let obj = body
            .as_object()
            .ok_or("the body must be a JSON object (keys: files, dirs, interfaces, routes, services, commands, users, agent)")?;
        let mut next = self.clone();
        for (key, value) in obj {
            match key.as_str() {
                "files" => {
                    for (path, v) in object(value, "files")? {
                        if !path.starts_with('/') {
                            return Err(format!("files: '{path}' is not an absolute path"));
                        }
                        if v.is_null() {
                            next.files.remove(path);
                        } else {
                            let old = next.files.get(path).cloned();
                            next.files
                                .insert(path.clone(), parse_file(path, v, old.as_ref())?);
                        }
                    }
                }
                "dirs" => {
                    let items = value
                        .as_array()
                        .ok_or("dirs: must be an array of absolute paths (it replaces the directories made with mkdir)")?;
                    next.dirs = items
                        .iter()
                        .map(|d| match d.as_str() {
                            Some(p) if p.starts_with('/') && p.len() > 1 => {
                                Ok(p.trim_end_matches('/').to_owned())
                            }
                            _ => Err(format!("dirs: {d} is not an absolute path")),
                        })
                        .collect::<Result<_, String>>()?;
                }
                "interfaces" => {
                    for (name, v) in object(value, "interfaces")? {
                        check_ifname(name)?;
                        if v.is_null() {
                            next.interfaces.remove(name);
                        } else {
                            let old = next.interfaces.get(name).cloned();
                            next.interfaces
                                .insert(name.clone(), parse_iface(name, v, old.as_ref())?);
                        }
                    }
                }
                "routes" => {
                    for (dst, v) in object(value, "routes")? {
                        let dst = normalize_dst(dst)?;
                        if v.is_null() {
                            next.routes.remove(&dst);
                        } else {
                            let r = parse_route(&dst, v)?;
                            next.routes.insert(dst, r);
                        }
                    }
                }
                "services" => {
                    for (k, v) in object(value, "services")? {
                        let k = normalize_service_key(k)?;
                        if v.is_null() {
                            next.services.remove(&k);
                        } else {
                            let old = next.services.get(&k).cloned();
                            let s = parse_service(&k, v, old.as_ref())?;
                            next.services.insert(k, s);
                        }
                    }
                }
                "commands" => {
                    let items = value
                        .as_array()
                        .ok_or("commands: must be an array of {argv, stdout, stderr, exit_code, run_time}")?;
                    for item in items {
                        let (argv, result) = parse_command(item)?;
                        match result {
                            Some(r) => next.commands.insert(argv, r),
                            None => next.commands.remove(&argv),
                        };
                    }
                }
                "users" => {
                    let items = value
                        .as_array()
                        .ok_or("users: must be an array of {user, login-time}")?;
                    next.users = items
                        .iter()
                        .map(|u| {
                            let user = u["user"]
                                .as_str()
                                .filter(|s| !s.is_empty())
                                .ok_or("users: every item needs a non-empty 'user'")?;
                            Ok(LoggedIn {
                                user: user.to_owned(),
                                login_time: u["login-time"].as_f64().unwrap_or(0.0),
                            })
                        })
                        .collect::<Result<_, String>>()?;
                }
                "agent" => {
                    next.agent = AgentState::parse(
                        value
                            .as_str()
                            .ok_or("agent: must be a string (running, stopped, hung)")?,
                    )?;
                }
                other => {
                    return Err(format!(
                        "unknown key '{other}' (allowed: files, dirs, interfaces, routes, services, commands, users, agent)"
                    ))
                }
            }
        }
        *self = next;
        Ok(())
    }
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{what}: must be an object keyed by name (null removes an entry)"))
}

/// The SHA-256 of some bytes, lower-case hex (as `sha256sum` prints it).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn file_json(f: &File) -> Value {
    let mut m = Map::new();
    match std::str::from_utf8(&f.content) {
        Ok(text) => m.insert("content".into(), json!(text)),
        Err(_) => m.insert(
            "content_base64".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(&f.content)),
        ),
    };
    m.insert("mode".into(), json!(format!("{:04o}", f.mode)));
    m.insert("size".into(), json!(f.content.len()));
    m.insert("sha256".into(), json!(sha256_hex(&f.content)));
    Value::Object(m)
}

fn parse_file(path: &str, v: &Value, old: Option<&File>) -> Result<File, String> {
    let o = v.as_object().ok_or_else(|| {
        format!("files: '{path}' must be an object {{content|content_base64, mode}} or null")
    })?;
    let content = match (o.get("content"), o.get("content_base64")) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "files: '{path}' has both content and content_base64 (give one)"
            ))
        }
        (Some(c), None) => c
            .as_str()
            .ok_or_else(|| format!("files: '{path}' content must be a string"))?
            .as_bytes()
            .to_vec(),
        (None, Some(c)) => base64::engine::general_purpose::STANDARD
            .decode(
                c.as_str()
                    .ok_or_else(|| format!("files: '{path}' content_base64 must be a string"))?,
            )
            .map_err(|e| format!("files: '{path}' content_base64 is not base64: {e}"))?,
        (None, None) => match old {
            Some(f) => f.content.clone(),
            None => {
                return Err(format!(
                    "files: '{path}' is new and needs content or content_base64"
                ))
            }
        },
    };
    let mode = match o.get("mode") {
        None => old.map_or(0o644, |f| f.mode),
        Some(m) => parse_mode(m).ok_or_else(|| {
            format!("files: '{path}' mode {m} (allowed: an octal string such as \"0644\")")
        })?,
    };
    Ok(File { content, mode })
}

fn parse_mode(v: &Value) -> Option<u32> {
    let s = v.as_str()?;
    let m = u32::from_str_radix(s, 8).ok()?;
    (m <= 0o7777).then_some(m)
}

fn check_ifname(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "lo"
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "interfaces: '{name}' is not a valid interface name (1-15 of a-z, 0-9, '.', '-', '_'; not lo)"
        ))
    }
}

/// Parse `ADDR/PREFIX`.
pub(crate) fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (a, p) = s.split_once('/')?;
    let ip: IpAddr = a.parse().ok()?;
    let p: u8 = p.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (p <= max).then_some((ip, p))
}

fn parse_iface(name: &str, v: &Value, old: Option<&Iface>) -> Result<Iface, String> {
    let o = v
        .as_object()
        .ok_or_else(|| format!("interfaces: '{name}' must be an object or null"))?;
    let mut i = old.cloned().unwrap_or(Iface {
        kind: IfKind::Ether,
        link: None,
        vlan: None,
        mac: None,
        addresses: Vec::new(),
        up: true,
        master: None,
        mtu: 1500,
    });
    let err =
        |field: &str, allowed: &str| format!("interfaces: '{name}' {field} (allowed: {allowed})");
    for (k, val) in o {
        match k.as_str() {
            "kind" => {
                i.kind = IfKind::parse(val.as_str().unwrap_or_default())
                    .map_err(|e| format!("interfaces: '{name}' kind {e}"))?;
            }
            "link" => i.link = opt_str(val).map_err(|_| err("link", "a name or null"))?,
            "vlan" => {
                i.vlan = match val {
                    Value::Null => None,
                    v => Some(
                        v.as_u64()
                            .filter(|n| (1..=4094).contains(n))
                            .map(|n| n as u16)
                            .ok_or_else(|| err("vlan", "1-4094"))?,
                    ),
                }
            }
            "mac" => {
                i.mac = opt_str(val)
                    .map_err(|_| err("mac", "xx:xx:xx:xx:xx:xx"))?
                    .map(|m| m.to_lowercase());
                if let Some(m) = &i.mac {
                    if super::link_local(m).is_none() {
                        return Err(err("mac", "xx:xx:xx:xx:xx:xx"));
                    }
                }
            }
            "addresses" => {
                let list = val
                    .as_array()
                    .ok_or_else(|| err("addresses", "an array of \"ADDR/PREFIX\""))?;
                i.addresses = list
                    .iter()
                    .map(|a| {
                        a.as_str()
                            .and_then(parse_cidr)
                            .ok_or_else(|| err(&format!("address {a}"), "\"ADDR/PREFIX\""))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "state" => {
                i.up = match val.as_str() {
                    Some("up") => true,
                    Some("down") => false,
                    _ => return Err(err("state", "up, down")),
                }
            }
            "master" => i.master = opt_str(val).map_err(|_| err("master", "a bridge name or null"))?,
            "mtu" => {
                i.mtu = val
                    .as_u64()
                    .filter(|n| (68..=65535).contains(n))
                    .map(|n| n as u32)
                    .ok_or_else(|| err("mtu", "68-65535"))?
            }
            other => {
                return Err(format!(
                    "interfaces: '{name}' unknown field '{other}' (allowed: kind, link, vlan, mac, addresses, state, master, mtu)"
                ))
            }
        }
    }
    if i.kind == IfKind::Vlan {
        if i.vlan.is_none() {
            return Err(err("kind vlan needs vlan", "1-4094"));
        }
        if i.link.is_none() {
            // `eth1.10` names its parent.
            i.link = name.rsplit_once('.').map(|(p, _)| p.to_owned());
            if i.link.is_none() {
                return Err(err("kind vlan needs link", "the parent interface"));
            }
        }
    }
    Ok(i)
}

fn opt_str(v: &Value) -> Result<Option<String>, ()> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if !s.is_empty() => Ok(Some(s.clone())),
        _ => Err(()),
    }
}

fn normalize_dst(dst: &str) -> Result<String, String> {
    if dst == "default" {
        return Ok(dst.to_owned());
    }
    let (ip, p) = parse_cidr(dst)
        .or_else(|| {
            dst.parse::<IpAddr>()
                .ok()
                .map(|ip| (ip, if ip.is_ipv4() { 32 } else { 128 }))
        })
        .ok_or_else(|| format!("routes: '{dst}' (allowed: default or ADDR/PREFIX)"))?;
    Ok(format!("{}/{p}", super::net::network(ip, p)))
}

fn parse_route(dst: &str, v: &Value) -> Result<Route, String> {
    let o = v
        .as_object()
        .ok_or_else(|| format!("routes: '{dst}' must be an object {{via, dev, metric}} or null"))?;
    let mut r = Route {
        dst: dst.to_owned(),
        via: None,
        dev: None,
        metric: None,
    };
    for (k, val) in o {
        match k.as_str() {
            "via" | "gateway" => {
                r.via = Some(
                    val.as_str()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| format!("routes: '{dst}' via {val} is not an address"))?,
                )
            }
            "dev" => {
                r.dev = opt_str(val).map_err(|_| format!("routes: '{dst}' dev must be a name"))?
            }
            "metric" => {
                r.metric = Some(
                    val.as_u64()
                        .and_then(|m| u32::try_from(m).ok())
                        .ok_or_else(|| format!("routes: '{dst}' metric must be a number"))?,
                )
            }
            other => {
                return Err(format!(
                    "routes: '{dst}' unknown field '{other}' (allowed: via, dev, metric)"
                ))
            }
        }
    }
    if r.via.is_none() && r.dev.is_none() {
        return Err(format!("routes: '{dst}' needs via or dev"));
    }
    Ok(r)
}

fn normalize_service_key(k: &str) -> Result<String, String> {
    let (proto, port) = match k.split_once('/') {
        Some((p, n)) => (p, n),
        None => ("tcp", k),
    };
    let port: u16 =
        port.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
            format!("services: '{k}' (allowed: tcp/PORT, udp/PORT or PORT, 1-65535)")
        })?;
    if proto != "tcp" && proto != "udp" {
        return Err(format!("services: '{k}' (allowed protocols: tcp, udp)"));
    }
    Ok(format!("{proto}/{port}"))
}

fn service_json(s: &Service) -> Value {
    let mut m = Map::new();
    m.insert("active".into(), json!(s.active));
    if let Some(u) = &s.unit {
        m.insert("unit".into(), json!(u));
    }
    if s.unit_file() != UnitFile::Enabled {
        m.insert("unit_file".into(), json!(s.unit_file().as_str()));
    }
    if let Some(b) = &s.banner {
        m.insert("banner".into(), json!(b));
    }
    if let Some((status, body)) = &s.http {
        m.insert("http".into(), json!({"status": status, "body": body}));
    }
    if !s.dns.is_empty() {
        m.insert("dns".into(), json!(s.dns));
    }
    Value::Object(m)
}

fn parse_service(key: &str, v: &Value, old: Option<&Service>) -> Result<Service, String> {
    let o = v
        .as_object()
        .ok_or_else(|| format!("services: '{key}' must be an object or null"))?;
    let mut s = old.cloned().unwrap_or(Service {
        unit: None,
        active: true,
        enabled: true,
        masked: false,
        banner: None,
        http: None,
        dns: BTreeMap::new(),
    });
    for (k, val) in o {
        match k.as_str() {
            "unit" => s.unit = opt_str(val).map_err(|_| format!("services: '{key}' unit must be a name"))?,
            "active" => {
                s.active = val
                    .as_bool()
                    .ok_or_else(|| format!("services: '{key}' active must be true or false"))?
            }
            "unit_file" => {
                match val.as_str().and_then(UnitFile::parse) {
                    Some(UnitFile::Enabled) => (s.enabled, s.masked) = (true, false),
                    Some(UnitFile::Disabled) => (s.enabled, s.masked) = (false, false),
                    Some(UnitFile::Masked) => s.masked = true,
                    None => {
                        return Err(format!(
                            "services: '{key}' unit_file (allowed: enabled, disabled, masked)"
                        ))
                    }
                }
            }
            "banner" => s.banner = opt_str(val).map_err(|_| format!("services: '{key}' banner must be a string"))?,
            "http" => {
                s.http = match val {
                    Value::Null => None,
                    v => {
                        let status = v["status"]
                            .as_u64()
                            .filter(|n| (100..=599).contains(n))
                            .ok_or_else(|| format!("services: '{key}' http.status (allowed: 100-599)"))?;
                        let body = v["body"].as_str().unwrap_or_default().to_owned();
                        Some((status as u16, body))
                    }
                }
            }
            "dns" => {
                let mut dns = BTreeMap::new();
                for (name, types) in object(val, &format!("services: '{key}' dns"))? {
                    let mut by_type = BTreeMap::new();
                    for (t, recs) in object(types, &format!("services: '{key}' dns '{name}'"))? {
                        let recs = recs
                            .as_array()
                            .ok_or_else(|| format!("services: '{key}' dns '{name}' {t} must be an array of strings"))?
                            .iter()
                            .map(|r| r.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| format!("services: '{key}' dns '{name}' {t} must be an array of strings"))?;
                        by_type.insert(t.to_uppercase(), recs);
                    }
                    dns.insert(fqdn(name), by_type);
                }
                s.dns = dns;
            }
            other => {
                return Err(format!(
                    "services: '{key}' unknown field '{other}' (allowed: unit, active, unit_file, banner, http, dns)"
                ))
            }
        }
    }
    Ok(s)
}

/// `name` lower-cased with a trailing dot.
pub(crate) fn fqdn(name: &str) -> String {
    let n = name.to_lowercase();
    if n.ends_with('.') {
        n
    } else {
        format!("{n}.")
    }
}

fn parse_command(item: &Value) -> Result<(Vec<String>, Option<CommandResult>), String> {
    let argv: Vec<String> = item["argv"]
        .as_array()
        .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_owned)).collect())
        .filter(|a: &Vec<String>| !a.is_empty())
        .ok_or("commands: every item needs 'argv', a non-empty array of strings")?;
    if item["remove"].as_bool() == Some(true) {
        return Ok((argv, None));
    }
    let text = |k: &str| -> Result<Vec<u8>, String> {
        match &item[k] {
            Value::Null => Ok(Vec::new()),
            Value::String(s) => Ok(s.as_bytes().to_vec()),
            _ => Err(format!("commands: {argv:?} {k} must be a string")),
        }
    };
    let exit_code = match &item["exit_code"] {
        Value::Null => 0,
        v => v
            .as_i64()
            .filter(|c| (0..=255).contains(c))
            .ok_or_else(|| format!("commands: {argv:?} exit_code (allowed: 0-255)"))?
            as i32,
    };
    let run_time = match &item["run_time"] {
        Value::Null => 0.0,
        v => v
            .as_f64()
            .filter(|t| t.is_finite() && *t >= 0.0 && *t <= 86_400.0)
            .ok_or_else(|| format!("commands: {argv:?} run_time (allowed: 0-86400 seconds)"))?,
    };
    Ok((
        argv.clone(),
        Some(CommandResult {
            stdout: text("stdout")?,
            stderr: text("stderr")?,
            exit_code,
            run_time,
        }),
    ))
}

fn iface_json(i: &Iface) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), json!(i.kind.as_str()));
    if let Some(l) = &i.link {
        m.insert("link".into(), json!(l));
    }
    if let Some(v) = i.vlan {
        m.insert("vlan".into(), json!(v));
    }
    if let Some(mac) = &i.mac {
        m.insert("mac".into(), json!(mac));
    }
    m.insert(
        "addresses".into(),
        json!(i
            .addresses
            .iter()
            .map(|(a, p)| format!("{a}/{p}"))
            .collect::<Vec<_>>()),
    );
    m.insert("state".into(), json!(if i.up { "up" } else { "down" }));
    if let Some(b) = &i.master {
        m.insert("master".into(), json!(b));
    }
    m.insert("mtu".into(), json!(i.mtu));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_changes_only_what_it_names() {
        let mut os = GuestOs::seeded("s1");
        let before = os.clone();
        os.apply_json(&json!({"files": {"/root/a.txt": {"content": "hi\n"}}}))
            .unwrap();
        assert_eq!(os.files.len(), before.files.len() + 1);
        assert_eq!(os.files["/etc/hostname"], before.files["/etc/hostname"]);
        assert_eq!(os.services, before.services);
        os.apply_json(&json!({"interfaces": {"eth1.10": {"kind": "vlan", "vlan": 10, "addresses": ["192.168.10.1/24"]}}}))
            .unwrap();
        assert_eq!(os.interfaces["eth1.10"].link.as_deref(), Some("eth1"));
        assert_eq!(os.files["/root/a.txt"].content, b"hi\n");
        os.apply_json(&json!({"files": {"/root/a.txt": null}}))
            .unwrap();
        assert!(!os.files.contains_key("/root/a.txt"));
        assert!(os.interfaces.contains_key("eth1.10"));
    }

    #[test]
    fn a_bad_put_changes_nothing_and_names_the_input() {
        let mut os = GuestOs::seeded("s1");
        let before = os.to_json();
        let err = os
            .apply_json(&json!({"files": {"/x": {"content": "1"}}, "agent": "sleepy"}))
            .unwrap_err();
        assert!(
            err.contains("sleepy") && err.contains("running, stopped, hung"),
            "{err}"
        );
        assert_eq!(os.to_json(), before);
        let err = os
            .apply_json(&json!({"services": {"tcp/0": {}}}))
            .unwrap_err();
        assert!(err.contains("tcp/0"), "{err}");
        let err = os
            .apply_json(&json!({"interfaces": {"x": {"vlan": 5000}}}))
            .unwrap_err();
        assert!(err.contains("1-4094"), "{err}");
    }

    #[test]
    fn hostname_and_resolver_come_from_files() {
        let mut os = GuestOs::seeded("stud-01");
        assert_eq!(os.hostname(), "stud-01");
        assert_eq!(
            os.nameservers(),
            vec!["10.10.255.254".parse::<IpAddr>().unwrap()]
        );
        os.apply_json(
            &json!({"files": {"/etc/resolv.conf": {"content": "nameserver 10.10.0.1\n"}}}),
        )
        .unwrap();
        assert_eq!(
            os.nameservers(),
            vec!["10.10.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(os.os_release()["VERSION_ID"], "12");
    }
}
