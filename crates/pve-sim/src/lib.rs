//! `pve-sim`: an embeddable, faithful Proxmox VE API simulator for tests, demos and
//! benchmarks.
//!
//! It serves `/api2/json` with the same paths, parameters (validated against the
//! `pve-schema` extract), envelope, status codes, reason phrases and error texts as a
//! PVE 9.1 cluster: ticket/CSRF/token/TOTP authentication, asynchronous tasks with real
//! UPIDs, QEMU and LXC lifecycle with locks and races, the guest agent with a boot
//! delay and DHCP addresses, pools, the firewall, seeded fault injection, and an
//! introspection API under `/_sim/` (state, request counts, a firewall reachability
//! oracle, established TCP sessions between guests). The crate owns the HTTP side and the cluster state; the firewall model
//! lives in [`firewall`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use pve_sim::Simulator;
//!
//! let sim = Simulator::builder()
//!     .password("secret")
//!     .plain_http(true)
//!     .time_scale(0.01) // a 20 s boot takes 0.2 s
//!     .start()
//!     .await?;
//! let client = reqwest::Client::new();
//! let login: serde_json::Value = client
//!     .post(format!("{}/access/ticket", sim.base_url()))
//!     .form(&[("username", "root@pam"), ("password", "secret")])
//!     .send()
//!     .await?
//!     .json()
//!     .await?;
//! assert!(login["data"]["ticket"].as_str().is_some());
//! println!("{}", sim.state()["guests"]);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # SDN and layer-2 segments
//!
//! `/cluster/sdn` serves zones (`simple`, `vlan` modelled; other types stored), vnets
//! and subnets with pve-network's checks and error texts. Every edit is pending (the
//! plain lists show the edited config, `running=1` the committed one, `pending=1` the
//! difference as `state`/`pending`) until `PUT /cluster/sdn` commits it and forks a
//! `reloadnetworkall` task; when that task ends the nodes run the new vnets
//! ([`SimHandle::sdn`], `GET /_sim/sdn`, [`SimHandle::sdn_applies`]). `POST
//! /cluster/sdn/lock` hands out the global lock token every change then needs.
//!
//! A NIC sits on a segment: `vmbrN[+tag]` (vmbr0 untagged is the uplink, where the
//! teacher and all non-guest addresses are), an applied vnet (a `vlan` zone's vnet is
//! its zone bridge + tag; a `simple` zone's vnet is local to its node), or nothing (a
//! bridge that does not exist: no carrier). Guests reach each other only over a shared
//! segment or through one guest that has `/proc/sys/net/ipv4/ip_forward` = 1 and a NIC
//! on both (`isolate-ports` vnets keep their ports apart); the oracle and the guests'
//! probes judge the firewall with the NICs of that path. The lab DHCP lease is on the
//! first NIC on the uplink; a NIC on an applied vnet of a `dhcp=dnsmasq` simple zone
//! gets the next free address of its subnet's first `dhcp-range` (kept per MAC).
//!
//! # The simulated guest
//!
//! Every QEMU guest holds one model of its inside (the `guest` module docs have the
//! details): files (seeded with `/etc/hostname`, `/etc/os-release`,
//! `/etc/network/interfaces`, `/etc/resolv.conf`, `/etc/hosts`), the interfaces
//! (its NICs `ens18`, `ens19`, … from `netX` — MAC, `link_down`, the DHCP lease on the
//! first — plus what a student adds: static addresses, VLAN sub-interfaces, bridges),
//! static routes, services (`tcp/PORT`/`udp/PORT`: a banner, an HTTP status and body,
//! DNS records, a systemd unit), a command table and the state of its agent. The agent
//! API (`agent/exec`, `exec-status`, `file-read`, `file-write`, `info`, `get-osinfo`,
//! `get-users`, `network-get-interfaces`, `get-host-name`), the built-in commands
//! that read it (`ip -j [-d] addr|link|route`, `hostname`, `uname`, `cat`, `head -c|-n`,
//! `sha256sum`, `test`, `echo`, `printf`, `systemctl is-active|is-enabled`, `ping`, `nc -z`,
//! `dig`, `curl`), the built-in commands that change it — `rm [-f] [-r] PATH…`,
//! `touch`, `mkdir [-p]`, `systemctl start|stop|restart|enable|disable|mask|unmask
//! [--now] UNIT` (every port of the unit; `qemu-guest-agent` stops the agent),
//! `ip addr add|del ADDR/PFX dev DEV`, `ip addr flush dev DEV`, `ip link set [dev] DEV
//! up|down [mtu N]`, `ip link del DEV`, `ip route add|del DST [via GW] [dev DEV]
//! [metric N]`, `hostnamectl set-hostname NAME`, `hostname NAME` — each with the real
//! tool's output, error text and exit code, `sh -c` scripts (quoted words, `|`, `;`,
//! `&&`, `||`, `>`, `>>`, `<`, `2>`, `2>&1`), the firewall oracle's probes and
//! snapshots and clones all read and write that one model: a test or a check's mutant
//! that runs `systemctl stop nginx` in one guest closes port 80 for every other guest.
//! What `ip` removes that the NICs give (the DHCP lease, the kernel's and DHCP's
//! routes) comes back at the next boot. Anything else runs from the command table,
//! else exits 127 (`bash: NAME: command not found`). A clone — linked or full, of a
//! running guest too, or of a snapshot (`snapname`) — starts with its source's inside
//! (with its own host name) and shares nothing with it afterwards.
//!
//! `GET /_sim/guests/{vmid}/state` returns it; `PUT` (same body shape) changes only
//! what it names — a file by its path, an interface by its name, a route by its
//! destination, a service by `proto/port` (`unit_file`: `enabled`, `disabled` or
//! `masked`), a command by its argv, `dirs` (the directories made with `mkdir`, as a
//! whole list), `users`, `agent` —
//! and answers the new state (400 `{"error": "…"}` naming the input, and nothing
//! changed, when a part is wrong). `null` removes an entry; a command item with
//! `"remove": true` removes that argv. The answer also carries a read-only `view`
//! (what `ip -j -d addr` and `ip -j route` print now, and the host name).
//! [`SimHandle::guest_state`] and [`SimHandle::put_guest_state`] do the same in-process.
//!
//! ```json
//! {
//!   "files": {
//!     "/etc/hostname": {"content": "student07\n", "mode": "0644"},
//!     "/root/blob": {"content_base64": "AAEC"},
//!     "/tmp/old": null
//!   },
//!   "dirs": ["/srv/www"],
//!   "interfaces": {
//!     "eth1.10": {"kind": "vlan", "link": "ens18", "vlan": 10,
//!                 "addresses": ["192.168.10.1/24"], "state": "up"},
//!     "br0": {"kind": "bridge", "addresses": ["10.20.0.1/24"]},
//!     "ens19": {"master": "br0"}
//!   },
//!   "routes": {"192.168.50.0/24": {"via": "192.168.10.254", "dev": "eth1.10"}},
//!   "services": {
//!     "tcp/80": {"unit": "nginx", "http": {"status": 200, "body": "hello"}},
//!     "udp/53": {"unit": "bind9", "dns": {"www.lab.": {"A": ["10.10.0.5"]}}},
//!     "tcp/22": {"active": false, "unit_file": "disabled"}
//!   },
//!   "commands": [
//!     {"argv": ["nft", "list", "ruleset"], "stdout": "table inet filter {…}\n",
//!      "stderr": "", "exit_code": 0, "run_time": 0.2},
//!     {"argv": ["old"], "remove": true}
//!   ],
//!   "users": [{"user": "student", "login-time": 1733353200.5}],
//!   "agent": "running"
//! }
//! ```
//!
//! In a GET, every file also shows `size` and `sha256`, and binary content comes as
//! `content_base64`. `agent` is `running`, `stopped` (calls fail after 3 s with
//! `QEMU guest agent is not running`) or `hung` (the ping answers, every other call
//! fails after 5 s with `VM <id> qga command 'guest-<cmd>' failed - got timeout`);
//! both hold a pvedaemon worker meanwhile, and a restart brings the agent back.

mod access;
mod auth;
mod clone;
mod cluster;
mod config;
mod console;
pub mod error;
mod faults;
pub mod firewall;
mod firewall_api;
mod guest;
mod introspect;
mod lifecycle;
mod pools;
mod routing;
mod sdn;
mod server;
mod sim;
mod state;
mod tasks;
mod tls;

pub use access::route_permissions;
pub use lab_types::Secret;
pub use routing::{is_served, SERVED};
pub use sim::{totp_code, RequestFault, SimError, SimHandle, Simulator, SimulatorBuilder};

/// Endpoints of the schema extract the simulator deliberately does not serve, with the
/// reason (checked by the conformance test: every other extract endpoint is served).
pub const NOT_SERVED: &[(&str, &str, &str)] = &[];

/// The README's examples, compiled (and the runnable ones run) as doctests, so the
/// README cannot drift from the API.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
