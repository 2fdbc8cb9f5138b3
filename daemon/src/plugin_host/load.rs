//! Loading one plugin: file checks, `dlopen`, the table checks, `init`.
//! Each refusal is a [`LoadError`] naming the file and saying why.

use std::ffi::{c_void, CStr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use pinwheel_sdk::ffi::{Buffer, PluginTableV1, ENTRY_SYMBOL, STATUS_OK, STATUS_PANIC};
use pinwheel_sdk::{PluginKind, ABI_VERSION};

use super::{builtin_table, take_buffer, PluginHandle, PluginInfo, PluginSpec};
use crate::config::PluginSource;

/// Longest name or version string read from a plugin table.
const MAX_LABEL_CHARS: usize = 64;

/// Why a plugin was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file or its table failed a check.
    #[error("plugin {file} refused: {reason}")]
    Refused {
        /// The plugin file (or `built-in NAME`).
        file: String,
        /// Why.
        reason: String,
    },
    /// The plugin refused its config (or panicked building itself).
    #[error("plugin {file} ({implementation}) could not start: {reason}")]
    Init {
        /// The plugin file.
        file: String,
        /// The implementation's name.
        implementation: String,
        /// What the plugin said.
        reason: String,
    },
}

fn refused(file: &str, reason: impl Into<String>) -> LoadError {
    LoadError::Refused {
        file: file.to_string(),
        reason: reason.into(),
    }
}

/// Checks a plugin file's metadata (of the file itself, symlinks followed):
/// a regular file, not writable by group or others, and owned by root when
/// the daemon runs as root (`euid` 0). Returns why not.
pub fn check_file(meta: &std::fs::Metadata, euid: u32) -> Result<(), String> {
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "writable by group or others (mode {mode:04o}); run chmod go-w on it"
        ));
    }
    if euid == 0 && meta.uid() != 0 {
        return Err(format!(
            "owned by uid {}, not root, and the daemon runs as root; run chown root: on it",
            meta.uid()
        ));
    }
    Ok(())
}

/// Checks the folder holding a plugin file: not writable by others (anyone
/// could swap the file) and owned by root when the daemon runs as root.
pub fn check_folder(meta: &std::fs::Metadata, euid: u32) -> Result<(), String> {
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o002 != 0 {
        return Err(format!(
            "its folder is writable by others (mode {mode:04o}); run chmod o-w on it"
        ));
    }
    if euid == 0 && meta.uid() != 0 {
        return Err(format!(
            "its folder is owned by uid {}, not root, and the daemon runs as root",
            meta.uid()
        ));
    }
    Ok(())
}

/// Reads a NUL-terminated label from a plugin table, shortened and without
/// control characters.
///
/// # Safety
/// `ptr` is null or points to a NUL-terminated string that lives as long as
/// the library.
unsafe fn label(ptr: *const std::ffi::c_char) -> String {
    if ptr.is_null() {
        return "?".into();
    }
    // SAFETY: non-null and NUL-terminated (contract).
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_string_lossy()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_LABEL_CHARS)
        .collect()
}

/// Loads, checks and initialises the plugin of `spec`.
///
/// Errors: [`LoadError::Refused`] for a file that fails the checks, cannot
/// be opened, has no entry symbol, or whose table has another ABI version,
/// is too small or is of the other kind; [`LoadError::Init`] when the
/// plugin refuses its config.
pub fn load(spec: &PluginSpec) -> Result<PluginHandle, LoadError> {
    let file = spec.source.to_string();
    let (table, library) = match &spec.source {
        PluginSource::Builtin(name) => (
            builtin_table(name).ok_or_else(|| refused(&file, "no such built-in plugin"))?,
            None,
        ),
        PluginSource::File(path) => {
            let (table, library) = open_file(path, &file)?;
            (table, Some(library))
        }
    };
    if table.is_null() {
        return Err(refused(&file, "its entry point returned no table"));
    }
    // Only the two leading fields are common to every ABI version: read
    // them before trusting the rest of the table.
    // SAFETY: `table` is non-null and points to a plugin table, whose first
    // two fields (abi_version, size) are u32s in every version; the library
    // is loaded (`library` is alive in this scope).
    let (abi, size) = unsafe {
        (
            std::ptr::addr_of!((*table).abi_version).read(),
            std::ptr::addr_of!((*table).size).read(),
        )
    };
    if abi != ABI_VERSION {
        return Err(refused(
            &file,
            format!("ABI version {abi}, this daemon speaks {ABI_VERSION}; rebuild the plugin against this pinwheel-sdk"),
        ));
    }
    let needed = std::mem::size_of::<PluginTableV1>();
    if (size as usize) < needed {
        return Err(refused(
            &file,
            format!("its plugin table is {size} bytes, ABI version {ABI_VERSION} needs at least {needed}"),
        ));
    }
    // SAFETY: the table is of this ABI version and at least this size, and
    // lives as long as `library` (kept in the handle below).
    let t = unsafe { &*table };
    match PluginKind::from_u32(t.kind) {
        Some(kind) if kind == spec.kind => {}
        Some(kind) => {
            return Err(refused(
                &file,
                format!(
                    "it is a {kind} plugin, but [[{}]] {} needs a {}",
                    spec.kind, spec.name, spec.kind
                ),
            ))
        }
        None => return Err(refused(&file, format!("unknown plugin kind {}", t.kind))),
    }
    // SAFETY: name and version are null or NUL-terminated strings owned by
    // the table (ABI contract).
    let (implementation, version) = unsafe { (label(t.name), label(t.version)) };
    let config = serde_json::to_vec(&spec.config).map_err(|e| LoadError::Init {
        file: file.clone(),
        implementation: implementation.clone(),
        reason: format!("config could not be encoded: {e}"),
    })?;
    // `init` runs on a thread of its own, bounded by the entry's timeout: a
    // plugin that hangs while starting must not hang the daemon's start or a
    // reload. Function pointers and the config bytes are all it needs.
    let (init, free) = (t.init, t.free);
    let (answer_tx, answer_rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("plugin-init-{}", spec.name))
        .spawn(move || {
            let mut handle: *mut c_void = std::ptr::null_mut();
            let mut out = Buffer::empty();
            // SAFETY: `config` is valid for its length during the call;
            // `handle` and `out` are writable slots; the library stays
            // loaded while this thread may run (it is leaked on a time-out).
            let status = unsafe { init(config.as_ptr(), config.len(), &mut handle, &mut out) };
            // SAFETY: `out` was filled by this plugin's `init` and is freed once.
            let bytes = unsafe { take_buffer(free, out) };
            // The handle crosses threads as an address; if nobody waits any
            // more the plugin state is leaked with its library.
            let _ = answer_tx.send((status, handle as usize, bytes));
        });
    let init_error = |reason: String| LoadError::Init {
        file: file.clone(),
        implementation: implementation.clone(),
        reason,
    };
    if let Err(e) = spawned {
        return Err(init_error(format!("no thread for init: {e}")));
    }
    let (status, handle, bytes) = match answer_rx.recv_timeout(spec.timeout) {
        Ok((status, address, bytes)) => (status, address as *mut c_void, bytes),
        Err(_) => {
            // The init thread may still run the library's code: never unload it.
            std::mem::forget(library);
            return Err(init_error(format!(
                "init did not finish within {} (the entry's timeout)",
                humantime::format_duration(spec.timeout)
            )));
        }
    };
    if status != STATUS_OK || handle.is_null() {
        let reason = if status == STATUS_PANIC {
            format!("init panicked: {}", String::from_utf8_lossy(&bytes))
        } else {
            match serde_json::from_slice::<pinwheel_sdk::PluginError>(&bytes) {
                Ok(e) => e.to_string(),
                Err(_) if handle.is_null() && status == STATUS_OK => {
                    "init returned no handle".into()
                }
                Err(_) => format!("init failed with status {status}"),
            }
        };
        return Err(LoadError::Init {
            file,
            implementation,
            reason,
        });
    }
    let info = PluginInfo {
        name: spec.name.clone(),
        kind: spec.kind,
        implementation,
        version,
        file,
        timeout: spec.timeout,
        max_concurrent: spec.max_concurrent,
    };
    Ok(PluginHandle::new(info, table, handle, library))
}

/// Checks and opens a plugin file; returns its table and the library.
fn open_file(
    path: &Path,
    file: &str,
) -> Result<(*const PluginTableV1, libloading::Library), LoadError> {
    let euid = nix::unistd::geteuid().as_raw();
    let meta =
        std::fs::metadata(path).map_err(|e| refused(file, format!("cannot read it: {e}")))?;
    check_file(&meta, euid).map_err(|reason| refused(file, reason))?;
    if let Some(folder) = path.parent() {
        let meta = std::fs::metadata(folder)
            .map_err(|e| refused(file, format!("cannot read its folder: {e}")))?;
        check_folder(&meta, euid).map_err(|reason| refused(file, reason))?;
    }
    let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL;
    // SAFETY: opening a library runs its initialisers. The file passed the
    // checks above (a regular file that only root, or the daemon's own
    // user, can change), which is the trust the administrator gave it by
    // naming it in the config.
    let library = unsafe { libloading::os::unix::Library::open(Some(path), flags) }
        .map_err(|e| refused(file, format!("cannot be loaded: {e}")))?;
    type Entry = extern "C" fn() -> *const PluginTableV1;
    // SAFETY: the symbol is declared by pinwheel-sdk's export macro with
    // exactly this signature; a library with another symbol of that name is
    // not a Pinwheel plugin, which the ABI check below catches in practice.
    let entry: Entry = unsafe { library.get::<Entry>(ENTRY_SYMBOL) }
        .map(|symbol| *symbol)
        .map_err(|_| {
            refused(
                file,
                "no pinwheel_plugin_v1 entry point: not a Pinwheel plugin (built without pinwheel_sdk::export_plugin!?)",
            )
        })?;
    let table = entry();
    Ok((table, libloading::Library::from(library)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_with_mode(dir: &Path, mode: u32) -> std::fs::Metadata {
        let path = dir.join(format!("lib{mode:o}.so"));
        std::fs::write(&path, b"x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        std::fs::metadata(&path).unwrap()
    }

    #[test]
    fn file_checks_name_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        assert!(check_file(&meta_with_mode(dir.path(), 0o644), me).is_ok());
        assert!(check_file(&meta_with_mode(dir.path(), 0o755), me).is_ok());
        let e = check_file(&meta_with_mode(dir.path(), 0o666), me).unwrap_err();
        assert!(e.contains("writable by group or others (mode 0666)"), "{e}");
        let e = check_file(&meta_with_mode(dir.path(), 0o664), me).unwrap_err();
        assert!(e.contains("0664"), "{e}");
        let e = check_file(&std::fs::metadata(dir.path()).unwrap(), me).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let owned = meta_with_mode(dir.path(), 0o644);
        if owned.uid() != 0 {
            // Running as root, a file of another user is refused.
            let e = check_file(&owned, 0).unwrap_err();
            assert!(e.contains("not root"), "{e}");
        } else {
            assert!(check_file(&owned, 0).is_ok());
        }
    }

    #[test]
    fn folder_checks_name_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let sub = dir.path().join("plugins");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(check_folder(&std::fs::metadata(&sub).unwrap(), me).is_ok());
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_folder(&std::fs::metadata(&sub).unwrap(), me).unwrap_err();
        assert!(e.contains("folder is writable by others"), "{e}");
    }

    #[test]
    fn missing_and_non_library_files_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let spec = |path: &Path| PluginSpec {
            name: "mail".into(),
            kind: PluginKind::Transport,
            source: PluginSource::File(path.to_path_buf()),
            timeout: std::time::Duration::from_secs(1),
            max_concurrent: 1,
            config: serde_json::json!({}),
        };
        let missing = dir.path().join("libnone.so");
        let e = load(&spec(&missing)).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "plugin {} refused: cannot read it",
                missing.display()
            )),
            "{e}"
        );
        let junk = dir.path().join("libjunk.so");
        std::fs::write(&junk, b"not an ELF file").unwrap();
        std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(&spec(&junk)).unwrap_err().to_string();
        assert!(e.contains("refused: cannot be loaded"), "{e}");
    }

    #[test]
    fn builtin_spool_checks_kind_and_config() {
        let spec = PluginSpec {
            name: "corp".into(),
            kind: PluginKind::Directory,
            source: PluginSource::Builtin("spool"),
            timeout: std::time::Duration::from_secs(1),
            max_concurrent: 1,
            config: serde_json::json!({"folder": "/tmp/x"}),
        };
        let e = load(&spec).unwrap_err().to_string();
        assert!(
            e.contains("it is a transport plugin, but [[directory]] corp needs a directory"),
            "{e}"
        );
        let spec = PluginSpec {
            kind: PluginKind::Transport,
            config: serde_json::json!({"typo": 1}),
            ..spec
        };
        let e = load(&spec).unwrap_err().to_string();
        assert!(
            e.contains("plugin built-in spool (spool) could not start"),
            "{e}"
        );
        assert!(e.contains("typo"), "{e}");
    }
}
