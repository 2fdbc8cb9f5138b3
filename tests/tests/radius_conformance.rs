//! RADIUS behaviour a NAS relies on, checked on the wire: retransmissions get
//! the cached answer without a second check (RFC 5080 §2.2.2), every reply
//! carries Message-Authenticator first, Proxy-State without
//! Message-Authenticator is dropped on a `limit_proxy_state` client
//! (BlastRADIUS), and the accounting port answers Accounting-Request and
//! Status-Server with Accounting-Response.

use std::net::UdpSocket;
use std::time::Duration;

use pinwheel::radius::codec::{self, attr, Code};
use pinwheel_tests::{
    mobile_otc, radclient_output, Daemon, RadiusClient, RadiusOutcome::*, SECRET,
};

/// Sends `packet` from `socket` and waits up to `wait` for one answer.
fn exchange(socket: &UdpSocket, port: u16, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    socket.set_read_timeout(Some(wait)).unwrap();
    socket.send_to(packet, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 4096];
    match socket.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

#[test]
fn retransmission_gets_the_same_answer_without_a_second_check() {
    let d = Daemon::start_default();
    d.add_user("alice", "2468");
    let phone = d.path("alice.json");
    d.provision_device(&phone, "alice");
    let code = mobile_otc(&phone, "2468", Some(7));
    let packet =
        codec::encode_access_request(7, "alice", code.as_bytes(), &[], SECRET.as_bytes(), true)
            .unwrap();
    let auth = codec::request_authenticator(&packet).unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let first = exchange(
        &socket,
        d.layout.radius_port,
        &packet,
        Duration::from_secs(5),
    )
    .expect("answer");
    let again = exchange(
        &socket,
        d.layout.radius_port,
        &packet,
        Duration::from_secs(5),
    )
    .expect("answer");
    assert_eq!(first, again, "identical answer to a retransmission");
    let reply = codec::decode_reply(&first, &auth, SECRET.as_bytes()).expect("valid reply");
    assert_eq!(reply.code, Code::AccessAccept);
    assert_eq!(
        reply.attributes[0].0,
        attr::MESSAGE_AUTHENTICATOR,
        "MA first"
    );
    // Only one decision was made and audited.
    let rows = d.ctl_ok(&["--json", "audit", "--user", "alice"]);
    let rows: serde_json::Value = serde_json::from_str(&rows).unwrap();
    let auths = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "auth")
        .count();
    assert_eq!(auths, 1, "{rows}");
    // A new request (new authenticator) with the same code is a replay.
    assert_eq!(d.auth("alice", &code), Reject);
}

#[test]
fn proxy_state_without_message_authenticator_is_dropped_on_limited_clients() {
    let d = Daemon::start(|c| {
        c.clients = vec![RadiusClient {
            require_message_authenticator: false,
            ..RadiusClient::default()
        }]
    });
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let with_proxy_state = codec::encode_access_request(
        1,
        "nobody",
        b"123401",
        &[(attr::PROXY_STATE, b"\x01".to_vec())],
        SECRET.as_bytes(),
        false,
    )
    .unwrap();
    assert_eq!(
        exchange(
            &socket,
            d.layout.radius_port,
            &with_proxy_state,
            Duration::from_secs(1)
        ),
        None,
        "Proxy-State without Message-Authenticator must get no reply"
    );
    // The same without Proxy-State is answered (this client does not require MA).
    let plain = codec::encode_access_request(2, "nobody", b"123401", &[], SECRET.as_bytes(), false)
        .unwrap();
    let auth = codec::request_authenticator(&plain).unwrap();
    let reply = exchange(
        &socket,
        d.layout.radius_port,
        &plain,
        Duration::from_secs(5),
    )
    .expect("answer");
    let reply = codec::decode_reply(&reply, &auth, SECRET.as_bytes()).unwrap();
    assert_eq!(reply.code, Code::AccessReject);
    assert_eq!(
        reply.attributes[0].0,
        attr::MESSAGE_AUTHENTICATOR,
        "MA first even here"
    );
    // With Message-Authenticator, Proxy-State is fine and echoed in order.
    let signed = codec::encode_access_request(
        3,
        "nobody",
        b"123401",
        &[
            (attr::PROXY_STATE, b"\x01".to_vec()),
            (attr::NAS_IDENTIFIER, b"nas".to_vec()),
            (attr::PROXY_STATE, b"\x02".to_vec()),
        ],
        SECRET.as_bytes(),
        true,
    )
    .unwrap();
    let auth = codec::request_authenticator(&signed).unwrap();
    let reply = exchange(
        &socket,
        d.layout.radius_port,
        &signed,
        Duration::from_secs(5),
    )
    .expect("answer");
    let reply = codec::decode_reply(&reply, &auth, SECRET.as_bytes()).unwrap();
    let states: Vec<&[u8]> = reply.proxy_states().collect();
    assert_eq!(states, [b"\x01".as_slice(), b"\x02".as_slice()]);
    assert!(d.log().contains("limit_proxy_state"), "the drop is logged");
}

fn radclient_acct(port: u16, kind: &str, attrs: &str) -> String {
    radclient_output(port, kind, SECRET, attrs, 3, 1).1
}

#[test]
fn accounting_port_answers_and_logs() {
    let d = Daemon::start_default();
    let out = radclient_acct(
        d.layout.accounting_port,
        "acct",
        "User-Name = \"alice\"\nAcct-Status-Type = Start\nAcct-Session-Id = \"sess-1\"\nMessage-Authenticator = 0x00\n",
    );
    assert!(out.contains("Received Accounting-Response"), "{out}");
    // Most NASes do not sign accounting: the Request Authenticator already
    // proves the secret, so no Message-Authenticator is needed there.
    let out = radclient_acct(
        d.layout.accounting_port,
        "acct",
        "User-Name = \"alice\"\nAcct-Status-Type = Stop\nAcct-Session-Id = \"sess-1\"\n",
    );
    assert!(
        out.contains("Received Accounting-Response"),
        "unsigned accounting: {out}"
    );
    // Forwarded by a proxy (Proxy-State, no Message-Authenticator): still
    // answered, with Proxy-State echoed (limit_proxy_state is about
    // Access-Requests).
    let out = radclient_acct(
        d.layout.accounting_port,
        "acct",
        "User-Name = \"alice\"\nAcct-Status-Type = Interim-Update\nAcct-Session-Id = \"sess-1\"\nProxy-State = 0x7070\n",
    );
    assert!(
        out.contains("Received Accounting-Response"),
        "proxied accounting: {out}"
    );
    assert!(out.contains("Proxy-State = 0x7070"), "{out}");
    let out = radclient_acct(
        d.layout.accounting_port,
        "status",
        "Message-Authenticator = 0x00\n",
    );
    assert!(
        out.contains("Received Accounting-Response"),
        "Status-Server on the accounting port: {out}"
    );
    assert_eq!(
        d.wait_log_lines(&["Accounting-Request", "sess-1", "Start"], 1),
        1,
        "{}",
        d.log()
    );
    // An Access-Request sent to the accounting port is not answered.
    let out = radclient_acct(
        d.layout.accounting_port,
        "auth",
        "User-Name = \"alice\"\nUser-Password = \"123401\"\nMessage-Authenticator = 0x00\n",
    );
    assert!(out.contains("No reply"), "{out}");
    assert_eq!(
        d.radius_status(SECRET, 2, 1),
        Accept,
        "auth port still serving"
    );
}

#[test]
fn access_accept_carries_the_configured_group_attributes() {
    let d = Daemon::start(|c| {
        c.client_extra = "reply = { groups = \"filter-id\", group_filter = \"vpn\", reply_message = \"Welcome\", session_timeout = \"8h\" }".into();
    });
    d.ctl_ok(&[
        "user",
        "add",
        "alice",
        "--email",
        "a@example.test",
        "--pin",
        "2580",
        "--group",
        "vpn-staff",
        "--group",
        "payroll",
    ]);
    let phone = d.path("alice.json");
    d.provision_device(&phone, "alice");
    let show = d.ctl_ok(&["user", "show", "alice"]);
    assert!(show.contains("vpn-staff, payroll"), "{show}");
    let code = mobile_otc(&phone, "2580", Some(1));
    let out = radclient_acct(
        d.layout.radius_port,
        "auth",
        &format!(
            "User-Name = \"alice\"\nUser-Password = \"{code}\"\nMessage-Authenticator = 0x00\n"
        ),
    );
    assert!(out.contains("Received Access-Accept"), "{out}");
    assert!(out.contains("Filter-Id = \"vpn-staff\""), "{out}");
    assert!(!out.contains("payroll"), "filtered out: {out}");
    assert!(out.contains("Reply-Message = \"Welcome\""), "{out}");
    assert!(out.contains("Session-Timeout = 28800"), "{out}");
    // A Reject carries none of them.
    let out = radclient_acct(
        d.layout.radius_port,
        "auth",
        &format!(
            "User-Name = \"alice\"\nUser-Password = \"{code}\"\nMessage-Authenticator = 0x00\n"
        ),
    );
    assert!(
        out.contains("Received Access-Reject") && !out.contains("Filter-Id"),
        "{out}"
    );
}
