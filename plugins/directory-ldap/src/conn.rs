//! Connections: opening one to the first server that answers (failover in
//! the configured order, every step under the timeout), the small pool of
//! service-account connections reused between calls, and the separate fresh
//! connections that bind as a user to check a password.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ldap3::{LdapConn, LdapConnSettings, LdapError};
use pinwheel_sdk::PluginError;

use crate::config::Config;

/// Idle service connections kept for reuse.
const MAX_IDLE: usize = 4;
/// An idle connection older than this is closed rather than reused: servers
/// and firewalls drop idle connections, and a dead one costs a timeout.
const MAX_IDLE_AGE: Duration = Duration::from_secs(60);
/// After a server could not be reached, it is tried after the others (still
/// in configured order) for this long, so that a dead first server does not
/// cost every call a timeout.
const DOWN_FOR: Duration = Duration::from_secs(30);

/// LDAP result codes this module reacts to (RFC 4511 appendix A).
pub mod rc {
    /// success
    pub const SUCCESS: u32 = 0;
    /// sizeLimitExceeded
    pub const SIZE_LIMIT_EXCEEDED: u32 = 4;
    /// invalidCredentials
    pub const INVALID_CREDENTIALS: u32 = 49;
    /// busy
    pub const BUSY: u32 = 51;
    /// unavailable
    pub const UNAVAILABLE: u32 = 52;
}

/// Whether `e` means "this server cannot serve us now" (try the next one)
/// rather than an answer.
pub fn is_transport_error(e: &LdapError) -> bool {
    match e {
        LdapError::LdapResult { result } => matches!(result.rc, rc::BUSY | rc::UNAVAILABLE),
        LdapError::Io { .. }
        | LdapError::OpSend { .. }
        | LdapError::ResultRecv { .. }
        | LdapError::IdScrubSend { .. }
        | LdapError::MiscSend { .. }
        | LdapError::Timeout { .. }
        | LdapError::EndOfStream
        | LdapError::Rustls { .. }
        | LdapError::DNSName { .. }
        | LdapError::UrlParsing { .. }
        | LdapError::UnknownScheme(_) => true,
        _ => false,
    }
}

/// A short description of `e` for the administrator (never holds a password:
/// the library's messages carry codes and server text only).
pub fn describe(e: &LdapError) -> String {
    match e {
        LdapError::Timeout { .. } => "timed out".to_string(),
        LdapError::LdapResult { result } => {
            let mut s = format!("result code {}", result.rc);
            if !result.text.is_empty() {
                s.push_str(&format!(" ({})", result.text.trim()));
            }
            s
        }
        other => other.to_string(),
    }
}

/// Why a connection attempt to one server failed.
enum Failure {
    /// The server could not be reached or timed out: try the next one.
    Transport(String),
    /// The server answered with a refusal that another server would repeat.
    Fatal(PluginError),
}

struct Idle {
    conn: LdapConn,
    /// Index of its URL, for messages.
    url: usize,
    since: Instant,
}

/// Opens connections and keeps the service account's for reuse.
pub struct Connections {
    config: Config,
    idle: Mutex<Vec<Idle>>,
    /// Per URL: tried last until this instant.
    down_until: Mutex<Vec<Option<Instant>>>,
}

impl Connections {
    /// Connections for `config`; nothing is opened yet.
    pub fn new(config: Config) -> Self {
        let down_until = Mutex::new(vec![None; config.urls.len()]);
        Connections {
            config,
            idle: Mutex::new(Vec::new()),
            down_until,
        }
    }

    /// The checked configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn settings(&self) -> LdapConnSettings {
        let mut s = LdapConnSettings::new()
            .set_conn_timeout(self.config.timeout)
            .set_starttls(self.config.starttls);
        if let Some(tls) = &self.config.tls {
            s = s.set_config(tls.clone());
        }
        s
    }

    /// Opens a connection to `url`, without binding.
    fn open(&self, url: &str) -> Result<LdapConn, Failure> {
        LdapConn::with_settings(self.settings(), url).map_err(|e| {
            if is_transport_error(&e) {
                Failure::Transport(format!("connect: {}", describe(&e)))
            } else {
                Failure::Fatal(PluginError::unavailable(format!(
                    "directory-ldap: {url}: connect: {}",
                    describe(&e)
                )))
            }
        })
    }

    /// Opens a connection to `url` bound as the service account.
    fn open_service(&self, url: &str) -> Result<LdapConn, Failure> {
        let mut conn = self.open(url)?;
        let Some((dn, password)) = &self.config.bind else {
            return Ok(conn);
        };
        let result = conn
            .with_timeout(self.config.timeout)
            .simple_bind(dn, password)
            .and_then(|r| r.success());
        match result {
            Ok(_) => Ok(conn),
            Err(e) if is_transport_error(&e) => {
                Err(Failure::Transport(format!("bind: {}", describe(&e))))
            }
            Err(LdapError::LdapResult { result }) if result.rc == rc::INVALID_CREDENTIALS => {
                Err(Failure::Fatal(PluginError::rejected(format!(
                    "directory-ldap: {url}: the service account bind_dn {dn:?} was refused: \
                     invalid credentials (check bind_dn and bind_password_file)"
                ))))
            }
            Err(e) => Err(Failure::Fatal(PluginError::rejected(format!(
                "directory-ldap: {url}: the service account bind_dn {dn:?} was refused: {}",
                describe(&e)
            )))),
        }
    }

    /// URL indexes in the order to try them: those not recently down first,
    /// each group in configured order.
    fn order(&self) -> Vec<usize> {
        let now = Instant::now();
        let down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        let is_down = |i: usize| down.get(i).copied().flatten().is_some_and(|t| t > now);
        let all = 0..self.config.urls.len();
        all.clone()
            .filter(|&i| !is_down(i))
            .chain(all.filter(|&i| is_down(i)))
            .collect()
    }

    /// Records whether URL `i` could be reached.
    fn mark(&self, i: usize, reached: bool) {
        let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = down.get_mut(i) {
            *slot = if reached {
                None
            } else {
                Some(Instant::now() + DOWN_FOR)
            };
        }
    }

    fn take_idle(&self) -> Option<(LdapConn, usize)> {
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let mut found = None;
            while let Some(entry) = idle.pop() {
                if entry.since.elapsed() <= MAX_IDLE_AGE {
                    found = Some((entry.conn, entry.url));
                    break;
                }
                stale.push(entry.conn);
            }
            found
        };
        // Closed outside the lock.
        drop(stale);
        found
    }

    fn give_back(&self, conn: LdapConn, url: usize) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                conn,
                url,
                since: Instant::now(),
            });
        }
    }

    fn drop_all_idle(&self) {
        let all = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        drop(all);
    }

    /// Runs `op` on a service-account connection: a reused one if any, else
    /// a fresh one from the first server that answers. A reused connection
    /// that fails at the transport level is dropped (with the rest of the
    /// pool) and the operation runs again on a fresh one; a fresh one that
    /// fails so moves on to the next URL. `op` must be safe to repeat (reads
    /// only). `what` names the operation in errors.
    ///
    /// Errors: [`PluginError::unavailable`] naming every URL tried when none
    /// answered; [`PluginError::rejected`] when a server refused.
    pub fn with_service<T>(
        &self,
        what: &str,
        mut op: impl FnMut(&mut LdapConn) -> ldap3::result::Result<T>,
    ) -> Result<T, PluginError> {
        if let Some((mut conn, i)) = self.take_idle() {
            match op(&mut conn) {
                Ok(v) => {
                    self.give_back(conn, i);
                    return Ok(v);
                }
                Err(e) if is_transport_error(&e) => {
                    // The server went away or stalled: so did its siblings.
                    drop(conn);
                    self.drop_all_idle();
                }
                Err(e) => {
                    let url = self.config.urls.get(i).map_or("?", String::as_str);
                    return Err(PluginError::rejected(format!(
                        "directory-ldap: {url}: {what}: {}",
                        describe(&e)
                    )));
                }
            }
        }
        let mut tried = Vec::new();
        for i in self.order() {
            let Some(url) = self.config.urls.get(i) else {
                continue;
            };
            let mut conn = match self.open_service(url) {
                Ok(c) => c,
                Err(Failure::Transport(why)) => {
                    self.mark(i, false);
                    tried.push(format!("{url}: {why}"));
                    continue;
                }
                Err(Failure::Fatal(e)) => return Err(e),
            };
            match op(&mut conn) {
                Ok(v) => {
                    self.mark(i, true);
                    self.give_back(conn, i);
                    return Ok(v);
                }
                Err(e) if is_transport_error(&e) => {
                    self.mark(i, false);
                    tried.push(format!("{url}: {what}: {}", describe(&e)));
                }
                Err(e) => {
                    return Err(PluginError::rejected(format!(
                        "directory-ldap: {url}: {what}: {}",
                        describe(&e)
                    )))
                }
            }
        }
        Err(unavailable(&tried))
    }

    /// Binds as `dn` with `password` on a fresh connection (never a pooled
    /// one, which stays bound as the service account), trying the servers in
    /// order. `Ok(false)` for invalidCredentials.
    ///
    /// Errors: [`PluginError::unavailable`] when no server answered;
    /// [`PluginError::rejected`] for another refusal (account locked by a
    /// policy the server reports differently, unwilling to perform).
    pub fn bind_as(&self, dn: &str, password: &str) -> Result<bool, PluginError> {
        if password.is_empty() || dn.is_empty() {
            // An empty password or DN is an anonymous bind, which succeeds.
            return Ok(false);
        }
        let mut tried = Vec::new();
        for i in self.order() {
            let Some(url) = self.config.urls.get(i) else {
                continue;
            };
            let mut conn = match self.open(url) {
                Ok(c) => c,
                Err(Failure::Transport(why)) => {
                    self.mark(i, false);
                    tried.push(format!("{url}: {why}"));
                    continue;
                }
                Err(Failure::Fatal(e)) => return Err(e),
            };
            let result = conn
                .with_timeout(self.config.timeout)
                .simple_bind(dn, password);
            match result {
                Ok(r) if r.rc == rc::SUCCESS => {
                    self.mark(i, true);
                    let _ = conn.unbind();
                    return Ok(true);
                }
                Ok(r) if r.rc == rc::INVALID_CREDENTIALS => {
                    self.mark(i, true);
                    let _ = conn.unbind();
                    return Ok(false);
                }
                Ok(r) if matches!(r.rc, rc::BUSY | rc::UNAVAILABLE) => {
                    self.mark(i, false);
                    tried.push(format!("{url}: bind: {}", describe(&LdapError::from(r))));
                }
                Ok(r) => {
                    return Err(PluginError::rejected(format!(
                        "directory-ldap: {url}: bind as {dn:?} refused: {}",
                        describe(&LdapError::from(r))
                    )))
                }
                Err(e) if is_transport_error(&e) => {
                    self.mark(i, false);
                    tried.push(format!("{url}: bind: {}", describe(&e)));
                }
                Err(e) => {
                    return Err(PluginError::rejected(format!(
                        "directory-ldap: {url}: bind as {dn:?}: {}",
                        describe(&e)
                    )))
                }
            }
        }
        Err(unavailable(&tried))
    }
}

fn unavailable(tried: &[String]) -> PluginError {
    PluginError::unavailable(format!(
        "directory-ldap: no LDAP server answered ({})",
        tried.join("; ")
    ))
}
