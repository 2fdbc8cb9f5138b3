//! Directories: where users come from besides the built-in local one (LDAP,
//! Active Directory), as `[[directory]]` plugins asked in config order.
//!
//! [`Directories`] holds the loaded plugins behind a lock so that a reload
//! (SIGHUP) can swap them while requests keep using the set they started
//! with, and a short cache of look-ups. Never logs or caches a password.
//!
//! Users found in a directory are usable without being added by hand:
//! [`ensure_user`] (called before a provision code is sent, and in the
//! first leg of a two-stage login once the directory password was found
//! right) asks the directories, first match wins,
//! and creates the user's record (`directory` = the plugin entry's name,
//! email, phone, groups and enabled from the directory, no PIN). A
//! directory user without a PIN gets a random one at first use, sent over
//! their transport the way `pinwheelctl user add` without `--pin` does; if
//! it cannot be sent the PIN is cleared again and the next use retries.
//! Their directory password (two-stage RADIUS) is checked by the plugin
//! ([`check_password`]; an empty one is refused without asking).
//!
//! [`sync`] (scheduled every `sync_interval`, and `pinwheelctl directory
//! sync NAME`) lists the directory's users, updates the stored attributes
//! of that directory's users, creates records (without PIN, nothing sent)
//! for listed users not stored yet, and disables that directory's users no
//! longer listed. It never touches local users or another directory's. A
//! listing error aborts the sync with nothing changed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use pinwheel_sdk::protocol::Request;
use pinwheel_sdk::DirectoryUser;

use crate::audit::{self, Outcome, Source};
use crate::daemon::App;
use crate::plugin_host::{PluginCallError, PluginHandle};
use crate::secrets::Purpose;
use crate::store::users::{self, DirectoryAttributes, DirectoryMember, UserRow};
use crate::store::{audit as audit_store, StoreError};
use crate::transport::Recipient;

/// How long a user found in a directory is remembered.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// How long "no such user in any directory" is remembered (shorter: a user
/// just added to the directory should not wait long).
pub const NEGATIVE_CACHE_TTL: Duration = Duration::from_secs(10);
/// Most names cached; when full, expired entries go, then everything.
pub const CACHE_MAX_ENTRIES: usize = 4096;
/// The default `sync_interval` of a `[[directory]]` entry.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(3600);
/// A sync may disable at most this many users without `--force`, whatever
/// the share (see [`sync_refused`]).
pub const SYNC_MAX_DISABLE: usize = 10;
/// A sync disabling more than [`SYNC_MAX_DISABLE`] users may disable at
/// most this share (percent) of the directory's enabled users without
/// `--force`.
pub const SYNC_MAX_DISABLE_PERCENT: usize = 25;
/// How often the scheduler looks whether a sync is due.
const SCHEDULER_TICK: Duration = Duration::from_secs(15);
/// Longest user name taken from a directory.
const MAX_NAME_LEN: usize = 253;

/// `sync_interval` when the config leaves it out (serde default).
pub fn default_sync_interval() -> Duration {
    DEFAULT_SYNC_INTERVAL
}

/// Errors of directory operations. Never holds a password.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// No loaded `[[directory]]` entry has this name.
    #[error("no directory named {0:?} is configured (see pinwheelctl plugins)")]
    Unknown(String),
    /// The plugin failed, timed out or was too busy.
    #[error(transparent)]
    Plugin(#[from] PluginCallError),
    /// A sync of this directory is already running.
    #[error("a sync of directory {0:?} is already running")]
    SyncRunning(String),
    /// The sync would disable too many of the directory's users (see
    /// [`sync_refused`]); nothing changed. Usually a wrong `list_filter`,
    /// `base_dn` or a lost read right; `--force` applies it anyway.
    #[error(
        "directory {directory} sync refused: it would disable {disable} of {enabled} users; \
         check list_filter/base_dn, or run `pinwheelctl directory sync {directory} --force`"
    )]
    SyncRefused {
        /// The `[[directory]]` entry's name.
        directory: String,
        /// Users the sync would disable.
        disable: usize,
        /// The directory's enabled users now.
        enabled: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A user found in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The `[[directory]]` entry's name.
    pub directory: String,
    /// The user's name, exactly as asked.
    pub username: String,
    /// What the directory says about the user (normalised).
    pub attributes: DirectoryAttributes,
}

/// A short-lived, bounded cache of look-ups by user name: hits for
/// [`CACHE_TTL`], misses for [`NEGATIVE_CACHE_TTL`]. Holds no passwords.
#[derive(Debug, Default)]
pub struct LookupCache {
    entries: HashMap<String, (Instant, Option<Found>)>,
}

impl LookupCache {
    /// The cached answer for `username` at `now`: `Some(None)` is a cached
    /// miss, `None` means ask the directories.
    pub fn get(&self, username: &str, now: Instant) -> Option<Option<Found>> {
        match self.entries.get(username) {
            Some((expires, found)) if *expires > now => Some(found.clone()),
            _ => None,
        }
    }

    /// Remembers the answer for `username` from `now`.
    pub fn put(&mut self, username: &str, found: Option<Found>, now: Instant) {
        if self.entries.len() >= CACHE_MAX_ENTRIES && !self.entries.contains_key(username) {
            self.entries.retain(|_, (expires, _)| *expires > now);
            if self.entries.len() >= CACHE_MAX_ENTRIES {
                self.entries.clear();
            }
        }
        let ttl = if found.is_some() {
            CACHE_TTL
        } else {
            NEGATIVE_CACHE_TTL
        };
        self.entries
            .insert(username.to_string(), (now + ttl, found));
    }

    /// Forgets every entry (after a sync or a reload).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Number of entries (expired ones included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The loaded `[[directory]]` plugins, in config order; swapped whole on
/// reload. Also the look-up cache, the lock serialising record creation and
/// PIN issue, and which syncs run.
#[derive(Default)]
pub struct Directories {
    loaded: RwLock<Arc<Vec<PluginHandle>>>,
    cache: Mutex<LookupCache>,
    /// Held while a directory user's record is created or their first PIN
    /// issued, so two requests never make two PINs.
    creating: Mutex<()>,
    /// Names of directories being synchronised now.
    syncing: Mutex<HashSet<String>>,
    /// When each directory was last synchronised (by the scheduler or on demand).
    last_sync: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Directories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.snapshot().iter().map(|p| p.name().to_string()))
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Directories {
    /// The set `plugins`, in config order.
    pub fn new(plugins: Vec<PluginHandle>) -> Directories {
        Directories {
            loaded: RwLock::new(Arc::new(plugins)),
            ..Default::default()
        }
    }

    /// The current plugins. Calls already running keep the set they took.
    pub fn snapshot(&self) -> Arc<Vec<PluginHandle>> {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the whole set (on reload). The old plugins are shut down
    /// once their last running call ends.
    pub fn replace(&self, plugins: Vec<PluginHandle>) {
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(plugins);
        self.clear_cache();
    }

    /// The loaded plugin of entry `name`.
    pub fn get(&self, name: &str) -> Option<PluginHandle> {
        self.snapshot().iter().find(|p| p.name() == name).cloned()
    }

    /// Forgets every cached look-up.
    pub fn clear_cache(&self) {
        lock(&self.cache).clear();
    }

    /// When directory `name` was last synchronised.
    pub fn last_sync(&self, name: &str) -> Option<Instant> {
        lock(&self.last_sync).get(name).copied()
    }
}

/// Whether `name` may be a user name taken from a directory: 1 to 253
/// bytes, no whitespace or control characters, no comma-free rule needed.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The attributes Pinwheel keeps of a directory user: addresses trimmed
/// (empty = none), groups without empty names, commas or control
/// characters, sorted and without duplicates.
pub fn attributes_of(user: &DirectoryUser) -> DirectoryAttributes {
    let clean = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty() && !s.chars().any(char::is_control))
            .map(str::to_string)
    };
    let mut groups: Vec<String> = user
        .groups
        .iter()
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty() && !g.contains(',') && !g.chars().any(char::is_control))
        .collect();
    groups.sort();
    groups.dedup();
    DirectoryAttributes {
        email: clean(&user.email),
        phone: clean(&user.phone),
        groups,
        enabled: user.enabled,
    }
}

/// Asks the directories, in config order, for `username` (from a thread that
/// may block); the first that knows the user wins. Answers come from the
/// cache when fresh.
///
/// Errors: a plugin failure before any directory knew the user (then
/// nothing is cached: a later directory may not be asked while an earlier
/// one is down, or the wrong one could win).
pub fn lookup_blocking(app: &App, username: &str) -> Result<Option<Found>, DirectoryError> {
    let plugins = app.directories.snapshot();
    if plugins.is_empty() || !valid_name(username) {
        return Ok(None);
    }
    if let Some(cached) = lock(&app.directories.cache).get(username, Instant::now()) {
        return Ok(cached);
    }
    let mut found = None;
    for plugin in plugins.iter() {
        let answer: Option<DirectoryUser> = plugin.call_blocking(&Request::Lookup {
            username: username.to_string(),
        })?;
        match answer {
            Some(user) if user.username == username => {
                found = Some(Found {
                    directory: plugin.name().to_string(),
                    username: username.to_string(),
                    attributes: attributes_of(&user),
                });
                break;
            }
            Some(_) => {
                tracing::warn!(
                    user = ?username,
                    directory = %plugin.name(),
                    "directory answered with another user name; not used"
                );
            }
            None => {}
        }
    }
    lock(&app.directories.cache).put(username, found.clone(), Instant::now());
    Ok(found)
}

/// Makes sure a user who exists in a directory has a record, before a
/// request looks the user up in the store (never inside a store
/// transaction: directory calls can take seconds). A stored user is
/// returned as is, except that a directory user without a PIN gets one
/// (generated, sent over their transport). A name unknown everywhere gives
/// `Ok(None)`. `source` is for the audit row of a created record.
///
/// Errors: store failures; directory failures (callers treat the user as
/// unknown to directories then, and go on).
pub fn ensure_user(
    app: &App,
    username: &str,
    source: &Source,
) -> Result<Option<UserRow>, DirectoryError> {
    if let Some(user) = app.store.with(|c| users::by_name(c, username))? {
        if user.directory != "local" && user.pin_sealed.is_none() && user.enabled {
            issue_pin(app, &user.name)?;
            return Ok(app.store.with(|c| users::by_name(c, username))?);
        }
        return Ok(Some(user));
    }
    let Some(found) = lookup_blocking(app, username)? else {
        return Ok(None);
    };
    {
        let _one = lock(&app.directories.creating);
        let now = crate::unix_now();
        let row = audit::row(
            now,
            "directory-user-add",
            Some(username),
            source,
            Outcome::Ok,
            None,
        );
        let created = app.store.transaction(|tx| {
            if users::by_name(tx, username)?.is_some() {
                return Ok::<_, StoreError>(false);
            }
            users::insert_from_directory(tx, username, &found.directory, &found.attributes, now)?;
            audit_store::insert(tx, &row)?;
            Ok(true)
        })?;
        if created {
            app.audit.emit(&[row]);
            tracing::info!(
                user = ?username,
                directory = %found.directory,
                enabled = found.attributes.enabled,
                "user created from directory"
            );
        }
    }
    if found.attributes.enabled {
        issue_pin(app, username)?;
    }
    Ok(app.store.with(|c| users::by_name(c, username))?)
}

/// Gives a directory user without a PIN a random one and sends it over
/// their transport; if it cannot be sent, the PIN is cleared again (nobody
/// holds a PIN nobody knows) and a later use retries.
fn issue_pin(app: &App, username: &str) -> Result<(), DirectoryError> {
    let _one = lock(&app.directories.creating);
    let Some(user) = app.store.with(|c| users::by_name(c, username))? else {
        return Ok(());
    };
    if user.pin_sealed.is_some() || !user.enabled || user.directory == "local" {
        return Ok(());
    }
    let recipient = Recipient::of(&user);
    if app.transports.choose(&recipient).is_none() {
        tracing::warn!(
            user = ?username,
            directory = %user.directory,
            "no PIN issued: no configured transport can reach the directory user's address"
        );
        return Ok(());
    }
    let pin = crate::otc::Pin::random(app.config.pin.length);
    let sealed = app
        .key
        .seal(Purpose::Pin, &user.name, pin.as_str().as_bytes());
    if !app
        .store
        .with(|c| users::set_pin_if_none(c, user.id, &sealed))?
    {
        return Ok(());
    }
    match crate::admin::server::send_pin(app, &recipient, &pin) {
        Ok(transport) => {
            tracing::info!(user = ?username, transport = %transport, "PIN generated for directory user and sent");
            Ok(())
        }
        Err(e) => {
            app.store
                .with(|c| users::clear_pin_if(c, user.id, &sealed))?;
            tracing::warn!(user = ?username, "generated PIN not sent, cleared again (the next use retries): {e}");
            Ok(())
        }
    }
}

/// Whether `password` is the directory password of `user`, a user of a
/// directory plugin (from a thread that may block). An empty password is
/// refused without asking the directory.
///
/// Errors: the user's directory is not loaded; the plugin failed.
pub fn check_password(app: &App, user: &UserRow, password: &[u8]) -> Result<bool, DirectoryError> {
    check_password_in(app, &user.directory, &user.name, password)
}

/// Whether `password` is the password of `username` in the `[[directory]]`
/// entry `directory` (from a thread that may block), for a user who may
/// have no record yet (a [`Found`] of [`lookup_blocking`]): checked before
/// any record is created or PIN sent. An empty password, or one that is
/// not UTF-8, is refused without asking the directory.
///
/// Errors: no loaded directory of that name; the plugin failed.
pub fn check_password_in(
    app: &App,
    directory: &str,
    username: &str,
    password: &[u8],
) -> Result<bool, DirectoryError> {
    if password.is_empty() {
        return Ok(false);
    }
    let plugin = app
        .directories
        .get(directory)
        .ok_or_else(|| DirectoryError::Unknown(directory.to_string()))?;
    let Ok(password) = std::str::from_utf8(password) else {
        return Ok(false);
    };
    let request = Request::CheckPassword {
        username: username.to_string(),
        password: password.to_string(),
    };
    let answer = plugin.call_blocking(&request);
    // The request held the password: clear it.
    if let Request::CheckPassword { password, .. } = request {
        drop(zeroize::Zeroizing::new(password));
    }
    Ok(answer?)
}

/// What a sync changes, decided from the stored users of the directory and
/// its listing ([`plan_sync`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncPlan {
    /// Stored users whose attributes change: (id, new attributes with the
    /// new `enabled`, new `directory_disabled`).
    pub updates: Vec<(i64, DirectoryAttributes, bool)>,
    /// Listed users not stored yet.
    pub creates: Vec<(String, DirectoryAttributes)>,
    /// Enabled stored users no longer listed: disabled.
    pub disables: Vec<i64>,
}

/// Decides a sync. `listed` is the directory's listing (already normalised
/// with [`attributes_of`], names valid and unique). For a listed user: the
/// directory's email, phone and groups replace the stored ones; disabled in
/// the directory disables the user (marked as disabled by the directory);
/// enabled in the directory enables again only a user the directory had
/// disabled (an administrator's `user disable` stands). An enabled user not
/// listed is disabled (marked as disabled by the directory).
pub fn plan_sync(stored: &[DirectoryMember], listed: &[(String, DirectoryAttributes)]) -> SyncPlan {
    let by_name: HashMap<&str, &DirectoryMember> =
        stored.iter().map(|m| (m.name.as_str(), m)).collect();
    let listed_names: HashSet<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    let mut plan = SyncPlan::default();
    for (name, attributes) in listed {
        let Some(member) = by_name.get(name.as_str()) else {
            plan.creates.push((name.clone(), attributes.clone()));
            continue;
        };
        let (enabled, directory_disabled) = match (attributes.enabled, member.enabled) {
            (false, true) => (false, true),
            (false, false) => (false, member.directory_disabled),
            (true, _) if member.directory_disabled => (true, false),
            (true, enabled) => (enabled, false),
        };
        let mut groups = member.groups.clone();
        groups.sort();
        let unchanged = member.email == attributes.email
            && member.phone == attributes.phone
            && groups == attributes.groups
            && member.enabled == enabled
            && member.directory_disabled == directory_disabled;
        if !unchanged {
            let mut new = attributes.clone();
            new.enabled = enabled;
            plan.updates.push((member.id, new, directory_disabled));
        }
    }
    for member in stored {
        if member.enabled && !listed_names.contains(member.name.as_str()) {
            plan.disables.push(member.id);
        }
    }
    plan
}

/// Whether a sync whose listing holds `listed` users and that would
/// disable `disable` users of a directory with `enabled` enabled users
/// (before the sync) must be refused without `--force`: when the listing
/// is empty and it would disable anyone (the usual sign of a wrong
/// `list_filter` or `base_dn`, or a lost read right), or when it would
/// disable more than [`SYNC_MAX_DISABLE`] users *and* more than
/// [`SYNC_MAX_DISABLE_PERCENT`] percent of `enabled`. Disabling nobody is
/// never refused.
pub fn sync_refused(listed: usize, disable: usize, enabled: usize) -> bool {
    if disable == 0 {
        return false;
    }
    if listed == 0 {
        return true;
    }
    disable > SYNC_MAX_DISABLE
        && (disable as u128) * 100 > (enabled as u128) * (SYNC_MAX_DISABLE_PERCENT as u128)
}

/// What a sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncReport {
    /// The directory.
    pub directory: String,
    /// Users the directory listed (valid names, duplicates counted once).
    pub listed: usize,
    /// Stored users of the directory whose attributes or state changed.
    pub updated: usize,
    /// Records created for listed users.
    pub created: usize,
    /// Users gone from the directory, disabled now.
    pub disabled: usize,
    /// Listed users not taken: an invalid or repeated name, or a name
    /// already used by a local user or another directory's user.
    pub skipped: usize,
}

/// Synchronises directory `name` now (from a thread that may block): see
/// the module documentation. All changes are written in one transaction.
/// Without `force`, a sync that would disable too many users
/// ([`sync_refused`]) changes nothing and is logged at ERROR; the
/// scheduled sync never forces.
///
/// Errors: [`DirectoryError::Unknown`], `SyncRunning`, `SyncRefused`, the
/// plugin's failure (nothing changed), store failures (nothing changed).
pub fn sync(app: &App, name: &str, force: bool) -> Result<SyncReport, DirectoryError> {
    let plugin = app
        .directories
        .get(name)
        .ok_or_else(|| DirectoryError::Unknown(name.to_string()))?;
    if !lock(&app.directories.syncing).insert(name.to_string()) {
        return Err(DirectoryError::SyncRunning(name.to_string()));
    }
    struct Running<'a>(&'a App, &'a str);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            lock(&self.0.directories.syncing).remove(self.1);
        }
    }
    let _running = Running(app, name);
    lock(&app.directories.last_sync).insert(name.to_string(), Instant::now());
    let result = sync_with(app, &plugin, force);
    match &result {
        Ok(r) => tracing::info!(
            "directory {name} sync: {} listed, {} updated, {} created, {} disabled{}",
            r.listed,
            r.updated,
            r.created,
            r.disabled,
            if r.skipped > 0 {
                format!(", {} skipped", r.skipped)
            } else {
                String::new()
            }
        ),
        Err(e @ DirectoryError::SyncRefused { .. }) => tracing::error!("{e}"),
        Err(e) => tracing::warn!("directory {name} sync failed, nothing changed: {e}"),
    }
    result
}

fn sync_with(app: &App, plugin: &PluginHandle, force: bool) -> Result<SyncReport, DirectoryError> {
    let name = plugin.name();
    let listing: Vec<DirectoryUser> = plugin.call_blocking(&Request::ListUsers)?;
    let mut skipped = 0;
    let mut seen = HashSet::new();
    let mut listed = Vec::with_capacity(listing.len());
    for user in &listing {
        if !valid_name(&user.username) || !seen.insert(user.username.clone()) {
            skipped += 1;
            continue;
        }
        listed.push((user.username.clone(), attributes_of(user)));
    }
    let now = crate::unix_now();
    let report = app.store.transaction(|tx| {
        let stored = users::members_of(tx, name)?;
        let plan = plan_sync(&stored, &listed);
        let enabled = stored.iter().filter(|m| m.enabled).count();
        if !force && sync_refused(listed.len(), plan.disables.len(), enabled) {
            // Nothing written yet: the transaction rolls back.
            return Err(DirectoryError::SyncRefused {
                directory: name.to_string(),
                disable: plan.disables.len(),
                enabled,
            });
        }
        let mut report = SyncReport {
            directory: name.to_string(),
            listed: listed.len(),
            updated: plan.updates.len(),
            disabled: plan.disables.len(),
            skipped,
            created: 0,
        };
        for (id, attributes, directory_disabled) in &plan.updates {
            users::update_from_directory(tx, *id, attributes, *directory_disabled, now)?;
        }
        for id in &plan.disables {
            let member = stored.iter().find(|m| m.id == *id);
            if let Some(m) = member {
                let attributes = DirectoryAttributes {
                    email: m.email.clone(),
                    phone: m.phone.clone(),
                    groups: m.groups.clone(),
                    enabled: false,
                };
                users::update_from_directory(tx, *id, &attributes, true, now)?;
            }
        }
        for (user, attributes) in &plan.creates {
            match users::insert_from_directory(tx, user, name, attributes, now) {
                Ok(_) => report.created += 1,
                // A local user or another directory's has the name.
                Err(StoreError::Duplicate(_)) => report.skipped += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Ok::<_, DirectoryError>(report)
    })?;
    app.directories.clear_cache();
    Ok(report)
}

/// Runs each directory's sync every `sync_interval` (`0` = never), the first
/// at start, until `shutdown` turns true. Reads the intervals from
/// `app.config` at every tick.
pub async fn run_scheduled_sync(app: Arc<App>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SCHEDULER_TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::system::shutdown_requested(&mut shutdown) => return,
        }
        let due: Vec<String> = app
            .config
            .directories
            .iter()
            .filter(|d| !d.sync_interval.is_zero())
            .filter(|d| {
                app.directories
                    .last_sync(&d.name)
                    .is_none_or(|at| at.elapsed() >= d.sync_interval)
            })
            .map(|d| d.name.clone())
            .collect();
        for name in due {
            if app.directories.get(&name).is_none() {
                continue;
            }
            let app = app.clone();
            // Errors are logged by `sync`.
            let _ = tokio::task::spawn_blocking(move || sync(&app, &name, false)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(name: &str) -> Found {
        Found {
            directory: "corp".into(),
            username: name.into(),
            attributes: DirectoryAttributes {
                email: Some(format!("{name}@corp.example")),
                enabled: true,
                ..Default::default()
            },
        }
    }

    #[test]
    fn cache_keeps_hits_longer_than_misses() {
        let mut cache = LookupCache::default();
        let t0 = Instant::now();
        assert_eq!(cache.get("alice", t0), None);
        cache.put("alice", Some(found("alice")), t0);
        cache.put("nobody", None, t0);
        assert_eq!(cache.get("alice", t0), Some(Some(found("alice"))));
        assert_eq!(cache.get("nobody", t0), Some(None));
        let later = t0 + NEGATIVE_CACHE_TTL + Duration::from_millis(1);
        assert_eq!(cache.get("nobody", later), None, "misses expire first");
        assert!(cache.get("alice", later).is_some());
        assert_eq!(cache.get("alice", t0 + CACHE_TTL), None, "hits expire too");
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn cache_is_bounded() {
        let mut cache = LookupCache::default();
        let t0 = Instant::now();
        for i in 0..CACHE_MAX_ENTRIES {
            cache.put(&format!("u{i}"), None, t0);
        }
        assert_eq!(cache.len(), CACHE_MAX_ENTRIES);
        // Full of live entries: cleared, then the new one stored.
        cache.put("one-more", Some(found("one-more")), t0);
        assert_eq!(cache.len(), 1);
        for i in 0..CACHE_MAX_ENTRIES - 1 {
            cache.put(&format!("u{i}"), None, t0);
        }
        // Full with expired misses: only those go.
        let later = t0 + NEGATIVE_CACHE_TTL + Duration::from_secs(1);
        cache.put("fresh", None, later);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("one-more", later).is_some());
    }

    #[test]
    fn attributes_are_normalised() {
        let mut u = DirectoryUser::new("alice");
        u.email = Some("  alice@corp.example ".into());
        u.phone = Some("".into());
        u.groups = vec![
            "vpn".into(),
            "".into(),
            "a,b".into(),
            "staff".into(),
            "vpn".into(),
        ];
        let a = attributes_of(&u);
        assert_eq!(a.email.as_deref(), Some("alice@corp.example"));
        assert_eq!(a.phone, None);
        assert_eq!(a.groups, ["staff", "vpn"]);
        assert!(a.enabled);
        assert!(!valid_name("") && !valid_name("a b") && !valid_name("a\nb"));
        assert!(valid_name("alice") && valid_name("dave@corp"));
    }

    fn member(id: i64, name: &str, enabled: bool, directory_disabled: bool) -> DirectoryMember {
        DirectoryMember {
            id,
            name: name.into(),
            email: Some(format!("{name}@corp.example")),
            phone: None,
            groups: vec![],
            enabled,
            directory_disabled,
        }
    }

    fn listed(name: &str, enabled: bool) -> (String, DirectoryAttributes) {
        (
            name.into(),
            DirectoryAttributes {
                email: Some(format!("{name}@corp.example")),
                phone: None,
                groups: vec![],
                enabled,
            },
        )
    }

    #[test]
    fn sync_updates_creates_and_disables() {
        let stored = [
            member(1, "alice", true, false),
            member(2, "bob", true, false),
            member(3, "carol", false, false),
        ];
        let mut alice = listed("alice", true);
        alice.1.email = Some("alice@new.example".into());
        let plan = plan_sync(&stored, &[alice.clone(), listed("dave", true)]);
        assert_eq!(plan.updates, vec![(1, alice.1, false)]);
        assert_eq!(plan.creates, vec![listed("dave", true)]);
        // bob is gone; carol is gone but already disabled.
        assert_eq!(plan.disables, vec![2]);
        // Nothing changes when everything matches.
        let plan = plan_sync(&stored[..1], &[listed("alice", true)]);
        assert_eq!(plan, SyncPlan::default());
    }

    #[test]
    fn sync_enables_only_whom_the_directory_disabled() {
        // Disabled by the directory, enabled there again: enabled.
        let plan = plan_sync(&[member(1, "a", false, true)], &[listed("a", true)]);
        assert_eq!(plan.updates, vec![(1, listed("a", true).1, false)]);
        // Disabled by an administrator: stays disabled.
        let plan = plan_sync(&[member(1, "a", false, false)], &[listed("a", true)]);
        assert_eq!(plan, SyncPlan::default());
        // Disabled in the directory: disabled, marked.
        let plan = plan_sync(&[member(1, "a", true, false)], &[listed("a", false)]);
        assert_eq!(plan.updates, vec![(1, listed("a", false).1, true)]);
        // An empty listing disables every enabled user of the directory.
        let plan = plan_sync(
            &[member(1, "a", true, false), member(2, "b", true, false)],
            &[],
        );
        assert_eq!(plan.disables, vec![1, 2]);
    }

    #[test]
    fn sync_refuses_to_disable_too_many() {
        // Nothing to disable: never refused, even with an empty listing.
        assert!(!sync_refused(0, 0, 0));
        assert!(!sync_refused(0, 0, 56));
        assert!(!sync_refused(100, 0, 100));
        // An empty listing that would disable anyone: refused.
        assert!(sync_refused(0, 56, 56));
        assert!(sync_refused(0, 1, 1));
        // A few users gone: applied, whatever the share.
        assert!(!sync_refused(1, 1, 2));
        assert!(!sync_refused(5, SYNC_MAX_DISABLE, SYNC_MAX_DISABLE));
        // More than SYNC_MAX_DISABLE but at most the share: applied.
        assert!(!sync_refused(75, 25, 100));
        assert!(!sync_refused(900, 100, 1000));
        // More than SYNC_MAX_DISABLE and more than the share: refused.
        assert!(sync_refused(74, 26, 100));
        assert!(sync_refused(3, 56, 56));
        // Huge counts do not overflow.
        assert!(sync_refused(1, usize::MAX, usize::MAX));
    }
}
