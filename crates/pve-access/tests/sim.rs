//! The exam lifecycle against `pve-sim` over HTTP on 127.0.0.1: grant for 20, verify,
//! neighbours refused, revoke cuts logins and open consoles, idempotence, crash
//! recovery, foreign users and ACLs untouched.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{student, Lab};
use pve_access::exam::{self, GrantOptions, Outcome};
use pve_access::{AccessApi, Error, Sheet, VmId};
use pve_auth::Params;
use serde_json::Value;

#[tokio::test]
async fn twenty_students_grant_verify_neighbours_refused_revoke() {
    let lab = Lab::start().await;
    let seats = lab.seats(20).await;
    lab.foreign(1004).await;

    let granted = exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    let sheet = granted.sheet.clone();
    assert_eq!(sheet.rows.len(), 20);
    assert!(sheet
        .rows
        .iter()
        .all(|r| r.password.as_ref().unwrap().len() == 16));
    assert_eq!(Sheet::load(&lab.sheet_path()).unwrap(), sheet);
    let row = sheet.get("s03@pve").unwrap();
    assert_eq!(row.vmid, 1003);
    assert_eq!(row.hostname.as_deref(), Some("exam-03"));
    assert_eq!(
        row.console.as_deref(),
        Some("https://pve.example:8006/?console=kvm&novnc=1&vmid=1003&node=pve1&resize=scale")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(lab.sheet_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // One role, 20 users, 20 ACL entries, each written alone.
    let st = lab.state();
    assert_eq!(st["access"]["user_cfg_peak"], 1);
    assert_eq!(
        st["access"]["roles"]["LabctlExam"],
        serde_json::json!(["VM.Audit", "VM.Console", "VM.PowerMgmt"])
    );
    // The lab's marker, then the stamp of the password on the sheet.
    let comment = st["access"]["users"]["s07@pve"]["comment"]
        .as_str()
        .unwrap();
    let stamp = sheet.get("s07@pve").unwrap().stamp.clone().unwrap();
    assert_eq!(comment, format!("labctl lab exam1 sheet:{stamp}"));

    let login = lab.login();
    let v = exam::verify(&lab.admin, &sheet, &seats, &login)
        .await
        .unwrap();
    assert!(v.passed(), "{:#?}", v.failures());
    assert!(v.checks.len() >= 80, "{}", v.checks.len());
    assert!(lab.state()["consoles"].as_array().unwrap().is_empty());

    // Student 3 against student 4's guest; then opens their own console.
    let s3 = AccessApi::new(student(&lab, &sheet, &seats[2]).await);
    let status: pve_auth::Result<Value> = s3
        .client()
        .get("/nodes/pve1/qemu/1004/status/current", &Params::new())
        .await;
    let e = status.unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert_eq!(
        e.message(),
        Some("Permission check failed (/vms/1004, VM.Audit)")
    );
    let node = pve_access::NodeName::new("pve1").unwrap();
    let e = s3
        .open_vnc(&node, pve_access::GuestKind::Qemu, VmId::new(1004).unwrap())
        .await
        .unwrap_err();
    assert!(e.is_permission(), "{e}");
    let console = s3
        .open_vnc(&node, pve_access::GuestKind::Qemu, VmId::new(1003).unwrap())
        .await
        .unwrap();
    assert!(!format!("{console:?}").contains(console.ticket.expose()));

    // Grant twice changes nothing.
    let writes = lab.writes();
    let again = exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    assert_eq!(again.report.changes(), 0, "{:#?}", again.report);
    assert_eq!(lab.writes(), writes);
    assert_eq!(again.sheet, sheet);

    // Revoke: users disabled, ACL entries gone, the open console stopped.
    let r = exam::revoke(&lab.admin, &lab.revoke_opts(), &seats)
        .await
        .unwrap();
    let count = |a: &str| {
        r.steps
            .iter()
            .filter(|s| s.action == a && s.outcome == Outcome::Done)
            .count()
    };
    assert_eq!(count("disable user"), 20);
    assert_eq!(count("remove ACL"), 20);
    assert_eq!(count("stop console"), 1);
    let next: pve_auth::Result<Value> = s3.client().get("/version", &Params::new()).await;
    assert!(next.unwrap_err().is_auth());
    assert_eq!(lab.state()["consoles"], serde_json::json!([]));
    let gone = lab
        .admin
        .console_tasks(&node, Some(VmId::new(1003).unwrap()))
        .await
        .unwrap();
    assert!(gone.is_empty());
    let v = exam::verify_revoked(&lab.admin, &sheet, &seats, &login)
        .await
        .unwrap();
    assert!(v.passed(), "{:#?}", v.failures());

    // Revoke twice is a no-op.
    let writes = lab.writes();
    let r2 = exam::revoke(&lab.admin, &lab.revoke_opts(), &seats)
        .await
        .unwrap();
    assert_eq!(r2.changes(), 0, "{r2:#?}");
    assert_eq!(lab.writes(), writes);
    lab.foreign_untouched(1004);

    let seen = lab.check_schema();
    for route in [
        "GET /access/users",
        "POST /access/users",
        "PUT /access/users/{userid}",
        "GET /access/roles/{roleid}",
        "POST /access/roles",
        "GET /access/acl",
        "PUT /access/acl",
        "POST /nodes/{node}/qemu/{vmid}/vncproxy",
        "GET /nodes/{node}/tasks",
        "DELETE /nodes/{node}/tasks/{upid}",
    ] {
        assert!(seen.contains(route), "{route} not sent: {seen:?}");
    }
}

#[tokio::test]
async fn a_crash_between_steps_is_completed_by_the_next_run() {
    let lab = Lab::start().await;
    let seats = lab.seats(4).await;
    lab.foreign(1002).await;

    // A run killed at some instant (wherever the timeout falls, or not at all on a
    // fast machine): whatever it left, the next run completes it.
    let _ = tokio::time::timeout(
        Duration::from_millis(5),
        exam::grant(&lab.admin, &lab.opts(), &seats),
    )
    .await;
    exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();

    // Crash states made by hand: an ACL entry never written, a user never created
    // (its password already on the sheet), a sheet row lost.
    let p = Params::new()
        .with("path", "/vms/1002")
        .with("users", "s02@pve")
        .with("roles", "LabctlExam")
        .with("delete", true);
    let _: Value = lab.client().put("/access/acl", &p).await.unwrap();
    let _: Value = lab
        .client()
        .delete("/access/users/s04@pve", &Params::new())
        .await
        .unwrap();
    let mut sheet = Sheet::load(&lab.sheet_path()).unwrap();
    sheet.rows.retain(|r| r.userid != "s03@pve");
    sheet
        .write(&lab.sheet_path(), pve_access::Format::Json)
        .unwrap();

    let done = exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    let did = |a: &str, t: &str| {
        done.report
            .steps
            .iter()
            .any(|s| s.action == a && s.target.contains(t) && s.outcome == Outcome::Done)
    };
    assert!(did("grant ACL", "/vms/1002 s02@pve"), "{:#?}", done.report);
    assert!(did("create user", "s04@pve"));
    // The lost row is said, not silently replaced: its password stays unknown …
    assert_eq!(
        done.unknown
            .iter()
            .map(|(u, _)| u.as_str())
            .collect::<Vec<_>>(),
        ["s03@pve"]
    );
    assert!(done
        .report
        .steps
        .iter()
        .any(|s| s.outcome == Outcome::Unknown));
    assert_eq!(done.sheet.get("s03@pve").unwrap().password, None);
    // … until a reset is asked for.
    let reset = GrantOptions {
        reset: pve_access::exam::Reset::Unknown,
        ..lab.opts()
    };
    let done = exam::grant(&lab.admin, &reset, &seats).await.unwrap();
    let did = |a: &str, t: &str| {
        done.report
            .steps
            .iter()
            .any(|s| s.action == a && s.target.contains(t) && s.outcome == Outcome::Done)
    };
    assert!(did("replace password", "s03@pve"), "{:#?}", done.report);
    assert!(done.unknown.is_empty());
    let login = lab.login();
    let v = exam::verify(&lab.admin, &done.sheet, &seats, &login)
        .await
        .unwrap();
    assert!(v.passed(), "{:#?}", v.failures());
    let again = exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    assert_eq!(again.report.changes(), 0);

    // Revoke cut short, then completed.
    let _ = tokio::time::timeout(
        Duration::from_millis(10),
        exam::revoke(&lab.admin, &lab.revoke_opts(), &seats),
    )
    .await;
    exam::revoke(&lab.admin, &lab.revoke_opts(), &seats)
        .await
        .unwrap();
    let v = exam::verify_revoked(&lab.admin, &done.sheet, &seats, &login)
        .await
        .unwrap();
    assert!(v.passed(), "{:#?}", v.failures());
    assert!(!lab.acl_has("/vms/1001", "s01@pve"));
    lab.foreign_untouched(1002);
}

#[tokio::test]
async fn a_foreign_user_with_a_seats_name_is_refused_before_any_write() {
    let lab = Lab::start().await;
    let seats = lab.seats(2).await;
    let p = Params::new()
        .with("userid", "s02@pve")
        .with("comment", "someone else");
    let _: Value = lab.client().post("/access/users", &p).await.unwrap();
    let writes = lab.writes();
    let e = exam::grant(&lab.admin, &lab.opts(), &seats)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Refused { .. }), "{e}");
    assert!(e.to_string().contains("s02@pve"), "{e}");
    assert_eq!(lab.writes(), writes);
    assert!(lab.state()["access"]["users"].get("s01@pve").is_none());

    // A dry run reports and changes nothing.
    let _: Value = lab
        .client()
        .delete("/access/users/s02@pve", &Params::new())
        .await
        .unwrap();
    let writes = lab.writes();
    let dry = GrantOptions {
        dry_run: true,
        ..lab.opts()
    };
    let r = exam::grant(&lab.admin, &dry, &seats).await.unwrap();
    assert!(r.report.steps.iter().all(|s| s.outcome != Outcome::Done));
    assert_eq!(r.report.changes(), 5, "{:#?}", r.report);
    assert_eq!(lab.writes(), writes);
    assert!(!lab.sheet_path().exists());
}

#[tokio::test]
async fn the_library_against_the_simulator() {
    use pve_access::{
        login_as, AclEntry, AclPath, GroupId, NewUser, Privilege, RoleId, Subject, UserUpdate,
    };
    let lab = Lab::start().await;
    let api = &lab.admin;
    let group = GroupId::new("students").unwrap();
    api.create_group(&group, Some("class 4b")).await.unwrap();
    let uid: pve_access::Userid = "kim@pve".parse().unwrap();
    let mut u = NewUser::new(uid.clone());
    u.password = Some(pve_auth::Secret::new("first-password"));
    u.groups = vec![group.clone()];
    api.create_user(&u).await.unwrap();
    let info = api.user(&uid).await.unwrap().unwrap();
    assert!(info.enable && info.groups.contains("students"));
    assert!(api
        .user(&"nobody@pve".parse().unwrap())
        .await
        .unwrap()
        .is_none());
    assert_eq!(api.groups().await.unwrap()[0].users.len(), 1);

    let roles = api.roles().await.unwrap();
    let vmuser = roles
        .iter()
        .find(|r| r.roleid.as_str() == "PVEVMUser")
        .unwrap();
    assert!(vmuser.special && vmuser.privs.contains(&Privilege::VmBackup));
    let role = RoleId::new("Watch").unwrap();
    api.create_role(&role, &[Privilege::VmAudit]).await.unwrap();
    api.set_role_privs(&role, &[Privilege::VmAudit, Privilege::VmConsole])
        .await
        .unwrap();
    let entry = AclEntry {
        path: AclPath::new("/vms/100").unwrap(),
        subject: Subject::Group(group.clone()),
        role: role.clone(),
        propagate: true,
    };
    api.grant(&entry).await.unwrap();
    assert!(api.acl().await.unwrap().contains(&entry));
    let perms = api
        .permissions(Some(&uid), Some(&AclPath::new("/vms/100").unwrap()))
        .await
        .unwrap();
    let want: std::collections::BTreeSet<Privilege> = [Privilege::VmAudit, Privilege::VmConsole]
        .into_iter()
        .collect();
    assert_eq!(perms["/vms/100"], want);

    // A ticket for the user; a password change (root with a ticket) takes effect.
    let builder = || pve_auth::PveClient::builder(&lab.sim.base_url());
    let pw = pve_auth::Secret::new("first-password");
    let kim = login_as(builder(), &uid, &pw).await.unwrap();
    let own: std::collections::BTreeMap<String, Value> = kim
        .get("/access/permissions", &Params::new())
        .await
        .unwrap();
    assert!(own.contains_key("/vms/100"));
    let new_pw = pve_auth::Secret::new("second-password");
    api.set_password(&uid, &new_pw, None).await.unwrap();
    let e = login_as(builder(), &uid, &pw).await.unwrap_err();
    assert!(e.is_auth(), "{e}");
    login_as(builder(), &uid, &new_pw).await.unwrap();

    let upd = UserUpdate {
        enable: Some(false),
        ..UserUpdate::default()
    };
    api.update_user(&uid, &upd).await.unwrap();
    assert!(login_as(builder(), &uid, &new_pw)
        .await
        .unwrap_err()
        .is_auth());
    api.revoke(&entry).await.unwrap();
    api.delete_role(&role).await.unwrap();
    api.delete_user(&uid).await.unwrap();
    api.delete_group(&group).await.unwrap();
    assert!(api.acl().await.unwrap().is_empty());
    assert!(api.role(&role).await.unwrap().is_none());
    lab.check_schema();
}

#[tokio::test]
async fn a_lost_or_stale_sheet_replaces_no_password_and_is_said() {
    let lab = Lab::start().await;
    let seats = lab.seats(3).await;
    let first = exam::grant(&lab.admin, &lab.opts(), &seats).await.unwrap();
    assert!(first.unknown.is_empty());
    let writes = lab.writes();

    // Another directory: no sheet there. Nothing is written, every user is named.
    let dir = tempfile::tempdir().unwrap();
    let lost = GrantOptions {
        sheet: dir.path().join("none.json"),
        ..lab.opts()
    };
    let r = exam::grant(&lab.admin, &lost, &seats).await.unwrap();
    assert_eq!(r.unknown.len(), 3, "{:#?}", r.report);
    assert_eq!(r.report.changes(), 0);
    assert_eq!(lab.writes(), writes, "no user was deleted or re-created");
    assert!(r.sheet.rows.iter().all(|row| row.password.is_none()));

    // An old copy: after one student's password was replaced (asked for), the copy's row
    // for that student is stale and is dropped, the others still hold.
    let copy = dir.path().join("copy.json");
    std::fs::copy(lab.sheet_path(), &copy).unwrap();
    let reset = GrantOptions {
        reset: pve_access::exam::Reset::These([seats[0].userid.clone()].into()),
        ..lab.opts()
    };
    let r = exam::grant(&lab.admin, &reset, &seats).await.unwrap();
    assert_eq!(
        r.report.changes(),
        2,
        "replace s01 and grant its ACL again: {:#?}",
        r.report
    );
    let stale = GrantOptions {
        sheet: copy.clone(),
        ..lab.opts()
    };
    let r = exam::grant(&lab.admin, &stale, &seats).await.unwrap();
    assert_eq!(r.unknown.len(), 1, "{:#?}", r.unknown);
    assert_eq!(r.unknown[0].0, seats[0].userid);
    assert!(r.unknown[0].1.contains("stale"), "{}", r.unknown[0].1);
    let kept = Sheet::load(&copy).unwrap();
    assert_eq!(kept.get(seats[0].userid.as_str()).unwrap().password, None);
    assert!(kept
        .get(seats[1].userid.as_str())
        .unwrap()
        .password
        .is_some());
    let v = exam::verify(
        &lab.admin,
        &Sheet::load(&lab.sheet_path()).unwrap(),
        &seats,
        &lab.login(),
    )
    .await
    .unwrap();
    assert!(v.passed(), "{:#?}", v.failures());
}
