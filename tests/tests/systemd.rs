//! systemd integration: with `NOTIFY_SOCKET` set, pinwheeld sends `READY=1`
//! only once its listeners are bound (HTTP answers and the admin socket exists
//! when the notification arrives), `RELOADING=1` (with `MONOTONIC_USEC=`) and
//! `READY=1` around a reload (SIGHUP), and `STOPPING=1` on SIGTERM before
//! exiting 0. Sockets passed by systemd (socket activation, LISTEN_FDS) are
//! used for the listeners with their addresses.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use pinwheel_tests::{bin, http_get, terminate, Config, Layout};

#[test]
fn ready_is_sent_after_listeners_are_bound_reloading_on_sighup_and_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    std::fs::write(&layout.config_path, layout.render(&Config::default())).unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut child = Command::new(bin("pinwheeld"))
        .arg("--config")
        .arg(&layout.config_path)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pinwheeld");
    let mut buf = [0u8; 512];
    let n = notify.recv(&mut buf).expect("a notification within 30 s");
    let message = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        message.contains("READY=1"),
        "first notification: {message:?}"
    );
    // Everything is bound by the time READY=1 is sent.
    let health = http_get(&format!("{}/healthz", layout.base_url())).expect("HTTP is up");
    assert_eq!(health.status, 200);
    assert!(layout.admin_socket().exists(), "admin socket bound");

    // A reload: RELOADING=1 with the monotonic time, then READY=1 with the
    // outcome; the daemon keeps running.
    let hup = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap()
    };
    let mut next = || {
        let n = notify.recv(&mut buf).expect("a notification within 30 s");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    hup();
    let message = next();
    assert!(message.contains("RELOADING=1"), "{message:?}");
    assert!(message.contains("MONOTONIC_USEC="), "{message:?}");
    let message = next();
    assert!(message.contains("READY=1"), "{message:?}");
    assert!(
        message.contains("STATUS=configuration reloaded: 1 RADIUS clients, 1 transports"),
        "{message:?}"
    );
    // A refused reload ends with READY=1 too, its status naming the error.
    std::fs::write(&layout.config_path, "[server\n").unwrap();
    hup();
    assert!(next().contains("RELOADING=1"));
    let message = next();
    assert!(message.contains("READY=1"), "{message:?}");
    assert!(
        message.contains(&format!(
            "STATUS=reload refused: {}: line 1",
            layout.config_path.display()
        )),
        "{message:?}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP stopped the daemon"
    );
    let health = http_get(&format!("{}/healthz", layout.base_url())).expect("still serving");
    assert_eq!(health.status, 200);
    let (status, _) = terminate(&mut child).expect("stops");
    assert!(status.success(), "exit status {status}");
    let n = notify.recv(&mut buf).expect("STOPPING=1 notification");
    let message = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(message.contains("STOPPING=1"), "{message:?}");
    assert!(
        !layout.admin_socket().exists(),
        "admin socket removed on exit"
    );
}

/// `systemd-socket-activate` (from the systemd package, installed by
/// tools/test.sh), or a clear failure.
fn socket_activate() -> std::path::PathBuf {
    for dir in ["/usr/bin", "/bin", "/lib/systemd", "/usr/lib/systemd"] {
        let path = std::path::Path::new(dir).join("systemd-socket-activate");
        if path.exists() {
            return path;
        }
    }
    panic!("systemd-socket-activate not found: run tools/test.sh (installs the systemd package)");
}

/// Socket activation: `systemd-socket-activate` binds the sockets, waits for
/// the first packet or connection, then starts pinwheeld with LISTEN_FDS and
/// LISTEN_PID, as systemd does with systemd/pinwheeld.socket. The daemon
/// uses the passed sockets for the listeners with the same addresses (and
/// binds the others itself).
#[test]
fn sockets_passed_by_systemd_are_used_for_radius_and_http() {
    use pinwheel_tests::{radclient_output, SECRET};
    // RADIUS (auth and accounting) passed as datagram sockets; HTTP bound by
    // the daemon.
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    std::fs::write(&layout.config_path, layout.render(&Config::default())).unwrap();
    let log = std::fs::File::create(&layout.log_path).unwrap();
    let mut child = Command::new(socket_activate())
        .arg("--datagram")
        .arg(format!("--listen=127.0.0.1:{}", layout.radius_port))
        .arg(format!("--listen=127.0.0.1:{}", layout.accounting_port))
        .arg(bin("pinwheeld"))
        .arg("--config")
        .arg(&layout.config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn systemd-socket-activate");
    // The first Status-Server starts the daemon; radclient retries until it
    // answers on the passed socket.
    let (ok, out) = radclient_output(
        layout.radius_port,
        "status",
        SECRET,
        "Message-Authenticator = 0x00\n",
        3,
        5,
    );
    let text = std::fs::read_to_string(&layout.log_path).unwrap_or_default();
    assert!(
        ok && out.contains("Received Access-Accept"),
        "{out}\n{text}"
    );
    for port in [layout.radius_port, layout.accounting_port] {
        assert!(
            text.contains(&format!(
                "socket activation: using the passed UDP socket 127.0.0.1:{port}"
            )),
            "{text}"
        );
    }
    let health =
        http_get(&format!("{}/healthz", layout.base_url())).expect("HTTP bound by the daemon");
    assert_eq!(health.status, 200);
    let (status, _) = terminate(&mut child).expect("stops");
    assert!(status.success(), "exit status {status}");

    // HTTP passed as a stream socket; RADIUS bound by the daemon.
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    std::fs::write(&layout.config_path, layout.render(&Config::default())).unwrap();
    let log = std::fs::File::create(&layout.log_path).unwrap();
    let mut child = Command::new(socket_activate())
        .arg(format!("--listen=127.0.0.1:{}", layout.http_port))
        .arg(bin("pinwheeld"))
        .arg("--config")
        .arg(&layout.config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn systemd-socket-activate");
    // A connection waits in the passed socket's backlog until the daemon,
    // started by it, accepts it (refused only until systemd-socket-activate
    // has bound the port).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let health = loop {
        match http_get(&format!("{}/healthz", layout.base_url())) {
            Ok(reply) => break reply,
            Err(e) => {
                let text = std::fs::read_to_string(&layout.log_path).unwrap_or_default();
                assert!(std::time::Instant::now() < deadline, "{e:#}\n{text}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let text = std::fs::read_to_string(&layout.log_path).unwrap_or_default();
    assert_eq!(health.status, 200, "{text}");
    let text = std::fs::read_to_string(&layout.log_path).unwrap_or_default();
    assert!(
        text.contains(&format!(
            "socket activation: using the passed TCP socket 127.0.0.1:{}",
            layout.http_port
        )),
        "{text}"
    );
    let (ok, out) = radclient_output(
        layout.radius_port,
        "status",
        SECRET,
        "Message-Authenticator = 0x00\n",
        3,
        3,
    );
    assert!(
        ok && out.contains("Received Access-Accept"),
        "{out}\n{text}"
    );
    let (status, _) = terminate(&mut child).expect("stops");
    assert!(status.success(), "exit status {status}");
}

/// With `WATCHDOG_USEC` set, the notifications come in order: READY=1 with
/// STATUS=serving..., WATCHDOG=1 repeatedly while healthy, RELOADING=1 and
/// READY=1 around a SIGHUP, and STOPPING=1 on SIGTERM.
#[test]
fn status_and_watchdog_pings_while_healthy_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    std::fs::write(&layout.config_path, layout.render(&Config::default())).unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut child = Command::new(bin("pinwheeld"))
        .arg("--config")
        .arg(&layout.config_path)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pinwheeld");
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = notify.recv(&mut buf).expect("a notification within 30 s");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    let first = next();
    assert!(first.contains("READY=1"), "{first:?}");
    assert!(
        first.contains("STATUS=serving 1 RADIUS clients, 0 users"),
        "{first:?}"
    );
    // Half the period: at least 4 pings in 3 s.
    let started = std::time::Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let message = next();
        assert_eq!(message.trim(), "WATCHDOG=1", "only pings while idle");
        pings += 1;
    }
    assert!(pings >= 4, "{pings} WATCHDOG=1 in 3 s");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let mut seen = Vec::new();
    loop {
        let message = next();
        if message.contains("RELOADING=1") {
            seen.push("RELOADING");
        } else if message.contains("READY=1") {
            seen.push("READY");
            break;
        } else {
            assert_eq!(message.trim(), "WATCHDOG=1", "{message:?}");
        }
    }
    assert_eq!(seen, vec!["RELOADING", "READY"]);
    let (status, _) = terminate(&mut child).expect("stops");
    assert!(status.success(), "exit status {status}");
    loop {
        let message = next();
        if message.contains("STOPPING=1") {
            break;
        }
        assert_eq!(message.trim(), "WATCHDOG=1", "{message:?}");
    }
}
