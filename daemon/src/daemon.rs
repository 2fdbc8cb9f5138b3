//! The running daemon: [`App`] is the state every front door shares (config,
//! store, master key, RADIUS clients, transports and directory plugins), and
//! [`run`] binds the listeners, tells systemd it is ready, reloads on SIGHUP,
//! serves until SIGTERM/SIGINT and drains.
//!
//! Listeners are bound before anything is served, so a port in use is a
//! clear start-up error, and READY=1 is sent only once all of them are bound.
//!
//! A reload ([`reload`]) re-reads the whole config file, validates it and
//! loads every plugin it names before anything is swapped: the RADIUS
//! clients, the transports, the directories and the HTTPS certificate (read
//! again from the same files) change together, or (any
//! error) nothing changes and the running configuration keeps serving.
//! Sections that are read only at start (listeners, paths, policy, ...) keep
//! their old values until a restart; a reload that changes them says so.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;

use crate::config::Config;
use crate::secrets::MasterKey;
use crate::store::Store;
use crate::transport::{TransportSet, Transports};

/// Shared state of the running daemon.
pub struct App {
    /// The validated configuration the daemon started with. A reload swaps
    /// `radius_clients`, `transports` and `directories`; everything else read
    /// from here keeps its start-up value until a restart.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// The master key (seals PINs and seeds, hashes codes and tokens).
    pub key: MasterKey,
    /// The RADIUS clients (NASes) with their secrets read; swapped on reload.
    pub radius_clients: crate::radius::server::Clients,
    /// Where messages to users go: the loaded `[[transport]]` plugins;
    /// swapped on reload.
    pub transports: Transports,
    /// The loaded `[[directory]]` plugins, in config order (loaded and
    /// health-checked at start).
    pub directories: crate::directory::Directories,
    /// When the daemon started.
    pub started: Instant,
    /// Per-user locks held while a provision code is sent and stored, so the
    /// stored code is always the one sent last. Per user, so a transport
    /// that hangs for one user does not hold up the others.
    pub provision_send_locks: UserLocks,
    /// Sends committed audit rows to syslog and the log.
    pub audit: crate::audit::AuditLog,
    /// Serialises and bounds directory password checks (Argon2).
    pub password_checks: crate::auth::challenge::PasswordGate,
    /// Bounds code requests from the REST API and the pages waiting to be
    /// sent, per transport and for directory look-ups.
    pub provision_queue: crate::provision::queue::SendQueue,
    /// Outstanding ResetPIN codes (keyed hashes, one per user).
    pub reset_codes: crate::provision::reset::ResetCodes,
    /// The web pages' CSRF key, rate limits and change-PIN forms.
    pub pages: crate::http::pages::PagesState,
    /// HTTPS certificate and key when `[http] tls_certificate` and
    /// `tls_key` are set (re-read on reload); `None` serves plain HTTP.
    pub tls: Option<crate::http::tls::Tls>,
}

/// One mutex per user name, made on demand and forgotten when unused.
#[derive(Default)]
pub struct UserLocks {
    locks:
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Weak<std::sync::Mutex<()>>>>,
}

impl UserLocks {
    /// The lock of `user` (the same one for every caller while any holds it).
    pub fn of(&self, user: &str) -> Arc<std::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = map.get(user).and_then(std::sync::Weak::upgrade) {
            return lock;
        }
        if map.len() >= 1024 {
            map.retain(|_, weak| weak.strong_count() > 0);
        }
        let lock = Arc::new(std::sync::Mutex::new(()));
        map.insert(user.to_string(), Arc::downgrade(&lock));
        lock
    }
}

impl App {
    /// Opens the state directory, master key and store for `config`, reads
    /// its RADIUS secret files and loads its plugins.
    ///
    /// Errors name the path that failed, the RADIUS client whose secret
    /// cannot be read, or the plugin refused and why.
    pub fn open(config: Config) -> anyhow::Result<App> {
        use std::os::unix::fs::DirBuilderExt;
        let clients = config
            .resolved_radius_clients()
            .map_err(anyhow::Error::msg)?;
        let state = &config.server.state_dir;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state)
            .with_context(|| format!("cannot create state directory {}", state.display()))?;
        let key_path = match std::env::var_os("CREDENTIALS_DIRECTORY") {
            Some(dir) if PathBuf::from(&dir).join("master.key").exists() => {
                PathBuf::from(dir).join("master.key")
            }
            _ => config.server.master_key_path(),
        };
        let key = MasterKey::load_or_create(&key_path)?;
        let db = config.server.database_path();
        let store =
            Store::open(&db).with_context(|| format!("cannot open database {}", db.display()))?;
        let transports = Transports::load(&config).map_err(anyhow::Error::msg)?;
        let directories =
            crate::transport::load_directories(&config).map_err(anyhow::Error::msg)?;
        let audit = crate::audit::AuditLog::new(config.audit.syslog, &config.audit.syslog_socket);
        let tls = match (&config.http.tls_certificate, &config.http.tls_key) {
            (Some(cert), Some(key)) => Some(crate::http::tls::Tls::open(cert, key)?),
            _ => None,
        };
        Ok(App {
            audit,
            password_checks: Default::default(),
            config,
            store,
            key,
            radius_clients: crate::radius::server::Clients::new(clients),
            transports,
            directories: crate::directory::Directories::new(directories),
            started: Instant::now(),
            provision_send_locks: UserLocks::default(),
            provision_queue: Default::default(),
            reset_codes: Default::default(),
            pages: Default::default(),
            tls,
        })
    }
}

/// What [`run`] bound, for logs and tests.
#[derive(Debug, Clone)]
pub struct Bound {
    /// HTTP listener address.
    pub http: SocketAddr,
    /// RADIUS auth listener address.
    pub radius: SocketAddr,
    /// Admin socket path.
    pub admin: PathBuf,
}

/// Runs the daemon until SIGTERM or SIGINT, then drains and returns. SIGHUP
/// reloads `config_path` (the file `config` was read from), see [`reload`].
///
/// Errors: a listener that cannot be bound, a state directory, key or
/// database that cannot be opened, unreadable RADIUS secret files, a start
/// as root whose `[server] user` is missing or cannot be switched to.
pub async fn run(config: Config, config_path: PathBuf) -> anyhow::Result<()> {
    // Before READY=1: a SIGHUP sent as soon as systemd sees it must not
    // kill the daemon (its default action).
    let mut signals =
        crate::system::Signals::install().context("cannot install signal handlers")?;
    // A root start whose [server] user is missing stops here, before
    // anything is made (see system::privileges).
    let leave_root = crate::system::privileges::LeaveRoot::plan(&config.server.user)?;
    let app = Arc::new(App::open(config)?);
    let cfg = &app.config;

    let http_listener = crate::system::activation::tcp_listener(cfg.http.listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", cfg.http.listen))?;
    let radius_socket = crate::system::activation::udp_socket(cfg.radius.listen)
        .await
        .with_context(|| format!("cannot listen for RADIUS on udp {}", cfg.radius.listen))?;
    let granted = crate::system::enlarge_receive_buffer(&radius_socket, 4 << 20);
    tracing::debug!(bytes = granted, "RADIUS socket receive buffer");
    let accounting_socket = if cfg.radius.accounting {
        let socket = crate::system::activation::udp_socket(cfg.radius.accounting_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen for RADIUS accounting on udp {} (set [radius] accounting = false to turn it off)",
                    cfg.radius.accounting_listen
                )
            })?;
        crate::system::enlarge_receive_buffer(&socket, 1 << 20);
        Some(socket)
    } else {
        None
    };
    let admin_path = cfg.server.admin_socket_path();
    let admin_listener = crate::admin::server::bind(&admin_path)
        .with_context(|| format!("cannot listen on admin socket {}", admin_path.display()))?;
    crate::system::activation::close_unused();
    // Everything that needs root is open: leave it (see system::privileges).
    match leave_root.apply(&crate::system::privileges::owned_paths(cfg))? {
        crate::system::privileges::Privileges::Dropped { user, uid, gid } => {
            tracing::info!(uid, gid, "started as root: now running as user {user}")
        }
        crate::system::privileges::Privileges::KeptRoot => tracing::warn!(
            "running as root because [server] user = \"{}\"; set it to an unprivileged user",
            cfg.server.user
        ),
        crate::system::privileges::Privileges::NotRoot => {}
    }

    let bound = Bound {
        http: http_listener.local_addr()?,
        radius: radius_socket.local_addr()?,
        admin: admin_path.clone(),
    };
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);

    let http_task = tokio::spawn(crate::http::serve(
        app.clone(),
        http_listener,
        shutdown_rx.clone(),
    ));
    let accounting_task = accounting_socket.map(|socket| {
        tokio::spawn(crate::radius::server::serve(
            app.clone(),
            socket,
            crate::radius::server::Port::Accounting,
            shutdown_rx.clone(),
        ))
    });
    let radius_task = tokio::spawn(crate::radius::server::serve(
        app.clone(),
        radius_socket,
        crate::radius::server::Port::Authentication,
        shutdown_rx.clone(),
    ));
    let admin_task = tokio::spawn(crate::admin::server::serve(
        app.clone(),
        admin_listener,
        shutdown_rx.clone(),
    ));

    let maintenance_task = tokio::spawn(maintenance(app.clone(), shutdown_rx.clone()));
    tokio::spawn(check_directories(app.clone()));
    tokio::spawn(crate::directory::run_scheduled_sync(
        app.clone(),
        shutdown_rx.clone(),
    ));

    tracing::info!(
        http = %bound.http,
        radius = %bound.radius,
        admin = %bound.admin.display(),
        clients = app.config.radius.clients.len(),
        "pinwheeld {} serving",
        env!("CARGO_PKG_VERSION")
    );
    warn_if_no_radius_clients(app.config.radius.clients.len());
    crate::system::notify_ready_with_status(&serving_status(&app));
    tokio::spawn(status_and_watchdog(app.clone(), shutdown_rx.clone()));

    // Reloads run one at a time on their own task: a SIGHUP during a reload
    // queues one more (later ones fold into it), and SIGTERM is handled
    // even while a reload waits for a plugin.
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::spawn(reloader(app.clone(), config_path, reload_rx));
    loop {
        match signals.next().await {
            crate::system::Signal::Shutdown => break,
            crate::system::Signal::Reload => {
                let _ = reload_tx.try_send(());
            }
        }
    }
    drop(reload_tx);
    tracing::info!("shutting down: draining in-flight requests");
    crate::system::notify_stopping();
    let _ = shutdown_tx.send(true);
    let drain = async {
        let _ = http_task.await;
        let _ = radius_task.await;
        let _ = admin_task.await;
        let _ = maintenance_task.await;
        if let Some(task) = accounting_task {
            let _ = task.await;
        }
    };
    if tokio::time::timeout(std::time::Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        tracing::warn!("in-flight work did not finish within 10 s; exiting anyway");
    }
    let _ = std::fs::remove_file(&admin_path);
    tracing::info!("stopped");
    Ok(())
}

/// What a reload applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// RADIUS clients now in effect.
    pub radius_clients: usize,
    /// Transports now in effect.
    pub transports: usize,
    /// Directory plugins now in effect.
    pub directories: usize,
    /// Sections that changed but keep their old values until a restart.
    pub need_restart: Vec<&'static str>,
}

/// Re-reads `path` and applies it to `app`: parses and validates the whole
/// file, reads the RADIUS secret files, loads and initialises every
/// transport and directory plugin, and only then swaps the RADIUS clients,
/// transports and directories (requests already running finish with the
/// ones they started with). Blocks while plugins load: call it from a
/// thread that may block.
///
/// Errors: the same text as at start (file, line and key for a config
/// error; the client and file for a secret file; the entry and reason for
/// a plugin); nothing is changed then.
pub fn reload(app: &App, path: &Path) -> Result<Reloaded, String> {
    let new = Config::load(path).map_err(|e| e.to_string())?;
    let clients = new
        .resolved_radius_clients()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let transports = TransportSet::load(&new)?;
    let directories = crate::transport::load_directories(&new)?;
    // HTTPS: the files the listener started with, read again (new names
    // for them need a restart, as the rest of [http]).
    let tls_pair = match &app.tls {
        Some(tls) => Some(
            tls.read_again()
                .map_err(|e| format!("HTTPS certificate: {e}"))?,
        ),
        None => None,
    };
    let applied = Reloaded {
        radius_clients: clients.len(),
        transports: transports.len(),
        directories: directories.len(),
        need_restart: sections_needing_restart(&app.config, &new),
    };
    app.radius_clients.replace(clients);
    app.transports.replace(transports);
    app.directories.replace(directories);
    if let (Some(tls), Some(pair)) = (&app.tls, tls_pair) {
        tls.replace(pair);
    }
    Ok(applied)
}

/// Why [`check_config`] found a configuration unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// A RADIUS secret file cannot be read: a configuration error.
    #[error("{0}")]
    Config(String),
    /// A transport or directory plugin was refused or could not start
    /// (the entry, the file and the reason).
    #[error("{0}")]
    Plugin(String),
}

/// The checks a start makes before binding anything, without starting:
/// reads the RADIUS secret files, loads and initialises every transport and
/// directory plugin of `config` (file checks, ABI, the plugin's own config
/// keys), then unloads them. `pinwheeld --check-config` and `pinwheelctl
/// config check` both run exactly this. Returns what each loaded plugin
/// says about itself, transports first, in config order.
///
/// Errors: [`CheckError`], whose text names the file, client, entry or
/// plugin that failed and why.
pub fn check_config(config: &Config) -> Result<Vec<crate::plugin_host::PluginInfo>, CheckError> {
    config
        .resolved_radius_clients()
        .map_err(CheckError::Config)?;
    let transports = TransportSet::load(config).map_err(CheckError::Plugin)?;
    let directories = crate::transport::load_directories(config).map_err(CheckError::Plugin)?;
    Ok(transports
        .plugins()
        .chain(directories.iter())
        .map(|plugin| plugin.info().clone())
        .collect())
}

/// The sections whose changes a reload cannot apply (they are read from
/// [`App::config`], which keeps the start-up values), as written in the file.
fn sections_needing_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    fn differ<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
        // Debug covers every field (secrets are redacted; agents' are
        // compared separately below).
        format!("{a:?}") != format!("{b:?}")
    }
    let radius_sans_clients = |c: &Config| {
        let mut radius = c.radius.clone();
        radius.clients.clear();
        radius
    };
    let agents_differ = differ(&old.agents, &new.agents)
        || old
            .agents
            .iter()
            .zip(&new.agents)
            .any(|(a, b)| a.secret != b.secret);
    [
        ("[server]", differ(&old.server, &new.server)),
        ("[http]", differ(&old.http, &new.http)),
        (
            "[radius] (other than its clients)",
            differ(&radius_sans_clients(old), &radius_sans_clients(new)),
        ),
        ("[strings]", differ(&old.strings, &new.strings)),
        ("[pin]", differ(&old.pin, &new.pin)),
        ("[provision]", differ(&old.provision, &new.provision)),
        ("[policy]", differ(&old.policy, &new.policy)),
        ("[audit]", differ(&old.audit, &new.audit)),
        ("[oath]", differ(&old.oath, &new.oath)),
        (
            "[dual_channel]",
            differ(&old.dual_channel, &new.dual_channel),
        ),
        ("[[agent]]", agents_differ),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

/// Runs the reloads asked for on `requests`, one at a time, telling systemd
/// (`RELOADING=1`, then `READY=1` with the outcome as `STATUS=`) and the log.
async fn reloader(app: Arc<App>, path: PathBuf, mut requests: tokio::sync::mpsc::Receiver<()>) {
    while requests.recv().await.is_some() {
        crate::system::notify_reloading();
        // A thread of its own, not the blocking pool: a plugin whose `init`
        // hangs must not hold up the runtime's shutdown on SIGTERM.
        let (reload_app, reload_path) = (app.clone(), path.clone());
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("pinwheel-reload".into())
            .spawn(move || {
                let _ = done_tx.send(reload(&reload_app, &reload_path));
            });
        let outcome = match spawned {
            Ok(_) => done_rx
                .await
                .unwrap_or_else(|_| Err("the reload thread failed".to_string())),
            Err(e) => Err(format!("cannot start the reload thread: {e}")),
        };
        let status = match outcome {
            Ok(applied) => {
                if !applied.need_restart.is_empty() {
                    tracing::warn!(
                        "changes to {} take effect only after `systemctl restart pinwheeld`; their old values stay in force",
                        applied.need_restart.join(", ")
                    );
                }
                let line = format!(
                    "configuration reloaded: {} RADIUS clients, {} transports, {} directories",
                    applied.radius_clients, applied.transports, applied.directories
                );
                tracing::info!("{line}");
                warn_if_no_radius_clients(applied.radius_clients);
                tokio::spawn(check_directories(app.clone()));
                line
            }
            Err(e) => {
                let line = format!("reload refused: {e}");
                tracing::error!("{line}; the running configuration keeps serving");
                line
            }
        };
        crate::system::notify_reloaded(&status);
    }
}

/// Housekeeping while the daemon runs: prunes audit rows older than
/// `[audit] retention`, at start and then hourly.
async fn maintenance(app: Arc<App>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = every_hour.tick() => {}
            _ = crate::system::shutdown_requested(&mut shutdown) => return,
        }
        let app = app.clone();
        let pruned = tokio::task::spawn_blocking(move || {
            let before = crate::unix_now() - app.config.audit.retention.as_secs() as i64;
            app.store.with(|c| crate::store::audit::prune(c, before))
        })
        .await;
        match pruned {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(rows = n, "pruned audit rows past [audit] retention"),
            Ok(Err(e)) => tracing::warn!("audit pruning failed: {e}"),
            Err(e) => tracing::warn!("audit pruning task failed: {e}"),
        }
    }
}

/// A config without `[[radius.client]]` is valid (the HTTP side still
/// serves), but every RADIUS request is then dropped: say so loudly.
fn warn_if_no_radius_clients(count: usize) {
    if count == 0 {
        tracing::warn!(
            "no [[radius.client]] is configured: every RADIUS request is dropped until one is added"
        );
    }
}

/// The `STATUS=` line while serving: "serving N RADIUS clients, M users".
fn serving_status(app: &App) -> String {
    let users = app
        .store
        .with(|c| Ok(c.query_row("SELECT count(*) FROM users", [], |r| r.get::<_, i64>(0))?))
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_string());
    format!(
        "serving {} RADIUS clients, {users} users",
        app.radius_clients.snapshot().len()
    )
}

/// Sends `STATUS=` every minute and, when systemd set a watchdog
/// (`WATCHDOG_USEC`), `WATCHDOG=1` every half period while the daemon is
/// healthy: the store answers `SELECT 1` through the decision thread's
/// queue (so a stuck decision thread counts) and the RADIUS receive loop
/// has shown it is polled within the last second. When either fails, the
/// reason is logged and no ping is sent: systemd restarts the daemon.
async fn status_and_watchdog(app: Arc<App>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    use std::time::Duration;
    let watchdog = crate::system::watchdog_period();
    let period = watchdog
        .map(|w| (w / 2).max(Duration::from_millis(100)))
        .unwrap_or(Duration::from_secs(60));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status = Instant::now();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = crate::system::shutdown_requested(&mut shutdown) => return,
        }
        if last_status.elapsed() >= Duration::from_secs(60) {
            last_status = Instant::now();
            let status_app = app.clone();
            if let Ok(status) =
                tokio::task::spawn_blocking(move || serving_status(&status_app)).await
            {
                crate::system::notify_status(&status);
            }
        }
        let Some(watchdog) = watchdog else { continue };
        match health_check(&app, watchdog).await {
            Ok(()) => crate::system::notify_watchdog(),
            Err(why) => tracing::error!("health check failed, watchdog not fed: {why}"),
        }
    }
}

/// The watchdog's health check (see [`status_and_watchdog`]); `Err` says
/// what failed. Waits at most `limit` for the store.
async fn health_check(app: &App, limit: std::time::Duration) -> Result<(), String> {
    let stale = std::time::Duration::from_secs(1).max(crate::metrics::HEARTBEAT_PERIOD * 4);
    match crate::metrics::METRICS.radius_heartbeat_age() {
        Some(age) if age <= stale => {}
        Some(age) => return Err(format!("the RADIUS loop has not run for {age:?}")),
        None => return Err("the RADIUS loop has not started".into()),
    }
    let store = app
        .store
        .queued(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?));
    match tokio::time::timeout(limit, store).await {
        Ok(Ok(1)) => Ok(()),
        Ok(Ok(n)) => Err(format!("the store answered SELECT 1 with {n}")),
        Ok(Err(e)) => Err(format!("the store failed: {e}")),
        Err(_) => Err(format!("the store did not answer within {limit:?}")),
    }
}

/// Health-checks the directory plugins once at start, logging the outcome
/// (a failure is logged by the plugin host; the daemon serves anyway).
async fn check_directories(app: Arc<App>) {
    for plugin in app.directories.snapshot().iter() {
        if plugin.health().await.is_ok() {
            tracing::info!("plugin {} healthy", plugin.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_text(dir: &Path, secret: &str, extra: &str) -> String {
        format!(
            "[server]\nstate_dir = \"{d}/state\"\nruntime_dir = \"{d}/run\"\n\
             [[radius.client]]\nname = \"nas\"\naddress = \"127.0.0.1/32\"\nsecret = \"{secret}\"\n\
             [[transport]]\nname = \"spool\"\nplugin = \"spool\"\n{extra}\n",
            d = dir.display()
        )
    }

    #[test]
    fn reload_swaps_clients_and_transports_or_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pinwheel.toml");
        std::fs::write(&path, config_text(dir.path(), "one", "")).unwrap();
        let app = App::open(Config::load(&path).unwrap()).unwrap();
        let before = app.radius_clients.snapshot();
        assert_eq!(before[0].secret.expose(), b"one");

        let extra = "[[transport]]\nname = \"sms\"\nplugin = \"spool\"\naddress = \"phone\"\ngroups = [\"field\"]\n\
                     [policy]\nmax_failures = 3\n";
        std::fs::write(&path, config_text(dir.path(), "two", extra)).unwrap();
        let applied = reload(&app, &path).unwrap();
        assert_eq!(
            applied,
            Reloaded {
                radius_clients: 1,
                transports: 2,
                directories: 0,
                need_restart: vec!["[policy]"],
            }
        );
        assert_eq!(app.radius_clients.snapshot()[0].secret.expose(), b"two");
        assert_eq!(app.transports.names(), vec!["spool", "sms"]);
        // A request that took the old set keeps it.
        assert_eq!(before[0].secret.expose(), b"one");

        // Broken: nothing changes, and the error is the start-up one.
        std::fs::write(&path, config_text(dir.path(), "three", "bogus = 1")).unwrap();
        let e = reload(&app, &path).unwrap_err();
        assert!(e.starts_with(&format!("{}: line ", path.display())), "{e}");
        assert!(e.contains("bogus"), "{e}");
        let missing =
            "[[transport]]\nname = \"mail\"\nplugin = \"/nonexistent/libx.so\"\ngroups = [\"staff\"]\n";
        std::fs::write(&path, config_text(dir.path(), "three", missing)).unwrap();
        let e = reload(&app, &path).unwrap_err();
        assert!(e.starts_with("transport[1] (mail): "), "{e}");
        assert!(!e.contains("three"), "{e}");
        assert_eq!(app.radius_clients.snapshot()[0].secret.expose(), b"two");
        assert_eq!(app.transports.names(), vec!["spool", "sms"]);
    }

    #[test]
    fn unchanged_sections_need_no_restart_and_agent_secrets_count() {
        let base = "[[agent]]\nname = \"a\"\naddress = \"127.0.0.1/32\"\nsecret = \"first-secret-0123456\"\n";
        let parse = |t: &str| Config::parse(t, Path::new("t.toml")).unwrap();
        let old = parse(base);
        assert!(sections_needing_restart(&old, &parse(base)).is_empty());
        let other_secret = base.replace("first", "other");
        assert_eq!(
            sections_needing_restart(&old, &parse(&other_secret)),
            vec!["[[agent]]"]
        );
        let moved =
            format!("{base}[http]\nlisten = \"127.0.0.1:9999\"\n[radius]\nmax_in_flight = 7\n");
        assert_eq!(
            sections_needing_restart(&old, &parse(&moved)),
            vec!["[http]", "[radius] (other than its clients)"]
        );
    }

    #[test]
    fn user_locks_are_shared_per_user_and_forgotten() {
        let locks = UserLocks::default();
        let a = locks.of("alice");
        assert!(Arc::ptr_eq(&a, &locks.of("alice")));
        assert!(!Arc::ptr_eq(&a, &locks.of("bob")));
        let _held = a.lock().unwrap();
        // Another user is not held up by alice's lock.
        assert!(locks.of("bob").try_lock().is_ok());
        drop(_held);
        drop(a);
        assert_eq!(
            locks
                .locks
                .lock()
                .unwrap()
                .values()
                .filter(|w| w.strong_count() > 0)
                .count(),
            0
        );
    }
}
