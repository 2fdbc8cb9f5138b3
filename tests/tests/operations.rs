//! Operations: `pinwheelctl status`, `pinwheelctl config check` (no daemon
//! needed), `pinwheelctl backup` while RADIUS requests keep coming and
//! `pinwheeld --restore` into a fresh state folder, and SIGTERM under load
//! (exit 0, every request sent before the signal answered, the database
//! passing `PRAGMA integrity_check`).

use std::net::UdpSocket;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pinwheel::radius::codec::{self, Code};
use pinwheel_tests::{
    bin, ctl_raw, http_get, mobile_otc, run, spawn_pinwheeld, terminate, Config, Daemon, Layout,
    RadiusOutcome::*, SECRET,
};

#[test]
fn status_names_version_listeners_plugins_and_store_size() {
    let d = Daemon::start_default();
    d.add_user("alice", "1234");
    let out = d.ctl_ok(&["status"]);
    for field in [
        "version: ",
        "uptime_seconds: ",
        "users: 1",
        "devices: 0",
        "radius_clients: 1",
        "store_bytes: ",
    ] {
        assert!(out.contains(field), "{field} missing:\n{out}");
    }
    let listeners = format!(
        "listeners: http 127.0.0.1:{}, radius udp 127.0.0.1:{}, accounting udp 127.0.0.1:{}, admin {}",
        d.layout.http_port,
        d.layout.radius_port,
        d.layout.accounting_port,
        d.layout.admin_socket().display()
    );
    assert!(out.contains(&listeners), "{listeners}\n{out}");
    assert!(out.contains("plugins: spool (transport): ok"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&d.ctl_ok(&["--json", "status"])).unwrap();
    assert!(json["store_bytes"].as_u64().unwrap() > 0, "{json}");
}

#[test]
fn config_check_runs_without_a_daemon_and_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    std::fs::write(&layout.config_path, layout.render(&Config::default())).unwrap();
    let path = layout.config_path.to_str().unwrap();
    // No daemon runs here: the check needs none.
    let good = ctl_raw(&["config", "check", path]);
    assert_eq!(good.code, Some(0), "{good}");
    assert!(
        good.stdout
            .contains(&format!("{path}: configuration is valid")),
        "{good}"
    );
    assert!(good.stdout.contains("transport plugin spool"), "{good}");
    // --config is the default file.
    let default = ctl_raw(&["--config", path, "config", "check"]);
    assert_eq!(default.code, Some(0), "{default}");

    let text = layout.render(&Config::default());
    let broken = dir.path().join("broken.toml");
    // The key's line: after the text, an empty line and `[policy]`.
    let line = text.lines().count() + 3;
    std::fs::write(&broken, format!("{text}\n[policy]\nmax_failurez = 3\n")).unwrap();
    let bad = ctl_raw(&["config", "check", broken.to_str().unwrap()]);
    assert_eq!(bad.code, Some(1), "{bad}");
    let expected = format!(
        "pinwheelctl: configuration error: {}: line {line}: unknown field `max_failurez`",
        broken.display()
    );
    assert!(bad.stderr.contains(&expected), "{expected}\n{bad}");
    assert!(!bad.stdout.contains("configuration is valid"), "{bad}");

    // A plugin that cannot be loaded is named.
    let missing = dir.path().join("plugin.toml");
    std::fs::write(
        &missing,
        format!("{text}\n[[transport]]\nname = \"mail\"\nplugin = \"/nonexistent/libx.so\"\ngroups = [\"staff\"]\n"),
    )
    .unwrap();
    let bad = ctl_raw(&["config", "check", missing.to_str().unwrap()]);
    assert_eq!(bad.code, Some(1), "{bad}");
    assert!(bad.stderr.contains("transport[1] (mail): "), "{bad}");
}

/// Sends unknown-user Access-Requests from one socket, one at a time,
/// until `stop`; counts the answers.
fn load(port: u16, stop: Arc<AtomicBool>, answered: Arc<AtomicU64>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut id: u8 = 0;
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        id = id.wrapping_add(1);
        let packet = codec::encode_access_request(
            id,
            "nobody-here",
            b"123456",
            &[],
            SECRET.as_bytes(),
            true,
        )
        .unwrap();
        socket.send_to(&packet, ("127.0.0.1", port)).unwrap();
        if socket.recv_from(&mut buf).is_ok() {
            answered.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Starts `pinwheeld` on `layout` and waits until HTTP answers and the admin socket exists.
fn start_on(layout: &Layout) -> Child {
    let mut child = spawn_pinwheeld(&layout.config_path, &layout.log_path);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "pinwheeld exited with {status}:\n{}",
                std::fs::read_to_string(&layout.log_path).unwrap_or_default()
            );
        }
        let up =
            matches!(http_get(&format!("{}/healthz", layout.base_url())), Ok(r) if r.status == 200);
        if up && layout.admin_socket().exists() {
            return child;
        }
        assert!(Instant::now() < deadline, "pinwheeld did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ctl_on(layout: &Layout, args: &[&str]) -> pinwheel_tests::CmdOutput {
    run(Command::new(bin("pinwheelctl"))
        .arg("--config")
        .arg(&layout.config_path)
        .args(args))
}

#[test]
fn backup_under_load_restores_users_devices_and_spent_indexes() {
    let d = Daemon::start_default();
    d.add_user("alice", "1234");
    d.add_user("bob", "5678");
    let phone = d.path("alice.json");
    d.provision_device(&phone, "alice");
    let spent = mobile_otc(&phone, "1234", Some(1));
    assert_eq!(d.auth("alice", &spent), Accept);

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (stop, answered) = (stop.clone(), answered.clone());
            let port = d.layout.radius_port;
            std::thread::spawn(move || load(port, stop, answered))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = answered.load(Ordering::SeqCst);
    let file = d.path("backup.db");
    let started = Instant::now();
    let out = d.ctl(&["backup", file.to_str().unwrap()]);
    let took = started.elapsed();
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("database backed up to"), "{out}");
    assert!(out.stdout.contains("keep the master key with it"), "{out}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let after = answered.load(Ordering::SeqCst);
    assert!(after > before, "RADIUS kept answering during the backup");
    eprintln!("backup took {took:?}; {after} load requests answered in all");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A restore is refused while the daemon serves.
    let refused = run(Command::new(bin("pinwheeld"))
        .arg("--config")
        .arg(d.config_path())
        .arg("--restore")
        .arg(&file));
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(refused.stderr.contains("a daemon is running"), "{refused}");

    // Into a fresh state folder with the same master key.
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    std::fs::write(&layout.config_path, layout.render(&Config::default())).unwrap();
    std::fs::copy(
        d.state_dir().join("master.key"),
        layout.state_dir.join("master.key"),
    )
    .unwrap();
    let restored = run(Command::new(bin("pinwheeld"))
        .arg("--config")
        .arg(&layout.config_path)
        .arg("--restore")
        .arg(&file));
    assert_eq!(restored.code, Some(0), "{restored}");
    assert!(restored.stdout.contains("restored from"), "{restored}");
    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, vec![7u8; 8192]).unwrap();
    let refused = run(Command::new(bin("pinwheeld"))
        .arg("--config")
        .arg(&layout.config_path)
        .arg("--restore")
        .arg(&damaged));
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(refused.stderr.contains("restore refused"), "{refused}");

    let mut child = start_on(&layout);
    let users: serde_json::Value =
        serde_json::from_str(ctl_on(&layout, &["--json", "user", "list"]).ok()).unwrap();
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["alice", "bob"]);
    let alice = ctl_on(&layout, &["user", "show", "alice"]);
    assert!(alice.ok().contains("strings left"), "{alice}");
    let auth = |user: &str, code: &str| {
        let attrs = format!(
            "User-Name = \"{user}\"\nUser-Password = \"{code}\"\nMessage-Authenticator = 0x00\n"
        );
        let (_, out) =
            pinwheel_tests::radclient_output(layout.radius_port, "auth", SECRET, &attrs, 3, 1);
        if out.contains("Received Access-Accept") {
            Accept
        } else if out.contains("Received Access-Reject") {
            Reject
        } else {
            panic!("no answer: {out}")
        }
    };
    assert_eq!(auth("alice", &spent), Reject, "a spent index stays spent");
    assert_eq!(
        auth("alice", &mobile_otc(&phone, "1234", Some(2))),
        Accept,
        "PINs and seeds open with the same master key"
    );
    let (status, _) = terminate(&mut child).unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn sigterm_under_load_answers_every_request_sent_before_it_and_exits_0() {
    let mut d = Daemon::start_default();
    let port = d.layout.radius_port;
    // Per request: sent before SIGTERM? answered?
    let record: Arc<Mutex<Vec<(bool, bool)>>> = Arc::default();
    let signalled = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (record, signalled, stop) = (record.clone(), signalled.clone(), stop.clone());
            std::thread::spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                socket
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut buf = [0u8; 4096];
                let mut id: u8 = 0;
                while !stop.load(Ordering::SeqCst) {
                    id = id.wrapping_add(1);
                    let packet = codec::encode_access_request(
                        id,
                        "load-user",
                        b"000000",
                        &[],
                        SECRET.as_bytes(),
                        true,
                    )
                    .unwrap();
                    let auth = codec::request_authenticator(&packet).unwrap();
                    socket.send_to(&packet, ("127.0.0.1", port)).unwrap();
                    // `signalled` turns true just before kill(): a request whose
                    // send returned while it was false was queued in the
                    // daemon's socket before the signal.
                    let before = !signalled.load(Ordering::SeqCst);
                    let answered = match socket.recv_from(&mut buf) {
                        Ok((n, _)) => {
                            let reply = codec::decode_reply(&buf[..n], &auth, SECRET.as_bytes())
                                .expect("a valid reply");
                            assert_eq!(reply.code, Code::AccessReject);
                            true
                        }
                        Err(_) => false,
                    };
                    record.lock().unwrap().push((before, answered));
                    if !answered {
                        break;
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    signalled.store(true, Ordering::SeqCst);
    let (status, took) = d.stop();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    assert!(status.success(), "exit status {status}\n{}", d.log());
    assert!(took < Duration::from_secs(12), "stopped in {took:?}");
    let record = record.lock().unwrap();
    let sent_before = record.iter().filter(|(before, _)| *before).count();
    let lost = record
        .iter()
        .filter(|(before, answered)| *before && !answered)
        .count();
    eprintln!("{sent_before} requests sent before SIGTERM, {lost} unanswered; stopped in {took:?}");
    assert!(sent_before > 10, "the load ran ({sent_before} requests)");
    assert_eq!(lost, 0, "requests sent before SIGTERM left unanswered");
    pinwheel::store::backup::check_integrity(&d.state_dir().join("pinwheel.db"))
        .expect("PRAGMA integrity_check = ok");
}
