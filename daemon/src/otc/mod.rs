//! One-time codes from security strings: pure logic, no I/O.
//!
//! This module owns the vocabulary of DESIGN.md "Security strings": deriving a batch
//! of 99 ten-character security strings from a per-device seed ([`strings`]), the
//! user's PIN and OTC extraction ([`pin`]), parsing what the user typed (OTC followed
//! by the string index) and the one rule that decides a security-string code
//! ([`code`]), and the 99-bit set of spent indexes ([`used`]). It must never do I/O
//! (no files, sockets, clocks or logging), never keep secrets (seeds, PINs, strings,
//! OTCs) in memory longer than their owner does (they are zeroized on drop), and never
//! print them: every secret type has a `Debug` that prints `<redacted>`, and no error
//! carries a secret value.

pub mod code;
pub mod oath;
pub mod pin;
pub mod strings;
pub mod used;

pub use code::{check_string_code, ct_eq, parse_typed_code, TypedCode, Verdict};
pub use pin::{extract, Pin};
pub use strings::{derive_batch, derive_string, Alphabet, DeviceSeed, SecurityString};
pub use used::UsedSet;

/// Characters per security string. Positions are labelled `1 2 3 4 5 6 7 8 9 0`; the
/// label `0` names the tenth position.
pub const STRING_LEN: usize = 10;

/// Strings per batch. Valid string indexes are `1..=BATCH_SIZE` (typed as `01`..`99`);
/// index 0 is never valid.
pub const BATCH_SIZE: u8 = 99;

/// Length in bytes of a [`DeviceSeed`] (the HMAC-SHA256 key strings are derived from).
pub const SEED_LEN: usize = 32;

/// Shortest PIN any configuration may allow, in digits.
pub const MIN_PIN_LEN: usize = 4;

/// Longest PIN any configuration may allow, in digits (one per string position).
pub const MAX_PIN_LEN: usize = 10;

/// Digits of the string index in the compact typed form (`746912`: OTC `7469`, index 12).
pub const INDEX_DIGITS: usize = 2;

/// Every error of the `otc` module. No variant carries a secret (seed, PIN, string,
/// OTC); lengths and bounds only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtcError {
    /// An alphabet name other than `digits`, `upper`, `upper-digits` or `mixed`.
    #[error(
        "unknown alphabet {0:?}: expected \"digits\", \"upper\", \"upper-digits\" or \"mixed\""
    )]
    UnknownAlphabet(String),

    /// A device seed of the wrong length (bytes).
    #[error("device seed must be {SEED_LEN} bytes, got {got}")]
    SeedLength {
        /// Bytes supplied.
        got: usize,
    },

    /// A string index outside `1..=99` (index 0 is never valid).
    #[error("string index {0} is out of range 01..{BATCH_SIZE}")]
    IndexOutOfRange(u8),

    /// A security string that is not exactly [`STRING_LEN`] characters.
    #[error("security string must be {STRING_LEN} characters, got {got}")]
    StringLength {
        /// Characters supplied.
        got: usize,
    },

    /// A security string with a character that is not an ASCII letter or digit.
    #[error("security string may contain only ASCII letters and digits")]
    StringCharset,

    /// A PIN whose length is outside the allowed bounds (digits).
    #[error("PIN must be {min} to {max} digits")]
    PinLength {
        /// Fewest digits allowed.
        min: usize,
        /// Most digits allowed.
        max: usize,
    },

    /// A PIN with a character that is not an ASCII digit.
    #[error("PIN may contain only the digits 0-9")]
    PinNotDigits,

    /// Nothing typed (empty or whitespace only).
    #[error("no code entered")]
    EmptyCode,

    /// Compact form (`746912`) of the wrong total length (characters).
    #[error("code must be {expected} characters (one-time code followed by the 2-digit index), got {got}")]
    CodeLength {
        /// OTC length + 2.
        expected: usize,
        /// Characters typed (after trimming).
        got: usize,
    },

    /// Legacy form (`7469,12`) whose OTC part has the wrong length (characters).
    #[error("one-time code must be {expected} characters, got {got}")]
    OtcLength {
        /// OTC length (the PIN length).
        expected: usize,
        /// Characters typed before the comma.
        got: usize,
    },

    /// The OTC part contains something other than ASCII letters and digits.
    #[error("one-time code may contain only letters and digits")]
    OtcCharset,

    /// Legacy form with nothing after the comma.
    #[error("string index missing after the comma")]
    IndexMissing,

    /// The index part contains something other than ASCII digits.
    #[error("string index may contain only digits")]
    IndexNotDigits,

    /// The index part has the wrong number of digits (2 in the compact form, 1 or 2
    /// in the legacy form).
    #[error("string index must be 2 digits (or 1 to 2 after a comma), got {got}")]
    IndexLength {
        /// Digits typed.
        got: usize,
    },

    /// A serialized used set that is not 16 bytes.
    #[error("used-index set must be 16 bytes, got {got}")]
    UsedSetLength {
        /// Bytes supplied.
        got: usize,
    },

    /// A serialized used set with bits set outside indexes 1..=99 (corrupt record).
    #[error("used-index set has bits outside indexes 1..{BATCH_SIZE}")]
    UsedSetBits,
}
