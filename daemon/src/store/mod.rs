//! The SQLite store: one database file in the state directory, WAL mode,
//! schema migrations, and one module per table family ([`users`],
//! [`devices`], [`provision_codes`]).
//!
//! It owns the schema and every SQL statement; callers get typed rows. It
//! never sees a PIN, seed, code or token in clear: those arrive sealed or
//! hashed by [`crate::secrets`]. Synchronous access goes through
//! [`Store::with`], [`Store::transaction`] or [`Store::transaction_grouped`],
//! which run on the calling thread (async callers wrap them in
//! `spawn_blocking`); decisions from async code are queued with
//! [`Store::submit`] / [`Store::queued`] to one decision thread that commits
//! them in batches.

pub mod audit;
pub mod backup;
pub mod challenges;
pub mod devices;
pub mod provision_codes;
pub mod users;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, OnceLock};

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
    /// A queued job panicked; its writes were rolled back.
    #[error("a store job panicked")]
    Panicked,
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
    // 5: users from directory plugins: which of them the directory disabled
    // (a sync re-enables only those), and listing a directory's users.
    "ALTER TABLE users ADD COLUMN directory_disabled INTEGER NOT NULL DEFAULT 0;
    UPDATE users SET directory = 'local' WHERE directory IS NULL OR directory = '';
    CREATE INDEX users_directory ON users(directory);",
];

/// The database handle. One connection behind a mutex: SQLite serialises
/// writers anyway, and holding the mutex across a read-check-write makes
/// each decision atomic (two requests with the same code cannot both pass).
///
/// Decisions from async code go through [`Store::submit`]: one dedicated
/// thread (`pinwheel-store`, started at the first submission) drains every
/// queued job (up to [`MAX_BATCH_JOBS`]), runs each in its own savepoint of
/// one transaction, commits once (one fsync), and only then hands each job
/// its outcome (on a second thread, `pinwheel-replies`, so the next batch
/// runs meanwhile). Synchronous callers keep [`Store::with`],
/// [`Store::transaction`] and [`Store::transaction_grouped`]; all of them
/// take the same mutex, so every path sees only its own or committed writes.
pub struct Store {
    shared: Arc<Shared>,
    /// The decision thread's queue, once that thread runs.
    queue: OnceLock<mpsc::Sender<Box<dyn Pending>>>,
}

/// What the decision thread shares with synchronous callers.
struct Shared {
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
    /// Commits of grouped work so far (group commits and decision-thread batches).
    commits: u64,
    /// Jobs run by the decision thread so far.
    queued_jobs: u64,
    /// Recent groups whose COMMIT failed, and why (the last 256).
    failed: Vec<(u64, String)>,
}

/// Most jobs in one group commit; the group commits when it has this many
/// even if more callers wait.
pub const MAX_GROUP_JOBS: usize = 128;

/// Most jobs the decision thread runs in one transaction (one commit).
pub const MAX_BATCH_JOBS: usize = 256;

/// Runs one cached statement that returns no rows (transaction control).
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Rolls back the open transaction, if any (after a failed COMMIT SQLite may
/// already have rolled back; that is not an error here).
fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = exec_cached(conn, "ROLLBACK");
    }
}

impl Inner {
    /// Commits the open group, if any, and records the outcome.
    fn finish_group(&mut self) {
        if !self.open {
            return;
        }
        self.open = false;
        let commit_started = std::time::Instant::now();
        let committed = exec_cached(&self.conn, "COMMIT");
        crate::metrics::METRICS
            .store_commit
            .observe(commit_started.elapsed());
        if let Err(e) = committed {
            rollback(&self.conn);
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

/// A job queued for the decision thread, type-erased.
trait Pending: Send {
    /// Runs the job inside its savepoint; `true` keeps its writes.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Hands the outcome over once the batch's commit is done: `Err` is why
    /// the batch did not commit (then nothing of it took effect).
    fn complete(self: Box<Self>, commit: Result<(), &str>);
}

/// A job and what to do with its outcome.
struct Job<T, F, D> {
    job: Option<F>,
    done: Option<D>,
    out: Option<Result<T, StoreError>>,
}

impl<T, F, D> Pending for Job<T, F, D>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
    D: FnOnce(Result<T, StoreError>) + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(job) = self.job.take() else {
            return false;
        };
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn)))
            .unwrap_or_else(|_| Err(StoreError::Panicked));
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn complete(mut self: Box<Self>, commit: Result<(), &str>) {
        let out = match (self.out.take(), commit) {
            (Some(Ok(_)), Err(why)) => Err(StoreError::GroupCommit(why.to_string())),
            (Some(out), _) => out,
            (None, Err(why)) => Err(StoreError::GroupCommit(why.to_string())),
            (None, Ok(())) => Err(StoreError::GroupCommit("job not run".into())),
        };
        if let Some(done) = self.done.take() {
            // A panicking completion must not take the decision thread down.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| done(out))).is_err() {
                tracing::error!("a store job's completion panicked");
            }
        }
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
        // Room for every statement of the decision path and the admin paths.
        conn.set_prepared_statement_cache_capacity(64);
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
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    conn,
                    open: false,
                    group: 1,
                    jobs: 0,
                    done: 0,
                    commits: 0,
                    queued_jobs: 0,
                    failed: Vec::new(),
                }),
                committed: Condvar::new(),
                waiting: AtomicUsize::new(0),
            }),
            queue: OnceLock::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.lock()
    }

    /// Runs `f` with the connection (reads, single statements).
    pub fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let inner = self.shared.lock_alone();
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
        let mut inner = self.shared.lock_alone();
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
    /// This is the synchronous path (blocking threads); async callers use
    /// [`Store::submit`] or [`Store::queued`], which batch on one thread.
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
        let shared = &*self.shared;
        shared.waiting.fetch_add(1, Ordering::SeqCst);
        let mut inner = shared.lock();
        shared.waiting.fetch_sub(1, Ordering::SeqCst);
        if !inner.open {
            exec_cached(&inner.conn, "BEGIN IMMEDIATE").map_err(StoreError::from)?;
            inner.open = true;
        }
        let my_group = inner.group;
        inner.jobs += 1;
        if let Err(e) = exec_cached(&inner.conn, "SAVEPOINT job") {
            shared.after_job(&mut inner);
            return Err(StoreError::from(e).into());
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&inner.conn)));
        let ok = matches!(outcome, Ok(Ok(_)));
        if let Err(e) = close_savepoint(&inner.conn, ok) {
            tracing::error!("savepoint could not be closed: {e}");
            inner.failed.push((my_group, e.to_string()));
        }
        shared.after_job(&mut inner);
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
            inner = shared
                .committed
                .wait(inner)
                .unwrap_or_else(|p| p.into_inner());
        }
        match inner.failed.iter().find(|(group, _)| *group == my_group) {
            Some((_, why)) => Err(StoreError::GroupCommit(why.clone()).into()),
            None => Ok(value),
        }
    }

    /// Queues `job` for the decision thread and returns at once. The thread
    /// runs it alone, in arrival order, inside a savepoint of the batch's
    /// transaction (so it sees every earlier job's writes; an `Err` or a
    /// panic rolls back this job alone), commits the batch, and only then
    /// calls `done` with the outcome, on the store's completion thread (in
    /// batch order): `done` must be quick. `job` must not call the [`Store`]
    /// (its thread holds the store's lock). If the batch's COMMIT fails,
    /// `done` gets [`StoreError::GroupCommit`] even for a job that succeeded,
    /// since none of its writes took effect.
    pub fn submit<T, F, D>(&self, job: F, done: D)
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        D: FnOnce(Result<T, StoreError>) + Send + 'static,
    {
        let pending: Box<dyn Pending> = Box::new(Job {
            job: Some(job),
            done: Some(done),
            out: None,
        });
        let queue = self.queue.get_or_init(|| self.start_thread());
        if let Err(mpsc::SendError(pending)) = queue.send(pending) {
            pending.complete(Err("the store's decision thread is not running"));
        }
    }

    /// [`Store::submit`] for async callers: resolves with the outcome once
    /// the job's batch is committed.
    pub async fn queued<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(job, move |out| {
            let _ = tx.send(out);
        });
        rx.await
            .unwrap_or_else(|_| Err(StoreError::GroupCommit("store job dropped".into())))
    }

    fn start_thread(&self) -> mpsc::Sender<Box<dyn Pending>> {
        let (tx, rx) = mpsc::channel::<Box<dyn Pending>>();
        let shared = self.shared.clone();
        let started = std::thread::Builder::new()
            .name("pinwheel-store".into())
            .spawn(move || decision_thread(&shared, &rx));
        if let Err(e) = started {
            // The receiver is gone with the closure: every submission then
            // fails cleanly with a GroupCommit error.
            tracing::error!("cannot start the store's decision thread: {e}");
        }
        tx
    }

    /// Commits of grouped work so far, group commits and decision-thread
    /// batches together (for diagnostics and tests).
    pub fn group_commits(&self) -> u64 {
        self.lock().commits
    }

    /// Jobs the decision thread has run so far (for diagnostics and tests).
    pub fn queued_jobs(&self) -> u64 {
        self.lock().queued_jobs
    }
}

/// Releases a savepoint, or rolls back to it first when its job failed.
fn close_savepoint(conn: &Connection, keep: bool) -> rusqlite::Result<()> {
    if !keep {
        exec_cached(conn, "ROLLBACK TO job")?;
    }
    exec_cached(conn, "RELEASE job")
}

impl Shared {
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

    /// After a job: commit the group unless other callers are about to add
    /// their jobs to it (and it is not full).
    fn after_job(&self, inner: &mut Inner) {
        if self.waiting.load(Ordering::SeqCst) == 0 || inner.jobs >= MAX_GROUP_JOBS {
            inner.finish_group();
            self.committed.notify_all();
        }
    }

    /// Runs one batch of queued jobs in one transaction and commits it.
    /// Returns why the batch did not commit, if it did not.
    fn run_batch(&self, batch: &mut [Box<dyn Pending>]) -> Result<(), String> {
        let mut inner = self.lock_alone();
        let inner = &mut *inner;
        let conn = &inner.conn;
        exec_cached(conn, "BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
        for job in batch.iter_mut() {
            if let Err(e) = exec_cached(conn, "SAVEPOINT job") {
                rollback(conn);
                return Err(e.to_string());
            }
            let keep = job.run(conn);
            if let Err(e) = close_savepoint(conn, keep) {
                // The transaction's state is unknown: none of the batch counts.
                tracing::error!("savepoint could not be closed: {e}");
                rollback(conn);
                return Err(e.to_string());
            }
        }
        inner.queued_jobs += batch.len() as u64;
        inner.commits += 1;
        let commit_started = std::time::Instant::now();
        let committed = exec_cached(conn, "COMMIT");
        crate::metrics::METRICS
            .store_commit
            .observe(commit_started.elapsed());
        if let Err(e) = committed {
            tracing::error!("batch commit failed: {e}");
            rollback(conn);
            return Err(e.to_string());
        }
        Ok(())
    }
}

/// A committed (or failed) batch on its way to the completion thread.
type Finished = (Vec<Box<dyn Pending>>, Result<(), String>);

/// The decision thread: waits for a job, takes every job queued behind it
/// (up to [`MAX_BATCH_JOBS`]), runs them in one committed transaction, then
/// hands the whole batch to the completion thread (one wake-up per batch)
/// and goes on with the next one. Ends when the [`Store`] is dropped and the
/// queue is empty.
fn decision_thread(shared: &Shared, rx: &mpsc::Receiver<Box<dyn Pending>>) {
    let (done_tx, done_rx) = mpsc::channel::<Finished>();
    let completer = std::thread::Builder::new()
        .name("pinwheel-replies".into())
        .spawn(move || {
            while let Ok((batch, commit)) = done_rx.recv() {
                complete_batch(batch, &commit);
            }
        });
    let done_tx = match completer {
        Ok(_) => Some(done_tx),
        Err(e) => {
            // Then the decision thread completes its batches itself.
            tracing::warn!("cannot start the store's completion thread: {e}");
            None
        }
    };
    while let Ok(first) = rx.recv() {
        let mut batch: Vec<Box<dyn Pending>> = Vec::with_capacity(MAX_BATCH_JOBS);
        batch.push(first);
        while batch.len() < MAX_BATCH_JOBS {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let commit = shared.run_batch(&mut batch);
        match &done_tx {
            Some(tx) => {
                if let Err(mpsc::SendError((batch, commit))) = tx.send((batch, commit)) {
                    complete_batch(batch, &commit);
                }
            }
            None => complete_batch(batch, &commit),
        }
    }
}

/// Completes every job of a batch whose commit is over (outside the store
/// lock; their log lines are written together).
fn complete_batch(batch: Vec<Box<dyn Pending>>, commit: &Result<(), String>) {
    crate::system::batched_log_lines(|| {
        for job in batch {
            job.complete(commit.as_ref().map(|_| ()).map_err(String::as_str));
        }
    });
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
    fn queued_jobs_share_commits_answer_after_commit_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path).unwrap();
        store
            .with(|c| Ok(c.execute("CREATE TABLE t (v INTEGER NOT NULL)", [])?))
            .unwrap();
        // A second connection: what it sees is committed.
        let reader = Arc::new(Mutex::new(Connection::open(&path).unwrap()));
        let (tx, rx) = mpsc::channel();
        const JOBS: i64 = 500;
        // Submitted while the store's lock is held, so the decision thread
        // (busy with the first job) finds the rest queued behind it.
        store
            .with(|_| {
                for i in 0..JOBS {
                    let tx = tx.clone();
                    let reader = reader.clone();
                    store.submit(
                        move |c| {
                            c.execute("INSERT INTO t VALUES (?1)", [i])?;
                            match i % 10 {
                                3 => Err(StoreError::NotFound("on purpose".into())),
                                7 => panic!("job {i} panics on purpose"),
                                _ => Ok(i),
                            }
                        },
                        move |out| {
                            let seen: i64 = reader
                                .lock()
                                .unwrap()
                                .query_row("SELECT count(*) FROM t WHERE v = ?1", [i], |r| r.get(0))
                                .unwrap();
                            tx.send((i, out.is_ok(), seen)).unwrap();
                        },
                    );
                }
                Ok(())
            })
            .unwrap();
        let mut answered: Vec<(i64, bool, i64)> = (0..JOBS).map(|_| rx.recv().unwrap()).collect();
        // Completed in submission order.
        assert!(answered.windows(2).all(|w| w[0].0 < w[1].0));
        answered.sort();
        for (i, ok, seen) in answered {
            let fails = matches!(i % 10, 3 | 7);
            assert_eq!(ok, !fails, "job {i}");
            // Answered only once committed: a success is visible to
            // another connection, a failure's insert was rolled back.
            assert_eq!(seen, i64::from(!fails), "job {i}");
        }
        assert_eq!(store.queued_jobs(), JOBS as u64);
        let commits = store.group_commits();
        // 1 (the first job) + 499 queued jobs in batches of at most 256.
        assert!((1..=3).contains(&commits), "{commits} commits");
        // The async form, on the same thread.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let n: i64 = runtime
            .block_on(
                store.queued(|c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)),
            )
            .unwrap();
        assert_eq!(n, JOBS - 2 * JOBS / 10);
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
