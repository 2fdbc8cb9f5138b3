//! What touches the operating system: logging set-up, sd_notify, signals,
//! socket activation ([`activation`]) and leaving root ([`privileges`]).
//! Nothing else in the crate talks to systemd or installs signal handlers.

pub mod activation;
pub mod privileges;

/// Logs to stderr (journald captures it under systemd). The filter comes from
/// `PINWHEEL_LOG` (e.g. `debug`), default `info`. Each line is written with
/// one `write` as it is logged, except inside [`batched_log_lines`], whose
/// lines go out together in one `write` when it ends.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PINWHEEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    if under_journald {
        // journald adds its own timestamps.
        builder.without_time().init();
    } else {
        builder.init();
    }
}

/// Log text not yet written to stderr (only while some thread is inside
/// [`batched_log_lines`]).
static LOG_BUFFER: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// Above this many buffered bytes the buffer is written even inside a batch.
const LOG_BUFFER_MAX: usize = 64 * 1024;

thread_local! {
    /// Whether this thread is inside [`batched_log_lines`].
    static DEFER_LOG_WRITES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Writes the buffered log text to stderr (a failed write is dropped: there
/// is nowhere else to report it).
fn flush_log_buffer(buffer: &mut Vec<u8>) {
    if buffer.is_empty() {
        return;
    }
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(buffer);
    buffer.clear();
}

/// The daemon log's writer: stderr, through [`LOG_BUFFER`] so that lines
/// logged inside [`batched_log_lines`] share one `write`. Order is kept:
/// any line written outside a batch flushes what is buffered before it.
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, text: &[u8]) -> std::io::Result<usize> {
        let mut buffer = LOG_BUFFER.lock().unwrap_or_else(|p| p.into_inner());
        if buffer.is_empty() && !DEFER_LOG_WRITES.with(std::cell::Cell::get) {
            // The common case outside batches: straight through.
            drop(buffer);
            return std::io::stderr().lock().write(text);
        }
        buffer.extend_from_slice(text);
        if buffer.len() >= LOG_BUFFER_MAX || !DEFER_LOG_WRITES.with(std::cell::Cell::get) {
            flush_log_buffer(&mut buffer);
        }
        Ok(text.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f`; the log lines this thread writes meanwhile are written to
/// stderr together (one `write`) when `f` returns or unwinds. For the store's
/// decision thread, which logs one audit line per decision of a batch.
pub fn batched_log_lines<R>(f: impl FnOnce() -> R) -> R {
    struct Flush(bool);
    impl Drop for Flush {
        fn drop(&mut self) {
            DEFER_LOG_WRITES.with(|d| d.set(self.0));
            if !self.0 {
                flush_log_buffer(&mut LOG_BUFFER.lock().unwrap_or_else(|p| p.into_inner()));
            }
        }
    }
    let outer = DEFER_LOG_WRITES.with(|d| d.replace(true));
    let _flush = Flush(outer);
    f()
}

/// Tells systemd the daemon is ready (no-op without `NOTIFY_SOCKET`).
pub fn notify_ready() {
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::warn!("sd_notify READY failed: {e}");
    }
}

/// Sends `STATUS=status` (one line; no-op without `NOTIFY_SOCKET`).
pub fn notify_status(status: &str) {
    let status = status.replace(['\n', '\r'], " ");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&status)]);
}

/// Sends `READY=1` with `STATUS=status` in one message (no-op without
/// `NOTIFY_SOCKET`).
pub fn notify_ready_with_status(status: &str) {
    let status = status.replace(['\n', '\r'], " ");
    if let Err(e) = sd_notify::notify(
        false,
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ],
    ) {
        tracing::warn!("sd_notify READY failed: {e}");
    }
}

/// Sends `WATCHDOG=1` (no-op without `NOTIFY_SOCKET`).
pub fn notify_watchdog() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
}

/// The watchdog period systemd asks for (`WATCHDOG_USEC`; when
/// `WATCHDOG_PID` is set it must be this process, as sd_watchdog_enabled(3)
/// says), or `None` when no watchdog is set.
pub fn watchdog_period() -> Option<std::time::Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| std::time::Duration::from_micros(usec))
}

/// Tells systemd the daemon is stopping (no-op without `NOTIFY_SOCKET`).
pub fn notify_stopping() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}

/// Tells systemd a reload has begun: `RELOADING=1` with `MONOTONIC_USEC=`
/// (which `Type=notify-reload` needs, systemd 253 and later; older versions
/// ignore it). No-op without `NOTIFY_SOCKET`.
pub fn notify_reloading() {
    let mut states = vec![sd_notify::NotifyState::Reloading];
    if let Ok(now) = sd_notify::NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    if let Err(e) = sd_notify::notify(false, &states) {
        tracing::warn!("sd_notify RELOADING failed: {e}");
    }
}

/// Tells systemd a reload has ended (applied or refused): `READY=1` with
/// `STATUS=status`. No-op without `NOTIFY_SOCKET`.
pub fn notify_reloaded(status: &str) {
    // STATUS= ends at the end of its line.
    let status = status.replace(['\n', '\r'], " ");
    if let Err(e) = sd_notify::notify(
        false,
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ],
    ) {
        tracing::warn!("sd_notify READY failed: {e}");
    }
}

/// A signal the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT: drain and exit.
    Shutdown,
    /// SIGHUP: re-read the configuration.
    Reload,
}

/// The daemon's signal handlers (SIGTERM, SIGINT, SIGHUP).
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; from now on these signals no longer kill the
    /// process but are reported by [`Signals::next`].
    ///
    /// Errors: the signal handlers could not be installed.
    pub fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal. Several SIGHUPs arriving before this is
    /// called again count as one.
    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => { tracing::info!("SIGTERM received"); Signal::Shutdown }
            _ = self.int.recv() => { tracing::info!("SIGINT received"); Signal::Shutdown }
            _ = self.hup.recv() => { tracing::info!("SIGHUP received: reloading the configuration"); Signal::Reload }
        }
    }
}

/// Resolves once `shutdown` holds `true` (or its sender is gone).
pub async fn shutdown_requested(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Asks for a UDP receive buffer of `bytes` (SO_RCVBUF; SO_RCVBUFFORCE first,
/// which passes `net.core.rmem_max` when running with CAP_NET_ADMIN) so a
/// burst of Access-Requests waits in the kernel instead of being lost.
/// Returns the size the kernel granted (Linux reports twice the usable
/// size), or 0 if it could not be read.
pub fn enlarge_receive_buffer(socket: &impl std::os::fd::AsFd, bytes: usize) -> usize {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt};
    if setsockopt(socket, sockopt::RcvBufForce, &bytes).is_err() {
        let _ = setsockopt(socket, sockopt::RcvBuf, &bytes);
    }
    getsockopt(socket, sockopt::RcvBuf).unwrap_or(0)
}
