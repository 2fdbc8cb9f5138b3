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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

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
    /// The group commit this decision belonged to failed: it did not take effect.
    #[error("commit failed: {0}")]
    GroupCommit(String),
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
    inner: Mutex<Inner>,
    /// Signalled when a group commit finishes.
    committed: Condvar,
    /// Callers waiting for the lock to run a grouped transaction: while any
    /// wait, a finished job leaves the commit to them.
    waiting: AtomicUsize,
}

/// The connection and the state of the open group transaction, if any.
struct Inner {
    conn: Connection,
    /// A group transaction (BEGIN IMMEDIATE) is open and not yet committed.
    open: bool,
    /// Number of the open (or next) group.
    group: u64,
    /// Jobs run in the open group.
    jobs: usize,
    /// Highest group number committed (or failed).
    done: u64,
    /// Group commits so far.
    commits: u64,
    /// Recent groups whose COMMIT failed, and why (the last 256).
    failed: Vec<(u64, String)>,
}

/// Most jobs in one group commit; the group commits when it has this many
/// even if more callers wait.
pub const MAX_GROUP_JOBS: usize = 128;

impl Inner {
    /// Commits the open group, if any, and records the outcome.
    fn finish_group(&mut self) {
        if !self.open {
            return;
        }
        self.open = false;
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            tracing::error!("group commit failed: {e}");
            if self.failed.len() >= 256 {
                self.failed.remove(0);
            }
            self.failed.push((self.group, e.to_string()));
        }
        self.commits += 1;
        self.done = self.group;
        self.group += 1;
        self.jobs = 0;
    }
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
            inner: Mutex::new(Inner {
                conn,
                open: false,
                group: 1,
                jobs: 0,
                done: 0,
                commits: 0,
                failed: Vec::new(),
            }),
            committed: Condvar::new(),
            waiting: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves SQLite consistent (an
        // uncommitted transaction rolls back), so a poisoned lock is safe to
        // reuse.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock with no group transaction open: an open group is committed
    /// first, so what follows sees and writes only committed state.
    fn lock_alone(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.lock();
        if inner.open {
            inner.finish_group();
            self.committed.notify_all();
        }
        inner
    }

    /// Runs `f` with the connection (reads, single statements).
    pub fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let inner = self.lock_alone();
        f(&inner.conn)
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
        let mut inner = self.lock_alone();
        let tx = inner
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = f(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Like [`Store::transaction`], but concurrent callers share one commit
    /// (group commit): each `f` runs alone, in order, inside a savepoint of
    /// one open transaction, so it sees every earlier job's writes (two
    /// requests with one code still cannot both pass); the transaction is
    /// committed (one fsync) when no other caller is waiting or
    /// [`MAX_GROUP_JOBS`] have run; every caller returns only after the
    /// commit of its group. An `Err` from `f` rolls back that job alone.
    ///
    /// Errors: `f`'s error; [`StoreError::Sqlite`] if the savepoint or the
    /// group's COMMIT fails (then no job of the group took effect).
    pub fn transaction_grouped<T, E>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut inner = self.lock();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        if !inner.open {
            inner
                .conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(StoreError::from)?;
            inner.open = true;
        }
        let my_group = inner.group;
        inner.jobs += 1;
        if let Err(e) = inner.conn.execute_batch("SAVEPOINT job") {
            self.after_job(&mut inner);
            return Err(StoreError::from(e).into());
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&inner.conn)));
        let ok = matches!(outcome, Ok(Ok(_)));
        let closed = if ok {
            inner.conn.execute_batch("RELEASE job")
        } else {
            inner.conn.execute_batch("ROLLBACK TO job; RELEASE job")
        };
        if let Err(e) = closed {
            tracing::error!("savepoint could not be closed: {e}");
            inner.failed.push((my_group, e.to_string()));
        }
        self.after_job(&mut inner);
        let value = match outcome {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(e),
            Err(panic) => {
                drop(inner);
                std::panic::resume_unwind(panic)
            }
        };
        // Wait until this job's group is committed (by us or a later job).
        while inner.done < my_group {
            inner = self
                .committed
                .wait(inner)
                .unwrap_or_else(|p| p.into_inner());
        }
        match inner.failed.iter().find(|(group, _)| *group == my_group) {
            Some((_, why)) => Err(StoreError::GroupCommit(why.clone()).into()),
            None => Ok(value),
        }
    }

    /// Group commits made so far (for diagnostics and tests).
    pub fn group_commits(&self) -> u64 {
        self.lock().commits
    }

    /// After a job: commit the group unless other callers are about to add
    /// their jobs to it (and it is not full).
    fn after_job(&self, inner: &mut Inner) {
        if self.waiting.load(Ordering::SeqCst) == 0 || inner.jobs >= MAX_GROUP_JOBS {
            inner.finish_group();
            self.committed.notify_all();
        }
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
    fn grouped_transactions_share_commits_and_stay_sequential() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = std::sync::Arc::new(Store::open(&path).unwrap());
        store
            .with(|c| Ok(c.execute("CREATE TABLE n (v INTEGER NOT NULL)", [])?))
            .unwrap();
        store
            .with(|c| Ok(c.execute("INSERT INTO n VALUES (0)", [])?))
            .unwrap();
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        // Read-modify-write: lost updates would show if two jobs interleaved.
                        store
                            .transaction_grouped(|c| {
                                let v: i64 = c.query_row("SELECT v FROM n", [], |r| r.get(0))?;
                                c.execute("UPDATE n SET v = ?1", [v + 1])?;
                                Ok::<_, StoreError>(())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Committed: a separate connection sees every increment.
        let other = Connection::open(&path).unwrap();
        let v: i64 = other
            .query_row("SELECT v FROM n", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 800);
        let commits = store.group_commits();
        assert!((1..=800).contains(&commits), "{commits}");
    }

    #[test]
    fn a_failing_grouped_job_rolls_back_alone() {
        let store = Store::open_in_memory().unwrap();
        store
            .with(|c| Ok(c.execute("CREATE TABLE t (v INTEGER)", [])?))
            .unwrap();
        let r: Result<(), StoreError> = store.transaction_grouped(|c| {
            c.execute("INSERT INTO t VALUES (1)", [])?;
            Err(StoreError::NotFound("on purpose".into()))
        });
        assert!(r.is_err());
        store
            .transaction_grouped(|c| {
                c.execute("INSERT INTO t VALUES (2)", [])?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let rows: Vec<i64> = store
            .with(|c| {
                let mut s = c.prepare("SELECT v FROM t")?;
                let rows = s.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .unwrap();
        assert_eq!(rows, [2]);
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
