//! Reload (`systemctl reload`, SIGHUP): the daemon re-reads its config file;
//! a valid one is applied at once (new RADIUS secrets, added transport
//! plugins), a broken one (syntax, unknown key, a plugin that does not load)
//! is refused with the same file/line/key or plugin error as at start, and
//! the running configuration keeps serving. The sd_notify side (RELOADING=1,
//! READY=1) is in `systemd.rs`.

use std::path::Path;

use pinwheel_tests::*;

const MISBEHAVING: &str = "pinwheel-test-plugin-misbehaving";

/// Rewrites the daemon's config file with `cfg`.
fn rewrite(d: &Daemon, cfg: &Config) {
    std::fs::write(d.config_path(), d.layout.render(cfg)).unwrap();
}

/// Sends SIGHUP and waits for the `n`-th reload outcome line (applied or
/// refused); returns the log.
fn reload(d: &Daemon, n: usize) -> String {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let log = d.log();
        let outcomes = log
            .lines()
            .filter(|l| l.contains("configuration reloaded:") || l.contains("reload refused:"))
            .count();
        if outcomes >= n {
            return log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reload outcome #{n} in the log within 30 s:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

/// The last reload outcome line of `log`.
fn last_outcome(log: &str) -> &str {
    log.lines()
        .rev()
        .find(|l| l.contains("configuration reloaded:") || l.contains("reload refused:"))
        .unwrap_or("")
}

/// Status-Server with `secret`: answered (Access-Accept) when the daemon
/// knows the secret, dropped otherwise.
fn answers(d: &Daemon, secret: &str) -> bool {
    match d.radius_status(secret, 1, 2) {
        RadiusOutcome::Accept => true,
        RadiusOutcome::NoReply => false,
        other => panic!("Status-Server answered {other:?}"),
    }
}

fn plugin_names(d: &Daemon) -> Vec<String> {
    let out = d.ctl_ok(&["plugins"]);
    out.lines()
        .filter(|l| l.contains(" transport ") || l.contains(" directory "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn a_new_shared_secret_applies_and_the_old_one_is_dropped() {
    let d = Daemon::start_default();
    assert!(answers(&d, SECRET));
    let mut cfg = d.config.clone();
    cfg.clients[0].secret = "a-new-secret-after-reload".into();
    rewrite(&d, &cfg);
    let log = reload(&d, 1);
    assert!(
        last_outcome(&log)
            .contains("configuration reloaded: 1 RADIUS clients, 1 transports, 0 directories"),
        "{log}"
    );
    assert!(answers(&d, "a-new-secret-after-reload"), "{}", d.log());
    assert!(!answers(&d, SECRET), "the old secret still works");
    assert!(
        !d.log().contains("a-new-secret-after-reload"),
        "secret in the log"
    );

    // A second client and a change needing a restart: applied, and the
    // restart-only change is named.
    cfg.clients.push(RadiusClient {
        name: "other".into(),
        address: "192.0.2.0/24".into(),
        secret: "another".into(),
        require_message_authenticator: true,
    });
    cfg.code_ttl = Some("5m".into());
    rewrite(&d, &cfg);
    let log = reload(&d, 2);
    assert!(
        last_outcome(&log).contains("configuration reloaded: 2 RADIUS clients"),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("[provision]")
            && l.contains("systemctl restart pinwheeld")
            && !l.contains("[server]")),
        "{log}"
    );
    assert!(answers(&d, "a-new-secret-after-reload"));
}

#[test]
fn a_broken_config_is_refused_and_the_old_one_keeps_serving() {
    let d = Daemon::start_default();
    let path = d.config_path().display().to_string();

    // A syntax error.
    let good = std::fs::read_to_string(d.config_path()).unwrap();
    let broken = good.replacen("[provision]", "[provision\nsecret = ", 1);
    std::fs::write(d.config_path(), &broken).unwrap();
    let log = reload(&d, 1);
    let line = last_outcome(&log);
    assert!(
        line.contains(&format!("reload refused: {path}: line ")),
        "{log}"
    );

    // An unknown key, with its file, line and name.
    let mut cfg = d.config.clone();
    cfg.clients[0].secret = "never-applied".into();
    cfg.server_extra = "no_such_key = 1".into();
    rewrite(&d, &cfg);
    let text = std::fs::read_to_string(d.config_path()).unwrap();
    let key_line = text
        .lines()
        .position(|l| l.starts_with("no_such_key"))
        .unwrap()
        + 1;
    let log = reload(&d, 2);
    let line = last_outcome(&log);
    assert!(
        line.contains(&format!("reload refused: {path}: line {key_line}: "))
            && line.contains("no_such_key"),
        "{log}"
    );
    assert!(!log.contains("never-applied"), "secret in the log");

    // A validation error across keys.
    cfg.server_extra = String::new();
    cfg.clients[0].address = "not-an-address".into();
    rewrite(&d, &cfg);
    let log = reload(&d, 3);
    assert!(
        last_outcome(&log).contains(&format!("reload refused: {path}: line ")),
        "{log}"
    );

    // The old configuration still serves RADIUS and HTTP.
    assert!(answers(&d, SECRET), "{}", d.log());
    assert!(!answers(&d, "never-applied"));
    let health = http_get(&d.url("/healthz")).unwrap();
    assert_eq!(health.status, 200);
    assert!(!d.log().contains("configuration reloaded"), "{}", d.log());
}

#[test]
fn an_added_transport_plugin_is_loaded_and_a_missing_one_refused() {
    let d = Daemon::start_default();
    assert_eq!(plugin_names(&d), vec!["spool"]);
    let folder = d.path("plugins");
    let file = install_plugin(&folder, MISBEHAVING, 0o644);
    let entry = |name: &str, file: &Path| {
        format!(
            "\n[[transport]]\nname = \"{name}\"\nplugin = {}\ngroups = [\"staff\"]\nconfig = {{ mode = \"ok\" }}\n",
            serde_json::to_string(&file.to_string_lossy()).unwrap()
        )
    };
    let mut cfg = d.config.clone();
    cfg.extra = entry("sms", &file);
    rewrite(&d, &cfg);
    let log = reload(&d, 1);
    assert!(
        last_outcome(&log).contains("configuration reloaded: 1 RADIUS clients, 2 transports"),
        "{log}"
    );
    assert_eq!(plugin_names(&d), vec!["spool", "sms"]);

    // A plugin file that does not exist: refused with the same reason as at
    // start, and the loaded set stays.
    cfg.extra = format!(
        "{}{}",
        entry("sms", &file),
        entry("mail", Path::new("/nonexistent/libnothing.so"))
    );
    rewrite(&d, &cfg);
    let log = reload(&d, 2);
    let line = last_outcome(&log);
    assert!(
        line.contains("reload refused: transport[2] (mail): plugin /nonexistent/libnothing.so refused: cannot read it"),
        "{log}"
    );
    assert_eq!(plugin_names(&d), vec!["spool", "sms"]);

    // Taking it out again works; the daemon still sends through the spool.
    cfg.extra = String::new();
    rewrite(&d, &cfg);
    let log = reload(&d, 3);
    assert!(
        last_outcome(&log).contains("configuration reloaded: 1 RADIUS clients, 1 transports"),
        "{log}"
    );
    assert_eq!(plugin_names(&d), vec!["spool"]);
    d.add_user("alice", "1234");
    let code = d.provision_send("alice");
    assert_eq!(code.len(), 10);
}

#[test]
fn a_plugin_file_replaced_on_disk_is_refused_until_a_restart() {
    let d = Daemon::start_default();
    let folder = d.path("plugins");
    let file = install_plugin(&folder, MISBEHAVING, 0o644);
    let mut cfg = d.config.clone();
    cfg.extra = format!(
        "\n[[transport]]\nname = \"sms\"\nplugin = {}\ngroups = [\"staff\"]\nconfig = {{ mode = \"ok\" }}\n",
        serde_json::to_string(&file.to_string_lossy()).unwrap()
    );
    rewrite(&d, &cfg);
    let log = reload(&d, 1);
    assert!(
        last_outcome(&log).contains("configuration reloaded: 1 RADIUS clients, 2 transports"),
        "{log}"
    );
    // The same file again: the loaded library is simply reused.
    let log = reload(&d, 2);
    assert!(
        last_outcome(&log).contains("configuration reloaded: 1 RADIUS clients, 2 transports"),
        "{log}"
    );

    // Replaced the way `install` does it (a new file under the same name),
    // here by a build for another ABI: dlopen would hand back the old code,
    // so the reload is refused and says to restart.
    std::fs::remove_file(&file).unwrap();
    std::fs::copy(plugin_lib("pinwheel-test-plugin-wrong-abi"), &file).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let log = reload(&d, 3);
    let expected = format!(
        "reload refused: transport[1] (sms): plugin {} changed on disk since it was loaded; a reload cannot replace loaded plugin code: restart pinwheeld (systemctl restart pinwheeld)",
        file.display()
    );
    assert!(
        last_outcome(&log).contains(&expected),
        "expected {expected:?} in:\n{log}"
    );

    // The old plugin keeps serving.
    assert_eq!(plugin_names(&d), vec!["spool", "sms"]);
    let out = d.ctl_ok(&["plugins"]);
    let row = out
        .lines()
        .find(|l| l.starts_with("sms "))
        .unwrap_or_else(|| panic!("no sms row in:\n{out}"));
    assert!(row.trim_end().ends_with(" ok"), "{out}");
    assert!(answers(&d, SECRET));
}
