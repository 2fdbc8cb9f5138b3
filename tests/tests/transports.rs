//! Transport plugins through the real daemon: the built SMTP plugin against
//! a real SMTP server on loopback (aiosmtpd from PyPI, through the sink
//! script of `plugins/transport-smtp/tests`), and the built HTTP plugin
//! against a local HTTP receiver started by the test. The provision code a
//! user gets provisions a device; a gateway's 500 is reported (naming the
//! plugin and the status) and the user's earlier code stays valid.
//!
//! Needs `python3` with aiosmtpd (`tools/test.sh` installs it); set
//! `PINWHEEL_PYTHON` to use another interpreter.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use pinwheel_tests::*;
use serde_json::Value;

const SMTP: &str = "pinwheel-transport-smtp";
const HTTP: &str = "pinwheel-transport-http";

fn python() -> String {
    std::env::var("PINWHEEL_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// A TOML string.
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The aiosmtpd sink of the SMTP plugin's tests, on 127.0.0.1; killed on drop.
struct Sink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sink {
    fn start() -> Sink {
        let python = python();
        let found = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            found,
            "this test needs aiosmtpd for {python}, and it is missing: run tools/test.sh, \
             which installs it (`{python} -m pip install aiosmtpd`)"
        );
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../plugins/transport-smtp/tests/smtp_sink.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start python3");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let Ok(port) = line.trim().parse() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the SMTP sink did not start (stdout: {line:?}); see its stderr above");
        };
        Sink { child, port, dir }
    }

    /// The messages accepted so far, oldest first.
    fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u32>().ok())
        });
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    /// Waits (up to 30 s) for more than `seen` messages; returns them all.
    fn wait_messages(&self, seen: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let messages = self.messages();
            if messages.len() > seen {
                return messages;
            }
            assert!(Instant::now() < deadline, "no new email in the sink");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let sink = Sink::start();
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

/// One HTTP request as the receiver saw it.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    target: String,
    /// Header names lower-cased.
    headers: Vec<(String, String)>,
    body: String,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A local SMS gateway: records each request and answers the status set in
/// `status` (with body "OK").
struct Gateway {
    port: u16,
    status: Arc<AtomicU16>,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Gateway {
    fn start() -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let status = Arc::new(AtomicU16::new(200));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (answer, seen) = (status.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let (answer, seen) = (answer.clone(), seen.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, answer.load(Ordering::SeqCst), &seen);
                });
            }
        });
        Gateway {
            port,
            status,
            requests,
        }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, status: u16, seen: &Mutex<Vec<Recorded>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.trim_end().splitn(3, ' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    seen.lock().unwrap().push(Recorded {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} Whatever\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK"
    )?;
    stream.flush()
}

#[test]
fn an_sms_gateway_gets_an_escaped_form_post_and_its_500_is_reported() {
    let gateway = Gateway::start();
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
    assert!(r.body.starts_with(prefix), "{}", r.body);
    let rest = &r.body[prefix.len()..];
    let (code, tail) = rest.split_at(10);
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{}", r.body);
    assert_eq!(tail, "&ref=provision-code", "{}", r.body);
    assert!(!d.log().contains(code), "code in the log");

    // The gateway fails the next message: reported, naming the plugin and
    // the status, and the code sent before stays valid.
    gateway.status.store(500, Ordering::SeqCst);
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
    let failed = &gateway.requests()[1].body;
    let failed_code = &failed[prefix.len()..prefix.len() + 10];
    assert!(!log.contains(failed_code), "code in the log");

    let state = d.path("dave.json");
    let out = d.mobile_provision(&state, "dave", code);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("Device Provisioned"), "{out}");
}
