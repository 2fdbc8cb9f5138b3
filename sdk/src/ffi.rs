//! The C ABI between the daemon and a plugin, version 1. The only module of
//! the SDK with `unsafe` code.
//!
//! A plugin library exports one symbol:
//!
//! ```c
//! const PluginTableV1 *pinwheel_plugin_v1(void);
//! ```
//!
//! returning a table that lives as long as the library is loaded. The host
//! checks `abi_version == ABI_VERSION` and `size >= sizeof(PluginTableV1)`
//! before touching anything else, then calls:
//!
//! - `init(config, config_len, &handle, &out)`: `config` is the plugin's
//!   config table as JSON (UTF-8, not NUL-terminated). On [`STATUS_OK`] the
//!   handle is set and `out` is empty; otherwise `out` holds the error.
//! - `call(handle, request, request_len, &out)`: `request` is a
//!   [`crate::protocol::Request`] as JSON; `out` receives the answer JSON
//!   (see [`crate::protocol`]). May be called from several threads at once.
//! - `free(out)`: gives a returned buffer back to the plugin's allocator.
//!   Each side frees only what it allocated: the host owns the bytes it
//!   passes in, the plugin owns every [`Buffer`] it returns until `free`.
//! - `shutdown(handle)`: drops the plugin's state; the handle is dead after.
//!
//! Every function catches panics and reports them as [`STATUS_PANIC`] with
//! the panic message in `out`; nothing unwinds across the boundary.
//!
//! Plugin authors do not use this module directly: [`crate::export_plugin!`]
//! generates the entry symbol.

use std::ffi::{c_char, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::protocol::Request;
use crate::{Directory, PluginError, PluginKind, Transport, ABI_VERSION};

/// The call succeeded; the output buffer holds the answer JSON.
pub const STATUS_OK: i32 = 0;
/// The plugin returned an error; the output buffer holds a
/// [`PluginError`] as JSON.
pub const STATUS_ERROR: i32 = 1;
/// The plugin panicked; the output buffer holds the panic message (UTF-8).
pub const STATUS_PANIC: i32 = 2;

/// Name of the entry symbol, NUL-terminated, for `dlsym`.
pub const ENTRY_SYMBOL: &[u8] = b"pinwheel_plugin_v1\0";

/// Bytes allocated by the plugin and handed to the host, who must give them
/// back with the table's `free`. Empty when `ptr` is null.
#[repr(C)]
#[derive(Debug)]
pub struct Buffer {
    /// First byte, or null for an empty buffer.
    pub ptr: *mut u8,
    /// Length in bytes.
    pub len: usize,
}

impl Buffer {
    /// An empty buffer (null, 0), for the host to pass as an output slot.
    pub const fn empty() -> Buffer {
        Buffer {
            ptr: std::ptr::null_mut(),
            len: 0,
        }
    }

    fn from_vec(bytes: Vec<u8>) -> Buffer {
        if bytes.is_empty() {
            return Buffer::empty();
        }
        let boxed = bytes.into_boxed_slice();
        let len = boxed.len();
        Buffer {
            ptr: Box::into_raw(boxed).cast::<u8>(),
            len,
        }
    }
}

/// `init`: builds the plugin from its config JSON.
pub type InitFn = unsafe extern "C" fn(
    config: *const u8,
    config_len: usize,
    handle: *mut *mut c_void,
    out: *mut Buffer,
) -> i32;
/// `call`: answers one request JSON.
pub type CallFn = unsafe extern "C" fn(
    handle: *mut c_void,
    request: *const u8,
    request_len: usize,
    out: *mut Buffer,
) -> i32;
/// `free`: releases a buffer the plugin returned.
pub type FreeFn = unsafe extern "C" fn(buffer: Buffer);
/// `shutdown`: drops the plugin's state.
pub type ShutdownFn = unsafe extern "C" fn(handle: *mut c_void);

/// The table a plugin exports through `pinwheel_plugin_v1`. Fields are only
/// ever added at the end; `size` tells the host how many there are.
#[repr(C)]
pub struct PluginTableV1 {
    /// [`ABI_VERSION`] the plugin was built with.
    pub abi_version: u32,
    /// `size_of::<PluginTableV1>()` in the plugin's build, in bytes.
    pub size: u32,
    /// [`PluginKind`] as a number (1 transport, 2 directory).
    pub kind: u32,
    /// The plugin's name, NUL-terminated ASCII.
    pub name: *const c_char,
    /// The plugin's version, NUL-terminated ASCII.
    pub version: *const c_char,
    /// See the module documentation.
    pub init: InitFn,
    /// See the module documentation.
    pub call: CallFn,
    /// See the module documentation.
    pub free: FreeFn,
    /// See the module documentation.
    pub shutdown: ShutdownFn,
}

/// A plugin type as the ABI sees it: a kind and one dispatch function.
/// Implemented by [`AsTransport`] and [`AsDirectory`]; not by plugin types.
pub trait Exported: Send + Sync + Sized + 'static {
    /// Transport or directory.
    const KIND: PluginKind;
    /// The plugin's name.
    const NAME: &'static str;
    /// The plugin's version.
    const VERSION: &'static str;
    /// Builds the plugin.
    fn create(config: serde_json::Value) -> Result<Self, PluginError>;
    /// Answers one request with the method's result as JSON.
    fn dispatch(&self, request: Request) -> Result<serde_json::Value, PluginError>;
}

/// Exports a [`Transport`] (used by [`crate::export_plugin!`]).
pub struct AsTransport<T>(T);
/// Exports a [`Directory`] (used by [`crate::export_plugin!`]).
pub struct AsDirectory<D>(D);

fn to_json<T: serde::Serialize>(value: T) -> Result<serde_json::Value, PluginError> {
    serde_json::to_value(value)
        .map_err(|e| PluginError::internal(format!("answer could not be encoded: {e}")))
}

impl<T: Transport> Exported for AsTransport<T> {
    const KIND: PluginKind = PluginKind::Transport;
    const NAME: &'static str = T::NAME;
    const VERSION: &'static str = T::VERSION;

    fn create(config: serde_json::Value) -> Result<Self, PluginError> {
        T::new(config).map(AsTransport)
    }

    fn dispatch(&self, request: Request) -> Result<serde_json::Value, PluginError> {
        match request {
            Request::Send { message } => self.0.send(&message).and_then(|()| to_json(())),
            Request::Health => self.0.health().and_then(|()| to_json(())),
            other => Err(PluginError::unsupported(format!(
                "a transport does not answer {}",
                other.method()
            ))),
        }
    }
}

impl<D: Directory> Exported for AsDirectory<D> {
    const KIND: PluginKind = PluginKind::Directory;
    const NAME: &'static str = D::NAME;
    const VERSION: &'static str = D::VERSION;

    fn create(config: serde_json::Value) -> Result<Self, PluginError> {
        D::new(config).map(AsDirectory)
    }

    fn dispatch(&self, request: Request) -> Result<serde_json::Value, PluginError> {
        match request {
            Request::Lookup { username } => self.0.lookup(&username).and_then(to_json),
            // An empty password is an anonymous bind to many LDAP servers:
            // refused here, whatever the plugin would do.
            Request::CheckPassword { password, .. } if password.is_empty() => to_json(false),
            Request::CheckPassword { username, password } => self
                .0
                .check_password(&username, &password)
                .and_then(to_json),
            Request::ListUsers => self.0.list_users().and_then(to_json),
            Request::Health => self.0.health().and_then(|()| to_json(())),
            other => Err(PluginError::unsupported(format!(
                "a directory does not answer {}",
                other.method()
            ))),
        }
    }
}

/// The table and the strings it points into, kept together in the plugin's
/// `static` by [`crate::export_plugin!`].
pub struct TableHolder {
    table: PluginTableV1,
    _name: CString,
    _version: CString,
}

// SAFETY: the table's pointers point into `_name` and `_version`, owned by
// the same holder and never changed after construction; the function pointers
// are plain code addresses. Sharing or moving the holder across threads is
// therefore as safe as sharing two immutable `CString`s.
unsafe impl Sync for TableHolder {}
// SAFETY: as for `Sync`: nothing in the holder is tied to a thread.
unsafe impl Send for TableHolder {}

fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', " ")).unwrap_or_default()
}

impl TableHolder {
    /// The table for plugin type `E`.
    pub fn new<E: Exported>() -> TableHolder {
        Self::with_abi::<E>(ABI_VERSION)
    }

    /// The table for plugin type `E` claiming ABI version `abi_version`.
    /// Only for testing the host's refusal of other versions.
    #[doc(hidden)]
    pub fn with_abi<E: Exported>(abi_version: u32) -> TableHolder {
        let name = c_string(E::NAME);
        let version = c_string(E::VERSION);
        TableHolder {
            table: PluginTableV1 {
                abi_version,
                size: std::mem::size_of::<PluginTableV1>() as u32,
                kind: E::KIND as u32,
                // The CStrings' heap buffers do not move when the holder moves.
                name: name.as_ptr(),
                version: version.as_ptr(),
                init: init::<E>,
                call: call::<E>,
                free: free_buffer,
                shutdown: shutdown::<E>,
            },
            _name: name,
            _version: version,
        }
    }

    /// A pointer to the table, valid as long as the holder lives.
    pub fn table(&self) -> *const PluginTableV1 {
        &self.table
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> Vec<u8> {
    let text = if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_string()
    };
    text.into_bytes()
}

fn error_json(error: &PluginError) -> Vec<u8> {
    serde_json::to_vec(error)
        .unwrap_or_else(|_| b"{\"kind\":\"internal\",\"message\":\"?\"}".to_vec())
}

/// Writes `bytes` into the host's output slot, if it gave one.
///
/// # Safety
/// `out` is null or valid for one `Buffer` write.
unsafe fn put(out: *mut Buffer, bytes: Vec<u8>) {
    if out.is_null() {
        return;
    }
    // SAFETY: `out` is non-null and, by this function's contract, points to
    // writable memory for one Buffer owned by the host.
    unsafe { out.write(Buffer::from_vec(bytes)) };
}

/// Borrows the host's input bytes.
///
/// # Safety
/// `ptr` is null (then `len` is ignored) or valid for reads of `len` bytes
/// for the duration of the call.
unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: non-null, and the host guarantees `len` readable bytes that
    // stay alive and unchanged until the call returns.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// `init` for plugin type `E`.
///
/// # Safety
/// `config` is readable for `config_len` bytes; `handle` and `out` are null
/// or writable.
pub unsafe extern "C" fn init<E: Exported>(
    config: *const u8,
    config_len: usize,
    handle: *mut *mut c_void,
    out: *mut Buffer,
) -> i32 {
    // SAFETY: forwarded from this function's contract.
    let bytes = unsafe { input(config, config_len) };
    let outcome = catch_unwind(|| {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| PluginError::config(format!("config is not JSON: {e}")))?;
        E::create(value)
    });
    match outcome {
        Ok(Ok(plugin)) => {
            let raw = Box::into_raw(Box::new(plugin)).cast::<c_void>();
            if handle.is_null() {
                // Nowhere to put it: drop it again rather than leak it.
                // SAFETY: `raw` came from Box::into_raw just above.
                drop(unsafe { Box::from_raw(raw.cast::<E>()) });
                // SAFETY: `out` is null or writable (contract).
                unsafe { put(out, error_json(&PluginError::internal("no handle slot"))) };
                return STATUS_ERROR;
            }
            // SAFETY: `handle` is non-null and writable (contract).
            unsafe { handle.write(raw) };
            // SAFETY: as above.
            unsafe { put(out, Vec::new()) };
            STATUS_OK
        }
        Ok(Err(e)) => {
            // SAFETY: `out` is null or writable (contract).
            unsafe { put(out, error_json(&e)) };
            STATUS_ERROR
        }
        Err(panic) => {
            // SAFETY: `out` is null or writable (contract).
            unsafe { put(out, panic_message(panic)) };
            STATUS_PANIC
        }
    }
}

/// `call` for plugin type `E`.
///
/// # Safety
/// `handle` came from a successful `init::<E>` and was not shut down;
/// `request` is readable for `request_len` bytes; `out` is null or writable.
pub unsafe extern "C" fn call<E: Exported>(
    handle: *mut c_void,
    request: *const u8,
    request_len: usize,
    out: *mut Buffer,
) -> i32 {
    if handle.is_null() {
        // SAFETY: `out` is null or writable (contract).
        unsafe { put(out, error_json(&PluginError::internal("null handle"))) };
        return STATUS_ERROR;
    }
    // SAFETY: a live handle from init::<E> points to a boxed E; calls only
    // take shared references, and E is Sync, so concurrent calls are fine.
    let plugin: &E = unsafe { &*handle.cast::<E>() };
    // SAFETY: forwarded from this function's contract.
    let bytes = unsafe { input(request, request_len) };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let request: Request = serde_json::from_slice(bytes)
            .map_err(|e| PluginError::internal(format!("request could not be read: {e}")))?;
        let answer = plugin.dispatch(request)?;
        serde_json::to_vec(&answer)
            .map_err(|e| PluginError::internal(format!("answer could not be encoded: {e}")))
    }));
    let (status, bytes) = match outcome {
        Ok(Ok(json)) => (STATUS_OK, json),
        Ok(Err(e)) => (STATUS_ERROR, error_json(&e)),
        Err(panic) => (STATUS_PANIC, panic_message(panic)),
    };
    // SAFETY: `out` is null or writable (contract).
    unsafe { put(out, bytes) };
    status
}

/// `free`: releases a buffer returned by `init` or `call`.
///
/// # Safety
/// `buffer` was returned by this plugin and not freed before.
pub unsafe extern "C" fn free_buffer(buffer: Buffer) {
    if buffer.ptr.is_null() {
        return;
    }
    let slice = std::ptr::slice_from_raw_parts_mut(buffer.ptr, buffer.len);
    // SAFETY: non-null buffers are made by Buffer::from_vec from a
    // Box<[u8]> of exactly `len` bytes, and each is freed once (contract).
    drop(unsafe { Box::from_raw(slice) });
}

/// `shutdown` for plugin type `E`.
///
/// # Safety
/// `handle` came from `init::<E>`, is not used after, and no call on it is
/// running.
pub unsafe extern "C" fn shutdown<E: Exported>(handle: *mut c_void) {
    if handle.is_null() {
        return;
    }
    // SAFETY: by contract the handle is a Box<E> from init::<E>, dropped once.
    let plugin = unsafe { Box::from_raw(handle.cast::<E>()) };
    // A panicking Drop must not unwind into the host.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(plugin)));
}

/// Exports a plugin type: `export_plugin!(Transport, MyType)` or
/// `export_plugin!(Directory, MyType)`. Call it once per library, at the
/// crate root. It defines the entry symbol `pinwheel_plugin_v1`.
#[macro_export]
macro_rules! export_plugin {
    (Transport, $plugin:ty) => {
        $crate::export_plugin!(@table $crate::ffi::AsTransport<$plugin>);
    };
    (Directory, $plugin:ty) => {
        $crate::export_plugin!(@table $crate::ffi::AsDirectory<$plugin>);
    };
    // Hidden: a table claiming another ABI version, to test the host.
    (@abi $abi:expr, Transport, $plugin:ty) => {
        $crate::export_plugin!(@table $crate::ffi::AsTransport<$plugin>, $abi);
    };
    (@table $exported:ty) => {
        $crate::export_plugin!(@table $exported, $crate::ABI_VERSION);
    };
    (@table $exported:ty, $abi:expr) => {
        /// The Pinwheel plugin entry point (ABI version 1).
        #[unsafe(no_mangle)]
        pub extern "C" fn pinwheel_plugin_v1() -> *const $crate::ffi::PluginTableV1 {
            static TABLE: ::std::sync::OnceLock<$crate::ffi::TableHolder> =
                ::std::sync::OnceLock::new();
            TABLE
                .get_or_init(|| $crate::ffi::TableHolder::with_abi::<$exported>($abi))
                .table()
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DirectoryUser, ErrorKind, Message, MessageKind, Plugin};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counter {
        sent: AtomicUsize,
    }

    impl Plugin for Counter {
        const NAME: &'static str = "counter";
        const VERSION: &'static str = "0.1.0";
        fn new(config: serde_json::Value) -> Result<Self, PluginError> {
            if config.get("fail").is_some() {
                return Err(PluginError::config("fail was set"));
            }
            if config.get("panic").is_some() {
                panic!("asked to panic in new");
            }
            Ok(Counter {
                sent: AtomicUsize::new(0),
            })
        }
    }

    impl Transport for Counter {
        fn send(&self, message: &Message) -> Result<(), PluginError> {
            if message.username == "panic" {
                panic!("asked to panic in send");
            }
            if message.email.is_none() {
                return Err(PluginError::no_recipient("no email"));
            }
            self.sent.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    struct OneUser;

    impl Plugin for OneUser {
        const NAME: &'static str = "one-user";
        const VERSION: &'static str = "0.2.0";
        fn new(_: serde_json::Value) -> Result<Self, PluginError> {
            Ok(OneUser)
        }
    }

    impl Directory for OneUser {
        fn lookup(&self, username: &str) -> Result<Option<DirectoryUser>, PluginError> {
            Ok((username == "alice").then(|| DirectoryUser::new("alice")))
        }
        fn check_password(&self, _: &str, _: &str) -> Result<bool, PluginError> {
            // Accepts everything, to show the SDK refuses empty passwords.
            Ok(true)
        }
        fn list_users(&self) -> Result<Vec<DirectoryUser>, PluginError> {
            Ok(vec![DirectoryUser::new("alice")])
        }
    }

    crate::export_plugin!(Transport, Counter);

    /// Calls through the table the way the host does.
    struct Host {
        table: &'static PluginTableV1,
        handle: *mut c_void,
    }

    fn take(table: &PluginTableV1, buffer: Buffer) -> Vec<u8> {
        let bytes = if buffer.ptr.is_null() {
            Vec::new()
        } else {
            // SAFETY (test): the plugin returned this buffer of `len` bytes.
            unsafe { std::slice::from_raw_parts(buffer.ptr, buffer.len) }.to_vec()
        };
        // SAFETY (test): returned by this plugin, freed once.
        unsafe { (table.free)(buffer) };
        bytes
    }

    impl Host {
        fn open(table: &'static PluginTableV1, config: &str) -> Result<Host, (i32, Vec<u8>)> {
            let mut handle = std::ptr::null_mut();
            let mut out = Buffer::empty();
            // SAFETY (test): valid config bytes and output slots.
            let status =
                unsafe { (table.init)(config.as_ptr(), config.len(), &mut handle, &mut out) };
            let bytes = take(table, out);
            if status == STATUS_OK {
                Ok(Host { table, handle })
            } else {
                Err((status, bytes))
            }
        }

        fn call<T: serde::de::DeserializeOwned>(
            &self,
            request: &Request,
        ) -> Result<T, PluginError> {
            let json = serde_json::to_vec(request).unwrap();
            let mut out = Buffer::empty();
            // SAFETY (test): live handle, valid request bytes.
            let status =
                unsafe { (self.table.call)(self.handle, json.as_ptr(), json.len(), &mut out) };
            crate::protocol::decode_answer(status, &take(self.table, out))
        }
    }

    impl Drop for Host {
        fn drop(&mut self) {
            // SAFETY (test): handle from init, not used after.
            unsafe { (self.table.shutdown)(self.handle) };
        }
    }

    fn table_of<E: Exported>() -> &'static PluginTableV1 {
        let holder: &'static TableHolder = Box::leak(Box::new(TableHolder::new::<E>()));
        // SAFETY (test): the holder is leaked, so the table lives forever.
        unsafe { &*holder.table() }
    }

    #[test]
    fn exported_entry_symbol_describes_the_plugin() {
        // SAFETY (test): the macro's table lives in a static.
        let table = unsafe { &*pinwheel_plugin_v1() };
        assert_eq!(table.abi_version, ABI_VERSION);
        assert_eq!(table.size as usize, std::mem::size_of::<PluginTableV1>());
        assert_eq!(
            PluginKind::from_u32(table.kind),
            Some(PluginKind::Transport)
        );
        // SAFETY (test): NUL-terminated strings owned by the static table.
        let name = unsafe { std::ffi::CStr::from_ptr(table.name) };
        assert_eq!(name.to_str().unwrap(), "counter");
        // SAFETY (test): as above.
        let version = unsafe { std::ffi::CStr::from_ptr(table.version) };
        assert_eq!(version.to_str().unwrap(), "0.1.0");
    }

    #[test]
    fn transport_calls_errors_and_panics_cross_as_json() {
        // SAFETY (test): the macro's table lives in a static.
        let table = unsafe { &*pinwheel_plugin_v1() };
        let host = Host::open(table, "{}").unwrap();
        let mut message = Message::new(MessageKind::Pin, "alice");
        message.email = Some("alice@example.org".into());
        host.call::<()>(&Request::Send {
            message: message.clone(),
        })
        .unwrap();
        message.email = None;
        let e = host
            .call::<()>(&Request::Send {
                message: message.clone(),
            })
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::NoRecipient);
        message.username = "panic".into();
        message.email = Some("x@example.org".into());
        let e = host.call::<()>(&Request::Send { message }).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(e.message.contains("asked to panic in send"), "{e}");
        // The plugin keeps working after a panic.
        let e = host.call::<()>(&Request::ListUsers).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        host.call::<()>(&Request::Health).unwrap();
        // SAFETY (test): the handle points to the boxed AsTransport<Counter>.
        let sent = unsafe { &*host.handle.cast::<AsTransport<Counter>>() }
            .0
            .sent
            .load(Ordering::SeqCst);
        assert_eq!(sent, 1);
    }

    #[test]
    fn init_failures_are_reported_not_unwound() {
        // SAFETY (test): the macro's table lives in a static.
        let table = unsafe { &*pinwheel_plugin_v1() };
        let (status, bytes) = Host::open(table, r#"{"fail": 1}"#).err().unwrap();
        assert_eq!(status, STATUS_ERROR);
        let e: PluginError = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(e.kind, ErrorKind::Config);
        let (status, bytes) = Host::open(table, r#"{"panic": 1}"#).err().unwrap();
        assert_eq!(status, STATUS_PANIC);
        assert!(String::from_utf8_lossy(&bytes).contains("asked to panic in new"));
        let (status, bytes) = Host::open(table, "not json").err().unwrap();
        assert_eq!(status, STATUS_ERROR);
        assert!(String::from_utf8_lossy(&bytes).contains("config is not JSON"));
    }

    #[test]
    fn directory_never_sees_an_empty_password() {
        let table = table_of::<AsDirectory<OneUser>>();
        assert_eq!(
            PluginKind::from_u32(table.kind),
            Some(PluginKind::Directory)
        );
        let host = Host::open(table, "null").unwrap();
        let user: Option<DirectoryUser> = host
            .call(&Request::Lookup {
                username: "alice".into(),
            })
            .unwrap();
        assert_eq!(user.unwrap().username, "alice");
        let nobody: Option<DirectoryUser> = host
            .call(&Request::Lookup {
                username: "mallory".into(),
            })
            .unwrap();
        assert!(nobody.is_none());
        let empty: bool = host
            .call(&Request::CheckPassword {
                username: "alice".into(),
                password: String::new(),
            })
            .unwrap();
        assert!(!empty);
        let given: bool = host
            .call(&Request::CheckPassword {
                username: "alice".into(),
                password: "pw".into(),
            })
            .unwrap();
        assert!(given);
        let all: Vec<DirectoryUser> = host.call(&Request::ListUsers).unwrap();
        assert_eq!(all.len(), 1);
        let e = host
            .call::<()>(&Request::Send {
                message: Message::new(MessageKind::Pin, "alice"),
            })
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
    }

    #[test]
    fn garbage_requests_and_null_handles_are_errors() {
        let table = table_of::<AsDirectory<OneUser>>();
        let host = Host::open(table, "{}").unwrap();
        let mut out = Buffer::empty();
        let junk = b"\xff\x00{";
        // SAFETY (test): live handle, valid bytes.
        let status = unsafe { (table.call)(host.handle, junk.as_ptr(), junk.len(), &mut out) };
        assert_eq!(status, STATUS_ERROR);
        let e: PluginError = serde_json::from_slice(&take(table, out)).unwrap();
        assert!(e.message.contains("request could not be read"));
        let mut out = Buffer::empty();
        // SAFETY (test): a null handle is checked by call.
        let status = unsafe { (table.call)(std::ptr::null_mut(), junk.as_ptr(), 3, &mut out) };
        assert_eq!(status, STATUS_ERROR);
        take(table, out);
    }
}
