//! `agent/exec` and `agent/exec-status`: a command as an argv array, its result read once.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Largest `input-data` PVE accepts (the schema's `maxLength`).
pub const MAX_STDIN: usize = 65_536;

/// A command to run in the guest: a program and its arguments as separate strings.
///
/// **There is no shell.** `["ip", "-j", "addr"]` runs `ip` with two arguments;
/// `["ip -j addr"]` would look for a program called `ip -j addr` (PVE passes the argv
/// array to qemu-ga as it is). For pipes, redirections or `$VARS` run a shell yourself:
/// `["/bin/sh", "-c", "ip -j addr | head -c 100"]` (Windows: `["cmd.exe", "/c", "…"]`).
///
/// ```
/// use std::time::Duration;
/// use pve_agent::Exec;
/// let cmd = Exec::new(["ip", "-j", "addr"]).timeout(Duration::from_secs(10));
/// assert_eq!(cmd.argv(), ["ip", "-j", "addr"]);
/// // One string with spaces is refused before anything is sent:
/// assert!(Exec::new(["ip -j addr"]).check().unwrap_err().to_string().contains("argv"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    argv: Vec<String>,
    stdin: Option<String>,
    timeout: Option<Duration>,
}

impl Exec {
    /// The command `argv[0]` with the arguments `argv[1..]`.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            stdin: None,
            timeout: None,
        }
    }

    /// Text the command reads on its standard input (`input-data`, at most 64 KiB).
    #[must_use]
    pub fn stdin(mut self, data: impl Into<String>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// How long to wait for the command, from sending it to reading its result (default:
    /// [`AgentOptions::exec_timeout`](crate::AgentOptions::exec_timeout)).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The program and its arguments.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The standard input, if any.
    pub fn stdin_data(&self) -> Option<&str> {
        self.stdin.as_deref()
    }

    /// The timeout, if one was set.
    pub fn timeout_value(&self) -> Option<Duration> {
        self.timeout
    }

    /// The argv as one readable line for messages (JSON array form).
    pub fn display(&self) -> String {
        serde_json::to_string(&self.argv).unwrap_or_else(|_| format!("{:?}", self.argv))
    }

    /// Checks the command before anything is sent: a non-empty argv, no NUL bytes, no
    /// program name with spaces that is not a path (the usual mistake of passing a shell
    /// command line as one string), stdin within 64 KiB.
    pub fn check(&self) -> Result<()> {
        let bad = |why: String| Error::InvalidInput {
            what: format!("command {}", self.display()),
            why,
        };
        let Some(program) = self.argv.first() else {
            return Err(bad(
                "the argv is empty; give the program and its arguments, e.g. [\"hostname\"]"
                    .to_owned(),
            ));
        };
        if program.trim().is_empty() {
            return Err(bad("the program name is empty".to_owned()));
        }
        if self.argv.iter().any(|a| a.contains('\0')) {
            return Err(bad("an argument contains a NUL byte".to_owned()));
        }
        let is_path = program.contains('/') || program.contains('\\');
        if program.chars().any(char::is_whitespace) && !is_path {
            let words: Vec<&str> = program.split_whitespace().collect();
            return Err(bad(format!(
                "the program name contains spaces: the guest agent runs no shell, so each \
                 argument is its own argv item: {} (or [\"/bin/sh\", \"-c\", {:?}] for shell \
                 syntax)",
                serde_json::to_string(&words).unwrap_or_default(),
                program
            )));
        }
        if let Some(stdin) = &self.stdin {
            if stdin.len() > MAX_STDIN {
                return Err(Error::InvalidInput {
                    what: format!("stdin of {}", self.display()),
                    why: format!(
                        "stdin too large: {} bytes, the limit is {MAX_STDIN} bytes (PVE's \
                         input-data); write larger input to a file first (file-write) and \
                         redirect it with a shell",
                        stdin.len()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// One answer of `GET …/agent/exec-status?pid=`: `exited: false` while the command runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ExecStatus {
    /// The command has ended. qemu-ga reports this once per process, then forgets it.
    #[serde(deserialize_with = "pve_auth::perl::bool")]
    pub exited: bool,
    /// The exit code of a normally terminated process.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_i64")]
    pub exitcode: Option<i64>,
    /// The signal (Windows: exception code) of an abnormally terminated process.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_i64")]
    pub signal: Option<i64>,
    /// Standard output (PVE already decoded qemu-ga's base64).
    #[serde(
        default,
        rename = "out-data",
        deserialize_with = "pve_auth::perl::opt_string"
    )]
    pub out_data: Option<String>,
    /// Standard error.
    #[serde(
        default,
        rename = "err-data",
        deserialize_with = "pve_auth::perl::opt_string"
    )]
    pub err_data: Option<String>,
    /// Standard output was cut at the agent's limit (16 MiB).
    #[serde(
        default,
        rename = "out-truncated",
        deserialize_with = "pve_auth::perl::bool"
    )]
    pub out_truncated: bool,
    /// Standard error was cut at the agent's limit.
    #[serde(
        default,
        rename = "err-truncated",
        deserialize_with = "pve_auth::perl::bool"
    )]
    pub err_truncated: bool,
}

/// The result of a finished command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecOutput {
    /// The guest's process id.
    pub pid: i64,
    /// The program and its arguments as sent.
    pub argv: Vec<String>,
    /// The exit code of a normally terminated process.
    pub exitcode: Option<i64>,
    /// The signal of an abnormally terminated process.
    pub signal: Option<i64>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Standard output was cut by the agent.
    pub out_truncated: bool,
    /// Standard error was cut by the agent.
    pub err_truncated: bool,
    /// When `exec` was sent.
    pub started: SystemTime,
    /// When the answer that reported the end arrived.
    pub finished: SystemTime,
}

impl ExecOutput {
    /// The exit status as a shell reports it: the exit code, else 128 + the signal, else
    /// 255 (an end without either, which qemu-ga should not report).
    pub fn code(&self) -> i64 {
        match (self.exitcode, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 255,
        }
    }

    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.exitcode == Some(0)
    }

    /// Standard output or standard error was cut by the agent.
    pub fn truncated(&self) -> bool {
        self.out_truncated || self.err_truncated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_rule_and_limits() {
        Exec::new(["ip", "-j", "addr"]).check().unwrap();
        Exec::new(["/opt/my tools/run"]).check().unwrap();
        Exec::new(["C:\\Program Files\\x.exe", "/c"])
            .check()
            .unwrap();
        for (cmd, needle) in [
            (Exec::new(Vec::<String>::new()), "argv is empty"),
            (Exec::new([""]), "program name is empty"),
            (Exec::new(["ip -j addr"]), "[\"ip\",\"-j\",\"addr\"]"),
            (Exec::new(["a", "b\0"]), "NUL"),
            (
                Exec::new(["cat"]).stdin("x".repeat(MAX_STDIN + 1)),
                "65537 bytes",
            ),
        ] {
            let e = cmd.check().unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
        Exec::new(["cat"])
            .stdin("x".repeat(MAX_STDIN))
            .check()
            .unwrap();
    }

    #[test]
    fn status_reads_loose_fields_and_codes() {
        let s: ExecStatus = serde_json::from_str(
            r#"{"exited":1,"exitcode":"3","out-data":"a\n","out-truncated":1}"#,
        )
        .unwrap();
        assert!(s.exited && s.out_truncated && !s.err_truncated);
        assert_eq!(s.exitcode, Some(3));
        let s: ExecStatus = serde_json::from_str(r#"{"exited":0}"#).unwrap();
        assert!(!s.exited && s.out_data.is_none());
        let now = SystemTime::UNIX_EPOCH;
        let mut out = ExecOutput {
            pid: 1,
            argv: vec!["x".into()],
            exitcode: None,
            signal: Some(9),
            stdout: String::new(),
            stderr: String::new(),
            out_truncated: false,
            err_truncated: true,
            started: now,
            finished: now,
        };
        assert_eq!(out.code(), 137);
        assert!(out.truncated() && !out.success());
        out.signal = None;
        assert_eq!(out.code(), 255);
        out.exitcode = Some(0);
        assert!(out.success());
        assert_eq!(out.code(), 0);
    }
}
