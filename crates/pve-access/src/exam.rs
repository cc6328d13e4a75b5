//! The exam access lifecycle over a list of [`Seat`]s: [`grant`] one PVE login per
//! student that reaches only that student's guest, a credential [`Sheet`], [`verify`]
//! it as each student, and [`revoke`] it all when the exam ends.
//!
//! The cluster is the journal: every user labctl creates carries the comment
//! `labctl lab <lab> sheet:<stamp>` ([`marker`], [`user_comment`]); only such users and
//! their `LabctlExam` ACL entries are ever changed, so a foreign user or ACL is never
//! touched, and any run — first, repeated, or after a crash — reads what exists and
//! completes it. Passwords are written to the sheet file *before* the user is created, so
//! a crash cannot lose one.
//!
//! # One sheet model
//!
//! The cluster says which users exist; the sheet only says what their passwords are, and
//! only where its row's `stamp` equals the stamp in the user's comment (a random token
//! made with each password). [`grant`] creates missing users and never replaces an
//! existing user's password unless [`GrantOptions::reset`] names it: a sheet that lacks a
//! user's password, or holds one with another stamp (an old copy, another lab's sheet),
//! is reported as [`Outcome::Unknown`] and the row's password is left empty — never
//! kept as if it worked, never silently replaced. Users made before stamps existed (comment
//! exactly `labctl lab <lab>`) match only a sheet row without a stamp.
//! All `user.cfg` writes (users, role, ACL) are sent one at a time: PVE serialises them
//! behind a cluster-wide lock anyway.
//!
//! # The exam role `LabctlExam`
//!
//! | privilege | granted | why |
//! |---|---|---|
//! | `VM.Audit` | yes | see the own guest in the tree and `/cluster/resources`, read its status |
//! | `VM.Console` | yes | open the noVNC / xterm.js / serial console |
//! | `VM.PowerMgmt` | yes | start, shut down, reboot a hung guest |
//! | `VM.Config.CDROM` | no | swapping the ISO boots another system (a rescue disk) |
//! | `VM.Backup` | no | backups copy the disk out and fill storage |
//! | `VM.Config.Network` | no | a NIC could move off the isolated bridge (and needs SDN.Use) |
//! | `VM.GuestAgent.*` | no | file read/write and fs freeze through the agent bypass the console |
//! | `VM.Config.Cloudinit` | no | cloud-init can reset the guest's passwords and keys |
//! | `VM.Snapshot*`, `VM.Clone`, `VM.Allocate`, `VM.Migrate`, other `VM.Config.*` | no | not an exam task |
//!
//! PVE 9's `PVEVMUser` would add `VM.Backup`, `VM.Config.CDROM`, `VM.Config.Cloudinit`
//! and four `VM.GuestAgent.*` privileges; that is why the role is custom.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use pve_auth::{PveClient, Secret};
use pve_vm::{GuestKind, GuestSummary, NodeName, VmApi, VmId};
use rand::Rng as _;

use crate::api::{AccessApi, AclEntry, NewUser, Subject, UserInfo, UserUpdate};
use crate::error::{Error, Result};
use crate::ids::{AclPath, Privilege, RoleId, Userid};
use crate::sheet::{console_link, Credential, Format, Sheet};

/// The role every student gets on their own guest.
pub const EXAM_ROLE: &str = "LabctlExam";

/// The privileges of [`EXAM_ROLE`] (see the module docs, privilege by privilege).
pub const EXAM_PRIVILEGES: &[Privilege] = &[
    Privilege::VmAudit,
    Privilege::VmConsole,
    Privilege::VmPowerMgmt,
];

/// Length of generated passwords.
pub const PASSWORD_LEN: usize = 16;

/// The alphabet of generated passwords: letters and digits without look-alikes
/// (`0 O o 1 l I`): 56 symbols, so a 16-character password holds 16·log2(56) ≈ 92.9 bits.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";

/// A password of [`PASSWORD_LEN`] symbols drawn uniformly from 56 letters and digits
/// without look-alikes (about 92.9 bits) with the
/// operating system's RNG.
pub fn generate_password() -> Secret {
    let mut rng = rand::rngs::OsRng;
    let pw: String = (0..PASSWORD_LEN)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    Secret::new(pw)
}

/// The comment that marks a user as the lab's (the start of [`user_comment`]).
pub fn marker(lab: &str) -> String {
    format!("labctl lab {lab}")
}

/// The whole comment of a lab user: the [`marker`], then the password's stamp if any.
pub fn user_comment(lab: &str, stamp: Option<&str>) -> String {
    match stamp {
        Some(s) => format!("{} sheet:{s}", marker(lab)),
        None => marker(lab),
    }
}

/// Whether a user's comment marks it as lab `lab`'s (with or without a stamp).
pub fn is_marked(comment: Option<&str>, lab: &str) -> bool {
    let mark = marker(lab);
    comment.is_some_and(|c| {
        c == mark
            || c.strip_prefix(mark.as_str())
                .is_some_and(|rest| rest.starts_with(" sheet:"))
    })
}

/// The password stamp in a lab user's comment, if it has one.
pub fn stamp_of(comment: Option<&str>) -> Option<&str> {
    comment
        .and_then(|c| c.rsplit_once(" sheet:"))
        .map(|(_, s)| s)
        .filter(|s| !s.is_empty())
}

/// A new random, non-secret stamp for a password (10 symbols of the password alphabet).
pub fn new_stamp() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..10)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Where students log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Realm {
    /// PVE's own realm `pve`: labctl generates the passwords.
    Pve,
    /// A directory realm (LDAP, AD, OpenID) with this id: students use their directory
    /// password; labctl sets none.
    Directory(String),
}

impl Realm {
    fn id(&self) -> &str {
        match self {
            Realm::Pve => "pve",
            Realm::Directory(r) => r,
        }
    }
}

/// One student's place in the exam.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    /// The roster's name.
    pub student: String,
    /// The login (`<student>@<realm>`).
    pub userid: Userid,
    /// The student's guest (a student with two guests has two seats).
    pub vmid: VmId,
    /// The guest's host name.
    pub hostname: Option<String>,
    /// The guest's address.
    pub address: Option<IpAddr>,
}

impl Seat {
    /// A seat whose user id is derived from the student name: lower case, letters,
    /// digits, `.`, `-`, `_` kept, anything else becomes `-`.
    pub fn new(student: &str, realm: &Realm, vmid: VmId) -> Result<Self> {
        let name: String = student
            .trim()
            .to_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let name = name.trim_matches('-');
        if name.is_empty() {
            return Err(Error::InvalidInput {
                what: format!("student name {student:?}"),
                why: "needs at least one letter or digit to make a user name".into(),
            });
        }
        let userid: Userid = format!("{name}@{}", realm.id()).parse()?;
        Ok(Self {
            student: student.trim().to_owned(),
            userid,
            vmid,
            hostname: None,
            address: None,
        })
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Changed now.
    Done,
    /// Already so; nothing sent.
    AlreadyDone,
    /// `--dry-run`: would be changed.
    WouldDo,
    /// The user exists but the sheet does not know its password (missing or stale row):
    /// nothing was changed; [`GrantOptions::reset`] gives it a new one.
    Unknown,
}

/// One step of a run, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What, e.g. `create user`, `grant ACL`, `stop console`.
    pub action: &'static str,
    /// On what, e.g. `s03@pve`, `/vms/103 s03@pve LabctlExam`, a UPID.
    pub target: String,
    /// How it ended.
    pub outcome: Outcome,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = match self.outcome {
            Outcome::Done => "done",
            Outcome::AlreadyDone => "already so",
            Outcome::WouldDo => "would do",
            Outcome::Unknown => "UNKNOWN: not on this sheet",
        };
        write!(f, "{:<14} {:<40} {o}", self.action, self.target)
    }
}

/// The steps of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// In order.
    pub steps: Vec<Step>,
}

impl Report {
    fn push(&mut self, action: &'static str, target: impl Into<String>, outcome: Outcome) {
        let step = Step {
            action,
            target: target.into(),
            outcome,
        };
        tracing::info!(action = step.action, target = %step.target, outcome = ?step.outcome, "access step");
        self.steps.push(step);
    }

    /// Steps that changed (or, in a dry run, would change) something.
    pub fn changes(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Done | Outcome::WouldDo))
            .count()
    }
}

/// Which existing users [`grant`] gives a new password (the old one stops working).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Reset {
    /// None: an existing user's password is never replaced (the default).
    #[default]
    Nobody,
    /// Every user of a seat whose password the sheet does not know (missing or stale).
    Unknown,
    /// Exactly these users (whether the sheet knows their password or not).
    These(BTreeSet<Userid>),
}

impl Reset {
    fn wants(&self, userid: &Userid, known: bool) -> bool {
        match self {
            Reset::Nobody => false,
            Reset::Unknown => !known,
            Reset::These(set) => set.contains(userid),
        }
    }
}

/// Settings of [`grant`].
#[derive(Debug, Clone)]
pub struct GrantOptions {
    /// The lab's name (in the users' [`marker`]).
    pub lab: String,
    /// Where students log in.
    pub realm: Realm,
    /// The credential sheet (JSON): read for known passwords (a row counts only if its
    /// stamp matches the user's comment), rewritten (0600) before every password is set
    /// and at the end. Keep it: with it, a second run changes nothing.
    pub sheet: PathBuf,
    /// Existing users to give a new password: deleted and re-created — the only way that
    /// also works with an API token (`PUT /access/password` refuses tokens) — and their
    /// ACL entries granted again. Realm `pve` only.
    pub reset: Reset,
    /// Host name for the console deep links (default: the guest's node name).
    pub console_host: Option<String>,
    /// Only report what would change.
    pub dry_run: bool,
}

/// What [`grant`] did and the sheet it wrote.
#[derive(Debug, Clone)]
pub struct GrantReport {
    /// The steps.
    pub report: Report,
    /// The credential sheet (also written to [`GrantOptions::sheet`]).
    pub sheet: Sheet,
    /// Users that exist but whose password the sheet does not know (with why); their
    /// rows have no password. Empty after a complete run.
    pub unknown: Vec<(Userid, String)>,
}

fn exam_role() -> RoleId {
    RoleId::new(EXAM_ROLE).unwrap_or_else(|_| unreachable!("LabctlExam is a valid role id"))
}

fn check_seats(seats: &[Seat]) -> Result<()> {
    let mut owner: BTreeMap<VmId, &Userid> = BTreeMap::new();
    for s in seats {
        if let Some(other) = owner.insert(s.vmid, &s.userid) {
            if other != &s.userid {
                return Err(Error::InvalidInput {
                    what: format!("seats: guest {}", s.vmid),
                    why: format!(
                        "given to both {other} and {}; each guest has one student",
                        s.userid
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The lab's users (marked with [`marker`]).
pub async fn lab_users(api: &AccessApi, lab: &str) -> Result<Vec<UserInfo>> {
    Ok(api
        .users()
        .await?
        .into_iter()
        .filter(|u| is_marked(u.comment.as_deref(), lab))
        .collect())
}

fn acl_key(e: &AclEntry) -> (AclPath, Subject, RoleId) {
    (e.path.clone(), e.subject.clone(), e.role.clone())
}

/// Give every seat's student a login that reaches only their own guest(s): the
/// `LabctlExam` role, one marked user per student (password for realm `pve`), one ACL
/// entry per seat; ACL entries of the lab's users elsewhere are removed. Idempotent.
///
/// Refuses (before changing anything) when a seat's user exists without the lab's
/// marker, or a guest is missing.
pub async fn grant(api: &AccessApi, opts: &GrantOptions, seats: &[Seat]) -> Result<GrantReport> {
    check_seats(seats)?;
    if opts.realm != Realm::Pve && opts.reset != Reset::Nobody {
        return Err(Error::InvalidInput {
            what: format!("password reset in realm {}", opts.realm.id()),
            why: "students of a directory realm use their own password; labctl sets none".into(),
        });
    }
    let mut report = Report::default();
    let mut unknown = Vec::new();
    let mark = marker(&opts.lab);
    let role = exam_role();
    let wet = |o: Outcome| if opts.dry_run { Outcome::WouldDo } else { o };

    // Read everything first: refusals happen before any write.
    let users: BTreeMap<Userid, UserInfo> = api
        .users()
        .await?
        .into_iter()
        .map(|u| (u.userid.clone(), u))
        .collect();
    for s in seats {
        if let Some(u) = users.get(&s.userid) {
            if !is_marked(u.comment.as_deref(), &opts.lab) {
                return Err(Error::Refused {
                    why: format!(
                        "user {} exists and is not lab {}'s (its comment is {}, expected \"{mark}\"); rename the student or remove that user yourself",
                        s.userid, opts.lab, u.comment.as_deref().map_or_else(|| "empty".to_owned(), |c| format!("\"{}\"", crate::sheet::line_cell(c)))
                    ),
                });
            }
        }
    }
    let guests: BTreeMap<VmId, GuestSummary> = VmApi::new(api.client().clone())
        .list_guests()
        .await?
        .into_iter()
        .map(|g| (g.vmid, g))
        .collect();
    if let Some(s) = seats.iter().find(|s| !guests.contains_key(&s.vmid)) {
        return Err(Error::Refused {
            why: format!("guest {} of {} does not exist", s.vmid, s.student),
        });
    }
    let mut sheet = Sheet::load(&opts.sheet)?;

    // The role.
    match api.role(&role).await? {
        None => {
            if !opts.dry_run {
                api.create_role(&role, EXAM_PRIVILEGES).await?;
            }
            report.push("create role", EXAM_ROLE, wet(Outcome::Done));
        }
        Some(p) if p != EXAM_PRIVILEGES.iter().cloned().collect::<BTreeSet<_>>() => {
            if !opts.dry_run {
                api.set_role_privs(&role, EXAM_PRIVILEGES).await?;
            }
            report.push("fix role", EXAM_ROLE, wet(Outcome::Done));
        }
        Some(_) => report.push("role", EXAM_ROLE, Outcome::AlreadyDone),
    }

    // The users, one at a time.
    let mut done_users = BTreeSet::new();
    let mut recreated = BTreeSet::new();
    let now = unix_now();
    for s in seats {
        if !done_users.insert(s.userid.clone()) {
            continue;
        }
        let existing = users.get(&s.userid);
        let needs_password = opts.realm == Realm::Pve;
        // What the sheet knows, checked against the cluster's stamp.
        let row = sheet.get(s.userid.as_str());
        let cluster_stamp = existing.and_then(|u| stamp_of(u.comment.as_deref()));
        let sheet_stamp = row.and_then(|r| r.stamp.as_deref());
        let doubt = match (row.and_then(|r| r.password.as_ref()), existing) {
            _ if !needs_password => None,
            (_, None) => None,
            (None, Some(_)) => Some(format!(
                "{} exists, but its password is not on the sheet {}",
                s.userid,
                opts.sheet.display()
            )),
            (Some(_), Some(_)) if sheet_stamp != cluster_stamp => Some(format!(
                "the sheet {} is stale for {}: its password has stamp {}, the user on the \
                 cluster {}",
                opts.sheet.display(),
                s.userid,
                sheet_stamp.unwrap_or("(none)"),
                cluster_stamp.map_or_else(|| "has none".to_owned(), |c| format!("has {c}")),
            )),
            (Some(_), Some(_)) => None,
        };
        // A disabled or expired user (revoked by `lab down`) is re-enabled only with a new
        // password: enabling it as it is would revive last exam's password.
        let revive = needs_password && existing.is_some_and(|u| !u.usable_at(now));
        let replace =
            existing.is_some() && (revive || opts.reset.wants(&s.userid, doubt.is_none()));
        match existing {
            Some(u) if !replace => {
                if let Some(why) = doubt {
                    // Never trust it, never replace it unasked: the row loses its password.
                    set_row(&mut sheet, s, None, None);
                    report.push("password", s.userid.to_string(), Outcome::Unknown);
                    unknown.push((s.userid.clone(), why));
                }
                if !u.usable_at(now) {
                    if !opts.dry_run {
                        let upd = UserUpdate {
                            enable: Some(true),
                            expire: Some(0),
                            comment: None,
                        };
                        api.update_user(&s.userid, &upd).await?;
                    }
                    report.push("enable user", s.userid.to_string(), wet(Outcome::Done));
                } else {
                    report.push("user", s.userid.to_string(), Outcome::AlreadyDone);
                }
            }
            _ => {
                // New, or ours with a password to replace (asked for): (re)create.
                let what = if revive {
                    "enable user with a new password"
                } else if replace {
                    "replace password"
                } else {
                    "create user"
                };
                if opts.dry_run {
                    report.push(what, s.userid.to_string(), Outcome::WouldDo);
                    continue;
                }
                let password = needs_password.then(generate_password);
                let stamp = needs_password.then(new_stamp);
                if let Some(pw) = &password {
                    // Persist first: a crash after this point cannot lose the password.
                    set_row(&mut sheet, s, Some(pw.expose().to_owned()), stamp.clone());
                    sheet.write(&opts.sheet, Format::Json)?;
                }
                if replace {
                    api.delete_user(&s.userid).await?;
                    recreated.insert(s.userid.clone());
                }
                let mut nu = NewUser::new(s.userid.clone());
                nu.password = password;
                nu.comment = Some(user_comment(&opts.lab, stamp.as_deref()));
                nu.firstname = Some(s.student.clone());
                api.create_user(&nu).await?;
                report.push(what, s.userid.to_string(), Outcome::Done);
            }
        }
    }

    // The ACL: exactly one LabctlExam entry per seat for the lab's users.
    let ours: BTreeSet<&Userid> = seats.iter().map(|s| &s.userid).collect();
    let lab_userids: BTreeSet<Userid> = users
        .values()
        .filter(|u| is_marked(u.comment.as_deref(), &opts.lab))
        .map(|u| u.userid.clone())
        .chain(ours.iter().map(|u| (*u).clone()))
        .collect();
    let current: BTreeSet<(AclPath, Subject, RoleId)> = api
        .acl()
        .await?
        .iter()
        .filter(|e| e.role == role)
        .filter(|e| matches!(&e.subject, Subject::User(u) if lab_userids.contains(u) && !recreated.contains(u)))
        .map(acl_key)
        .collect();
    let wanted: Vec<AclEntry> = seats
        .iter()
        .map(|s| AclEntry {
            path: AclPath::vm(s.vmid),
            subject: Subject::User(s.userid.clone()),
            role: role.clone(),
            propagate: false,
        })
        .collect();
    let wanted_keys: BTreeSet<_> = wanted.iter().map(acl_key).collect();
    for e in &wanted {
        let target = format!("{} {} {}", e.path, s_name(&e.subject), e.role);
        if current.contains(&acl_key(e)) {
            report.push("ACL", target, Outcome::AlreadyDone);
        } else {
            if !opts.dry_run {
                api.grant(e).await?;
            }
            report.push("grant ACL", target, wet(Outcome::Done));
        }
    }
    for (path, subject, role) in current.iter().filter(|k| !wanted_keys.contains(*k)) {
        let e = AclEntry {
            path: path.clone(),
            subject: subject.clone(),
            role: role.clone(),
            propagate: false,
        };
        if !opts.dry_run {
            api.revoke(&e).await?;
        }
        report.push(
            "remove ACL",
            format!("{path} {} {role}", s_name(subject)),
            wet(Outcome::Done),
        );
    }

    // The sheet, complete.
    for s in seats {
        let (known, stamp) = sheet
            .get(s.userid.as_str())
            .map(|c| (c.password.clone(), c.stamp.clone()))
            .unwrap_or_default();
        set_row(&mut sheet, s, known, stamp);
        if let Some(row) = sheet
            .rows
            .iter_mut()
            .find(|r| r.userid == s.userid.as_str() && r.vmid == s.vmid.get())
        {
            if let Some(g) = guests.get(&s.vmid) {
                let node = g.node.as_str().to_owned();
                let host = opts.console_host.clone().unwrap_or_else(|| node.clone());
                row.console =
                    (g.kind == GuestKind::Qemu).then(|| console_link(&host, &node, s.vmid.get()));
                row.node = Some(node);
            }
        }
    }
    let keep: BTreeSet<(String, u32)> = seats
        .iter()
        .map(|s| (s.userid.to_string(), s.vmid.get()))
        .collect();
    sheet
        .rows
        .retain(|r| keep.contains(&(r.userid.clone(), r.vmid)));
    if !opts.dry_run {
        sheet.write(&opts.sheet, Format::Json)?;
    }
    Ok(GrantReport {
        report,
        sheet,
        unknown,
    })
}

fn s_name(s: &Subject) -> String {
    match s {
        Subject::User(u) => u.to_string(),
        Subject::Group(g) => g.to_string(),
        Subject::Token(t) => t.clone(),
    }
}

/// Insert or update the row of a seat (all rows of the user share the password and its
/// stamp).
fn set_row(sheet: &mut Sheet, s: &Seat, password: Option<String>, stamp: Option<String>) {
    for r in sheet
        .rows
        .iter_mut()
        .filter(|r| r.userid == s.userid.as_str())
    {
        r.password.clone_from(&password);
        r.stamp.clone_from(&stamp);
    }
    let row = Credential {
        student: s.student.clone(),
        userid: s.userid.to_string(),
        password,
        stamp,
        vmid: s.vmid.get(),
        hostname: s.hostname.clone(),
        ip: s.address.map(|a| a.to_string()),
        node: None,
        console: None,
    };
    match sheet
        .rows
        .iter_mut()
        .find(|r| r.userid == row.userid && r.vmid == row.vmid)
    {
        Some(r) => {
            r.student = row.student;
            r.hostname = row.hostname.or(r.hostname.take());
            r.ip = row.ip.or(r.ip.take());
        }
        None => sheet.rows.push(row),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Settings of [`revoke`].
#[derive(Debug, Clone)]
pub struct RevokeOptions {
    /// The lab's name.
    pub lab: String,
    /// Only report what would change.
    pub dry_run: bool,
}

/// End the exam's access: disable and expire the lab's users (their next request is
/// refused), remove their ACL entries, and stop every open console task on the lab's
/// guests (the seats' and those of the removed ACL entries) or of the lab's users.
/// Idempotent; a second run reports everything as already so and sends no write.
pub async fn revoke(api: &AccessApi, opts: &RevokeOptions, seats: &[Seat]) -> Result<Report> {
    let mut report = Report::default();
    let wet = |o: Outcome| if opts.dry_run { Outcome::WouldDo } else { o };
    let users = lab_users(api, &opts.lab).await?;
    let ids: BTreeSet<Userid> = users.iter().map(|u| u.userid.clone()).collect();
    let now = unix_now();

    // 1. Refuse the users' next requests (and new consoles) first.
    for u in &users {
        if u.enable {
            if !opts.dry_run {
                let upd = UserUpdate {
                    enable: Some(false),
                    expire: Some(now.max(1)),
                    comment: None,
                };
                api.update_user(&u.userid, &upd).await?;
            }
            report.push("disable user", u.userid.to_string(), wet(Outcome::Done));
        } else {
            report.push("user disabled", u.userid.to_string(), Outcome::AlreadyDone);
        }
    }

    // 2. Their ACL entries (any role: they are the lab's users).
    let mut vmids: BTreeSet<VmId> = seats.iter().map(|s| s.vmid).collect();
    let entries: Vec<AclEntry> = api
        .acl()
        .await?
        .into_iter()
        .filter(|e| matches!(&e.subject, Subject::User(u) if ids.contains(u)))
        .collect();
    for e in &entries {
        vmids.extend(e.path.vmid());
        if !opts.dry_run {
            api.revoke(e).await?;
        }
        report.push(
            "remove ACL",
            format!("{} {} {}", e.path, s_name(&e.subject), e.role),
            wet(Outcome::Done),
        );
    }
    if entries.is_empty() {
        report.push("ACL", "entries of the lab's users", Outcome::AlreadyDone);
    }

    // 3. Open consoles: one task listing per node.
    let mut stopped_any = false;
    // With no lab user and no lab guest known, no console can be the lab's: no listing.
    let nodes = if vmids.is_empty() && ids.is_empty() {
        Vec::new()
    } else {
        nodes(api.client()).await?
    };
    for node in nodes {
        for t in api.console_tasks(&node, None).await? {
            let user = t.user.split('!').next().unwrap_or_default();
            let lab_guest = t.vmid.is_some_and(|v| vmids.contains(&v));
            let lab_user = user.parse::<Userid>().is_ok_and(|u| ids.contains(&u));
            if !(lab_guest || lab_user) {
                continue;
            }
            if !opts.dry_run {
                match api.stop_task(&t.upid).await {
                    Ok(()) => {}
                    // It ended on its own meanwhile.
                    Err(e) if matches!(&e, Error::Api(a) if a.is_not_found()) => {}
                    Err(e) => return Err(e),
                }
            }
            stopped_any = true;
            report.push("stop console", t.upid.to_string(), wet(Outcome::Done));
        }
    }
    if !stopped_any {
        report.push("consoles", "of the lab's guests", Outcome::AlreadyDone);
    }
    Ok(report)
}

/// The cluster's node names (`GET /nodes`).
async fn nodes(client: &PveClient) -> Result<Vec<NodeName>> {
    #[derive(serde::Deserialize)]
    struct N {
        node: String,
    }
    let list: Vec<N> = client.get("/nodes", &pve_auth::Params::new()).await?;
    Ok(list
        .into_iter()
        .filter_map(|n| NodeName::new(n.node).ok())
        .collect())
}

/// One check of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The student's login.
    pub userid: String,
    /// What was checked.
    pub what: String,
    /// Whether it held.
    pub ok: bool,
    /// What was seen.
    pub detail: String,
}

/// The checks of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// In order.
    pub checks: Vec<Check>,
}

impl VerifyReport {
    fn push(
        &mut self,
        userid: &Userid,
        what: impl Into<String>,
        ok: bool,
        detail: impl Into<String>,
    ) {
        self.checks.push(Check {
            userid: userid.to_string(),
            what: what.into(),
            ok,
            detail: detail.into(),
        });
    }

    /// Every check held (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    /// The checks that failed.
    pub fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }
}

/// Logs a student in: given the user id and password, a client for the same host.
pub type Login<'a> = &'a (dyn Fn(&Userid, &Secret) -> Result<PveClient> + Send + Sync);

fn ids(set: &BTreeSet<VmId>) -> String {
    set.iter()
        .map(VmId::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn outcome_403(r: &Result<impl Sized>) -> (bool, String) {
    match r {
        Err(e) if e.is_permission() => (true, "403".into()),
        Err(e) => (false, format!("expected 403, got: {e}")),
        Ok(_) => (false, "expected 403, the call succeeded".into()),
    }
}

/// As each student (password from the sheet): `/cluster/resources` shows exactly their
/// own guest(s); their console opens (and is closed again); a neighbour's guest answers
/// 403 for `status/current` and `vncproxy`.
///
/// `admin` (the caller's own client) only looks up where the guests are.
pub async fn verify(
    admin: &AccessApi,
    sheet: &Sheet,
    seats: &[Seat],
    login: Login<'_>,
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let placement: BTreeMap<VmId, (NodeName, GuestKind)> = VmApi::new(admin.client().clone())
        .list_guests()
        .await?
        .into_iter()
        .map(|g| (g.vmid, (g.node, g.kind)))
        .collect();
    let mut by_user: BTreeMap<&Userid, Vec<&Seat>> = BTreeMap::new();
    for s in seats {
        by_user.entry(&s.userid).or_default().push(s);
    }
    let users: Vec<&Userid> = by_user.keys().copied().collect();
    for (i, userid) in users.iter().enumerate() {
        let own: BTreeSet<VmId> = by_user[userid].iter().map(|s| s.vmid).collect();
        let Some(password) = sheet.get(userid.as_str()).and_then(Credential::secret) else {
            report.push(userid, "password on the sheet", false, "missing");
            continue;
        };
        let client = match login(userid, &password) {
            Ok(c) => c,
            Err(e) => {
                report.push(userid, "log in", false, e.to_string());
                continue;
            }
        };
        let vm = VmApi::new(client.clone());
        let api = AccessApi::new(client);
        let seen = match vm.list_guests().await {
            Ok(g) => g,
            Err(e) => {
                report.push(userid, "log in", false, e.to_string());
                continue;
            }
        };
        let seen_ids: BTreeSet<VmId> = seen.iter().map(|g| g.vmid).collect();
        report.push(
            userid,
            "sees exactly their own guests",
            seen_ids == own,
            format!("sees [{}], owns [{}]", ids(&seen_ids), ids(&own)),
        );
        for g in seen.iter().filter(|g| own.contains(&g.vmid)) {
            match api.open_vnc(&g.node, g.kind, g.vmid).await {
                Ok(p) => {
                    let closed = api.stop_task(&p.upid).await;
                    report.push(
                        userid,
                        format!("opens console of {}", g.vmid),
                        closed.is_ok(),
                        match closed {
                            Ok(()) => "opened and closed".to_owned(),
                            Err(e) => format!("opened, but closing failed: {e}"),
                        },
                    );
                }
                Err(e) => report.push(
                    userid,
                    format!("opens console of {}", g.vmid),
                    false,
                    e.to_string(),
                ),
            }
        }
        // A neighbour: the next student's first guest.
        let Some(nb) = users
            .get((i + 1) % users.len())
            .filter(|n| *n != userid)
            .and_then(|n| by_user[n].first())
        else {
            continue;
        };
        let Some((node, kind)) = placement.get(&nb.vmid).cloned() else {
            report.push(
                userid,
                format!("neighbour {} exists", nb.vmid),
                false,
                "not in /cluster/resources",
            );
            continue;
        };
        let path = pve_auth::api_path(&[
            "nodes",
            node.as_str(),
            kind.as_str(),
            &nb.vmid.to_string(),
            "status",
            "current",
        ]);
        let status: Result<serde_json::Value> = api
            .client()
            .get(&path, &pve_auth::Params::new())
            .await
            .map_err(Error::from);
        let (ok, detail) = outcome_403(&status);
        report.push(
            userid,
            format!("status/current of neighbour {} refused", nb.vmid),
            ok,
            detail,
        );
        let vnc = api.open_vnc(&node, kind, nb.vmid).await;
        if let Ok(p) = &vnc {
            let _ = api.stop_task(&p.upid).await;
        }
        let (ok, detail) = outcome_403(&vnc);
        report.push(
            userid,
            format!("console of neighbour {} refused", nb.vmid),
            ok,
            detail,
        );
    }
    Ok(report)
}

/// After [`revoke`]: every student's login is refused, and (as `admin`) no console task
/// is active on the lab's guests.
pub async fn verify_revoked(
    admin: &AccessApi,
    sheet: &Sheet,
    seats: &[Seat],
    login: Login<'_>,
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut seen = BTreeSet::new();
    for s in seats {
        if !seen.insert(&s.userid) {
            continue;
        }
        let refused = match sheet.get(s.userid.as_str()).and_then(Credential::secret) {
            None => Ok(()),
            Some(pw) => match login(&s.userid, &pw) {
                Err(e) if e.is_auth() => Ok(()),
                Err(e) => Err(e.to_string()),
                Ok(c) => match c
                    .get::<serde_json::Value>("/version", &pve_auth::Params::new())
                    .await
                {
                    Err(e) if e.is_auth() => Ok(()),
                    Err(e) => Err(e.to_string()),
                    Ok(_) => Err("the login still works".to_owned()),
                },
            },
        };
        let ok = refused.is_ok();
        report.push(
            &s.userid,
            "login refused",
            ok,
            refused.err().unwrap_or_else(|| "401".into()),
        );
    }
    let vmids: BTreeSet<VmId> = seats.iter().map(|s| s.vmid).collect();
    let mut open = Vec::new();
    for node in nodes(admin.client()).await? {
        for t in admin.console_tasks(&node, None).await? {
            if t.vmid.is_some_and(|v| vmids.contains(&v)) {
                open.push(t.upid.to_string());
            }
        }
    }
    let who = seats
        .first()
        .map(|s| s.userid.clone())
        .unwrap_or_else(|| admin.client().userid().clone());
    report.push(
        &who,
        "no console task of the lab is active",
        open.is_empty(),
        format!("{open:?}"),
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_and_from_the_alphabet() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.expose().len(), PASSWORD_LEN);
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().bytes().all(|c| ALPHABET.contains(&c)));
        assert_eq!(ALPHABET.len(), 56);
        assert_eq!(format!("{a:?}"), "***");
    }

    #[test]
    fn seats_derive_user_ids_and_refuse_shared_guests() {
        let v = |n| VmId::new(n).unwrap();
        let s = Seat::new("Anna Müller", &Realm::Pve, v(101)).unwrap();
        assert_eq!(s.userid.as_str(), "anna-m-ller@pve");
        let d = Seat::new("bob", &Realm::Directory("school".into()), v(102)).unwrap();
        assert_eq!(d.userid.as_str(), "bob@school");
        assert!(Seat::new("  !! ", &Realm::Pve, v(103)).is_err());
        let c = Seat::new("carl", &Realm::Pve, v(101)).unwrap();
        assert!(check_seats(&[s.clone(), c]).is_err());
        let s2 = Seat {
            vmid: v(104),
            ..s.clone()
        };
        assert!(check_seats(&[s, s2]).is_ok());
    }

    #[test]
    fn user_comments_carry_the_lab_and_the_password_stamp() {
        let stamp = new_stamp();
        assert_eq!(stamp.len(), 10);
        assert_ne!(stamp, new_stamp());
        let c = user_comment("exam1", Some(&stamp));
        assert_eq!(c, format!("labctl lab exam1 sheet:{stamp}"));
        assert!(is_marked(Some(&c), "exam1"));
        assert!(is_marked(Some("labctl lab exam1"), "exam1"));
        assert!(
            !is_marked(Some(&c), "exam"),
            "a prefix of another lab's name"
        );
        assert!(!is_marked(Some("labctl lab exam10 sheet:x"), "exam1"));
        assert!(!is_marked(Some("labctl lab exam1 by hand"), "exam1"));
        assert!(!is_marked(None, "exam1"));
        assert_eq!(stamp_of(Some(&c)), Some(stamp.as_str()));
        assert_eq!(stamp_of(Some("labctl lab exam1")), None);
        assert_eq!(stamp_of(Some("labctl lab exam1 sheet:")), None);
        assert!(Reset::Unknown.wants(&"a@pve".parse().unwrap(), false));
        assert!(!Reset::Unknown.wants(&"a@pve".parse().unwrap(), true));
        assert!(!Reset::Nobody.wants(&"a@pve".parse().unwrap(), false));
        let these = Reset::These(["a@pve".parse().unwrap()].into());
        assert!(these.wants(&"a@pve".parse().unwrap(), true));
        assert!(!these.wants(&"b@pve".parse().unwrap(), false));
    }

    #[test]
    fn a_report_step_prints_action_target_and_outcome_in_columns() {
        let step = |action, target: &str, outcome| Step {
            action,
            target: target.to_owned(),
            outcome,
        };
        assert_eq!(
            step("create user", "s01@pve", Outcome::Done).to_string(),
            format!("create user{}s01@pve{}done", " ".repeat(4), " ".repeat(34))
        );
        let lines: Vec<String> = [
            step("user", "s02@pve", Outcome::AlreadyDone),
            step(
                "grant ACL",
                "/vms/1002 s02@pve LabctlExam",
                Outcome::WouldDo,
            ),
            step("password", "s03@pve", Outcome::Unknown),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            lines,
            [
                format!("user{}s02@pve{}already so", " ".repeat(11), " ".repeat(34)),
                format!(
                    "grant ACL{}/vms/1002 s02@pve LabctlExam{}would do",
                    " ".repeat(6),
                    " ".repeat(13)
                ),
                format!(
                    "password{}s03@pve{}UNKNOWN: not on this sheet",
                    " ".repeat(7),
                    " ".repeat(34)
                ),
            ]
        );
    }

    #[test]
    fn exam_role_has_no_cdrom_backup_network_or_agent_files() {
        for p in [
            Privilege::VmConfigCdrom,
            Privilege::VmBackup,
            Privilege::VmConfigNetwork,
            Privilege::VmGuestAgentFileRead,
            Privilege::VmGuestAgentFileWrite,
            Privilege::VmGuestAgentUnrestricted,
            Privilege::VmConfigCloudinit,
        ] {
            assert!(!EXAM_PRIVILEGES.contains(&p), "{p}");
        }
        assert!(EXAM_PRIVILEGES.contains(&Privilege::VmConsole));
    }
}
