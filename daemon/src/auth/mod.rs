//! The one rule that decides whether a code is right for a user.
//!
//! RADIUS and the agent API call [`check_code`]; the pages will call it too.
//! In one transaction it loads the user, refuses disabled and locked users
//! without looking at the code, checks the code against the user's device
//! (security strings: spend the index, then compare; OATH: HOTP/TOTP with
//! replay protection), counts failures and locks the user after
//! `[policy] max_failures`, writes the audit row, and commits, all before it
//! returns, so a caller that answers afterwards never answers about an
//! uncommitted decision. The store's lock is held across read-check-write:
//! two requests with one code cannot both pass. It never logs the code, the
//! PIN or the strings; the reason it returns is for audit and trusted agents
//! only and must not reach a NAS.

pub mod challenge;

use crate::audit::{self, Outcome, Source};
use crate::daemon::App;
use crate::otc::{self, oath, Alphabet, DeviceSeed, Pin, Verdict};
use crate::secrets::Purpose;
use crate::store::{audit as audit_store, devices, users, StoreError};

/// The answer for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The code is right and has now been spent.
    Accept,
    /// Anything else. The reason is for the audit trail and trusted agents.
    Reject(RejectReason),
}

/// Why a request was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// No such user.
    UnknownUser,
    /// The user is disabled (the code was not looked at).
    Disabled,
    /// The user is locked (the code was not looked at).
    Locked,
    /// The user has no provisioned device.
    NoDevice,
    /// The user has no PIN.
    NoPin,
    /// The input is not in the expected form.
    Malformed,
    /// The string index was spent before.
    IndexUsed,
    /// The OATH code was accepted before (same TOTP step or HOTP counter).
    Replay,
    /// The code does not match.
    WrongCode,
    /// The code did not match and this failure reached `max_failures`: the user is now locked.
    TooManyFailures,
    /// Two-stage first leg: the directory password is wrong.
    WrongPassword,
    /// Two-stage second leg: the State is unknown, spent, expired, or was
    /// issued to another user or client.
    BadState,
    /// Two-stage first leg: the security string could not be sent.
    NotDelivered,
    /// Two-stage first leg: the user already has the most outstanding challenges.
    TooManyChallenges,
    /// CHAP (or another challenge-response method) where the expected code
    /// is not known in clear: security strings, or OATH with a PIN.
    ChapUnsupported,
    /// A stored value could not be opened (wrong master key or corrupted row).
    Internal,
}

/// What the user proved, as the request carried it.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// The code in clear (RADIUS PAP User-Password, the agent API).
    Pap(&'a str),
    /// RADIUS CHAP (RFC 2865 §5.3, RFC 1994): the response is
    /// MD5(id || code || challenge).
    Chap {
        /// The CHAP identifier (first octet of CHAP-Password).
        id: u8,
        /// The 16-octet response.
        response: [u8; 16],
        /// CHAP-Challenge, or the Request Authenticator when absent.
        challenge: &'a [u8],
    },
    /// RADIUS MS-CHAPv2 (RFC 2759 in RFC 2548 attributes).
    MsChapV2 {
        /// User-Name as received (a `DOMAIN\` prefix is ignored).
        username: &'a [u8],
        /// MS-CHAP-Challenge (the authenticator challenge).
        authenticator_challenge: [u8; 16],
        /// The parsed MS-CHAP2-Response.
        response: &'a crate::radius::mschap::MsChap2Response,
        /// Set to the authenticator response (`S=...`) when the response
        /// proves a code, for the MS-CHAP2-Success attribute.
        success: &'a std::cell::RefCell<Option<String>>,
    },
}

impl Credential<'_> {
    /// Whether this credential proves knowledge of `expected`, compared in
    /// constant time.
    pub fn proves(&self, expected: &[u8]) -> bool {
        match self {
            Credential::Pap(input) => otc::ct_eq(expected, input.as_bytes()),
            Credential::Chap {
                id,
                response,
                challenge,
            } => {
                use md5::{Digest, Md5};
                let digest = Md5::new()
                    .chain_update([*id])
                    .chain_update(expected)
                    .chain_update(challenge)
                    .finalize();
                otc::ct_eq(&digest, response)
            }
            Credential::MsChapV2 {
                username,
                authenticator_challenge,
                response,
                success,
            } => {
                use crate::radius::mschap;
                let Ok(code) = std::str::from_utf8(expected) else {
                    return false;
                };
                let ok = mschap::verify(authenticator_challenge, response, username, code);
                if ok {
                    *success.borrow_mut() = Some(mschap::authenticator_response(
                        code,
                        &response.nt_response,
                        &response.peer_challenge,
                        authenticator_challenge,
                        username,
                    ));
                }
                ok
            }
        }
    }
}

impl RejectReason {
    /// Stable reason code for logs and audit.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::UnknownUser => "unknown_user",
            RejectReason::Disabled => "disabled",
            RejectReason::Locked => "locked",
            RejectReason::NoDevice => "no_device",
            RejectReason::NoPin => "no_pin",
            RejectReason::Malformed => "malformed_code",
            RejectReason::IndexUsed => "index_used",
            RejectReason::Replay => "replay",
            RejectReason::WrongCode => "wrong_code",
            RejectReason::TooManyFailures => "too_many_failures",
            RejectReason::WrongPassword => "wrong_password",
            RejectReason::BadState => "bad_state",
            RejectReason::NotDelivered => "not_delivered",
            RejectReason::TooManyChallenges => "too_many_challenges",
            RejectReason::ChapUnsupported => "chap_not_supported",
            RejectReason::Internal => "internal_error",
        }
    }

    /// Whether this counts as a failed attempt towards the lockout.
    fn counts_as_failure(self) -> bool {
        matches!(
            self,
            RejectReason::Malformed
                | RejectReason::IndexUsed
                | RejectReason::Replay
                | RejectReason::WrongCode
                | RejectReason::WrongPassword
                | RejectReason::BadState
        )
    }
}

/// Decides whether `input` is right for `username` (security strings: OTC
/// followed by the 2-digit index, or the legacy `OTC,index`; OATH: the code,
/// or PIN then code when required), spending what it must, counting the
/// failure or clearing the count, auditing the decision as coming from
/// `source`, and committing before returning.
///
/// Errors: only store failures ([`StoreError`]); every wrong input is a
/// [`Decision::Reject`].
pub fn check_code(
    app: &App,
    username: &str,
    input: &str,
    source: &Source,
) -> Result<Decision, StoreError> {
    check_credential(app, username, &Credential::Pap(input), source)
}

/// [`check_code`] for any [`Credential`]: PAP as there; CHAP for OATH
/// tokens without a PIN (every code of the window is tried against the
/// response), rejected with [`RejectReason::ChapUnsupported`] otherwise.
///
/// Errors: only store failures.
pub fn check_credential(
    app: &App,
    username: &str,
    credential: &Credential<'_>,
    source: &Source,
) -> Result<Decision, StoreError> {
    check_credential_with_groups(app, username, credential, source).map(|(d, _)| d)
}

/// [`check_credential`], also returning the user's groups when the answer is
/// an Accept (read in the same transaction, for the NAS's reply).
///
/// Errors: only store failures.
pub fn check_credential_with_groups(
    app: &App,
    username: &str,
    credential: &Credential<'_>,
    source: &Source,
) -> Result<(Decision, Vec<String>), StoreError> {
    let now = crate::unix_now();
    decide_and_audit(app, username, source, now, |tx| {
        decide(app, tx, username, credential, now)
    })
}

/// A decision made inside a transaction, with the audit rows already written
/// in it; [`Audited::emit`] them once that transaction is committed.
#[derive(Debug)]
pub struct Audited {
    /// The answer.
    pub decision: Decision,
    /// The user's groups (for an Accept; empty otherwise).
    pub groups: Vec<String>,
    /// The audit rows written with the decision.
    pub rows: Vec<audit::AuditRow>,
}

impl Audited {
    /// Sends the rows to syslog and the daemon log. Call only after the
    /// decision's transaction committed.
    pub fn emit(&self, app: &App) {
        app.audit.emit(&self.rows);
    }
}

/// [`check_credential_with_groups`] inside a transaction the caller owns and
/// commits (the store's decision thread, [`crate::store::Store::submit`]):
/// decides, writes the audit rows, and returns them to be emitted after the
/// commit. Nothing is answered from here: the caller answers only after the
/// commit.
///
/// Errors: only store failures (the caller's savepoint is then rolled back).
pub fn decide_in(
    app: &App,
    conn: &rusqlite::Connection,
    username: &str,
    credential: &Credential<'_>,
    source: &Source,
    now: i64,
) -> Result<Audited, StoreError> {
    audited(conn, username, source, now, |tx| {
        decide(app, tx, username, credential, now)
    })
}

/// What a decision function returns: the answer, the verdict on the code
/// itself (they differ when this failure locked the user), and the user's
/// groups (for an Accept).
type Decided = (Decision, Decision, Vec<String>);

/// Runs decision `f` and writes its audit rows, inside the caller's
/// transaction.
fn audited(
    conn: &rusqlite::Connection,
    username: &str,
    source: &Source,
    now: i64,
    f: impl FnOnce(&rusqlite::Connection) -> Result<Decided, StoreError>,
) -> Result<Audited, StoreError> {
    let (decision, verdict, groups) = f(conn)?;
    let rows = decision_rows(now, username, source, decision, verdict);
    for row in &rows {
        audit_store::insert(conn, row)?;
    }
    let groups = if decision == Decision::Accept {
        groups
    } else {
        Vec::new()
    };
    Ok(Audited {
        decision,
        groups,
        rows,
    })
}

/// Runs decision `f` (returning the answer and the verdict, as [`count`]
/// does) in a grouped transaction together with its audit rows, and emits
/// the rows once committed. Grouped: concurrent decisions share one commit
/// (one fsync), each still made alone and in order, none answered before its
/// commit.
fn decide_and_audit(
    app: &App,
    username: &str,
    source: &Source,
    now: i64,
    f: impl FnOnce(&rusqlite::Connection) -> Result<Decided, StoreError>,
) -> Result<(Decision, Vec<String>), StoreError> {
    let done = app
        .store
        .transaction_grouped(|tx| audited(tx, username, source, now, f))?;
    done.emit(app);
    Ok((done.decision, done.groups))
}

/// The decision itself, inside the caller's transaction.
/// The answer, and the verdict on the code itself (they differ when this
/// failure locked the user: the answer is then
/// [`RejectReason::TooManyFailures`]).
fn decide(
    app: &App,
    tx: &rusqlite::Connection,
    username: &str,
    credential: &Credential<'_>,
    now: i64,
) -> Result<Decided, StoreError> {
    let early = |r| Ok((Decision::Reject(r), Decision::Reject(r), Vec::new()));
    let Some(user) = users::by_name(tx, username)? else {
        return early(RejectReason::UnknownUser);
    };
    if !user.enabled {
        return early(RejectReason::Disabled);
    }
    if user.is_locked(now) {
        return early(RejectReason::Locked);
    }
    let Some(device) = devices::by_user(tx, user.id)? else {
        return early(RejectReason::NoDevice);
    };
    let verdict = match (device.mode.as_str(), credential) {
        ("strings", Credential::Pap(input)) => check_strings(app, tx, &user, &device, input)?,
        ("oath", Credential::Pap(input)) => check_oath(app, tx, &user, &device, input, now)?,
        ("oath", challenge_response) => {
            check_oath_chap(app, tx, &user, &device, challenge_response, now)?
        }
        ("strings", _) => Decision::Reject(RejectReason::ChapUnsupported),
        (other, _) => {
            tracing::error!(user = ?user.name, mode = other, "device has an unknown mode");
            Decision::Reject(RejectReason::Internal)
        }
    };
    let (answer, verdict) = count(app, tx, &user, verdict, now)?;
    Ok((answer, verdict, user.groups))
}

/// Clears the user's failure count after an Accept, or counts a failure
/// and locks the user once `max_failures` is reached. Returns the answer
/// ([`RejectReason::TooManyFailures`] when this failure locked the user) and
/// the verdict it was given.
///
/// The count is not reset by a lock, only by a success or an admin unlock: once
/// locked, every further failure locks again for twice as long as the last
/// time (up to a day), so slow guessing does not get `max_failures` fresh
/// tries after each lock.
pub(crate) fn count(
    app: &App,
    tx: &rusqlite::Connection,
    user: &users::UserRow,
    verdict: Decision,
    now: i64,
) -> Result<(Decision, Decision), StoreError> {
    let user_id = user.id;
    match verdict {
        // `user` was read in this transaction: nothing to clear when the
        // count is already 0 (the usual case), so no write.
        Decision::Accept if user.failures == 0 => {}
        Decision::Accept => users::reset_failures(tx, user_id)?,
        Decision::Reject(reason) if reason.counts_as_failure() => {
            let policy = &app.config.policy;
            let failures = users::record_failure(tx, user_id)?;
            if failures >= policy.max_failures {
                let until = match policy.lockout.as_secs() {
                    0 => users::LOCKED_UNTIL_UNLOCKED,
                    secs => {
                        let doublings = (failures - policy.max_failures).min(16);
                        let secs = secs.saturating_mul(1u64 << doublings).min(MAX_LOCKOUT_SECS);
                        now.saturating_add(secs as i64)
                    }
                };
                users::set_lock_by_id(tx, user_id, until)?;
                return Ok((Decision::Reject(RejectReason::TooManyFailures), verdict));
            }
        }
        Decision::Reject(_) => {}
    }
    Ok((verdict, verdict))
}

/// Longest automatic lockout, in seconds (one day).
pub const MAX_LOCKOUT_SECS: u64 = 24 * 3600;

/// Audit rows for an authentication decision (plus the lock it caused);
/// `verdict` is the verdict on the code, whose reason the auth row records.
fn decision_rows(
    now: i64,
    username: &str,
    source: &Source,
    decision: Decision,
    verdict: Decision,
) -> Vec<audit::AuditRow> {
    let (outcome, reason) = match verdict {
        Decision::Accept => (Outcome::Pass, None),
        Decision::Reject(r) => (Outcome::Fail, Some(r.code())),
    };
    let mut rows = vec![audit::row(
        now,
        "auth",
        Some(username),
        source,
        outcome,
        reason,
    )];
    if decision == Decision::Reject(RejectReason::TooManyFailures) {
        rows.push(audit::row(
            now,
            "lock",
            Some(username),
            source,
            Outcome::Ok,
            Some("too_many_failures"),
        ));
    }
    rows
}

fn open_pin(app: &App, user: &users::UserRow) -> Option<Pin> {
    let sealed = user.pin_sealed.as_ref()?;
    let pin = app.key.open(Purpose::Pin, &user.name, sealed).ok()?;
    Pin::parse(std::str::from_utf8(&pin).ok()?, 4, 10).ok()
}

/// The OATH parameters and secret of a device, opened.
pub(crate) fn open_oath(
    app: &App,
    user: &users::UserRow,
    device: &devices::DeviceRow,
) -> Option<(oath::OathParams, zeroize::Zeroizing<Vec<u8>>)> {
    let state = device.oath.as_ref()?;
    let algorithm = oath::Algorithm::parse(&state.algorithm).ok()?;
    let kind = match state.kind.as_str() {
        "hotp" => oath::OathKind::Hotp,
        "totp" => oath::OathKind::Totp {
            period: state.period,
        },
        _ => return None,
    };
    let params = oath::OathParams {
        kind,
        algorithm,
        digits: state.digits,
    };
    params.validate().ok()?;
    let secret = app
        .key
        .open(Purpose::OathSecret, &user.name, &device.seed_sealed)
        .ok()?;
    Some((params, secret))
}

fn check_oath(
    app: &App,
    tx: &rusqlite::Connection,
    user: &users::UserRow,
    device: &devices::DeviceRow,
    input: &str,
    now: i64,
) -> Result<Decision, StoreError> {
    let (Some(state), Some((params, secret))) =
        (device.oath.as_ref(), open_oath(app, user, device))
    else {
        tracing::error!(user = ?user.name, "cannot open the OATH token (wrong master key or corrupted row)");
        return Ok(Decision::Reject(RejectReason::Internal));
    };
    let require_pin = user.require_pin.unwrap_or(app.config.oath.require_pin);
    let pin = if require_pin {
        match open_pin(app, user) {
            Some(pin) => Some(pin),
            None if user.pin_sealed.is_none() => return Ok(Decision::Reject(RejectReason::NoPin)),
            None => return Ok(Decision::Reject(RejectReason::Internal)),
        }
    } else {
        None
    };
    let look_ahead = app.config.oath.hotp_look_ahead;
    let time = u64::try_from(now).unwrap_or(0);
    let verdict = match (params.kind, &pin) {
        (oath::OathKind::Totp { .. }, None) => {
            oath::check_totp(&secret, &params, input, time, state.last_step)
        }
        (oath::OathKind::Totp { .. }, Some(pin)) => {
            oath::check_totp_with_pin(&secret, &params, pin.as_str(), input, time, state.last_step)
        }
        (oath::OathKind::Hotp, None) => {
            oath::check_hotp(&secret, &params, input, state.counter, look_ahead)
        }
        (oath::OathKind::Hotp, Some(pin)) => oath::check_hotp_with_pin(
            &secret,
            &params,
            pin.as_str(),
            input,
            state.counter,
            look_ahead,
        ),
    };
    Ok(match verdict {
        oath::OathVerdict::Accept { step } => {
            match params.kind {
                oath::OathKind::Totp { .. } => {
                    devices::set_oath_progress(tx, &device.id, state.counter, Some(step))?
                }
                oath::OathKind::Hotp => devices::set_oath_progress(
                    tx,
                    &device.id,
                    step.saturating_add(1),
                    state.last_step,
                )?,
            }
            Decision::Accept
        }
        oath::OathVerdict::Replay => Decision::Reject(RejectReason::Replay),
        oath::OathVerdict::Wrong => Decision::Reject(RejectReason::WrongCode),
        oath::OathVerdict::Malformed => Decision::Reject(RejectReason::Malformed),
    })
}

/// CHAP against an OATH token without a PIN: the codes the window allows
/// (TOTP: one step either side, never at or before the last accepted step;
/// HOTP: the look-ahead) are each tried against the response.
fn check_oath_chap(
    app: &App,
    tx: &rusqlite::Connection,
    user: &users::UserRow,
    device: &devices::DeviceRow,
    credential: &Credential<'_>,
    now: i64,
) -> Result<Decision, StoreError> {
    if user.require_pin.unwrap_or(app.config.oath.require_pin) {
        return Ok(Decision::Reject(RejectReason::ChapUnsupported));
    }
    let (Some(state), Some((params, secret))) =
        (device.oath.as_ref(), open_oath(app, user, device))
    else {
        return Ok(Decision::Reject(RejectReason::Internal));
    };
    let candidates: Vec<u64> = match params.kind {
        oath::OathKind::Totp { period } => {
            let step = oath::totp_step(u64::try_from(now).unwrap_or(0), period);
            // Highest first: the newest matching step is the one accepted.
            [step.saturating_add(1), step, step.saturating_sub(1)]
                .into_iter()
                .filter(|s| state.last_step.is_none_or(|last| *s > last))
                .collect()
        }
        oath::OathKind::Hotp => (0..=app.config.oath.hotp_look_ahead)
            .map(|i| state.counter.saturating_add(i))
            .collect(),
    };
    // Compare every candidate, then pick: no early exit.
    let matched: Vec<u64> = candidates
        .iter()
        .copied()
        .filter(|c| {
            let code =
                zeroize::Zeroizing::new(oath::hotp(&secret, *c, params.algorithm, params.digits));
            credential.proves(code.as_bytes())
        })
        .collect();
    let Some(&step) = matched.first() else {
        return Ok(Decision::Reject(RejectReason::WrongCode));
    };
    match params.kind {
        oath::OathKind::Totp { .. } => {
            devices::set_oath_progress(tx, &device.id, state.counter, Some(step))?
        }
        oath::OathKind::Hotp => {
            devices::set_oath_progress(tx, &device.id, step.saturating_add(1), state.last_step)?
        }
    }
    Ok(Decision::Accept)
}

fn check_strings(
    app: &App,
    tx: &rusqlite::Connection,
    user: &users::UserRow,
    device: &devices::DeviceRow,
    input: &str,
) -> Result<Decision, StoreError> {
    if user.pin_sealed.is_none() {
        return Ok(Decision::Reject(RejectReason::NoPin));
    }
    let opened = (|| {
        let pin = open_pin(app, user)?;
        let seed = app
            .key
            .open(Purpose::DeviceSeed, &user.name, &device.seed_sealed)
            .ok()?;
        let seed = DeviceSeed::from_bytes(&seed).ok()?;
        let alphabet = Alphabet::parse(&device.alphabet).ok()?;
        Some((pin, seed, alphabet))
    })();
    let Some((pin, seed, alphabet)) = opened else {
        tracing::error!(user = ?user.name, "cannot open the sealed PIN or seed (wrong master key or corrupted row)");
        return Ok(Decision::Reject(RejectReason::Internal));
    };
    let mut used = device.used;
    let verdict = otc::check_string_code(&seed, device.batch, alphabet, &pin, &mut used, input);
    if used != device.used {
        devices::set_used(tx, &device.id, used)?;
    }
    Ok(match verdict {
        Verdict::Accept => Decision::Accept,
        Verdict::WrongCode => Decision::Reject(RejectReason::WrongCode),
        Verdict::IndexAlreadyUsed => Decision::Reject(RejectReason::IndexUsed),
        Verdict::Malformed => Decision::Reject(RejectReason::Malformed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::tests::{last_code, test_app};
    use crate::provision::{redeem, send_code};

    /// Provisions alice and returns her 99 strings.
    fn provisioned(dir: &std::path::Path) -> (App, Vec<otc::SecurityString>) {
        let app = test_app(dir, "[policy]\nmax_failures = 1000\n");
        send_code(&app, "alice", &Source::Admin).unwrap();
        let code = last_code(dir);
        let p = redeem(&app, "alice", &code, "phone", &Source::Admin).unwrap();
        (app, p.strings)
    }

    fn typed(strings: &[otc::SecurityString], index: u8) -> String {
        let pin = Pin::parse("1234", 4, 10).unwrap();
        format!(
            "{}{:02}",
            otc::extract(&strings[index as usize - 1], &pin),
            index
        )
    }

    #[test]
    fn right_code_once_then_index_spent() {
        let dir = tempfile::tempdir().unwrap();
        let (app, strings) = provisioned(dir.path());
        let code = typed(&strings, 7);
        assert_eq!(
            check_code(&app, "alice", &code, &Source::Admin).unwrap(),
            Decision::Accept
        );
        assert_eq!(
            check_code(&app, "alice", &code, &Source::Admin).unwrap(),
            Decision::Reject(RejectReason::IndexUsed)
        );
        // Legacy form of the same index is spent too.
        let legacy = format!("{},7", &code[..4]);
        assert_eq!(
            check_code(&app, "alice", &legacy, &Source::Admin).unwrap(),
            Decision::Reject(RejectReason::IndexUsed)
        );
    }

    #[test]
    fn wrong_code_spends_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let (app, strings) = provisioned(dir.path());
        let right = typed(&strings, 9);
        let first = right.as_bytes()[0];
        let wrong_digit = if first == b'9' {
            '0'
        } else {
            char::from(first + 1)
        };
        let wrong = format!("{wrong_digit}{}", &right[1..]);
        assert_eq!(
            check_code(&app, "alice", &wrong, &Source::Admin).unwrap(),
            Decision::Reject(RejectReason::WrongCode)
        );
        assert_eq!(
            check_code(&app, "alice", &right, &Source::Admin).unwrap(),
            Decision::Reject(RejectReason::IndexUsed)
        );
        assert_eq!(
            check_code(&app, "nobody", &right, &Source::Admin).unwrap(),
            Decision::Reject(RejectReason::UnknownUser)
        );
        assert_eq!(
            check_code(&app, "alice", "12", &Source::Admin).unwrap(),
            Decision::Reject(RejectReason::Malformed)
        );
    }

    #[test]
    fn same_code_at_the_same_moment_accepted_once() {
        let dir = tempfile::tempdir().unwrap();
        let (app, strings) = provisioned(dir.path());
        let app = std::sync::Arc::new(app);
        for index in 1..=20u8 {
            let code = typed(&strings, index);
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let app = app.clone();
                    let code = code.clone();
                    std::thread::spawn(move || {
                        check_code(&app, "alice", &code, &Source::Admin).unwrap()
                    })
                })
                .collect();
            let accepted = threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|d| *d == Decision::Accept)
                .count();
            assert_eq!(accepted, 1, "index {index}");
        }
    }

    #[test]
    fn queued_decisions_accept_a_code_once_and_audit_each() {
        let dir = tempfile::tempdir().unwrap();
        let (app, strings) = provisioned(dir.path());
        let app = std::sync::Arc::new(app);
        let (tx, rx) = std::sync::mpsc::channel();
        for index in 1..=10u8 {
            let code = typed(&strings, index);
            for _ in 0..4 {
                let (app2, code, tx) = (app.clone(), code.clone(), tx.clone());
                app.store.submit(
                    move |c| {
                        decide_in(
                            &app2,
                            c,
                            "alice",
                            &Credential::Pap(&code),
                            &Source::Admin,
                            crate::unix_now(),
                        )
                    },
                    move |out| tx.send((index, out.unwrap().decision)).unwrap(),
                );
            }
        }
        let answers: Vec<(u8, Decision)> = (0..40).map(|_| rx.recv().unwrap()).collect();
        for index in 1..=10u8 {
            let of = |d: Decision| {
                answers
                    .iter()
                    .filter(|(i, got)| *i == index && *got == d)
                    .count()
            };
            assert_eq!(of(Decision::Accept), 1, "index {index}");
            assert_eq!(
                of(Decision::Reject(RejectReason::IndexUsed)),
                3,
                "index {index}"
            );
        }
        let rows = app
            .store
            .with(|c| audit_store::query(c, Some("alice"), 0, 1000))
            .unwrap();
        assert_eq!(rows.iter().filter(|r| r.event == "auth").count(), 40);
    }
}
