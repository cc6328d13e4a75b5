//! The credential sheet: one row per student with user id, password, VMID, host name,
//! address and the console deep link; rendered as a table, CSV or JSON and written to a
//! file created readable by its owner only (0600). Passwords appear here and nowhere
//! else: [`Credential`]'s `Debug` prints `***`.
//!
//! A row's `stamp` is a random, non-secret token that [`crate::exam::grant`] also writes
//! into the user's comment on the cluster when it sets the password: a sheet whose stamp
//! differs from the cluster's holds a password that no longer works, and is never trusted.
//!
//! Outputs are data: CSV cells that a spreadsheet would run as a formula (leading `=`,
//! `+`, `-`, `@`, tab or carriage return) get a leading `'`, and table cells show control
//! characters escaped (`\n`, `\u{1b}`), so a name cannot forge lines or terminal codes.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use pve_auth::Secret;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One student's credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// The student's name (the roster's).
    pub student: String,
    /// The PVE login.
    pub userid: String,
    /// The generated password; `None` for directory realms (the student's own password),
    /// or `null` when it is not known (a user created by an earlier run whose sheet was
    /// lost or is stale: grant with [`crate::exam::Reset`] gives a new one).
    pub password: Option<String>,
    /// The non-secret stamp of the password, also in the user's comment on the cluster
    /// (`labctl lab <lab> sheet:<stamp>`); `None` when no password is known.
    #[serde(default)]
    pub stamp: Option<String>,
    /// The student's guest.
    pub vmid: u32,
    /// The guest's host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// The guest's address.
    #[serde(default)]
    pub ip: Option<String>,
    /// The node the guest runs on.
    #[serde(default)]
    pub node: Option<String>,
    /// The PVE web UI deep link to the guest's console (needs a PVE login).
    #[serde(default)]
    pub console: Option<String>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("student", &self.student)
            .field("userid", &self.userid)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("stamp", &self.stamp)
            .field("vmid", &self.vmid)
            .field("hostname", &self.hostname)
            .field("ip", &self.ip)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// The password as a [`Secret`].
    pub fn secret(&self) -> Option<Secret> {
        self.password.clone().map(Secret::new)
    }
}

/// The UI deep link to a QEMU guest's noVNC console on `host` (zzantares/ProxmoxVE#17).
pub fn console_link(host: &str, node: &str, vmid: u32) -> String {
    format!("https://{host}:8006/?console=kvm&novnc=1&vmid={vmid}&node={node}&resize=scale")
}

/// A cell safe for a spreadsheet: a value that a spreadsheet would evaluate as a formula
/// (leading `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'` (OWASP's CSV
/// injection guard). Other text is unchanged.
pub fn csv_cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

/// A bidirectional-text control (U+061C, U+200E/F, U+202A-U+202E, U+2066-U+2069): it
/// reorders the text a terminal or spreadsheet shows (`"txt.exe"` shown as `"exe.txt"`),
/// so it is treated like a control character.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn is_unsafe(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// A cell safe for line-based output (a table, a hosts line): control characters
/// (newline, tab, ESC, DEL, C1) and bidirectional-text controls are shown escaped (`\n`,
/// `\t`, `\u{1b}`, `\u{202e}`), so a name can neither start a new line, send terminal
/// codes nor reorder what is shown. Other text is unchanged.
pub fn line_cell(s: &str) -> String {
    if !s.chars().any(is_unsafe) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if is_bidi_control(c) {
                format!("\\u{{{:x}}}", u32::from(c))
            } else if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for a terminal or a printout.
    Table,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// A JSON list of objects (`student`, `userid`, `password`, `vmid`, …).
    Json,
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => Err(Error::InvalidInput {
                what: format!("sheet format {other:?}"),
                why: "allowed: table, csv, json".into(),
            }),
        }
    }
}

/// The sheet of a lab.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sheet {
    /// Rows, in roster order.
    pub rows: Vec<Credential>,
}

const HEADER: [&str; 8] = [
    "student", "userid", "password", "vmid", "hostname", "ip", "node", "console",
];

impl Sheet {
    fn cells(c: &Credential) -> [String; 8] {
        [
            c.student.clone(),
            c.userid.clone(),
            c.password.clone().unwrap_or_default(),
            c.vmid.to_string(),
            c.hostname.clone().unwrap_or_default(),
            c.ip.clone().unwrap_or_default(),
            c.node.clone().unwrap_or_default(),
            c.console.clone().unwrap_or_default(),
        ]
    }

    /// Render in `format`.
    pub fn render(&self, format: Format) -> Result<String> {
        let err = |m: String| Error::Sheet {
            path: "-".into(),
            message: m,
        };
        match format {
            Format::Json => {
                serde_json::to_string_pretty(&self.rows).map_err(|e| err(e.to_string()))
            }
            Format::Csv => {
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(HEADER).map_err(|e| err(e.to_string()))?;
                for r in &self.rows {
                    w.write_record(Self::cells(r).map(|c| csv_cell(&c)))
                        .map_err(|e| err(e.to_string()))?;
                }
                let bytes = w.into_inner().map_err(|e| err(e.to_string()))?;
                String::from_utf8(bytes).map_err(|e| err(e.to_string()))
            }
            Format::Table => {
                let rows: Vec<[String; 8]> = self
                    .rows
                    .iter()
                    .map(|r| Self::cells(r).map(|c| line_cell(&c)))
                    .collect();
                let mut width = HEADER.map(str::len);
                for r in &rows {
                    for (i, c) in r.iter().enumerate() {
                        width[i] = width[i].max(c.chars().count());
                    }
                }
                let mut out = String::new();
                let line = |cells: &[String], out: &mut String| {
                    let parts: Vec<String> = cells
                        .iter()
                        .enumerate()
                        .map(|(i, c)| format!("{c:<w$}", w = width[i]))
                        .collect();
                    out.push_str(parts.join("  ").trim_end());
                    out.push('\n');
                };
                line(&HEADER.map(str::to_owned), &mut out);
                for r in &rows {
                    line(r, &mut out);
                }
                Ok(out)
            }
        }
    }

    /// Write the sheet (JSON, the format `load` reads) to `path`, created 0600 through
    /// a temporary file in the same directory and renamed over the old one.
    pub fn write(&self, path: &Path, format: Format) -> Result<()> {
        let text = self.render(format)?;
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        // tempfile creates the file with mode 0600 on Unix.
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        tmp.write_all(text.as_bytes()).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        Ok(())
    }

    /// Read a sheet written in JSON by [`Sheet::write`]; a missing file is an empty sheet.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(Error::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let rows: Vec<Credential> = serde_json::from_str(&text).map_err(|e| Error::Sheet {
            path: path.display().to_string(),
            message: format!("not a JSON credential sheet: {e}"),
        })?;
        Ok(Self { rows })
    }

    /// The row of a user id.
    pub fn get(&self, userid: &str) -> Option<&Credential> {
        self.rows.iter().find(|r| r.userid == userid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sheet() -> Sheet {
        Sheet {
            rows: vec![Credential {
                student: "Ann, \"A\"".into(),
                userid: "ann@pve".into(),
                password: Some("pw-123456".into()),
                stamp: Some("K7pQ2xR9ab".into()),
                vmid: 101,
                hostname: Some("exam-01".into()),
                ip: Some("10.10.0.5".into()),
                node: Some("pve1".into()),
                console: Some(console_link("pve1", "pve1", 101)),
            }],
        }
    }

    #[test]
    fn formats() {
        let s = sheet();
        let csv = s.render(Format::Csv).unwrap();
        assert!(csv.starts_with("student,userid,password,vmid,hostname,ip,node,console\n"));
        assert!(csv.contains("\"Ann, \"\"A\"\"\",ann@pve,pw-123456,101,exam-01,10.10.0.5,pve1,"));
        let json: serde_json::Value =
            serde_json::from_str(&s.render(Format::Json).unwrap()).unwrap();
        assert_eq!(json[0]["userid"], "ann@pve");
        assert_eq!(json[0]["password"], "pw-123456");
        assert_eq!(json[0]["vmid"], 101);
        let table = s.render(Format::Table).unwrap();
        assert!(table.lines().nth(1).unwrap().contains("pw-123456"));
        assert!(!format!("{:?}", s).contains("pw-123456"));
        assert!("yaml".parse::<Format>().is_err());
    }

    #[test]
    fn csv_cells_are_not_formulas_and_table_cells_not_lines() {
        let mut s = sheet();
        s.rows[0].student = "=cmd|' /C calc'!A0".into();
        s.rows[0].hostname = Some("a\nb\u{1b}[2J".into());
        let csv = s.render(Format::Csv).unwrap();
        assert!(csv.contains("'=cmd|' /C calc'!A0"), "{csv}");
        let table = s.render(Format::Table).unwrap();
        assert_eq!(table.lines().count(), 2, "{table}");
        assert!(
            table.contains("a\\nb\\u{1b}[2J") && !table.contains('\u{1b}'),
            "{table}"
        );
        assert_eq!(csv_cell("-1"), "'-1");
        assert_eq!(csv_cell("Anna"), "Anna");
        assert_eq!(line_cell("tab\there"), "tab\\there");
        assert_eq!(line_cell("ann\u{202e}txt.exe"), "ann\\u{202e}txt.exe");
    }

    #[cfg(unix)]
    #[test]
    fn written_owner_only_and_read_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sheet.json");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        sheet().write(&path, Format::Json).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Sheet::load(&path).unwrap(), sheet());
        assert_eq!(
            Sheet::load(&dir.path().join("none")).unwrap(),
            Sheet::default()
        );
    }
}
