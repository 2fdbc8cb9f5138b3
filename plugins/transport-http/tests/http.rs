//! The HTTP transport against a real HTTP receiver: a small server on
//! 127.0.0.1 (port chosen at run time, from `pinwheel-test-peers`) that
//! records each raw request and answers a chosen status, after a chosen delay.

use std::net::TcpListener;
use std::time::Duration;

use pinwheel_sdk::{ErrorKind, Message, MessageKind, Plugin, Transport};
use pinwheel_test_peers::http::Receiver;
use pinwheel_transport_http::Http;
use serde_json::{json, Value};

fn message(kind: MessageKind, body: &str) -> Message {
    let mut m = Message::new(kind, "alice");
    m.phone = Some("+44 7700 900123".into());
    m.body = body.into();
    m
}

fn pin_message() -> Message {
    let mut m = message(MessageKind::Pin, "Your PIN is 4711");
    m.values.insert("pin".into(), "4711".into());
    m
}

#[test]
fn form_post_with_basic_auth() {
    let receiver = Receiver::start(200, "OK: queued", Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("pw");
    std::fs::write(&password, "s3cret\n").unwrap();
    let http = Http::new(json!({
        "method": "POST",
        "url": receiver.url("/api/send?user={username}&kind={kind}"),
        "body_format": "form",
        "body": "to={to}&from=Pinwheel&text={message}",
        "basic": { "username": "acct", "password_file": password },
        "headers": { "X-Api-Key": "key-1" },
        "success_status": [200],
        "success_body_contains": "OK",
        "templates": { "security-string": "String: {string}" },
    }))
    .unwrap();
    let mut m = message(MessageKind::SecurityString, "unused");
    m.values
        .insert("string".into(), "a&b=c+d#e%f\"g\\h\ni é 😀".into());
    http.send(&m).unwrap();

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/api/send?user=alice&kind=security-string");
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    // base64("acct:s3cret")
    assert_eq!(r.header("authorization"), Some("Basic YWNjdDpzM2NyZXQ="));
    assert_eq!(r.header("x-api-key"), Some("key-1"));
    assert_eq!(
        r.header("host"),
        Some(format!("127.0.0.1:{}", receiver.port).as_str())
    );
    assert_eq!(
        r.body_text(),
        "to=%2B44+7700+900123&from=Pinwheel&text=String%3A+a%26b%3Dc%2Bd%23e%25f%22g%5Ch%0Ai+%C3%A9+%F0%9F%98%80"
    );
}

#[test]
fn json_post_with_bearer_token() {
    let receiver = Receiver::start(202, "{\"status\":\"queued\"}", Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-abc\n").unwrap();
    let http = Http::new(json!({
        "url": receiver.url("/v1/messages"),
        "body_format": "json",
        "body": "{\"to\": [\"{to}\"], \"text\": \"{message}\", \"ref\": \"{kind}\"}",
        "bearer_file": token,
        "headers": { "Accept": "application/json" },
    }))
    .unwrap();
    let text = "Line 1 \"quoted\" \\ back\nLine 2 é 😀";
    http.send(&message(MessageKind::Pin, text)).unwrap();

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/v1/messages");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("authorization"), Some("Bearer tok-abc"));
    assert_eq!(r.header("accept"), Some("application/json"));
    assert_eq!(
        r.body_text(),
        "{\"to\": [\"+44 7700 900123\"], \"text\": \"Line 1 \\\"quoted\\\" \\\\ back\\nLine 2 é 😀\", \"ref\": \"pin\"}"
    );
    let parsed: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(parsed["text"], text);
    assert_eq!(parsed["to"][0], "+44 7700 900123");
}

#[test]
fn get_puts_everything_in_the_query() {
    let receiver = Receiver::start(200, "", Duration::ZERO);
    let http = Http::new(json!({
        "method": "GET",
        "url": receiver.url("/sms?to={to}&msg={message}"),
    }))
    .unwrap();
    http.send(&message(MessageKind::Pin, "PIN 4711 & more"))
        .unwrap();
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(
        requests[0].target,
        "/sms?to=%2B44%207700%20900123&msg=PIN%204711%20%26%20more"
    );
    assert!(requests[0].body.is_empty());
    assert_eq!(requests[0].header("content-type"), None);
}

#[test]
fn a_server_error_is_rejected_with_its_status_and_no_secrets() {
    let receiver = Receiver::start(
        500,
        "internal error while sending 'Your PIN is 4711' (pin 4711) to +44 7700 900123",
        Duration::ZERO,
    );
    let http = Http::new(json!({
        "url": receiver.url("/send"),
        "body": "to={to}&text={message}",
    }))
    .unwrap();
    let e = http.send(&pin_message()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Rejected, "{e}");
    assert!(e.message.contains("HTTP 500"), "{e}");
    assert!(e.message.contains("internal error while sending"), "{e}");
    assert!(!e.message.contains("4711"), "{e}");
    assert!(
        e.message
            .contains(&format!("http://127.0.0.1:{}", receiver.port)),
        "{e}"
    );
    assert!(!e.message.contains("/send"), "{e}");
}

#[test]
fn a_status_outside_the_list_or_a_missing_body_match_is_rejected() {
    let receiver = Receiver::start(200, "ERROR 17: unknown sender", Duration::ZERO);
    let http = Http::new(json!({
        "url": receiver.url("/send"),
        "body": "to={to}&text={message}",
        "success_body_contains": "OK",
    }))
    .unwrap();
    let e = http.send(&pin_message()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Rejected, "{e}");
    assert!(
        e.message.contains("\"OK\"") && e.message.contains("ERROR 17"),
        "{e}"
    );

    let http = Http::new(json!({
        "url": receiver.url("/send"),
        "body": "to={to}&text={message}",
        "success_status": [201, 202],
    }))
    .unwrap();
    let e = http.send(&pin_message()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Rejected, "{e}");
    assert!(e.message.contains("HTTP 200"), "{e}");

    // Redirects are answers, not followed.
    let receiver = Receiver::start(302, "", Duration::ZERO);
    let http = Http::new(json!({ "url": receiver.url("/send"), "body": "to={to}" })).unwrap();
    let e = http.send(&pin_message()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Rejected, "{e}");
    assert!(e.message.contains("HTTP 302"), "{e}");
    assert_eq!(receiver.requests().len(), 1);
}

#[test]
fn a_slow_server_is_unavailable_after_the_timeout() {
    let receiver = Receiver::start(200, "OK", Duration::from_secs(4));
    let http = Http::new(json!({
        "url": receiver.url("/send"),
        "body": "to={to}&text={message}",
        "timeout": 1,
    }))
    .unwrap();
    let started = std::time::Instant::now();
    let e = http.send(&pin_message()).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.message.contains("did not answer within 1 s"), "{e}");
    assert!(!e.message.contains("4711"), "{e}");
}

#[test]
fn nothing_listening_is_unavailable() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let http = Http::new(json!({
        "method": "GET",
        "url": format!("http://127.0.0.1:{port}/sms?to={{to}}&text={{message}}"),
        "timeout": 2,
    }))
    .unwrap();
    let e = http.send(&pin_message()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(
        e.message.contains(&format!("http://127.0.0.1:{port}")),
        "{e}"
    );
    // The URL carries the message: it must not be in the error.
    assert!(
        !e.message.contains("4711") && !e.message.contains("/sms"),
        "{e}"
    );
}
