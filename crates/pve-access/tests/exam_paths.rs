//! The exam lifecycle's less travelled paths against `pve-sim` over HTTP on 127.0.0.1:
//! a grant after revoke, expired users, a directory realm, a drifted role, a moved
//! student, a student with two guests, consoles that are not the students' own, a
//! stop that fails, and verifications that must fail and say why.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use common::{student, Lab};
use pve_access::exam::{self, GrantOptions, Outcome, Realm, Report, Seat};
use pve_access::{
    AccessApi, Credential, Error, GuestKind, NodeName, Privilege, RoleId, Sheet, UserUpdate,
    Userid, VmId,
};
use pve_auth::{Params, Secret};
use pve_sim::RequestFault;
use serde_json::Value;

fn node() -> NodeName {
    NodeName::new("pve1").unwrap()
}

fn vm(n: u32) -> VmId {
    VmId::new(n).unwrap()
}

/// The `(action, target, outcome)` of every step whose target mentions `what`.
fn steps_on<'a>(r: &'a Report, what: &str) -> Vec<(&'a str, &'a str, Outcome)> {
    r.steps
        .iter()
        .filter(|s| s.target.contains(what))
        .map(|s| (s.action, s.target.as_str(), s.outcome.clone()))
        .collect()
}

fn did(r: &Report, action: &str, target: &str) -> bool {
    r.steps
        .iter()
        .any(|s| s.action == action && s.target.contains(target) && s.outcome == Outcome::Done)
}

fn user<'a>(st: &'a Value, userid: &str) -> &'a Value {
    &st["access"]["users"][userid]
}

#[tokio::test]
async fn a_grant_after_revoke_gives_every_student_a_new_password_and_the_old_one_stays_dead() {
    let lab = Lab::start().await;
    let seats = lab.seats(2).await;
    let first = exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    exam::revoke(&lab.admin, &lab.revoke_opts(), &seats)
        .await
        .unwrap();

    let again = exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    for s in &seats {
        let id = s.userid.as_str();
        assert!(
            did(&again.report, "enable user with a new password", id),
            "{:#?}",
            again.report
        );
        let (old, new) = (first.sheet.get(id).unwrap(), again.sheet.get(id).unwrap());
        // Compared without printing them: a failing assert must not show a password.
        assert!(
            old.password != new.password,
            "{id}: the same password again"
        );
        assert!(new.password.is_some());
        let u = user(&lab.state(), id).clone();
        assert_eq!(
            (&u["enable"], &u["expire"]),
            (&Value::Bool(true), &Value::from(0))
        );
    }
    assert!(again.unknown.is_empty());
    let login = lab.login();
    let v = exam::verify(&lab.admin, &again.sheet, &seats, &login)
        .await
        .unwrap();
    assert!(v.passed(), "{:#?}", v.failures());
    // Last exam's passwords do not come back with the users.
    let old = exam::verify_revoked(&lab.admin, &first.sheet, &seats, &login)
        .await
        .unwrap();
    assert!(old.passed(), "{:#?}", old.failures());
}

#[tokio::test]
async fn an_expired_but_enabled_user_is_revived_with_a_new_password_and_the_others_kept() {
    let lab = Lab::start().await;
    let seats = lab.seats(2).await;
    let first = exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    // Expired long ago, still enabled (an admin set it, or a clock moved).
    let upd = UserUpdate {
        expire: Some(1000),
        ..UserUpdate::default()
    };
    lab.admin.update_user(&seats[0].userid, &upd).await.unwrap();

    let again = exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    assert_eq!(
        steps_on(&again.report, "s01@pve")[0],
        ("enable user with a new password", "s01@pve", Outcome::Done),
        "{:#?}",
        again.report
    );
    assert_eq!(
        steps_on(&again.report, "s02@pve")[0],
        ("user", "s02@pve", Outcome::AlreadyDone)
    );
    let pw = |sheet: &Sheet, id: &str| sheet.get(id).unwrap().password.clone();
    assert!(
        pw(&again.sheet, "s01@pve") != pw(&first.sheet, "s01@pve"),
        "s01 was revived with a new password"
    );
    assert!(
        pw(&again.sheet, "s02@pve") == pw(&first.sheet, "s02@pve"),
        "s02 keeps its password"
    );
    assert_eq!(user(&lab.state(), "s01@pve")["expire"], 0);
    let v = exam::verify(&lab.admin, &again.sheet, &seats, &lab.login())
        .await
        .unwrap();
    assert!(v.passed(), "{:#?}", v.failures());
}

/// Realm `pam` stands in for a directory: the simulator knows users there, labctl sets
/// no password.
#[tokio::test]
async fn a_directory_user_disabled_by_revoke_is_enabled_again_without_a_password() {
    let lab = Lab::start().await;
    let _ = lab.seats(1).await;
    let realm = Realm::Directory("pam".into());
    let seats = vec![Seat::new("s01", &realm, vm(1001)).unwrap()];
    let opts = GrantOptions {
        realm,
        ..lab.opts()
    };
    let first = exam::grant(&lab.admin, &opts, &seats).await.unwrap();
    assert!(did(&first.report, "create user", "s01@pam"));
    assert!(
        first.sheet.get("s01@pam").unwrap().password.is_none(),
        "a directory user gets no password"
    );
    exam::revoke(&lab.admin, &lab.revoke_opts(), &seats)
        .await
        .unwrap();
    assert_eq!(user(&lab.state(), "s01@pam")["enable"], false);

    // A dry run says so and writes nothing.
    let writes = lab.writes();
    let dry = GrantOptions {
        dry_run: true,
        ..opts.clone()
    };
    let r = exam::grant(&lab.admin, &dry, &seats).await.unwrap();
    assert_eq!(
        steps_on(&r.report, "s01@pam")[0],
        ("enable user", "s01@pam", Outcome::WouldDo),
        "{:#?}",
        r.report
    );
    assert_eq!(lab.writes(), writes);
    assert_eq!(user(&lab.state(), "s01@pam")["enable"], false);

    // The same user, enabled as it is: no password to replace, none unknown.
    let r = exam::grant(&lab.admin, &opts, &seats).await.unwrap();
    assert_eq!(
        steps_on(&r.report, "s01@pam")[0],
        ("enable user", "s01@pam", Outcome::Done),
        "{:#?}",
        r.report
    );
    assert!(r.unknown.is_empty(), "{:?}", r.unknown);
    assert!(!r.report.steps.iter().any(|s| s.outcome == Outcome::Unknown));
    let u = user(&lab.state(), "s01@pam").clone();
    assert_eq!(
        (&u["enable"], &u["expire"]),
        (&Value::Bool(true), &Value::from(0))
    );
    assert_eq!(u["comment"], "labctl lab exam1", "not re-created");
    let r = exam::grant(&lab.admin, &opts, &seats).await.unwrap();
    assert_eq!(r.report.changes(), 0, "{:#?}", r.report);
}

#[tokio::test]
async fn an_exam_role_with_other_privileges_is_put_back_and_a_dry_run_only_says_so() {
    let lab = Lab::start().await;
    let seats = lab.seats(1).await;
    let role = RoleId::new(exam::EXAM_ROLE).unwrap();
    lab.admin
        .create_role(&role, &[Privilege::VmAudit, Privilege::VmBackup])
        .await
        .unwrap();
    let privs = || lab.state()["access"]["roles"][exam::EXAM_ROLE].clone();

    let dry = GrantOptions {
        dry_run: true,
        ..lab.opts()
    };
    let r = exam::grant(&lab.admin, &dry, &seats).await.unwrap();
    assert_eq!(
        steps_on(&r.report, exam::EXAM_ROLE)[0],
        ("fix role", exam::EXAM_ROLE, Outcome::WouldDo)
    );
    assert_eq!(privs(), serde_json::json!(["VM.Audit", "VM.Backup"]));

    let r = exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    assert_eq!(
        steps_on(&r.report, exam::EXAM_ROLE)[0],
        ("fix role", exam::EXAM_ROLE, Outcome::Done)
    );
    assert_eq!(
        privs(),
        serde_json::json!(["VM.Audit", "VM.Console", "VM.PowerMgmt"])
    );
    let r = exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    assert_eq!(
        steps_on(&r.report, exam::EXAM_ROLE)[0],
        ("role", exam::EXAM_ROLE, Outcome::AlreadyDone)
    );
}

#[tokio::test]
async fn a_student_moved_to_another_guest_loses_the_old_acl_entry_and_row() {
    let lab = Lab::start().await;
    let all = lab.seats(3).await;
    let seats = all[..2].to_vec();
    exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    assert!(lab.acl_has("/vms/1001", "s01@pve"));

    let mut moved = seats.clone();
    moved[0].vmid = vm(1003);
    let dry = GrantOptions {
        dry_run: true,
        ..lab.opts()
    };
    let writes = lab.writes();
    let r = exam::grant(&lab.admin, &dry, &moved).await.unwrap();
    assert!(
        r.report.steps.iter().any(|s| s.action == "remove ACL"
            && s.target == "/vms/1001 s01@pve LabctlExam"
            && s.outcome == Outcome::WouldDo),
        "{:#?}",
        r.report
    );
    assert_eq!(lab.writes(), writes);
    assert!(lab.acl_has("/vms/1001", "s01@pve"));

    let r = exam::grant(&lab.admin, &lab.opts(), &moved).await.unwrap();
    assert!(did(&r.report, "grant ACL", "/vms/1003 s01@pve"));
    assert!(did(&r.report, "remove ACL", "/vms/1001 s01@pve LabctlExam"));
    assert!(!lab.acl_has("/vms/1001", "s01@pve"));
    assert!(lab.acl_has("/vms/1003", "s01@pve"));
    let rows: BTreeSet<(String, u32)> = r
        .sheet
        .rows
        .iter()
        .map(|r| (r.userid.clone(), r.vmid))
        .collect();
    assert_eq!(
        rows,
        [("s01@pve".to_owned(), 1003), ("s02@pve".to_owned(), 1002)].into()
    );
    let v = exam::verify(&lab.admin, &r.sheet, &moved, &lab.login())
        .await
        .unwrap();
    assert!(v.passed(), "{:#?}", v.failures());
}

/// Rows by (user, guest).
fn rows(sheet: &Sheet) -> BTreeMap<(&str, u32), &Credential> {
    sheet
        .rows
        .iter()
        .map(|r| ((r.userid.as_str(), r.vmid), r))
        .collect()
}

/// A sheet row as shown: (user, guest), hostname, console link.
type Shown<'a> = ((&'a str, u32), Option<&'a str>, Option<String>);

#[tokio::test]
async fn a_student_with_two_guests_has_one_password_and_a_console_link_per_guest() {
    let lab = Lab::start().await;
    let all = lab.seats(3).await;
    let mut second = all[0].clone();
    second.vmid = vm(1002);
    second.hostname = Some("exam-02".into());
    let seats = vec![all[0].clone(), second, all[2].clone()];
    let r = exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    let link = |v: u32| {
        format!("https://pve.example:8006/?console=kvm&novnc=1&vmid={v}&node=pve1&resize=scale")
    };
    let got = rows(&r.sheet);
    let shown: Vec<Shown<'_>> = got
        .iter()
        .map(|(k, c)| (*k, c.hostname.as_deref(), c.console.clone()))
        .collect();
    assert_eq!(
        shown,
        [
            (("s01@pve", 1001), Some("exam-01"), Some(link(1001))),
            (("s01@pve", 1002), Some("exam-02"), Some(link(1002))),
            (("s03@pve", 1003), Some("exam-03"), Some(link(1003))),
        ]
    );
    let pw = |k: (&str, u32)| got[&k].password.clone();
    assert!(pw(("s01@pve", 1001)).is_some());
    // Passwords are compared without printing them.
    assert!(
        pw(("s01@pve", 1001)) == pw(("s01@pve", 1002)),
        "one password for both rows"
    );
    assert_eq!(got[&("s01@pve", 1001)].stamp, got[&("s01@pve", 1002)].stamp);
    assert!(
        pw(("s01@pve", 1001)) != pw(("s03@pve", 1003)),
        "students share no password"
    );
    assert!(lab.acl_has("/vms/1001", "s01@pve") && lab.acl_has("/vms/1002", "s01@pve"));

    let v = exam::verify(&lab.admin, &r.sheet, &seats, &lab.login())
        .await
        .unwrap();
    assert!(v.passed(), "{:#?}", v.failures());
    let mine = v
        .checks
        .iter()
        .find(|c| c.userid == "s01@pve" && c.what == "sees exactly their own guests")
        .unwrap();
    assert_eq!(mine.detail, "sees [1001, 1002], owns [1001, 1002]");

    let again = exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    assert_eq!(again.report.changes(), 0, "{:#?}", again.report);
    assert_eq!(again.sheet, r.sheet);
    // A reset gives both rows the one new password.
    let reset = GrantOptions {
        reset: exam::Reset::These([all[0].userid.clone()].into()),
        ..lab.opts()
    };
    let after = exam::grant(&lab.admin, &reset, &seats).await.unwrap();
    let now = rows(&after.sheet);
    let pw2 = |k: (&str, u32)| now[&k].password.clone();
    assert!(
        pw2(("s01@pve", 1001)) == pw2(("s01@pve", 1002)),
        "the new password on both rows"
    );
    assert!(
        pw2(("s01@pve", 1001)) != pw(("s01@pve", 1001)),
        "the reset student has a new password"
    );
    assert!(
        pw2(("s03@pve", 1003)) == pw(("s03@pve", 1003)),
        "the others keep theirs"
    );
    let v = exam::verify(&lab.admin, &after.sheet, &seats, &lab.login())
        .await
        .unwrap();
    assert!(v.passed(), "{:#?}", v.failures());
}

#[tokio::test]
async fn revoke_stops_consoles_on_the_labs_guests_and_of_the_labs_users_and_no_other() {
    let lab = Lab::start().await;
    let all = lab.seats(3).await;
    let seats = all[..2].to_vec();
    let granted = exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    // s01 may reach 1003 for a while (by hand, another role), opens its console there,
    // then that entry goes again: the console stays open.
    let p = Params::new()
        .with("path", "/vms/1003")
        .with("users", "s01@pve")
        .with("roles", "PVEVMUser");
    let _: Value = lab.client().put("/access/acl", &p).await.unwrap();
    let s01 = AccessApi::new(student(&lab, &granted.sheet, &seats[0]).await);
    let theirs = s01
        .open_vnc(&node(), GuestKind::Qemu, vm(1003))
        .await
        .unwrap();
    let _: Value = lab
        .client()
        .put("/access/acl", &p.clone().with("delete", true))
        .await
        .unwrap();
    // The teacher watches student 2's screen, and has a console of their own on 1003.
    let watching = lab
        .admin
        .open_vnc(&node(), GuestKind::Qemu, vm(1002))
        .await
        .unwrap();
    let own = lab
        .admin
        .open_vnc(&node(), GuestKind::Qemu, vm(1003))
        .await
        .unwrap();

    let r = exam::revoke(&lab.admin, &lab.revoke_opts(), &seats)
        .await
        .unwrap();
    let stopped: BTreeSet<String> = r
        .steps
        .iter()
        .filter(|s| s.action == "stop console")
        .map(|s| s.target.clone())
        .collect();
    assert_eq!(
        stopped,
        [theirs.upid.to_string(), watching.upid.to_string()].into(),
        "{r:#?}"
    );
    assert!(!r.steps.iter().any(|s| s.action == "consoles"), "{r:#?}");
    let open: Vec<String> = lab
        .admin
        .console_tasks(&node(), None)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.upid.to_string())
        .collect();
    assert_eq!(open, [own.upid.to_string()]);

    // Nothing left of the lab's: the second run says so once.
    let r = exam::revoke(&lab.admin, &lab.revoke_opts(), &seats)
        .await
        .unwrap();
    let consoles: Vec<_> = r
        .steps
        .iter()
        .filter(|s| s.target.contains("console") || s.action.contains("console"))
        .collect();
    assert_eq!(consoles.len(), 1, "{r:#?}");
    assert_eq!(
        (consoles[0].action, consoles[0].outcome.clone()),
        ("consoles", Outcome::AlreadyDone)
    );
}

#[tokio::test]
async fn revoke_without_lab_users_still_stops_consoles_on_the_seats_guests() {
    let lab = Lab::start().await;
    let seats = lab.seats(1).await;
    let open = lab
        .admin
        .open_vnc(&node(), GuestKind::Qemu, vm(1001))
        .await
        .unwrap();
    let r = exam::revoke(&lab.admin, &lab.revoke_opts(), &seats)
        .await
        .unwrap();
    assert!(did(&r, "stop console", &open.upid.to_string()), "{r:#?}");
    assert!(lab.state()["consoles"].as_array().unwrap().is_empty());

    // No user and no guest of the lab: no console can be the lab's, none is looked for.
    let before = lab.log.lock().unwrap().len();
    let r = exam::revoke(&lab.admin, &lab.revoke_opts(), &[])
        .await
        .unwrap();
    assert_eq!(r.changes(), 0);
    let sent: Vec<String> = lab.log.lock().unwrap()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(!sent.iter().any(|s| s.contains("/nodes")), "{sent:?}");
}

#[tokio::test]
async fn a_console_that_ended_meanwhile_is_no_error_but_a_failed_stop_is() {
    let lab = Lab::start().await;
    let seats = lab.seats(1).await;
    let open = lab
        .admin
        .open_vnc(&node(), GuestKind::Qemu, vm(1001))
        .await
        .unwrap();
    lab.sim
        .fail_next_request(
            "DELETE",
            "/nodes/pve1/tasks/",
            RequestFault::Status(404, "no such task"),
        )
        .unwrap();
    let r = exam::revoke(&lab.admin, &lab.revoke_opts(), &seats)
        .await
        .unwrap();
    assert!(did(&r, "stop console", &open.upid.to_string()), "{r:#?}");

    // The console is still there (the fault answered instead); now its stop fails.
    lab.sim
        .fail_next_request(
            "DELETE",
            "/nodes/pve1/tasks/",
            RequestFault::Status(500, "Internal Server Error"),
        )
        .unwrap();
    let e = exam::revoke(&lab.admin, &lab.revoke_opts(), &seats)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("HTTP 500"), "{e}");
    let r = exam::revoke(&lab.admin, &lab.revoke_opts(), &seats)
        .await
        .unwrap();
    assert!(did(&r, "stop console", &open.upid.to_string()), "{r:#?}");
    assert!(lab.state()["consoles"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn verify_fails_and_names_a_neighbour_that_answers_and_a_missing_password() {
    let lab = Lab::start().await;
    let seats = lab.seats(3).await;
    let granted = exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    let login = lab.login();

    // A neighbour's status failing otherwise than with 403 is no proof of a refusal.
    lab.sim
        .fail_next_request(
            "GET",
            "/nodes/pve1/qemu/1002/status/current",
            RequestFault::Status(500, "Internal Server Error"),
        )
        .unwrap();
    let v = exam::verify(&lab.admin, &granted.sheet, &seats, &login)
        .await
        .unwrap();
    assert!(!v.passed());
    let f = v.failures();
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        (f[0].userid.as_str(), f[0].what.as_str()),
        ("s01@pve", "status/current of neighbour 1002 refused")
    );
    assert!(
        f[0].detail.starts_with("expected 403, got: "),
        "{}",
        f[0].detail
    );

    // s01 reaches s02's guest (an entry made by hand); s03's password is not on the sheet.
    let p = Params::new()
        .with("path", "/vms/1002")
        .with("users", "s01@pve")
        .with("roles", exam::EXAM_ROLE);
    let _: Value = lab.client().put("/access/acl", &p).await.unwrap();
    let mut sheet = granted.sheet.clone();
    for r in sheet.rows.iter_mut().filter(|r| r.userid == "s03@pve") {
        r.password = None;
    }
    let v = exam::verify(&lab.admin, &sheet, &seats, &login)
        .await
        .unwrap();
    assert!(!v.passed());
    let failures: Vec<(&str, &str, &str)> = v
        .failures()
        .into_iter()
        .map(|c| (c.userid.as_str(), c.what.as_str(), c.detail.as_str()))
        .collect();
    assert_eq!(
        failures,
        [
            (
                "s01@pve",
                "sees exactly their own guests",
                "sees [1001, 1002], owns [1001]"
            ),
            (
                "s01@pve",
                "status/current of neighbour 1002 refused",
                "expected 403, the call succeeded"
            ),
            (
                "s01@pve",
                "console of neighbour 1002 refused",
                "expected 403, the call succeeded"
            ),
            ("s03@pve", "password on the sheet", "missing"),
        ]
    );
    // The other checks held and are there too.
    assert!(
        v.checks.iter().filter(|c| c.ok).count() >= 4,
        "{:#?}",
        v.checks
    );
    // The neighbour's console opened by the check was closed again.
    assert!(lab.state()["consoles"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn verify_revoked_checks_each_student_once_and_fails_while_a_login_works() {
    let lab = Lab::start().await;
    let all = lab.seats(3).await;
    let mut second = all[0].clone();
    second.vmid = vm(1003);
    let seats = vec![all[0].clone(), second, all[1].clone()];
    let granted = exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    let login = lab.login();

    let v = exam::verify_revoked(&lab.admin, &granted.sheet, &seats, &login)
        .await
        .unwrap();
    assert!(!v.passed());
    let checks: Vec<(&str, &str, bool, &str)> = v
        .checks
        .iter()
        .map(|c| (c.userid.as_str(), c.what.as_str(), c.ok, c.detail.as_str()))
        .collect();
    assert_eq!(
        checks,
        [
            ("s01@pve", "login refused", false, "the login still works"),
            ("s02@pve", "login refused", false, "the login still works"),
            (
                "s01@pve",
                "no console task of the lab is active",
                true,
                "[]"
            ),
        ]
    );

    exam::revoke(&lab.admin, &lab.revoke_opts(), &seats)
        .await
        .unwrap();
    // The login's own answer: refused (401) when logging in is refused …
    let refused: Error = pve_access::login_as(
        pve_auth::PveClient::builder(&lab.sim.base_url()),
        &seats[0].userid,
        &Secret::new(
            granted
                .sheet
                .get("s01@pve")
                .unwrap()
                .password
                .clone()
                .unwrap(),
        ),
    )
    .await
    .unwrap_err();
    assert!(refused.is_auth(), "{refused}");
    let answers = Mutex::new(vec![
        Err(Error::InvalidInput {
            what: "the test's login".into(),
            why: "no client for s02".into(),
        }),
        Err(refused),
    ]);
    let scripted = move |_: &Userid, _: &Secret| answers.lock().unwrap().pop().unwrap();
    let v = exam::verify_revoked(&lab.admin, &granted.sheet, &seats, &scripted)
        .await
        .unwrap();
    let logins: Vec<(&str, bool)> = v
        .checks
        .iter()
        .filter(|c| c.what == "login refused")
        .map(|c| (c.userid.as_str(), c.ok))
        .collect();
    // … and not when the login failed for another reason.
    assert_eq!(logins, [("s01@pve", true), ("s02@pve", false)]);
    assert!(
        v.checks[1].detail.contains("no client for s02"),
        "{:?}",
        v.checks[1]
    );

    // The refusal checked with a request that fails otherwise is no proof either.
    lab.sim
        .fail_next_request(
            "POST",
            "/access/ticket",
            RequestFault::Status(500, "Internal Server Error"),
        )
        .unwrap();
    let v = exam::verify_revoked(&lab.admin, &granted.sheet, &seats, &login)
        .await
        .unwrap();
    let f = v.failures();
    assert_eq!(f.len(), 1, "{:#?}", v.checks);
    assert_eq!(
        (f[0].userid.as_str(), f[0].what.as_str()),
        ("s01@pve", "login refused")
    );
    assert!(f[0].detail.contains("500"), "{}", f[0].detail);
    let v = exam::verify_revoked(&lab.admin, &granted.sheet, &seats, &login)
        .await
        .unwrap();
    assert!(v.passed(), "{:#?}", v.failures());
}
