//! Loading one plugin: file checks, `dlopen`, the table checks, `init`.
//! Each refusal is a [`LoadError`] naming the file and saying why.

use std::ffi::{c_void, CStr};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

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
    /// The plugin file was replaced on disk while its library is loaded:
    /// `dlopen` would return the old code, so only a restart applies it.
    #[error("plugin {file} changed on disk since it was loaded; a reload cannot replace loaded plugin code: restart pinwheeld (systemctl restart pinwheeld)")]
    Replaced {
        /// The plugin file.
        file: String,
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

/// Checks that `uid` may own a plugin file or one of its folders: root, or
/// the daemon's own user (`euid`); only root when the daemon runs as root.
fn check_owner(uid: u32, euid: u32) -> Result<(), String> {
    if uid == 0 || uid == euid {
        Ok(())
    } else if euid == 0 {
        Err(format!(
            "owned by uid {uid}, not root, and the daemon runs as root; run chown root: on it"
        ))
    } else {
        Err(format!(
            "owned by uid {uid}, neither root nor the daemon's user (uid {euid}); run chown root: on it"
        ))
    }
}

/// Checks a plugin file's metadata (of the file itself, symlinks followed):
/// a regular file, not writable by group or others, and owned by root or the
/// daemon's user (`euid`); only by root when the daemon runs as root
/// (`euid` 0). Returns why not.
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
    check_owner(meta.uid(), euid)
}

/// Checks one folder on the way from a plugin file up to `/`: a folder (not
/// a symlink), owned by root or the daemon's user (`euid`; only root when
/// the daemon runs as root), and not writable by group or others, since
/// whoever may write it could swap the entry below it. A sticky folder
/// (`/tmp`, mode 1777) is accepted when its entry on the way (owned by
/// `entry_uid`) has a trusted owner: then nobody else may rename or
/// replace it. `folder` is only used to name it. Returns why not.
pub fn check_folder(
    folder: &Path,
    meta: &std::fs::Metadata,
    entry_uid: u32,
    euid: u32,
) -> Result<(), String> {
    let name = folder.display();
    if !meta.is_dir() {
        return Err(format!("{name} is not a folder"));
    }
    check_owner(meta.uid(), euid).map_err(|e| format!("folder {name} is {e}"))?;
    let mode = meta.permissions().mode() & 0o7777;
    let sticky = mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !(sticky && check_owner(entry_uid, euid).is_ok()) {
        return Err(format!(
            "folder {name} is writable by group or others (mode {mode:04o}); run chmod go-w on it"
        ));
    }
    Ok(())
}

/// Checks every folder from the one holding `resolved` (a path without
/// symlinks, from [`std::fs::canonicalize`]) up to `/` with
/// [`check_folder`]; `file_uid` owns the file itself. Returns why not,
/// naming the first folder that fails.
pub fn check_folders(resolved: &Path, file_uid: u32, euid: u32) -> Result<(), String> {
    let mut entry_uid = file_uid;
    for folder in resolved.ancestors().skip(1) {
        if folder.as_os_str().is_empty() {
            break;
        }
        let meta = std::fs::symlink_metadata(folder)
            .map_err(|e| format!("cannot read its folder {}: {e}", folder.display()))?;
        check_folder(folder, &meta, entry_uid, euid)?;
        entry_uid = meta.uid();
    }
    Ok(())
}

/// What tells a replaced plugin file from the one loaded: device, inode,
/// size and modification time (nanoseconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl FileIdentity {
    /// The identity of the file `meta` describes.
    pub fn of(meta: &std::fs::Metadata) -> FileIdentity {
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }

    /// Same file (device and inode), whatever its size or time.
    fn same_file(&self, other: &FileIdentity) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// A library opened from a plugin file, with the resolved path and the
/// identity of the file it was opened from. Closed (`dlclose`) when the
/// last plugin handle using it is gone.
pub(super) struct OpenedLibrary {
    /// Kept for its `Drop` (`dlclose`).
    _library: libloading::Library,
    path: PathBuf,
    identity: FileIdentity,
}

impl std::fmt::Debug for OpenedLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedLibrary")
            .field("path", &self.path)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// The plugin libraries open in this process, by resolved path: `dlopen`
/// of a path already open returns the library already loaded, whatever the
/// file holds now, so a load must know what is open.
static OPENED: Mutex<Vec<Weak<OpenedLibrary>>> = Mutex::new(Vec::new());

/// The identities of the libraries open from `path`, forgetting closed ones.
fn opened_from(opened: &mut Vec<Weak<OpenedLibrary>>, path: &Path) -> Vec<FileIdentity> {
    opened.retain(|weak| weak.strong_count() > 0);
    opened
        .iter()
        .filter_map(Weak::upgrade)
        .filter(|lib| lib.path == path)
        .map(|lib| lib.identity)
        .collect()
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
///
/// The path is resolved first (symlinks followed) and the resolved file is
/// opened once; the checks run on that open file and on every folder from
/// it up to `/`. After `dlopen` (of the resolved path) the path must still
/// name the file that was checked, or the library is refused.
fn open_file(
    path: &Path,
    file: &str,
) -> Result<(*const PluginTableV1, Arc<OpenedLibrary>), LoadError> {
    let euid = nix::unistd::geteuid().as_raw();
    let resolved =
        std::fs::canonicalize(path).map_err(|e| refused(file, format!("cannot read it: {e}")))?;
    // Errors name the link and what it resolves to.
    let label = if resolved == path {
        file.to_string()
    } else {
        format!("{file} (-> {})", resolved.display())
    };
    let file = label.as_str();
    // Kept open until the library is loaded: the checks below are of this
    // very file, whatever happens to the path meanwhile. O_NOFOLLOW: the
    // resolved path has no symlink left; O_NONBLOCK: a FIFO does not hang.
    let opened = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&resolved)
        .map_err(|e| refused(file, format!("cannot open it: {e}")))?;
    let meta = opened
        .metadata()
        .map_err(|e| refused(file, format!("cannot read it: {e}")))?;
    check_file(&meta, euid).map_err(|reason| refused(file, reason))?;
    check_folders(&resolved, meta.uid(), euid).map_err(|reason| refused(file, reason))?;
    let identity = FileIdentity::of(&meta);
    // Held while opening: two loads of one path never race each other.
    let mut registry = OPENED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if opened_from(&mut registry, &resolved)
        .iter()
        .any(|loaded| *loaded != identity)
    {
        return Err(LoadError::Replaced {
            file: file.to_string(),
        });
    }
    let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL;
    // SAFETY: opening a library runs its initialisers. The file passed the
    // checks above (a regular file that only root, or the daemon's own
    // user, can change, in folders nobody else can write), which is the
    // trust the administrator gave it by naming it in the config.
    let library = unsafe { libloading::os::unix::Library::open(Some(&resolved), flags) }
        .map_err(|e| refused(file, format!("cannot be loaded: {e}")))?;
    // The path must still name the checked file: otherwise another file
    // may have been loaded in its place.
    let after = std::fs::metadata(&resolved).map(|m| FileIdentity::of(&m));
    if !after.is_ok_and(|after| after.same_file(&identity)) {
        drop(library);
        return Err(refused(
            file,
            format!(
                "plugin file {} changed while it was being loaded",
                resolved.display()
            ),
        ));
    }
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
    let library = Arc::new(OpenedLibrary {
        _library: libloading::Library::from(library),
        path: resolved,
        identity,
    });
    registry.push(Arc::downgrade(&library));
    drop(opened);
    Ok((table, library))
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

    fn mkdir(path: &Path, mode: u32) {
        std::fs::create_dir_all(path).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn folder_checks_name_the_folder_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let sub = dir.path().join("plugins");
        let check = |mode: u32, entry_uid: u32, euid: u32| {
            mkdir(&sub, mode);
            check_folder(&sub, &std::fs::metadata(&sub).unwrap(), entry_uid, euid)
        };
        assert!(check(0o755, me, me).is_ok());
        let e = check(0o777, me, me).unwrap_err();
        assert_eq!(
            e,
            format!(
                "folder {} is writable by group or others (mode 0777); run chmod go-w on it",
                sub.display()
            )
        );
        // Group-writable is as bad as others-writable.
        let e = check(0o775, me, me).unwrap_err();
        assert!(e.contains("writable by group or others (mode 0775)"), "{e}");
        // A sticky folder (like /tmp) is fine when the entry on the way has
        // a trusted owner, and refused when anyone else owns it.
        assert!(check(0o1777, me, me).is_ok());
        assert!(check(0o1777, 0, me).is_ok());
        let e = check(0o1777, 4242, me).unwrap_err();
        assert!(e.contains("(mode 1777)"), "{e}");
        let file = dir.path().join("libx.so");
        std::fs::write(&file, b"x").unwrap();
        let e = check_folder(&file, &std::fs::metadata(&file).unwrap(), me, me).unwrap_err();
        assert!(e.ends_with("libx.so is not a folder"), "{e}");
        mkdir(&sub, 0o755);
        let meta = std::fs::metadata(&sub).unwrap();
        if me == 0 {
            // Owned by root: fine for any daemon user; owned by another
            // user: refused for a root daemon.
            assert!(check_folder(&sub, &meta, 0, 4242).is_ok());
            nix::unistd::chown(&sub, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
            let meta = std::fs::metadata(&sub).unwrap();
            let e = check_folder(&sub, &meta, 0, 0).unwrap_err();
            assert!(
                e.contains(&format!(
                    "folder {} is owned by uid 65534, not root",
                    sub.display()
                )),
                "{e}"
            );
        } else {
            let e = check_folder(&sub, &meta, 0, 0).unwrap_err();
            assert!(
                e.contains(&format!("is owned by uid {me}, not root")),
                "{e}"
            );
            let e = check_folder(&sub, &meta, 0, me + 1).unwrap_err();
            assert!(e.contains("neither root nor the daemon's user"), "{e}");
        }
    }

    #[test]
    fn the_whole_folder_chain_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let (a, b) = (root.join("a"), root.join("a/b"));
        mkdir(&b, 0o755);
        let file = b.join("libp.so");
        std::fs::write(&file, b"x").unwrap();
        assert!(check_folders(&file, me, me).is_ok());
        // A writable folder two levels up could swap `b` for a folder of
        // its own: refused, naming that folder.
        for mode in [0o777, 0o775, 0o757] {
            mkdir(&a, mode);
            let e = check_folders(&file, me, me).unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "folder {} is writable by group or others",
                    a.display()
                )),
                "{e}"
            );
        }
        mkdir(&a, 0o755);
        mkdir(&b, 0o770);
        let e = check_folders(&file, me, me).unwrap_err();
        assert!(e.starts_with(&format!("folder {} ", b.display())), "{e}");
    }

    #[test]
    fn a_symlink_is_checked_where_it_leads() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let (good, open) = (root.join("plugins"), root.join("ww"));
        mkdir(&good, 0o755);
        mkdir(&open, 0o777);
        let target = open.join("libww.so");
        std::fs::write(&target, b"not an ELF file").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = good.join("linkww.so");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let spec = PluginSpec {
            name: "mail".into(),
            kind: PluginKind::Transport,
            source: PluginSource::File(link.clone()),
            timeout: std::time::Duration::from_secs(1),
            max_concurrent: 1,
            config: serde_json::json!({}),
        };
        let e = load(&spec).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "plugin {} (-> {}) refused: folder {} is writable by group or others (mode 0777); run chmod go-w on it",
                link.display(),
                target.display(),
                open.display()
            )
        );
        // Moved to a safe folder, the same link passes the checks (and is
        // then refused as what it is: not a library).
        mkdir(&open, 0o755);
        let e = load(&spec).unwrap_err().to_string();
        assert!(e.contains("refused: cannot be loaded"), "{e}");
    }

    #[test]
    fn file_identity_tells_a_replaced_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libv.so");
        std::fs::write(&path, b"one").unwrap();
        let first = FileIdentity::of(&std::fs::metadata(&path).unwrap());
        assert_eq!(first, FileIdentity::of(&std::fs::metadata(&path).unwrap()));
        // Replaced the way `install` and `cp --remove-destination` do it.
        std::fs::remove_file(&path).unwrap();
        let keep = dir.path().join("keep");
        std::fs::write(&keep, b"hold the inode").unwrap();
        std::fs::write(&path, b"the second one").unwrap();
        let second = FileIdentity::of(&std::fs::metadata(&path).unwrap());
        assert_ne!(first, second);
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
