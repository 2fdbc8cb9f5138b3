//! Two-stage (dual channel) logins with real radclient: the first request
//! (directory password or nothing) gets Access-Challenge with a State and
//! Reply-Message "One-Time Code" while a fresh security string goes to the
//! user's transport; the second request with that State and the code from the
//! string and PIN gets Access-Accept, once. Replayed, expired, foreign and
//! made-up States are rejected.

use std::io::Write;
use std::process::{Command, Stdio};

use pinwheel::otc::{extract, Pin, SecurityString};
use pinwheel_tests::{radclient_output, Daemon, RadiusClient, SECRET};

/// Runs radclient with `attrs`; returns its whole output.
fn radclient_raw(d: &Daemon, attrs: &str) -> String {
    radclient_output(d.layout.radius_port, "auth", SECRET, attrs, 3, 1).1
}

/// The State (as radclient prints it, `0x...`) of an Access-Challenge.
fn challenge_state(out: &str) -> String {
    assert!(out.contains("Received Access-Challenge"), "{out}");
    assert!(out.contains("Reply-Message = \"One-Time Code\""), "{out}");
    out.lines()
        .find_map(|l| l.trim().strip_prefix("State = "))
        .unwrap_or_else(|| panic!("State in the challenge: {out}"))
        .trim()
        .to_string()
}

fn first_leg(d: &Daemon, user: &str, password: &str) -> String {
    radclient_raw(
        d,
        &format!("User-Name = \"{user}\"\nUser-Password = \"{password}\"\nMessage-Authenticator = 0x00\n"),
    )
}

fn second_leg(d: &Daemon, user: &str, state: &str, code: &str) -> String {
    radclient_raw(
        d,
        &format!(
            "User-Name = \"{user}\"\nUser-Password = \"{code}\"\nState = {state}\nMessage-Authenticator = 0x00\n"
        ),
    )
}

/// The code the PIN makes of the newest security string sent to `user`.
fn code_from_spool(d: &Daemon, user: &str, pin: &str) -> String {
    let sent = d.spool_for(user, "security-string");
    let string = sent
        .last()
        .and_then(|m| m.body_value("Your security string is: "))
        .expect("a security string in the spool");
    extract(
        &SecurityString::parse(&string).unwrap(),
        &Pin::parse(pin, 4, 10).unwrap(),
    )
}

#[test]
fn challenge_then_code_accepted_once() {
    let d = Daemon::start(|c| {
        c.clients = vec![RadiusClient::default()];
        c.two_stage = true;
    });
    d.add_user("alice", "3827");
    let out = first_leg(&d, "alice", "");
    let state = challenge_state(&out);
    assert!(state.len() >= 2 + 32, "State of at least 16 bytes: {state}");
    let code = code_from_spool(&d, "alice", "3827");
    let out = second_leg(&d, "alice", &state, &code);
    assert!(out.contains("Received Access-Accept"), "{out}");
    let out = second_leg(&d, "alice", &state, &code);
    assert!(
        out.contains("Received Access-Reject"),
        "replayed State: {out}"
    );

    // A first request carrying a made-up State is rejected, never a fresh challenge.
    let out = second_leg(&d, "alice", "0x30313233343536373839616263646566", &code);
    assert!(out.contains("Received Access-Reject"), "{out}");
    // Another user's State.
    d.add_user("bob", "1111");
    let bob_state = challenge_state(&first_leg(&d, "bob", ""));
    let out = second_leg(&d, "alice", &bob_state, &code);
    assert!(out.contains("Received Access-Reject"), "{out}");
    let rows = d.ctl_ok(&["--json", "audit", "--user", "alice"]);
    assert!(
        rows.contains("\"challenge\"") && rows.contains("bad_state"),
        "{rows}"
    );
    assert!(!rows.contains(&code), "no code in the audit trail");
}

#[test]
fn expired_state_and_wrong_directory_password_are_rejected() {
    let d = Daemon::start(|c| {
        c.extra = "[dual_channel]\nttl = \"1s\"\n".into();
        c.clients = vec![RadiusClient::default()];
        c.two_stage = true;
    });
    d.add_user("carol", "5601");
    let state = challenge_state(&first_leg(&d, "carol", ""));
    let code = code_from_spool(&d, "carol", "5601");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let out = second_leg(&d, "carol", &state, &code);
    assert!(
        out.contains("Received Access-Reject"),
        "expired State: {out}"
    );

    // With a directory password set, the first leg needs it.
    let mut ctl = Command::new(pinwheel_tests::bin("pinwheelctl"))
        .args(["--config"])
        .arg(d.config_path())
        .args(["user", "set-password", "carol"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    ctl.stdin
        .take()
        .unwrap()
        .write_all(b"Tr0ub4dor&3\n")
        .unwrap();
    let out = ctl.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An empty password gets the decoy challenge (nothing sent, a State
    // that never works), like an unknown name's, no sooner than the default
    // first_leg_min_delay of 500 ms.
    let before = d.spool_for("carol", "security-string").len();
    let start = std::time::Instant::now();
    let decoy = challenge_state(&first_leg(&d, "carol", ""));
    let took = start.elapsed();
    assert!(took >= std::time::Duration::from_millis(500), "{took:?}");
    assert!(second_leg(&d, "carol", &decoy, &code).contains("Received Access-Reject"));
    assert_eq!(d.spool_for("carol", "security-string").len(), before);
    let start = std::time::Instant::now();
    let unknown = challenge_state(&first_leg(&d, "nobody", ""));
    let took = start.elapsed();
    assert!(took >= std::time::Duration::from_millis(500), "{took:?}");
    assert!(second_leg(&d, "nobody", &unknown, &code).contains("Received Access-Reject"));
    let start = std::time::Instant::now();
    let out = first_leg(&d, "nobody", "wrong");
    let took = start.elapsed();
    assert!(
        out.contains("Received Access-Reject"),
        "unknown name: {out}"
    );
    assert!(took >= std::time::Duration::from_millis(500), "{took:?}");
    let out = first_leg(&d, "carol", "wrong");
    assert!(
        out.contains("Received Access-Reject"),
        "wrong password: {out}"
    );
    let state = challenge_state(&first_leg(&d, "carol", "Tr0ub4dor&3"));
    let code = code_from_spool(&d, "carol", "5601");
    assert!(second_leg(&d, "carol", &state, &code).contains("Received Access-Accept"));
    assert!(!d.log().contains("Tr0ub4dor"), "password not logged");
}
