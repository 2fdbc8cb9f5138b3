//! Transport plugins through the real daemon: the built SMTP plugin against
//! a real SMTP server on loopback (aiosmtpd from PyPI, through the sink
//! script of `pinwheel-test-peers`), and the built HTTP plugin against a
//! local HTTP receiver from the same crate. The provision code a
//! user gets provisions a device; a gateway's 500 is reported (naming the
//! plugin and the status) and the user's earlier code stays valid.
//!
//! Needs `python3` with aiosmtpd (`tools/test.sh` installs it); set
//! `PINWHEEL_PYTHON` to use another interpreter.

use std::time::Duration;

use pinwheel_test_peers::http::Receiver;
use pinwheel_test_peers::smtp::Sink;
use pinwheel_tests::*;

const SMTP: &str = "pinwheel-transport-smtp";
const HTTP: &str = "pinwheel-transport-http";

/// A TOML string.
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The 10-digit code after `Code: ` in `text`.
fn code_in(text: &str) -> String {
    let start = text.find("Code: ").expect("a code in the message") + "Code: ".len();
    let code: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert_eq!(code.len(), 10, "{text}");
    code
}

#[test]
fn an_emailed_provision_code_arrives_and_provisions_a_device() {
    let sink = Sink::start(&[]);
    let plugins = tempfile::tempdir().unwrap();
    let file = install_plugin(&plugins.path().join("plugins"), SMTP, 0o644);
    let d = Daemon::start(|c| {
        // Users in group "mail" get the SMTP transport before the spool.
        c.extra = format!(
            "[[transport]]\nname = \"email\"\nplugin = {}\naddress = \"email\"\ngroups = [\"mail\"]\n\
             [transport.config]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             from = \"Pinwheel <pinwheel@example.org>\"\ntimeout = 10\n\
             [transport.config.templates.provision-code]\n\
             subject = \"Your Pinwheel provision code\"\n\
             body = \"Hello {{username}},\\nCode: {{code}}\\nLink: {{url}}\\n\"\n",
            toml_str(&file.to_string_lossy()),
            sink.port
        );
    });
    d.ctl_ok(&[
        "user",
        "add",
        "carol",
        "--email",
        "carol@example.test",
        "--group",
        "mail",
        "--pin",
        "1234",
    ]);
    let out = d.ctl_ok(&["provision", "send", "carol"]);
    assert!(out.contains("email"), "{out}");

    let messages = sink.wait_messages(0);
    assert_eq!(messages.len(), 1, "{messages:?}");
    let record = &messages[0];
    assert_eq!(
        record["rcpt_tos"],
        serde_json::json!(["carol@example.test"])
    );
    assert_eq!(record["mail_from"], "pinwheel@example.org");
    let data = record["data"].as_str().unwrap().replace("\r\n", "\n");
    let (headers, body) = data.split_once("\n\n").expect("headers and body");
    assert!(
        headers.contains("Subject: Your Pinwheel provision code\n"),
        "{headers}"
    );
    assert!(headers.contains("To: carol@example.test\n"), "{headers}");
    assert!(body.starts_with("Hello carol,\n"), "{body}");
    let code = code_in(body);
    assert!(body.contains("Link: "), "{body}");
    // The code is in the email only: not in the spool, not in the log.
    assert!(d.spool_for("carol", "provision-code").is_empty());
    assert!(!d.log().contains(&code), "code in the log");

    let state = d.path("carol.json");
    let out = d.mobile_provision(&state, "carol", &code);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("Device Provisioned"), "{out}");
}

#[test]
fn an_sms_gateway_gets_an_escaped_form_post_and_its_500_is_reported() {
    // A local SMS gateway: records each request and answers 200 "OK"
    // (500 later).
    let gateway = Receiver::start(200, "OK", Duration::ZERO);
    let plugins = tempfile::tempdir().unwrap();
    let file = install_plugin(&plugins.path().join("plugins"), HTTP, 0o644);
    let d = Daemon::start(|c| {
        c.extra = format!(
            "[[transport]]\nname = \"sms\"\nplugin = {}\naddress = \"phone\"\ngroups = [\"field\"]\n\
             [transport.config]\nmethod = \"POST\"\nurl = \"http://127.0.0.1:{}/api/v2/sms/send\"\n\
             body_format = \"form\"\nbody = \"to={{to}}&from=Pinwheel&text={{message}}&ref={{kind}}\"\n\
             success_status = [200]\nsuccess_body_contains = \"OK\"\ntimeout = 10\n\
             [transport.config.templates]\n\
             provision-code = \"Code for {{username}} & co: {{code}}\"\n",
            toml_str(&file.to_string_lossy()),
            gateway.port
        );
    });
    d.ctl_ok(&[
        "user",
        "add",
        "dave",
        "--phone",
        "+447700900123",
        "--group",
        "field",
        "--pin",
        "1234",
    ]);
    let out = d.ctl_ok(&["provision", "send", "dave"]);
    assert!(out.contains("sms"), "{out}");

    let requests = gateway.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/api/v2/sms/send");
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded"),
        "{r:?}"
    );
    let prefix = "to=%2B447700900123&from=Pinwheel&text=Code+for+dave+%26+co%3A+";
    let body = r.body_text();
    assert!(body.starts_with(prefix), "{body}");
    let rest = &body[prefix.len()..];
    let (code, tail) = rest.split_at(10);
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{body}");
    assert_eq!(tail, "&ref=provision-code", "{body}");
    assert!(!d.log().contains(code), "code in the log");

    // The gateway fails the next message: reported, naming the plugin and
    // the status, and the code sent before stays valid.
    gateway.set_status(500);
    let out = d.ctl(&["provision", "send", "dave"]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stdout.contains("sms") || out.stderr.contains("sms"),
        "{out}"
    );
    assert!(
        out.stdout.contains("500") || out.stderr.contains("500"),
        "{out}"
    );
    assert_eq!(gateway.requests().len(), 2);
    let log = d.log();
    assert!(
        log.lines().any(|l| l.contains("sms") && l.contains("500")),
        "{log}"
    );
    let failed = gateway.requests()[1].body_text();
    let failed_code = &failed[prefix.len()..prefix.len() + 10];
    assert!(!log.contains(failed_code), "code in the log");

    let state = d.path("dave.json");
    let out = d.mobile_provision(&state, "dave", code);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("Device Provisioned"), "{out}");
}
