//! Plugins: the daemon refuses plugin files it must not load (wrong ABI,
//! writable by others) with a clear reason, and a transport plugin that
//! returns errors, panics or hangs fails only the request that used it: the
//! message is reported as not sent (naming the plugin and what happened), the
//! user's earlier provision code stays valid, and everything else (RADIUS,
//! HTTP, other users' messages) is answered meanwhile.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pinwheel_tests::*;

const MISBEHAVING: &str = "pinwheel-test-plugin-misbehaving";
const WRONG_ABI: &str = "pinwheel-test-plugin-wrong-abi";

/// A `[[transport]]` entry for plugin file `file`.
fn transport_entry(name: &str, file: &Path, extra: &str) -> String {
    format!(
        "\n[[transport]]\nname = \"{name}\"\nplugin = {}\n{groups}{extra}\n",
        serde_json::to_string(&file.to_string_lossy()).unwrap(),
        // A group of its own unless the test gives one: the harness's spool
        // comes first and takes every address, so without groups this entry
        // could never be chosen (and the config is refused).
        groups = if extra.contains("groups") {
            ""
        } else {
            "groups = [\"plugin-test\"]\n"
        }
    )
}

/// Starts pinwheeld with `extra` TOML and expects it to refuse to start;
/// returns its exit code and output.
fn start_refused(extra: String) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let cfg = Config {
        extra,
        ..Config::default()
    };
    std::fs::write(&layout.config_path, layout.render(&cfg)).unwrap();
    let mut child = spawn_pinwheeld(&layout.config_path, &layout.log_path);
    let status = wait_timeout(&mut child, Duration::from_secs(30)).unwrap_or_else(|e| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("pinwheeld did not refuse to start: {e}")
    });
    let log = std::fs::read_to_string(&layout.log_path).unwrap_or_default();
    (status.code(), log)
}

#[test]
fn a_plugin_of_another_abi_version_is_refused_with_the_reason() {
    let plugins = tempfile::tempdir().unwrap();
    let file = install_plugin(&plugins.path().join("plugins"), WRONG_ABI, 0o644);
    let (code, log) = start_refused(transport_entry("mail", &file, ""));
    assert_ne!(code, Some(0), "{log}");
    let expected = format!(
        "plugin {} refused: ABI version 99, this daemon speaks 1",
        file.display()
    );
    assert!(log.contains(&expected), "expected {expected:?} in:\n{log}");
    assert!(log.contains("transport[1] (mail): plugin"), "{log}");
}

#[test]
fn a_plugin_file_writable_by_others_is_refused_with_the_reason() {
    let plugins = tempfile::tempdir().unwrap();
    let folder = plugins.path().join("plugins");
    let file = install_plugin(&folder, MISBEHAVING, 0o666);
    // Named by file name in [plugins] folder this time.
    let extra = format!(
        "\n[plugins]\nfolder = {}\n{}",
        serde_json::to_string(&folder.to_string_lossy()).unwrap(),
        transport_entry(
            "mail",
            Path::new(file.file_name().unwrap()),
            "config = { mode = \"ok\" }"
        )
    );
    let (code, log) = start_refused(extra);
    assert_ne!(code, Some(0), "{log}");
    let expected = format!(
        "plugin {} refused: writable by group or others (mode 0666)",
        file.display()
    );
    assert!(log.contains(&expected), "expected {expected:?} in:\n{log}");
}

#[test]
fn a_missing_plugin_file_is_refused_with_the_reason() {
    let (code, log) = start_refused(transport_entry(
        "mail",
        Path::new("/nonexistent/libnothing.so"),
        "",
    ));
    assert_ne!(code, Some(0), "{log}");
    assert!(
        log.contains("plugin /nonexistent/libnothing.so refused: cannot read it"),
        "{log}"
    );
}

#[test]
fn the_built_in_spool_is_listed_and_healthy() {
    let d = Daemon::start_default();
    let out = d.ctl_ok(&["plugins"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("spool "))
        .unwrap_or_else(|| panic!("no spool row in:\n{out}"));
    assert!(line.contains("transport"), "{out}");
    assert!(line.contains("built-in spool"), "{out}");
    assert!(line.trim_end().ends_with(" ok"), "{out}");
    assert!(out.contains("1 plugin(s)"), "{out}");
    assert!(
        d.log()
            .contains("plugin spool loaded: transport built-in spool version"),
        "{}",
        d.log()
    );
}

/// A daemon whose users in group `victims` get the misbehaving transport
/// `bad` in `mode` (1 s timeout, hangs of 5 s); everyone else gets the spool.
struct Setup {
    d: Daemon,
    _plugins: tempfile::TempDir,
    file: PathBuf,
}

fn setup(mode: &str) -> Setup {
    let plugins = tempfile::tempdir().unwrap();
    let file = install_plugin(&plugins.path().join("plugins"), MISBEHAVING, 0o644);
    let entry = transport_entry(
        "bad",
        &file,
        &format!(
            "groups = [\"victims\"]\ntimeout = \"1s\"\nmax_concurrent = 4\n\
             config = {{ mode = \"{mode}\", hang_seconds = 5 }}"
        ),
    );
    let d = Daemon::start(|cfg| {
        cfg.requests_per_hour = Some(100);
        cfg.extra = entry;
    });
    Setup {
        d,
        _plugins: plugins,
        file,
    }
}

/// What the log and `pinwheelctl` say for each mode.
fn expected_failure(mode: &str) -> &'static str {
    match mode {
        "error" => "failed: misbehaving: send failed on purpose (mode error) (unavailable)",
        "panic" => "panicked: misbehaving: send panicked on purpose (mode panic)",
        "hang" => "timed out: no answer within 1s; the call was abandoned",
        _ => unreachable!(),
    }
}

fn misbehaving_transport_fails_only_its_own_requests(mode: &str) {
    let Setup { d, file, .. } = setup(mode);
    assert!(
        d.log().contains(&format!(
            "plugin bad loaded: transport {} version 0.1.0",
            file.display()
        )),
        "{}",
        d.log()
    );
    d.add_user("alice", "1234");
    d.add_user("bob", "5678");
    // Alice is not in the group yet: her first code goes to the spool.
    let first_code = d.provision_send("alice");
    d.ctl_ok(&["user", "set-groups", "alice", "victims"]);

    // Now her transport is the misbehaving one: the admin is told clearly.
    let started = Instant::now();
    let out = d.ctl(&["provision", "send", "alice"]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "the provision code could not be sent (transport plugin \"bad\" (misbehaving) send: {}); any earlier code is still valid",
            expected_failure(mode)
        )),
        "{out}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Several more through the REST API (each answers 202 at once and fails
    // in the background), while everything else keeps being answered.
    for _ in 0..3 {
        let r = d.post(
            "/api/v1/provision/request",
            &serde_json::json!({"username": "alice"}),
            None,
        );
        assert_eq!(r.status, 202, "{r:?}");
    }
    let started = Instant::now();
    let health = http_get(&d.url("/healthz")).unwrap();
    assert_eq!(health.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_eq!(d.radius_status(SECRET, 2, 1), RadiusOutcome::Accept);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Another user's code goes out over the spool at once.
    let started = Instant::now();
    let bob_code = d.provision_send("bob");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Bob logs in meanwhile.
    let bob_state = d.path("bob.json");
    let out = d.mobile_provision(&bob_state, "bob", &bob_code);
    assert!(out.stdout.contains("Device Provisioned"), "{out}");
    let otc = mobile_otc(&bob_state, "5678", None);
    assert_eq!(d.auth("bob", &otc), RadiusOutcome::Accept);

    // Every failed send is logged, naming the plugin and what happened.
    let words = [
        "provision code not sent",
        "transport plugin \"bad\" (misbehaving) send:",
    ];
    let logged = d.wait_log_lines(&words, 4);
    assert_eq!(logged, 4, "{}", d.log());
    if mode != "hang" {
        let failure = expected_failure(mode);
        let n = d.wait_log_lines(&[words[0], words[1], failure], 4);
        assert_eq!(n, 4, "{}", d.log());
    } else {
        // Later hung sends may find every slot taken by abandoned calls.
        let timed_out = d.wait_log_lines(&[words[0], expected_failure(mode)], 1);
        assert!(timed_out >= 1, "{}", d.log());
    }

    // pinwheelctl plugins shows both transports and the bad one's health.
    let out = d.ctl_ok(&["plugins"]);
    let spool = out.lines().find(|l| l.starts_with("spool ")).unwrap();
    assert!(spool.trim_end().ends_with(" ok"), "{out}");
    let bad = out
        .lines()
        .find(|l| l.starts_with("bad "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(bad.contains(&file.display().to_string()), "{out}");
    assert!(bad.contains("0.1.0"), "{out}");
    let health_ok = match mode {
        "error" => bad.contains("failed: misbehaving: health failed on purpose"),
        "panic" => bad.contains("panicked: misbehaving: health panicked on purpose"),
        _ => bad.contains("timed out") || bad.contains("too busy"),
    };
    assert!(health_ok, "{out}");

    // Alice's first code is still valid: every failed send put it back.
    let state = d.path("alice.json");
    let out = d.mobile_provision(&state, "alice", &first_code);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("Device Provisioned"), "{out}");

    // No code ever reached the log.
    let log = d.log();
    assert!(!log.contains(&first_code), "a code was logged:\n{log}");
    assert!(!log.contains(&bob_code), "a code was logged:\n{log}");
    let mut d = d;
    assert!(d.is_running());
    let (status, took) = d.stop();
    assert!(status.success(), "{status:?}\n{}", d.log());
    assert!(took < Duration::from_secs(15), "{took:?}");
}

#[test]
fn a_transport_that_returns_errors_fails_only_its_own_requests() {
    misbehaving_transport_fails_only_its_own_requests("error");
}

#[test]
fn a_transport_that_panics_fails_only_its_own_requests() {
    misbehaving_transport_fails_only_its_own_requests("panic");
}

#[test]
fn a_transport_that_hangs_fails_only_its_own_requests() {
    misbehaving_transport_fails_only_its_own_requests("hang");
}

#[test]
fn a_user_whose_generated_pin_cannot_be_sent_is_not_added_and_the_store_keeps_answering() {
    let Setup { d, .. } = setup("hang");
    // RADIUS keeps being answered while `user add` waits on the hung
    // transport (the PIN is sent outside any store transaction).
    let adding = {
        let config = d.config_path().to_path_buf();
        std::thread::spawn(move || {
            run(std::process::Command::new(bin("pinwheelctl")).args([
                "--config",
                &config.to_string_lossy(),
                "user",
                "add",
                "carol",
                "--email",
                "carol@example.org",
                "--group",
                "victims",
            ]))
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    // Another admin change goes through meanwhile (the store is not held).
    let started = Instant::now();
    d.add_user("dave", "2468");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_eq!(d.radius_status(SECRET, 2, 1), RadiusOutcome::Accept);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let out = adding.join().unwrap();
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("user carol not added: the generated PIN could not be sent"),
        "{out}"
    );
    assert!(out.stderr.contains("timed out"), "{out}");
    let show = d.ctl(&["user", "show", "carol"]);
    assert!(!show.success(), "carol exists after all: {show}");
    d.ctl_ok(&["user", "show", "dave"]);
}

#[test]
fn a_plugin_that_hangs_while_starting_is_refused_after_its_timeout() {
    let plugins = tempfile::tempdir().unwrap();
    let file = install_plugin(&plugins.path().join("plugins"), MISBEHAVING, 0o644);
    let started = Instant::now();
    let (code, log) = start_refused(transport_entry(
        "slow",
        &file,
        "timeout = \"1s\"\nconfig = { mode = \"ok\", init_hang_seconds = 60 }",
    ));
    assert_ne!(code, Some(0), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(
        log.contains("(misbehaving) could not start: init did not finish within 1s"),
        "{log}"
    );
}

/// Makes `path` a folder with `mode` (and its parents as needed).
fn folder_with_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_symlink_is_checked_where_it_leads_folders_included() {
    let root = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(root.path()).unwrap();
    let plugins = root.join("plugins");
    folder_with_mode(&plugins, 0o755);
    // The link sits in a safe folder, the library in one anyone may write.
    let open = root.join("ww");
    let target = install_plugin(&open, MISBEHAVING, 0o644);
    folder_with_mode(&open, 0o777);
    let link = plugins.join("linkww.so");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let entry = transport_entry("mail", &link, "config = { mode = \"ok\" }");
    let (code, log) = start_refused(entry.clone());
    assert_ne!(code, Some(0), "{log}");
    let expected = format!(
        "plugin {} (-> {}) refused: folder {} is writable by group or others (mode 0777); run chmod go-w on it",
        link.display(),
        target.display(),
        open.display()
    );
    assert!(log.contains(&expected), "expected {expected:?} in:\n{log}");

    // A writable folder further up is as bad: it could swap the whole
    // folder below it.
    folder_with_mode(&open, 0o755);
    folder_with_mode(&root, 0o770);
    let (code, log) = start_refused(entry.clone());
    assert_ne!(code, Some(0), "{log}");
    let expected = format!(
        "refused: folder {} is writable by group or others (mode 0770)",
        root.display()
    );
    assert!(log.contains(&expected), "expected {expected:?} in:\n{log}");
    folder_with_mode(&root, 0o755);

    // Running as root, a folder (or file) owned by another user is refused
    // (not testable without root: only root can give files away).
    if nix::unistd::geteuid().is_root() {
        let nobody = Some(nix::unistd::Uid::from_raw(65534));
        nix::unistd::chown(&open, nobody, None).unwrap();
        let (code, log) = start_refused(entry);
        assert_ne!(code, Some(0), "{log}");
        let expected = format!(
            "refused: folder {} is owned by uid 65534, not root, and the daemon runs as root",
            open.display()
        );
        assert!(log.contains(&expected), "expected {expected:?} in:\n{log}");
    }
}

#[test]
fn a_plugin_in_a_group_writable_folder_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let folder = std::fs::canonicalize(root.path()).unwrap().join("gw");
    let file = install_plugin(&folder, MISBEHAVING, 0o644);
    folder_with_mode(&folder, 0o775);
    let (code, log) = start_refused(transport_entry("mail", &file, "config = { mode = \"ok\" }"));
    assert_ne!(code, Some(0), "{log}");
    let expected = format!(
        "plugin {} refused: folder {} is writable by group or others (mode 0775)",
        file.display(),
        folder.display()
    );
    assert!(log.contains(&expected), "expected {expected:?} in:\n{log}");
}

#[test]
fn check_config_loads_the_plugins_and_names_what_fails() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let check = |extra: String| {
        let cfg = Config {
            extra,
            ..Config::default()
        };
        std::fs::write(&layout.config_path, layout.render(&cfg)).unwrap();
        run(std::process::Command::new(bin("pinwheeld"))
            .arg("--config")
            .arg(&layout.config_path)
            .arg("--check-config"))
    };
    // A plugin file that is not there.
    let out = check(transport_entry(
        "mail",
        Path::new("/nonexistent/libnothere.so"),
        "",
    ));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains(
            "transport[1] (mail): plugin /nonexistent/libnothere.so refused: cannot read it"
        ),
        "{out}"
    );
    assert!(!out.stdout.contains("configuration is valid"), "{out}");

    // A key the plugin does not know.
    let spool = dir.path().join("spool-out");
    let out = check(format!(
        "\n[[transport]]\nname = \"mail\"\nplugin = \"spool\"\ngroups = [\"staff\"]\nconfig = {{ folder = {}, bogus = 1 }}\n",
        serde_json::to_string(&spool.to_string_lossy()).unwrap()
    ));
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains("transport[1] (mail): plugin built-in spool (spool) could not start")
            && out.stderr.contains("bogus"),
        "{out}"
    );

    // A plugin file that loads: valid.
    let plugins = tempfile::tempdir().unwrap();
    let file = install_plugin(&plugins.path().join("plugins"), MISBEHAVING, 0o644);
    let out = check(transport_entry("mail", &file, "config = { mode = \"ok\" }"));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains("configuration is valid (2 plugins loaded)"),
        "{out}"
    );
}

/// A transport that hangs for one group must not take the background-send
/// slots of everyone else: after many REST requests for a user behind it, a
/// request for a spool user is still sent at once, and the dropped requests
/// are reported with a WARN naming the transport (never a code).
#[test]
fn a_hanging_transport_does_not_starve_other_users_provision_requests() {
    let plugins = tempfile::tempdir().unwrap();
    let file = install_plugin(&plugins.path().join("plugins"), MISBEHAVING, 0o644);
    let entry = transport_entry(
        "slow",
        &file,
        "groups = [\"victims\"]\ntimeout = \"5s\"\nmax_concurrent = 2\n\
         config = { mode = \"hang\", hang_seconds = 30 }",
    );
    let d = Daemon::start(|cfg| {
        cfg.requests_per_hour = Some(1000);
        cfg.extra = entry;
    });
    d.add_user("alice", "1234");
    d.add_user("bob", "5678");
    d.ctl_ok(&["user", "set-groups", "alice", "victims"]);

    for _ in 0..100 {
        let r = d.post(
            "/api/v1/provision/request",
            &serde_json::json!({"username": "alice"}),
            None,
        );
        assert_eq!(r.status, 202, "{r:?}");
    }
    let started = Instant::now();
    let r = d.post(
        "/api/v1/provision/request",
        &serde_json::json!({"username": "bob"}),
        None,
    );
    assert_eq!(r.status, 202, "{r:?}");
    let deadline = started + Duration::from_secs(5);
    while d.latest_provision_code("bob").is_none() {
        assert!(
            Instant::now() < deadline,
            "bob's code was not sent within 5 s; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = d.log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("provision code request dropped")
            && l.contains("transport slow")),
        "a WARN naming the bucket; log:\n{log}"
    );
    // Rate-limited: far fewer lines than dropped requests.
    let lines = log
        .lines()
        .filter(|l| l.contains("provision code request dropped"))
        .count();
    assert!((1..=3).contains(&lines), "{lines} lines; log:\n{log}");
}
