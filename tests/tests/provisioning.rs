//! Mobile Provision Codes, re-provisioning, string batches and the REST API.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use pinwheel_tests::{
    http_post, mobile, mobile_otc, mobile_state, mobile_token, spool_messages, CmdOutput, Daemon,
    HttpReply, RadiusOutcome::*,
};
use serde_json::json;

fn assert_provision_failure(out: &CmdOutput) {
    assert_eq!(out.code, Some(1), "provision must fail with exit 1: {out}");
    assert!(
        out.stdout.contains("Provisioning. Please wait...")
            || out.stderr.contains("Provisioning. Please wait..."),
        "{out}"
    );
    assert!(!out.stdout.contains("Device Provisioned"), "{out}");
    let lines: Vec<&str> = out.stderr.lines().map(str::trim).collect();
    assert!(lines.contains(&"Failure"), "stderr line `Failure`: {out}");
    assert!(
        lines
            .contains(&"Please check your settings or try again later. Message: Provision Failure"),
        "{out}"
    );
}

fn provision_body(user: &str, code: &str) -> serde_json::Value {
    json!({"username": user, "code": code, "device": {"name": "test-phone"}})
}

fn assert_failure_reply(r: &HttpReply) {
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(
        r.json(),
        json!({"error": "PROVISION_FAILURE", "message": "Provision Failure"}),
        "{r:?}"
    );
}

#[test]
fn reprovision_replaces_the_old_device() {
    let d = Daemon::start_default();
    let pin = "4096";
    d.add_user("alice", pin);
    let old = d.path("old-phone.json");
    d.provision_device(&old, "alice");
    let old_token = mobile_token(&old);
    // The old device works before re-provisioning.
    let c = mobile_otc(&old, pin, None);
    assert_eq!(d.auth("alice", &c), Accept);
    // Codes computed on the old device, not yet used.
    let old_codes: Vec<String> = [2, 30, 99]
        .iter()
        .map(|&i| mobile_otc(&old, pin, Some(i)))
        .collect();
    let r = d.post("/api/v1/strings", &json!({}), Some(&old_token));
    assert_eq!(
        r.status, 200,
        "old token still valid before re-provision: {r:?}"
    );

    // Re-provision on a new phone.
    let new = d.path("new-phone.json");
    d.provision_device(&new, "alice");
    let new_token = mobile_token(&new);
    assert_ne!(new_token, old_token);
    assert_ne!(
        mobile_state(&new)["device"]["device_id"],
        mobile_state(&old)["device"]["device_id"]
    );

    for c in &old_codes {
        assert_eq!(d.auth("alice", c), Reject, "old device's code {c}");
    }
    let c = mobile_otc(&new, pin, Some(5));
    assert_eq!(d.auth("alice", &c), Accept, "new device's code {c}");
    let c = mobile_otc(&new, pin, None);
    assert_eq!(d.auth("alice", &c), Accept, "new device's code {c}");

    let r = d.post("/api/v1/strings", &json!({}), Some(&old_token));
    assert_eq!(r.status, 401, "old token revoked: {r:?}");
    let r = d.post("/api/v1/strings", &json!({}), Some(&new_token));
    assert_eq!(r.status, 200, "new token works: {r:?}");
    let r = d.post("/api/v1/strings", &json!({}), Some("not-a-token"));
    assert_eq!(r.status, 401, "{r:?}");
    let r = d.post("/api/v1/strings", &json!({}), None);
    assert_eq!(r.status, 401, "no token: {r:?}");
}

#[test]
fn strings_refresh_invalidates_the_old_batch() {
    let d = Daemon::start_default();
    let pin = "7053";
    d.add_user("erin", pin);
    let phone = d.path("phone.json");
    d.provision_device(&phone, "erin");
    assert_eq!(mobile_state(&phone)["device"]["batch"], 1);
    let c = mobile_otc(&phone, pin, None);
    assert_eq!(d.auth("erin", &c), Accept);

    // Keep a copy of the old state to compute old-batch codes later.
    let copy = d.path("phone-old.json");
    std::fs::copy(&phone, &copy).unwrap();
    let old_code = mobile_otc(&copy, pin, Some(3));
    let old_code2 = mobile_otc(&copy, pin, Some(60));

    let out = mobile(&phone, &["strings", "refresh"]);
    assert!(out.success(), "{out}");
    let state = mobile_state(&phone);
    assert_eq!(state["device"]["batch"], 2, "{state}");
    assert_eq!(state["device"]["strings"].as_array().unwrap().len(), 99);
    assert_ne!(
        state["device"]["strings"],
        mobile_state(&copy)["device"]["strings"],
        "a new batch has new strings"
    );

    assert_eq!(
        d.auth("erin", &old_code),
        Reject,
        "old batch code {old_code}"
    );
    assert_eq!(
        d.auth("erin", &old_code2),
        Reject,
        "old batch code {old_code2}"
    );
    let new_code = mobile_otc(&phone, pin, Some(10));
    assert_eq!(
        d.auth("erin", &new_code),
        Accept,
        "new batch code {new_code}"
    );
    let new_code = mobile_otc(&phone, pin, None);
    assert_eq!(
        d.auth("erin", &new_code),
        Accept,
        "new batch code {new_code}"
    );
}

#[test]
fn expired_code_fails() {
    let d = Daemon::start(|c| c.code_ttl = Some("2s".into()));
    d.add_user("frank", "1470");
    let code = d.provision_send("frank");
    std::thread::sleep(Duration::from_secs(3));
    let phone = d.path("phone.json");
    let out = d.mobile_provision(&phone, "frank", &code);
    assert_provision_failure(&out);
    let show = d.ctl_ok(&["--json", "user", "show", "frank"]);
    let show: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert!(show["device"].is_null(), "no device bound: {show}");
    // A fresh code, used at once, still works.
    d.provision_device(&phone, "frank");
    let msg = d.spool_for("frank", "provision-code").pop().unwrap();
    // The message must not promise more than the code's 2 s, nor say "1 minutes".
    assert!(
        !msg.body.contains("valid for 1 minutes"),
        "validity stated for code_ttl = \"2s\":\n{}",
        msg.body
    );
}

#[test]
fn wrong_code_burns_and_codes_are_single_use() {
    let d = Daemon::start_default();
    d.add_user("gina", "2468");
    let phone = d.path("phone.json");

    // No user set at all.
    let out = mobile(
        &phone,
        &[
            "provision",
            "--server",
            &d.base_url(),
            "--code",
            "1234567890",
        ],
    );
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("User not set"), "{out}");

    // A wrong code burns the outstanding one.
    let code = d.provision_send("gina");
    let wrong: String = code
        .chars()
        .map(|c| char::from_digit((c.to_digit(10).unwrap() + 3) % 10, 10).unwrap())
        .collect();
    let out = d.mobile_provision(&phone, "gina", &wrong);
    assert_provision_failure(&out);
    let out = d.mobile_provision(&phone, "gina", &code);
    assert_provision_failure(&out);

    // Redeemed twice in a row: first success, second failure.
    let code = d.provision_send("gina");
    let out = d.mobile_provision(&phone, "gina", &code);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("Device Provisioned"), "{out}");
    let token = mobile_token(&phone);
    let other = d.path("other-phone.json");
    let out = d.mobile_provision(&other, "gina", &code);
    assert_provision_failure(&out);
    // The failed second attempt did not replace the device.
    let r = d.post("/api/v1/strings", &json!({}), Some(&token));
    assert_eq!(r.status, 200, "{r:?}");

    // The same through the REST API.
    let code = d.provision_send("gina");
    let r = d.post("/api/v1/provision", &provision_body("gina", &code), None);
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["strings"].as_array().map(Vec::len), Some(99), "{v}");
    for k in ["device_id", "device_token", "mode", "batch", "server"] {
        assert!(!v[k].is_null(), "{k} in {v}");
    }
    let r = d.post("/api/v1/provision", &provision_body("gina", &code), None);
    assert_failure_reply(&r);
    // A user who does not exist answers like a wrong code.
    let r = d.post("/api/v1/provision", &provision_body("nobody", &code), None);
    assert_failure_reply(&r);
}

#[test]
fn concurrent_redeem_succeeds_exactly_once() {
    let d = Daemon::start(|c| c.requests_per_hour = Some(100));
    d.add_user("hank", "9753");
    let url = d.url("/api/v1/provision");

    // What a wrong code looks like (burns nothing that matters: no code outstanding).
    let wrong = http_post(&url, &provision_body("hank", "0000000000"), None);
    assert_failure_reply(&wrong);

    const ROUNDS: usize = 20;
    const THREADS: usize = 2;
    for round in 0..ROUNDS {
        let code = d.provision_send("hank");
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (url, code, barrier) = (url.clone(), code.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    http_post(&url, &provision_body("hank", &code), None)
                })
            })
            .collect();
        let replies: Vec<HttpReply> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let ok: Vec<&HttpReply> = replies.iter().filter(|r| r.status == 200).collect();
        assert_eq!(
            ok.len(),
            1,
            "round {round}: exactly one success: {replies:?}"
        );
        assert_eq!(ok[0].json()["strings"].as_array().map(Vec::len), Some(99));
        for r in replies.iter().filter(|r| r.status != 200) {
            assert_eq!(r.status, wrong.status, "round {round}: {r:?}");
            assert_eq!(
                r.body, wrong.body,
                "round {round}: same body as a wrong code"
            );
            assert_eq!(r.content_type, wrong.content_type, "round {round}");
        }
    }
}

#[test]
fn provision_request_answers_the_same_for_unknown_users() {
    let d = Daemon::start_default();
    d.add_user("ivy", "8642");
    let seen = d.spool_for("ivy", "provision-code").len();
    let known = d.post(
        "/api/v1/provision/request",
        &json!({"username": "ivy"}),
        None,
    );
    let unknown = d.post(
        "/api/v1/provision/request",
        &json!({"username": "nobody-here"}),
        None,
    );
    assert_eq!(known.status, 202, "{known:?}");
    assert_eq!(unknown, known, "unknown user answered differently");
    // The known user really got a code; the unknown one nothing.
    let msg = d.wait_provision_message("ivy", seen);
    assert!(msg.provision_code().is_some());
    assert_eq!(
        d.wait_log_lines(&["event=provision-code", "nobody-here"], 1),
        1
    );
    assert!(d.spool_for("nobody-here", "provision-code").is_empty());
    assert_eq!(spool_messages(d.spool_dir()).len(), 1, "only ivy's message");
}

#[test]
fn provision_requests_per_hour_hold_under_concurrency() {
    let d = Daemon::start(|c| c.requests_per_hour = Some(2));
    d.add_user("jack", "1122");
    const N: usize = 10;
    let url = d.url("/api/v1/provision/request");
    let barrier = Arc::new(Barrier::new(N));
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                http_post(&url, &json!({"username": "jack"}), None)
            })
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.status, 202, "{r:?}");
    }
    let logged = d.wait_log_lines(&["event=provision-code", "jack"], N);
    assert_eq!(logged, N, "one audit line per request:\n{}", d.log());
    let sent = d.spool_for("jack", "provision-code").len();
    assert!(
        (1..=2).contains(&sent),
        "requests_per_hour = 2 but {sent} codes were sent to jack by {N} concurrent requests"
    );
    // Later requests are refused too.
    let r = d.post(
        "/api/v1/provision/request",
        &json!({"username": "jack"}),
        None,
    );
    assert_eq!(r.status, 202);
    d.wait_log_lines(&["event=provision-code", "jack"], N + 1);
    let after = d.spool_for("jack", "provision-code").len();
    assert!(after <= 2, "{after} codes sent with requests_per_hour = 2");
}

#[test]
fn a_delivered_code_works_at_once() {
    let d = Daemon::start(|c| c.requests_per_hour = Some(100));
    d.add_user("kate", "3344");
    let request = d.url("/api/v1/provision/request");
    let provision = d.url("/api/v1/provision");
    for round in 0..60 {
        let seen = d.spool_for("kate", "provision-code").len();
        let r = http_post(&request, &json!({"username": "kate"}), None);
        assert_eq!(r.status, 202);
        // Redeem as soon as the message is there, as a fast client would.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let code = loop {
            let msgs = d.spool_for("kate", "provision-code");
            if msgs.len() > seen {
                if let Some(c) = msgs.last().unwrap().provision_code() {
                    break c;
                }
            }
            assert!(std::time::Instant::now() < deadline, "no code delivered");
            thread::yield_now();
        };
        let r = http_post(&provision, &provision_body("kate", &code), None);
        assert_eq!(
            r.status, 200,
            "round {round}: the code was delivered but not yet redeemable: {r:?}"
        );
    }
}
