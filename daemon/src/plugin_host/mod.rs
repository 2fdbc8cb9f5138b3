//! The plugin host: loads transport and directory plugins and calls them
//! safely. The only module of the daemon with `unsafe` code (the C ABI of
//! `pinwheel-sdk`, through `libloading`).
//!
//! [`load`] resolves a plugin file's path (symlinks followed), opens the
//! resolved file and checks it (a regular file, not writable by group or
//! others, owned by root or the daemon's user, only root when the daemon runs
//! as root) and every folder from it up to `/` (the same rules, so nobody
//! else can swap the file or a folder on its way), loads it and makes sure
//! the path still names the checked file, checks its table (ABI version,
//! size, kind) and builds the plugin from its config JSON. A file replaced on
//! disk while its library is loaded is refused ([`LoadError::Replaced`]):
//! `dlopen` would hand back the old code, so only a restart can apply it. The built-in spool transport is called through the
//! very same table and JSON calls, only without a file.
//!
//! Every call runs on a thread of its own, after taking one of the plugin's
//! `max_concurrent` slots (waiting at most `timeout` for one), and is given
//! `timeout` to answer. A call that does not answer in time is abandoned: the
//! caller gets [`Failure::TimedOut`], and the thread keeps its slot until the
//! plugin returns, so a hung plugin holds at most `max_concurrent` threads.
//! Errors, panics, time-outs and "too busy" all become one
//! [`PluginCallError`] naming the plugin, logged here (never with a message
//! body, a code or a password). The library stays loaded while any handle or
//! call uses it; `shutdown` is called when the last one ends.

mod load;

use std::ffi::c_void;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use pinwheel_sdk::ffi::{Buffer, PluginTableV1, STATUS_PANIC};
use pinwheel_sdk::protocol::{self, Request};
use pinwheel_sdk::PluginKind;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use load::{check_file, check_folder, check_folders, load, FileIdentity, LoadError};

/// Largest answer accepted from a plugin, in bytes (a directory listing
/// thousands of users fits easily).
const MAX_ANSWER_BYTES: usize = 64 << 20;
/// Longest panic text kept from a plugin, in characters.
const MAX_PANIC_CHARS: usize = 300;

/// What to load: one `[[transport]]` or `[[directory]]` entry.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// The entry's `name` (unique per kind).
    pub name: String,
    /// The section the entry is in.
    pub kind: PluginKind,
    /// Where the plugin comes from.
    pub source: crate::config::PluginSource,
    /// Per-call time limit (and longest wait for a free slot).
    pub timeout: Duration,
    /// Most calls at once.
    pub max_concurrent: usize,
    /// The entry's `config` table as JSON.
    pub config: serde_json::Value,
}

/// A loaded plugin. Cheap to clone; the plugin stays loaded while any clone
/// or running call exists.
#[derive(Clone)]
pub struct PluginHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PluginHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHandle")
            .field("name", &self.inner.info.name)
            .field("kind", &self.inner.info.kind)
            .field("file", &self.inner.info.file)
            .finish_non_exhaustive()
    }
}

/// What `pinwheelctl plugins` shows about a plugin.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PluginInfo {
    /// The config entry's name.
    pub name: String,
    /// `transport` or `directory`.
    pub kind: PluginKind,
    /// The implementation's own name (from its table, e.g. `smtp`).
    pub implementation: String,
    /// The implementation's version.
    pub version: String,
    /// The library file, or `built-in spool`.
    pub file: String,
    /// Per-call time limit.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Most calls at once.
    pub max_concurrent: usize,
}

/// A loaded plugin's state. Dropped when the last handle and the last call
/// are gone: then `shutdown` runs, then the library is closed.
struct Inner {
    info: PluginInfo,
    /// The plugin's table: `'static` for the built-in one, otherwise inside
    /// `library`, which lives as long as this struct.
    table: *const PluginTableV1,
    /// The plugin's state, from a successful `init`.
    handle: *mut c_void,
    slots: Arc<Semaphore>,
    /// Declared last: closed after `Drop::drop` has called `shutdown`.
    _library: Option<Arc<load::OpenedLibrary>>,
}

// SAFETY: `table` points to an immutable table (function pointers and
// NUL-terminated strings) that stays valid while `_library` is loaded, which
// is as long as this struct lives. `handle` is only passed to the plugin's
// `call` (documented by the ABI as safe to call from several threads at once:
// the SDK requires plugin types to be `Send + Sync`) and, once, to
// `shutdown` from `Drop`, when no other reference exists.
unsafe impl Send for Inner {}
// SAFETY: as for `Send`: shared access only ever calls `call`, which the ABI
// allows from several threads at once.
unsafe impl Sync for Inner {}

impl Inner {
    fn table(&self) -> &PluginTableV1 {
        // SAFETY: `table` was checked non-null, of this ABI version and at
        // least this size when loaded, and stays valid while the library
        // (owned by `self`) is loaded.
        unsafe { &*self.table }
    }

    /// One synchronous call: request JSON in, (status, answer bytes) out.
    fn raw_call(&self, request: &[u8]) -> (i32, Vec<u8>) {
        let table = self.table();
        let mut out = Buffer::empty();
        // SAFETY: `handle` came from this plugin's successful `init` and is
        // shut down only in `Drop`, which cannot run while `self` is
        // borrowed; `request` is valid for `request.len()` bytes for the
        // whole call; `out` is a writable Buffer slot.
        let status =
            unsafe { (table.call)(self.handle, request.as_ptr(), request.len(), &mut out) };
        // SAFETY: `out` was filled by this plugin's `call` and is freed once.
        let bytes = unsafe { take_buffer(table.free, out) };
        (status, bytes)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.handle.is_null() {
            return;
        }
        let shutdown = self.table().shutdown;
        // SAFETY: `handle` came from `init`; this is the last reference to
        // the plugin (no call is running: each holds an `Arc<Inner>`), and
        // the handle is not used after.
        unsafe { shutdown(self.handle) };
        self.handle = std::ptr::null_mut();
    }
}

/// Copies a plugin's output buffer and gives it back to the plugin.
///
/// # Safety
/// `out` was returned by a call of the plugin whose `free` is given (or is
/// empty) and is not freed elsewhere.
unsafe fn take_buffer(free: pinwheel_sdk::ffi::FreeFn, out: Buffer) -> Vec<u8> {
    let bytes = if out.ptr.is_null() || out.len == 0 {
        Vec::new()
    } else if out.len > MAX_ANSWER_BYTES {
        // Not read: treated as an unreadable answer.
        b"\xff answer too large".to_vec()
    } else {
        // SAFETY: the plugin returned `ptr` valid for `len` bytes until
        // `free` (contract of the function).
        unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec()
    };
    // SAFETY: returned by this plugin, freed exactly once (contract).
    unsafe { free(out) };
    bytes
}

/// What went wrong in a plugin call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The plugin returned an error.
    Plugin(pinwheel_sdk::PluginError),
    /// The plugin panicked (the SDK caught it); the panic text, shortened.
    Panicked(String),
    /// The plugin did not answer within its `timeout`; the call was
    /// abandoned (its thread finishes in the background).
    TimedOut(Duration),
    /// Every slot stayed taken for `timeout`.
    Busy {
        /// The plugin's `max_concurrent`.
        limit: usize,
        /// How long the call waited.
        waited: Duration,
    },
    /// The call could not be made (no thread, unencodable request).
    Host(String),
}

/// A failed plugin call: which plugin, which method, what happened. Its
/// `Display` is one clear sentence for logs and administrators, without a
/// message body, code or password.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind} plugin {name:?} ({implementation}) {method}: {failure}")]
pub struct PluginCallError {
    /// The config entry's name.
    pub name: String,
    /// `transport` or `directory`.
    pub kind: PluginKind,
    /// The implementation's name.
    pub implementation: String,
    /// The method called (`send`, `health`, ...).
    pub method: &'static str,
    /// What happened.
    pub failure: Failure,
}

impl PluginCallError {
    /// The plugin's own error kind, when the plugin returned an error.
    pub fn plugin_error_kind(&self) -> Option<pinwheel_sdk::ErrorKind> {
        match &self.failure {
            Failure::Plugin(e) => Some(e.kind),
            _ => None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Plugin(e) => write!(f, "failed: {e}"),
            Failure::Panicked(text) => write!(f, "panicked: {text}"),
            Failure::TimedOut(t) => write!(
                f,
                "timed out: no answer within {}; the call was abandoned",
                humantime::format_duration(*t)
            ),
            Failure::Busy { limit, waited } => write!(
                f,
                "too busy: all {limit} call slots stayed taken for {}",
                humantime::format_duration(*waited)
            ),
            Failure::Host(text) => write!(f, "could not be called: {text}"),
        }
    }
}

/// Polls a future on this thread until it is ready or `limit` has passed.
/// For the blocking call path: tokio's semaphore and oneshot channel work
/// with any waker, so no runtime is needed (and none is blocked).
fn block_on_timeout<F: Future>(future: F, limit: Duration) -> Option<F::Output> {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let deadline = Instant::now() + limit;
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::park_timeout(deadline - now);
    }
}

type Answer = tokio::sync::oneshot::Receiver<(i32, Vec<u8>)>;

impl PluginHandle {
    fn new(
        info: PluginInfo,
        table: *const PluginTableV1,
        handle: *mut c_void,
        library: Option<Arc<load::OpenedLibrary>>,
    ) -> PluginHandle {
        let slots = Arc::new(Semaphore::new(info.max_concurrent.max(1)));
        PluginHandle {
            inner: Arc::new(Inner {
                info,
                table,
                handle,
                slots,
                _library: library,
            }),
        }
    }

    /// Name, kind, file, version and limits.
    pub fn info(&self) -> &PluginInfo {
        &self.inner.info
    }

    /// The config entry's name.
    pub fn name(&self) -> &str {
        &self.inner.info.name
    }

    /// How many calls are running now (abandoned ones included).
    pub fn running(&self) -> usize {
        self.inner
            .info
            .max_concurrent
            .saturating_sub(self.inner.slots.available_permits())
    }

    fn error(&self, method: &'static str, failure: Failure) -> PluginCallError {
        let kind = match &failure {
            Failure::Plugin(_) => "plugin_error",
            Failure::Panicked(_) => "panic",
            Failure::TimedOut(_) => "timeout",
            Failure::Busy { .. } => "busy",
            Failure::Host(_) => "host",
        };
        crate::metrics::METRICS.plugin_failure(&self.inner.info.name, kind);
        let error = PluginCallError {
            name: self.inner.info.name.clone(),
            kind: self.inner.info.kind,
            implementation: self.inner.info.implementation.clone(),
            method,
            failure,
        };
        tracing::warn!(
            plugin = %self.inner.info.name,
            method,
            "{error}"
        );
        error
    }

    /// Starts the call on a thread of its own that keeps `permit` until the
    /// plugin returns.
    fn start(&self, permit: OwnedSemaphorePermit, request: Vec<u8>) -> Result<Answer, Failure> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let inner = self.inner.clone();
        std::thread::Builder::new()
            .name(format!("plugin {}", self.inner.info.name))
            .spawn(move || {
                let answer = inner.raw_call(&request);
                drop(permit);
                // The caller may have given up (timed out): nothing to do then.
                let _ = tx.send(answer);
            })
            .map_err(|e| Failure::Host(format!("cannot start a thread: {e}")))?;
        Ok(rx)
    }

    fn encode(request: &Request) -> Result<Vec<u8>, Failure> {
        serde_json::to_vec(request)
            .map_err(|e| Failure::Host(format!("the request could not be encoded: {e}")))
    }

    fn busy(&self) -> Failure {
        Failure::Busy {
            limit: self.inner.info.max_concurrent,
            waited: self.inner.info.timeout,
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        method: &'static str,
        outcome: Result<(i32, Vec<u8>), Failure>,
    ) -> Result<T, PluginCallError> {
        let (status, bytes) = outcome.map_err(|f| self.error(method, f))?;
        if status == STATUS_PANIC {
            let text: String = String::from_utf8_lossy(&bytes)
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_PANIC_CHARS)
                .collect();
            return Err(self.error(method, Failure::Panicked(text)));
        }
        protocol::decode_answer(status, &bytes).map_err(|e| self.error(method, Failure::Plugin(e)))
    }

    /// Calls the plugin from a thread that may block (never an async task):
    /// waits up to `timeout` for a slot, then up to `timeout` for the answer.
    ///
    /// Errors: every [`Failure`], already logged.
    pub fn call_blocking<T: serde::de::DeserializeOwned>(
        &self,
        request: &Request,
    ) -> Result<T, PluginCallError> {
        let method = request.method();
        let timeout = self.inner.info.timeout;
        let outcome = Self::encode(request).and_then(|bytes| {
            let permit = block_on_timeout(self.inner.slots.clone().acquire_owned(), timeout)
                .and_then(Result::ok)
                .ok_or_else(|| self.busy())?;
            let answer = self.start(permit, bytes)?;
            match block_on_timeout(answer, timeout) {
                Some(Ok(answer)) => Ok(answer),
                Some(Err(_)) => Err(Failure::Host(
                    "the call's thread ended without answering".into(),
                )),
                None => Err(Failure::TimedOut(timeout)),
            }
        });
        self.decode(method, outcome)
    }

    /// Calls the plugin from an async task: as [`Self::call_blocking`], but
    /// waiting without blocking the runtime.
    ///
    /// Errors: every [`Failure`], already logged.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: &Request,
    ) -> Result<T, PluginCallError> {
        let method = request.method();
        let timeout = self.inner.info.timeout;
        let outcome = async {
            let bytes = Self::encode(request)?;
            let permit = tokio::time::timeout(timeout, self.inner.slots.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or_else(|| self.busy())?;
            let answer = self.start(permit, bytes)?;
            match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(_)) => Err(Failure::Host(
                    "the call's thread ended without answering".into(),
                )),
                Err(_) => Err(Failure::TimedOut(timeout)),
            }
        }
        .await;
        self.decode(method, outcome)
    }

    /// The plugin's health check, from a thread that may block.
    ///
    /// Errors: as [`Self::call_blocking`].
    pub fn health_blocking(&self) -> Result<(), PluginCallError> {
        self.call_blocking(&Request::Health)
    }

    /// The plugin's health check, from an async task.
    ///
    /// Errors: as [`Self::call`].
    pub async fn health(&self) -> Result<(), PluginCallError> {
        self.call(&Request::Health).await
    }
}

/// The built-in plugins: the spool transport, linked into the daemon and
/// called through its exported table like any loaded plugin.
fn builtin_table(name: &str) -> Option<*const PluginTableV1> {
    match name {
        crate::config::BUILTIN_SPOOL => Some(pinwheel_transport_spool::pinwheel_plugin_v1()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PluginSource;
    use pinwheel_sdk::{ErrorKind, Message, MessageKind};

    fn spool(folder: &std::path::Path, timeout: Duration, max: usize) -> PluginHandle {
        load(&PluginSpec {
            name: "mail".into(),
            kind: PluginKind::Transport,
            source: PluginSource::Builtin("spool"),
            timeout,
            max_concurrent: max,
            config: serde_json::json!({ "folder": folder }),
        })
        .unwrap()
    }

    fn message() -> Message {
        let mut m = Message::new(MessageKind::Pin, "alice");
        m.email = Some("alice@example.org".into());
        m.subject = "Your PIN".into();
        m.body = "Your PIN is 4711".into();
        m
    }

    #[test]
    fn builtin_spool_runs_through_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = spool(&dir.path().join("out"), Duration::from_secs(5), 2);
        assert_eq!(plugin.info().implementation, "spool");
        assert_eq!(plugin.info().file, "built-in spool");
        plugin
            .call_blocking::<()>(&Request::Send { message: message() })
            .unwrap();
        plugin.health_blocking().unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("out")).unwrap().count(),
            1
        );
        let mut m = message();
        m.email = None;
        let e = plugin
            .call_blocking::<()>(&Request::Send { message: m })
            .unwrap_err();
        assert_eq!(e.plugin_error_kind(), Some(ErrorKind::NoRecipient));
        let text = e.to_string();
        assert!(text.contains("\"mail\" (spool) send: failed"), "{text}");
        assert!(!text.contains("4711"), "{text}");
        assert_eq!(plugin.running(), 0);
    }

    #[tokio::test]
    async fn async_calls_work_too() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = spool(dir.path(), Duration::from_secs(5), 1);
        plugin
            .call::<()>(&Request::Send { message: message() })
            .await
            .unwrap();
        plugin.health().await.unwrap();
        let e = plugin.call::<bool>(&Request::ListUsers).await.unwrap_err();
        assert_eq!(e.plugin_error_kind(), Some(ErrorKind::Unsupported));
    }

    #[test]
    fn busy_plugins_refuse_after_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = spool(dir.path(), Duration::from_millis(200), 1);
        // Take the only slot, as a hung call would.
        let permit = plugin.inner.slots.clone().try_acquire_owned().unwrap();
        let started = Instant::now();
        let e = plugin.health_blocking().unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(190));
        assert!(matches!(e.failure, Failure::Busy { limit: 1, .. }), "{e}");
        assert!(e.to_string().contains("too busy"), "{e}");
        drop(permit);
        plugin.health_blocking().unwrap();
    }

    #[test]
    fn block_on_timeout_gives_up() {
        let sem = Arc::new(Semaphore::new(0));
        assert!(block_on_timeout(sem.clone().acquire_owned(), Duration::from_millis(50)).is_none());
        sem.add_permits(1);
        assert!(block_on_timeout(sem.acquire_owned(), Duration::from_millis(50)).is_some());
    }

    #[test]
    fn failures_read_clearly() {
        let e = PluginCallError {
            name: "sms".into(),
            kind: PluginKind::Transport,
            implementation: "http".into(),
            method: "send",
            failure: Failure::TimedOut(Duration::from_secs(1)),
        };
        assert_eq!(
            e.to_string(),
            "transport plugin \"sms\" (http) send: timed out: no answer within 1s; the call was abandoned"
        );
    }
}
