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

/// Runs `script` with python3's sqlite3 module (`db` is the file's path):
/// how these tests make foreign or altered SQLite files.
fn python_sqlite(db: &std::path::Path, script: &str) {
    let code = format!(
        "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.executescript({script:?})\nc.commit()\nc.close()\n"
    );
    let out = run(Command::new("python3").arg("-c").arg(&code).arg(db));
    assert_eq!(
        out.code,
        Some(0),
        "python3 with its sqlite3 module is needed (run tools/test.sh): {out}"
    );
}

fn restore_with(config: &std::path::Path, file: &std::path::Path) -> pinwheel_tests::CmdOutput {
    run(Command::new(bin("pinwheeld"))
        .arg("--config")
        .arg(config)
        .arg("--restore")
        .arg(file))
}

fn before_restore_files(state: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("pinwheel.db.before-restore"))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn backup_never_writes_through_planted_symlinks_nor_replaces_non_files() {
    use std::os::unix::fs::FileTypeExt;
    let d = Daemon::start_default();
    d.add_user("alice", "1234");
    let folder = d.path("backups");
    std::fs::create_dir(&folder).unwrap();
    let victim = d.path("victim.key");
    let original = b"0123456789abcdef0123456789abcdef".to_vec();
    std::fs::write(&victim, &original).unwrap();
    // Symlinks at every name a temporary file could plausibly get: the old
    // `.NAME.tmp-PID` (for pids around the daemon's), plain `.tmp`
    // variants and SQLite's journal names.
    let pid = d.pid();
    let mut planted = vec![
        ".evil.db.tmp".to_string(),
        "evil.db.tmp".to_string(),
        ".evil.db.tmp-0".to_string(),
        "evil.db-journal".to_string(),
        "evil.db-wal".to_string(),
        ".evil.db.tmp-journal".to_string(),
    ];
    for p in pid.saturating_sub(3)..=pid + 3 {
        planted.push(format!(".evil.db.tmp-{p}"));
        planted.push(format!(".evil.db.tmp-{p}-journal"));
    }
    for name in &planted {
        std::os::unix::fs::symlink(&victim, folder.join(name)).unwrap();
    }
    let dest = folder.join("evil.db");
    let out = d.ctl(&["backup", dest.to_str().unwrap()]);
    assert!(out.success(), "{out}");
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        original,
        "the backup wrote through a planted symlink"
    );
    for name in &planted {
        let meta = std::fs::symlink_metadata(folder.join(name)).unwrap();
        assert!(meta.file_type().is_symlink(), "{name} was replaced");
    }
    let meta = std::fs::symlink_metadata(&dest).unwrap();
    assert!(meta.file_type().is_file());
    // Checked as a copy: SQLite would take the planted `evil.db-journal`
    // beside it for a hot journal.
    let copy = d.path("evil-copy.db");
    std::fs::copy(&dest, &copy).unwrap();
    pinwheel::store::backup::check_integrity(&copy).expect("the backup is intact");
    // No temporary folder or file is left behind.
    let left: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "evil.db" && !planted.contains(n))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // A destination that is a symlink, a folder or a device is refused.
    let link = folder.join("link.db");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let sub = folder.join("sub.db");
    std::fs::create_dir(&sub).unwrap();
    for dest in [
        link.as_path(),
        sub.as_path(),
        std::path::Path::new("/dev/full"),
    ] {
        let out = d.ctl(&["backup", dest.to_str().unwrap()]);
        assert_eq!(out.code, Some(1), "{out}");
        let expected = format!("refusing to replace {}: not a regular file", dest.display());
        assert!(out.stderr.contains(&expected), "{expected}\n{out}");
    }
    assert_eq!(std::fs::read(&victim).unwrap(), original);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::symlink_metadata("/dev/full")
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn restore_refuses_empty_foreign_and_newer_files_and_keeps_every_set_aside_database() {
    let mut d = Daemon::start_default();
    d.add_user("alice", "1234");
    let good = d.path("good.db");
    let out = d.ctl(&["backup", good.to_str().unwrap()]);
    assert!(out.success(), "{out}");
    d.add_user("bob", "5678");
    d.stop();
    let state = d.state_dir().to_path_buf();
    let config = d.config_path().to_path_buf();

    let empty = d.path("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let foreign = d.path("foreign.db");
    python_sqlite(&foreign, "CREATE TABLE foo(x); INSERT INTO foo VALUES (1);");
    let versioned = d.path("versioned-foreign.db");
    python_sqlite(&versioned, "CREATE TABLE foo(x); PRAGMA user_version = 1;");
    let newer = d.path("newer.db");
    std::fs::copy(&good, &newer).unwrap();
    python_sqlite(&newer, "PRAGMA user_version = 9999;");
    for (file, says) in [
        (&empty, "is empty"),
        (&foreign, "is not a Pinwheel database (no schema version)"),
        (&versioned, "is not a Pinwheel database (no users table)"),
        (
            &newer,
            "has schema version 9999, newer than this pinwheeld knows",
        ),
    ] {
        let out = restore_with(&config, file);
        assert_eq!(out.code, Some(1), "{out}");
        assert!(out.stderr.contains("restore refused"), "{out}");
        assert!(out.stderr.contains(says), "{says}\n{out}");
    }
    assert!(
        before_restore_files(&state).is_empty(),
        "a refused restore touched the database"
    );

    // Two restores in a row keep both databases they replaced.
    let first = restore_with(&config, &good);
    assert_eq!(first.code, Some(0), "{first}");
    let second = restore_with(&config, &good);
    assert_eq!(second.code, Some(0), "{second}");
    let aside = before_restore_files(&state);
    assert_eq!(aside.len(), 2, "{aside:?}");
    for (out, file) in [(&first, &aside[0]), (&second, &aside[1])] {
        let shown = format!("the database it replaced is kept as {}", file.display());
        assert!(out.stdout.contains(&shown), "{shown}\n{out}");
    }
    // The first one set aside is the pre-restore database, bob included.
    let mut child = start_on(&d.layout);
    let users = ctl_on(&d.layout, &["--json", "user", "list"]);
    assert!(
        users.ok().contains("alice") && !users.ok().contains("bob"),
        "{users}"
    );
    let (status, _) = terminate(&mut child).unwrap();
    assert!(status.success(), "{status}");
    let live = state.join("pinwheel.db");
    std::fs::copy(&aside[0], &live).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(state.join(format!("pinwheel.db{suffix}")));
    }
    let mut child = start_on(&d.layout);
    let users = ctl_on(&d.layout, &["--json", "user", "list"]);
    assert!(users.ok().contains("bob"), "{users}");
    let (status, _) = terminate(&mut child).unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn restore_refuses_a_backup_sealed_with_another_master_key() {
    let d = Daemon::start_default();
    d.add_user("alice", "1234");
    let sealed = d.path("sealed.db");
    assert!(d.ctl(&["backup", sealed.to_str().unwrap()]).success());
    let empty_daemon = Daemon::start_default();
    let no_users = empty_daemon.path("no-users.db");
    assert!(empty_daemon
        .ctl(&["backup", no_users.to_str().unwrap()])
        .success());

    // A fresh state folder with a master key of its own.
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    std::fs::write(&layout.config_path, layout.render(&Config::default())).unwrap();
    let key = layout.state_dir.join("master.key");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)
            .unwrap();
        f.write_all(&[0x5a; 32]).unwrap();
    }
    let out = restore_with(&layout.config_path, &sealed);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains("this backup was made with another master key")
            && out
                .stderr
                .contains("restore the master key file that was backed up with it")
            && out.stderr.contains(key.to_str().unwrap()),
        "{out}"
    );
    assert!(!layout.state_dir.join("pinwheel.db").exists());
    // Without users nothing is sealed: any key will do.
    let out = restore_with(&layout.config_path, &no_users);
    assert_eq!(out.code, Some(0), "{out}");
    // With the key it was made with, the sealed backup restores.
    std::fs::remove_file(&key).unwrap();
    std::fs::copy(d.state_dir().join("master.key"), &key).unwrap();
    let out = restore_with(&layout.config_path, &sealed);
    assert_eq!(out.code, Some(0), "{out}");
}
