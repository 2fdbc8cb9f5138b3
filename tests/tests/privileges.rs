//! Leaving root: started as root (as the tests are on CI), pinwheeld binds
//! its sockets, then switches to `[server] user` for good (every thread's
//! `/proc/PID/task/TID/status` shows that user's ids), hands its state and
//! runtime folders to it, and still answers RADIUS and writes its spool; a
//! user that does not exist stops it with a clear message. Run as another
//! user, there is nothing to drop: both tests then check that the daemon
//! starts as that user and serves (the root path is exercised by
//! tools/test.sh and CI, which run as root).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pinwheel_tests::{
    bin, ctl_raw, http_get, radclient_output, spawn_pinwheeld, terminate, Config, Layout, SECRET,
};

/// The (real, effective, saved, fs) uids and gids in a `/proc/.../status` file.
fn ids(status_path: &str) -> (Vec<u32>, Vec<u32>) {
    let text = std::fs::read_to_string(status_path).expect("read /proc status");
    let field = |name: &str| -> Vec<u32> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {status_path}"))
            .split_whitespace()
            .map(|n| n.parse().expect("numeric id"))
            .collect()
    };
    (field("Uid:"), field("Gid:"))
}

/// Waits until the daemon answers `/healthz` and its admin socket exists.
fn wait_serving(layout: &Layout, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(&layout.log_path).unwrap_or_default();
            panic!("pinwheeld exited with {st}:\n{log}");
        }
        let up =
            matches!(http_get(&format!("{}/healthz", layout.base_url())), Ok(r) if r.status == 200);
        if up && layout.admin_socket().exists() {
            return;
        }
        assert!(Instant::now() < deadline, "pinwheeld did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A layout in a temp dir the target user can reach (0755), with
/// `server_extra` in `[server]`.
fn layout_with(dir: &tempfile::TempDir, server_extra: &str) -> Layout {
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let layout = Layout::new(dir.path());
    let cfg = Config {
        server_extra: server_extra.to_string(),
        ..Config::default()
    };
    std::fs::write(&layout.config_path, layout.render(&cfg)).unwrap();
    layout
}

fn status_server_answered(layout: &Layout) -> (bool, String) {
    radclient_output(
        layout.radius_port,
        "status",
        SECRET,
        "Message-Authenticator = 0x00\n",
        3,
        2,
    )
}

#[test]
fn started_as_root_it_switches_to_the_configured_user_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let root = nix::unistd::Uid::effective().is_root();
    // `nobody` exists on every Debian system; its primary group is `nogroup`.
    let (user, uid, gid) = if root {
        let nobody = nix::unistd::User::from_name("nobody")
            .unwrap()
            .expect("user nobody exists");
        (
            "nobody".to_string(),
            nobody.uid.as_raw(),
            nobody.gid.as_raw(),
        )
    } else {
        let me = nix::unistd::User::from_uid(nix::unistd::Uid::effective())
            .unwrap()
            .expect("this user has a name");
        (me.name, me.uid.as_raw(), me.gid.as_raw())
    };
    let layout = layout_with(&dir, &format!("user = \"{user}\"\n"));
    let mut child = spawn_pinwheeld(&layout.config_path, &layout.log_path);
    wait_serving(&layout, &mut child);

    // Every thread runs as the user: real, effective, saved and fs ids.
    let pid = child.id();
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(tasks.len() > 1, "a multi-threaded daemon: {tasks:?}");
    for tid in std::iter::once(None).chain(tasks.iter().map(Some)) {
        let path = match tid {
            None => format!("/proc/{pid}/status"),
            Some(t) => format!("/proc/{pid}/task/{t}/status"),
        };
        let (uids, gids) = ids(&path);
        assert_eq!(uids, vec![uid; 4], "Uid line of {path}");
        if root {
            assert_eq!(gids, vec![gid; 4], "Gid line of {path}");
        }
    }
    let log = std::fs::read_to_string(&layout.log_path).unwrap();
    if root {
        assert!(
            log.contains(&format!("started as root: now running as user {user}")),
            "{log}"
        );
        // The folders it writes are the user's now.
        for d in [&layout.state_dir, &layout.runtime_dir] {
            assert_eq!(std::fs::metadata(d).unwrap().uid(), uid, "{}", d.display());
        }
        assert_eq!(
            std::fs::metadata(layout.state_dir.join("pinwheel.db"))
                .unwrap()
                .uid(),
            uid
        );
    } else {
        assert!(!log.contains("now running as user"), "{log}");
    }

    // It still answers RADIUS and writes to its database and spool.
    let (ok, out) = status_server_answered(&layout);
    assert!(ok && out.contains("Received Access-Accept"), "{out}\n{log}");
    let config = layout.config_path.to_str().unwrap();
    let added = ctl_raw(&[
        "--config",
        config,
        "user",
        "add",
        "dropped",
        "--email",
        "dropped@example.org",
    ]);
    assert!(added.success(), "{added:?}");
    let spooled = std::fs::read_dir(&layout.spool_dir).unwrap().count();
    assert!(spooled >= 1, "the generated PIN went to the spool");

    let (status, _) = terminate(&mut child).expect("stops on SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(
        !layout.admin_socket().exists(),
        "the admin socket is removed on exit, as the user"
    );
}

#[test]
fn a_missing_user_stops_a_root_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layout_with(&dir, "user = \"pinwheel-no-such-user\"\n");
    let out = Command::new(bin("pinwheeld"))
        .arg("--config")
        .arg(&layout.config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pinwheeld");
    if nix::unistd::Uid::effective().is_root() {
        let out = out.wait_with_output().expect("pinwheeld exits");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(
                "running as root: user pinwheel-no-such-user not found; create it (see systemd/pinwheel.sysusers.conf) or set [server] user"
            ),
            "{stderr}"
        );
        assert!(
            !layout.admin_socket().exists(),
            "nothing keeps serving after the refusal"
        );
    } else {
        // Not root: nothing to drop, the user is not looked at.
        let mut child = out;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(http_get(&format!("{}/healthz", layout.base_url())), Ok(r) if r.status == 200)
        {
            assert!(child.try_wait().unwrap().is_none(), "pinwheeld exited");
            assert!(Instant::now() < deadline, "pinwheeld did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let (status, _) = terminate(&mut child).expect("stops");
        assert!(status.success());
    }
}
