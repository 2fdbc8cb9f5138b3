//! systemd integration: with `NOTIFY_SOCKET` set, pinwheeld sends `READY=1`
//! only once its listeners are bound (HTTP answers and the admin socket exists
//! when the notification arrives), `RELOADING=1` (with `MONOTONIC_USEC=`) and
//! `READY=1` around a reload (SIGHUP), and `STOPPING=1` on SIGTERM before
//! exiting 0.

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
