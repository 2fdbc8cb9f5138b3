//! pinwheelctl errors, daemon lifecycle (SIGTERM, double start) and config errors.

use std::fs;
use std::os::unix::net::UnixListener;
use std::time::Duration;

use pinwheel_tests::{
    ctl_raw, spawn_pinwheeld, terminate, wait_timeout, CmdOutput, Config, Daemon, Layout,
    RadiusOutcome::*, SECRET,
};

fn assert_fails(out: &CmdOutput, message: &str) {
    assert_eq!(out.code, Some(1), "exit 1 expected: {out}");
    assert!(
        out.stderr.contains(message),
        "stderr should say {message:?}: {out}"
    );
    assert!(!out.stderr.contains("panicked"), "{out}");
}

/// Starts pinwheeld on `config`, expects it to exit with a failure within
/// 30 s, and returns what it logged.
fn refused_start(config: &std::path::Path, log: &std::path::Path) -> String {
    let mut daemon = spawn_pinwheeld(config, log);
    let status = wait_timeout(&mut daemon, Duration::from_secs(30)).unwrap_or_else(|e| {
        let _ = daemon.kill();
        let _ = daemon.wait();
        panic!("the daemon kept running: {e}");
    });
    assert!(!status.success(), "the daemon must fail to start: {status}");
    fs::read_to_string(log).unwrap()
}

#[test]
fn ctl_user_errors() {
    let d = Daemon::start_default();
    d.add_user("alice", "1234");

    assert_fails(
        &d.ctl(&[
            "user",
            "add",
            "alice",
            "--email",
            "a2@example.test",
            "--pin",
            "5678",
        ]),
        "user alice already exists",
    );
    for args in [
        &["user", "show", "ghost"][..],
        &["user", "delete", "ghost"][..],
        &["provision", "send", "ghost"][..],
    ] {
        assert_fails(&d.ctl(args), "user ghost not found");
    }
    for pin in ["12", "abcd", "12345678901", "12a4"] {
        assert_fails(
            &d.ctl(&[
                "user",
                "add",
                "bob",
                "--email",
                "b@example.test",
                "--pin",
                pin,
            ]),
            "bad PIN: must be 4 to 10 digits",
        );
    }
    // None of the refused commands changed anything.
    let list = d.ctl_ok(&["--json", "user", "list"]);
    assert!(list.contains("alice"), "{list}");
    assert!(!list.contains("bob"), "{list}");
    assert!(d.spool_for("ghost", "provision-code").is_empty());
    let show = d.ctl_ok(&["--json", "user", "show", "alice"]);
    assert!(show.contains("example.test"), "{show}");
    assert!(!show.contains("a2@example.test"), "{show}");

    // user add without --pin: a generated PIN goes to the user over the transport.
    let out = d.ctl(&["user", "add", "carol", "--email", "carol@example.test"]);
    assert!(out.success(), "{out}");
    let msgs = d.spool_for("carol", "pin");
    assert_eq!(msgs.len(), 1, "one `Kind: pin` message for carol");
    assert_eq!(msgs[0].to, "carol@example.test");
    let pin = msgs[0]
        .body_value("Your Pinwheel PIN is:")
        .expect("PIN line in the message");
    assert!(
        pin.len() == 4 && pin.chars().all(|c| c.is_ascii_digit()),
        "generated PIN {pin:?}"
    );
    assert!(!out.stdout.contains(&pin), "the PIN is not printed: {out}");
    // The generated PIN is the user's PIN: it works with a provisioned device.
    let phone = d.path("carol.json");
    d.provision_device(&phone, "carol");
    let code = pinwheel_tests::mobile_otc(&phone, &pin, None);
    assert_eq!(d.auth("carol", &code), Accept);

    // delete works, then the user is gone.
    d.ctl_ok(&["user", "delete", "alice"]);
    assert_fails(&d.ctl(&["user", "show", "alice"]), "user alice not found");
    assert_fails(&d.ctl(&["user", "delete", "alice"]), "user alice not found");
}

#[test]
fn ctl_without_a_daemon() {
    let dir = tempfile::tempdir().unwrap();
    // No socket at all.
    let missing = dir.path().join("missing.sock");
    let out = ctl_raw(&["--socket", missing.to_str().unwrap(), "status"]);
    assert_fails(&out, "cannot reach pinwheeld at");
    assert!(out.stderr.contains("is the daemon running?"), "{out}");
    assert!(out.stderr.contains(missing.to_str().unwrap()), "{out}");

    // A stale socket file with nothing listening.
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let out = ctl_raw(&["--socket", stale.to_str().unwrap(), "user", "list"]);
    assert_fails(&out, "cannot reach pinwheeld at");
    assert!(out.stderr.contains("is the daemon running?"), "{out}");

    // Through a config file whose runtime dir holds no socket.
    let layout = Layout::new(dir.path());
    fs::write(&layout.config_path, layout.render(&Config::default())).unwrap();
    let out = ctl_raw(&[
        "--config",
        layout.config_path.to_str().unwrap(),
        "user",
        "add",
        "alice",
        "--email",
        "a@example.test",
        "--pin",
        "1234",
    ]);
    assert_fails(&out, "cannot reach pinwheeld at");
    assert!(
        out.stderr.contains(layout.admin_socket().to_str().unwrap()),
        "{out}"
    );
}

#[test]
fn sigterm_exits_zero_promptly() {
    let mut d = Daemon::start_default();
    d.add_user("alice", "1234");
    assert!(d.is_running());
    let (status, took) = d.stop();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");
    let log = d.log();
    assert!(!log.contains("panicked"), "{log}");

    // The state survives a restart.
    let mut child = spawn_pinwheeld(&d.layout.config_path, &d.layout.log_path);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = d.ctl(&["user", "show", "alice"]);
        if out.success() || std::time::Instant::now() > deadline {
            break out;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "restarted daemon exited:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(out.success(), "alice after restart: {out}");
    let (status, _) = terminate(&mut child).unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn second_daemon_on_the_same_config_refuses_to_start() {
    let d = Daemon::start_default();
    d.add_user("alice", "1234");
    let err = refused_start(d.config_path(), &d.path("second.log"));
    assert!(
        err.contains("in use") || err.contains("already"),
        "clear error from the second daemon:\n{err}"
    );

    // Same state and runtime dirs, other ports: the admin socket is the conflict.
    let text = fs::read_to_string(d.config_path()).unwrap();
    let other = d.path("other-ports.toml");
    let http = pinwheel_tests::free_tcp_port();
    let radius = pinwheel_tests::free_udp_port();
    let accounting = pinwheel_tests::free_udp_port();
    let text = text
        .replace(
            &format!("127.0.0.1:{}\"", d.layout.accounting_port),
            &format!("127.0.0.1:{accounting}\""),
        )
        .replace(
            &format!("127.0.0.1:{}\"", d.layout.http_port),
            &format!("127.0.0.1:{http}\""),
        )
        .replace(
            &format!("127.0.0.1:{}\"", d.layout.radius_port),
            &format!("127.0.0.1:{radius}\""),
        );
    fs::write(&other, text).unwrap();
    let err = refused_start(&other, &d.path("third.log"));
    assert!(
        err.contains("admin socket") || err.contains("admin.sock"),
        "error names the admin socket:\n{err}"
    );

    // The first daemon still serves everything.
    let list = d.ctl_ok(&["user", "list"]);
    assert!(list.contains("alice"), "{list}");
    assert_eq!(d.radius_status(SECRET, 3, 3), Accept);
}

#[test]
fn unknown_config_key_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let cfg = Config {
        extra: "[strings]\nalphabet = \"digits\"\nalphabit = \"upper\"\n".into(),
        ..Config::default()
    };
    let text = layout.render(&cfg);
    let line = text
        .lines()
        .position(|l| l.starts_with("alphabit"))
        .unwrap()
        + 1;
    fs::write(&layout.config_path, &text).unwrap();
    let mut child = spawn_pinwheeld(&layout.config_path, &layout.log_path);
    let status = wait_timeout(&mut child, Duration::from_secs(30)).unwrap_or_else(|e| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("pinwheeld kept running on a broken config: {e}");
    });
    let err = fs::read_to_string(&layout.log_path).unwrap();
    assert_eq!(status.code(), Some(2), "exit 2 on a config error:\n{err}");
    assert!(
        err.contains(layout.config_path.to_str().unwrap()),
        "names the file:\n{err}"
    );
    assert!(
        err.contains(&format!("line {line}")),
        "names line {line}:\n{err}"
    );
    assert!(err.contains("alphabit"), "names the key:\n{err}");
    assert!(!layout.admin_socket().exists());

    // --check-config says the same and exits 2; a good file checks 0.
    let out = CmdOutput::from(
        std::process::Command::new(pinwheel_tests::bin("pinwheeld"))
            .arg("--config")
            .arg(&layout.config_path)
            .arg("--check-config")
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("alphabit"), "{out}");
    fs::write(&layout.config_path, layout.render(&Config::default())).unwrap();
    let out = CmdOutput::from(
        std::process::Command::new(pinwheel_tests::bin("pinwheeld"))
            .arg("--config")
            .arg(&layout.config_path)
            .arg("--check-config")
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, Some(0), "{out}");
}
