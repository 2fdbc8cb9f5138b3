//! The agent API (`POST /api/v1/auth`) as a web portal uses it: PASS for a
//! right code, FAIL with the agent error code for every kind of refusal, 403
//! for a wrong secret or an address outside the agent's network, and an audit
//! row for each, without any secret in it.

use pinwheel_tests::{alter_otc, http_post, mobile_otc, Daemon};
use serde_json::{json, Value};

const AGENT_SECRET: &str = "portal-secret-0123456789abcdef";

fn agent_daemon(address: &str) -> Daemon {
    Daemon::start(|c| {
        c.extra = format!(
            "[[agent]]\nname = \"portal\"\naddress = \"{address}\"\nsecret = \"{AGENT_SECRET}\"\n"
        )
    })
}

fn check(d: &Daemon, user: &str, otc: &str, secret: &str) -> (u16, Value) {
    let r = http_post(
        &d.url("/api/v1/auth"),
        &json!({"username": user, "otc": otc}),
        Some(secret),
    );
    let body = r.json();
    (r.status, body)
}

#[test]
fn pass_and_every_failure_code() {
    let d = agent_daemon("127.0.0.1/32");
    d.add_user("alice", "6284");
    let phone = d.path("alice.json");
    d.provision_device(&phone, "alice");

    let code = mobile_otc(&phone, "6284", Some(1));
    assert_eq!(
        check(&d, "alice", &code, AGENT_SECRET),
        (200, json!({"result": "PASS"}))
    );
    let bad = |body: &str| (200, json!({"result": "FAIL", "error": body}));
    assert_eq!(
        check(&d, "alice", &code, AGENT_SECRET),
        bad("AGENT_ERROR_BAD_OTC"),
        "replay"
    );
    assert_eq!(
        check(&d, "nobody", &code, AGENT_SECRET),
        bad("AGENT_ERROR_BAD_OTC"),
        "unknown user"
    );

    d.add_user("bob", "1357");
    assert_eq!(
        check(&d, "bob", "135701", AGENT_SECRET),
        bad("AGENT_ERROR_NO_SECURITY_STRINGS"),
        "no device"
    );

    d.ctl_ok(&["user", "disable", "alice"]);
    let fresh = mobile_otc(&phone, "6284", Some(2));
    assert_eq!(
        check(&d, "alice", &fresh, AGENT_SECRET),
        bad("AGENT_ERROR_USER_DISABLED")
    );
    d.ctl_ok(&["user", "enable", "alice"]);

    // Replay above was failure 1; three more wrong codes, then the fifth failure locks.
    for index in 10..13 {
        let wrong = alter_otc(&mobile_otc(&phone, "6284", Some(index)));
        assert_eq!(
            check(&d, "alice", &wrong, AGENT_SECRET),
            bad("AGENT_ERROR_BAD_OTC")
        );
    }
    let wrong = alter_otc(&mobile_otc(&phone, "6284", Some(13)));
    assert_eq!(
        check(&d, "alice", &wrong, AGENT_SECRET),
        bad("AGENT_ERROR_USER_LOGIN_TRIES_EXCEEDED")
    );
    assert_eq!(
        check(&d, "alice", &fresh, AGENT_SECRET),
        bad("AGENT_ERROR_USER_LOCKED")
    );

    // The same decisions are audited with the agent as source.
    let rows: Value =
        serde_json::from_str(&d.ctl_ok(&["--json", "audit", "--user", "alice"])).unwrap();
    let rows = rows.as_array().unwrap();
    assert!(rows
        .iter()
        .filter(|r| r["event"] == "auth")
        .all(|r| r["source"]
            .as_str()
            .unwrap()
            .starts_with("agent:portal@127.0.0.1:")));
    let text = serde_json::to_string(rows).unwrap();
    assert!(!text.contains(AGENT_SECRET) && !text.contains(&code) && !text.contains("6284"));
}

#[test]
fn wrong_secret_or_address_is_forbidden_and_audited() {
    let d = agent_daemon("127.0.0.1/32");
    let (status, body) = check(&d, "alice", "123401", "not-the-secret-at-all-000");
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "FORBIDDEN");
    let r = http_post(
        &d.url("/api/v1/auth"),
        &json!({"username": "alice", "otc": "123401"}),
        None,
    );
    assert_eq!(r.status, 403, "no secret: {r:?}");

    let elsewhere = agent_daemon("192.0.2.0/24");
    let (status, _) = check(&elsewhere, "alice", "123401", AGENT_SECRET);
    assert_eq!(status, 403, "right secret from outside the agent's network");

    let rows = d.ctl_ok(&["--json", "audit"]);
    assert!(rows.contains("bad_agent_secret"), "{rows}");
    assert!(rows.contains("no_agent_secret"), "{rows}");
    assert!(!rows.contains("not-the-secret"), "{rows}");
    let rows = elsewhere.ctl_ok(&["--json", "audit"]);
    assert!(rows.contains("address_not_allowed"), "{rows}");

    // A flood of unauthenticated requests cannot fill the audit trail: rows
    // about them are budgeted (10 a second).
    let start = std::time::Instant::now();
    for _ in 0..60 {
        let (status, _) = check(&elsewhere, "alice", "123401", "flood-secret-0123456789");
        assert_eq!(status, 403);
    }
    let seconds = start.elapsed().as_secs() + 2;
    let rows: Value =
        serde_json::from_str(&elsewhere.ctl_ok(&["--json", "audit", "--limit", "1000"])).unwrap();
    let agent_rows = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "agent-auth")
        .count();
    assert!(
        agent_rows as u64 <= 10 * seconds,
        "{agent_rows} audit rows for 61 refused requests in {seconds} s"
    );
}
