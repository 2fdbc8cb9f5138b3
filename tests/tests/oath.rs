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
        let attrs = format!(
            "User-Name = \"{user}\"\nCHAP-Password = \"{code}\"\nMessage-Authenticator = 0x00\n"
        );
        pinwheel_tests::radclient_output(
            d.layout.radius_port,
            "auth",
            pinwheel_tests::SECRET,
            &attrs,
            3,
            1,
        )
        .1
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

#[test]
fn ms_chap_v2_works_for_oath_without_pin_and_returns_the_success_attribute() {
    use pinwheel::radius::codec::{self, attr, Code};
    use pinwheel::radius::mschap;
    let d = Daemon::start_default();
    d.add_user("kate", "6060");
    d.ctl_ok(&["user", "set-mode", "kate", "oath"]);
    let key = provision_oath(&d, "kate");
    settle(8);
    let code = oath::totp(key.secret.as_bytes(), now(), 30, key.params.algorithm, 6);
    let authenticator_challenge = [7u8; 16];
    let peer_challenge = [9u8; 16];
    let send = |password: &str| {
        let nt = mschap::generate_nt_response(
            &authenticator_challenge,
            &peer_challenge,
            b"kate",
            password,
        );
        let mut response = vec![0x42, 0];
        response.extend_from_slice(&peer_challenge);
        response.extend_from_slice(&[0u8; 8]);
        response.extend_from_slice(&nt);
        let extra = vec![
            (
                26,
                mschap::vendor_specific(311, mschap::MS_CHAP_CHALLENGE, &authenticator_challenge)
                    .unwrap(),
            ),
            (
                26,
                mschap::vendor_specific(311, mschap::MS_CHAP2_RESPONSE, &response).unwrap(),
            ),
        ];
        // No User-Password: build the request by hand around the codec's encoder.
        let packet = codec::encode_access_request(
            3,
            "kate",
            b"",
            &extra,
            pinwheel_tests::SECRET.as_bytes(),
            true,
        )
        .unwrap();
        let packet = strip_user_password(&packet);
        let auth = codec::request_authenticator(&packet).unwrap();
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        socket
            .send_to(&packet, ("127.0.0.1", d.layout.radius_port))
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).expect("an answer");
        (
            codec::decode_reply(&buf[..n], &auth, pinwheel_tests::SECRET.as_bytes()).unwrap(),
            nt,
        )
    };
    let (reply, nt) = send(&code);
    assert_eq!(reply.code, Code::AccessAccept, "{}", d.log());
    // MS-CHAP2-Success right after Message-Authenticator.
    assert_eq!(reply.attributes[1].0, 26);
    assert_eq!(reply.attributes[0].0, attr::MESSAGE_AUTHENTICATOR);
    let expected = mschap::authenticator_response(
        &code,
        &nt,
        &peer_challenge,
        &authenticator_challenge,
        b"kate",
    );
    let vsa = reply.attribute(26).expect("MS-CHAP2-Success");
    let subs = mschap::parse_vendor_specific(vsa).unwrap();
    assert_eq!(subs[0].0, 311);
    assert_eq!(subs[0].1, mschap::MS_CHAP2_SUCCESS);
    assert_eq!(subs[0].2, mschap::success_data(0x42, &expected));
    let (reply, _) = send(&code);
    assert_eq!(reply.code, Code::AccessReject, "the same code again");
}

/// Removes the User-Password attribute from an encoded Access-Request and
/// re-signs it (Message-Authenticator first), so it carries only MS-CHAP.
fn strip_user_password(packet: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut attrs = Vec::new();
    let mut i = 20;
    while i + 2 <= packet.len() {
        let len = packet[i + 1] as usize;
        if packet[i] != 2 {
            attrs.extend_from_slice(&packet[i..i + len]);
        }
        i += len;
    }
    let mut out = packet[..20].to_vec();
    out.extend_from_slice(&attrs);
    let len = out.len() as u16;
    out[2..4].copy_from_slice(&len.to_be_bytes());
    // Message-Authenticator is the first attribute: zero it and recompute.
    assert_eq!(out[20], 80);
    out[22..38].fill(0);
    let mut mac =
        <Hmac<md5::Md5> as Mac>::new_from_slice(pinwheel_tests::SECRET.as_bytes()).unwrap();
    mac.update(&out);
    let sum = mac.finalize().into_bytes();
    out[22..38].copy_from_slice(&sum);
    out
}
