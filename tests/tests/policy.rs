//! Lockout, concurrency and the audit trail over real radclient: five wrong
//! codes lock a user, the right code is then refused until an admin unlocks
//! (or the lockout expires); the same code sent by two NASes at the same
//! moment passes once; every decision leaves an audit row with its reason
//! and no secret.

use std::time::Duration;

use pinwheel_tests::{alter_otc, mobile_otc, Daemon, RadiusOutcome::*};
use serde_json::Value;

/// The audit rows of `user` (oldest first), from `pinwheelctl --json audit`.
fn audit(d: &Daemon, user: &str) -> Vec<Value> {
    let text = d.ctl_ok(&["--json", "audit", "--user", user, "--limit", "1000"]);
    serde_json::from_str::<Value>(&text)
        .expect("audit JSON")
        .as_array()
        .expect("array")
        .clone()
}

fn reasons(rows: &[Value], event: &str) -> Vec<String> {
    rows.iter()
        .filter(|r| r["event"] == event)
        .map(|r| r["reason"].as_str().unwrap_or("-").to_string())
        .collect()
}

/// Sends five wrong codes (indexes 10..=14) for `user`.
fn five_wrong(d: &Daemon, phone: &std::path::Path, user: &str, pin: &str) {
    for index in 10..15 {
        let wrong = alter_otc(&mobile_otc(phone, pin, Some(index)));
        assert_eq!(d.auth(user, &wrong), Reject, "wrong code at index {index}");
    }
}

#[test]
fn five_wrong_codes_lock_until_an_admin_unlocks() {
    let d = Daemon::start(|c| c.extra = "[policy]\nmax_failures = 5\nlockout = \"0\"\n".into());
    d.add_user("alice", "4826");
    let phone = d.path("alice.json");
    d.provision_device(&phone, "alice");

    five_wrong(&d, &phone, "alice", "4826");
    let right = mobile_otc(&phone, "4826", Some(20));
    assert_eq!(
        d.auth("alice", &right),
        Reject,
        "locked: right code refused"
    );
    let show = d.ctl_ok(&["user", "show", "alice"]);
    assert!(show.contains("locked:    until unlocked"), "{show}");

    d.ctl_ok(&["user", "unlock", "alice"]);
    // The refused attempt did not look at the code: index 20 is still unspent.
    assert_eq!(d.auth("alice", &right), Accept, "after unlock");

    let rows = audit(&d, "alice");
    let auth = reasons(&rows, "auth");
    assert_eq!(
        auth,
        [
            "wrong_code",
            "wrong_code",
            "wrong_code",
            "wrong_code",
            "wrong_code",
            "locked",
            "-"
        ],
        "{rows:#?}"
    );
    assert_eq!(reasons(&rows, "lock"), ["too_many_failures"]);
    assert_eq!(reasons(&rows, "unlock"), ["-"]);
    assert!(rows
        .iter()
        .filter(|r| r["event"] == "auth")
        .all(|r| r["source"]
            .as_str()
            .unwrap()
            .starts_with("radius:localhost@127.0.0.1:")));
    let lock = rows.iter().find(|r| r["event"] == "unlock").unwrap();
    assert_eq!(lock["source"], "admin");
    // No PIN or code in any audit field.
    let text = serde_json::to_string(&rows).unwrap();
    assert!(!text.contains("4826") && !text.contains(&right), "{text}");
}

#[test]
fn lockout_expires_after_the_configured_time() {
    let d = Daemon::start(|c| c.extra = "[policy]\nmax_failures = 5\nlockout = \"2s\"\n".into());
    d.add_user("bob", "7391");
    let phone = d.path("bob.json");
    d.provision_device(&phone, "bob");
    five_wrong(&d, &phone, "bob", "7391");
    assert_eq!(d.auth("bob", &mobile_otc(&phone, "7391", Some(30))), Reject);
    std::thread::sleep(Duration::from_millis(3000));
    // After the lock expires the count is not fresh: one more wrong code
    // locks again at once, for twice as long.
    let wrong = alter_otc(&mobile_otc(&phone, "7391", Some(32)));
    assert_eq!(d.auth("bob", &wrong), Reject);
    assert_eq!(
        d.auth("bob", &mobile_otc(&phone, "7391", Some(33))),
        Reject,
        "locked again"
    );
    std::thread::sleep(Duration::from_millis(4200));
    assert_eq!(d.auth("bob", &mobile_otc(&phone, "7391", Some(31))), Accept);
    let rows = audit(&d, "bob");
    assert_eq!(
        reasons(&rows, "lock"),
        ["too_many_failures", "too_many_failures"]
    );
    // A success clears the count: five more failures are needed for the next lock.
    for index in 40..44 {
        let wrong = alter_otc(&mobile_otc(&phone, "7391", Some(index)));
        assert_eq!(d.auth("bob", &wrong), Reject);
    }
    assert_eq!(d.auth("bob", &mobile_otc(&phone, "7391", Some(45))), Accept);
}

#[test]
fn disabled_user_rejected_without_the_code_being_checked() {
    let d = Daemon::start_default();
    d.add_user("carol", "5173");
    let phone = d.path("carol.json");
    d.provision_device(&phone, "carol");
    d.ctl_ok(&["user", "disable", "carol"]);
    let code = mobile_otc(&phone, "5173", Some(5));
    assert_eq!(d.auth("carol", &code), Reject);
    d.ctl_ok(&["user", "enable", "carol"]);
    assert_eq!(d.auth("carol", &code), Accept, "index 5 was not spent");
    let rows = audit(&d, "carol");
    assert_eq!(reasons(&rows, "auth"), ["disabled", "-"]);
    assert_eq!(reasons(&rows, "disable").len(), 1);
}

#[test]
fn same_code_from_two_nases_at_the_same_moment_passes_once() {
    let d = Daemon::start_default();
    d.add_user("dave", "9052");
    let phone = d.path("dave.json");
    d.provision_device(&phone, "dave");
    for round in 0..15u32 {
        let code = mobile_otc(&phone, "9052", Some(round + 1));
        let outcomes: Vec<_> = std::thread::scope(|s| {
            let a = s.spawn(|| d.auth("dave", &code));
            let b = s.spawn(|| d.auth("dave", &code));
            vec![a.join().unwrap(), b.join().unwrap()]
        });
        let accepted = outcomes.iter().filter(|o| **o == Accept).count();
        assert_eq!(accepted, 1, "round {round}: {outcomes:?}");
    }
}

#[test]
fn set_pin_changes_the_pin_codes_are_built_from() {
    let d = Daemon::start_default();
    d.add_user("erin", "1111");
    let phone = d.path("erin.json");
    d.provision_device(&phone, "erin");
    d.ctl_ok(&["user", "set-pin", "erin", "--pin", "8642"]);
    assert_eq!(
        d.auth("erin", &mobile_otc(&phone, "1111", Some(3))),
        Reject,
        "old PIN"
    );
    assert_eq!(
        d.auth("erin", &mobile_otc(&phone, "8642", Some(4))),
        Accept,
        "new PIN"
    );

    // Without --pin, a PIN is generated and sent over the user's transport.
    let before = d.spool_for("erin", "pin").len();
    let out = d.ctl_ok(&["user", "set-pin", "erin"]);
    assert!(out.contains("generated PIN was sent"), "{out}");
    let sent = d.spool_for("erin", "pin");
    assert_eq!(sent.len(), before + 1);
    let pin = sent
        .last()
        .unwrap()
        .body_value("Your Pinwheel PIN is: ")
        .expect("PIN in the message");
    assert_eq!(
        d.auth("erin", &mobile_otc(&phone, &pin, Some(5))),
        Accept,
        "generated PIN"
    );
    assert!(
        !d.log().contains(&format!("PIN is: {pin}")),
        "PIN not logged"
    );
    let rows = audit(&d, "erin");
    assert_eq!(reasons(&rows, "set-pin").len(), 2);

    let out = d.ctl(&["user", "set-pin", "erin", "--pin", "12"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("bad PIN"), "{out}");
    let out = d.ctl(&["user", "set-pin", "nobody", "--pin", "1234"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("not found"), "{out}");
}
