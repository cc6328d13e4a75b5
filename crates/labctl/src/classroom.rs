//! A FOSS-Cloud classroom through the lab verbs: `backend = "fosscloud"` in the lab file.
//!
//! Each thin client (a MAC address of the roster) is a [`Seat`]; `up` hands each one the
//! desktop FC4School maps it to, through `fosscloud-api`'s [`FossCloudLab`] (the
//! `lab-core` `Desktops` capability). Assignment is read before it is made, and the
//! server's `400067` is read as "already assigned", so re-running assigns nothing twice.
//! FOSS-Cloud's API has no call that releases a desktop: `down` says so and changes nothing.

use std::path::{Path, PathBuf};

use fosscloud_api::{Fingerprint, FossCloudClient, FossCloudLab, RealmId, Secret};
use lab_core::{Assignment, Backend, Capability, Desktop, Desktops, LabName, Seat};
use serde::Serialize;

use crate::fail;
use crate::labfile::LabFile;
use crate::output::{or_dash, print_json, Format, Sheet};
use crate::precedence::{self, pick, Origin};

/// What the verb asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `plan` / `up --dry-run`.
    Plan,
    /// `up`.
    Up,
    /// `status`.
    Status,
    /// `ips`.
    Ips,
    /// `down` (with or without `--dry-run`: it never changes anything).
    Down,
}

/// Connection choices given on the command line (they override the file).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--url`.
    pub url: Option<String>,
    /// `-n`.
    pub name: Option<String>,
    /// `--fingerprint`.
    pub fingerprint: Option<String>,
    /// `--ca-file`.
    pub ca_file: Option<PathBuf>,
    /// `--insecure`.
    pub insecure: bool,
}

/// How the FOSS-Cloud server's certificate is checked (one choice per level).
enum Trust {
    Fingerprint(String),
    CaFile(PathBuf),
    Insecure,
}

/// A checked classroom: everything but the password.
#[derive(Debug, Clone)]
pub struct Classroom {
    /// The lab's name.
    pub name: LabName,
    url: String,
    user: String,
    realm: Option<RealmId>,
    pool: String,
    /// One seat per thin client, in roster order.
    pub seats: Vec<Seat>,
    fingerprint: Option<Fingerprint>,
    ca_file: Option<PathBuf>,
    insecure: bool,
    allow_http: bool,
}

/// Reads `path` and answers whether it is a FOSS-Cloud classroom.
pub fn read_if_fosscloud(path: Option<&Path>) -> anyhow::Result<Option<(LabFile, PathBuf)>> {
    let Some(path) = path else { return Ok(None) };
    let (file, dir) = LabFile::read(path)?;
    if file.is_fosscloud() {
        return Ok(Some((file, dir)));
    }
    if file.fosscloud.is_some() {
        return Err(fail::usage(format!(
            "lab file {}: a [fosscloud] table needs backend = \"fosscloud\"",
            path.display()
        )));
    }
    Ok(None)
}

/// Checks the file and the overrides; nothing is contacted.
pub fn resolve((file, dir): &(LabFile, PathBuf), o: &Overrides) -> anyhow::Result<Classroom> {
    let name = crate::labfile::lab_name(o.name.as_deref(), Some(file))?;
    for (field, given) in [
        ("template", file.template.is_some()),
        ("count", file.count.is_some()),
        ("roster", file.roster.is_some()),
        ("students", file.students.is_some()),
        ("teachers", !file.teachers.is_empty()),
    ] {
        if given {
            return Err(fail::usage(format!(
                "`{field}` is for Proxmox labs; a FOSS-Cloud classroom takes its seats from \
                 [fosscloud] macs and its machines from the pool"
            )));
        }
    }
    let fc = file.fosscloud.clone().ok_or_else(|| {
        fail::usage("backend = \"fosscloud\" needs a [fosscloud] table (url, user, pool, macs)")
    })?;
    // The one precedence rule: flag > lab file > FC_* environment > default. PVE_* never
    // reach the FOSS-Cloud server.
    let url = pick([
        (Origin::flag("--url"), o.url.clone()),
        (Origin::file("[fosscloud] url"), fc.url.clone()),
        precedence::env("FC_URL"),
    ])
    .ok_or_else(|| {
        fail::usage("no FOSS-Cloud server: give [fosscloud] url in the lab file, --url, or FC_URL")
    })?
    .value;
    let user = pick([
        (Origin::file("[fosscloud] user"), fc.user.clone()),
        precedence::env("FC_USER"),
    ])
    .ok_or_else(|| {
        fail::usage("no FOSS-Cloud user: give [fosscloud] user (FC4School's dynvmuser) or FC_USER")
    })?
    .value;
    let realm = pick([
        (Origin::file("[fosscloud] realm"), fc.realm.clone()),
        precedence::env("FC_REALM"),
    ])
    .map(|r| r.value);
    let pool = fc
        .pool
        .ok_or_else(|| fail::usage("no pool: give [fosscloud] pool (the dynamic pool's id)"))?;
    pool.parse::<fosscloud_api::PoolId>()?;
    if fc.macs.is_empty() {
        return Err(fail::usage(
            "no seats: give [fosscloud] macs = [\"52:54:00:12:34:56\", …]",
        ));
    }
    let mut seats: Vec<Seat> = Vec::with_capacity(fc.macs.len());
    for m in &fc.macs {
        let seat = Seat::mac(m)?;
        if seats.contains(&seat) {
            return Err(fail::usage(format!(
                "MAC address {m} is listed twice in [fosscloud] macs"
            )));
        }
        seats.push(seat);
    }
    let one_of = |fp: Option<String>, ca: Option<PathBuf>, insecure: bool, names: &str| {
        let chosen = [fp.is_some(), ca.is_some(), insecure]
            .iter()
            .filter(|b| **b)
            .count();
        if chosen > 1 {
            return Err(fail::usage(format!("give at most one of {names}")));
        }
        Ok(fp
            .map(Trust::Fingerprint)
            .or(ca.map(Trust::CaFile))
            .or(insecure.then_some(Trust::Insecure)))
    };
    let trust = pick([
        (
            Origin::flag("--fingerprint/--ca-file/--insecure"),
            one_of(
                o.fingerprint.clone(),
                o.ca_file.clone(),
                o.insecure,
                "--fingerprint, --ca-file and --insecure",
            )?,
        ),
        (
            Origin::file("[fosscloud] fingerprint/ca_file"),
            one_of(
                fc.fingerprint.clone(),
                fc.ca_file.clone().map(|p| dir.join(p)),
                false,
                "fingerprint and ca_file in the lab file's [fosscloud]",
            )?,
        ),
        (
            Origin::env("FC_FINGERPRINT/FC_CA_FILE"),
            one_of(
                precedence::env("FC_FINGERPRINT").1,
                precedence::env("FC_CA_FILE").1.map(PathBuf::from),
                false,
                "FC_FINGERPRINT and FC_CA_FILE (unset one)",
            )?,
        ),
    ])
    .map(|t| t.value);
    let (fingerprint, ca_file, insecure) = match trust {
        Some(Trust::Fingerprint(f)) => (Some(f), None, false),
        Some(Trust::CaFile(c)) => (None, Some(c), false),
        Some(Trust::Insecure) => (None, None, true),
        None => (None, None, false),
    };
    Ok(Classroom {
        name,
        url,
        user,
        realm: realm.as_deref().map(str::parse).transpose()?,
        pool,
        seats,
        fingerprint: fingerprint.as_deref().map(Fingerprint::parse).transpose()?,
        ca_file,
        insecure,
        allow_http: fc.allow_http,
    })
}

impl Classroom {
    fn client(&self) -> anyhow::Result<FossCloudClient> {
        let mut b = FossCloudClient::builder(self.url.clone()).allow_http(self.allow_http);
        if let Some(r) = &self.realm {
            b = b.realm(r.clone());
        }
        if let Some(fp) = &self.fingerprint {
            b = b.pin_fingerprint(*fp);
        }
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| fail::usage(format!("reading the CA file {}: {e}", ca.display())))?;
            b = b.add_root_certificate_pem(pem);
        }
        if self.insecure {
            tracing::warn!("--insecure: the FOSS-Cloud server's certificate is not checked");
            b = b.danger_accept_invalid_certs(true);
        }
        let password = crate::connect::password_from_env_or_prompt(
            "FC_PASSWORD",
            &format!("FOSS-Cloud password for {}: ", self.user),
            &self.user,
        )?;
        Ok(b.credentials(self.user.clone(), Secret::new(password))
            .build()?)
    }
}

/// One seat's line of the sheet.
#[derive(Debug, Serialize)]
struct Row {
    seat: String,
    /// `assigned`, `kept` (had it already), `to assign`, `not assigned`, or the error.
    state: String,
    name: Option<String>,
    uuid: Option<String>,
    pool: String,
    node: Option<String>,
    spice_host: Option<String>,
    spice_port: Option<u16>,
}

impl Row {
    fn new(seat: &Seat, pool: &str, state: &str, d: Option<&Desktop>) -> Row {
        Row {
            seat: seat.to_string(),
            state: state.to_owned(),
            name: d.map(|d| d.name.clone()),
            uuid: d.map(|d| d.id.clone()),
            pool: d.map_or_else(|| pool.to_owned(), |d| d.pool.clone()),
            node: d.and_then(|d| d.node.clone()),
            spice_host: d.and_then(|d| d.spice.as_ref().map(|s| s.0.clone())),
            spice_port: d.and_then(|d| d.spice.as_ref().map(|s| s.1)),
        }
    }

    fn spice(&self) -> Option<String> {
        Some(format!(
            "{}:{}",
            self.spice_host.as_ref()?,
            self.spice_port?
        ))
    }
}

fn print_sheet(rows: &[Row], format: Format) -> anyhow::Result<()> {
    let mut sheet = Sheet::new(&["SEAT", "STATE", "VM", "NODE", "SPICE"]);
    for r in rows {
        sheet.row(vec![
            r.seat.clone(),
            r.state.clone(),
            or_dash(r.name.as_ref()),
            or_dash(r.node.as_ref()),
            or_dash(r.spice()),
        ]);
    }
    sheet.print(format, &rows)
}

/// Runs a lab verb on the classroom.
pub async fn run(verb: Verb, room: &Classroom, format: Format) -> anyhow::Result<()> {
    if verb == Verb::Down {
        return down(room, format);
    }
    let lab = FossCloudLab::for_thin_clients(room.client()?);
    lab.capabilities()
        .require(Capability::Desktops, "lab up", lab.backend())?;
    run_on(verb, room, &lab, format).await
}

/// The verbs over any desktop backend (tests use the fake).
async fn run_on(
    verb: Verb,
    room: &Classroom,
    lab: &dyn Desktops,
    format: Format,
) -> anyhow::Result<()> {
    let pool = &room.pool;
    let mut rows = Vec::with_capacity(room.seats.len());
    let mut failed = Vec::new();
    for seat in &room.seats {
        let row = match verb {
            Verb::Up => match lab.assign(seat.clone(), pool.clone()).await {
                Ok(Assignment::New(d)) => Row::new(seat, pool, "assigned", Some(&d)),
                Ok(Assignment::Existing(d)) => Row::new(seat, pool, "kept", Some(&d)),
                Err(e) => seat_failed(seat, pool, e, &mut failed)?,
            },
            _ => match lab.assigned(seat.clone(), pool.clone()).await {
                Ok(Some(d)) => Row::new(
                    seat,
                    pool,
                    if verb == Verb::Plan {
                        "kept"
                    } else {
                        "assigned"
                    },
                    Some(&d),
                ),
                Ok(None) => Row::new(
                    seat,
                    pool,
                    if verb == Verb::Plan {
                        "to assign"
                    } else {
                        "not assigned"
                    },
                    None,
                ),
                Err(e) => seat_failed(seat, pool, e, &mut failed)?,
            },
        };
        rows.push(row);
    }
    if verb == Verb::Ips && format.is_table() {
        for r in &rows {
            if let Some(s) = r.spice() {
                println!("{s}\t{}", r.seat);
            }
        }
    } else {
        print_sheet(&rows, format)?;
    }
    if failed.is_empty() {
        if verb == Verb::Up {
            let new = rows.iter().filter(|r| r.state == "assigned").count();
            eprintln!(
                "lab {}: {} seats, {new} assigned now, {} had their desktop already",
                room.name,
                rows.len(),
                rows.len() - new
            );
        }
        Ok(())
    } else {
        Err(fail::with_code(
            fail::INCOMPLETE,
            format!(
                "lab {} incomplete: {}; run it again once fixed",
                room.name,
                failed.join("; ")
            ),
        ))
    }
}

/// A seat's own trouble (no mapping, no free desktop) is one row and the others go on;
/// anything else (network, TLS, credentials) ends the run at once, with its causes.
fn seat_failed(
    seat: &Seat,
    pool: &str,
    e: lab_core::Error,
    failed: &mut Vec<String>,
) -> anyhow::Result<Row> {
    match e {
        lab_core::Error::NotFound { .. }
        | lab_core::Error::Busy { .. }
        | lab_core::Error::InvalidInput { .. } => {
            failed.push(format!("{seat}: {e}"));
            Ok(Row::new(seat, pool, &format!("error: {e}"), None))
        }
        other => Err(anyhow::Error::new(other).context(format!("seat {seat}"))),
    }
}

/// What `down` says: FOSS-Cloud cannot undo an assignment through its API.
fn down(room: &Classroom, format: Format) -> anyhow::Result<()> {
    let message = format!(
        "lab {}: nothing changed. FOSS-Cloud's REST API (vm-manager 1.3.2) has no call that \
         releases a desktop, stops or destroys it: the {} thin clients keep the desktops of \
         pool {} they were assigned. Release them in the FOSS-Cloud web interface (or let \
         the broker recycle the dynamic VMs); `labctl lab status` shows who has which.",
        room.name,
        room.seats.len(),
        room.pool
    );
    if format == Format::Json {
        print_json(&serde_json::json!({
            "lab": room.name.as_str(),
            "backend": fosscloud_api::lab::BACKEND,
            "changed": false,
            "unsupported": ["release", "stop", "destroy"],
            "message": message,
        }))
    } else {
        println!("{message}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_core::fake::FakeHypervisor;

    fn file(text: &str) -> (LabFile, PathBuf) {
        (toml::from_str(text).unwrap(), PathBuf::from("/labs"))
    }

    const ROOM: &str = r#"
name = "class1"
backend = "fosscloud"
[fosscloud]
url = "https://fc.example.org/vm-manager"
user = "dynvmuser"
pool = "6a1c2e3f-0000-4000-8000-00000000a004"
macs = ["52:54:00:00:00:01", "52:54:00:00:00:02"]
"#;

    #[test]
    fn the_example_classroom_resolves() {
        let text = include_str!("../../../examples/classroom.toml");
        let room = resolve(&file(text), &Overrides::default()).unwrap();
        assert_eq!(room.name.as_str(), "class1");
        assert!(!room.seats.is_empty());
        assert_eq!(room.user, "dynvmuser");
    }

    #[test]
    fn flags_override_the_file_and_bad_input_is_named() {
        let o = Overrides {
            url: Some("https://127.0.0.1:8448/vm-manager".into()),
            insecure: true,
            ..Overrides::default()
        };
        let room = resolve(&file(ROOM), &o).unwrap();
        assert_eq!(room.url, "https://127.0.0.1:8448/vm-manager");
        assert!(room.insecure);

        let bad = ROOM.replace("52:54:00:00:00:02", "52:54:00:00:00");
        let e = resolve(&file(&bad), &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("52:54:00:00:00"), "{e}");
        let twice = ROOM.replace("52:54:00:00:00:02", "52:54:00:00:00:01");
        let e = resolve(&file(&twice), &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let with_template = ROOM.replace("backend", "template = 9000\nbackend");
        let e = resolve(&file(&with_template), &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("template"), "{e}");
        let both = Overrides {
            insecure: true,
            fingerprint: Some("AA".into()),
            ..Overrides::default()
        };
        assert!(resolve(&file(ROOM), &both).is_err());
    }

    #[tokio::test]
    async fn up_twice_assigns_each_seat_once() {
        let room = resolve(&file(ROOM), &Overrides::default()).unwrap();
        let fake =
            FakeHypervisor::new().with_desktop_pool("6a1c2e3f-0000-4000-8000-00000000a004", 3);
        run_on(Verb::Plan, &room, &fake, Format::Json)
            .await
            .unwrap();
        assert!(fake.seats(&room.pool).is_empty(), "plan changes nothing");
        run_on(Verb::Up, &room, &fake, Format::Json).await.unwrap();
        run_on(Verb::Up, &room, &fake, Format::Json).await.unwrap();
        let seats = fake.seats(&room.pool);
        assert_eq!(seats.len(), 2, "{seats:?}");
        // A pool with no free machine left: the seat is named, the run is incomplete.
        let small =
            FakeHypervisor::new().with_desktop_pool("6a1c2e3f-0000-4000-8000-00000000a004", 1);
        let e = run_on(Verb::Up, &room, &small, Format::Json)
            .await
            .unwrap_err();
        assert_eq!(fail::exit_code(&e), fail::INCOMPLETE);
        assert!(e.to_string().contains("52:54:00:00:00:02"), "{e}");
    }

    #[tokio::test]
    async fn a_connection_failure_ends_the_run_at_the_first_seat() {
        let room = resolve(&file(ROOM), &Overrides::default()).unwrap();
        let mut mock = lab_core::MockDesktops::new();
        mock.expect_assign().times(1).returning(|_, _| {
            Err(lab_core::Error::Backend {
                backend: "fosscloud",
                source: "connection refused".into(),
            })
        });
        let e = run_on(Verb::Up, &room, &mock, Format::Json)
            .await
            .unwrap_err();
        assert!(format!("{e:#}").contains("connection refused"), "{e:#}");
        assert!(e.to_string().contains("52:54:00:00:00:01"), "{e}");
    }
}
