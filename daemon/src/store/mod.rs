//! The SQLite store: one database file in the state directory, WAL mode,
//! schema migrations, and one module per table family ([`users`],
//! [`devices`], [`provision_codes`]).
//!
//! It owns the schema and every SQL statement; callers get typed rows. It
//! never sees a PIN, seed, code or token in clear: those arrive sealed or
//! hashed by [`crate::secrets`]. All access goes through [`Store::with`] or
//! [`Store::transaction`], which run on the calling thread: async callers wrap
//! them in `spawn_blocking`.

pub mod audit;
pub mod challenges;
pub mod devices;
pub mod provision_codes;
pub mod users;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, Transaction, TransactionBehavior};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer Pinwheel.
    #[error("database schema version {found} is newer than this pinwheeld supports ({supported}); upgrade pinwheeld")]
    TooNew {
        /// Version found in the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
    /// A name that must be unique already exists.
    #[error("{0} already exists")]
    Duplicate(String),
    /// A row that must exist does not.
    #[error("{0} not found")]
    NotFound(String),
    /// A stored value could not be decoded (corrupted row).
    #[error("corrupted row: {0}")]
    Corrupt(String),
}

/// Migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: users, devices, provision codes.
    "CREATE TABLE users (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        directory   TEXT NOT NULL DEFAULT 'local',
        email       TEXT,
        phone       TEXT,
        enabled     INTEGER NOT NULL DEFAULT 1,
        pin_sealed  BLOB,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE TABLE devices (
        id           TEXT PRIMARY KEY,
        user_id      INTEGER NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
        name         TEXT NOT NULL,
        token_hash   BLOB NOT NULL UNIQUE,
        seed_sealed  BLOB NOT NULL,
        alphabet     TEXT NOT NULL,
        batch        INTEGER NOT NULL,
        used         BLOB NOT NULL,
        created_at   INTEGER NOT NULL
    );
    CREATE TABLE provision_codes (
        user_id     INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        code_hash   BLOB NOT NULL,
        expires_at  INTEGER NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE provision_requests (
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        at          INTEGER NOT NULL
    );
    CREATE INDEX provision_requests_user_at ON provision_requests(user_id, at);",
    // 2: authentication modes, failure counting and locks, OATH tokens, audit trail.
    "ALTER TABLE users ADD COLUMN mode TEXT NOT NULL DEFAULT 'strings';
    ALTER TABLE users ADD COLUMN require_pin INTEGER;
    ALTER TABLE users ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN locked_until INTEGER;
    ALTER TABLE devices ADD COLUMN mode TEXT NOT NULL DEFAULT 'strings';
    ALTER TABLE devices ADD COLUMN oath_kind TEXT;
    ALTER TABLE devices ADD COLUMN oath_algorithm TEXT;
    ALTER TABLE devices ADD COLUMN oath_digits INTEGER;
    ALTER TABLE devices ADD COLUMN oath_period INTEGER;
    ALTER TABLE devices ADD COLUMN oath_counter INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN oath_last_step INTEGER;
    CREATE TABLE audit (
        id        INTEGER PRIMARY KEY,
        at        INTEGER NOT NULL,
        event     TEXT NOT NULL,
        username  TEXT,
        source    TEXT NOT NULL,
        result    TEXT NOT NULL,
        reason    TEXT
    );
    CREATE INDEX audit_at ON audit(at);
    CREATE INDEX audit_user_at ON audit(username, at);",
    // 3: two-stage RADIUS: local directory passwords and outstanding challenges.
    "ALTER TABLE users ADD COLUMN password_hash TEXT;
    CREATE TABLE challenges (
        state_hash  BLOB PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        client      TEXT NOT NULL,
        otc_sealed  BLOB NOT NULL,
        expires_at  INTEGER NOT NULL
    );
    CREATE INDEX challenges_expires ON challenges(expires_at);",
    // 4: groups, returned to NASes in Access-Accepts.
    "ALTER TABLE users ADD COLUMN groups TEXT NOT NULL DEFAULT '';",
];

/// The database handle. One connection behind a mutex: SQLite serialises
/// writers anyway, and holding the mutex across a read-check-write makes
/// each decision atomic (two requests with the same code cannot both pass).
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, sets WAL mode,
    /// foreign keys and `synchronous=FULL` (a committed decision survives
    /// power loss), and applies pending migrations in one transaction.
    ///
    /// Errors: SQLite errors; [`StoreError::TooNew`] if the file is from a
    /// newer version.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        Store::init(conn)
    }

    /// An in-memory database, for tests.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Store, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::TooNew {
                found: version,
                supported,
            });
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (an
        // uncommitted transaction rolls back on drop), so a poisoned lock is
        // safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with the connection (reads, single statements).
    pub fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.lock();
        f(&conn)
    }

    /// Runs `f` inside an IMMEDIATE transaction and commits if it returns
    /// `Ok`. The commit happens before this returns, so a caller that replies
    /// afterwards replies only about committed state.
    pub fn transaction<T, E>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = f(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let store = Store::open(&path).unwrap();
            store
                .with(|c| {
                    Ok(c.execute(
                        "INSERT INTO users(name, created_at, updated_at) VALUES('a', 0, 0)",
                        [],
                    )?)
                })
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let n: i64 = store
            .with(|c| Ok(c.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(n, 1);
        let mode: String = store
            .with(|c| Ok(c.pragma_query_value(None, "journal_mode", |r| r.get(0))?))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn newer_schema_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", 99).unwrap();
        }
        match Store::open(&path) {
            Err(StoreError::TooNew { found: 99, .. }) => {}
            other => panic!("expected TooNew, got {:?}", other.err()),
        }
    }
}
