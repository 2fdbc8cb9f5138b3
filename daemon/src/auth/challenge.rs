//! Two-stage (dual channel) logins for RADIUS clients with `two_stage`.
//!
//! First leg ([`start`]): the Access-Request carries the user's directory
//! password (checked against the local directory's Argon2id hash, or by the
//! user's directory plugin), or nothing when a local user has none. The
//! answer does not reveal who exists: an empty password always gets an
//! Access-Challenge (a decoy, with nothing stored or sent, unless the user
//! is a local user without a directory password), a non-empty one gets a
//! Challenge only when it is right, else a Reject, unknown names included;
//! the RADIUS server pads every first-leg answer to the same minimum time.
//! A user found in a directory plugin gets a record (and a PIN) only once
//! their password was right ([`crate::directory::ensure_user`]). Pinwheel
//! draws a fresh random security string, stores the code the user's PIN
//! makes of it (sealed) under the keyed hash of a random 32-byte State
//! bound to the user and the client, sends the string over the user's
//! transport, and the caller answers Access-Challenge with that State.
//! Second leg ([`answer`]): the request carries the State and the one-time
//! code; the State is taken (single use), must belong to the same user and
//! client and be unexpired, and the code must match exactly. Both legs
//! count failures and write audit rows like [`super::check_code`]. Never
//! logs the string, the code or the password.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use rand::RngCore;

use super::{
    audited, count, decide_and_audit, decision_rows, open_pin, Audited, Credential, Decision,
    RejectReason,
};
use crate::audit::{self, Outcome, Source};
use crate::daemon::App;
use crate::otc::{self, Alphabet, DeviceSeed};
use crate::secrets::Purpose;
use crate::store::{audit as audit_store, challenges, users, StoreError};
use crate::transport::Recipient;
use pinwheel_sdk::{Message, MessageKind};

/// Bytes of a RADIUS State issued with an Access-Challenge.
pub const STATE_LEN: usize = 32;

/// Most outstanding (unexpired) challenges per user: more first legs are
/// refused without sending anything, so nobody can flood a user's mailbox.
pub const MAX_OUTSTANDING_CHALLENGES: i64 = 3;

/// Most first legs waiting for a password check; more are dropped (the NAS
/// retries), so a flood cannot hold every RADIUS slot or much memory.
pub const MAX_WAITING_PASSWORD_CHECKS: usize = 8;

/// Serialises Argon2 password checks (each takes ~19 MiB and much CPU on
/// purpose) and bounds how many wait.
#[derive(Default)]
pub struct PasswordGate {
    running: std::sync::Mutex<()>,
    waiting: std::sync::atomic::AtomicUsize,
}

impl PasswordGate {
    /// Runs `check` alone, or returns `None` when too many already wait.
    fn run(&self, check: impl FnOnce() -> bool) -> Option<bool> {
        use std::sync::atomic::Ordering;
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING_PASSWORD_CHECKS {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let guard = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let ok = check();
        drop(guard);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        Some(ok)
    }
}

/// The outcome of a first leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstLeg {
    /// Answer Access-Challenge with this State.
    Challenge {
        /// The State attribute value.
        state: Vec<u8>,
    },
    /// Answer Access-Reject.
    Reject(RejectReason),
    /// Too many password checks waiting: drop the request (the NAS retries).
    Busy,
}

/// Hashes a password for the local directory (Argon2id, PHC string).
///
/// Errors: the hashing library's message (never the password).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

fn password_matches(stored: Option<&str>, offered: &[u8]) -> bool {
    match stored {
        // An empty password never matches a set one.
        Some(hash) => {
            !offered.is_empty()
                && PasswordHash::new(hash)
                    .map(|h| {
                        argon2::Argon2::default()
                            .verify_password(offered, &h)
                            .is_ok()
                    })
                    .unwrap_or(false)
        }
        // No directory password: the first leg carries none.
        None => offered.is_empty(),
    }
}

/// First leg of a two-stage login from RADIUS client `client`.
///
/// One rule, whoever asks: an empty `password` always gets a Challenge, a
/// real one (string sent, State stored) only for an enabled, unlocked local
/// user without a directory password, otherwise a decoy (nothing stored or
/// sent, a State that never works; the audit row says why, no failure is
/// counted). A non-empty password gets a real Challenge when it is right
/// and a Reject otherwise, unknown names included. The password is checked
/// before a directory user's record is created or a PIN sent. The caller
/// pads the answer's time (`dual_channel.first_leg_min_delay`).
///
/// Errors: store failures only.
pub fn start(
    app: &App,
    username: &str,
    password: &[u8],
    client: &str,
    source: &Source,
) -> Result<FirstLeg, StoreError> {
    let now = crate::unix_now();
    let stored = app.store.with(|c| users::by_name(c, username))?;
    if password.is_empty() {
        let proves_with_nothing = match &stored {
            Some(u) if u.directory == "local" && u.enabled && !u.is_locked(now) => {
                app.store.with(|c| users::password_hash(c, u.id))?.is_none()
            }
            _ => false,
        };
        if !proves_with_nothing {
            let reason = match &stored {
                None => RejectReason::UnknownUser,
                Some(u) if !u.enabled => RejectReason::Disabled,
                Some(u) if u.is_locked(now) => RejectReason::Locked,
                Some(_) => RejectReason::WrongPassword,
            };
            return decoy(app, username, source, now, reason);
        }
        return match challenge(app, username, true, client, source, now)? {
            // Even a real user's refusal looks like everyone else's answer
            // (the audit row has the reason).
            FirstLeg::Reject(_) => Ok(FirstLeg::Challenge {
                state: random_state(),
            }),
            other => Ok(other),
        };
    }
    // A password: checked before anything is created or sent. Users of a
    // directory plugin are checked by the directory (a bind), local users
    // against their Argon2id hash (slow on purpose: outside the store lock,
    // one at a time). Unknown names are not hashed: the caller's minimum
    // delay hides the time.
    let password_ok = match &stored {
        Some(u) if !u.enabled || u.is_locked(now) => false,
        Some(u) if u.directory != "local" => {
            match crate::directory::check_password(app, u, password) {
                Ok(ok) => ok,
                Err(e) => return unavailable(app, username, source, now, &e),
            }
        }
        Some(u) => match app.store.with(|c| users::password_hash(c, u.id))? {
            Some(hash) => match app
                .password_checks
                .run(|| password_matches(Some(&hash), password))
            {
                Some(ok) => ok,
                None => return Ok(FirstLeg::Busy),
            },
            None => false,
        },
        None => match crate::directory::lookup_blocking(app, username) {
            Ok(None) => return refuse(app, username, source, now, RejectReason::UnknownUser),
            Ok(Some(found)) => {
                match crate::directory::check_password_in(app, &found.directory, username, password)
                {
                    Ok(true) => true,
                    // No record is made for a wrong password.
                    Ok(false) => {
                        return refuse(app, username, source, now, RejectReason::WrongPassword)
                    }
                    Err(e) => return unavailable(app, username, source, now, &e),
                }
            }
            Err(e) => return unavailable(app, username, source, now, &e),
        },
    };
    if password_ok && stored.as_ref().is_none_or(|u| u.directory != "local") {
        // The directory password was right: now (and only now) a directory
        // user gets a record and a PIN; outside any store transaction, as
        // directory calls can take seconds.
        if let Err(e) = crate::directory::ensure_user(app, username, source) {
            return unavailable(app, username, source, now, &e);
        }
    }
    challenge(app, username, password_ok, client, source, now)
}

/// A fresh random State.
fn random_state() -> Vec<u8> {
    let mut state = vec![0u8; STATE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut state);
    state
}

/// Writes the audit row of a first leg refused here (`reason`; nothing
/// counted) and emits it.
fn audit_refusal(
    app: &App,
    username: &str,
    source: &Source,
    now: i64,
    reason: &str,
) -> Result<(), StoreError> {
    let row = audit::row(
        now,
        "challenge",
        Some(username),
        source,
        Outcome::Fail,
        Some(reason),
    );
    app.store.with(|c| audit_store::insert(c, &row))?;
    app.audit.emit(&[row]);
    Ok(())
}

/// The decoy answer to an empty password from anyone but a local user
/// without a directory password: a Challenge like a real one, with a State
/// that was never stored (the second leg fails as a bad State), nothing sent.
fn decoy(
    app: &App,
    username: &str,
    source: &Source,
    now: i64,
    reason: RejectReason,
) -> Result<FirstLeg, StoreError> {
    audit_refusal(app, username, source, now, reason.code())?;
    Ok(FirstLeg::Challenge {
        state: random_state(),
    })
}

/// Access-Reject for a name with no record (unknown, or a directory user
/// whose password was wrong): audited, nothing stored or counted.
fn refuse(
    app: &App,
    username: &str,
    source: &Source,
    now: i64,
    reason: RejectReason,
) -> Result<FirstLeg, StoreError> {
    audit_refusal(app, username, source, now, reason.code())?;
    Ok(FirstLeg::Reject(reason))
}

/// Access-Reject because the directory could not answer: not the user's
/// fault, so no failure is counted. The warning is rate-limited (a hung
/// directory under a flood of first legs must not fill the journal).
fn unavailable(
    app: &App,
    username: &str,
    source: &Source,
    now: i64,
    e: &crate::directory::DirectoryError,
) -> Result<FirstLeg, StoreError> {
    if let Some(suppressed) = DIRECTORY_WARNINGS.allow() {
        if suppressed > 0 {
            tracing::warn!("{suppressed} further directory warnings of first legs not logged");
        }
        tracing::warn!(user = ?username, "directory password not checked: {e}");
    }
    audit_refusal(app, username, source, now, "directory_unavailable")?;
    Ok(FirstLeg::Reject(RejectReason::Internal))
}

/// At most [`WarnLimiter::PER_SECOND`] warning lines a second; counts the rest.
struct WarnLimiter {
    window: std::sync::Mutex<Option<(std::time::Instant, u32, u64)>>,
}

impl WarnLimiter {
    const PER_SECOND: u32 = 5;

    /// Whether to log now; `Some(n)`: `n` lines were suppressed before.
    fn allow(&self) -> Option<u64> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        match w.as_mut() {
            Some((start, lines, suppressed))
                if now.duration_since(*start) < std::time::Duration::from_secs(1) =>
            {
                if *lines < Self::PER_SECOND {
                    *lines += 1;
                    Some(0)
                } else {
                    *suppressed += 1;
                    None
                }
            }
            _ => {
                let before = w.map_or(0, |(_, _, s)| s);
                *w = Some((now, 1, 0));
                Some(before)
            }
        }
    }
}

/// Directory warnings of first legs.
static DIRECTORY_WARNINGS: WarnLimiter = WarnLimiter {
    window: std::sync::Mutex::new(None),
};

/// The stored part of a first leg whose password was checked
/// (`password_ok`): a challenge row and the string sent, or a Reject with
/// the failure counted.
fn challenge(
    app: &App,
    username: &str,
    password_ok: bool,
    client: &str,
    source: &Source,
    now: i64,
) -> Result<FirstLeg, StoreError> {
    let state = random_state();
    let state_hash = app.key.keyed_hash(Purpose::ChallengeState, &state);
    let ttl = app.config.dual_channel.ttl.as_secs() as i64;
    let (outcome, rows, delivery) = app.store.transaction(|tx| {
        let outcome = first_leg(
            app,
            tx,
            username,
            password_ok,
            client,
            &state_hash,
            now + ttl,
            now,
        )?;
        let (rows, delivery) = match &outcome {
            Ok((user_id, recipient, string)) => (
                vec![audit::row(
                    now,
                    "challenge",
                    Some(username),
                    source,
                    Outcome::Ok,
                    None,
                )],
                Some((*user_id, recipient.clone(), string.clone())),
            ),
            Err(reason) => {
                let answer = Decision::Reject(*reason);
                // A lock caused by this attempt was caused by its wrong password.
                let verdict = if *reason == RejectReason::TooManyFailures {
                    Decision::Reject(RejectReason::WrongPassword)
                } else {
                    answer
                };
                (decision_rows(now, username, source, answer, verdict), None)
            }
        };
        for row in &rows {
            audit_store::insert(tx, row)?;
        }
        Ok::<_, StoreError>((outcome.map(|_| ()), rows, delivery))
    })?;
    app.audit.emit(&rows);
    if let Err(reason) = outcome {
        return Ok(FirstLeg::Reject(reason));
    }
    let Some((_, recipient, string)) = delivery else {
        return Ok(FirstLeg::Reject(RejectReason::Internal));
    };
    let mut message = Message::new(MessageKind::SecurityString, username);
    message.subject = "Your security string".to_string();
    message.body = format!(
        "Your security string is: {string}\n\
         Positions: 1234567890\n\
         Type the characters at the positions your PIN names, in PIN order. It is valid for {}.\n",
        crate::provision::describe_lifetime(app.config.dual_channel.ttl)
    );
    message.values.insert("string".into(), string.clone());
    if let Err(e) = app.transports.send_blocking(&recipient, message) {
        tracing::warn!(user = ?username, "security string not delivered: {e}");
        app.store
            .with(|c| challenges::take(c, &state_hash).map(|_| ()))?;
        let row = audit::row(
            now,
            "challenge",
            Some(username),
            source,
            Outcome::Fail,
            Some("not_delivered"),
        );
        app.store.with(|c| audit_store::insert(c, &row))?;
        app.audit.emit(&[row]);
        return Ok(FirstLeg::Reject(RejectReason::NotDelivered));
    }
    Ok(FirstLeg::Challenge { state })
}

/// The first-leg decision inside the caller's transaction: on success the
/// challenge row is stored and (user id, recipient, string) returned.
#[allow(clippy::too_many_arguments)]
fn first_leg(
    app: &App,
    tx: &rusqlite::Connection,
    username: &str,
    password_ok: bool,
    client: &str,
    state_hash: &[u8],
    expires_at: i64,
    now: i64,
) -> Result<Result<(i64, Recipient, String), RejectReason>, StoreError> {
    let Some(user) = users::by_name(tx, username)? else {
        return Ok(Err(RejectReason::UnknownUser));
    };
    if !user.enabled {
        return Ok(Err(RejectReason::Disabled));
    }
    if user.is_locked(now) {
        return Ok(Err(RejectReason::Locked));
    }
    if !password_ok {
        return match count(
            app,
            tx,
            &user,
            Decision::Reject(RejectReason::WrongPassword),
            now,
        )?
        .0
        {
            Decision::Reject(r) => Ok(Err(r)),
            Decision::Accept => Ok(Err(RejectReason::WrongPassword)),
        };
    }
    let recipient = Recipient::of(&user);
    if app.transports.choose(&recipient).is_none() {
        return Ok(Err(RejectReason::NotDelivered));
    }
    if challenges::outstanding(tx, user.id, now)? >= MAX_OUTSTANDING_CHALLENGES {
        return Ok(Err(RejectReason::TooManyChallenges));
    }
    if user.pin_sealed.is_none() {
        return Ok(Err(RejectReason::NoPin));
    }
    let Some(pin) = open_pin(app, &user) else {
        return Ok(Err(RejectReason::Internal));
    };
    let alphabet = Alphabet::parse(&app.config.strings.alphabet).unwrap_or(Alphabet::Digits);
    let Ok(string) = otc::derive_string(&DeviceSeed::random(), 0, 1, alphabet) else {
        return Ok(Err(RejectReason::Internal));
    };
    let code = zeroize::Zeroizing::new(otc::extract(&string, &pin));
    let row = challenges::ChallengeRow {
        user_id: user.id,
        client: client.to_string(),
        otc_sealed: app
            .key
            .seal(Purpose::ChallengeCode, &user.name, code.as_bytes()),
        expires_at,
    };
    challenges::insert(tx, state_hash, &row, now)?;
    Ok(Ok((user.id, recipient, string.as_str().to_string())))
}

/// Second leg: `state` from the request's State attribute, `credential` the
/// code typed (PAP) or a CHAP response over it. The State is spent whatever
/// the outcome. Returns the answer and, for an Accept, the user's groups.
///
/// Errors: store failures only.
pub fn answer(
    app: &App,
    username: &str,
    state: &[u8],
    credential: &Credential<'_>,
    client: &str,
    source: &Source,
) -> Result<(Decision, Vec<String>), StoreError> {
    let now = crate::unix_now();
    let state_hash = app.key.keyed_hash(Purpose::ChallengeState, state);
    decide_and_audit(app, username, source, now, |tx| {
        second_leg(app, tx, username, &state_hash, credential, client, now)
    })
}

/// [`answer`] inside a transaction the caller owns and commits (the store's
/// decision thread): the audit rows are written, and returned to be emitted
/// after the commit.
///
/// Errors: store failures only.
#[allow(clippy::too_many_arguments)]
pub fn answer_in(
    app: &App,
    conn: &rusqlite::Connection,
    username: &str,
    state: &[u8],
    credential: &Credential<'_>,
    client: &str,
    source: &Source,
    now: i64,
) -> Result<Audited, StoreError> {
    let state_hash = app.key.keyed_hash(Purpose::ChallengeState, state);
    audited(conn, username, source, now, |tx| {
        second_leg(app, tx, username, &state_hash, credential, client, now)
    })
}

/// The second-leg decision inside the caller's transaction.
fn second_leg(
    app: &App,
    tx: &rusqlite::Connection,
    username: &str,
    state_hash: &[u8],
    credential: &Credential<'_>,
    client: &str,
    now: i64,
) -> Result<(Decision, Decision, Vec<String>), StoreError> {
    let challenge = challenges::take(tx, state_hash)?;
    let early = |r| (Decision::Reject(r), Decision::Reject(r), Vec::new());
    Ok(match users::by_name(tx, username)? {
        None => early(RejectReason::UnknownUser),
        Some(user) if !user.enabled => early(RejectReason::Disabled),
        Some(user) if user.is_locked(now) => early(RejectReason::Locked),
        Some(user) => {
            let verdict = match challenge {
                Some(c) if c.user_id == user.id && c.client == client && now <= c.expires_at => {
                    match app
                        .key
                        .open(Purpose::ChallengeCode, &user.name, &c.otc_sealed)
                    {
                        Ok(expected) if credential.proves(&expected) => Decision::Accept,
                        Ok(_) => Decision::Reject(RejectReason::WrongCode),
                        Err(_) => Decision::Reject(RejectReason::Internal),
                    }
                }
                _ => Decision::Reject(RejectReason::BadState),
            };
            let (answer, verdict) = count(app, tx, &user, verdict, now)?;
            (answer, verdict, user.groups)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::tests::test_app;

    fn spool_string(dir: &std::path::Path) -> String {
        let mut files: Vec<_> = std::fs::read_dir(dir.join("spool"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("security-string"))
            .collect();
        files.sort();
        let text = std::fs::read_to_string(files.last().unwrap()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("Your security string is: "))
            .unwrap()
            .to_string()
    }

    fn code_for(string: &str, pin: &str) -> String {
        let s = otc::SecurityString::parse(string).unwrap();
        otc::extract(&s, &otc::Pin::parse(pin, 4, 10).unwrap())
    }

    #[test]
    fn challenge_then_code_once() {
        let dir = tempfile::tempdir().unwrap();
        let app = test_app(dir.path(), "");
        let src = Source::Admin;
        let FirstLeg::Challenge { state } = start(&app, "alice", b"", "nas", &src).unwrap() else {
            panic!("challenge expected")
        };
        assert_eq!(state.len(), STATE_LEN);
        let code = code_for(&spool_string(dir.path()), "1234");
        assert_eq!(
            answer(&app, "alice", &state, &Credential::Pap(&code), "nas", &src)
                .unwrap()
                .0,
            Decision::Accept
        );
        assert_eq!(
            answer(&app, "alice", &state, &Credential::Pap(&code), "nas", &src)
                .unwrap()
                .0,
            Decision::Reject(RejectReason::BadState),
            "a State works once"
        );
    }

    #[test]
    fn state_is_bound_to_user_client_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let app = test_app(
            dir.path(),
            "[dual_channel]\nttl = \"1s\"\n[policy]\nmax_failures = 100\n",
        );
        let sealed = app.key.seal(Purpose::Pin, "bob", b"1234");
        app.store
            .with(|c| users::insert(c, "bob", Some("b@example.org"), None, &sealed, 0).map(|_| ()))
            .unwrap();
        let src = Source::Admin;
        let leg = |user: &str| match start(&app, user, b"", "nas", &src).unwrap() {
            FirstLeg::Challenge { state } => state,
            other => panic!("{other:?}"),
        };
        let state = leg("alice");
        let code = code_for(&spool_string(dir.path()), "1234");
        let bad = Decision::Reject(RejectReason::BadState);
        assert_eq!(
            answer(&app, "bob", &state, &Credential::Pap(&code), "nas", &src)
                .unwrap()
                .0,
            bad,
            "other user"
        );
        let state = leg("alice");
        let code = code_for(&spool_string(dir.path()), "1234");
        assert_eq!(
            answer(
                &app,
                "alice",
                &state,
                &Credential::Pap(&code),
                "other-nas",
                &src
            )
            .unwrap()
            .0,
            bad,
            "other client"
        );
        let mut state = leg("alice");
        let code = code_for(&spool_string(dir.path()), "1234");
        state[0] ^= 1;
        assert_eq!(
            answer(&app, "alice", &state, &Credential::Pap(&code), "nas", &src)
                .unwrap()
                .0,
            bad,
            "flipped bit"
        );
        let state = leg("alice");
        let code = code_for(&spool_string(dir.path()), "1234");
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(
            answer(&app, "alice", &state, &Credential::Pap(&code), "nas", &src)
                .unwrap()
                .0,
            bad,
            "expired"
        );
        assert_eq!(
            answer(
                &app,
                "alice",
                b"0123456789abcdef",
                &Credential::Pap(&code),
                "nas",
                &src
            )
            .unwrap()
            .0,
            bad,
            "random printable State"
        );
    }

    #[test]
    fn at_most_three_outstanding_challenges_per_user() {
        let dir = tempfile::tempdir().unwrap();
        let app = test_app(dir.path(), "");
        let src = Source::Admin;
        for _ in 0..MAX_OUTSTANDING_CHALLENGES {
            assert!(matches!(
                start(&app, "alice", b"", "nas", &src).unwrap(),
                FirstLeg::Challenge { .. }
            ));
        }
        // The refusal looks like any other empty-password answer: a decoy
        // challenge (the audit row says why), nothing sent.
        assert!(matches!(
            start(&app, "alice", b"", "nas", &src).unwrap(),
            FirstLeg::Challenge { .. }
        ));
        let rows = app
            .store
            .with(|c| audit_store::query(c, Some("alice"), 0, 10))
            .unwrap();
        assert!(
            rows.iter()
                .any(|r| r.reason.as_deref() == Some("too_many_challenges")),
            "{rows:?}"
        );
        let sent = std::fs::read_dir(dir.path().join("spool")).unwrap().count();
        assert_eq!(
            sent as i64, MAX_OUTSTANDING_CHALLENGES,
            "one message per challenge, none for the refused one"
        );
    }

    #[test]
    fn password_gate_bounds_waiting_checks() {
        let gate = std::sync::Arc::new(PasswordGate::default());
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        // One check runs and blocks; MAX - 1 more wait behind it.
        let holders: Vec<_> = (0..MAX_WAITING_PASSWORD_CHECKS)
            .map(|_| {
                let gate = gate.clone();
                let rx = rx.clone();
                std::thread::spawn(move || {
                    gate.run(|| {
                        let _ = rx.lock().unwrap().recv();
                        true
                    })
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(gate.run(|| true), None, "one more is refused");
        for _ in 0..MAX_WAITING_PASSWORD_CHECKS {
            tx.send(()).unwrap();
        }
        for h in holders {
            assert_eq!(h.join().unwrap(), Some(true));
        }
        assert_eq!(gate.run(|| true), Some(true));
    }

    #[test]
    fn directory_password_is_checked_in_the_first_leg() {
        let dir = tempfile::tempdir().unwrap();
        let app = test_app(dir.path(), "");
        let hash = hash_password("correct horse").unwrap();
        assert!(!hash.contains("correct"));
        app.store
            .with(|c| users::set_password_hash(c, "alice", Some(&hash)))
            .unwrap();
        let src = Source::Admin;
        // An empty password when one is set: a decoy challenge (nothing
        // stored or sent) whose State fails.
        let sent = || std::fs::read_dir(dir.path().join("spool")).map_or(0, |d| d.count());
        let FirstLeg::Challenge { state } = start(&app, "alice", b"", "nas", &src).unwrap() else {
            panic!("empty password: a decoy challenge")
        };
        assert_eq!(sent(), 0, "nothing sent");
        assert_eq!(
            answer(&app, "alice", &state, &Credential::Pap("1234"), "nas", &src)
                .unwrap()
                .0,
            Decision::Reject(RejectReason::BadState)
        );
        assert_eq!(
            start(&app, "alice", b"wrong", "nas", &src).unwrap(),
            FirstLeg::Reject(RejectReason::WrongPassword)
        );
        assert!(matches!(
            start(&app, "alice", b"correct horse", "nas", &src).unwrap(),
            FirstLeg::Challenge { .. }
        ));
        assert_eq!(sent(), 1, "one string for the right password");
        // An unknown user with a password looks like a wrong password.
        assert_eq!(
            start(&app, "nobody", b"guess", "nas", &src).unwrap(),
            FirstLeg::Reject(RejectReason::UnknownUser)
        );
        // Unknown users are challenged too (nothing stored, nothing sent),
        // and their second leg fails.
        let FirstLeg::Challenge { state } = start(&app, "nobody", b"", "nas", &src).unwrap() else {
            panic!("unknown users look like users without a password")
        };
        assert_eq!(
            answer(
                &app,
                "nobody",
                &state,
                &Credential::Pap("1234"),
                "nas",
                &src
            )
            .unwrap()
            .0,
            Decision::Reject(RejectReason::UnknownUser)
        );
    }
}
