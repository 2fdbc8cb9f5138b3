//! The HTTP front door under abuse: idle and slow clients are cut off, the
//! connection cap keeps one client from starving the rest (and RADIUS keeps
//! answering meanwhile), bad JSON gets a specific 400 that never echoes the
//! value sent, oversized bodies get 413, and a user name cannot forge log lines.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use pinwheel_tests::{Daemon, RadiusOutcome};
use serde_json::json;

fn connect(d: &Daemon) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", d.layout.http_port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads until the peer closes or `limit` passes; returns what arrived and when it closed.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let start = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, Some(start.elapsed())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (got, Some(start.elapsed()))
            }
            Err(_) => return (got, None),
        }
    }
}

#[test]
fn idle_and_slow_clients_are_cut_off() {
    let d = Daemon::start(|c| {
        c.http_extra = "header_timeout = \"1s\"\nrequest_timeout = \"2s\"\n".into();
    });
    // Connected, sends nothing.
    let mut idle = connect(&d);
    // Half a request header.
    let mut partial = connect(&d);
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // Headers complete, body never finished.
    let mut slow = connect(&d);
    slow.write_all(
        b"POST /api/v1/provision HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .unwrap();

    let (got, closed) = read_until_closed(&mut idle, Duration::from_secs(15));
    assert!(
        got.is_empty() && closed.is_some(),
        "idle connection still open"
    );
    let (_, closed) = read_until_closed(&mut partial, Duration::from_secs(15));
    assert!(
        closed.is_some(),
        "connection with a partial header still open"
    );
    let (got, _) = read_until_closed(&mut slow, Duration::from_secs(15));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "slow body answer: {text}");
    assert!(text.contains("REQUEST_TIMEOUT"), "{text}");
    // The server still serves.
    assert_eq!(
        pinwheel_tests::http_get(&d.url("/healthz")).unwrap().status,
        200
    );
}

#[test]
fn connection_cap_refuses_extra_clients_and_radius_keeps_serving() {
    let d = Daemon::start(|c| {
        c.http_extra = "max_connections = 4\nheader_timeout = \"30s\"\n".into();
    });
    // Let the start-up health check's connection close first.
    std::thread::sleep(Duration::from_secs(1));
    let held: Vec<TcpStream> = (0..4).map(|_| connect(&d)).collect();
    // Give the server time to accept the four.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !d.log().contains("refused"),
        "a held connection was refused:\n{}",
        d.log()
    );
    let mut extra = connect(&d);
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let (got, closed) = read_until_closed(&mut extra, Duration::from_secs(10));
    assert!(
        closed.is_some() && !String::from_utf8_lossy(&got).contains("200 OK"),
        "a fifth connection was served: {}\nconfig:\n{}\nlog:\n{}",
        String::from_utf8_lossy(&got),
        std::fs::read_to_string(d.config_path()).unwrap_or_default(),
        d.log()
    );
    assert_eq!(d.radius_status("testing123", 2, 2), RadiusOutcome::Accept);
    assert!(
        d.log().contains("http.max_connections"),
        "refusal logged:\n{}",
        d.log()
    );
    drop(held);
    // Slots come back once the holders leave.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = pinwheel_tests::http_get(&d.url("/healthz")) {
            if r.status == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "HTTP never recovered");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bad_json_gets_a_specific_400_without_echoing_values() {
    let d = Daemon::start_default();
    // A code sent as a number (a typo a client could make) must not come back.
    let r = d.post(
        "/api/v1/provision",
        &json!({"username": "alice", "code": 8675309123u64}),
        None,
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["error"], "BAD_REQUEST");
    assert!(r.body.contains("line 1"), "says where: {}", r.body);
    assert!(!r.body.contains("8675309123"), "value echoed: {}", r.body);
    let r = d.post(
        "/api/v1/provision/request",
        &json!({"username": "alice", "extra": "secret-looking-value"}),
        None,
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(!r.body.contains("secret-looking-value"), "{}", r.body);
    // Larger than http.max_body_bytes (16 KiB).
    let big = "x".repeat(20_000);
    let r = d.post(
        "/api/v1/provision/request",
        &json!({ "username": big }),
        None,
    );
    assert_eq!(r.status, 413, "{:?}", r.status);
}

#[test]
fn user_names_cannot_forge_log_lines() {
    let d = Daemon::start_default();
    let forged = "mallory\n2026-01-01T00:00:00Z  INFO Access-Accept user=alice";
    // Control characters cannot be in a user name: refused outright.
    let r = d.post(
        "/api/v1/provision/request",
        &json!({ "username": forged }),
        None,
    );
    assert_eq!(r.status, 400, "{r:?}");
    // Over RADIUS the name is logged, escaped (radclient turns `\n` in a
    // quoted string into a real newline).
    let escaped_for_radclient = forged.replace('\n', "\\n");
    assert_eq!(
        d.auth(&escaped_for_radclient, "123401"),
        RadiusOutcome::Reject
    );
    assert_eq!(d.wait_log_lines(&["event=auth", "mallory"], 1), 1);
    let log = d.log();
    for line in log.lines() {
        assert!(
            !line.starts_with("2026-01-01T00:00:00Z"),
            "forged line in the log:\n{log}"
        );
    }
    assert!(log.contains("mallory\\"), "escaped name logged:\n{log}");
}

/// Connects to the daemon from the loopback address `from` (e.g. 127.0.0.2).
fn connect_from(d: &Daemon, from: [u8; 4]) -> TcpStream {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(from[0], from[1], from[2], from[3], 0),
    )
    .expect("bind the client to its loopback address");
    connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(127, 0, 0, 1, d.layout.http_port),
    )
    .expect("connect");
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

#[test]
fn one_address_cannot_hold_every_connection_slot() {
    let d = Daemon::start(|c| {
        c.http_extra = "max_connections = 8\nmax_connections_per_address = 4\nheader_timeout = \"30s\"\nrequest_timeout = \"30s\"\n".into();
    });
    // Let the start-up health check's connection close first.
    std::thread::sleep(Duration::from_secs(1));
    // Four slow POSTs from 127.0.0.1: headers sent, body trickling.
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = connect_from(&d, [127, 0, 0, 1]);
            s.write_all(
                b"POST /api/v1/provision/request HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n{",
            )
            .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for s in &mut held {
        s.write_all(b" ").unwrap();
    }
    // A fifth from the same address is closed at accept.
    let mut fifth = connect_from(&d, [127, 0, 0, 1]);
    let _ = fifth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let (got, closed) = read_until_closed(&mut fifth, Duration::from_secs(10));
    assert!(
        closed.is_some() && !String::from_utf8_lossy(&got).contains("200 OK"),
        "a fifth connection from one address was served: {}\nlog:\n{}",
        String::from_utf8_lossy(&got),
        d.log()
    );
    // Another address is still served while the four are held.
    let mut other = connect_from(&d, [127, 0, 0, 2]);
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (got, _) = read_until_closed(&mut other, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "127.0.0.2 not served while 127.0.0.1 holds its cap: {text}\nlog:\n{}",
        d.log()
    );
    assert!(
        d.log().contains("http.max_connections_per_address"),
        "refusal logged:\n{}",
        d.log()
    );
    for s in &mut held {
        s.write_all(b" ").unwrap();
    }
    drop(held);
    // The address gets its slots back once the holders leave.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = pinwheel_tests::http_get(&d.url("/healthz")) {
            if r.status == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "127.0.0.1 never served again");
        std::thread::sleep(Duration::from_millis(100));
    }
}
