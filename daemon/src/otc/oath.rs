//! OATH one-time passwords: HOTP (RFC 4226), TOTP (RFC 6238) and `otpauth://` key URIs.
//!
//! This file owns DESIGN.md "OATH mode": the OATH secret ([`OathSecret`], RFC 4648
//! base32 without padding), the code functions [`hotp`], [`totp`] and [`totp_step`],
//! the only places where a typed OATH code is accepted or refused ([`check_totp`],
//! [`check_hotp`], [`resync_hotp`], and their `require_pin` forms
//! [`check_totp_with_pin`] and [`check_hotp_with_pin`] built on
//! [`split_pin_and_code`]), and the Google Authenticator key URI ([`KeyUri`]) used to
//! provision an authenticator app. It must never do I/O (no files, sockets, logging,
//! and no clock reads: time is always a parameter, Unix seconds), never accept a TOTP
//! step at or below the last accepted one (RFC 6238 §5.2), never compare codes in
//! variable time or stop at the first matching candidate, never read a typed code as
//! a number (it is a string of exactly `digits` ASCII digits), and never print a
//! secret or a code: [`OathSecret`] is zeroized on drop and its `Debug` prints
//! `<redacted>`, and no [`OathError`] carries a secret. The caller persists the new
//! last accepted step (TOTP) or next counter (HOTP) before answering.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

use std::fmt::{self, Write as _};
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// TOTP time step in seconds when none is given (DESIGN.md: 30 s; RFC 6238 §4 `X`).
pub const DEFAULT_PERIOD: u32 = 30;

/// Code length when none is given (DESIGN.md: 6 digits).
pub const DEFAULT_DIGITS: u8 = 6;

/// Fewest digits [`OathParams::validate`] allows (RFC 4226 §4 R4: at least 6).
pub const MIN_DIGITS: u8 = 6;

/// Most digits [`OathParams::validate`] allows (RFC 4226 §5.3 reference code: 8).
pub const MAX_DIGITS: u8 = 8;

/// TOTP steps accepted on each side of the current one (DESIGN.md: one; RFC 6238 §5.2).
pub const TOTP_WINDOW: u64 = 1;

/// HOTP look-ahead when none is configured (DESIGN.md: 10; RFC 4226 §7.2 `s`).
pub const DEFAULT_HOTP_LOOK_AHEAD: u64 = 10;

/// Largest look-ahead [`check_hotp`] honours; larger values are capped to this so a
/// misconfiguration cannot turn one check into an unbounded amount of work.
pub const MAX_HOTP_LOOK_AHEAD: u64 = 1_000;

/// A typical window for [`resync_hotp`] (RFC 4226 §7.4).
pub const DEFAULT_RESYNC_WINDOW: u64 = 100;

/// Largest window [`resync_hotp`] honours; larger values are capped to this.
pub const MAX_RESYNC_WINDOW: u64 = 10_000;

/// Shortest secret [`OathSecret::random`] makes, in bytes (RFC 4226 §4 R6: 128 bits).
pub const MIN_SECRET_LEN: usize = 16;

/// Every error of the `oath` module. No variant carries a secret (key, code, PIN);
/// parameter names, lengths, bounds and non-secret words from a URI only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OathError {
    /// An algorithm name other than `SHA1`, `SHA256` or `SHA512` (any case).
    #[error("unknown OATH algorithm {0:?}: expected \"SHA1\", \"SHA256\" or \"SHA512\"")]
    UnknownAlgorithm(String),

    /// A code length outside [`MIN_DIGITS`]..=[`MAX_DIGITS`].
    #[error("OATH codes must be {MIN_DIGITS} to {MAX_DIGITS} digits, got {got}")]
    DigitsOutOfRange {
        /// Digits requested.
        got: u8,
    },

    /// A TOTP period of 0 seconds.
    #[error("TOTP period must be at least 1 second")]
    PeriodZero,

    /// A secret that is empty (after removing whitespace and padding).
    #[error("OATH secret is empty")]
    EmptySecret,

    /// A secret that is not RFC 4648 base32 (letters A-Z, digits 2-7, optional
    /// trailing `=`; case and whitespace are ignored). The text is not repeated.
    #[error("OATH secret is not valid base32")]
    InvalidBase32,

    /// A URI that does not start with `otpauth://`.
    #[error("not an otpauth:// URI")]
    NotOtpauth,

    /// An `otpauth://` type other than `totp` or `hotp` (any case).
    #[error("unknown otpauth type {0:?}: expected \"totp\" or \"hotp\"")]
    UnknownType(String),

    /// No `/` after the type, so no label.
    #[error("otpauth URI has no label")]
    MissingLabel,

    /// A label whose account name is empty.
    #[error("otpauth URI label has an empty account name")]
    EmptyAccount,

    /// No `secret` parameter.
    #[error("otpauth URI has no secret parameter")]
    MissingSecret,

    /// An `hotp` URI without a `counter` parameter.
    #[error("otpauth hotp URI has no counter parameter")]
    MissingCounter,

    /// A parameter given twice.
    #[error("otpauth URI repeats the {0} parameter")]
    DuplicateParameter(&'static str),

    /// A numeric parameter (`digits`, `period`, `counter`) that is not a plain decimal
    /// number in range (ASCII digits only, no sign).
    #[error("otpauth URI parameter {0} is not a valid number")]
    InvalidNumber(&'static str),

    /// A `%` not followed by two hexadecimal digits.
    #[error("otpauth URI has a malformed percent-escape")]
    BadPercentEncoding,

    /// Percent-decoded text that is not UTF-8.
    #[error("otpauth URI decodes to text that is not UTF-8")]
    NotUtf8,

    /// The issuer prefix of the label and the `issuer` parameter differ.
    #[error("otpauth URI issuer prefix and issuer parameter differ")]
    IssuerMismatch,
}

/// The HMAC hash function of an OATH credential (RFC 6238 §1.2: SHA-1, SHA-256,
/// SHA-512). SHA-1 is the DESIGN.md default and the only one every app supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// HMAC-SHA-1 (RFC 4226), 20-byte MAC.
    #[default]
    Sha1,
    /// HMAC-SHA-256 (RFC 6238), 32-byte MAC.
    Sha256,
    /// HMAC-SHA-512 (RFC 6238), 64-byte MAC.
    Sha512,
}

impl Algorithm {
    /// Every algorithm, in declaration order.
    pub const ALL: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];

    /// Parses `SHA1`, `SHA256` or `SHA512`, ignoring ASCII case (the `algorithm`
    /// parameter of a key URI). Errors: [`OathError::UnknownAlgorithm`] with the text.
    pub fn parse(s: &str) -> Result<Algorithm, OathError> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| OathError::UnknownAlgorithm(s.to_owned()))
    }

    /// The key URI name, `"SHA1"`, `"SHA256"` or `"SHA512"`; the inverse of
    /// [`Algorithm::parse`].
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// Recommended secret length in bytes: the hash output length (20, 32 or 64),
    /// as RFC 6238 Appendix B's keys and RFC 4226 §4 R6 (160 bits for SHA-1).
    pub fn default_secret_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }
}

impl FromStr for Algorithm {
    type Err = OathError;

    fn from_str(s: &str) -> Result<Algorithm, OathError> {
        Algorithm::parse(s)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Time-based or counter-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OathKind {
    /// RFC 6238 TOTP with a time step of `period` seconds and `T0 = 0`.
    Totp {
        /// Seconds per step (`X` in RFC 6238 §4), at least 1; usually 30.
        period: u32,
    },
    /// RFC 4226 HOTP: the moving factor is a counter the server stores.
    Hotp,
}

/// The public parameters of a credential. The default is DESIGN.md's: TOTP, 30 s,
/// SHA-1, 6 digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OathParams {
    /// TOTP (with its period) or HOTP.
    pub kind: OathKind,
    /// The HMAC hash.
    pub algorithm: Algorithm,
    /// Code length in digits, [`MIN_DIGITS`]..=[`MAX_DIGITS`] (6 or 8 in practice).
    pub digits: u8,
}

impl Default for OathParams {
    fn default() -> OathParams {
        OathParams {
            kind: OathKind::Totp {
                period: DEFAULT_PERIOD,
            },
            algorithm: Algorithm::Sha1,
            digits: DEFAULT_DIGITS,
        }
    }
}

impl OathParams {
    /// Checks the parameters. Errors: [`OathError::DigitsOutOfRange`] unless
    /// `digits` is in [`MIN_DIGITS`]..=[`MAX_DIGITS`]; [`OathError::PeriodZero`] for a
    /// TOTP period of 0. The `check_*` functions refuse invalid parameters as
    /// [`OathVerdict::Malformed`].
    pub fn validate(&self) -> Result<(), OathError> {
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&self.digits) {
            return Err(OathError::DigitsOutOfRange { got: self.digits });
        }
        if self.kind == (OathKind::Totp { period: 0 }) {
            return Err(OathError::PeriodZero);
        }
        Ok(())
    }
}

/// An OATH shared secret (the HMAC key `K` of RFC 4226 §5.1), any length. Zeroized on
/// drop; `Debug` prints `<redacted>`; equality is constant time. Stored encrypted by
/// the store.
#[derive(Clone)]
pub struct OathSecret(Vec<u8>);

impl OathSecret {
    /// A fresh secret of `len` bytes from the operating system's CSPRNG (`OsRng`).
    /// Lengths below [`MIN_SECRET_LEN`] (128 bits, RFC 4226 §4 R6) are raised to it.
    /// Use [`OathSecret::default_len`] for the recommended length.
    pub fn random(len: usize) -> OathSecret {
        let mut secret = OathSecret(vec![0u8; len.max(MIN_SECRET_LEN)]);
        OsRng.fill_bytes(&mut secret.0);
        secret
    }

    /// The recommended length in bytes for `algorithm`: 20 (SHA-1), 32 (SHA-256) or
    /// 64 (SHA-512). Same as [`Algorithm::default_secret_len`].
    pub fn default_len(algorithm: Algorithm) -> usize {
        algorithm.default_secret_len()
    }

    /// A secret from raw bytes (after decryption, or a test key). Any length,
    /// including empty (HMAC accepts every key length, RFC 2104 §2).
    pub fn from_bytes(bytes: &[u8]) -> OathSecret {
        OathSecret(bytes.to_vec())
    }

    /// The raw key bytes, for [`hotp`]/[`totp`] and encryption at rest. Never log them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret has no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// RFC 4648 §6 base32, upper case, without `=` padding: the form authenticator
    /// apps take (key URI `secret`, manual entry). The result is the secret: never
    /// log it, and drop it as soon as it is shown.
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }

    /// Parses base32 as users and apps write it: upper or lower case, with or without
    /// trailing `=` padding, with any ASCII whitespace anywhere (ignored).
    ///
    /// Errors: [`OathError::EmptySecret`] if nothing is left;
    /// [`OathError::InvalidBase32`] for another character, an impossible length
    /// (1, 3 or 6 symbols past a multiple of 8) or non-zero trailing bits.
    pub fn from_base32(s: &str) -> Result<OathSecret, OathError> {
        let cleaned: Zeroizing<String> = Zeroizing::new(
            s.chars()
                .filter(|c| !c.is_ascii_whitespace())
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        let symbols = cleaned.trim_end_matches('=');
        if symbols.is_empty() {
            return Err(OathError::EmptySecret);
        }
        BASE32_NOPAD
            .decode(symbols.as_bytes())
            .map(OathSecret)
            .map_err(|_| OathError::InvalidBase32)
    }
}

impl fmt::Debug for OathSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OathSecret(<redacted>)")
    }
}

impl PartialEq for OathSecret {
    fn eq(&self, other: &OathSecret) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl Eq for OathSecret {}

impl Drop for OathSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for OathSecret {}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OathVerdict {
    /// The code is right for `step`: the TOTP time step (store it as the new last
    /// accepted step) or the HOTP counter value (store `step + 1` as the next counter).
    Accept {
        /// The matched TOTP step or HOTP counter.
        step: u64,
    },
    /// TOTP only: the code is right for a step in the window that is at or below the
    /// last accepted step (RFC 6238 §5.2: a code is never accepted twice).
    Replay,
    /// Well-formed, but right for no candidate (or, with a PIN, the PIN is wrong).
    Wrong,
    /// Not exactly `digits` ASCII digits, or invalid parameters
    /// ([`OathParams::validate`], or the wrong [`OathKind`] for the check).
    Malformed,
}

/// Constant-time equality of two byte strings (`subtle`): the time depends only on the
/// lengths. Different lengths give `false`.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(ct_choice(a, b))
}

/// [`ct_eq`] as a [`Choice`], for combining without branches.
fn ct_choice(a: &[u8], b: &[u8]) -> Choice {
    if a.len() != b.len() {
        return Choice::from(0);
    }
    a.ct_eq(b)
}

/// HMAC of `msg` under `key`; `None` only if the library refused the key, which
/// HMAC never does (RFC 2104 §2 accepts any key length).
fn hmac_with<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut mac = <M as KeyInit>::new_from_slice(key).ok()?;
    mac.update(msg);
    Some(Zeroizing::new(mac.finalize().into_bytes().to_vec()))
}

/// RFC 4226 §5.3 dynamic truncation: the low 4 bits of the last MAC byte give an
/// offset; the 31 low bits of the 4 bytes there, big-endian.
fn dynamic_truncation(mac: &[u8]) -> Option<u32> {
    let offset = usize::from(mac.last()? & 0x0f);
    let word: [u8; 4] = mac.get(offset..offset.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(word) & 0x7fff_ffff)
}

/// RFC 4226 §5.3 HOTP value of `counter`: HMAC-`algorithm`(`secret`, counter as 8
/// bytes big-endian), dynamic truncation, modulo 10^`digits`, written as exactly
/// `digits` ASCII digits with leading zeros (`"081804"`, never `"81804"`).
///
/// `digits` outside 1..=9 is clamped into that range (the 31-bit value has at most
/// 10 digits); the `check_*` functions only allow [`MIN_DIGITS`]..=[`MAX_DIGITS`].
/// Any key length works. Should the HMAC library ever refuse a key, the result is the
/// empty string, which no typed code matches.
pub fn hotp(secret: &[u8], counter: u64, algorithm: Algorithm, digits: u8) -> String {
    let digits = digits.clamp(1, 9);
    let msg = counter.to_be_bytes();
    let mac = match algorithm {
        Algorithm::Sha1 => hmac_with::<Hmac<Sha1>>(secret, &msg),
        Algorithm::Sha256 => hmac_with::<Hmac<Sha256>>(secret, &msg),
        Algorithm::Sha512 => hmac_with::<Hmac<Sha512>>(secret, &msg),
    };
    let value = mac.as_deref().and_then(|m| dynamic_truncation(m));
    let modulus = 10u32.checked_pow(u32::from(digits));
    match (value, modulus) {
        (Some(v), Some(m)) => match v.checked_rem(m) {
            Some(code) => format!("{code:0width$}", width = usize::from(digits)),
            None => String::new(),
        },
        _ => String::new(),
    }
}

/// RFC 6238 §4 time step `T = floor((unix_time - T0) / X)` with `T0 = 0` and
/// `X = period` seconds. A `period` of 0 (which [`OathParams::validate`] refuses) is
/// treated as 1 so that this never divides by zero.
pub fn totp_step(unix_time: u64, period: u32) -> u64 {
    let period = u64::from(period.max(1));
    unix_time.checked_div(period).unwrap_or(unix_time)
}

/// RFC 6238 §4 TOTP code at `unix_time` (seconds since the epoch):
/// [`hotp`] of [`totp_step`]`(unix_time, period)`, `digits` ASCII digits.
pub fn totp(
    secret: &[u8],
    unix_time: u64,
    period: u32,
    algorithm: Algorithm,
    digits: u8,
) -> String {
    hotp(secret, totp_step(unix_time, period), algorithm, digits)
}

/// Whether `input` is exactly `digits` ASCII digits: no sign, no spaces, no missing
/// or extra leading zeros. Codes are strings of fixed length, never numbers.
fn is_well_formed(input: &str, digits: u8) -> bool {
    input.len() == usize::from(digits) && input.bytes().all(|b| b.is_ascii_digit())
}

/// Checks a typed TOTP code (RFC 6238 §5.2).
///
/// The input must be exactly `params.digits` ASCII digits (no sign, no spaces, no
/// missing or extra leading zeros: `81804`, ` 081804`, `0081804` and `+81804` are
/// all [`OathVerdict::Malformed`] for 6 digits); it is compared as a string, never as
/// a number. `params` must be TOTP and valid, otherwise `Malformed`.
///
/// Candidates are the steps `T-1`, `T` and `T+1` ([`TOTP_WINDOW`]) around
/// `T = `[`totp_step`]`(unix_time, period)`; all are computed and compared in constant
/// time, without early exit. A matching step `<= last_accepted_step` is never
/// accepted. Verdicts: [`OathVerdict::Accept`] with the highest fresh matching step
/// (the caller stores it as the new last accepted step before answering);
/// [`OathVerdict::Replay`] if the code matched only steps already used;
/// [`OathVerdict::Wrong`] otherwise.
pub fn check_totp(
    secret: &[u8],
    params: &OathParams,
    input: &str,
    unix_time: u64,
    last_accepted_step: Option<u64>,
) -> OathVerdict {
    let OathKind::Totp { period } = params.kind else {
        return OathVerdict::Malformed;
    };
    if params.validate().is_err() || !is_well_formed(input, params.digits) {
        return OathVerdict::Malformed;
    }
    let now = totp_step(unix_time, period);
    let mut accepted = Choice::from(0);
    let mut accepted_step = 0u64;
    let mut replayed = Choice::from(0);
    for step in now.saturating_sub(TOTP_WINDOW)..=now.saturating_add(TOTP_WINDOW) {
        let expected = Zeroizing::new(hotp(secret, step, params.algorithm, params.digits));
        let matches = ct_choice(expected.as_bytes(), input.as_bytes());
        // Not secret: depends on the step number and the stored state only.
        let fresh = Choice::from(u8::from(last_accepted_step.is_none_or(|last| step > last)));
        let hit = matches & fresh;
        accepted_step.conditional_assign(&step, hit);
        accepted |= hit;
        replayed |= matches & !fresh;
    }
    if bool::from(accepted) {
        OathVerdict::Accept {
            step: accepted_step,
        }
    } else if bool::from(replayed) {
        OathVerdict::Replay
    } else {
        OathVerdict::Wrong
    }
}

/// Checks a typed HOTP code (RFC 4226 §7.2).
///
/// Same input rule as [`check_totp`]; `params` must be HOTP and valid, otherwise
/// [`OathVerdict::Malformed`]. Candidates are the counters
/// `counter..=counter + look_ahead` (`counter` is the stored next counter;
/// `look_ahead` is capped at [`MAX_HOTP_LOOK_AHEAD`], and the range stops at
/// `u64::MAX`); all are computed and compared in constant time without early exit.
/// Verdicts: [`OathVerdict::Accept`] with the lowest matching counter (the caller
/// stores `step + 1` as the next counter before answering), or
/// [`OathVerdict::Wrong`]. Codes of counters below `counter` are simply outside the
/// window: HOTP never answers [`OathVerdict::Replay`].
pub fn check_hotp(
    secret: &[u8],
    params: &OathParams,
    input: &str,
    counter: u64,
    look_ahead: u64,
) -> OathVerdict {
    if params.kind != OathKind::Hotp
        || params.validate().is_err()
        || !is_well_formed(input, params.digits)
    {
        return OathVerdict::Malformed;
    }
    let end = counter.saturating_add(look_ahead.min(MAX_HOTP_LOOK_AHEAD));
    let mut found = Choice::from(0);
    let mut matched = 0u64;
    // Highest first, so the last assignment is the lowest matching counter.
    for c in (counter..=end).rev() {
        let expected = Zeroizing::new(hotp(secret, c, params.algorithm, params.digits));
        let hit = ct_choice(expected.as_bytes(), input.as_bytes());
        matched.conditional_assign(&c, hit);
        found |= hit;
    }
    if bool::from(found) {
        OathVerdict::Accept { step: matched }
    } else {
        OathVerdict::Wrong
    }
}

/// HOTP resynchronization (RFC 4226 §7.4): the user types two consecutive codes.
///
/// Finds the lowest `c` in `counter..counter + search_window` (`search_window`
/// capped at [`MAX_RESYNC_WINDOW`]; see [`DEFAULT_RESYNC_WINDOW`]) with
/// `hotp(c) == code1` and `hotp(c + 1) == code2`, and returns `Some(c + 2)`, the new
/// next counter for the caller to store. Every counter in the window is computed and
/// compared in constant time without early exit. `None` if there is no such `c`,
/// either code is not exactly `params.digits` ASCII digits, or `params` is not valid
/// HOTP.
pub fn resync_hotp(
    secret: &[u8],
    params: &OathParams,
    code1: &str,
    code2: &str,
    counter: u64,
    search_window: u64,
) -> Option<u64> {
    if params.kind != OathKind::Hotp
        || params.validate().is_err()
        || !is_well_formed(code1, params.digits)
        || !is_well_formed(code2, params.digits)
    {
        return None;
    }
    let window = search_window.min(MAX_RESYNC_WINDOW);
    if window == 0 {
        return None;
    }
    // Candidates c = counter..counter+window need codes for counter..=counter+window.
    let last = counter.saturating_add(window);
    let mut found = Choice::from(0);
    let mut next = 0u64;
    let mut previous_matches_code1 = Choice::from(0);
    for x in counter..=last {
        let expected = Zeroizing::new(hotp(secret, x, params.algorithm, params.digits));
        let matches_code1 = ct_choice(expected.as_bytes(), code1.as_bytes());
        let matches_code2 = ct_choice(expected.as_bytes(), code2.as_bytes());
        // Pair (c, c + 1) = (x - 1, x); the new next counter is x + 1.
        if x > counter {
            if let Some(candidate) = x.checked_add(1) {
                let hit = previous_matches_code1 & matches_code2;
                next.conditional_assign(&candidate, hit & !found);
                found |= hit;
            }
        }
        previous_matches_code1 = matches_code1;
    }
    bool::from(found).then_some(next)
}

/// Splits "PIN followed by code" for `require_pin` (DESIGN.md "OATH mode").
///
/// `input` must be exactly `pin.len() + digits` bytes (characters, for the ASCII
/// input this expects), and its first `pin.len()` bytes must equal `pin` (constant
/// time); returns the remaining `digits` bytes, the code, unchecked. Never a suffix
/// match: a character in front of the PIN makes the length wrong. `None` for an
/// empty `pin`, a wrong length, or a wrong PIN.
///
/// Answering "wrong PIN" without checking the code lets response time tell a wrong
/// PIN from a wrong code; [`check_totp_with_pin`] and [`check_hotp_with_pin`] always
/// check both.
pub fn split_pin_and_code<'a>(input: &'a str, pin: &str, digits: u8) -> Option<&'a str> {
    let (pin_ok, code) = split_unchecked(input, pin, digits)?;
    bool::from(pin_ok).then_some(code)
}

/// The shape part of [`split_pin_and_code`]: `None` for an empty PIN or a wrong
/// length; otherwise whether the PIN part matches (constant time) and the code part.
fn split_unchecked<'a>(input: &'a str, pin: &str, digits: u8) -> Option<(Choice, &'a str)> {
    if pin.is_empty() || input.len() != pin.len().checked_add(usize::from(digits))? {
        return None;
    }
    let head = input.get(..pin.len())?;
    let code = input.get(pin.len()..)?;
    Some((ct_choice(head.as_bytes(), pin.as_bytes()), code))
}

/// Combines a PIN result with the code's verdict so that a wrong PIN looks like a
/// wrong code: the code is always checked, and nothing is accepted (no step spent)
/// unless the PIN matched.
fn with_pin(pin_ok: Choice, verdict: OathVerdict) -> OathVerdict {
    match verdict {
        OathVerdict::Malformed => OathVerdict::Malformed,
        v if bool::from(pin_ok) => v,
        _ => OathVerdict::Wrong,
    }
}

/// [`check_totp`] for `require_pin`: `input` is the PIN followed by the code.
///
/// [`OathVerdict::Malformed`] unless `input` is exactly `pin.len() + params.digits`
/// bytes and the code part is well-formed. The code is checked whether or not the
/// PIN matches (no timing difference between a wrong PIN and a wrong code); a wrong
/// PIN gives [`OathVerdict::Wrong`] whatever the code, including a replayed one.
pub fn check_totp_with_pin(
    secret: &[u8],
    params: &OathParams,
    pin: &str,
    input: &str,
    unix_time: u64,
    last_accepted_step: Option<u64>,
) -> OathVerdict {
    let Some((pin_ok, code)) = split_unchecked(input, pin, params.digits) else {
        return OathVerdict::Malformed;
    };
    with_pin(
        pin_ok,
        check_totp(secret, params, code, unix_time, last_accepted_step),
    )
}

/// [`check_hotp`] for `require_pin`: `input` is the PIN followed by the code. Same
/// rules as [`check_totp_with_pin`].
pub fn check_hotp_with_pin(
    secret: &[u8],
    params: &OathParams,
    pin: &str,
    input: &str,
    counter: u64,
    look_ahead: u64,
) -> OathVerdict {
    let Some((pin_ok, code)) = split_unchecked(input, pin, params.digits) else {
        return OathVerdict::Malformed;
    };
    with_pin(
        pin_ok,
        check_hotp(secret, params, code, counter, look_ahead),
    )
}

/// A Google Authenticator key URI, which provisions an authenticator app (usually as
/// a QR code):
///
/// `otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30`
///
/// (`hotp` has `&counter=N` instead of `&period=`). Issuer and account are
/// percent-encoded (RFC 3986): every byte but `A-Z a-z 0-9 - . _ ~ @` becomes `%XX`,
/// so a `:` inside either is `%3A` and a space `%20`. With an empty issuer the
/// label is the account alone and there is no `issuer` parameter. `Debug` redacts
/// the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUri {
    /// The service name shown by the app (label prefix and `issuer`); may be empty.
    pub issuer: String,
    /// The user's account name; never empty in a parsed URI.
    pub account: String,
    /// The shared secret.
    pub secret: OathSecret,
    /// Kind (with period), algorithm and digits.
    pub params: OathParams,
    /// HOTP only: the initial counter (`counter` parameter). Not written for TOTP,
    /// and 0 in a parsed TOTP URI.
    pub counter: u64,
}

impl KeyUri {
    /// The URI text: `otpauth://TYPE/LABEL?secret=..&issuer=..&algorithm=..&digits=..`
    /// then `&period=..` (TOTP) or `&counter=..` (HOTP), in that order. It contains
    /// the secret: show it only to its user, never log it.
    pub fn to_uri(&self) -> String {
        let secret = Zeroizing::new(self.secret.to_base32());
        let mut uri = String::from("otpauth://");
        uri.push_str(match self.params.kind {
            OathKind::Totp { .. } => "totp/",
            OathKind::Hotp => "hotp/",
        });
        if !self.issuer.is_empty() {
            percent_encode_into(&mut uri, &self.issuer);
            uri.push(':');
        }
        percent_encode_into(&mut uri, &self.account);
        uri.push_str("?secret=");
        uri.push_str(&secret);
        if !self.issuer.is_empty() {
            uri.push_str("&issuer=");
            percent_encode_into(&mut uri, &self.issuer);
        }
        // Writing to a String cannot fail.
        let _ = write!(
            uri,
            "&algorithm={}&digits={}",
            self.params.algorithm.as_str(),
            self.params.digits
        );
        let _ = match self.params.kind {
            OathKind::Totp { period } => write!(uri, "&period={period}"),
            OathKind::Hotp => write!(uri, "&counter={}", self.counter),
        };
        uri
    }

    /// Parses a key URI, as written by [`KeyUri::to_uri`] or by other issuers.
    ///
    /// Accepted: scheme `otpauth://` and type `totp`/`hotp` in any case; a label
    /// `ISSUER:ACCOUNT` (literal `:`; spaces before the account are skipped) or
    /// `ACCOUNT` alone, where an encoded separator (`ISSUER%3AACCOUNT`) counts only
    /// if it follows exactly the `issuer` parameter; query parameters `secret`
    /// (required, see [`OathSecret::from_base32`]), `issuer`, `algorithm` (default
    /// SHA1), `digits` (default 6), `period` (TOTP, default 30), `counter` (required
    /// for HOTP), in any order, names in any case; other parameters (`image`, ...) are
    /// ignored. In query values `+` means a space (form encoding); in the label it is
    /// a literal `+`.
    ///
    /// Errors: [`OathError::NotOtpauth`], [`OathError::UnknownType`],
    /// [`OathError::MissingLabel`], [`OathError::EmptyAccount`],
    /// [`OathError::BadPercentEncoding`], [`OathError::NotUtf8`],
    /// [`OathError::DuplicateParameter`], [`OathError::MissingSecret`],
    /// [`OathError::EmptySecret`], [`OathError::InvalidBase32`],
    /// [`OathError::UnknownAlgorithm`], [`OathError::InvalidNumber`],
    /// [`OathError::DigitsOutOfRange`], [`OathError::PeriodZero`],
    /// [`OathError::MissingCounter`], [`OathError::IssuerMismatch`].
    pub fn parse(uri: &str) -> Result<KeyUri, OathError> {
        const SCHEME: &str = "otpauth://";
        let uri = uri.trim();
        let rest = match uri.get(..SCHEME.len()) {
            Some(s) if s.eq_ignore_ascii_case(SCHEME) => uri.get(SCHEME.len()..).unwrap_or(""),
            _ => return Err(OathError::NotOtpauth),
        };
        let (kind_text, rest) = rest.split_once('/').ok_or(OathError::MissingLabel)?;
        let is_totp = if kind_text.eq_ignore_ascii_case("totp") {
            true
        } else if kind_text.eq_ignore_ascii_case("hotp") {
            false
        } else {
            return Err(OathError::UnknownType(kind_text.to_owned()));
        };
        let (label, query) = rest.split_once('?').unwrap_or((rest, ""));

        let mut secret: Option<OathSecret> = None;
        let mut issuer_param: Option<String> = None;
        let mut algorithm: Option<Algorithm> = None;
        let mut digits: Option<u8> = None;
        let mut period: Option<u32> = None;
        let mut counter: Option<u64> = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name, true)?.to_ascii_lowercase();
            match name.as_str() {
                "secret" => {
                    let text = Zeroizing::new(percent_decode(value, true)?);
                    set_once(&mut secret, "secret", OathSecret::from_base32(&text)?)?;
                }
                "issuer" => set_once(&mut issuer_param, "issuer", percent_decode(value, true)?)?,
                "algorithm" => {
                    let alg = Algorithm::parse(&percent_decode(value, true)?)?;
                    set_once(&mut algorithm, "algorithm", alg)?;
                }
                "digits" => set_once(&mut digits, "digits", parse_decimal(value, "digits")?)?,
                "period" => set_once(&mut period, "period", parse_decimal(value, "period")?)?,
                "counter" => {
                    set_once(&mut counter, "counter", parse_decimal(value, "counter")?)?;
                }
                _ => {}
            }
        }

        if label.is_empty() {
            return Err(OathError::MissingLabel);
        }
        let (label_issuer, account) = match label.split_once(':') {
            Some((issuer, account)) => (
                Some(percent_decode(issuer, false)?),
                percent_decode(account.trim_start_matches(' '), false)?,
            ),
            None => {
                let whole = percent_decode(label, false)?;
                let split = issuer_param.as_deref().and_then(|issuer| {
                    let account = whole.strip_prefix(issuer)?.strip_prefix(':')?;
                    Some((
                        issuer.to_owned(),
                        account.trim_start_matches(' ').to_owned(),
                    ))
                });
                match split {
                    Some((issuer, account)) => (Some(issuer), account),
                    None => (None, whole),
                }
            }
        };
        if account.is_empty() {
            return Err(OathError::EmptyAccount);
        }
        let issuer = match (label_issuer, issuer_param) {
            (Some(a), Some(b)) if a != b => return Err(OathError::IssuerMismatch),
            (_, Some(i)) | (Some(i), None) => i,
            (None, None) => String::new(),
        };

        let kind = if is_totp {
            OathKind::Totp {
                period: period.unwrap_or(DEFAULT_PERIOD),
            }
        } else {
            OathKind::Hotp
        };
        let counter = match kind {
            OathKind::Totp { .. } => 0,
            OathKind::Hotp => counter.ok_or(OathError::MissingCounter)?,
        };
        let params = OathParams {
            kind,
            algorithm: algorithm.unwrap_or_default(),
            digits: digits.unwrap_or(DEFAULT_DIGITS),
        };
        params.validate()?;
        Ok(KeyUri {
            issuer,
            account,
            secret: secret.ok_or(OathError::MissingSecret)?,
            params,
            counter,
        })
    }
}

/// Stores `value` in `slot` unless it is already set ([`OathError::DuplicateParameter`]).
fn set_once<T>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), OathError> {
    if slot.is_some() {
        return Err(OathError::DuplicateParameter(name));
    }
    *slot = Some(value);
    Ok(())
}

/// A plain decimal number: ASCII digits only (no sign, no spaces), in range for `T`.
fn parse_decimal<T: FromStr>(text: &str, name: &'static str) -> Result<T, OathError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OathError::InvalidNumber(name));
    }
    text.parse().map_err(|_| OathError::InvalidNumber(name))
}

/// Appends `text` percent-encoded (RFC 3986 §2.1): unreserved characters and `@`
/// literal, every other byte of the UTF-8 encoding as `%XX` (upper-case hex).
fn percent_encode_into(out: &mut String, text: &str) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Decodes `%XX` escapes (and `+` as a space if `plus_is_space`); the result must be
/// UTF-8. Errors: [`OathError::BadPercentEncoding`], [`OathError::NotUtf8`].
fn percent_decode(text: &str, plus_is_space: bool) -> Result<String, OathError> {
    let mut bytes: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::with_capacity(text.len()));
    let mut input = text.bytes();
    while let Some(b) = input.next() {
        match b {
            b'%' => {
                let high = input.next().and_then(hex_value);
                let low = input.next().and_then(hex_value);
                match (high, low) {
                    (Some(h), Some(l)) => bytes.push(h.wrapping_shl(4) | l),
                    _ => return Err(OathError::BadPercentEncoding),
                }
            }
            b'+' if plus_is_space => bytes.push(b' '),
            other => bytes.push(other),
        }
    }
    std::str::from_utf8(&bytes)
        .map(str::to_owned)
        .map_err(|_| OathError::NotUtf8)
}

/// The value of one ASCII hexadecimal digit (either case).
fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RFC4226_KEY: &[u8] = b"12345678901234567890";
    const SHA1_KEY: &[u8] = b"12345678901234567890";
    const SHA256_KEY: &[u8] = b"12345678901234567890123456789012";
    const SHA512_KEY: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    fn totp6() -> OathParams {
        OathParams::default()
    }

    fn hotp6() -> OathParams {
        OathParams {
            kind: OathKind::Hotp,
            algorithm: Algorithm::Sha1,
            digits: 6,
        }
    }

    /// RFC 6238 Appendix B: T = 1111111109 is step 37037036.
    const FIELD_TIME: u64 = 1_111_111_109;
    const FIELD_STEP: u64 = 37_037_036;

    #[test]
    fn rfc4226_appendix_d_hotp() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in (0u64..).zip(expected) {
            assert_eq!(
                hotp(RFC4226_KEY, counter, Algorithm::Sha1, 6),
                code,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn rfc4226_appendix_d_truncated_values() {
        // Appendix D "Truncated" column (decimal), i.e. the value before mod 10^6.
        let truncated: [u32; 10] = [
            1284755224, 1094287082, 137359152, 1726969429, 1640338314, 868254676, 1918287922,
            82162583, 673399871, 645520489,
        ];
        for (counter, value) in (0u64..).zip(truncated) {
            let mac = hmac_with::<Hmac<Sha1>>(RFC4226_KEY, &counter.to_be_bytes()).unwrap();
            assert_eq!(dynamic_truncation(&mac), Some(value), "counter {counter}");
        }
    }

    #[test]
    fn rfc6238_appendix_b_totp() {
        // (time, SHA-1, SHA-256, SHA-512), 8 digits, X = 30, T0 = 0.
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        let mut checked = 0;
        for (time, sha1, sha256, sha512) in table {
            for (key, alg, code) in [
                (SHA1_KEY, Algorithm::Sha1, sha1),
                (SHA256_KEY, Algorithm::Sha256, sha256),
                (SHA512_KEY, Algorithm::Sha512, sha512),
            ] {
                assert_eq!(totp(key, time, 30, alg, 8), code, "{alg} at {time}");
                let params = OathParams {
                    kind: OathKind::Totp { period: 30 },
                    algorithm: alg,
                    digits: 8,
                };
                assert_eq!(
                    check_totp(key, &params, code, time, None),
                    OathVerdict::Accept {
                        step: totp_step(time, 30)
                    }
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 18);
    }

    #[test]
    fn rfc6238_appendix_b_steps() {
        assert_eq!(totp_step(59, 30), 0x1);
        assert_eq!(totp_step(1111111109, 30), 0x23523EC);
        assert_eq!(totp_step(1111111111, 30), 0x23523ED);
        assert_eq!(totp_step(1234567890, 30), 0x273EF07);
        assert_eq!(totp_step(2000000000, 30), 0x3F940AA);
        assert_eq!(totp_step(20000000000, 30), 0x27BC86AA);
        assert_eq!(totp_step(29, 30), 0);
        assert_eq!(totp_step(30, 30), 1);
        assert_eq!(totp_step(7, 0), 7, "period 0 must not divide by zero");
        assert_eq!(totp_step(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn codes_keep_leading_zeros() {
        assert_eq!(totp(SHA1_KEY, FIELD_TIME, 30, Algorithm::Sha1, 6), "081804");
        assert_eq!(
            totp(SHA1_KEY, FIELD_TIME, 30, Algorithm::Sha1, 8),
            "07081804"
        );
        assert_eq!(FIELD_STEP, totp_step(FIELD_TIME, 30));
    }

    #[test]
    fn hotp_clamps_odd_digit_counts() {
        assert_eq!(hotp(RFC4226_KEY, 0, Algorithm::Sha1, 0), "4");
        assert_eq!(hotp(RFC4226_KEY, 0, Algorithm::Sha1, 9), "284755224");
        assert_eq!(hotp(RFC4226_KEY, 0, Algorithm::Sha1, 200), "284755224");
        assert_eq!(hotp(b"", 0, Algorithm::Sha256, 6).len(), 6);
    }

    #[test]
    fn field_case_exact_six_digits_accepted() {
        assert_eq!(
            check_totp(SHA1_KEY, &totp6(), "081804", FIELD_TIME, None),
            OathVerdict::Accept { step: FIELD_STEP }
        );
    }

    #[test]
    fn field_case_near_misses_never_accepted() {
        for bad in [
            "81804",
            " 081804",
            "0081804",
            "+81804",
            "081804 ",
            "08180",
            "-81804",
            "08 1804",
            "０８１８０４",
            "",
            "07081804",
            "081804\n",
            "0x1804",
        ] {
            let verdict = check_totp(SHA1_KEY, &totp6(), bad, FIELD_TIME, None);
            assert!(
                matches!(verdict, OathVerdict::Malformed | OathVerdict::Wrong),
                "{bad:?} gave {verdict:?}"
            );
        }
        // Same length but not digits: Malformed, not a numeric comparison.
        assert_eq!(
            check_totp(SHA1_KEY, &totp6(), "+81804", FIELD_TIME, None),
            OathVerdict::Malformed
        );
    }

    #[test]
    fn field_case_eight_digits_only_with_digits_8() {
        let eight = OathParams {
            digits: 8,
            ..totp6()
        };
        assert_eq!(
            check_totp(SHA1_KEY, &eight, "07081804", FIELD_TIME, None),
            OathVerdict::Accept { step: FIELD_STEP }
        );
        assert_eq!(
            check_totp(SHA1_KEY, &totp6(), "07081804", FIELD_TIME, None),
            OathVerdict::Malformed
        );
        assert_eq!(
            check_totp(SHA1_KEY, &eight, "081804", FIELD_TIME, None),
            OathVerdict::Malformed
        );
        assert_eq!(
            check_totp(SHA1_KEY, &eight, "7081804", FIELD_TIME, None),
            OathVerdict::Malformed
        );
    }

    #[test]
    fn totp_replay_is_refused() {
        let code = totp(SHA1_KEY, FIELD_TIME, 30, Algorithm::Sha1, 6);
        let first = check_totp(SHA1_KEY, &totp6(), &code, FIELD_TIME, None);
        assert_eq!(first, OathVerdict::Accept { step: FIELD_STEP });
        let OathVerdict::Accept { step } = first else {
            unreachable!()
        };
        assert_eq!(
            check_totp(SHA1_KEY, &totp6(), &code, FIELD_TIME, Some(step)),
            OathVerdict::Replay
        );
        // Still a replay a step later, while the code is inside the window.
        assert_eq!(
            check_totp(SHA1_KEY, &totp6(), &code, FIELD_TIME + 30, Some(step)),
            OathVerdict::Replay
        );
        // And after a later step was accepted.
        assert_eq!(
            check_totp(SHA1_KEY, &totp6(), &code, FIELD_TIME, Some(step + 1)),
            OathVerdict::Replay
        );
    }

    #[test]
    fn totp_window_is_one_step_each_side() {
        let now = FIELD_TIME;
        let step = totp_step(now, 30);
        let at = |s: u64| hotp(SHA1_KEY, s, Algorithm::Sha1, 6);
        for (s, expected) in [
            (step - 2, OathVerdict::Wrong),
            (step - 1, OathVerdict::Accept { step: step - 1 }),
            (step, OathVerdict::Accept { step }),
            (step + 1, OathVerdict::Accept { step: step + 1 }),
            (step + 2, OathVerdict::Wrong),
        ] {
            assert_eq!(
                check_totp(SHA1_KEY, &totp6(), &at(s), now, None),
                expected,
                "step {s}"
            );
        }
    }

    #[test]
    fn totp_one_step_off_accepted_once() {
        let now = FIELD_TIME;
        let step = totp_step(now, 30);
        let previous = hotp(SHA1_KEY, step - 1, Algorithm::Sha1, 6);
        let verdict = check_totp(SHA1_KEY, &totp6(), &previous, now, Some(step - 2));
        assert_eq!(verdict, OathVerdict::Accept { step: step - 1 });
        assert_eq!(
            check_totp(SHA1_KEY, &totp6(), &previous, now, Some(step - 1)),
            OathVerdict::Replay
        );
        // The current code is still fresh after the previous step was used.
        let current = hotp(SHA1_KEY, step, Algorithm::Sha1, 6);
        assert_eq!(
            check_totp(SHA1_KEY, &totp6(), &current, now, Some(step - 1)),
            OathVerdict::Accept { step }
        );
    }

    #[test]
    fn totp_two_steps_ago_rejected() {
        let now = FIELD_TIME;
        let old = totp(SHA1_KEY, now - 60, 30, Algorithm::Sha1, 6);
        assert_eq!(
            check_totp(SHA1_KEY, &totp6(), &old, now, None),
            OathVerdict::Wrong
        );
        assert_eq!(
            check_totp(SHA1_KEY, &totp6(), &old, now, Some(0)),
            OathVerdict::Wrong
        );
    }

    #[test]
    fn totp_at_time_zero_and_end_of_time() {
        let c0 = hotp(SHA1_KEY, 0, Algorithm::Sha1, 6);
        assert_eq!(
            check_totp(SHA1_KEY, &totp6(), &c0, 0, None),
            OathVerdict::Accept { step: 0 }
        );
        let one_second = OathParams {
            kind: OathKind::Totp { period: 1 },
            ..totp6()
        };
        let cmax = hotp(SHA1_KEY, u64::MAX, Algorithm::Sha1, 6);
        assert_eq!(
            check_totp(SHA1_KEY, &one_second, &cmax, u64::MAX, None),
            OathVerdict::Accept { step: u64::MAX }
        );
    }

    #[test]
    fn wrong_kind_or_invalid_params_are_malformed() {
        let code = totp(SHA1_KEY, FIELD_TIME, 30, Algorithm::Sha1, 6);
        assert_eq!(
            check_totp(SHA1_KEY, &hotp6(), &code, FIELD_TIME, None),
            OathVerdict::Malformed
        );
        let zero = OathParams {
            kind: OathKind::Totp { period: 0 },
            ..totp6()
        };
        assert_eq!(zero.validate(), Err(OathError::PeriodZero));
        assert_eq!(
            check_totp(SHA1_KEY, &zero, &code, FIELD_TIME, None),
            OathVerdict::Malformed
        );
        let five = OathParams {
            digits: 5,
            ..totp6()
        };
        assert_eq!(five.validate(), Err(OathError::DigitsOutOfRange { got: 5 }));
        assert_eq!(
            check_totp(SHA1_KEY, &five, "81804", FIELD_TIME, None),
            OathVerdict::Malformed
        );
        assert_eq!(
            check_hotp(SHA1_KEY, &totp6(), "755224", 0, 10),
            OathVerdict::Malformed
        );
        assert_eq!(
            resync_hotp(SHA1_KEY, &totp6(), "755224", "287082", 0, 10),
            None
        );
        assert!(totp6().validate().is_ok());
    }

    #[test]
    fn hotp_look_ahead() {
        let p = hotp6();
        // RFC 4226 Appendix D: counter 3 is 969429.
        assert_eq!(
            check_hotp(RFC4226_KEY, &p, "969429", 0, 10),
            OathVerdict::Accept { step: 3 }
        );
        assert_eq!(
            check_hotp(RFC4226_KEY, &p, "969429", 3, 0),
            OathVerdict::Accept { step: 3 }
        );
        // Beyond the look-ahead.
        assert_eq!(
            check_hotp(RFC4226_KEY, &p, "520489", 0, 8),
            OathVerdict::Wrong
        );
        assert_eq!(
            check_hotp(RFC4226_KEY, &p, "520489", 0, 9),
            OathVerdict::Accept { step: 9 }
        );
        // Behind the counter (already used): refused.
        assert_eq!(
            check_hotp(RFC4226_KEY, &p, "755224", 1, 10),
            OathVerdict::Wrong
        );
        // Caller stores matched + 1; the same code is then refused.
        assert_eq!(
            check_hotp(RFC4226_KEY, &p, "969429", 4, 10),
            OathVerdict::Wrong
        );
        assert_eq!(
            check_hotp(RFC4226_KEY, &p, "96942", 0, 10),
            OathVerdict::Malformed
        );
        // Huge look-ahead is capped, and the range stops at u64::MAX.
        assert_eq!(
            check_hotp(RFC4226_KEY, &p, "000000", u64::MAX - 1, u64::MAX),
            check_hotp(RFC4226_KEY, &p, "000000", u64::MAX - 1, 1)
        );
    }

    #[test]
    fn hotp_resync() {
        let p = hotp6();
        // Counters 6 and 7: 287922, 162583; next counter is 8.
        assert_eq!(
            resync_hotp(RFC4226_KEY, &p, "287922", "162583", 0, 100),
            Some(8)
        );
        // Wrong order, or not consecutive.
        assert_eq!(
            resync_hotp(RFC4226_KEY, &p, "162583", "287922", 0, 100),
            None
        );
        assert_eq!(
            resync_hotp(RFC4226_KEY, &p, "287922", "399871", 0, 100),
            None
        );
        // Window: c must be in counter..counter+window.
        assert_eq!(resync_hotp(RFC4226_KEY, &p, "287922", "162583", 0, 6), None);
        assert_eq!(
            resync_hotp(RFC4226_KEY, &p, "287922", "162583", 0, 7),
            Some(8)
        );
        assert_eq!(
            resync_hotp(RFC4226_KEY, &p, "287922", "162583", 7, 100),
            None
        );
        assert_eq!(
            resync_hotp(RFC4226_KEY, &p, "287922", "162583", 6, 1),
            Some(8)
        );
        assert_eq!(resync_hotp(RFC4226_KEY, &p, "287922", "162583", 6, 0), None);
        assert_eq!(
            resync_hotp(RFC4226_KEY, &p, "28792", "162583", 0, 100),
            None
        );
        // Far ahead, beyond the normal look-ahead.
        let c = 500u64;
        let code1 = hotp(RFC4226_KEY, c, Algorithm::Sha1, 6);
        let code2 = hotp(RFC4226_KEY, c + 1, Algorithm::Sha1, 6);
        assert_eq!(
            check_hotp(RFC4226_KEY, &p, &code1, 0, 10),
            OathVerdict::Wrong
        );
        assert_eq!(
            resync_hotp(RFC4226_KEY, &p, &code1, &code2, 0, 1000),
            Some(c + 2)
        );
        assert_eq!(
            check_hotp(
                RFC4226_KEY,
                &p,
                &hotp(RFC4226_KEY, c + 2, Algorithm::Sha1, 6),
                c + 2,
                10
            ),
            OathVerdict::Accept { step: c + 2 }
        );
        // No overflow at the end of the counter space.
        assert_eq!(
            resync_hotp(RFC4226_KEY, &p, "000000", "000000", u64::MAX - 1, 100),
            None
        );
    }

    #[test]
    fn algorithm_names() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::parse(alg.as_str()), Ok(alg));
            assert_eq!(Algorithm::parse(&alg.as_str().to_lowercase()), Ok(alg));
            assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
        }
        assert_eq!(Algorithm::parse("sha256"), Ok(Algorithm::Sha256));
        assert_eq!(
            Algorithm::parse("SHA-1"),
            Err(OathError::UnknownAlgorithm("SHA-1".into()))
        );
        assert_eq!(Algorithm::default(), Algorithm::Sha1);
        assert_eq!(OathSecret::default_len(Algorithm::Sha1), 20);
        assert_eq!(OathSecret::default_len(Algorithm::Sha256), 32);
        assert_eq!(OathSecret::default_len(Algorithm::Sha512), 64);
    }

    #[test]
    fn secret_random_lengths_and_redaction() {
        for alg in Algorithm::ALL {
            let s = OathSecret::random(OathSecret::default_len(alg));
            assert_eq!(s.len(), alg.default_secret_len());
        }
        assert_eq!(OathSecret::random(0).len(), MIN_SECRET_LEN);
        let a = OathSecret::random(20);
        let b = OathSecret::random(20);
        assert_ne!(a, b);
        assert_ne!(a.as_bytes(), &[0u8; 20]);
        let shown = format!("{a:?}");
        assert_eq!(shown, "OathSecret(<redacted>)");
        let uri = KeyUri {
            issuer: "X".into(),
            account: "y".into(),
            secret: a.clone(),
            params: totp6(),
            counter: 0,
        };
        let debug = format!("{uri:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains(&a.to_base32()));
    }

    #[test]
    fn base32_known_and_lenient() {
        let s = OathSecret::from_bytes(SHA1_KEY);
        assert_eq!(s.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        for text in [
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
            " GEZDGNBVGY3TQOJQ\tGEZDGNBVGY3TQOJQ\n",
        ] {
            assert_eq!(OathSecret::from_base32(text).unwrap(), s, "{text:?}");
        }
        // 10 bytes = 16 symbols; 11 bytes needs padding "======" in padded form.
        let eleven = OathSecret::from_bytes(b"hello world");
        let nopad = eleven.to_base32();
        assert!(!nopad.contains('='));
        assert_eq!(OathSecret::from_base32(&nopad).unwrap(), eleven);
        let padded = format!("{nopad}{}", "=".repeat((8 - nopad.len() % 8) % 8));
        assert_eq!(OathSecret::from_base32(&padded).unwrap(), eleven);
        assert_eq!(
            OathSecret::from_base32(&padded.to_lowercase()).unwrap(),
            eleven
        );
        assert_eq!(
            OathSecret::from_base32("JBSWY3DPEHPK3PXP")
                .unwrap()
                .as_bytes(),
            b"Hello!\xde\xad\xbe\xef"
        );
    }

    #[test]
    fn base32_rejects() {
        assert_eq!(OathSecret::from_base32(""), Err(OathError::EmptySecret));
        assert_eq!(
            OathSecret::from_base32("  ==== "),
            Err(OathError::EmptySecret)
        );
        for bad in [
            "GEZDGNB1",
            "GEZDGNB8",
            "GEZ!",
            "A",
            "ABC",
            "ABCDEF",
            "GE=ZDGNBV",
            "É",
        ] {
            assert_eq!(
                OathSecret::from_base32(bad),
                Err(OathError::InvalidBase32),
                "{bad:?}"
            );
        }
        // Non-zero trailing bits (not canonical).
        assert_eq!(OathSecret::from_base32("GF"), Err(OathError::InvalidBase32));
    }

    #[test]
    fn error_messages_carry_no_secret() {
        let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ!";
        let err = OathSecret::from_base32(secret).unwrap_err();
        assert!(!err.to_string().contains("GEZD"));
        let err = KeyUri::parse(&format!("otpauth://totp/a?secret={secret}")).unwrap_err();
        assert_eq!(err, OathError::InvalidBase32);
        assert!(!format!("{err} {err:?}").contains("GEZD"));
    }

    #[test]
    fn split_pin_and_code_rules() {
        assert_eq!(split_pin_and_code("1234081804", "1234", 6), Some("081804"));
        // Wrong PIN with a valid code.
        assert_eq!(split_pin_and_code("4321081804", "1234", 6), None);
        assert_eq!(split_pin_and_code("1235081804", "1234", 6), None);
        // Extra character in front: never a suffix match.
        assert_eq!(split_pin_and_code("91234081804", "1234", 6), None);
        assert_eq!(split_pin_and_code("01234081804", "1234", 6), None);
        // Too short / extra after.
        assert_eq!(split_pin_and_code("123408180", "1234", 6), None);
        assert_eq!(split_pin_and_code("12340818040", "1234", 6), None);
        assert_eq!(split_pin_and_code("081804", "", 6), None);
        // Multi-byte input cannot split inside a character.
        assert_eq!(split_pin_and_code("12é0818", "1234", 4), None);
        assert_eq!(
            split_pin_and_code("1234567890123456", "12345678", 8),
            Some("90123456")
        );
    }

    #[test]
    fn check_with_pin() {
        let p = totp6();
        let t = FIELD_TIME;
        assert_eq!(
            check_totp_with_pin(SHA1_KEY, &p, "1234", "1234081804", t, None),
            OathVerdict::Accept { step: FIELD_STEP }
        );
        assert_eq!(
            check_totp_with_pin(SHA1_KEY, &p, "1234", "9999081804", t, None),
            OathVerdict::Wrong
        );
        // A wrong PIN hides a replay.
        assert_eq!(
            check_totp_with_pin(SHA1_KEY, &p, "1234", "9999081804", t, Some(FIELD_STEP)),
            OathVerdict::Wrong
        );
        assert_eq!(
            check_totp_with_pin(SHA1_KEY, &p, "1234", "1234081804", t, Some(FIELD_STEP)),
            OathVerdict::Replay
        );
        assert_eq!(
            check_totp_with_pin(SHA1_KEY, &p, "1234", "x1234081804", t, None),
            OathVerdict::Malformed
        );
        assert_eq!(
            check_totp_with_pin(SHA1_KEY, &p, "1234", "1234+81804", t, None),
            OathVerdict::Malformed
        );
        assert_eq!(
            check_totp_with_pin(SHA1_KEY, &p, "1234", "081804", t, None),
            OathVerdict::Malformed
        );
        let h = hotp6();
        assert_eq!(
            check_hotp_with_pin(RFC4226_KEY, &h, "1234", "1234969429", 0, 10),
            OathVerdict::Accept { step: 3 }
        );
        assert_eq!(
            check_hotp_with_pin(RFC4226_KEY, &h, "1234", "1243969429", 0, 10),
            OathVerdict::Wrong
        );
    }

    const KNOWN_URI: &str = "otpauth://totp/Pinwheel:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Pinwheel&algorithm=SHA1&digits=6&period=30";

    fn known() -> KeyUri {
        KeyUri {
            issuer: "Pinwheel".into(),
            account: "alice@example.com".into(),
            secret: OathSecret::from_bytes(SHA1_KEY),
            params: totp6(),
            counter: 0,
        }
    }

    #[test]
    fn key_uri_known_string() {
        assert_eq!(known().to_uri(), KNOWN_URI);
        assert_eq!(KeyUri::parse(KNOWN_URI).unwrap(), known());
    }

    #[test]
    fn key_uri_encodes_colons_spaces_unicode() {
        let uri = KeyUri {
            issuer: "ACME: Corp".into(),
            account: "jane doe:admin/ü+x".into(),
            secret: OathSecret::from_bytes(b"hello world"),
            params: OathParams {
                kind: OathKind::Hotp,
                algorithm: Algorithm::Sha256,
                digits: 8,
            },
            counter: 42,
        };
        let text = uri.to_uri();
        assert_eq!(
            text,
            "otpauth://hotp/ACME%3A%20Corp:jane%20doe%3Aadmin%2F%C3%BC%2Bx?secret=NBSWY3DPEB3W64TMMQ&issuer=ACME%3A%20Corp&algorithm=SHA256&digits=8&counter=42"
        );
        assert_eq!(KeyUri::parse(&text).unwrap(), uri);
    }

    #[test]
    fn key_uri_google_examples() {
        let u = KeyUri::parse(
            "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example",
        )
        .unwrap();
        assert_eq!(u.issuer, "Example");
        assert_eq!(u.account, "alice@google.com");
        assert_eq!(u.params, OathParams::default());
        assert_eq!(u.secret.as_bytes(), b"Hello!\xde\xad\xbe\xef");
        // Encoded separator, space before the account, '+' in the query.
        let u = KeyUri::parse(
            "OTPAUTH://TOTP/ACME%20Co%3A%20john.doe@email.com?secret=jbswy3dpehpk3pxp&issuer=ACME+Co&Algorithm=sha1&digits=6&period=60&image=x",
        )
        .unwrap();
        assert_eq!(u.issuer, "ACME Co");
        assert_eq!(u.account, "john.doe@email.com");
        assert_eq!(u.params.kind, OathKind::Totp { period: 60 });
        // No issuer at all.
        let u = KeyUri::parse("otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!((u.issuer.as_str(), u.account.as_str()), ("", "bob"));
        assert_eq!(
            u.to_uri(),
            "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&algorithm=SHA1&digits=6&period=30"
        );
        // Issuer only in the label.
        let u = KeyUri::parse("otpauth://totp/Corp:bob?secret=JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!((u.issuer.as_str(), u.account.as_str()), ("Corp", "bob"));
        // An encoded colon without a matching issuer parameter stays in the account.
        let u = KeyUri::parse("otpauth://totp/b%3Ac?secret=JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!((u.issuer.as_str(), u.account.as_str()), ("", "b:c"));
    }

    #[test]
    fn key_uri_errors() {
        let s = "secret=JBSWY3DPEHPK3PXP";
        let cases: Vec<(String, OathError)> = vec![
            (format!("https://totp/a?{s}"), OathError::NotOtpauth),
            ("otp".into(), OathError::NotOtpauth),
            (
                format!("otpauth://motp/a?{s}"),
                OathError::UnknownType("motp".into()),
            ),
            ("otpauth://totp".into(), OathError::MissingLabel),
            (format!("otpauth://totp/?{s}"), OathError::MissingLabel),
            (format!("otpauth://totp/I:?{s}"), OathError::EmptyAccount),
            ("otpauth://totp/a?issuer=x".into(), OathError::MissingSecret),
            ("otpauth://totp/a?secret=".into(), OathError::EmptySecret),
            (
                format!("otpauth://totp/a?{s}&{s}"),
                OathError::DuplicateParameter("secret"),
            ),
            (format!("otpauth://hotp/a?{s}"), OathError::MissingCounter),
            (
                format!("otpauth://hotp/a?{s}&counter=-1"),
                OathError::InvalidNumber("counter"),
            ),
            (
                format!("otpauth://totp/a?{s}&digits=+6"),
                OathError::InvalidNumber("digits"),
            ),
            (
                format!("otpauth://totp/a?{s}&digits=300"),
                OathError::InvalidNumber("digits"),
            ),
            (
                format!("otpauth://totp/a?{s}&digits=5"),
                OathError::DigitsOutOfRange { got: 5 },
            ),
            (
                format!("otpauth://totp/a?{s}&digits=10"),
                OathError::DigitsOutOfRange { got: 10 },
            ),
            (
                format!("otpauth://totp/a?{s}&period=0"),
                OathError::PeriodZero,
            ),
            (
                format!("otpauth://totp/a?{s}&period="),
                OathError::InvalidNumber("period"),
            ),
            (
                format!("otpauth://totp/a?{s}&algorithm=MD5"),
                OathError::UnknownAlgorithm("MD5".into()),
            ),
            (
                format!("otpauth://totp/a%2?{s}"),
                OathError::BadPercentEncoding,
            ),
            (
                format!("otpauth://totp/a%zz?{s}"),
                OathError::BadPercentEncoding,
            ),
            (format!("otpauth://totp/a%FF?{s}"), OathError::NotUtf8),
            (
                format!("otpauth://totp/A:b?{s}&issuer=B"),
                OathError::IssuerMismatch,
            ),
        ];
        for (uri, err) in cases {
            assert_eq!(KeyUri::parse(&uri), Err(err), "{uri}");
        }
        // HOTP period and TOTP counter are ignored.
        let u = KeyUri::parse(&format!("otpauth://hotp/a?{s}&counter=7&period=0")).unwrap();
        assert_eq!((u.params.kind, u.counter), (OathKind::Hotp, 7));
        let u = KeyUri::parse(&format!("otpauth://totp/a?{s}&counter=7")).unwrap();
        assert_eq!(u.counter, 0);
    }

    fn arb_params() -> impl Strategy<Value = OathParams> {
        (
            prop_oneof![
                (1u32..=600).prop_map(|period| OathKind::Totp { period }),
                Just(OathKind::Hotp)
            ],
            prop::sample::select(Algorithm::ALL.to_vec()),
            MIN_DIGITS..=MAX_DIGITS,
        )
            .prop_map(|(kind, algorithm, digits)| OathParams {
                kind,
                algorithm,
                digits,
            })
    }

    fn arb_name() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{1,24}",
            "[ :a-zA-Z%+&?=#/@]{1,16}",
            "[ :]{0,3}[a-z]{1,6}[ :]{0,3}",
            "(ü|é|日本|😀|ß| |:){1,8}",
        ]
    }

    proptest! {
        #[test]
        fn key_uri_round_trip(
            issuer in prop_oneof![Just(String::new()), arb_name()],
            account in arb_name(),
            secret in prop::collection::vec(any::<u8>(), 1..80),
            params in arb_params(),
            counter in any::<u64>(),
        ) {
            let counter = if params.kind == OathKind::Hotp { counter } else { 0 };
            let uri = KeyUri {
                issuer,
                account,
                secret: OathSecret::from_bytes(&secret),
                params,
                counter,
            };
            let text = uri.to_uri();
            prop_assert!(text.is_ascii());
            prop_assert!(!text.contains(' '));
            // Exactly one literal ':' after the scheme when there is an issuer.
            let label = text.trim_start_matches("otpauth://").split('?').next().unwrap_or("");
            prop_assert_eq!(label.matches(':').count(), usize::from(!uri.issuer.is_empty()));
            prop_assert_eq!(KeyUri::parse(&text).unwrap(), uri);
        }

        #[test]
        fn base32_round_trip(bytes in prop::collection::vec(any::<u8>(), 1..100)) {
            let s = OathSecret::from_bytes(&bytes);
            let text = s.to_base32();
            prop_assert!(!text.contains('='));
            let upper = OathSecret::from_base32(&text).unwrap();
            let lower = OathSecret::from_base32(&text.to_lowercase()).unwrap();
            prop_assert_eq!(upper.as_bytes(), &bytes[..]);
            prop_assert_eq!(lower.as_bytes(), &bytes[..]);
        }

        #[test]
        fn codes_are_fixed_length_digits(
            secret in prop::collection::vec(any::<u8>(), 0..70),
            counter in any::<u64>(),
            alg in prop::sample::select(Algorithm::ALL.to_vec()),
            digits in MIN_DIGITS..=MAX_DIGITS,
        ) {
            let code = hotp(&secret, counter, alg, digits);
            prop_assert_eq!(code.len(), usize::from(digits));
            prop_assert!(code.bytes().all(|b| b.is_ascii_digit()));
            let params = OathParams { kind: OathKind::Hotp, algorithm: alg, digits };
            prop_assert_eq!(
                check_hotp(&secret, &params, &code, counter, 0),
                OathVerdict::Accept { step: counter }
            );
        }

        #[test]
        fn checks_never_panic(input in "\\PC{0,12}", t in any::<u64>(), last in any::<Option<u64>>(), c in any::<u64>(), la in 0u64..20) {
            let _ = check_totp(SHA1_KEY, &totp6(), &input, t, last);
            let _ = check_hotp(SHA1_KEY, &hotp6(), &input, c, la);
            let _ = resync_hotp(SHA1_KEY, &hotp6(), &input, &input, c, la);
            let _ = split_pin_and_code(&input, "1234", 6);
            let _ = check_totp_with_pin(SHA1_KEY, &totp6(), "1234", &input, t, last);
            let _ = KeyUri::parse(&input);
            let _ = KeyUri::parse(&format!("otpauth://totp/{input}?secret=AAAAAAAA&{input}"));
        }

        #[test]
        fn totp_never_accepts_at_or_below_last(t in 60u64..u64::MAX / 2, back in 0u64..3) {
            let step = totp_step(t, 30);
            let last = step + 1 - back;
            for s in step - 1..=step + 1 {
                let code = hotp(SHA1_KEY, s, Algorithm::Sha1, 6);
                if let OathVerdict::Accept { step: got } = check_totp(SHA1_KEY, &totp6(), &code, t, Some(last)) {
                    prop_assert!(got > last);
                }
            }
        }
    }
}
