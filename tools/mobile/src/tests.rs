//! Tests of the commands of `pinwheel-mobile` as a user runs them: each builds a
//! command line, runs it against a state file in a temporary folder and, where the
//! command talks to a server, against a tiny canned HTTP server on 127.0.0.1 (an
//! ephemeral port) that records what it was sent. They check the exact messages of
//! the user guide, the exit statuses, what is saved and what is never printed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::{json, Value};

use super::*;

/// One request as the canned server saw it.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A server on 127.0.0.1 that answers each connection with the next canned reply.
struct Canned {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

impl Canned {
    fn start(replies: Vec<(u16, String)>) -> Canned {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = Arc::clone(&seen);
        let thread = std::thread::spawn(move || {
            for (status, body) in replies {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                if let Some(request) = answer(stream, status, &body) {
                    seen2.lock().unwrap().push(request);
                }
            }
        });
        Canned {
            url,
            seen,
            thread: Some(thread),
        }
    }

    fn seen(&mut self) -> Vec<Seen> {
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.seen.lock().unwrap().clone()
    }
}

fn answer(stream: TcpStream, status: u16, body: &str) -> Option<Seen> {
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (k, v) = header.split_once(':')?;
        if k.eq_ignore_ascii_case("content-length") {
            length = v.trim().parse().ok()?;
        }
        headers.push((k.to_string(), v.trim().to_string()));
    }
    let mut raw = vec![0u8; length];
    reader.read_exact(&mut raw).ok()?;
    let mut stream = stream;
    let reply = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).ok()?;
    Some(Seen {
        line: line.trim_end().to_string(),
        headers,
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
    })
}

fn strings(batch: u64) -> Vec<String> {
    (1..=99u64)
        .map(|i| {
            format!(
                "{:010}",
                (i * 7_919 + batch * 104_729) * 2_654_435 % 10_000_000_000
            )
        })
        .collect()
}

fn provision_reply(batch: u64) -> String {
    json!({
        "device_id": "dev-42",
        "device_token": "TOKEN-s3cr3t",
        "mode": "strings",
        "batch": batch,
        "strings": strings(batch),
        "server": "http://pinwheel.example"
    })
    .to_string()
}

/// What one run gave: stdout, and the error's exit status and text.
struct Outcome {
    out: String,
    err: Option<(u8, String)>,
}

fn run_args(args: &[&str], stdin: &str) -> Outcome {
    let cli = Cli::try_parse_from(std::iter::once("pinwheel-mobile").chain(args.iter().copied()))
        .unwrap();
    let mut out = Vec::new();
    let mut input = stdin.as_bytes();
    let result = run(cli, &mut out, &mut input);
    let err = result.err().map(|err| match err.downcast_ref::<Failure>() {
        Some(failure) => (failure.exit, failure.text.clone()),
        None => (1, format!("error: {err:#}")),
    });
    Outcome {
        out: String::from_utf8(out).unwrap(),
        err,
    }
}

fn state_arg(dir: &tempfile::TempDir) -> String {
    dir.path().join("state.json").display().to_string()
}

/// Provisions a fresh state in `dir` against a canned server; returns the path.
fn provisioned(dir: &tempfile::TempDir) -> String {
    let mut server = Canned::start(vec![(200, provision_reply(1))]);
    let state = state_arg(dir);
    let o = run_args(
        &[
            "--state",
            &state,
            "provision",
            "--server",
            &server.url,
            "--user",
            "alice",
            "--code",
            "1234567890",
        ],
        "",
    );
    assert!(o.err.is_none(), "{:?}", o.err);
    server.seen();
    state
}

#[test]
fn provision_saves_state_and_prints_guide_messages() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_arg(&dir);
    let mut server = Canned::start(vec![(200, provision_reply(1))]);
    let o = run_args(
        &[
            "--state",
            &state,
            "provision",
            "--server",
            &format!("{}/", server.url),
            "--user",
            "alice",
            "--code",
            " 1234567890 ",
            "--device-name",
            "laptop",
        ],
        "",
    );
    assert!(o.err.is_none(), "{:?}", o.err);
    assert_eq!(o.out, "Provisioning. Please wait...\nDevice Provisioned\n");
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].line, "POST /api/v1/provision HTTP/1.1");
    assert_eq!(
        seen[0].body,
        json!({"username": "alice", "code": "1234567890", "device": {"name": "laptop"}})
    );
    assert!(seen[0].header("authorization").is_none());
    assert!(seen[0]
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));

    let saved = State::load(Path::new(&state)).unwrap();
    assert_eq!(saved.server.as_deref(), Some(server.url.as_str()));
    assert_eq!(saved.user.as_deref(), Some("alice"));
    let device = saved.device.unwrap();
    assert_eq!(device.device_id, "dev-42");
    assert_eq!(device.device_token, "TOKEN-s3cr3t");
    assert_eq!(device.batch, 1);
    assert_eq!(device.strings, strings(1));
    assert!(device.used.is_empty());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn provision_uses_saved_options() {
    let dir = tempfile::tempdir().unwrap();
    let state = provisioned(&dir);
    let mut server = Canned::start(vec![(200, provision_reply(5))]);
    // The saved server is the first canned one (gone now); point the option here.
    let o = run_args(&["--state", &state, "options", "--server", &server.url], "");
    assert!(o.err.is_none(), "{:?}", o.err);
    assert_eq!(o.out, format!("server: {}\nuser: alice\n", server.url));
    let o = run_args(&["--state", &state, "provision", "--code", "999"], "");
    assert!(o.err.is_none(), "{:?}", o.err);
    let seen = server.seen();
    assert_eq!(seen[0].body["username"], "alice");
    assert_eq!(seen[0].body["code"], "999");
    let device = State::load(Path::new(&state)).unwrap().device.unwrap();
    assert_eq!(device.batch, 5);
}

#[test]
fn user_not_set_makes_no_network_call() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_arg(&dir);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let o = run_args(
        &[
            "--state",
            &state,
            "provision",
            "--server",
            &url,
            "--code",
            "1234567890",
        ],
        "",
    );
    assert_eq!(o.err, Some((2, "User not set".to_string())));
    assert_eq!(o.out, "");
    let err = listener.accept().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    assert!(!Path::new(&state).exists());

    // An empty --user counts as not set too.
    let o = run_args(
        &[
            "--state",
            &state,
            "provision",
            "--server",
            &url,
            "--user",
            " ",
            "--code",
            "1",
        ],
        "",
    );
    assert_eq!(o.err, Some((2, "User not set".to_string())));
    assert!(listener.accept().is_err());
}

#[test]
fn server_not_set_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_arg(&dir);
    let o = run_args(
        &[
            "--state",
            &state,
            "provision",
            "--user",
            "bob",
            "--code",
            "1",
        ],
        "",
    );
    let (exit, text) = o.err.unwrap();
    assert_eq!(exit, 2);
    assert!(text.contains("Server not set"), "{text}");
}

#[test]
fn provision_failure_prints_two_lines_and_keeps_old_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = provisioned(&dir);
    let before = std::fs::read(&state).unwrap();
    let mut server = Canned::start(vec![(
        403,
        json!({"error": "PROVISION_FAILURE", "message": "Provision Failure"}).to_string(),
    )]);
    let o = run_args(
        &[
            "--state",
            &state,
            "provision",
            "--server",
            &server.url,
            "--user",
            "carol",
            "--code",
            "0000000000",
        ],
        "",
    );
    assert_eq!(o.out, "Provisioning. Please wait...\n");
    assert_eq!(
        o.err,
        Some((
            1,
            "Failure\nPlease check your settings or try again later. Message: Provision Failure"
                .to_string()
        ))
    );
    assert_eq!(server.seen().len(), 1);
    assert_eq!(std::fs::read(&state).unwrap(), before);
}

#[test]
fn other_server_errors_name_status_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_arg(&dir);
    let mut server = Canned::start(vec![(
        429,
        json!({"error": "TOO_MANY_REQUESTS", "message": "Slow\u{1b}[2J down"}).to_string(),
    )]);
    let o = run_args(
        &[
            "--state",
            &state,
            "provision",
            "--server",
            &server.url,
            "--user",
            "a",
            "--code",
            "SECRETCODE",
        ],
        "",
    );
    let (exit, text) = o.err.unwrap();
    assert_eq!(exit, 1);
    assert!(
        text.contains("HTTP 429 TOO_MANY_REQUESTS: Slow[2J down"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}/api/v1/provision", server.url)),
        "{text}"
    );
    assert!(!text.contains("SECRETCODE"));
    server.seen();
    assert!(!Path::new(&state).exists());
}

#[test]
fn network_error_names_the_url_and_not_the_code() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_arg(&dir);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let o = run_args(
        &[
            "--state",
            &state,
            "provision",
            "--server",
            &url,
            "--user",
            "a",
            "--code",
            "SECRETCODE",
        ],
        "",
    );
    let (exit, text) = o.err.unwrap();
    assert_eq!(exit, 1);
    assert!(
        text.contains(&format!("could not reach {url}/api/v1/provision: ")),
        "{text}"
    );
    assert!(!text.contains("SECRETCODE"));
    assert!(!Path::new(&state).exists());
}

#[test]
fn bad_replies_are_refused_and_nothing_is_saved() {
    let mut short = serde_json::from_str::<Value>(&provision_reply(1)).unwrap();
    short["strings"].as_array_mut().unwrap().pop();
    let mut bad_string = serde_json::from_str::<Value>(&provision_reply(1)).unwrap();
    bad_string["strings"][3] = json!("12345");
    let mut bad_token = serde_json::from_str::<Value>(&provision_reply(1)).unwrap();
    bad_token["device_token"] = json!("a b");
    for (body, want) in [
        ("not json".to_string(), "not valid"),
        (short.to_string(), "expected 99 security strings, got 98"),
        (bad_string.to_string(), "security string 04 is not valid"),
        (bad_token.to_string(), "device_token"),
        (json!({"device_id": "d"}).to_string(), "not valid"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let state = state_arg(&dir);
        let mut server = Canned::start(vec![(200, body)]);
        let o = run_args(
            &[
                "--state",
                &state,
                "provision",
                "--server",
                &server.url,
                "--user",
                "a",
                "--code",
                "1",
            ],
            "",
        );
        let (exit, text) = o.err.unwrap();
        assert_eq!(exit, 1);
        assert!(text.contains(want), "{want}: {text}");
        server.seen();
        assert!(!Path::new(&state).exists());
    }
}

#[test]
fn otc_uses_next_index_and_spends_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = provisioned(&dir);
    let s1 = &strings(1)[0];
    let want1 = format!("{}01", &s1[..4]);
    let o = run_args(&["--state", &state, "otc", "--pin", "1234"], "");
    assert!(o.err.is_none(), "{:?}", o.err);
    assert_eq!(o.out, format!("{want1}\n"));
    let o = run_args(&["--state", &state, "otc", "--pin", "-"], "4321\n");
    let s2 = strings(1)[1].clone().into_bytes();
    let want2 = format!(
        "{}{}{}{}02",
        s2[3] as char, s2[2] as char, s2[1] as char, s2[0] as char
    );
    assert_eq!(o.out, format!("{want2}\n"));
    let device = State::load(Path::new(&state)).unwrap().device.unwrap();
    assert_eq!(device.used, vec![1, 2]);

    // An explicit index, then the same one again.
    let o = run_args(
        &["--state", &state, "otc", "--pin", "0000", "--index", "50"],
        "",
    );
    let s50 = strings(1)[49].clone().into_bytes();
    assert_eq!(
        o.out,
        format!("{}50\n", String::from_utf8(vec![s50[9]; 4]).unwrap())
    );
    let o = run_args(
        &["--state", &state, "otc", "--pin", "1234", "--index", "50"],
        "",
    );
    let (exit, text) = o.err.unwrap();
    assert_eq!(exit, 1);
    assert!(text.contains("Index 50 has already been used"), "{text}");
    assert_eq!(o.out, "");
    // The next unused one skips what was spent.
    let o = run_args(&["--state", &state, "otc", "--pin", "1234"], "");
    assert!(o.out.ends_with("03\n"), "{}", o.out);
}

#[test]
fn otc_rejects_bad_pins_without_echoing_them() {
    let dir = tempfile::tempdir().unwrap();
    let state = provisioned(&dir);
    for pin in ["12", "12345678901", "12a4", "98765x", ""] {
        let o = run_args(&["--state", &state, "otc", "--pin", pin], "");
        let (exit, text) = o.err.unwrap();
        assert_eq!(exit, 2);
        assert!(text.starts_with("Invalid PIN: "), "{text}");
        if !pin.is_empty() {
            assert!(!text.contains(pin), "{text}");
        }
    }
    let device = State::load(Path::new(&state)).unwrap().device.unwrap();
    assert!(device.used.is_empty());
    // --index outside 1..=99 is a usage error from the command line parser.
    for index in ["0", "100", "x"] {
        let parsed =
            Cli::try_parse_from(["pinwheel-mobile", "otc", "--pin", "1234", "--index", index]);
        assert!(parsed.is_err(), "{index}");
    }
}

#[test]
fn otc_without_strings_or_device() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_arg(&dir);
    let o = run_args(&["--state", &state, "otc", "--pin", "1234"], "");
    assert_eq!(o.err, Some((1, NOT_PROVISIONED.to_string())));

    let state = provisioned(&dir);
    let mut saved = State::load(Path::new(&state)).unwrap();
    saved.device.as_mut().unwrap().used = (1..=99).collect();
    saved.save(Path::new(&state)).unwrap();
    let o = run_args(&["--state", &state, "otc", "--pin", "1234"], "");
    assert_eq!(
        o.err,
        Some((
            1,
            "No security strings left: run `pinwheel-mobile strings refresh`".to_string()
        ))
    );
}

#[test]
fn refresh_replaces_strings_and_resets_used() {
    let dir = tempfile::tempdir().unwrap();
    let state = provisioned(&dir);
    run_args(&["--state", &state, "otc", "--pin", "1234"], "");
    let saved = State::load(Path::new(&state)).unwrap();
    let url = saved.server.clone().unwrap();
    // Point the saved server at a new canned server.
    let mut server = Canned::start(vec![(
        200,
        json!({"batch": 2, "strings": strings(2)}).to_string(),
    )]);
    run_args(&["--state", &state, "options", "--server", &server.url], "");
    assert_ne!(url, server.url);
    let o = run_args(&["--state", &state, "strings", "refresh"], "");
    assert!(o.err.is_none(), "{:?}", o.err);
    assert_eq!(o.out, "Security strings updated (batch 2)\n");
    let seen = server.seen();
    assert_eq!(seen[0].line, "POST /api/v1/strings HTTP/1.1");
    assert_eq!(seen[0].header("authorization"), Some("Bearer TOKEN-s3cr3t"));
    assert_eq!(seen[0].body, json!({}));
    let device = State::load(Path::new(&state)).unwrap().device.unwrap();
    assert_eq!(device.batch, 2);
    assert_eq!(device.strings, strings(2));
    assert!(device.used.is_empty());
}

#[test]
fn refresh_with_revoked_token() {
    let dir = tempfile::tempdir().unwrap();
    let state = provisioned(&dir);
    let before = std::fs::read(&state).unwrap();
    let mut server = Canned::start(vec![(
        401,
        json!({"error": "UNAUTHORIZED", "message": "Unauthorized"}).to_string(),
    )]);
    run_args(&["--state", &state, "options", "--server", &server.url], "");
    let before_refresh = std::fs::read(&state).unwrap();
    assert_ne!(before, before_refresh);
    let o = run_args(&["--state", &state, "strings", "refresh"], "");
    assert_eq!(
        o.err,
        Some((
            1,
            "Device no longer provisioned: provision again".to_string()
        ))
    );
    server.seen();
    assert_eq!(std::fs::read(&state).unwrap(), before_refresh);
}

#[test]
fn status_and_show_never_print_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_arg(&dir);
    let o = run_args(&["--state", &state, "status"], "");
    assert_eq!(
        o.out,
        format!("state file: {state}\nserver: (not set)\nuser: (not set)\ndevice id: (not provisioned)\n")
    );
    let state = provisioned(&dir);
    run_args(
        &["--state", &state, "otc", "--pin", "1234", "--index", "2"],
        "",
    );
    let o = run_args(&["--state", &state, "status"], "");
    let url = State::load(Path::new(&state)).unwrap().server.unwrap();
    assert_eq!(
        o.out,
        format!("state file: {state}\nserver: {url}\nuser: alice\ndevice id: dev-42\nmode: strings\nbatch: 1\nstrings left: 98 of 99\n")
    );
    let o = run_args(&["--state", &state, "status", "--show-key"], "");
    assert!(
        o.out
            .ends_with("authenticator key: (none: this device uses security strings)\n"),
        "{}",
        o.out
    );
    let o = run_args(&["--state", &state, "strings", "show"], "");
    let lines: Vec<&str> = o.out.lines().collect();
    assert_eq!(lines.len(), 100);
    assert_eq!(lines[0], "batch 1");
    assert_eq!(lines[1], format!("01 {}", strings(1)[0]));
    assert_eq!(lines[2], format!("02 {} used", strings(1)[1]));
    assert_eq!(lines[99], format!("99 {}", strings(1)[98]));
    assert!(!o.out.contains("TOKEN-s3cr3t"));
    let o = run_args(&["--state", &state, "status"], "");
    assert!(!o.out.contains("TOKEN-s3cr3t"));
}

#[test]
fn server_option_must_be_http_or_https() {
    for bad in ["ftp://x", "example.com", "http://u:p@x"] {
        let parsed = Cli::try_parse_from([
            "pinwheel-mobile",
            "provision",
            "--server",
            bad,
            "--code",
            "1",
        ]);
        assert!(parsed.is_err(), "{bad}");
    }
}

#[test]
fn corrupt_state_file_is_reported_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_arg(&dir);
    std::fs::write(&state, "{\"version\": 9}").unwrap();
    let o = run_args(&["--state", &state, "status"], "");
    let (exit, text) = o.err.unwrap();
    assert_eq!(exit, 1);
    assert!(text.contains("version 9 is not supported"), "{text}");
    assert!(text.contains(&state), "{text}");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "{\"version\": 9}");
}

// ---- OATH mode -------------------------------------------------------------------

use pinwheel::otc::oath::{hotp, totp, Algorithm, OathSecret};

/// Base32 of the RFC 4226 / RFC 6238 test key "12345678901234567890".
const OATH_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn totp_uri() -> String {
    format!("otpauth://totp/Pinwheel:alice?secret={OATH_SECRET}&issuer=Pinwheel&algorithm=SHA1&digits=6&period=30")
}

fn hotp_uri() -> String {
    format!("otpauth://hotp/Pinwheel:alice?secret={OATH_SECRET}&issuer=Pinwheel&algorithm=SHA1&digits=6&counter=0")
}

fn oath_reply(uri: &str) -> String {
    json!({
        "device_id": "dev-7",
        "device_token": "TOKEN-0ath",
        "mode": "oath",
        "otpauth_uri": uri,
        "server": "http://pinwheel.example"
    })
    .to_string()
}

/// Runs `provision` against a canned server answering `body`.
fn provision_with(state: &str, body: String) -> Outcome {
    let mut server = Canned::start(vec![(200, body)]);
    let o = run_args(
        &[
            "--state",
            state,
            "provision",
            "--server",
            &server.url,
            "--user",
            "alice",
            "--code",
            "1234567890",
        ],
        "",
    );
    server.seen();
    o
}

/// Provisions a fresh OATH state in `dir` with `uri`; returns the path.
fn provisioned_oath(dir: &tempfile::TempDir, uri: &str) -> String {
    let state = state_arg(dir);
    let o = provision_with(&state, oath_reply(uri));
    assert!(o.err.is_none(), "{:?}", o.err);
    state
}

fn secret() -> Vec<u8> {
    OathSecret::from_base32(OATH_SECRET)
        .unwrap()
        .as_bytes()
        .to_vec()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn saved_uri(state: &str) -> String {
    State::load(Path::new(state))
        .unwrap()
        .device
        .unwrap()
        .otpauth_uri
        .unwrap()
}

#[test]
fn provision_in_oath_mode_saves_the_key_and_prints_it() {
    for uri in [totp_uri(), hotp_uri()] {
        let dir = tempfile::tempdir().unwrap();
        let state = state_arg(&dir);
        let o = provision_with(&state, oath_reply(&uri));
        assert!(o.err.is_none(), "{:?}", o.err);
        assert_eq!(
            o.out,
            format!("Provisioning. Please wait...\nDevice Provisioned\nAuthenticator key: {uri}\n")
        );
        let saved = State::load(Path::new(&state)).unwrap();
        assert_eq!(saved.user.as_deref(), Some("alice"));
        let device = saved.device.unwrap();
        assert_eq!(device.device_id, "dev-7");
        assert_eq!(device.device_token, "TOKEN-0ath");
        assert_eq!(device.otpauth_uri.as_deref(), Some(uri.as_str()));
        assert!(device.strings.is_empty() && device.batch == 0);
        let text = std::fs::read_to_string(&state).unwrap();
        assert!(text.contains("\"version\": 2"), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn bad_oath_replies_are_refused_and_nothing_is_saved() {
    let no_uri = json!({"device_id": "d", "device_token": "t", "mode": "oath", "server": "x"});
    let five_digits = totp_uri().replace("digits=6", "digits=5");
    let escape = format!("{}\u{1b}[2J", totp_uri());
    for (body, want) in [
        (no_uri.to_string(), "without an otpauth_uri"),
        (oath_reply(&five_digits), "6 to 8 digits"),
        (oath_reply("otpauth://totp/a?secret=!!"), "base32"),
        (oath_reply(&escape), "visible ASCII"),
        (
            json!({"device_id": "d", "device_token": "t", "mode": "magic"}).to_string(),
            "\"magic\" mode",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let state = state_arg(&dir);
        let o = provision_with(&state, body);
        let (exit, text) = o.err.unwrap();
        assert_eq!(exit, 1);
        assert!(text.contains(want), "{want}: {text}");
        assert!(!text.contains(OATH_SECRET), "{text}");
        assert_eq!(o.out, "Provisioning. Please wait...\n");
        assert!(!Path::new(&state).exists());
    }
}

#[test]
fn otc_in_totp_mode_prints_the_current_code() {
    let dir = tempfile::tempdir().unwrap();
    let state = provisioned_oath(&dir, &totp_uri());
    let before = std::fs::read(&state).unwrap();
    let code_at = |t: u64| totp(&secret(), t, 30, Algorithm::Sha1, 6);
    // The step may roll over between reading the clock here and in the command.
    let (start, o, end) = (now(), run_args(&["--state", &state, "otc"], ""), now());
    assert!(o.err.is_none(), "{:?}", o.err);
    let wants = [
        format!("{}\n", code_at(start)),
        format!("{}\n", code_at(end)),
    ];
    assert!(wants.contains(&o.out), "{:?} not in {wants:?}", o.out);
    assert_eq!(o.out.len(), 7);

    // With a PIN: the PIN, then the code.
    for (args, stdin) in [
        (vec!["--state", &state, "otc", "--pin", "1234"], ""),
        (vec!["--state", &state, "otc", "--pin", "-"], "1234\n"),
    ] {
        let (start, o, end) = (now(), run_args(&args, stdin), now());
        assert!(o.err.is_none(), "{:?}", o.err);
        let wants = [
            format!("1234{}\n", code_at(start)),
            format!("1234{}\n", code_at(end)),
        ];
        assert!(wants.contains(&o.out), "{:?} not in {wants:?}", o.out);
    }
    // TOTP keeps nothing: the state file is untouched.
    assert_eq!(std::fs::read(&state).unwrap(), before);

    // A bad PIN is refused without echoing it; --index makes no sense here.
    let o = run_args(&["--state", &state, "otc", "--pin", "12x4"], "");
    let (exit, text) = o.err.unwrap();
    assert_eq!(exit, 2);
    assert!(
        text.starts_with("Invalid PIN: ") && !text.contains("12x4"),
        "{text}"
    );
    let o = run_args(&["--state", &state, "otc", "--index", "3"], "");
    assert_eq!(o.err, Some((2, INDEX_IN_OATH_MODE.to_string())));
    assert_eq!(o.out, "");
}

#[test]
fn otc_in_hotp_mode_advances_the_counter() {
    let dir = tempfile::tempdir().unwrap();
    let state = provisioned_oath(&dir, &hotp_uri());
    let o = run_args(&["--state", &state, "otc"], "");
    assert!(o.err.is_none(), "{:?}", o.err);
    assert_eq!(
        o.out,
        format!("{}\n", hotp(&secret(), 0, Algorithm::Sha1, 6))
    );
    assert_eq!(o.out, "755224\n"); // RFC 4226 Appendix D, count 0
    assert!(
        saved_uri(&state).ends_with("&counter=1"),
        "{}",
        saved_uri(&state)
    );
    let o = run_args(&["--state", &state, "otc", "--pin", "0987"], "");
    assert!(o.err.is_none(), "{:?}", o.err);
    assert_eq!(
        o.out,
        format!("0987{}\n", hotp(&secret(), 1, Algorithm::Sha1, 6))
    );
    assert_eq!(o.out, "0987287082\n"); // count 1
    assert!(saved_uri(&state).ends_with("&counter=2"));
    // Refused attempts spend nothing.
    run_args(&["--state", &state, "otc", "--index", "1"], "");
    run_args(&["--state", &state, "otc", "--pin", "12"], "");
    assert!(saved_uri(&state).ends_with("&counter=2"));
    let o = run_args(&["--state", &state, "otc"], "");
    assert_eq!(
        o.out,
        format!("{}\n", hotp(&secret(), 2, Algorithm::Sha1, 6))
    );
    // The rewritten URI still holds the same key and parameters.
    let key = pinwheel::otc::oath::KeyUri::parse(&saved_uri(&state)).unwrap();
    let first = pinwheel::otc::oath::KeyUri::parse(&hotp_uri()).unwrap();
    assert_eq!(
        (key.secret, key.params, key.counter),
        (first.secret, first.params, 3)
    );
}

#[test]
fn strings_commands_refuse_in_oath_mode() {
    let dir = tempfile::tempdir().unwrap();
    let state = provisioned_oath(&dir, &totp_uri());
    // Point the server at a listener that must see no connection.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    run_args(&["--state", &state, "options", "--server", &url], "");
    let before = std::fs::read(&state).unwrap();
    for sub in ["refresh", "show"] {
        let o = run_args(&["--state", &state, "strings", sub], "");
        assert_eq!(
            o.err,
            Some((
                1,
                "This device is in OATH mode: it has no security strings".to_string()
            ))
        );
        assert_eq!(o.out, "");
    }
    let err = listener.accept().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    assert_eq!(std::fs::read(&state).unwrap(), before);
}

#[test]
fn refresh_when_the_server_switched_to_oath_mode() {
    let dir = tempfile::tempdir().unwrap();
    let state = provisioned(&dir);
    let mut server = Canned::start(vec![(
        409,
        json!({"error": "NOT_STRINGS_MODE", "message": "This device is in OATH mode"}).to_string(),
    )]);
    run_args(&["--state", &state, "options", "--server", &server.url], "");
    let before = std::fs::read(&state).unwrap();
    let o = run_args(&["--state", &state, "strings", "refresh"], "");
    assert_eq!(o.err, Some((1, SERVER_SAYS_OATH_MODE.to_string())));
    server.seen();
    assert_eq!(std::fs::read(&state).unwrap(), before);
}

#[test]
fn status_in_oath_mode_shows_the_key_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let state = provisioned_oath(&dir, &totp_uri());
    let url = State::load(Path::new(&state)).unwrap().server.unwrap();
    let head =
        format!("state file: {state}\nserver: {url}\nuser: alice\ndevice id: dev-7\nmode: oath\n");
    let o = run_args(&["--state", &state, "status"], "");
    assert_eq!(
        o.out,
        format!("{head}kind: totp\nalgorithm: SHA1\ndigits: 6\nperiod: 30 s\n")
    );
    assert!(!o.out.contains(OATH_SECRET) && !o.out.contains("TOKEN-0ath"));
    let o = run_args(&["--state", &state, "status", "--show-key"], "");
    assert_eq!(
        o.out,
        format!(
            "{head}kind: totp\nalgorithm: SHA1\ndigits: 6\nperiod: 30 s\nauthenticator key: {}\n",
            totp_uri()
        )
    );
    assert!(!o.out.contains("TOKEN-0ath"));

    let dir = tempfile::tempdir().unwrap();
    let uri = hotp_uri()
        .replace("SHA1", "SHA512")
        .replace("digits=6", "digits=8");
    let state = provisioned_oath(&dir, &uri);
    run_args(&["--state", &state, "otc"], "");
    let o = run_args(&["--state", &state, "status"], "");
    assert!(
        o.out
            .ends_with("mode: oath\nkind: hotp\nalgorithm: SHA512\ndigits: 8\nnext counter: 1\n"),
        "{}",
        o.out
    );
    assert!(!o.out.contains(OATH_SECRET));
}

#[test]
fn strings_mode_otc_still_needs_a_pin() {
    let dir = tempfile::tempdir().unwrap();
    let state = provisioned(&dir);
    let o = run_args(&["--state", &state, "otc"], "");
    assert_eq!(o.err, Some((2, PIN_NOT_SET.to_string())));
    assert_eq!(o.out, "");
    let device = State::load(Path::new(&state)).unwrap().device.unwrap();
    assert!(device.used.is_empty());
    // Without a device, "not provisioned" comes first.
    let empty = tempfile::tempdir().unwrap();
    let o = run_args(&["--state", &state_arg(&empty), "otc"], "");
    assert_eq!(o.err, Some((1, NOT_PROVISIONED.to_string())));
}

#[test]
fn version_1_state_files_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_arg(&dir);
    // A state file as the previous version of this program wrote it.
    let v1 = json!({
        "version": 1,
        "server": "http://127.0.0.1:9",
        "user": "alice",
        "device": {
            "device_id": "dev-42",
            "device_token": "TOKEN-s3cr3t",
            "batch": 1,
            "strings": strings(1),
            "used": [1]
        }
    });
    std::fs::write(&state, serde_json::to_string_pretty(&v1).unwrap()).unwrap();
    let o = run_args(&["--state", &state, "status"], "");
    assert!(o.err.is_none(), "{:?}", o.err);
    assert!(
        o.out
            .ends_with("device id: dev-42\nmode: strings\nbatch: 1\nstrings left: 98 of 99\n"),
        "{}",
        o.out
    );
    let o = run_args(&["--state", &state, "otc", "--pin", "1234"], "");
    assert_eq!(o.out, format!("{}02\n", &strings(1)[1][..4]));
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(text.contains("\"version\": 2"), "{text}");
    let device = State::load(Path::new(&state)).unwrap().device.unwrap();
    assert_eq!(device.used, vec![1, 2]);
}
