//! Requests the RADIUS server must drop without any answer.

use pinwheel_tests::{mobile_otc, Daemon, RadiusClient, RadiusOutcome::*, SECRET};

#[test]
fn no_reply_without_message_authenticator_or_with_a_wrong_secret() {
    let d = Daemon::start_default();
    let pin = "3141";
    d.add_user("alice", pin);
    let phone = d.path("phone.json");
    d.provision_device(&phone, "alice");

    // Each of these carries a right code: only the packet itself is at fault.
    let code = mobile_otc(&phone, pin, None);
    assert_eq!(
        d.radius_auth_timeout("alice", &code, false, SECRET, 1, 1),
        NoReply,
        "request without Message-Authenticator"
    );
    assert_eq!(
        d.radius_auth_timeout("alice", &code, true, "not-the-secret", 1, 1),
        NoReply,
        "request with a wrong shared secret"
    );
    assert_eq!(
        d.radius_status("not-the-secret", 1, 1),
        NoReply,
        "Status-Server with a wrong shared secret"
    );
    // A dropped request is not a failed attempt: the same code is still good.
    assert_eq!(
        d.auth("alice", &code),
        Accept,
        "the daemon answers a good request"
    );

    let log = d.log();
    assert!(
        log.contains("dropped") && log.contains("Message-Authenticator"),
        "the drops are logged:\n{log}"
    );
}

#[test]
fn optional_message_authenticator_is_honoured_per_client() {
    // A NAS that may leave Message-Authenticator out (like Debian's radtest).
    let d = Daemon::start(|c| c.clients[0].require_message_authenticator = false);
    let pin = "2718";
    d.add_user("alice", pin);
    let phone = d.path("phone.json");
    d.provision_device(&phone, "alice");
    let code = mobile_otc(&phone, pin, None);
    assert_eq!(d.radius_auth("alice", &code, false, SECRET), Accept);
    assert_eq!(d.radius_auth("alice", &code, false, SECRET), Reject);
    // A wrong secret garbles User-Password (and a request without MA cannot be
    // authenticated otherwise): never an Accept.
    let code = mobile_otc(&phone, pin, None);
    assert_ne!(
        d.radius_auth_timeout("alice", &code, false, "not-the-secret", 1, 1),
        Accept
    );
}

#[test]
fn no_reply_to_unknown_clients() {
    let d = Daemon::start(|c| {
        c.clients = vec![RadiusClient {
            name: "far-away".into(),
            address: "10.255.0.0/16".into(),
            ..RadiusClient::default()
        }]
    });
    let pin = "1618";
    d.add_user("alice", pin);
    let phone = d.path("phone.json");
    d.provision_device(&phone, "alice");
    let code = mobile_otc(&phone, pin, None);
    assert_eq!(
        d.radius_auth_timeout("alice", &code, true, SECRET, 1, 1),
        NoReply,
        "Access-Request from 127.0.0.1, not a configured client"
    );
    assert_eq!(
        d.radius_status(SECRET, 1, 1),
        NoReply,
        "Status-Server from an unknown client"
    );
    let log = d.log();
    assert!(
        log.lines()
            .any(|l| l.contains("dropped") && l.contains("unknown client")),
        "the drop is logged:\n{log}"
    );
    // The daemon is still healthy.
    let status = d.ctl(&["status"]);
    assert!(status.success(), "{status}");
}
