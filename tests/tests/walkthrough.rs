//! The README walkthrough end to end, and the secrecy of everything it handles.

use pinwheel_tests::{
    alter_otc, contains_bytes, files_under, mobile, mobile_otc, mobile_strings, mobile_token,
    Daemon, RadiusOutcome::*, SECRET,
};
use serde_json::json;

/// `true` when `value` is in the log. Values shorter than 6 characters (a generated
/// 4-digit PIN) must stand alone, not inside a longer run of digits such as the
/// fraction of a timestamp.
fn log_contains(log: &str, value: &str) -> bool {
    if value.len() >= 6 {
        return log.contains(value);
    }
    let b = log.as_bytes();
    log.match_indices(value).any(|(i, _)| {
        let before = i
            .checked_sub(1)
            .map(|j| b[j].is_ascii_digit())
            .unwrap_or(false);
        let after = b.get(i + value.len()).is_some_and(|c| c.is_ascii_digit());
        !before && !after
    })
}

#[test]
fn readme_walkthrough() {
    let d = Daemon::start_default();
    let pin = "2580";
    let out = d.ctl(&[
        "user",
        "add",
        "alice",
        "--email",
        "alice@example.test",
        "--pin",
        pin,
    ]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("alice"), "{out}");

    // The code goes to the user's own transport, with a Provision URL.
    let seen = d.spool_for("alice", "provision-code").len();
    let sent = d.ctl(&["provision", "send", "alice"]);
    assert!(sent.success(), "{sent}");
    let msg = d.wait_provision_message("alice", seen);
    assert_eq!(msg.to, "alice@example.test");
    let code = msg.provision_code().expect("code in message");
    assert_eq!(code.len(), 10, "MPC {code:?}");
    assert!(code.chars().all(|c| c.is_ascii_digit()), "MPC {code:?}");
    let url = format!("{}/provision#user=alice&code={code}", d.base_url());
    assert!(
        msg.body.contains(&url),
        "Provision URL {url} in:\n{}",
        msg.body
    );
    assert_eq!(d.latest_provision_code("alice").as_deref(), Some(&*code));

    // The phone trades it for a device.
    let phone = d.path("alice-phone.json");
    let out = d.mobile_provision(&phone, "alice", &code);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("Provisioning. Please wait..."), "{out}");
    assert!(out.stdout.contains("Device Provisioned"), "{out}");
    assert_eq!(mobile_strings(&phone).len(), 99);
    let status = mobile(&phone, &["status"]);
    assert!(status.ok().contains("alice"), "{status}");
    let show = d.ctl_ok(&["--json", "user", "show", "alice"]);
    let show: serde_json::Value = serde_json::from_str(&show).expect("user show --json");
    assert!(!show["device"].is_null(), "device bound: {show}");

    // OTC + index: accepted once.
    let otc = mobile_otc(&phone, pin, None);
    assert_eq!(&otc[4..], "01", "first code uses index 01: {otc}");
    assert_eq!(d.auth("alice", &otc), Accept, "fresh OTC {otc}");
    assert_eq!(d.auth("alice", &otc), Reject, "same OTC {otc} again");

    // A wrong OTC spends its index: the right code for that index is then refused.
    let right = mobile_otc(&phone, pin, Some(42));
    let wrong = alter_otc(&right);
    assert_ne!(wrong, right);
    assert_eq!(d.auth("alice", &wrong), Reject, "wrong OTC {wrong}");
    assert_eq!(
        d.auth("alice", &right),
        Reject,
        "index 42 spent by the failure"
    );

    // Another fresh index still works.
    let next = mobile_otc(&phone, pin, Some(7));
    assert_eq!(d.auth("alice", &next), Accept, "fresh index 07: {next}");

    // The legacy form "OTC,NN" is accepted too, once.
    let c = mobile_otc(&phone, pin, Some(63));
    let legacy = format!("{},{}", &c[..4], &c[4..]);
    assert_eq!(d.auth("alice", &legacy), Accept, "legacy form {legacy}");
    assert_eq!(d.auth("alice", &c), Reject, "index 63 already used");

    // A user without a device.
    d.add_user("bob", "1357");
    assert_eq!(d.auth("bob", "135701"), Reject);
    assert_eq!(d.auth("bob", &next), Reject);
    // An unknown user.
    assert_eq!(d.auth("nobody", "123401"), Reject);

    // Status-Server is answered.
    assert_eq!(d.radius_status(SECRET, 3, 3), Accept);

    let status = d.ctl(&["status"]);
    assert!(status.success(), "{status}");
}

/// After a full walkthrough, no PIN, OTC, MPC, device token or security string is in
/// the daemon's log or in any file of its state dir.
#[test]
fn secrets_stay_out_of_log_and_state() {
    let mut d = Daemon::start_default();
    // An unusual PIN (6 digits so that its OTCs are long enough to search for).
    let pin = "835291";
    let mut secrets: Vec<(String, String)> = vec![("PIN".into(), pin.into())];
    d.add_user("carol", pin);
    // A second user with a generated PIN: that PIN is secret too.
    let out = d.ctl(&["user", "add", "dave", "--email", "dave@example.test"]);
    assert!(out.success(), "{out}");

    // A code asked for over REST (as the ResetPIN page does), replaced by one sent
    // by the admin before it is used.
    let r = d.post(
        "/api/v1/provision/request",
        &json!({"username": "carol"}),
        None,
    );
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(d.wait_log_lines(&["provision code sent", "carol"], 1), 1);
    let first = d
        .latest_provision_code("carol")
        .expect("code from the REST request");
    secrets.push(("unused MPC".into(), first));
    let mpc = d.provision_send("carol");
    secrets.push(("MPC".into(), mpc.clone()));
    let phone = d.path("carol-phone.json");
    let out = d.mobile_provision(&phone, "carol", &mpc);
    assert!(out.success(), "{out}");
    let token = mobile_token(&phone);
    secrets.push(("device token".into(), token.clone()));
    for (i, s) in mobile_strings(&phone).into_iter().enumerate() {
        secrets.push((format!("batch 1 string {}", i + 1), s));
    }

    // Codes: accepted, replayed, wrong, and over the legacy "OTC,NN" form.
    let mut typed = Vec::new();
    for _ in 0..3 {
        let c = mobile_otc(&phone, pin, None);
        assert_eq!(d.auth("carol", &c), Accept, "{c}");
        typed.push(c);
    }
    assert_eq!(d.auth("carol", &typed[0]), Reject);
    let right = mobile_otc(&phone, pin, Some(50));
    let wrong = alter_otc(&right);
    assert_eq!(d.auth("carol", &wrong), Reject);
    typed.push(right);
    typed.push(wrong);

    // A new batch.
    let out = mobile(&phone, &["strings", "refresh"]);
    assert!(out.success(), "{out}");
    for (i, s) in mobile_strings(&phone).into_iter().enumerate() {
        secrets.push((format!("batch 2 string {}", i + 1), s));
    }
    let c = mobile_otc(&phone, pin, None);
    assert_eq!(d.auth("carol", &c), Accept, "{c}");
    typed.push(c);
    // A failed provision attempt with a made-up code.
    let r = d.post(
        "/api/v1/provision",
        &json!({"username": "carol", "code": "7316402958", "device": {"name": "x"}}),
        None,
    );
    assert_eq!(r.status, 403);

    for t in &typed {
        secrets.push(("typed code".into(), t.clone()));
        secrets.push(("OTC".into(), t[..t.len() - 2].to_string()));
    }
    let dave_pin = d
        .spool_for("dave", "pin")
        .last()
        .and_then(|m| m.body_value("Your Pinwheel PIN is:"))
        .expect("dave's generated PIN in the spool");
    secrets.push(("generated PIN".into(), dave_pin));

    // The spool (the transport) is outside the state dir.
    assert!(!d.spool_dir().starts_with(d.state_dir()));

    let check = |when: &str, d: &Daemon| {
        let log = d.log();
        assert!(log.contains("carol"), "the log is captured: {log}");
        let files = files_under(d.state_dir());
        let names: Vec<String> = files
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n == "pinwheel.db"), "{names:?}");
        for (what, value) in &secrets {
            assert!(
                !log_contains(&log, value),
                "{when}: {what} {value:?} appears in the daemon log:\n{log}"
            );
            for (path, bytes) in &files {
                assert!(
                    !contains_bytes(bytes, value.as_bytes()),
                    "{when}: {what} {value:?} appears in {}",
                    path.display()
                );
            }
        }
    };
    check("while running", &d);
    let (status, _) = d.stop();
    assert!(status.success(), "exit {status}");
    check("after stop", &d);
}
