//! PIN self-service for the web pages: ResetPIN codes and the change-PIN rule.
//!
//! A ResetPIN code is `RESET_CODE_LEN` random digits sent over the user's own
//! transport ([`MessageKind::ResetCode`]), valid `[pages] reset_code_ttl`,
//! kept only as a keyed hash ([`Purpose::ResetCode`]) in a bounded in-memory
//! map, one live code per user (a new one replaces the old), spent by any
//! attempt, right or wrong. Sends are limited per user apart from the live
//! code (so spending a code does not lift them): one every
//! [`MIN_RESEND_SECS`], at most `[pages] reset_codes_per_hour` an hour. A
//! right code gives the user a new random PIN, sent over the same transport
//! (`admin::server::send_pin`, as `user add` without `--pin` does). Locked and disabled users get no code
//! and no new PIN.
//!
//! The change-PIN rule is the seed product's: the page shows a security
//! string of 10 distinct characters; the user types its OTC under the old
//! PIN and twice under the new PIN, from which the new PIN is recovered. A
//! wrong old OTC counts as a failure toward lockout (the auth module's
//! counting).
//!
//! Every failure is one error ([`ResetError::Failure`]) to the page, with the
//! reason only in the audit trail; nothing here logs a code or a PIN.

use std::collections::HashMap;
use std::sync::Mutex;

use rand::seq::SliceRandom as _;
use rand::Rng as _;

use crate::audit::{self, Outcome, Source};
use crate::auth::{Decision, RejectReason};
use crate::daemon::App;
use crate::otc::{self, Pin, SecurityString};
use crate::secrets::Purpose;
use crate::store::{audit as audit_store, users, StoreError};
use crate::transport::Recipient;
use pinwheel_sdk::{Message, MessageKind};

/// Digits in a ResetPIN code.
pub const RESET_CODE_LEN: usize = 8;

/// Most users with an outstanding reset code at once; beyond that expired
/// codes are dropped, then new requests are refused (nothing is sent).
pub const MAX_OUTSTANDING: usize = 10_000;

/// Seconds since the last reset code sent to a user (live, spent or expired)
/// before another is sent, so the pages cannot flood a mailbox.
pub const MIN_RESEND_SECS: i64 = 30;

/// Length of the `[pages] reset_codes_per_hour` window, in seconds.
const HOUR_SECS: i64 = 3600;

/// Longest input looked at; longer input is a failure.
const MAX_INPUT_LEN: usize = 256;

/// Errors of PIN self-service. The page shows the same text for every one.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// Unknown, disabled or locked user, wrong, expired or missing code,
    /// wrong OTC, mismatched or badly formed new PIN: the reason is audited.
    #[error("the PIN was not changed")]
    Failure,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Outstanding {
    hash: Vec<u8>,
    expires_at: i64,
    issued_at: i64,
}

/// Why no new code was stored.
enum Refused {
    /// [`MAX_OUTSTANDING`] live codes.
    Full,
    /// The last code sent to the user is younger than [`MIN_RESEND_SECS`].
    TooSoon,
    /// `[pages] reset_codes_per_hour` codes were sent to the user this hour.
    HourlyCap,
}

/// Codes sent to one user: the last send and the current hour's window
/// (Unix seconds), kept apart from the live code.
#[derive(Clone, Copy)]
struct Sent {
    last: i64,
    hour_start: i64,
    count: u32,
}

/// Outstanding ResetPIN codes: user name -> keyed hash and expiry (Unix
/// seconds), at most [`MAX_OUTSTANDING`] entries, and per user the send
/// history the resend limits read (also at most [`MAX_OUTSTANDING`] users;
/// when full, users whose hour has ended go first, then the oldest send).
#[derive(Default)]
pub struct ResetCodes {
    codes: Mutex<HashMap<String, Outstanding>>,
    sent: Mutex<HashMap<String, Sent>>,
}

impl ResetCodes {
    /// Stores `hash` as the one live code of `user`, replacing any earlier
    /// one. Returns the earlier one (to put back if sending fails).
    fn replace(
        &self,
        user: &str,
        hash: Vec<u8>,
        expires_at: i64,
        now: i64,
        per_hour: u32,
    ) -> Result<Option<Outstanding>, Refused> {
        let mut map = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(live) = map.get(user) {
            if live.expires_at >= now && now - live.issued_at < MIN_RESEND_SECS {
                return Err(Refused::TooSoon);
            }
        }
        if map.len() >= MAX_OUTSTANDING && !map.contains_key(user) {
            map.retain(|_, c| c.expires_at >= now);
            if map.len() >= MAX_OUTSTANDING {
                return Err(Refused::Full);
            }
        }
        self.count_send(user, now, per_hour)?;
        let code = Outstanding {
            hash,
            expires_at,
            issued_at: now,
        };
        Ok(map.insert(user.to_string(), code))
    }

    /// Counts a send to `user` at `now` (Unix seconds) unless it is within
    /// [`MIN_RESEND_SECS`] of the last one or `per_hour` were sent this hour.
    /// A failed send stays counted, so a failing transport is not hammered.
    fn count_send(&self, user: &str, now: i64, per_hour: u32) -> Result<(), Refused> {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = sent.get(user) {
            if now - s.last < MIN_RESEND_SECS {
                return Err(Refused::TooSoon);
            }
            if now - s.hour_start < HOUR_SECS && s.count >= per_hour {
                return Err(Refused::HourlyCap);
            }
        }
        if per_hour == 0 {
            return Err(Refused::HourlyCap);
        }
        if sent.len() >= MAX_OUTSTANDING && !sent.contains_key(user) {
            sent.retain(|_, s| now - s.hour_start < HOUR_SECS);
            if sent.len() >= MAX_OUTSTANDING {
                let oldest = sent
                    .iter()
                    .min_by_key(|(_, s)| s.last)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    sent.remove(&oldest);
                }
            }
        }
        let entry = sent.entry(user.to_string()).or_insert(Sent {
            last: now,
            hour_start: now,
            count: 0,
        });
        if now - entry.hour_start >= HOUR_SECS {
            entry.hour_start = now;
            entry.count = 0;
        }
        entry.last = now;
        entry.count += 1;
        Ok(())
    }

    /// Puts `previous` back for `user` if the live code is still `hash`.
    fn restore(&self, user: &str, hash: &[u8], previous: Option<Outstanding>) {
        let mut map = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(user).is_some_and(|c| c.hash == hash) {
            match previous {
                Some(p) => {
                    map.insert(user.to_string(), p);
                }
                None => {
                    map.remove(user);
                }
            }
        }
    }

    /// Takes (spends) the live code of `user`.
    fn take(&self, user: &str) -> Option<Outstanding> {
        let mut map = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(user)
    }
}

fn new_code(len: usize) -> zeroize::Zeroizing<String> {
    let mut rng = rand::rngs::OsRng;
    zeroize::Zeroizing::new(
        (0..len)
            .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
            .collect(),
    )
}

fn audit_row(app: &App, event: &str, username: &str, source: &Source, reason: Option<&str>) {
    let outcome = if reason.is_none() {
        Outcome::Ok
    } else {
        Outcome::Fail
    };
    // Rows about names nobody has are budgeted: anyone can ask for them.
    if reason == Some("unknown_user") && !app.audit.allow_unauthenticated() {
        return;
    }
    let row = audit::row(
        crate::unix_now(),
        event,
        Some(username),
        source,
        outcome,
        reason,
    );
    match app.store.with(|c| audit_store::insert(c, &row)) {
        Ok(()) => app.audit.emit(&[row]),
        Err(e) => tracing::error!("audit row for {event} not written: {e}"),
    }
}

fn valid_name(username: &str) -> bool {
    !username.is_empty()
        && username.len() <= MAX_INPUT_LEN
        && !username.chars().any(char::is_control)
}

/// Sends a new ResetPIN code to `username` over their transport, unless
/// the user is unknown, disabled, locked or unreachable (then nothing is
/// sent and the reason is audited). The pages call this in the background
/// and answer the same whatever happens.
///
/// Errors: [`ResetError::Failure`] when no code was sent, `Store`.
pub fn send_reset_code(app: &App, username: &str, source: &Source) -> Result<(), ResetError> {
    if !valid_name(username) {
        return Err(ResetError::Failure);
    }
    if let Err(e) = crate::directory::ensure_user(app, username, source) {
        tracing::warn!(user = ?username, "directory look-up failed: {e}");
    }
    let now = crate::unix_now();
    let refuse = |reason: &str| {
        audit_row(app, "reset-code", username, source, Some(reason));
        Err(ResetError::Failure)
    };
    let Some(user) = app.store.with(|c| users::by_name(c, username))? else {
        return refuse("unknown_user");
    };
    if !user.enabled {
        return refuse("disabled");
    }
    if user.is_locked(now) {
        return refuse("locked");
    }
    let recipient = Recipient::of(&user);
    if app.transports.choose(&recipient).is_none() {
        return refuse("no_recipient");
    }
    // One at a time per user, so the live code is always the one sent last.
    let lock = app.provision_send_locks.of(&user.name);
    let _one_at_a_time = lock.lock().unwrap_or_else(|p| p.into_inner());
    let ttl = app.config.pages.reset_code_ttl;
    let code = new_code(RESET_CODE_LEN);
    let hash = app.key.keyed_hash(Purpose::ResetCode, code.as_bytes());
    let previous = match app.reset_codes.replace(
        &user.name,
        hash.to_vec(),
        now + ttl.as_secs() as i64,
        now,
        app.config.pages.reset_codes_per_hour,
    ) {
        Ok(previous) => previous,
        Err(Refused::TooSoon) => return refuse("too_soon"),
        Err(Refused::HourlyCap) => return refuse("hourly_cap"),
        Err(Refused::Full) => {
            tracing::warn!("ResetPIN code not sent: {MAX_OUTSTANDING} codes outstanding");
            return refuse("too_many_outstanding");
        }
    };
    let mut message = Message::new(MessageKind::ResetCode, user.name.clone());
    message.subject = "Your PIN reset code".to_string();
    message.body = format!(
        "Your PIN reset code is: {code}\n\
         It is valid for {lifetime} and can be used once. Enter it on the ResetPIN page to get a new PIN.\n\
         If you did not ask for it, ignore this message: your PIN stays as it is.\n",
        code = code.as_str(),
        lifetime = super::describe_lifetime(ttl),
    );
    message.values.insert("code".into(), code.to_string());
    match app.transports.send_blocking(&recipient, message) {
        Ok(transport) => {
            tracing::info!(user = ?user.name, transport = %transport, "ResetPIN code sent");
            audit_row(app, "reset-code", &user.name, source, None);
            Ok(())
        }
        Err(e) => {
            app.reset_codes.restore(&user.name, &hash, previous);
            tracing::warn!(user = ?user.name, "ResetPIN code not sent: {e}");
            refuse("transport_failed")
        }
    }
}

/// Redeems a ResetPIN code: spends it whatever the outcome; when it is right,
/// unexpired and the user is enabled and not locked, sets a new random PIN
/// (`[pin] length` digits) and sends it over the user's transport (the old
/// PIN is put back if it cannot be sent).
///
/// Errors: [`ResetError::Failure`] for every wrong input, `Store`.
pub fn redeem_reset_code(
    app: &App,
    username: &str,
    code: &str,
    source: &Source,
) -> Result<(), ResetError> {
    if !valid_name(username) || code.len() > MAX_INPUT_LEN {
        return Err(ResetError::Failure);
    }
    let now = crate::unix_now();
    let refuse = |reason: &str| {
        audit_row(app, "reset-pin", username, source, Some(reason));
        Err(ResetError::Failure)
    };
    let offered = app
        .key
        .keyed_hash(Purpose::ResetCode, code.trim().as_bytes());
    let Some(stored) = app.reset_codes.take(username) else {
        return refuse("no_code_outstanding");
    };
    if !otc::ct_eq(&stored.hash, &offered) {
        return refuse("wrong_code");
    }
    if now > stored.expires_at {
        return refuse("expired_code");
    }
    let Some(user) = app.store.with(|c| users::by_name(c, username))? else {
        return refuse("unknown_user");
    };
    if !user.enabled {
        return refuse("disabled");
    }
    if user.is_locked(now) {
        return refuse("locked");
    }
    let pin = Pin::random(app.config.pin.length);
    let sealed = app
        .key
        .seal(Purpose::Pin, &user.name, pin.as_str().as_bytes());
    app.store
        .transaction(|tx| users::set_pin(tx, &user.name, &sealed))?;
    match crate::admin::server::send_pin(app, &Recipient::of(&user), &pin) {
        Ok(transport) => {
            tracing::info!(user = ?user.name, transport = %transport, "PIN reset on the ResetPIN page and sent");
            audit_row(app, "reset-pin", &user.name, source, None);
            Ok(())
        }
        Err(e) => {
            app.store.transaction(|tx| match &user.pin_sealed {
                Some(old) => users::set_pin(tx, &user.name, old),
                None => users::clear_pin_if(tx, user.id, &sealed),
            })?;
            tracing::warn!(user = ?user.name, "new PIN not sent, the old PIN stays: {e}");
            refuse("transport_failed")
        }
    }
}

/// A security string of the 10 digits in random order (each once), for the
/// change-PIN page: with distinct characters an OTC names its PIN uniquely.
pub fn distinct_string() -> SecurityString {
    let mut digits: Vec<u8> = (b'0'..=b'9').collect();
    digits.shuffle(&mut rand::rngs::OsRng);
    let text: String = digits.into_iter().map(char::from).collect();
    // Ten ASCII digits always parse.
    SecurityString::parse(&text)
        .unwrap_or_else(|_| unreachable!("ten digits are a security string"))
}

/// The PIN whose OTC under `string` (10 distinct characters) is `otc`:
/// each OTC character names the position where it stands (position 10 is
/// digit 0). `None` if a character is not in the string or the length is
/// outside `min..=max`.
pub fn recover_pin(string: &SecurityString, otc: &str, min: usize, max: usize) -> Option<Pin> {
    let chars = string.as_bytes();
    let mut digits = zeroize::Zeroizing::new(String::with_capacity(otc.len()));
    for c in otc.bytes() {
        let pos = chars.iter().position(|&s| s == c)?;
        digits.push(char::from(b'0' + ((pos + 1) % 10) as u8));
    }
    Pin::parse(&digits, min, max).ok()
}

/// Changes `username`'s PIN by the seed product's rule: `otc_old` must be
/// the OTC of `string` under the stored PIN (compared in constant time; a
/// wrong one counts a failure toward lockout), `otc_new1` and `otc_new2`
/// must be equal and name a PIN of allowed length (`[pin] min_length` to
/// `max_length`). The user must exist, be enabled, not locked and have a PIN.
///
/// Errors: [`ResetError::Failure`] for every refusal (reason audited with
/// `source`), `Store`.
pub fn change_pin(
    app: &App,
    string: &SecurityString,
    username: &str,
    otc_old: &str,
    otc_new1: &str,
    otc_new2: &str,
    source: &Source,
) -> Result<(), ResetError> {
    if !valid_name(username) || [otc_old, otc_new1, otc_new2].iter().any(|s| s.len() > 10) {
        return Err(ResetError::Failure);
    }
    let now = crate::unix_now();
    let cfg = &app.config.pin;
    let new_pin = if otc::ct_eq(otc_new1.as_bytes(), otc_new2.as_bytes()) {
        recover_pin(string, otc_new1, cfg.min_length, cfg.max_length)
    } else {
        None
    };
    let (result, rows) = app.store.transaction(|tx| {
        let fail = |reason: &'static str| Ok::<_, StoreError>((Err(reason), Vec::new()));
        let Some(user) = users::by_name(tx, username)? else {
            return fail("unknown_user");
        };
        if !user.enabled {
            return fail("disabled");
        }
        if user.is_locked(now) {
            return fail("locked");
        }
        let old_pin = user
            .pin_sealed
            .as_ref()
            .and_then(|sealed| app.key.open(Purpose::Pin, &user.name, sealed).ok())
            .and_then(|p| Pin::parse(std::str::from_utf8(&p).ok()?, 4, 10).ok());
        let Some(old_pin) = old_pin else {
            return fail("no_pin");
        };
        let expected = zeroize::Zeroizing::new(otc::extract(string, &old_pin));
        let mut rows = Vec::new();
        if !otc::ct_eq(expected.as_bytes(), otc_old.as_bytes()) {
            let (answer, _) = crate::auth::count(
                app,
                tx,
                &user,
                Decision::Reject(RejectReason::WrongCode),
                now,
            )?;
            rows.push(audit::row(
                now,
                "change-pin",
                Some(username),
                source,
                Outcome::Fail,
                Some("wrong_code"),
            ));
            if answer == Decision::Reject(RejectReason::TooManyFailures) {
                rows.push(audit::row(
                    now,
                    "lock",
                    Some(username),
                    source,
                    Outcome::Ok,
                    Some("too_many_failures"),
                ));
            }
            for row in &rows {
                audit_store::insert(tx, row)?;
            }
            return Ok((Err("wrong_code"), rows));
        }
        let Some(new_pin) = new_pin.as_ref() else {
            return fail("bad_new_pin");
        };
        let sealed = app
            .key
            .seal(Purpose::Pin, &user.name, new_pin.as_str().as_bytes());
        users::set_pin(tx, &user.name, &sealed)?;
        let row = audit::row(now, "change-pin", Some(username), source, Outcome::Ok, None);
        audit_store::insert(tx, &row)?;
        rows.push(row);
        Ok((Ok(()), rows))
    })?;
    app.audit.emit(&rows);
    match result {
        Ok(()) => {
            tracing::info!(user = ?username, "PIN changed on the change-PIN page");
            Ok(())
        }
        Err(reason) => {
            if rows.is_empty() {
                audit_row(app, "change-pin", username, source, Some(reason));
            }
            Err(ResetError::Failure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::tests::test_app;

    fn page() -> Source {
        Source::Page {
            addr: "127.0.0.1:1".parse().unwrap(),
        }
    }

    #[test]
    fn distinct_strings_hold_every_digit_once() {
        let s = distinct_string();
        let mut bytes = s.as_bytes().to_vec();
        bytes.sort_unstable();
        assert_eq!(bytes, b"0123456789");
    }

    #[test]
    fn the_new_pin_is_recovered_from_its_otc() {
        let s = SecurityString::parse("7469832150").unwrap();
        for pin in ["1234", "0000", "9081726354", "5550"] {
            let p = Pin::parse(pin, 4, 10).unwrap();
            let otc = otc::extract(&s, &p);
            assert_eq!(recover_pin(&s, &otc, 4, 10).unwrap().as_str(), pin);
        }
        assert!(recover_pin(&s, "12a4", 4, 10).is_none());
        assert!(recover_pin(&s, "123", 4, 10).is_none());
        assert!(recover_pin(&s, "12345", 4, 4).is_none());
    }

    #[test]
    fn change_pin_needs_the_old_otc_and_two_equal_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let app = test_app(dir.path(), "");
        let s = distinct_string();
        let old = Pin::parse("1234", 4, 10).unwrap();
        let new = Pin::parse("9876", 4, 10).unwrap();
        let (o, n) = (otc::extract(&s, &old), otc::extract(&s, &new));
        assert!(change_pin(&app, &s, "alice", &o, &n, "0000", &page()).is_err());
        assert!(change_pin(&app, &s, "alice", &n, &n, &n, &page()).is_err());
        assert!(change_pin(&app, &s, "nobody", &o, &n, &n, &page()).is_err());
        change_pin(&app, &s, "alice", &o, &n, &n, &page()).unwrap();
        let user = app
            .store
            .with(|c| users::by_name(c, "alice"))
            .unwrap()
            .unwrap();
        let pin = app
            .key
            .open(Purpose::Pin, "alice", user.pin_sealed.as_ref().unwrap())
            .unwrap();
        assert_eq!(pin.as_slice(), b"9876");
        // One wrong old OTC was counted.
        assert_eq!(user.failures, 1);
    }

    #[test]
    fn reset_code_is_single_use_and_gives_a_new_pin() {
        let dir = tempfile::tempdir().unwrap();
        let app = test_app(dir.path(), "");
        send_reset_code(&app, "alice", &page()).unwrap();
        assert!(send_reset_code(&app, "nobody", &page()).is_err());
        let code = {
            let mut files: Vec<_> = std::fs::read_dir(dir.path().join("spool"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            let text = std::fs::read_to_string(files.last().unwrap()).unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("Your PIN reset code is: "))
                .unwrap()
                .to_string()
        };
        assert!(redeem_reset_code(&app, "nobody", &code, &page()).is_err());
        redeem_reset_code(&app, "alice", &code, &page()).unwrap();
        assert!(redeem_reset_code(&app, "alice", &code, &page()).is_err());
        let user = app
            .store
            .with(|c| users::by_name(c, "alice"))
            .unwrap()
            .unwrap();
        let pin = app
            .key
            .open(Purpose::Pin, "alice", user.pin_sealed.as_ref().unwrap())
            .unwrap();
        assert_ne!(pin.as_slice(), b"1234");
        // A wrong code burns the live one; a second request within
        // MIN_RESEND_SECS sends nothing and keeps the live one. (Forget the
        // first send, as if MIN_RESEND_SECS had passed.)
        app.reset_codes.sent.lock().unwrap().clear();
        send_reset_code(&app, "alice", &page()).unwrap();
        assert!(send_reset_code(&app, "alice", &page()).is_err());
        assert!(app.reset_codes.codes.lock().unwrap().contains_key("alice"));
        assert!(redeem_reset_code(&app, "alice", "00000000x", &page()).is_err());
        assert!(app.reset_codes.take("alice").is_none());
    }

    #[test]
    fn sends_are_limited_apart_from_the_live_code() {
        let codes = ResetCodes::default();
        let t0 = 1_000_000;
        assert!(codes.replace("alice", vec![1], t0 + 600, t0, 5).is_ok());
        // Spending the code does not lift the resend limit.
        assert!(codes.take("alice").is_some());
        assert!(matches!(
            codes.replace("alice", vec![2], t0 + 600, t0 + 5, 5),
            Err(Refused::TooSoon)
        ));
        let mut now = t0;
        for _ in 1..5 {
            now += MIN_RESEND_SECS;
            codes.take("alice");
            assert!(codes.replace("alice", vec![3], now + 600, now, 5).is_ok());
        }
        codes.take("alice");
        assert!(matches!(
            codes.replace("alice", vec![4], now + 600, now + MIN_RESEND_SECS, 5),
            Err(Refused::HourlyCap)
        ));
        assert!(codes
            .replace("alice", vec![5], t0 + 4000, t0 + HOUR_SECS, 5)
            .is_ok());
        // Other users are not affected.
        assert!(codes.replace("bob", vec![6], t0 + 600, t0 + 5, 5).is_ok());
    }

    #[test]
    fn a_full_send_history_still_admits_new_users() {
        let codes = ResetCodes::default();
        let t0 = 1_000_000;
        for i in 0..MAX_OUTSTANDING + 10 {
            assert!(codes
                .count_send(&format!("u{i}"), t0 + (i / 1000) as i64, 5)
                .is_ok());
        }
        assert!(codes.sent.lock().unwrap().len() <= MAX_OUTSTANDING);
        assert!(codes.count_send("fresh", t0 + 12, 5).is_ok());
        // A recent user is still remembered; the oldest made room.
        let recent = format!("u{}", MAX_OUTSTANDING + 9);
        assert!(codes.count_send(&recent, t0 + 13, 5).is_err());
        let first_second = codes
            .sent
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.last == t0)
            .count();
        assert_eq!(first_second, 1000 - 11);
    }
}
