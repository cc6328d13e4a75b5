//! What a probe asks, once a student's values are filled in: the contract between the
//! spec (which plans probes), the collector (which runs them) and the evidence (which
//! records them).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where a probe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Inside the student's guest, through its guest agent.
    Guest,
    /// Inside the teacher's guest (the one address the fence lets in), through its agent.
    Teacher,
    /// On the machine running labctl (outside probes only: ping, TCP, DNS, HTTP).
    Host,
}

impl Source {
    /// `guest`, `teacher` or `host`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Guest => "guest",
            Source::Teacher => "teacher",
            Source::Host => "host",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the guest agent is asked for by an [`Request::Agent`] probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentQuery {
    /// `guest-info`: the agent's version and commands.
    Info,
    /// `get-osinfo`.
    Osinfo,
    /// `get-users`: who is logged in.
    Users,
    /// `network-get-interfaces`.
    Network,
    /// `get-host-name`.
    Hostname,
}

/// A probe's request with every `{{…}}` filled in. The raw result of every kind is an
/// exit code, stdout and stderr ([`crate::Evidence`]); outside probes produce the same
/// shape wherever they run, so one parser reads both:
///
/// | kind | run in a guest as | stdout | exit |
/// |---|---|---|---|
/// | `exec` | the argv | the program's | the program's |
/// | `file` | agent `file-read` | the content | 0 |
/// | `agent` | the agent call | its JSON answer | 0 |
/// | `ping` | `ping -c 1 -W T HOST` | ping's | 0 = an answer came |
/// | `tcp` | `nc -z -v -w T HOST PORT` | nc's | 0 = connected |
/// | `dns` | `dig +short +time=T +tries=1 @SERVER NAME TYPE` | one answer a line | 0 = the server answered; 9 = no server |
/// | `http` | `curl -s -S -m T -w '\n%{http_code}' URL` | the body, a newline, the status (3 digits, `000` when no answer) | curl's |
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Request {
    /// A program and its arguments (no shell; use `["/bin/sh", "-c", "…"]` for one).
    Exec {
        /// The argv.
        argv: Vec<String>,
    },
    /// A file read through the agent.
    File {
        /// Absolute path in the guest.
        path: String,
    },
    /// An agent query.
    Agent {
        /// Which.
        query: AgentQuery,
    },
    /// One ICMP echo.
    Ping {
        /// Address or name.
        host: String,
    },
    /// A TCP connect.
    Tcp {
        /// Address or name.
        host: String,
        /// Port.
        port: u16,
    },
    /// A DNS question.
    Dns {
        /// The server asked (address or name).
        server: String,
        /// The name asked for.
        name: String,
        /// The record type (`A`, `AAAA`, `MX`, `TXT`, `CNAME`, `NS`, `PTR`, `SOA`, `SRV`).
        rtype: String,
    },
    /// An HTTP(S) GET.
    Http {
        /// The URL.
        url: String,
    },
}

impl Request {
    /// `exec`, `file`, `agent`, `ping`, `tcp`, `dns` or `http`.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Exec { .. } => "exec",
            Request::File { .. } => "file",
            Request::Agent { .. } => "agent",
            Request::Ping { .. } => "ping",
            Request::Tcp { .. } => "tcp",
            Request::Dns { .. } => "dns",
            Request::Http { .. } => "http",
        }
    }

    /// Whether the request looks from one machine at another (and may therefore run on
    /// the host); `exec`, `file` and `agent` only run inside a guest.
    pub fn is_network(&self) -> bool {
        matches!(
            self,
            Request::Ping { .. } | Request::Tcp { .. } | Request::Dns { .. } | Request::Http { .. }
        )
    }

    /// The argv that runs this request inside a guest (the table above); `None` for
    /// `file` and `agent`, which are agent calls of their own.
    pub fn guest_argv(&self, timeout: Duration) -> Option<Vec<String>> {
        // Whole seconds, at least 1: what the tools accept.
        let t = timeout.as_secs().max(1).to_string();
        let v = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        Some(match self {
            Request::Exec { argv } => argv.clone(),
            Request::File { .. } | Request::Agent { .. } => return None,
            Request::Ping { host } => v(&["ping", "-c", "1", "-W", &t, host]),
            Request::Tcp { host, port } => {
                v(&["nc", "-z", "-v", "-w", &t, host, &port.to_string()])
            }
            Request::Dns {
                server,
                name,
                rtype,
            } => v(&[
                "dig",
                "+short",
                &format!("+time={t}"),
                "+tries=1",
                &format!("@{server}"),
                name,
                rtype,
            ]),
            Request::Http { url } => {
                v(&["curl", "-s", "-S", "-m", &t, "-w", "\\n%{http_code}", url])
            }
        })
    }
}

impl fmt::Display for Request {
    /// One line for messages: the argv joined, or `file /etc/x`, `dns www.lab. A @10.0.0.1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Exec { argv } => write!(f, "{}", argv.join(" ")),
            Request::File { path } => write!(f, "file {path}"),
            Request::Agent { query } => write!(
                f,
                "agent {}",
                serde_json::to_string(query)
                    .unwrap_or_default()
                    .trim_matches('"')
            ),
            Request::Ping { host } => write!(f, "ping {host}"),
            Request::Tcp { host, port } => write!(f, "tcp {host}:{port}"),
            Request::Dns {
                server,
                name,
                rtype,
            } => write!(f, "dns {name} {rtype} @{server}"),
            Request::Http { url } => write!(f, "http {url}"),
        }
    }
}

/// Repeat a probe until the checks that use it pass (positive checks whose state may
/// still be settling: a service starting, DNS propagating), at most for `within`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RetryUntil {
    /// The longest time to keep trying.
    #[serde(with = "secs")]
    pub within: Duration,
    /// The pause between tries.
    #[serde(with = "secs")]
    pub every: Duration,
}

/// One probe of one student, ready to run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlannedProbe {
    /// The probe's id in the spec (also the evidence file's name).
    pub id: String,
    /// Where it runs.
    pub source: Source,
    /// What it asks.
    pub request: Request,
    /// How long one try may take.
    #[serde(with = "secs")]
    pub timeout: Duration,
    /// Repeat until its positive checks pass (see [`RetryUntil`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryUntil>,
}

impl PlannedProbe {
    /// What makes two probes the same run: where, what and how long (two probe ids with
    /// the same key run once; the evidence is recorded under both ids).
    pub fn dedup_key(&self) -> (Source, &Request, Duration) {
        (self.source, &self.request, self.timeout)
    }
}

/// Durations as (fractional) seconds in JSON.
pub(crate) mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_probes_become_the_argv_a_guest_runs() {
        let t = Duration::from_millis(2500);
        let dns = Request::Dns {
            server: "10.0.0.1".into(),
            name: "www.lab.".into(),
            rtype: "A".into(),
        };
        assert_eq!(
            dns.guest_argv(t).unwrap(),
            [
                "dig",
                "+short",
                "+time=2",
                "+tries=1",
                "@10.0.0.1",
                "www.lab.",
                "A"
            ]
        );
        let tcp = Request::Tcp {
            host: "h".into(),
            port: 22,
        };
        assert_eq!(
            tcp.guest_argv(Duration::ZERO).unwrap(),
            ["nc", "-z", "-v", "-w", "1", "h", "22"]
        );
        assert!(Request::File { path: "/x".into() }.guest_argv(t).is_none());
    }

    #[test]
    fn requests_round_trip_through_json_with_their_kind() {
        let r = Request::Http {
            url: "http://10.0.0.5/".into(),
        };
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["kind"], "http");
        assert_eq!(serde_json::from_value::<Request>(j).unwrap(), r);
    }
}
