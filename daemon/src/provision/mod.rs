//! Mobile Provision Codes and device binding.
//!
//! Owns the rules of DESIGN.md: a code of `code_length` digits, valid
//! `code_ttl`, stored only as a keyed hash, one outstanding per user (a new
//! request replaces the old), at most `requests_per_hour` per user, sent only
//! over the user's own transport. One redeem attempt spends the code, right or
//! wrong; a successful one binds a new device (replacing and revoking any
//! earlier one) and returns its token and first batch of strings. Every
//! failure of a code looks the same to the caller ([`ProvisionError::Failure`],
//! "Provision Failure"), whatever the cause. Never logs a code or token.

pub mod queue;
pub mod reset;

use base64::Engine as _;
use rand::Rng as _;

use crate::audit::{self, Outcome, Source};
use crate::daemon::App;
use crate::otc::{self, oath, Alphabet, DeviceSeed, SecurityString};
use crate::secrets::{self, Purpose};
use crate::store::{audit as audit_store, devices, provision_codes, users, StoreError};
use crate::transport::{Recipient, SendError};
use pinwheel_sdk::{Message, MessageKind};

/// Longest code or token input looked at; longer input is a failure.
const MAX_INPUT_LEN: usize = 128;

/// Errors of provisioning. Their `Display` never holds a code or token.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Wrong, expired, already used or missing code, or unknown user: the
    /// user guide's "Provision Failure".
    #[error("Provision Failure")]
    Failure,
    /// No such user (only reported to administrators).
    #[error("user {0} not found")]
    UnknownUser(String),
    /// The user has neither email nor phone.
    #[error("user {0} has no email address or phone number to send the code to")]
    NoRecipient(String),
    /// The hourly limit of codes for this user is reached.
    #[error(
        "user {user} was already sent {limit} provision codes in the last hour; try again later"
    )]
    RateLimited {
        /// The user.
        user: String,
        /// The configured limit.
        limit: u32,
    },
    /// The user is disabled.
    #[error("user {0} is disabled")]
    Disabled(String),
    /// The message could not be sent; any earlier code stays valid.
    #[error("the provision code could not be sent ({0}); any earlier code is still valid")]
    Transport(#[from] SendError),
    /// The device token is unknown or revoked.
    #[error("device token not recognised (the device may have been replaced)")]
    BadToken,
    /// The device is an OATH token: it has no security strings.
    #[error("this device is in OATH mode: it has no security strings")]
    NotStringsMode,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored secret could not be opened.
    #[error("a stored secret could not be opened (wrong master key or corrupted row)")]
    Sealed,
}

/// A freshly bound device, as returned to the mobile client.
pub struct Provisioned {
    /// Public device identifier.
    pub device_id: String,
    /// The device's bearer token (shown once, stored only as a keyed hash).
    pub device_token: String,
    /// `strings` or `oath`.
    pub mode: &'static str,
    /// Batch number of `strings` (0 in OATH mode).
    pub batch: u32,
    /// 99 security strings, element i is index i+1 (empty in OATH mode).
    pub strings: Vec<SecurityString>,
    /// OATH mode: the `otpauth://` key URI for an authenticator app (holds the secret).
    pub otpauth_uri: Option<zeroize::Zeroizing<String>>,
}

/// Generates a code of `length` uniformly random digits.
fn new_code(length: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..length)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// Percent-encodes a value for a URL fragment parameter (RFC 3986 unreserved kept).
fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Provision URL: the code travels in the fragment, which browsers never
/// send to servers or proxies, so it stays out of their logs.
pub fn provision_url(public_url: &str, username: &str, code: &str) -> String {
    format!(
        "{public_url}/provision#user={}&code={}",
        encode_component(username),
        encode_component(code)
    )
}

/// Issues a new Mobile Provision Code for `username` and sends it over the
/// user's transport. The new code is stored before it is sent (so it works the
/// moment it arrives) and the earlier code is put back if sending fails.
///
/// Sends to one user are serialised (one at a time), so the code stored is
/// always the one sent last, and the hourly limit is checked and recorded in one transaction.
///
/// Returns the name of the transport the code went over.
///
/// Errors: [`ProvisionError::UnknownUser`], `Disabled`, `NoRecipient` (no
/// transport can reach the user), `RateLimited` (not for [`Source::Admin`]),
/// `Transport` (the plugin failed, timed out or was too busy; earlier code
/// kept), `Store`. The REST API hides all of these behind the same 202.
pub fn send_code(app: &App, username: &str, source: &Source) -> Result<String, ProvisionError> {
    // A user found in a directory gets a record (and a PIN) first; outside
    // any store transaction, as directory calls can take seconds.
    if let Err(e) = crate::directory::ensure_user(app, username, source) {
        tracing::warn!(user = ?username, "directory look-up failed: {e}");
    }
    let result = send_code_inner(app, username, source);
    let reason = match &result {
        Ok(_) => None,
        Err(ProvisionError::UnknownUser(_)) => Some("unknown_user"),
        Err(ProvisionError::Disabled(_)) => Some("disabled"),
        Err(ProvisionError::NoRecipient(_)) => Some("no_recipient"),
        Err(ProvisionError::RateLimited { .. }) => Some("rate_limited"),
        Err(ProvisionError::Transport(_)) => Some("transport_failed"),
        Err(_) => Some("internal_error"),
    };
    // Requests from the REST API come from anyone: rows about unknown or
    // rate-limited users are budgeted, so a flood cannot fill the audit trail.
    let unauthenticated_noise = matches!(
        result,
        Err(ProvisionError::UnknownUser(_) | ProvisionError::RateLimited { .. })
    ) && !matches!(source, Source::Admin);
    if unauthenticated_noise && !app.audit.allow_unauthenticated() {
        return result;
    }
    let outcome = if result.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Fail
    };
    let row = audit::row(
        crate::unix_now(),
        "provision-code",
        Some(username),
        source,
        outcome,
        reason,
    );
    app.store.with(|c| audit_store::insert(c, &row))?;
    app.audit.emit(&[row]);
    result
}

fn send_code_inner(app: &App, username: &str, source: &Source) -> Result<String, ProvisionError> {
    let lock = app.provision_send_locks.of(username);
    let _one_at_a_time = lock.lock().unwrap_or_else(|p| p.into_inner());
    let now = crate::unix_now();
    let cfg = &app.config.provision;
    let (user, recipient) = app.store.transaction(|tx| {
        let user = users::by_name(tx, username)?
            .ok_or_else(|| ProvisionError::UnknownUser(username.to_string()))?;
        if !user.enabled {
            return Err(ProvisionError::Disabled(user.name));
        }
        let recipient = Recipient::of(&user);
        if app.transports.choose(&recipient).is_none() {
            return Err(ProvisionError::NoRecipient(user.name));
        }
        if !matches!(source, Source::Admin)
            && provision_codes::requests_since(tx, user.id, now - 3600)? >= cfg.requests_per_hour
        {
            return Err(ProvisionError::RateLimited {
                user: user.name,
                limit: cfg.requests_per_hour,
            });
        }
        provision_codes::record_request(tx, user.id, now)?;
        Ok((user, recipient))
    })?;
    let code = zeroize::Zeroizing::new(new_code(cfg.code_length));
    let url = zeroize::Zeroizing::new(provision_url(
        &app.config.server.public_url,
        &user.name,
        &code,
    ));
    let mut message = Message::new(MessageKind::ProvisionCode, user.name.clone());
    message.subject = "Your Mobile Provision Code".to_string();
    message.body = format!(
        "Your Mobile Provision Code is: {code}\n\
         It is valid for {lifetime} and can be used once: a wrong attempt also uses it up, so then ask for a new code.\n\
         Enter it in the mobile app with the Re-provision option, or open this Provision URL on your phone:\n\
         {url}\n",
        code = code.as_str(),
        lifetime = describe_lifetime(cfg.code_ttl),
        url = url.as_str(),
    );
    message.values.insert("code".into(), code.to_string());
    message.values.insert("url".into(), url.to_string());
    // Store the new code before sending it, so it works the moment it
    // arrives; if the send fails, put the earlier code back.
    let hash = app.key.keyed_hash(Purpose::ProvisionCode, code.as_bytes());
    let expires = now + cfg.code_ttl.as_secs() as i64;
    let previous = app.store.transaction(|tx| {
        let previous = provision_codes::peek(tx, user.id)?;
        provision_codes::replace(tx, user.id, &hash, expires, now)?;
        Ok::<_, StoreError>(previous)
    })?;
    match app.transports.send_blocking(&recipient, message) {
        Ok(transport) => {
            tracing::info!(user = ?user.name, transport = %transport, "provision code sent");
            Ok(transport)
        }
        Err(e) => {
            app.store.transaction(|tx| {
                provision_codes::restore(tx, user.id, &hash, previous.as_ref(), now)
            })?;
            tracing::warn!(
                user = ?user.name,
                "provision code not sent; the earlier code (if any) stays valid: {e}"
            );
            Err(e.into())
        }
    }
}

/// A lifetime in words for messages: "15 minutes", "1 minute", "90 seconds".
pub fn describe_lifetime(ttl: std::time::Duration) -> String {
    let secs = ttl.as_secs();
    let (n, unit) = if secs % 3600 == 0 && secs >= 3600 {
        (secs / 3600, "hour")
    } else if secs % 60 == 0 && secs >= 60 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Redeems a Mobile Provision Code: spends it whatever the outcome, and on
/// success binds a new device to the user (revoking any earlier device, its
/// token and its strings) and returns the first batch of strings.
///
/// Errors: [`ProvisionError::Failure`] for every kind of wrong input (unknown
/// user, no outstanding code, wrong code, expired code, disabled user);
/// `Store`/`Sealed` for server faults.
pub fn redeem(
    app: &App,
    username: &str,
    code: &str,
    device_name: &str,
    source: &Source,
) -> Result<Provisioned, ProvisionError> {
    if code.len() > MAX_INPUT_LEN
        || username.len() > MAX_INPUT_LEN
        || username.chars().any(char::is_control)
    {
        return Err(ProvisionError::Failure);
    }
    let now = crate::unix_now();
    let offered = app
        .key
        .keyed_hash(Purpose::ProvisionCode, code.trim().as_bytes());
    let device_name: String = device_name
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let (outcome, row) = app.store.transaction(|tx| {
        let outcome = redeem_in(app, tx, username, &offered, &device_name, now)?;
        // Attempts for unknown users come from anyone: their rows are budgeted.
        if matches!(outcome, Err("unknown_user")) && !app.audit.allow_unauthenticated() {
            return Ok::<_, StoreError>((outcome, None));
        }
        let row = match &outcome {
            Ok(_) => audit::row(
                now,
                "provision",
                Some(username),
                source,
                Outcome::Pass,
                None,
            ),
            Err(reason) => audit::row(
                now,
                "provision",
                Some(username),
                source,
                Outcome::Fail,
                Some(reason),
            ),
        };
        audit_store::insert(tx, &row)?;
        Ok::<_, StoreError>((outcome, Some(row)))
    })?;
    if let Some(row) = row {
        app.audit.emit(&[row]);
    }
    match outcome {
        Ok(p) => {
            tracing::info!(user = ?username, device = %p.device_id, mode = p.mode, "device provisioned");
            Ok(p)
        }
        Err(reason) => {
            tracing::info!(user = ?username, reason, "provision attempt failed; the user's outstanding code, if any, is now spent");
            Err(ProvisionError::Failure)
        }
    }
}

/// The redeem decision inside the caller's transaction. `Err` carries the
/// reason code for administrators.
fn redeem_in(
    app: &App,
    tx: &rusqlite::Connection,
    username: &str,
    offered: &[u8],
    device_name: &str,
    now: i64,
) -> Result<Result<Provisioned, &'static str>, StoreError> {
    let Some(user) = users::by_name(tx, username)? else {
        return Ok(Err("unknown_user"));
    };
    // Taking the row spends the code, right or wrong; the caller commits
    // that even when this attempt fails.
    let Some(stored) = provision_codes::take(tx, user.id)? else {
        return Ok(Err("no_code_outstanding"));
    };
    if !otc::ct_eq(&stored.code_hash, offered) {
        return Ok(Err("wrong_code"));
    }
    if now > stored.expires_at {
        return Ok(Err("expired_code"));
    }
    if !user.enabled {
        return Ok(Err("disabled"));
    }
    let token_bytes = zeroize::Zeroizing::new(secrets::random_bytes(32));
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token_bytes.as_slice());
    let mut device = devices::DeviceRow {
        id: hex::encode(secrets::random_bytes(16)),
        user_id: user.id,
        name: if device_name.is_empty() {
            "mobile".to_string()
        } else {
            device_name.to_string()
        },
        seed_sealed: Vec::new(),
        alphabet: String::new(),
        batch: 0,
        used: otc::UsedSet::default(),
        created_at: now,
        mode: user.mode.clone(),
        oath: None,
    };
    let provisioned = if user.mode == "oath" {
        let cfg = &app.config.oath;
        let algorithm = oath::Algorithm::parse(&cfg.algorithm).unwrap_or_default();
        let kind = if cfg.kind == "hotp" {
            oath::OathKind::Hotp
        } else {
            oath::OathKind::Totp { period: cfg.period }
        };
        let secret = oath::OathSecret::random(oath::OathSecret::default_len(algorithm));
        device.seed_sealed = app
            .key
            .seal(Purpose::OathSecret, &user.name, secret.as_bytes());
        device.oath = Some(devices::OathState {
            kind: cfg.kind.clone(),
            algorithm: algorithm.as_str().to_string(),
            digits: cfg.digits,
            period: cfg.period,
            counter: 0,
            last_step: None,
        });
        let uri = oath::KeyUri {
            issuer: cfg.issuer.clone(),
            account: user.name.clone(),
            secret,
            params: oath::OathParams {
                kind,
                algorithm,
                digits: cfg.digits,
            },
            counter: 0,
        };
        Provisioned {
            device_id: device.id.clone(),
            device_token: token.clone(),
            mode: "oath",
            batch: 0,
            strings: Vec::new(),
            otpauth_uri: Some(zeroize::Zeroizing::new(uri.to_uri())),
        }
    } else {
        let alphabet = Alphabet::parse(&app.config.strings.alphabet).unwrap_or(Alphabet::Digits);
        let seed = DeviceSeed::random();
        device.seed_sealed = app
            .key
            .seal(Purpose::DeviceSeed, &user.name, seed.as_bytes());
        device.alphabet = alphabet.as_str().to_string();
        device.batch = 1;
        device.mode = "strings".to_string();
        Provisioned {
            device_id: device.id.clone(),
            device_token: token.clone(),
            mode: "strings",
            batch: 1,
            strings: otc::derive_batch(&seed, 1, alphabet),
            otpauth_uri: None,
        }
    };
    let token_hash = app.key.keyed_hash(Purpose::DeviceToken, token.as_bytes());
    devices::replace(tx, &device, &token_hash)?;
    Ok(Ok(provisioned))
}

/// Moves the device holding `token` to its next batch (every string of the
/// old batch stops working) and returns the new strings.
///
/// Errors: [`ProvisionError::BadToken`] for an unknown or revoked token.
pub fn next_batch(
    app: &App,
    token: &str,
    source: &Source,
) -> Result<(u32, Vec<SecurityString>), ProvisionError> {
    if token.is_empty() || token.len() > MAX_INPUT_LEN {
        return Err(ProvisionError::BadToken);
    }
    let token_hash = app.key.keyed_hash(Purpose::DeviceToken, token.as_bytes());
    app.store.transaction(|tx| {
        let device = devices::by_token_hash(tx, &token_hash)?.ok_or(ProvisionError::BadToken)?;
        if device.mode != "strings" {
            return Err(ProvisionError::NotStringsMode);
        }
        let user: String = tx
            .query_row(
                "SELECT name FROM users WHERE id = ?1",
                [device.user_id],
                |r| r.get(0),
            )
            .map_err(StoreError::from)?;
        let seed = app
            .key
            .open(Purpose::DeviceSeed, &user, &device.seed_sealed)
            .map_err(|_| ProvisionError::Sealed)?;
        let seed = DeviceSeed::from_bytes(&seed).map_err(|_| ProvisionError::Sealed)?;
        let alphabet = Alphabet::parse(&device.alphabet).map_err(|_| ProvisionError::Sealed)?;
        let batch = device.batch.saturating_add(1);
        devices::set_batch(tx, &device.id, batch)?;
        let row = audit::row(crate::unix_now(), "strings", Some(&user), source, Outcome::Ok, None);
        audit_store::insert(tx, &row)?;
        tracing::info!(user = ?user, device = %device.id, batch, "new batch of security strings");
        Ok((batch, otc::derive_batch(&seed, batch, alphabet), row))
    })
    .map(|(batch, strings, row)| {
        app.audit.emit(&[row]);
        (batch, strings)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    /// An app on a temporary state dir with user `alice` (PIN 1234).
    pub(crate) fn test_app(dir: &Path, extra: &str) -> App {
        let text = format!(
            "[server]\nstate_dir = \"{d}/state\"\nruntime_dir = \"{d}/run\"\n{extra}\n\
             [[transport]]\nname = \"spool\"\nplugin = \"spool\"\nconfig = {{ folder = \"{d}/spool\" }}\n",
            d = dir.display()
        );
        let config = Config::parse(&text, Path::new("test.toml")).unwrap();
        let app = App::open(config).unwrap();
        let sealed = app.key.seal(Purpose::Pin, "alice", b"1234");
        app.store
            .with(|c| users::insert(c, "alice", Some("alice@example.org"), None, &sealed, 0))
            .unwrap();
        app
    }

    /// The code in the newest spool message.
    pub(crate) fn last_code(dir: &Path) -> String {
        let mut files: Vec<_> = std::fs::read_dir(dir.join("spool"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let text = std::fs::read_to_string(files.last().unwrap()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("Your Mobile Provision Code is: "))
            .unwrap()
            .to_string()
    }

    #[test]
    fn right_code_provisions_once_and_wrong_code_burns_it() {
        let dir = tempfile::tempdir().unwrap();
        let app = test_app(dir.path(), "");
        send_code(&app, "alice", &Source::Admin).unwrap();
        let code = last_code(dir.path());
        let p = redeem(&app, "alice", &code, "phone", &Source::Admin).unwrap();
        assert_eq!(p.strings.len(), 99);
        assert!(matches!(
            redeem(&app, "alice", &code, "phone", &Source::Admin),
            Err(ProvisionError::Failure)
        ));

        send_code(&app, "alice", &Source::Admin).unwrap();
        let code = last_code(dir.path());
        let wrong = if code.starts_with('0') { "1" } else { "0" }.to_string() + &code[1..];
        assert!(matches!(
            redeem(&app, "alice", &wrong, "phone", &Source::Admin),
            Err(ProvisionError::Failure)
        ));
        assert!(matches!(
            redeem(&app, "alice", &code, "phone", &Source::Admin),
            Err(ProvisionError::Failure)
        ));
        assert!(matches!(
            redeem(&app, "nobody", &code, "phone", &Source::Admin),
            Err(ProvisionError::Failure)
        ));
    }

    #[test]
    fn expired_code_fails() {
        let dir = tempfile::tempdir().unwrap();
        let app = test_app(dir.path(), "[provision]\ncode_ttl = \"1s\"\n");
        send_code(&app, "alice", &Source::Admin).unwrap();
        let code = last_code(dir.path());
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(matches!(
            redeem(&app, "alice", &code, "phone", &Source::Admin),
            Err(ProvisionError::Failure)
        ));
    }

    #[test]
    fn hourly_limit_applies_to_users_not_admins_even_when_concurrent() {
        let dir = tempfile::tempdir().unwrap();
        let app = std::sync::Arc::new(test_app(dir.path(), "[provision]\nrequests_per_hour = 3\n"));
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let app = app.clone();
                std::thread::spawn(move || {
                    send_code(&app, "alice", &Source::Api { addr: None }).is_ok()
                })
            })
            .collect();
        let sent = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(sent, 3);
        assert!(matches!(
            send_code(&app, "alice", &Source::Api { addr: None }),
            Err(ProvisionError::RateLimited { limit: 3, .. })
        ));
        send_code(&app, "alice", &Source::Admin).unwrap();
        // The code stored is the one sent last.
        let code = last_code(dir.path());
        assert!(redeem(&app, "alice", &code, "phone", &Source::Admin).is_ok());
    }

    #[test]
    fn new_batch_needs_a_live_token_and_reprovision_revokes_it() {
        let dir = tempfile::tempdir().unwrap();
        let app = test_app(dir.path(), "");
        send_code(&app, "alice", &Source::Admin).unwrap();
        let first = redeem(&app, "alice", &last_code(dir.path()), "a", &Source::Admin).unwrap();
        let (batch, strings) = next_batch(&app, &first.device_token, &Source::Admin).unwrap();
        assert_eq!(batch, 2);
        assert!(strings != first.strings);
        assert!(matches!(
            next_batch(&app, "not-a-token", &Source::Admin),
            Err(ProvisionError::BadToken)
        ));
        send_code(&app, "alice", &Source::Admin).unwrap();
        let second = redeem(&app, "alice", &last_code(dir.path()), "b", &Source::Admin).unwrap();
        assert!(matches!(
            next_batch(&app, &first.device_token, &Source::Admin),
            Err(ProvisionError::BadToken)
        ));
        assert!(next_batch(&app, &second.device_token, &Source::Admin).is_ok());
    }

    #[test]
    fn unknown_disabled_or_unreachable_users_get_specific_admin_errors() {
        let dir = tempfile::tempdir().unwrap();
        let app = test_app(dir.path(), "");
        assert!(matches!(
            send_code(&app, "nobody", &Source::Admin),
            Err(ProvisionError::UnknownUser(_))
        ));
        let sealed = app.key.seal(Purpose::Pin, "bob", b"1234");
        app.store
            .with(|c| {
                users::insert(c, "bob", None, None, &sealed, 0)?;
                users::insert(c, "carol", Some("c@example.org"), None, &sealed, 0)?;
                c.execute("UPDATE users SET enabled = 0 WHERE name = 'carol'", [])?;
                Ok(())
            })
            .unwrap();
        assert!(matches!(
            send_code(&app, "bob", &Source::Admin),
            Err(ProvisionError::NoRecipient(_))
        ));
        assert!(matches!(
            send_code(&app, "carol", &Source::Admin),
            Err(ProvisionError::Disabled(_))
        ));
    }

    #[test]
    fn failed_send_keeps_the_earlier_code() {
        let dir = tempfile::tempdir().unwrap();
        let app = test_app(dir.path(), "");
        send_code(&app, "alice", &Source::Admin).unwrap();
        let code = last_code(dir.path());
        // Make the spool unwritable by replacing the folder with a file.
        std::fs::rename(dir.path().join("spool"), dir.path().join("spool.old")).unwrap();
        std::fs::write(dir.path().join("spool"), b"not a folder").unwrap();
        assert!(matches!(
            send_code(&app, "alice", &Source::Admin),
            Err(ProvisionError::Transport(_))
        ));
        assert!(redeem(&app, "alice", &code, "phone", &Source::Admin).is_ok());
    }

    #[test]
    fn lifetimes_in_words() {
        let d = std::time::Duration::from_secs;
        assert_eq!(describe_lifetime(d(900)), "15 minutes");
        assert_eq!(describe_lifetime(d(60)), "1 minute");
        assert_eq!(describe_lifetime(d(90)), "90 seconds");
        assert_eq!(describe_lifetime(d(2)), "2 seconds");
        assert_eq!(describe_lifetime(d(1)), "1 second");
        assert_eq!(describe_lifetime(d(7200)), "2 hours");
    }

    #[test]
    fn codes_are_digits_of_the_right_length() {
        for len in [6, 10, 20] {
            let c = new_code(len);
            assert_eq!(c.len(), len);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn provision_url_keeps_code_in_fragment_and_escapes() {
        let url = provision_url("https://vpn.example.org", "j doe&x", "0123456789");
        assert_eq!(
            url,
            "https://vpn.example.org/provision#user=j%20doe%26x&code=0123456789"
        );
        assert!(!url.contains('?'));
    }
}
