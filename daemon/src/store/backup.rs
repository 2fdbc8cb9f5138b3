//! Backup and restore of the database file.
//!
//! [`backup`] copies a live database with SQLite's online backup API from a
//! connection of its own: in WAL mode that connection only reads a snapshot,
//! so decisions keep committing while it runs. The copy is written under a
//! temporary name in the destination's folder (mode 0600), checked with
//! `PRAGMA integrity_check`, synced and renamed into place, so a reader of
//! the destination sees either the old file or the whole new one.
//!
//! [`restore`] is for a stopped daemon: it checks the backup, moves the
//! current database aside as `pinwheel.db.before-restore` (with its WAL
//! folded in first) and puts a copy of the backup in its place; migrations
//! run when the daemon next starts. Neither touches the master key, which is
//! not in the database: a backup is usable only with the same key file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// Why a backup or restore failed. Messages name the file and the step.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A SQLite call failed.
    #[error("{what} {path}: {source}")]
    Sqlite {
        /// What was being done.
        what: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The error.
        source: rusqlite::Error,
    },
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `PRAGMA integrity_check` did not answer `ok`.
    #[error("{path} is damaged (integrity_check: {report})")]
    Damaged {
        /// The file checked.
        path: PathBuf,
        /// The first line SQLite reported.
        report: String,
    },
    /// The request itself is wrong (relative path, missing folder, daemon running, ...).
    #[error("{0}")]
    Refused(String),
}

fn sqlite(what: &'static str, path: &Path) -> impl FnOnce(rusqlite::Error) -> BackupError {
    let path = path.to_path_buf();
    move |source| BackupError::Sqlite { what, path, source }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |source| BackupError::Io { what, path, source }
}

/// Most times a backup step may find the source busy before giving up.
const BUSY_RETRIES: u32 = 100;

/// What a finished backup wrote.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BackupInfo {
    /// The file written (absolute).
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Pages copied.
    pub pages: i32,
}

/// Copies the live database `db` to `dest` (an absolute path whose folder
/// exists; an existing file there is replaced atomically). Runs on the
/// calling thread; takes about as long as reading the file once.
///
/// Errors: `dest` relative or its folder missing, SQLite or file errors
/// (naming the file), or a copy that fails its integrity check.
pub fn backup(db: &Path, dest: &Path) -> Result<BackupInfo, BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    if !dest.is_absolute() {
        return Err(BackupError::Refused(format!(
            "backup destination {} must be an absolute path",
            dest.display()
        )));
    }
    let (Some(folder), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Err(BackupError::Refused(format!(
            "backup destination {} is not a file path",
            dest.display()
        )));
    };
    if !folder.is_dir() {
        return Err(BackupError::Refused(format!(
            "backup destination folder {} does not exist",
            folder.display()
        )));
    }
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp = folder.join(temp_name);
    // Created 0600 before SQLite writes a byte to it.
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(io("cannot create", &temp))?;
    let result = copy_into(db, &temp).and_then(|pages| {
        check_integrity(&temp)?;
        std::fs::File::open(&temp)
            .and_then(|f| f.sync_all())
            .map_err(io("cannot sync", &temp))?;
        std::fs::rename(&temp, dest).map_err(io("cannot rename into place", dest))?;
        if let Ok(dir) = std::fs::File::open(folder) {
            let _ = dir.sync_all();
        }
        let bytes = std::fs::metadata(dest)
            .map_err(io("cannot read", dest))?
            .len();
        Ok(BackupInfo {
            path: dest.to_path_buf(),
            bytes,
            pages,
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Copies every page of `db` into the (empty) file `temp` in one step, from
/// a read-only connection of its own (one consistent snapshot).
fn copy_into(db: &Path, temp: &Path) -> Result<i32, BackupError> {
    let source = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite("cannot open the database", db))?;
    source
        .busy_timeout(Duration::from_secs(5))
        .map_err(sqlite("cannot configure", db))?;
    let mut target = Connection::open(temp).map_err(sqlite("cannot open", temp))?;
    let pages = {
        let copy = rusqlite::backup::Backup::new(&source, &mut target)
            .map_err(sqlite("cannot start the backup of", db))?;
        let mut busy = 0;
        loop {
            // -1: every page in one step, so the copy is one snapshot even
            // while the daemon keeps committing.
            match copy.step(-1).map_err(sqlite("backup failed reading", db))? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                _ => {
                    busy += 1;
                    if busy > BUSY_RETRIES {
                        return Err(BackupError::Refused(format!(
                            "{} stayed locked; try again",
                            db.display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        copy.progress().pagecount
    };
    // The copy keeps the source's journal mode; as a standalone file it is
    // simpler with a rollback journal (no -wal beside it).
    let _ = target.pragma_update(None, "journal_mode", "DELETE");
    target
        .close()
        .map_err(|(_, e)| sqlite("cannot close", temp)(e))?;
    Ok(pages)
}

/// Runs `PRAGMA integrity_check` on the file at `path` (read-only).
///
/// Errors: the file cannot be opened as a database, or the check reports a
/// problem ([`BackupError::Damaged`] with its first line).
pub fn check_integrity(path: &Path) -> Result<(), BackupError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite("cannot open", path))?;
    let report: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(sqlite("cannot check", path))?;
    if report == "ok" {
        Ok(())
    } else {
        Err(BackupError::Damaged {
            path: path.to_path_buf(),
            report,
        })
    }
}

/// What [`restore`] did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The database file now in place.
    pub database: PathBuf,
    /// Where the database it replaced was moved, if there was one.
    pub previous: Option<PathBuf>,
}

/// Replaces the database `db` by a copy of the backup `from`, for a
/// stopped daemon. Checks the backup's integrity first; folds the current
/// database's WAL into it (which fails if a daemon still has it open) and
/// moves it to `DB.before-restore` (replacing an older one); removes stale
/// `-wal`/`-shm` files; gives the new file the old one's owner (so a root
/// restore stays readable by the daemon's user) and mode 0600.
///
/// Errors: the backup is missing or damaged, the current database is in
/// use, file or SQLite errors (each naming the file).
pub fn restore(db: &Path, from: &Path) -> Result<Restored, BackupError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    if !from.is_file() {
        return Err(BackupError::Refused(format!(
            "backup file {} does not exist",
            from.display()
        )));
    }
    check_integrity(from)?;
    let folder = db.parent().unwrap_or(Path::new("."));
    let mut temp = db.as_os_str().to_owned();
    temp.push(".restore-tmp");
    let temp = PathBuf::from(temp);
    let sidecar = |suffix: &str| {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    // The copy, 0600, synced, beside the database (same file system).
    {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io("cannot create", &temp))?;
        let mut input = std::fs::File::open(from).map_err(io("cannot read", from))?;
        std::io::copy(&mut input, &mut out).map_err(io("cannot write", &temp))?;
        out.sync_all().map_err(io("cannot sync", &temp))?;
    }
    let owner = std::fs::metadata(db)
        .or_else(|_| std::fs::metadata(folder))
        .ok();
    let mut previous = None;
    if db.exists() {
        // Fold the WAL into the file; a daemon still using it makes this busy.
        // Exclusive locking mode takes the file's exclusive lock, which any
        // other open connection (WAL readers hold a shared lock) prevents.
        let conn = Connection::open(db).map_err(sqlite("cannot open", db))?;
        let _ = conn.busy_timeout(Duration::from_millis(500));
        let in_use = conn
            .pragma_update(None, "locking_mode", "EXCLUSIVE")
            .and_then(|()| conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;"))
            .and_then(|()| {
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .map(|busy| busy != 0)
            .unwrap_or(true);
        drop(conn);
        if in_use {
            let _ = std::fs::remove_file(&temp);
            return Err(BackupError::Refused(format!(
                "{} is in use: stop pinwheeld first (systemctl stop pinwheeld)",
                db.display()
            )));
        }
        let aside = sidecar(".before-restore");
        std::fs::rename(db, &aside).map_err(io("cannot move aside", db))?;
        previous = Some(aside);
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        let stale = sidecar(suffix);
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("cannot remove", &stale)(e)),
        }
    }
    if let Some(meta) = owner {
        // Only root may give files away; as the daemon's own user this is
        // a no-op that may fail harmlessly.
        let _ = nix::unistd::chown(
            &temp,
            Some(nix::unistd::Uid::from_raw(meta.uid())),
            Some(nix::unistd::Gid::from_raw(meta.gid())),
        );
    }
    std::fs::rename(&temp, db).map_err(io("cannot rename into place", db))?;
    if let Ok(dir) = std::fs::File::open(folder) {
        let _ = dir.sync_all();
    }
    Ok(Restored {
        database: db.to_path_buf(),
        previous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_of_a_live_store_restores_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("pinwheel.db");
        let store = crate::store::Store::open(&db).unwrap();
        store
            .with(|c| {
                c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);")?;
                Ok(())
            })
            .unwrap();
        let dest = dir.path().join("copy.db");
        let info = backup(&db, &dest).unwrap();
        assert!(info.bytes > 0 && info.pages > 0);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Refused while the store is open.
        let e = restore(&db, &dest).unwrap_err();
        assert!(e.to_string().contains("is in use"), "{e}");
        store
            .with(|c| {
                c.execute_batch("INSERT INTO t VALUES (3);")?;
                Ok(())
            })
            .unwrap();
        drop(store);
        let done = restore(&db, &dest).unwrap();
        assert!(done
            .previous
            .unwrap()
            .ends_with("pinwheel.db.before-restore"));
        let conn = Connection::open(&db).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        let damaged = dir.path().join("damaged.db");
        std::fs::write(&damaged, b"not a database at all, just some bytes").unwrap();
        assert!(restore(&db, &damaged).is_err());
        assert!(backup(&db, Path::new("relative.db")).is_err());
    }
}
