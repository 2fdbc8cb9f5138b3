//! Unit tests: config errors, escaping per place, error scrubbing, and the
//! example configs in `etc/`.

use super::*;
use pinwheel_sdk::ErrorKind;
use serde_json::{json, Value};

const NASTY: &str = "a&b=c+d#e%f\"g\\h\ni é 😀";
const PHONE: &str = "+44 7700 900123";

fn with(base: Value, extra: Value) -> Value {
    let mut config = base;
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    config
}

fn form_config() -> Value {
    json!({
        "url": "https://sms.example.com/send?user={username}&kind={kind}",
        "body": "to={to}&text={message}",
    })
}

fn config_err(config: Value) -> String {
    match Http::new(config) {
        Ok(_) => panic!("config accepted"),
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::Config, "{e}");
            assert!(e.message.starts_with("transport-http: "), "{e}");
            e.message
        }
    }
}

fn sms(kind: MessageKind, body: &str) -> Message {
    let mut m = Message::new(kind, "alice");
    m.phone = Some(PHONE.into());
    m.body = body.into();
    m
}

fn header<'a>(http: &'a Http, name: &str) -> Option<&'a str> {
    http.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn form_bodies_and_urls_escape_every_value() {
    let http = Http::new(form_config()).unwrap();
    assert_eq!(
        header(&http, "Content-Type"),
        Some("application/x-www-form-urlencoded")
    );
    let mut m = sms(MessageKind::SecurityString, NASTY);
    m.username = "a b&c".into();
    let p = http.prepare(&m).unwrap();
    assert_eq!(
        p.url,
        "https://sms.example.com/send?user=a%20b%26c&kind=security-string"
    );
    assert_eq!(
        p.body.as_deref(),
        Some("to=%2B44+7700+900123&text=a%26b%3Dc%2Bd%23e%25f%22g%5Ch%0Ai+%C3%A9+%F0%9F%98%80")
    );
}

#[test]
fn url_placeholders_are_percent_encoded() {
    let http = Http::new(json!({
        "method": "GET",
        "url": "http://127.0.0.1:8080/sms/{to}?msg={message}",
    }))
    .unwrap();
    assert_eq!(header(&http, "Content-Type"), None);
    let p = http.prepare(&sms(MessageKind::Pin, NASTY)).unwrap();
    assert_eq!(
        p.url,
        "http://127.0.0.1:8080/sms/%2B44%207700%20900123?msg=a%26b%3Dc%2Bd%23e%25f%22g%5Ch%0Ai%20%C3%A9%20%F0%9F%98%80"
    );
    assert_eq!(p.body, None);
}

#[test]
fn json_bodies_are_valid_json_carrying_the_exact_text() {
    let http = Http::new(json!({
        "url": "https://sms.example.com/v1",
        "body_format": "json",
        "body": "{\"to\": [\"{to}\"], \"text\": \"{message}\", \"meta\": {\"user\": \"{username}\"}}",
    }))
    .unwrap();
    assert_eq!(header(&http, "Content-Type"), Some("application/json"));
    let p = http.prepare(&sms(MessageKind::Pin, NASTY)).unwrap();
    let body = p.body.unwrap();
    assert_eq!(
        body,
        "{\"to\": [\"+44 7700 900123\"], \"text\": \"a&b=c+d#e%f\\\"g\\\\h\\ni é 😀\", \"meta\": {\"user\": \"alice\"}}"
    );
    let parsed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed["text"], NASTY);
    assert_eq!(parsed["to"][0], PHONE);
}

#[test]
fn text_bodies_are_raw() {
    let http = Http::new(json!({
        "method": "PUT",
        "url": "https://sms.example.com/v1/{to}",
        "body_format": "text",
        "body": "{message}",
    }))
    .unwrap();
    assert_eq!(
        header(&http, "Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    let p = http.prepare(&sms(MessageKind::Pin, NASTY)).unwrap();
    assert_eq!(p.body.as_deref(), Some(NASTY));
    assert_eq!(p.url, "https://sms.example.com/v1/%2B44%207700%20900123");
}

#[test]
fn json_templates_with_bare_placeholders_are_refused() {
    for body in [
        "{\"to\": {to}, \"text\": \"{message}\"}",
        "{\"to\": \"{to}\"",
        "to={to}",
    ] {
        let e =
            config_err(json!({ "url": "https://x.example", "body_format": "json", "body": body }));
        assert!(e.contains("body:") && e.contains("JSON"), "{e}");
    }
}

#[test]
fn per_kind_templates_make_the_message() {
    let http = Http::new(with(
        form_config(),
        json!({ "templates": { "pin": "PIN {pin} for {username}", "provision-code": "Code {code} {url}" } }),
    ))
    .unwrap();
    let mut m = sms(MessageKind::Pin, "daemon text");
    m.values.insert("pin".into(), "4711".into());
    let p = http.prepare(&m).unwrap();
    assert_eq!(
        p.body.as_deref(),
        Some("to=%2B44+7700+900123&text=PIN+4711+for+alice")
    );
    // Without a template for the kind, the daemon's text.
    let p = http
        .prepare(&sms(MessageKind::SecurityString, "daemon text"))
        .unwrap();
    assert_eq!(
        p.body.as_deref(),
        Some("to=%2B44+7700+900123&text=daemon+text")
    );
    // A value the template needs but the message lacks.
    let e = http
        .prepare(&sms(MessageKind::ProvisionCode, "x"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Internal);
    assert!(e.message.contains("`code`"), "{e}");
}

#[test]
fn no_phone_is_no_recipient() {
    let http = Http::new(form_config()).unwrap();
    let mut m = sms(MessageKind::Pin, "x");
    m.phone = None;
    assert_eq!(http.send(&m).unwrap_err().kind, ErrorKind::NoRecipient);
    m.phone = Some(" ".into());
    assert_eq!(http.send(&m).unwrap_err().kind, ErrorKind::NoRecipient);
}

#[test]
fn config_errors_name_the_key() {
    let base = form_config();
    assert!(config_err(with(base.clone(), json!({ "uri": "x" }))).contains("uri"));
    assert!(config_err(json!({ "body": "x" })).contains("`url`"));
    assert!(config_err(with(base.clone(), json!({ "method": "DELETE" }))).contains("DELETE"));
    assert!(config_err(with(base.clone(), json!({ "body_format": "xml" }))).contains("xml"));
    assert!(config_err(with(base.clone(), json!({ "url": "ftp://x/{to}" }))).contains("url:"));
    assert!(config_err(with(
        base.clone(),
        json!({ "url": "https://{to}.example/" })
    ))
    .contains("not in the host"));
    assert!(config_err(with(
        base.clone(),
        json!({ "url": "https://u:p@x.example/" })
    ))
    .contains("basic"));
    assert!(config_err(with(base.clone(), json!({ "url": "https:///x" }))).contains("no host"));
    assert!(config_err(with(
        base.clone(),
        json!({ "url": "https://x.example/{phone}" })
    ))
    .contains("{phone}"));
    assert!(
        config_err(with(base.clone(), json!({ "body": "to={to}&pin={pin}" })))
            .contains("body: unknown placeholder `{pin}`")
    );
    assert!(config_err(json!({ "url": "https://x.example/", "body": "hello" })).contains("{to}"));
    assert!(
        config_err(json!({ "method": "GET", "url": "https://x.example/{to}", "body": "x" }))
            .contains("GET")
    );
    assert!(
        config_err(json!({ "url": "https://x.example/{to}", "body_format": "json" }))
            .contains("body_format")
    );
    assert!(config_err(with(base.clone(), json!({ "timeout": 0 }))).contains("timeout"));
    assert!(
        config_err(with(base.clone(), json!({ "success_status": [] }))).contains("success_status")
    );
    assert!(
        config_err(with(base.clone(), json!({ "success_status": [200, 42] })))
            .contains("success_status: 42")
    );
    assert!(
        config_err(with(base.clone(), json!({ "success_body_contains": "" })))
            .contains("success_body_contains")
    );
    assert!(config_err(with(
        base.clone(),
        json!({ "headers": { "Bad Name": "x" } })
    ))
    .contains("headers"));
    assert!(config_err(with(
        base.clone(),
        json!({ "headers": { "X-Key": "a\r\nInjected: 1" } })
    ))
    .contains("headers.X-Key"));
    assert!(
        config_err(with(base.clone(), json!({ "templates": { "sms": "x" } })))
            .contains("templates.sms")
    );
    assert!(config_err(with(
        base.clone(),
        json!({ "templates": { "pin": "{code}" } })
    ))
    .contains("templates.pin"));
    let e = config_err(with(
        base.clone(),
        json!({ "bearer_file": "/nonexistent/token" }),
    ));
    assert!(
        e.contains("bearer_file") && e.contains("/nonexistent/token"),
        "{e}"
    );
    let e = config_err(with(
        base.clone(),
        json!({ "basic": { "username": "u", "password_file": "/nonexistent/pw" } }),
    ));
    assert!(e.contains("basic.password_file"), "{e}");
    let e = config_err(with(base.clone(), json!({ "basic": { "username": "u" } })));
    assert!(e.contains("password_file"), "{e}");
    let e = config_err(with(
        base.clone(),
        json!({ "header_files": { "X-Key": "/nonexistent/k" } }),
    ));
    assert!(e.contains("header_files.X-Key"), "{e}");
}

#[test]
fn secrets_come_from_files_and_auth_is_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-123\n").unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "pass:word\n").unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "k-456").unwrap();

    let http = Http::new(with(
        form_config(),
        json!({ "bearer_file": token, "header_files": { "X-Api-Key": key }, "headers": { "Accept": "text/plain" } }),
    ))
    .unwrap();
    assert_eq!(header(&http, "Authorization"), Some("Bearer tok-123"));
    assert_eq!(header(&http, "X-Api-Key"), Some("k-456"));
    assert_eq!(header(&http, "Accept"), Some("text/plain"));

    let http = Http::new(with(
        form_config(),
        json!({ "basic": { "username": "acct", "password_file": pw } }),
    ))
    .unwrap();
    // base64("acct:pass:word")
    assert_eq!(
        header(&http, "Authorization"),
        Some("Basic YWNjdDpwYXNzOndvcmQ=")
    );

    let e = config_err(with(
        form_config(),
        json!({ "basic": { "username": "acct", "password_file": pw }, "bearer_file": token }),
    ));
    assert!(e.contains("basic and bearer_file"), "{e}");
    let e = config_err(with(
        form_config(),
        json!({ "bearer_file": token, "headers": { "authorization": "x" } }),
    ));
    assert!(e.contains("Authorization"), "{e}");
    let e = config_err(with(
        form_config(),
        json!({ "headers": { "X-Api-Key": "a" }, "header_files": { "x-api-key": key } }),
    ));
    assert!(e.contains("twice"), "{e}");
    let e = config_err(with(
        form_config(),
        json!({ "basic": { "username": "a:b", "password_file": pw } }),
    ));
    assert!(e.contains("basic.username"), "{e}");
    std::fs::write(&token, "\n").unwrap();
    let e = config_err(with(form_config(), json!({ "bearer_file": token })));
    assert!(e.contains("empty"), "{e}");

    // A Content-Type header replaces the format's default.
    let http = Http::new(with(
        form_config(),
        json!({ "headers": { "content-type": "application/x-www-form-urlencoded; charset=utf-8" } }),
    ))
    .unwrap();
    assert_eq!(
        header(&http, "Content-Type"),
        Some("application/x-www-form-urlencoded; charset=utf-8")
    );
    assert_eq!(http.headers.len(), 1);
}

#[test]
fn scrub_cuts_out_the_message_in_every_form_and_truncates() {
    let mut m = sms(MessageKind::ProvisionCode, "Your code is 0123456789");
    m.values.insert("code".into(), "0123456789".into());
    m.values.insert(
        "url".into(),
        "https://x/p#user=alice&code=0123456789".into(),
    );
    let text = "Code: 0123456789 é";
    let secrets = secrets(&m, text);
    let answer = "error: bad text 'Code%3A+0123456789+%C3%A9' / Code: 0123456789 é / 0123456789 for alice\r\n";
    let s = scrub(answer, &secrets);
    assert!(!s.contains("0123456789"), "{s}");
    assert!(!s.contains("Code%3A"), "{s}");
    assert!(s.contains("for alice"), "{s}");
    assert!(!s.contains('\r') && !s.contains('\n'), "{s}");
    let long = "é".repeat(300);
    let s = scrub(&long, &[]);
    assert!(s.len() <= MAX_SNIPPET + '…'.len_utf8(), "{}", s.len());
    assert!(s.ends_with('…'));
}

/// Replaces every `*_file` path (and every `header_files` entry) in an
/// example's config by a file in `dir` holding a dummy secret.
fn point_secret_files_at(value: &mut Value, dir: &Path, in_files_table: bool) {
    if let Value::Object(map) = value {
        for (key, v) in map.iter_mut() {
            if key == "header_files" {
                point_secret_files_at(v, dir, true);
            } else if (in_files_table || key.ends_with("_file")) && v.is_string() {
                let path = dir.join(key.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
                std::fs::write(&path, "dummy-secret\n").unwrap();
                *v = Value::String(path.to_string_lossy().into_owned());
            } else {
                point_secret_files_at(v, dir, false);
            }
        }
    }
}

/// The `config` table of the first `[[transport]]` of an example in `etc/`.
fn example_config(name: &str, dir: &Path) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../etc")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let doc: toml::Value = toml::from_str(&text).unwrap();
    let entry = &doc["transport"][0];
    assert_eq!(
        entry["plugin"].as_str(),
        Some("libpinwheel_transport_http.so")
    );
    let mut config = serde_json::to_value(&entry["config"]).unwrap();
    point_secret_files_at(&mut config, dir, false);
    config
}

#[test]
fn the_form_example_builds_and_renders() {
    let dir = tempfile::tempdir().unwrap();
    let http = Http::new(example_config(
        "transport-sms-form.example.toml",
        dir.path(),
    ))
    .unwrap();
    assert_eq!(
        header(&http, "Authorization"),
        Some("Basic cGlud2hlZWw6ZHVtbXktc2VjcmV0")
    );
    let mut m = sms(MessageKind::Pin, "x");
    m.values.insert("pin".into(), "4711".into());
    let p = http.prepare(&m).unwrap();
    // As the example's comment shows.
    assert_eq!(
        p.body.as_deref(),
        Some("to=%2B44+7700+900123&from=Pinwheel&text=Your+Pinwheel+PIN+is+4711&ref=pin")
    );
}

#[test]
fn the_json_example_builds_and_renders() {
    let dir = tempfile::tempdir().unwrap();
    let http = Http::new(example_config(
        "transport-sms-json.example.toml",
        dir.path(),
    ))
    .unwrap();
    assert_eq!(header(&http, "Authorization"), Some("Bearer dummy-secret"));
    assert_eq!(header(&http, "Accept"), Some("application/json"));
    let mut m = sms(MessageKind::Pin, "x");
    m.values.insert("pin".into(), "4711".into());
    let p = http.prepare(&m).unwrap();
    let body: Value = serde_json::from_str(p.body.as_deref().unwrap()).unwrap();
    // As the example's comment shows.
    assert_eq!(
        body,
        json!({"to": ["+44 7700 900123"], "from": "Pinwheel", "body": "Your Pinwheel PIN is 4711", "client_reference": "pin"})
    );
}
