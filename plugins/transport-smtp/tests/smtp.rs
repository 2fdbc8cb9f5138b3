//! The SMTP transport against a real SMTP server: aiosmtpd (from PyPI),
//! started privately on 127.0.0.1 on a port the kernel picks, through the
//! sink of `pinwheel-test-peers`. Plain, STARTTLS and implicit TLS with a
//! private CA, login, and the server's refusals.
//!
//! Needs `python3` with aiosmtpd (`tools/test.sh` installs it); set
//! `PINWHEEL_PYTHON` to use another interpreter.

use std::time::Duration;

use pinwheel_sdk::{ErrorKind, Message, MessageKind, Plugin, Transport};
use pinwheel_test_peers::free_port;
use pinwheel_test_peers::smtp::Sink;
use pinwheel_transport_smtp::Smtp;
use serde_json::{json, Value};

/// A private CA and a certificate for 127.0.0.1 signed by it, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Pinwheel test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

fn provision_message(email: &str) -> Message {
    let mut m = Message::new(MessageKind::ProvisionCode, "alice");
    m.email = Some(email.to_string());
    m.subject = "Your provision code".into();
    m.body = "Your code is 0123456789\r\n".into();
    m.values.insert("code".into(), "0123456789".into());
    m.values.insert(
        "url".into(),
        "https://p.example.org/provision#user=alice&code=0123456789".into(),
    );
    m
}

/// Splits a saved message into (headers, body) and checks the envelope.
fn check_delivery(record: &Value, to: &str) -> (String, String) {
    assert_eq!(record["rcpt_tos"], json!([to]));
    assert_eq!(record["mail_from"], "pinwheel@example.org");
    let data = record["data"].as_str().unwrap().replace("\r\n", "\n");
    let (headers, body) = data.split_once("\n\n").expect("headers and body");
    assert!(
        headers.contains("\nFrom: Pinwheel <pinwheel@example.org>\n")
            || headers.starts_with("From: Pinwheel <pinwheel@example.org>\n"),
        "{headers}"
    );
    assert!(headers.contains(&format!("To: {to}\n")), "{headers}");
    (headers.to_string(), body.to_string())
}

#[test]
fn delivers_with_login_and_templates() {
    let sink = Sink::start(&["--auth", "pinwheel:pass word"]);
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("smtp-password");
    std::fs::write(&password_file, "pass word\n").unwrap();
    let smtp = Smtp::new(json!({
        "host": "127.0.0.1",
        "port": sink.port,
        "tls": "none",
        "from": "Pinwheel <pinwheel@example.org>",
        "username": "pinwheel",
        "password_file": password_file,
        "timeout": 10,
        "templates": {
            "provision-code": {
                "subject": "Provision code for {username}",
                "body": "Hello {username},\nCode: {code}\nLink: {url}\n",
            },
        },
    }))
    .unwrap();
    smtp.health().unwrap();
    smtp.send(&provision_message("alice@example.org")).unwrap();

    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["login"], "pinwheel");
    let (headers, body) = check_delivery(&messages[0], "alice@example.org");
    assert!(
        headers.contains("Subject: Provision code for alice\n"),
        "{headers}"
    );
    assert!(
        headers.contains("Content-Type: text/plain; charset=utf-8"),
        "{headers}"
    );
    assert!(body.contains("Code: 0123456789\n"), "{body}");
    assert!(
        body.contains("Link: https://p.example.org/provision#user=alice&code=0123456789\n"),
        "{body}"
    );

    // Without a template for the kind, the daemon's wording goes out.
    let mut pin = Message::new(MessageKind::Pin, "bob");
    pin.email = Some("bob@example.org".into());
    pin.subject = "Your new PIN".into();
    pin.body = "Your PIN is 4711".into();
    pin.values.insert("pin".into(), "4711".into());
    smtp.send(&pin).unwrap();
    let messages = sink.messages();
    assert_eq!(messages.len(), 2);
    let (headers, body) = check_delivery(&messages[1], "bob@example.org");
    assert!(headers.contains("Subject: Your new PIN\n"), "{headers}");
    assert!(body.contains("Your PIN is 4711"), "{body}");
}

#[test]
fn a_wrong_password_is_rejected_without_echoing_it() {
    let sink = Sink::start(&["--auth", "pinwheel:right"]);
    let smtp = Smtp::new(json!({
        "host": "127.0.0.1", "port": sink.port, "tls": "none",
        "from": "pinwheel@example.org", "username": "pinwheel", "password": "wrong-pw",
    }))
    .unwrap();
    let e = smtp
        .send(&provision_message("alice@example.org"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Rejected, "{e}");
    assert!(e.message.contains("535"), "{e}");
    assert!(!e.message.contains("wrong-pw"), "{e}");
    assert!(sink.messages().is_empty());
}

#[test]
fn delivers_over_starttls_with_a_private_ca() {
    let pki = Pki::new();
    let sink = Sink::start(&[
        "--auth",
        "pinwheel:pw",
        "--starttls",
        &pki.path("cert.pem"),
        &pki.path("key.pem"),
    ]);
    let config = json!({
        "host": "127.0.0.1", "port": sink.port, "tls": "starttls",
        "from": "Pinwheel <pinwheel@example.org>", "username": "pinwheel", "password": "pw",
        "ca_file": pki.path("ca.pem"),
    });
    let smtp = Smtp::new(config.clone()).unwrap();
    smtp.send(&provision_message("alice@example.org")).unwrap();
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["login"], "pinwheel");
    let (headers, body) = check_delivery(&messages[0], "alice@example.org");
    assert!(
        headers.contains("Subject: Your provision code\n"),
        "{headers}"
    );
    assert!(body.contains("Your code is 0123456789"), "{body}");

    // Without the private CA the certificate is not trusted: nothing is sent.
    let mut untrusting = config;
    untrusting.as_object_mut().unwrap().remove("ca_file");
    let smtp = Smtp::new(untrusting).unwrap();
    let e = smtp
        .send(&provision_message("alice@example.org"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(
        e.message.contains(&format!("127.0.0.1:{}", sink.port)),
        "{e}"
    );
    assert!(
        e.message.to_lowercase().contains("tls") || e.message.contains("certificate"),
        "{e}"
    );
    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn starttls_mode_refuses_a_relay_without_starttls() {
    let sink = Sink::start(&[]);
    let smtp = Smtp::new(json!({
        "host": "127.0.0.1", "port": sink.port, "tls": "starttls", "from": "pinwheel@example.org",
    }))
    .unwrap();
    let e = smtp
        .send(&provision_message("alice@example.org"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(sink.messages().is_empty());
}

#[test]
fn delivers_over_implicit_tls() {
    let pki = Pki::new();
    let sink = Sink::start(&["--implicit", &pki.path("cert.pem"), &pki.path("key.pem")]);
    let smtp = Smtp::new(json!({
        "host": "127.0.0.1", "port": sink.port, "tls": "implicit",
        "from": "Pinwheel <pinwheel@example.org>", "ca_file": pki.path("ca.pem"),
    }))
    .unwrap();
    smtp.health().unwrap();
    smtp.send(&provision_message("carol@example.org")).unwrap();
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let (_, body) = check_delivery(&messages[0], "carol@example.org");
    assert!(body.contains("0123456789"), "{body}");
}

#[test]
fn refusals_map_to_rejected_and_unavailable() {
    let sink = Sink::start(&[]);
    let smtp = Smtp::new(json!({
        "host": "127.0.0.1", "port": sink.port, "tls": "none", "from": "pinwheel@example.org",
    }))
    .unwrap();
    let e = smtp
        .send(&provision_message("reject@example.org"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Rejected, "{e}");
    assert!(e.message.contains("550"), "{e}");
    assert!(!e.message.contains("0123456789"), "{e}");

    let e = smtp
        .send(&provision_message("later@example.org"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.message.contains("450"), "{e}");
    assert!(sink.messages().is_empty());

    let mut nobody = provision_message("x@example.org");
    nobody.email = None;
    assert_eq!(smtp.send(&nobody).unwrap_err().kind, ErrorKind::NoRecipient);
}

#[test]
fn a_relay_echoing_the_message_in_its_refusal_gets_it_scrubbed() {
    let sink = Sink::start(&[]);
    let smtp = Smtp::new(json!({
        "host": "127.0.0.1", "port": sink.port, "tls": "none", "from": "pinwheel@example.org",
    }))
    .unwrap();
    let mut pin = Message::new(MessageKind::Pin, "alice");
    pin.email = Some("echo@example.org".into());
    pin.subject = "Your Pinwheel PIN".into();
    pin.body = "Hello alice,\r\nYour Pinwheel PIN is: 7314\r\n".into();
    pin.values.insert("pin".into(), "7314".into());
    for message in [pin, provision_message("echo-code@example.org")] {
        let e = smtp.send(&message).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Rejected, "{e}");
        // The relay's own words stay, so the administrator sees why.
        assert!(
            e.message.contains("550") && e.message.contains("message text was"),
            "{e}"
        );
        assert!(e.message.contains("[redacted]"), "{e}");
        for secret in ["7314", "0123456789", "PIN is"] {
            assert!(!e.message.contains(secret), "{secret} in {e}");
        }
    }
    assert!(sink.messages().is_empty());
}

#[test]
fn an_inline_password_of_the_wrong_type_is_not_echoed() {
    let Err(e) = Smtp::new(json!({
        "host": "127.0.0.1", "tls": "none", "from": "pinwheel@example.org",
        "username": "u", "password": 99887766,
    })) else {
        panic!("a number as password was accepted");
    };
    assert!(e.message.contains("password"), "{e}");
    assert!(!e.message.contains("99887766"), "{e}");
}

#[test]
fn nothing_listening_is_unavailable() {
    let port = free_port();
    let smtp = Smtp::new(json!({
        "host": "127.0.0.1", "port": port, "tls": "none", "from": "pinwheel@example.org", "timeout": 2,
    }))
    .unwrap();
    let e = smtp
        .send(&provision_message("alice@example.org"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.message.contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(e.message.to_lowercase().contains("refused"), "{e}");
    let e = smtp.health().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
}

#[test]
fn a_silent_server_times_out_as_unavailable() {
    // Accepts the connection but never greets.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let conn = listener.accept();
        std::thread::sleep(Duration::from_secs(4));
        drop(conn);
    });
    let smtp = Smtp::new(json!({
        "host": "127.0.0.1", "port": port, "tls": "none", "from": "pinwheel@example.org", "timeout": 1,
    }))
    .unwrap();
    let started = std::time::Instant::now();
    let e = smtp
        .send(&provision_message("alice@example.org"))
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.message.contains("did not answer within 1 s"), "{e}");
    let _ = holder.join();
}
