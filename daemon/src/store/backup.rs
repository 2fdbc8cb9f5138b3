//! Backup and restore of the database file.
//!
//! [`backup`] copies a live database with SQLite's online backup API from a
//! connection of its own: in WAL mode that connection only reads a snapshot,
//! so decisions keep committing while it runs. The copy is written into a
//! private folder with a random name beside the destination (a file we
//! create with `O_EXCL|O_NOFOLLOW`, mode 0600, so nothing planted there is
//! written through), checked with `PRAGMA integrity_check`, synced and
//! renamed into place, so a reader of the destination sees either the old
//! file or the whole new one. A destination that is not a regular file is
//! refused.
//!
//! [`restore`] is for a stopped daemon: it checks the backup
//! ([`check_backup`]: a Pinwheel database of a known schema version whose
//! sealed values open with the configured master key), moves the current
//! database aside as `pinwheel.db.before-restore-<UTC time>` (with its WAL
//! folded in first; never over an older one) and puts a copy of the backup
//! in its place; migrations run when the daemon next starts. Neither
//! touches the master key, which is not in the database: a backup is
//! usable only with the same key file.

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
/// exists; an existing regular file there is replaced atomically). Runs on
/// the calling thread; takes about as long as reading the file once.
///
/// The copy is first written into a private folder (mode 0700, random
/// name, made with `mkdir`, which never follows a symlink) beside `dest`,
/// in a file created there with `O_CREAT|O_EXCL|O_NOFOLLOW` (mode 0600),
/// so nothing planted in the destination folder (a symlink at a guessable
/// temporary name) is written through. It is then synced and renamed over
/// `dest`; a `dest` that exists and is not a regular file (device node,
/// folder, symlink) is refused rather than replaced.
///
/// Errors: `dest` relative, its folder missing, `dest` not a regular file,
/// SQLite or file errors (naming the file), or a copy that fails its
/// integrity check.
pub fn backup(db: &Path, dest: &Path) -> Result<BackupInfo, BackupError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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
    refuse_non_regular(dest)?;
    // A private folder with an unguessable name: mkdir fails on anything
    // already there (a planted symlink included) instead of following it.
    let mut private_name = std::ffi::OsString::from(".");
    private_name.push(name);
    private_name.push(format!(
        ".backup-{}",
        hex::encode(crate::secrets::random_bytes(12))
    ));
    let private = folder.join(private_name);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(io("cannot create", &private))?;
    let temp = private.join("copy.db");
    let result = (|| {
        // Created 0600 by us, never through a symlink, before SQLite writes
        // a byte to it.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&temp)
            .map_err(io("cannot create", &temp))?;
        let pages = copy_into(db, &temp)?;
        check_integrity(&temp)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)
            .map_err(io("cannot reopen", &temp))?;
        file.sync_all().map_err(io("cannot sync", &temp))?;
        let meta = file.metadata().map_err(io("cannot read", &temp))?;
        if !meta.file_type().is_file() {
            return Err(BackupError::Refused(format!(
                "{} is not a regular file",
                temp.display()
            )));
        }
        // Checked again just before the rename (which replaces a directory
        // entry and never writes through it).
        refuse_non_regular(dest)?;
        std::fs::rename(&temp, dest).map_err(io("cannot rename into place", dest))?;
        if let Ok(dir) = std::fs::File::open(folder) {
            let _ = dir.sync_all();
        }
        Ok(BackupInfo {
            path: dest.to_path_buf(),
            bytes: meta.len(),
            pages,
        })
    })();
    let _ = std::fs::remove_dir_all(&private);
    result
}

/// Refuses a `dest` that exists and is not a regular file (a device node,
/// a folder, a symlink): a backup replaces only a previous backup.
fn refuse_non_regular(dest: &Path) -> Result<(), BackupError> {
    match std::fs::symlink_metadata(dest) {
        Ok(meta) if !meta.file_type().is_file() => Err(BackupError::Refused(format!(
            "refusing to replace {}: not a regular file",
            dest.display()
        ))),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("cannot inspect", dest)(e)),
    }
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
    /// Where the database it replaced was moved, if there was one
    /// (`DB.before-restore-<UTC time>`, never an existing file).
    pub previous: Option<PathBuf>,
}

/// A master key a restore may check the backup's sealed values against,
/// with the file it came from (named in messages).
#[derive(Debug, Clone)]
pub struct KeyCandidate {
    /// The key file.
    pub path: PathBuf,
    /// Its key.
    pub key: crate::secrets::MasterKey,
}

/// Most sealed values [`check_backup`] tries per table.
const KEY_SAMPLES: i64 = 16;

/// Checks that `from` is a Pinwheel database this binary can run on and
/// whose secrets open with one of `keys`: not empty, passes
/// `PRAGMA integrity_check`, has a schema version (`PRAGMA user_version`)
/// in 1..=the migrations this binary knows, has the `users` and `devices`
/// tables, and, if it holds sealed PINs or device secrets, at least one of
/// (up to 16 per table) opens with one of `keys`. A backup without sealed
/// values passes whatever the keys.
///
/// Errors: [`BackupError::Refused`] saying what is wrong (no secret in the
/// text), [`BackupError::Damaged`], or SQLite/file errors naming the file.
pub fn check_backup(from: &Path, keys: &[KeyCandidate]) -> Result<(), BackupError> {
    let meta = std::fs::metadata(from).map_err(io("cannot read", from))?;
    if !meta.is_file() {
        return Err(BackupError::Refused(format!(
            "backup file {} is not a regular file",
            from.display()
        )));
    }
    if meta.len() == 0 {
        return Err(BackupError::Refused(format!(
            "backup file {} is empty: not a Pinwheel database",
            from.display()
        )));
    }
    check_integrity(from)?;
    let conn = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite("cannot open", from))?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sqlite("cannot read the schema version of", from))?;
    let known = super::MIGRATIONS.len() as i64;
    if version < 1 {
        return Err(BackupError::Refused(format!(
            "{} is not a Pinwheel database (no schema version)",
            from.display()
        )));
    }
    if version > known {
        return Err(BackupError::Refused(format!(
            "{} has schema version {version}, newer than this pinwheeld knows ({known}): restore it with the release that made it",
            from.display()
        )));
    }
    for table in ["users", "devices"] {
        let found: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .map_err(sqlite("cannot read the schema of", from))?;
        if found == 0 {
            return Err(BackupError::Refused(format!(
                "{} is not a Pinwheel database (no {table} table)",
                from.display()
            )));
        }
    }
    use crate::secrets::Purpose;
    let mut samples: Vec<(Vec<Purpose>, String, Vec<u8>)> = Vec::new();
    let mut collect = |sql: &str, purposes: &[Purpose]| -> Result<(), BackupError> {
        let mut stmt = conn
            .prepare(sql)
            .map_err(sqlite("cannot read the sealed values of", from))?;
        let rows = stmt
            .query_map([KEY_SAMPLES], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(sqlite("cannot read the sealed values of", from))?;
        for row in rows {
            let (owner, sealed) = row.map_err(sqlite("cannot read the sealed values of", from))?;
            samples.push((purposes.to_vec(), owner, sealed));
        }
        Ok(())
    };
    collect(
        "SELECT name, pin_sealed FROM users WHERE pin_sealed IS NOT NULL LIMIT ?1",
        &[Purpose::Pin],
    )?;
    collect(
        "SELECT u.name, d.seed_sealed FROM devices d JOIN users u ON u.id = d.user_id LIMIT ?1",
        &[Purpose::DeviceSeed, Purpose::OathSecret],
    )?;
    if samples.is_empty() {
        return Ok(());
    }
    let opens = samples.iter().any(|(purposes, owner, sealed)| {
        keys.iter().any(|k| {
            purposes
                .iter()
                .any(|p| k.key.open(*p, owner, sealed).is_ok())
        })
    });
    if opens {
        return Ok(());
    }
    let tried = if keys.is_empty() {
        "no master key file found".to_string()
    } else {
        let names: Vec<String> = keys.iter().map(|k| k.path.display().to_string()).collect();
        format!(
            "none of its sealed PINs or devices opens with {}",
            names.join(" or ")
        )
    };
    Err(BackupError::Refused(format!(
        "this backup was made with another master key ({tried}); restore the master key file that was backed up with it"
    )))
}

/// `DB.before-restore-<UTC time>` (e.g. `pinwheel.db.before-restore-2026-11-29T162120Z`),
/// with `-2`, `-3`, ... appended if that name is taken: never an existing file.
fn aside_name(db: &Path) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "");
    let mut base = db.as_os_str().to_owned();
    base.push(format!(".before-restore-{stamp}"));
    let mut candidate = PathBuf::from(&base);
    let mut n = 2;
    while std::fs::symlink_metadata(&candidate).is_ok() {
        let mut next = base.clone();
        next.push(format!("-{n}"));
        candidate = PathBuf::from(next);
        n += 1;
    }
    candidate
}

/// Replaces the database `db` by a copy of the backup `from`, for a
/// stopped daemon. Before touching anything, [`check_backup`] checks that
/// `from` is a Pinwheel database (not empty, intact, a known schema
/// version, users and devices tables) whose sealed values open with one of
/// `keys`. Then folds the current database's WAL into it (which fails if a
/// daemon still has it open) and moves it to `DB.before-restore-<UTC time>`
/// (a new name each time, so repeated restores never lose it); removes
/// stale `-wal`/`-shm` files; gives the new file the old one's owner (so a
/// root restore stays readable by the daemon's user) and mode 0600.
///
/// Errors: the backup is missing, empty, damaged, not a Pinwheel database,
/// from a newer release or sealed with another master key; the current
/// database is in use; file or SQLite errors (each naming the file).
pub fn restore(db: &Path, from: &Path, keys: &[KeyCandidate]) -> Result<Restored, BackupError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    if !from.is_file() {
        return Err(BackupError::Refused(format!(
            "backup file {} does not exist",
            from.display()
        )));
    }
    check_backup(from, keys)?;
    let folder = db.parent().unwrap_or(Path::new("."));
    let mut temp = db.as_os_str().to_owned();
    temp.push(".restore-tmp");
    let temp = PathBuf::from(temp);
    let sidecar = |suffix: &str| {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    // The copy, 0600, synced, beside the database (same file system); a
    // leftover of an interrupted restore is removed (unlink never follows a
    // symlink) and the new one never opened through a symlink.
    match std::fs::remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("cannot remove", &temp)(e)),
    }
    {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
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
        let aside = aside_name(db);
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
        let e = restore(&db, &dest, &[]).unwrap_err();
        assert!(e.to_string().contains("is in use"), "{e}");
        store
            .with(|c| {
                c.execute_batch("INSERT INTO t VALUES (3);")?;
                Ok(())
            })
            .unwrap();
        drop(store);
        let done = restore(&db, &dest, &[]).unwrap();
        let previous = done.previous.unwrap();
        assert!(previous
            .to_string_lossy()
            .contains("pinwheel.db.before-restore-"));
        let conn = Connection::open(&db).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        let damaged = dir.path().join("damaged.db");
        std::fs::write(&damaged, b"not a database at all, just some bytes").unwrap();
        assert!(restore(&db, &damaged, &[]).is_err());
        // A second restore keeps the first one's set-aside file.
        let again = restore(&db, &dest, &[]).unwrap().previous.unwrap();
        assert_ne!(again, previous);
        assert!(previous.exists() && again.exists());
        assert!(backup(&db, Path::new("relative.db")).is_err());
    }
}
