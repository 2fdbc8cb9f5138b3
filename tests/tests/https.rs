//! HTTPS on the HTTP listener (`[http] tls_certificate` / `tls_key`), with a
//! CA and server certificates made by rcgen at run time: the API answers over
//! TLS and plain HTTP on the TLS port gets nothing; a client that never sends
//! a ClientHello is cut off at `header_timeout` and gives its connection slot
//! back; a broken or mismatched pair stops the daemon at start with the file
//! and the reason; SIGHUP serves a new certificate to new connections, and a
//! broken one is refused with the reason while the old one keeps serving.

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Child;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pinwheel_tests::{bin, run, spawn_pinwheeld, wait_timeout, Config, Layout};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};

/// A CA and a server certificate for 127.0.0.1 signed by it.
struct Pki {
    ca_der: Vec<u8>,
    cert_pem: String,
    cert_der: Vec<u8>,
    key_pem: String,
}

fn pki(name: &str) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let mut server =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, format!("{name} server"));
    let key = KeyPair::generate().unwrap();
    let cert = server.signed_by(&key, &ca_cert, &ca_key).unwrap();
    Pki {
        ca_der: ca_cert.der().to_vec(),
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pem: key.serialize_pem(),
    }
}

fn client_config(ca_der: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .expect("CA certificate");
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// `GET https://127.0.0.1:PORT/PATH` trusting only `ca_der`: status and body.
fn https_get(port: u16, path: &str, ca_der: &[u8]) -> Result<(u16, String), String> {
    let agent = ureq::AgentBuilder::new()
        .tls_config(client_config(ca_der))
        .timeout(Duration::from_secs(10))
        .build();
    match agent.get(&format!("https://127.0.0.1:{port}{path}")).call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => {
            let status = r.status();
            Ok((status, r.into_string().map_err(|e| e.to_string())?))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The certificate the server presents to a new connection that trusts `ca_der`.
fn served_certificate(port: u16, ca_der: &[u8]) -> Result<Vec<u8>, String> {
    let name = ServerName::try_from("127.0.0.1").unwrap().to_owned();
    let mut conn =
        rustls::ClientConnection::new(client_config(ca_der), name).map_err(|e| e.to_string())?;
    let mut sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    assert_eq!(conn.alpn_protocol(), None, "no ALPN asked, none chosen");
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or_else(|| "no certificate presented".to_string())
}

/// A daemon serving HTTPS from `cert.pem` / `key.pem` in its folder.
struct TlsDaemon {
    _dir: tempfile::TempDir,
    layout: Layout,
    cert: PathBuf,
    key: PathBuf,
    child: Option<Child>,
}

impl TlsDaemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.layout.log_path).unwrap_or_default()
    }

    fn port(&self) -> u16 {
        self.layout.http_port
    }

    fn write_pair(&self, cert_pem: &str, key_pem: &str) {
        std::fs::write(&self.cert, cert_pem).unwrap();
        std::fs::write(&self.key, key_pem).unwrap();
    }

    fn sighup(&self) {
        let pid = self.child.as_ref().expect("running").id();
        kill(Pid::from_raw(pid as i32), Signal::SIGHUP).expect("SIGHUP");
    }

    /// Waits (up to 30 s) for `n` log lines containing `words`.
    fn wait_log(&self, words: &str, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            if log.lines().filter(|l| l.contains(words)).count() >= n {
                return log;
            }
            assert!(Instant::now() < deadline, "no {words:?} in the log:\n{log}");
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TlsDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Lays out a daemon with `pair` as its certificate and key and `http_extra`
/// in `[http]`; starts it and waits until `/healthz` answers over HTTPS
/// trusting `ca_der` (`Err` with the log if it exits first).
fn start(
    cert_pem: &str,
    key_pem: &str,
    ca_der: &[u8],
    http_extra: &str,
) -> Result<TlsDaemon, String> {
    let dir = tempfile::Builder::new()
        .prefix("pinwheel-https-")
        .tempdir()
        .unwrap();
    let layout = Layout::new(dir.path());
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let cfg = Config {
        http_extra: format!(
            "tls_certificate = {:?}\ntls_key = {:?}\n{http_extra}",
            cert.to_str().unwrap(),
            key.to_str().unwrap()
        ),
        ..Config::default()
    };
    std::fs::write(&layout.config_path, layout.render(&cfg)).unwrap();
    let mut d = TlsDaemon {
        _dir: dir,
        layout,
        cert,
        key,
        child: None,
    };
    d.write_pair(cert_pem, key_pem);
    d.child = Some(spawn_pinwheeld(&d.layout.config_path, &d.layout.log_path));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let child = d.child.as_mut().unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            d.child = None;
            return Err(format!("pinwheeld exited with {status}:\n{}", d.log()));
        }
        if matches!(https_get(d.port(), "/healthz", ca_der), Ok((200, _)))
            && d.layout.admin_socket().exists()
        {
            return Ok(d);
        }
        assert!(
            Instant::now() < deadline,
            "pinwheeld not serving HTTPS after 30 s:\n{}",
            d.log()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn https_serves_the_api_and_plain_http_gets_nothing() {
    let p = pki("one");
    let d = start(&p.cert_pem, &p.key_pem, &p.ca_der, "").unwrap();
    assert_eq!(
        https_get(d.port(), "/healthz", &p.ca_der),
        Ok((200, "ok\n".to_string()))
    );
    let (status, body) = https_get(d.port(), "/api/v1/server-settings", &p.ca_der).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"alphabet\""), "{body}");
    assert_eq!(served_certificate(d.port(), &p.ca_der).unwrap(), p.cert_der);

    // A client that trusts another CA refuses the server.
    let other = pki("other");
    let e = https_get(d.port(), "/healthz", &other.ca_der).unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "{e}");

    // Plain HTTP on the TLS port: no HTTP answer.
    let plain = pinwheel_tests::http_get(&format!("http://127.0.0.1:{}/healthz", d.port()));
    assert!(
        plain.is_err(),
        "plain HTTP on the HTTPS port got an answer: {plain:?}"
    );
    // Still serving HTTPS afterwards.
    assert_eq!(https_get(d.port(), "/healthz", &p.ca_der).unwrap().0, 200);
}

/// `true` while the server has not closed `s` (nothing to read yet).
fn still_open(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    let open = matches!((&*s).read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    open
}

#[test]
fn a_client_without_client_hello_is_cut_off_and_frees_its_slot() {
    let p = pki("idle");
    let d = start(
        &p.cert_pem,
        &p.key_pem,
        &p.ca_der,
        "max_connections = 2\nheader_timeout = \"3s\"\n",
    )
    .unwrap();
    // Two silent TCP connections take both slots (one may be turned away
    // while the server still holds the start-up check's connection: open
    // another then)...
    let mut idle: Vec<(TcpStream, Instant)> = Vec::new();
    let began = Instant::now();
    while idle.len() < 2 {
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "cannot hold two connections open"
        );
        idle.push((
            TcpStream::connect(("127.0.0.1", d.port())).unwrap(),
            Instant::now(),
        ));
        thread::sleep(Duration::from_millis(200));
        idle.retain(|(s, _)| still_open(s));
    }
    let opened = idle[0].1;
    // ...so a third client is turned away meanwhile...
    assert!(
        https_get(d.port(), "/healthz", &p.ca_der).is_err(),
        "a third connection was served while two held both slots:\n{}",
        d.log()
    );
    assert!(
        opened.elapsed() < Duration::from_secs(3),
        "too slow to test"
    );
    // ...until the handshake time-out closes them.
    for (s, _) in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "the server sent bytes to a client that sent none");
        assert!(
            opened.elapsed() < Duration::from_secs(8),
            "a silent client was kept {:?} (header_timeout 3s)",
            opened.elapsed()
        );
    }
    thread::sleep(Duration::from_millis(200));
    assert_eq!(https_get(d.port(), "/healthz", &p.ca_der).unwrap().0, 200);
}

#[test]
fn a_broken_or_mismatched_pair_stops_the_daemon_with_the_reason() {
    let p = pki("one");
    let q = pki("two");
    // The key of another certificate.
    let e = start(&p.cert_pem, &q.key_pem, &p.ca_der, "")
        .err()
        .expect("started with a mismatched key");
    assert!(
        e.contains("key.pem does not match the certificate in"),
        "{e}"
    );
    assert!(e.contains("cert.pem"), "{e}");
    assert!(
        !e.contains("PRIVATE KEY-----\n"),
        "key material in the log: {e}"
    );

    // No certificate in the certificate file.
    let e = start("not a certificate\n", &p.key_pem, &p.ca_der, "")
        .err()
        .expect("started without a certificate");
    assert!(e.contains("cert.pem: no certificate in it"), "{e}");
    assert!(e.contains("http.tls_certificate"), "{e}");

    // A missing key file; and a certificate without a key.
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, &p.cert_pem).unwrap();
    let check = |extra: String| {
        let cfg = Config {
            http_extra: extra,
            ..Config::default()
        };
        std::fs::write(&layout.config_path, layout.render(&cfg)).unwrap();
        run(std::process::Command::new(bin("pinwheeld"))
            .arg("--config")
            .arg(&layout.config_path)
            .arg("--check-config"))
    };
    let out = check(format!(
        "tls_certificate = {:?}\ntls_key = \"/nonexistent/key.pem\"\n",
        cert.to_str().unwrap()
    ));
    assert!(!out.success(), "{out}");
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("http.tls_key") && text.contains("cannot read /nonexistent/key.pem"),
        "{out}"
    );
    let out = check(format!("tls_certificate = {:?}\n", cert.to_str().unwrap()));
    assert!(!out.success(), "{out}");
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("http.tls_key") && text.contains("is required with http.tls_certificate"),
        "{out}"
    );
}

#[test]
fn sighup_serves_a_new_certificate_and_refuses_a_broken_one() {
    let one = pki("one");
    let mut d = start(&one.cert_pem, &one.key_pem, &one.ca_der, "").unwrap();
    assert_eq!(
        served_certificate(d.port(), &one.ca_der).unwrap(),
        one.cert_der
    );

    // A new pair from another CA: new connections get it.
    let two = pki("two");
    d.write_pair(&two.cert_pem, &two.key_pem);
    d.sighup();
    d.wait_log("configuration reloaded", 1);
    assert_eq!(
        served_certificate(d.port(), &two.ca_der).unwrap(),
        two.cert_der
    );
    assert!(served_certificate(d.port(), &one.ca_der).is_err());
    assert_eq!(https_get(d.port(), "/healthz", &two.ca_der).unwrap().0, 200);

    // A broken certificate: refused with the reason, the pair in use stays.
    std::fs::write(&d.cert, "-----BEGIN CERTIFICATE-----\n!!\n").unwrap();
    d.sighup();
    let log = d.wait_log("reload refused", 1);
    assert!(log.contains("cert.pem: no certificate in it"), "{log}");
    assert_eq!(
        served_certificate(d.port(), &two.ca_der).unwrap(),
        two.cert_der
    );

    // A certificate whose key is another's: refused too.
    std::fs::write(&d.cert, &one.cert_pem).unwrap();
    d.sighup();
    let log = d.wait_log("reload refused", 2);
    assert!(log.contains("does not match the certificate"), "{log}");
    assert_eq!(
        served_certificate(d.port(), &two.ca_der).unwrap(),
        two.cert_der
    );
    assert_eq!(https_get(d.port(), "/healthz", &two.ca_der).unwrap().0, 200);

    let mut child = d.child.take().unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = wait_timeout(&mut child, Duration::from_secs(20)).unwrap();
    assert!(status.success(), "{status}");
}
