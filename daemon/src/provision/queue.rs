//! Bounds on the background sends of codes asked for by anyone (provision
//! and ResetPIN codes from `POST /api/v1/provision/request` and the pages).
//!
//! The request is answered at once (the same answer whoever asks) and the
//! send runs later on the blocking pool. Pending sends are bounded per
//! *bucket* so that one slow path cannot take the slots of every other: a
//! stored user's bucket is their transport, a name not stored yet goes to
//! the directory look-up bucket (asking the directories may take seconds).
//! A bucket holds at most [`PENDING_SENDS_PER_BUCKET`] sends; all buckets
//! together at most [`PENDING_SENDS_TOTAL`], the last resort. A request
//! without a slot is dropped with a rate-limited WARN naming the bucket;
//! never a code, and not the user name (it is unauthenticated input).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::daemon::App;
use crate::store::users;
use crate::transport::Recipient;

/// Most sends waiting or running at once in one bucket (one transport, or
/// the directory look-ups of names not stored yet).
pub const PENDING_SENDS_PER_BUCKET: usize = 16;
/// Most sends waiting or running at once over all buckets, including the
/// short classification step (which bucket a name belongs to).
pub const PENDING_SENDS_TOTAL: usize = 256;
/// The bucket of names not stored yet (a directory look-up comes first).
pub const LOOKUP_BUCKET: &str = "directory look-up";
/// The bucket of stored users no configured transport can reach (their
/// sends fail fast).
const UNREACHABLE_BUCKET: &str = "no transport";
/// The bucket used when the store cannot be read (the send fails fast).
const STORE_BUCKET: &str = "store unavailable";
/// The bucket shared by transports beyond [`MAX_BUCKETS`] (only after many
/// reloads renaming transports).
const OVERFLOW_BUCKET: &str = "other transports";
/// Most buckets remembered.
const MAX_BUCKETS: usize = 64;
/// At most one "dropped" WARN per bucket this often.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Per-bucket and total bounds of background sends, with drop counting.
#[derive(Debug)]
pub struct SendQueue {
    /// The last-resort bound over all buckets.
    total: Arc<Semaphore>,
    /// One semaphore per bucket, made on first use.
    buckets: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Per bucket: when the last WARN was written and drops since then.
    warned: Mutex<HashMap<String, (Option<Instant>, u64)>>,
    /// Requests dropped for lack of a slot since start.
    dropped: AtomicU64,
}

impl Default for SendQueue {
    fn default() -> Self {
        SendQueue {
            total: Arc::new(Semaphore::new(PENDING_SENDS_TOTAL)),
            buckets: Mutex::default(),
            warned: Mutex::default(),
            dropped: AtomicU64::new(0),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SendQueue {
    /// Requests dropped for lack of a slot since the daemon started.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Takes a slot of `bucket`, or `None` when it has
    /// [`PENDING_SENDS_PER_BUCKET`] sends already.
    fn try_bucket(&self, bucket: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut map = lock(&self.buckets);
            let key = if map.contains_key(bucket) || map.len() < MAX_BUCKETS {
                bucket
            } else {
                // Forget idle buckets first (transports renamed by reloads).
                map.retain(|_, s| s.available_permits() < PENDING_SENDS_PER_BUCKET);
                if map.len() < MAX_BUCKETS {
                    bucket
                } else {
                    OVERFLOW_BUCKET
                }
            };
            map.entry(key.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(PENDING_SENDS_PER_BUCKET)))
                .clone()
        };
        semaphore.try_acquire_owned().ok()
    }

    /// Counts a dropped request and writes a WARN naming `bucket`, at most
    /// one per bucket every [`WARN_INTERVAL`] (with the number dropped
    /// since the previous line).
    fn drop_request(&self, bucket: &str, what: &str, limit: usize) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let due = {
            let mut warned = lock(&self.warned);
            if warned.len() >= MAX_BUCKETS * 2 && !warned.contains_key(bucket) {
                warned.clear();
            }
            let entry = warned.entry(bucket.to_string()).or_insert((None, 0));
            entry.1 += 1;
            if entry
                .0
                .is_none_or(|at| now.duration_since(at) >= WARN_INTERVAL)
            {
                let count = entry.1;
                *entry = (Some(now), 0);
                Some(count)
            } else {
                None
            }
        };
        if let Some(count) = due {
            tracing::warn!(
                bucket = %bucket,
                "{what} dropped: {limit} sends already waiting for {bucket} \
                 ({count} dropped since the last such line)"
            );
        }
    }
}

/// Which bucket a send for `username` belongs to: the stored user's
/// transport, or [`LOOKUP_BUCKET`] for a name not stored yet.
pub fn bucket_of(app: &App, username: &str) -> String {
    match app.store.with(|c| users::by_name(c, username)) {
        Ok(Some(user)) => match app.transports.choose(&Recipient::of(&user)) {
            Some(plugin) => format!("transport {}", plugin.name()),
            None => UNREACHABLE_BUCKET.to_string(),
        },
        Ok(None) => LOOKUP_BUCKET.to_string(),
        Err(_) => STORE_BUCKET.to_string(),
    }
}

/// Runs `job` (a send for `username`) on the blocking pool in the
/// background, in `username`'s bucket (see the module documentation).
/// Must be called from within the tokio runtime. `what` names the request
/// in the WARN written when it is dropped ("provision code request").
/// Never fails: a request without a slot is dropped, counted and logged.
pub fn in_background(
    app: &Arc<App>,
    username: &str,
    what: &'static str,
    job: impl FnOnce(&App) + Send + 'static,
) {
    let queue = &app.provision_queue;
    let Ok(total) = queue.total.clone().try_acquire_owned() else {
        queue.drop_request("all transports", what, PENDING_SENDS_TOTAL);
        return;
    };
    let app = app.clone();
    let username = username.to_string();
    tokio::task::spawn_blocking(move || {
        let bucket = bucket_of(&app, &username);
        let Some(slot) = app.provision_queue.try_bucket(&bucket) else {
            app.provision_queue
                .drop_request(&bucket, what, PENDING_SENDS_PER_BUCKET);
            return;
        };
        job(&app);
        drop(slot);
        drop(total);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_bounded_each_and_independent() {
        let queue = SendQueue::default();
        let slow: Vec<_> = (0..PENDING_SENDS_PER_BUCKET)
            .map(|_| queue.try_bucket("transport slow"))
            .collect();
        assert!(slow.iter().all(Option::is_some));
        assert!(queue.try_bucket("transport slow").is_none());
        queue.drop_request("transport slow", "test request", PENDING_SENDS_PER_BUCKET);
        queue.drop_request("transport slow", "test request", PENDING_SENDS_PER_BUCKET);
        assert_eq!(queue.dropped(), 2);
        // Another transport and the look-ups still have every slot.
        assert!(queue.try_bucket("transport spool").is_some());
        assert!(queue.try_bucket(LOOKUP_BUCKET).is_some());
        drop(slow);
        assert!(queue.try_bucket("transport slow").is_some());
    }

    #[test]
    fn bucket_map_stays_bounded() {
        let queue = SendQueue::default();
        let mut held = Vec::new();
        for i in 0..MAX_BUCKETS * 3 {
            held.push(queue.try_bucket(&format!("transport t{i}")));
        }
        // Beyond MAX_BUCKETS busy buckets, the others share one.
        let taken = held.iter().filter(|p| p.is_some()).count();
        assert_eq!(taken, MAX_BUCKETS + PENDING_SENDS_PER_BUCKET);
        assert!(lock(&queue.buckets).len() <= MAX_BUCKETS + 1);
        // Idle buckets are forgotten when room is needed.
        held.clear();
        assert!(queue.try_bucket("transport fresh").is_some());
        assert!(lock(&queue.buckets).len() <= MAX_BUCKETS);
    }
}
