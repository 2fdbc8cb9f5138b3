//! The running daemon: [`App`] is the state every front door shares (config,
//! store, master key, transports and directory plugins), and [`run`] binds the listeners, tells
//! systemd it is ready, serves until SIGTERM/SIGINT and drains.
//!
//! Listeners are bound before anything is served, so a port in use is a
//! clear start-up error, and READY=1 is sent only once all of them are bound.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;

use crate::config::Config;
use crate::secrets::MasterKey;
use crate::store::Store;
use crate::transport::Transports;

/// Shared state of the running daemon.
pub struct App {
    /// The validated configuration.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// The master key (seals PINs and seeds, hashes codes and tokens).
    pub key: MasterKey,
    /// Where messages to users go: the loaded `[[transport]]` plugins.
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
    /// Bounds provision-code requests from the REST API waiting to be sent.
    pub pending_provision_sends: Arc<tokio::sync::Semaphore>,
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

/// Most provision-code requests from the REST API waiting to be sent at once.
pub const PENDING_SENDS: usize = 64;

impl App {
    /// Opens the state directory, master key and store for `config`, and
    /// loads its plugins.
    ///
    /// Errors name the path that failed, or the plugin refused and why.
    pub fn open(config: Config) -> anyhow::Result<App> {
        use std::os::unix::fs::DirBuilderExt;
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
        Ok(App {
            audit,
            password_checks: Default::default(),
            config,
            store,
            key,
            transports,
            directories: crate::directory::Directories::new(directories),
            started: Instant::now(),
            provision_send_locks: UserLocks::default(),
            pending_provision_sends: Arc::new(tokio::sync::Semaphore::new(PENDING_SENDS)),
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

/// Runs the daemon until SIGTERM or SIGINT, then drains and returns.
///
/// Errors: a listener that cannot be bound, a state directory, key or
/// database that cannot be opened, unreadable RADIUS secret files.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let clients = config
        .resolved_radius_clients()
        .map_err(anyhow::Error::msg)?;
    let app = Arc::new(App::open(config)?);
    let cfg = &app.config;

    let http_listener = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", cfg.http.listen))?;
    let radius_socket = tokio::net::UdpSocket::bind(cfg.radius.listen)
        .await
        .with_context(|| format!("cannot listen for RADIUS on udp {}", cfg.radius.listen))?;
    let granted = crate::system::enlarge_receive_buffer(&radius_socket, 4 << 20);
    tracing::debug!(bytes = granted, "RADIUS socket receive buffer");
    let accounting_socket = if cfg.radius.accounting {
        let socket = tokio::net::UdpSocket::bind(cfg.radius.accounting_listen)
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
            clients.clone(),
            socket,
            crate::radius::server::Port::Accounting,
            shutdown_rx.clone(),
        ))
    });
    let radius_task = tokio::spawn(crate::radius::server::serve(
        app.clone(),
        clients,
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

    tracing::info!(
        http = %bound.http,
        radius = %bound.radius,
        admin = %bound.admin.display(),
        clients = app.config.radius.clients.len(),
        "pinwheeld {} serving",
        env!("CARGO_PKG_VERSION")
    );
    crate::system::notify_ready();

    crate::system::wait_for_shutdown_signal().await?;
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
