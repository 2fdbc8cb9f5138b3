//! The audit trail: who asked for what, from where, and what was decided.
//!
//! Every authentication, provisioning, PIN change, lock, unlock and admin
//! change becomes an [`AuditRow`] written in the same transaction as the
//! change it records (so a committed decision always has its row), then,
//! after the commit, to syslog's auth facility and to the daemon log. Rows
//! hold names, addresses and reason codes only: never a PIN, code, secret or
//! token.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Mutex;

pub use crate::store::audit::AuditRow;

/// Where a request came from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A RADIUS client (NAS): its configured name and the packet's source.
    Radius {
        /// `[[radius.client]] name`.
        nas: String,
        /// Source address and port.
        addr: SocketAddr,
    },
    /// A trusted agent calling the agent API.
    Agent {
        /// `[[agent]] name`, or `unknown` when no agent matched.
        name: String,
        /// Source address.
        addr: SocketAddr,
    },
    /// The REST API used by mobile clients and pages.
    Api {
        /// Source address, when known.
        addr: Option<SocketAddr>,
    },
    /// A visitor of the self-service web pages (ResetPIN, change PIN).
    Page {
        /// Source address.
        addr: SocketAddr,
    },
    /// An administrator over the admin socket.
    Admin,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Radius { nas, addr } => write!(f, "radius:{nas}@{addr}"),
            Source::Agent { name, addr } => write!(f, "agent:{name}@{addr}"),
            Source::Api { addr: Some(a) } => write!(f, "api@{a}"),
            Source::Api { addr: None } => f.write_str("api"),
            Source::Page { addr } => write!(f, "page@{addr}"),
            Source::Admin => f.write_str("admin"),
        }
    }
}

/// Result of an audited event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An authentication or provisioning that succeeded.
    Pass,
    /// One that failed or was refused.
    Fail,
    /// A change that was made.
    Ok,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Ok => "ok",
        }
    }
}

/// Builds a row stamped `now` (Unix seconds).
pub fn row(
    now: i64,
    event: &str,
    username: Option<&str>,
    source: &Source,
    outcome: Outcome,
    reason: Option<&str>,
) -> AuditRow {
    AuditRow {
        at: now,
        event: event.to_string(),
        // No user name holds a control character (they are refused when users
        // are added), so one here came from a request: keep it, escaped.
        username: username.map(|u| {
            if u.chars().any(char::is_control) {
                u.escape_debug().to_string()
            } else {
                u.to_string()
            }
        }),
        source: source.to_string(),
        result: outcome.as_str().to_string(),
        reason: reason.map(str::to_string),
    }
}

/// One line of text for a row (syslog and the daemon log); names are escaped.
pub fn line(row: &AuditRow) -> String {
    format!(
        "audit event={} user={:?} source={:?} result={} reason={}",
        row.event,
        row.username.as_deref().unwrap_or("-"),
        row.source,
        row.result,
        row.reason.as_deref().unwrap_or("-")
    )
}

type SyslogLogger = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

/// Sends committed rows to syslog (facility auth) and the daemon log.
pub struct AuditLog {
    syslog: Mutex<Option<SyslogLogger>>,
    /// Budget for rows about requests nobody authenticated (unknown agents,
    /// provision attempts for unknown users): `(window start, rows in it, dropped)`.
    unauthenticated: Mutex<(std::time::Instant, u32, u64)>,
}

/// Most audit rows a second about requests nobody authenticated; the rest
/// are counted and reported, so a flood cannot fill the database or syslog.
pub const UNAUTHENTICATED_ROWS_PER_SECOND: u32 = 10;

impl AuditLog {
    /// Connects to the syslog socket at `socket` when `enabled`. A missing
    /// syslog is not an error: rows still go to the database and the log.
    pub fn new(enabled: bool, socket: &std::path::Path) -> AuditLog {
        let logger = if enabled {
            let formatter = syslog::Formatter3164 {
                facility: syslog::Facility::LOG_AUTH,
                hostname: None,
                process: "pinwheeld".into(),
                pid: std::process::id(),
            };
            match syslog::unix_custom(formatter, socket) {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(
                        "syslog {} unavailable ({e}); audit records go to the database and this log only",
                        socket.display()
                    );
                    None
                }
            }
        } else {
            None
        };
        AuditLog {
            syslog: Mutex::new(logger),
            unauthenticated: Mutex::new((std::time::Instant::now(), 0, 0)),
        }
    }

    /// Whether a row about an unauthenticated request may be written now
    /// (at most [`UNAUTHENTICATED_ROWS_PER_SECOND`]). Dropped rows are
    /// counted and the count is logged when the next second opens.
    pub fn allow_unauthenticated(&self) -> bool {
        let mut w = self
            .unauthenticated
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if w.0.elapsed() >= std::time::Duration::from_secs(1) {
            if w.2 > 0 {
                tracing::warn!(
                    dropped = w.2,
                    "audit rows about unauthenticated requests not written (more than {UNAUTHENTICATED_ROWS_PER_SECOND} a second)"
                );
            }
            *w = (std::time::Instant::now(), 0, 0);
        }
        if w.1 < UNAUTHENTICATED_ROWS_PER_SECOND {
            w.1 += 1;
            true
        } else {
            w.2 += 1;
            false
        }
    }

    /// Emits rows that have been committed.
    pub fn emit(&self, rows: &[AuditRow]) {
        let mut syslog = self.syslog.lock().unwrap_or_else(|p| p.into_inner());
        for row in rows {
            count_decision(row);
            let text = line(row);
            tracing::info!("{text}");
            if let Some(logger) = syslog.as_mut() {
                let sent = if row.result == "fail" {
                    logger.warning(&text)
                } else {
                    logger.info(&text)
                };
                if let Err(e) = sent {
                    tracing::warn!("syslog write failed: {e}");
                }
            }
        }
    }
}

/// Counts an authentication decision made over HTTP (agent APIs, pages)
/// in the metrics, by the source and result of its committed audit row.
/// RADIUS decisions are counted where their replies are sent.
fn count_decision(row: &AuditRow) {
    use crate::metrics::{Outcome as Result_, Source as From_, METRICS};
    if row.event != "auth" {
        return;
    }
    let source = if row.source.starts_with("agent:") {
        From_::Agent
    } else if row.source.starts_with("page@") {
        From_::Page
    } else {
        return;
    };
    let result = match row.result.as_str() {
        "pass" => Result_::Accept,
        "fail" => Result_::Reject,
        _ => return,
    };
    METRICS.request(source, result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_lines_are_readable_and_escaped() {
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let s = Source::Radius {
            nas: "vpn1".into(),
            addr,
        };
        assert_eq!(s.to_string(), "radius:vpn1@127.0.0.1:5000");
        let r = row(
            1,
            "auth",
            Some("a\nb"),
            &s,
            Outcome::Fail,
            Some("wrong_code"),
        );
        let l = line(&r);
        assert!(l.contains(r#"user="a\\nb""#), "{l}");
        assert!(!l.contains('\n'));
        assert!(l.contains("reason=wrong_code"));
    }

    #[test]
    fn syslog_receives_auth_facility_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let log = AuditLog::new(true, &path);
        let r = row(1, "lock", Some("alice"), &Source::Admin, Outcome::Ok, None);
        log.emit(&[r]);
        let mut buf = [0u8; 1024];
        let n = listener.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        // <PRI> = facility auth (4) * 8 + severity info (6) = 38.
        assert!(text.starts_with("<38>"), "{text}");
        assert!(text.contains("event=lock"), "{text}");
    }

    #[test]
    fn unauthenticated_rows_are_budgeted() {
        let log = AuditLog::new(false, std::path::Path::new("/nonexistent"));
        let allowed = (0..100).filter(|_| log.allow_unauthenticated()).count();
        assert_eq!(allowed, UNAUTHENTICATED_ROWS_PER_SECOND as usize);
    }

    #[test]
    fn control_characters_in_names_are_escaped() {
        let r = row(
            1,
            "auth",
            Some("x\n\u{1b}[8m"),
            &Source::Admin,
            Outcome::Fail,
            None,
        );
        assert_eq!(r.username.as_deref(), Some("x\\n\\u{1b}[8m"));
    }

    #[test]
    fn missing_syslog_is_not_fatal() {
        let log = AuditLog::new(true, std::path::Path::new("/nonexistent/log.sock"));
        log.emit(&[row(1, "auth", None, &Source::Admin, Outcome::Ok, None)]);
    }
}
