//! OATH mode end to end with real radclient: a user switched to OATH mode
//! provisions, gets an `otpauth://` key URI instead of strings, and logs in
//! with TOTP codes (never the same step twice), with PIN + code when
//! required, or with HOTP codes (look-ahead and admin resync).

use pinwheel::otc::oath::{self, KeyUri, OathKind};
use pinwheel_tests::{Daemon, RadiusOutcome::*};
use serde_json::json;

/// Sends the user a code and redeems it over REST; returns the key URI.
fn provision_oath(d: &Daemon, user: &str) -> KeyUri {
    let code = d.provision_send(user);
    let r = d.post(
        "/api/v1/provision",
        &json!({"username": user, "code": code, "device": {"name": "authenticator"}}),
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let body = r.json();
    assert_eq!(body["mode"], "oath", "{body}");
    assert!(
        body.get("strings").is_none(),
        "no strings in OATH mode: {body}"
    );
    let uri = body["otpauth_uri"].as_str().expect("otpauth_uri");
    let parsed = KeyUri::parse(uri).expect("a valid key URI");
    assert_eq!(parsed.account, user);
    assert_eq!(parsed.issuer, "Pinwheel");
    parsed
}

fn now() -> u64 {
    pinwheel::unix_now() as u64
}

/// Waits until at least `margin` seconds are left in the current 30 s step,
/// so a code and its check fall in the same step.
fn settle(margin: u64) {
    let left = 30 - now() % 30;
    if left < margin {
        std::thread::sleep(std::time::Duration::from_secs(left + 1));
    }
}

#[test]
fn totp_accepted_once_and_never_replayed() {
    let d = Daemon::start_default();
    d.add_user("erin", "3141");
    d.ctl_ok(&["user", "set-mode", "erin", "oath"]);
    let key = provision_oath(&d, "erin");
    let OathKind::Totp { period } = key.params.kind else {
        panic!("TOTP by default")
    };
    assert_eq!(period, 30);
    settle(8);
    let code = oath::totp(key.secret.as_bytes(), now(), 30, key.params.algorithm, 6);
    assert_eq!(d.auth("erin", &code), Accept, "current TOTP");
    assert_eq!(d.auth("erin", &code), Reject, "same code again");
    // One step back is inside the window but at or before the accepted step.
    let previous = oath::totp(
        key.secret.as_bytes(),
        now() - 30,
        30,
        key.params.algorithm,
        6,
    );
    assert_eq!(
        d.auth("erin", &previous),
        Reject,
        "earlier step after a later one"
    );
    // A code from the next step (clock skew) is accepted once.
    let next = oath::totp(
        key.secret.as_bytes(),
        now() + 30,
        30,
        key.params.algorithm,
        6,
    );
    assert_eq!(d.auth("erin", &next), Accept, "one step ahead");
    assert_eq!(d.auth("erin", &next), Reject, "and only once");
    // Two steps ago is outside the window.
    let old = oath::totp(
        key.secret.as_bytes(),
        now() - 60,
        30,
        key.params.algorithm,
        6,
    );
    assert_eq!(d.auth("erin", &old), Reject);
    // The strings endpoint refuses an OATH device.
    let rows = d.ctl_ok(&["--json", "audit", "--user", "erin"]);
    assert!(rows.contains("\"replay\""), "{rows}");
    assert!(!rows.contains(&code), "no code in the audit trail");
}

#[test]
fn require_pin_means_pin_then_code_exactly() {
    let d = Daemon::start_default();
    d.add_user("frank", "2718");
    d.ctl_ok(&["user", "set-mode", "frank", "oath", "--require-pin", "true"]);
    let key = provision_oath(&d, "frank");
    settle(10);
    let code = || oath::totp(key.secret.as_bytes(), now(), 30, key.params.algorithm, 6);
    assert_eq!(d.auth("frank", &code()), Reject, "code without PIN");
    assert_eq!(
        d.auth("frank", &format!("9999{}", code())),
        Reject,
        "wrong PIN"
    );
    assert_eq!(
        d.auth("frank", &format!("x2718{}", code())),
        Reject,
        "extra character in front"
    );
    assert_eq!(
        d.auth("frank", &format!("2718{}", code())),
        Accept,
        "PIN then code"
    );
}

#[test]
fn hotp_looks_ahead_and_resyncs() {
    let d = Daemon::start(|c| c.extra = "[oath]\nkind = \"hotp\"\n".into());
    d.add_user("gina", "1618");
    d.ctl_ok(&["user", "set-mode", "gina", "oath"]);
    let key = provision_oath(&d, "gina");
    assert_eq!(key.params.kind, OathKind::Hotp);
    let code = |c: u64| oath::hotp(key.secret.as_bytes(), c, key.params.algorithm, 6);
    assert_eq!(d.auth("gina", &code(0)), Accept);
    assert_eq!(d.auth("gina", &code(0)), Reject, "counter moved past 0");
    assert_eq!(
        d.auth("gina", &code(5)),
        Accept,
        "within the look-ahead of 10"
    );
    assert_eq!(d.auth("gina", &code(30)), Reject, "too far ahead");
    let out = d.ctl(&["token", "resync", "gina", &code(40), &code(42)]);
    assert_eq!(out.code, Some(1), "non-consecutive codes refused: {out}");
    d.ctl_ok(&["token", "resync", "gina", &code(40), &code(41)]);
    assert_eq!(
        d.auth("gina", &code(41)),
        Reject,
        "resync spends the codes it used"
    );
    assert_eq!(d.auth("gina", &code(42)), Accept, "after resync");
}

#[test]
fn strings_endpoint_refuses_oath_devices() {
    let d = Daemon::start_default();
    d.add_user("hank", "4242");
    d.ctl_ok(&["user", "set-mode", "hank", "oath"]);
    let code = d.provision_send("hank");
    let r = d.post(
        "/api/v1/provision",
        &json!({"username": "hank", "code": code}),
        None,
    );
    let token = r.json()["device_token"].as_str().unwrap().to_string();
    let r = d.post("/api/v1/strings", &json!({}), Some(&token));
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.json()["error"], "NOT_STRINGS_MODE");
}

#[test]
fn chap_works_for_oath_without_pin_and_is_refused_for_strings() {
    let d = Daemon::start_default();
    d.add_user("ivan", "5150");
    d.ctl_ok(&["user", "set-mode", "ivan", "oath"]);
    let key = provision_oath(&d, "ivan");
    settle(8);
    let code = oath::totp(key.secret.as_bytes(), now(), 30, key.params.algorithm, 6);
    let chap = |user: &str, code: &str| {
        let mut child = std::process::Command::new(pinwheel_tests::radclient())
            .args([
                "-x",
                "-r",
                "1",
                "-t",
                "3",
                &format!("127.0.0.1:{}", d.layout.radius_port),
                "auth",
                pinwheel_tests::SECRET,
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("User-Name = \"{user}\"\nCHAP-Password = \"{code}\"\nMessage-Authenticator = 0x00\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let out = chap("ivan", &code);
    assert!(
        out.contains("Received Access-Accept"),
        "CHAP with the current TOTP: {out}"
    );
    let out = chap("ivan", &code);
    assert!(
        out.contains("Received Access-Reject"),
        "same code again: {out}"
    );
    let wrong = if code.starts_with('0') { "1" } else { "0" }.to_string() + &code[1..];
    assert!(chap("ivan", &wrong).contains("Received Access-Reject"));

    d.add_user("judy", "2222");
    let phone = d.path("judy.json");
    d.provision_device(&phone, "judy");
    let otc = pinwheel_tests::mobile_otc(&phone, "2222", Some(1));
    assert!(
        chap("judy", &otc).contains("Received Access-Reject"),
        "strings cannot do CHAP"
    );
    let rows = d.ctl_ok(&["--json", "audit", "--user", "judy"]);
    assert!(rows.contains("chap_not_supported"), "{rows}");
    // The index was not spent: PAP still works.
    assert_eq!(d.auth("judy", &otc), Accept);
}
