//! Security strings: alphabets, the per-device seed and deterministic derivation.
//!
//! This file owns [`Alphabet`], [`DeviceSeed`], [`SecurityString`] and the derivation
//! of a batch of 99 strings from seed + batch number (HMAC-SHA256, rejection sampling,
//! no modulo bias). It must never do I/O, never print a seed or a string (`Debug` is
//! redacted), and never change the derivation without a new domain label: stored
//! seeds and batch numbers rely on strings being reproducible forever.

use std::fmt;

use hmac::digest::{Key, KeyInit};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{OtcError, BATCH_SIZE, SEED_LEN, STRING_LEN};

/// Domain label of derivation version 1, the first bytes of every HMAC message.
pub const DERIVATION_LABEL: &[u8] = b"pinwheel/security-string/v1";

const DIGITS: &[u8] = b"0123456789";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const UPPER_DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const MIXED: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Characters security strings are drawn from (`[strings] alphabet` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alphabet {
    /// `"digits"`: `0-9` (10 characters). The default.
    Digits,
    /// `"upper"`: `A-Z` (26 characters).
    Upper,
    /// `"upper-digits"`: `0-9A-Z` (36 characters).
    UpperDigits,
    /// `"mixed"`: `0-9A-Za-z` (62 characters); the only case-sensitive alphabet.
    Mixed,
}

impl Alphabet {
    /// Every alphabet, in declaration order.
    pub const ALL: [Alphabet; 4] = [
        Alphabet::Digits,
        Alphabet::Upper,
        Alphabet::UpperDigits,
        Alphabet::Mixed,
    ];

    /// The characters of this alphabet, ASCII, in ASCII order, no duplicates. The
    /// order is part of the derivation: character `k` of the list is drawn for an
    /// accepted byte `b` with `b % len == k`.
    pub fn chars(self) -> &'static [u8] {
        match self {
            Alphabet::Digits => DIGITS,
            Alphabet::Upper => UPPER,
            Alphabet::UpperDigits => UPPER_DIGITS,
            Alphabet::Mixed => MIXED,
        }
    }

    /// Parses a config value: exactly `"digits"`, `"upper"`, `"upper-digits"` or
    /// `"mixed"`. Errors: [`OtcError::UnknownAlphabet`] carrying the given text.
    pub fn parse(s: &str) -> Result<Alphabet, OtcError> {
        match s {
            "digits" => Ok(Alphabet::Digits),
            "upper" => Ok(Alphabet::Upper),
            "upper-digits" => Ok(Alphabet::UpperDigits),
            "mixed" => Ok(Alphabet::Mixed),
            other => Err(OtcError::UnknownAlphabet(other.to_owned())),
        }
    }

    /// The config name, the inverse of [`Alphabet::parse`].
    pub fn as_str(self) -> &'static str {
        match self {
            Alphabet::Digits => "digits",
            Alphabet::Upper => "upper",
            Alphabet::UpperDigits => "upper-digits",
            Alphabet::Mixed => "mixed",
        }
    }

    /// True when the alphabet has no lower-case letters, so typed codes are compared
    /// after ASCII upper-casing (every alphabet but [`Alphabet::Mixed`]).
    pub fn is_case_insensitive(self) -> bool {
        !matches!(self, Alphabet::Mixed)
    }

    /// Whether `c` belongs to this alphabet.
    pub fn contains(self, c: u8) -> bool {
        self.chars().contains(&c)
    }
}

impl Default for Alphabet {
    /// [`Alphabet::Digits`], as DESIGN.md prescribes.
    fn default() -> Self {
        Alphabet::Digits
    }
}

impl fmt::Display for Alphabet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Alphabet {
    type Err = OtcError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Alphabet::parse(s)
    }
}

/// The per-device secret (32 bytes) every batch of that device is derived from.
/// Zeroized on drop; `Debug` prints `<redacted>`. Stored encrypted by the store.
#[derive(Clone)]
pub struct DeviceSeed([u8; SEED_LEN]);

impl DeviceSeed {
    /// A fresh seed from the operating system's CSPRNG (`OsRng`).
    pub fn random() -> DeviceSeed {
        let mut seed = DeviceSeed([0u8; SEED_LEN]);
        OsRng.fill_bytes(&mut seed.0);
        seed
    }

    /// A seed from stored bytes (after decryption).
    /// Errors: [`OtcError::SeedLength`] unless `bytes` is exactly [`SEED_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<DeviceSeed, OtcError> {
        if bytes.len() != SEED_LEN {
            return Err(OtcError::SeedLength { got: bytes.len() });
        }
        let mut seed = DeviceSeed([0u8; SEED_LEN]);
        seed.0.copy_from_slice(bytes);
        Ok(seed)
    }

    /// The raw 32 bytes, for encryption at rest. Never log them.
    pub fn as_bytes(&self) -> &[u8; SEED_LEN] {
        &self.0
    }
}

impl Drop for DeviceSeed {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for DeviceSeed {}

impl fmt::Debug for DeviceSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceSeed(<redacted>)")
    }
}

/// One security string: exactly [`STRING_LEN`] ASCII letters or digits, positions
/// labelled `1 2 3 4 5 6 7 8 9 0`. Zeroized on drop; `Debug` prints `<redacted>`,
/// `Display` prints the 10 characters (for sending to the device only).
#[derive(Clone, PartialEq, Eq)]
pub struct SecurityString([u8; STRING_LEN]);

impl SecurityString {
    /// The 10 characters as a `&str`.
    pub fn as_str(&self) -> &str {
        // Every constructor admits ASCII only, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The 10 characters as bytes; element 0 is position 1, element 9 is position 0.
    pub fn as_bytes(&self) -> &[u8; STRING_LEN] {
        &self.0
    }

    /// The character at a position label: 1..=9, or 0 for the tenth position.
    /// Labels above 9 give `None`.
    pub fn char_at(&self, label: u8) -> Option<u8> {
        match label {
            0 => Some(self.0[STRING_LEN - 1]),
            1..=9 => Some(self.0[usize::from(label) - 1]),
            _ => None,
        }
    }

    /// Parses a string as shown to a user (for tests and the mobile client): exactly
    /// 10 ASCII letters or digits, any alphabet.
    /// Errors: [`OtcError::StringLength`] (characters counted), [`OtcError::StringCharset`].
    pub fn parse(s: &str) -> Result<SecurityString, OtcError> {
        let got = s.chars().count();
        if got != STRING_LEN {
            return Err(OtcError::StringLength { got });
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(OtcError::StringCharset);
        }
        let mut out = SecurityString([0u8; STRING_LEN]);
        out.0.copy_from_slice(s.as_bytes());
        Ok(out)
    }
}

impl Drop for SecurityString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for SecurityString {}

impl fmt::Debug for SecurityString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecurityString(<redacted>)")
    }
}

impl fmt::Display for SecurityString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// HMAC-SHA256 keyed with the seed. The 32-byte seed is zero-padded to the 64-byte
/// block, which is exactly what HMAC does with a short key, so this equals
/// `Hmac::new_from_slice(seed)` without a fallible call.
fn keyed_mac(seed: &DeviceSeed) -> Hmac<Sha256> {
    let mut key = Key::<Hmac<Sha256>>::default();
    key[..SEED_LEN].copy_from_slice(&seed.0);
    let mac = <Hmac<Sha256> as KeyInit>::new(&key);
    key.as_mut_slice().zeroize();
    mac
}

/// Derivation without the index check; `index` goes into the message as is.
fn derive_unchecked(
    mac: &Hmac<Sha256>,
    batch: u32,
    index: u8,
    alphabet: Alphabet,
) -> SecurityString {
    let chars = alphabet.chars();
    let n = chars.len();
    // Largest multiple of n not above 256: bytes at or above it are rejected.
    let limit = 256 - 256 % n;
    let mut out = SecurityString([0u8; STRING_LEN]);
    let mut filled = 0usize;
    let mut counter: u32 = 0;
    while filled < STRING_LEN {
        let mut m = mac.clone();
        m.update(DERIVATION_LABEL);
        m.update(&batch.to_be_bytes());
        m.update(&[index]);
        m.update(&counter.to_be_bytes());
        let mut block = m.finalize().into_bytes();
        for &b in block.iter() {
            let b = usize::from(b);
            if b < limit {
                out.0[filled] = chars[b % n];
                filled += 1;
                if filled == STRING_LEN {
                    break;
                }
            }
        }
        block.as_mut_slice().zeroize();
        counter = counter.wrapping_add(1);
    }
    out
}

/// Derives the string of `index` (1..=99) in `batch` of the device with `seed`.
///
/// Characters are drawn uniformly from `alphabet` (they may repeat): the byte stream is
/// the concatenation of blocks `HMAC-SHA256(key = seed, msg = "pinwheel/security-string/v1"
/// || batch (u32 BE) || index (u8) || block counter (u32 BE, from 0))`; a byte `b` is
/// accepted when `b < 256 - 256 % n` (n = alphabet size) and gives `chars[b % n]`;
/// blocks are taken until 10 characters are accepted. Deterministic.
///
/// Errors: [`OtcError::IndexOutOfRange`] unless `1 <= index <= 99`.
pub fn derive_string(
    seed: &DeviceSeed,
    batch: u32,
    index: u8,
    alphabet: Alphabet,
) -> Result<SecurityString, OtcError> {
    if !(1..=BATCH_SIZE).contains(&index) {
        return Err(OtcError::IndexOutOfRange(index));
    }
    Ok(derive_unchecked(&keyed_mac(seed), batch, index, alphabet))
}

/// Derives the whole batch: 99 strings, element `i - 1` being the string of index `i`
/// (the same as [`derive_string`] for each index).
pub fn derive_batch(seed: &DeviceSeed, batch: u32, alphabet: Alphabet) -> Vec<SecurityString> {
    let mac = keyed_mac(seed);
    (1..=BATCH_SIZE)
        .map(|index| derive_unchecked(&mac, batch, index, alphabet))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(fill: u8) -> DeviceSeed {
        DeviceSeed::from_bytes(&[fill; SEED_LEN]).unwrap()
    }

    #[test]
    fn alphabet_names_round_trip() {
        for a in Alphabet::ALL {
            assert_eq!(Alphabet::parse(a.as_str()).unwrap(), a);
            assert_eq!(a.as_str().parse::<Alphabet>().unwrap(), a);
            assert_eq!(a.to_string(), a.as_str());
        }
        assert_eq!(Alphabet::default(), Alphabet::Digits);
        assert_eq!(
            Alphabet::parse("Digits"),
            Err(OtcError::UnknownAlphabet("Digits".into()))
        );
        assert!(Alphabet::parse("").is_err());
        assert!(Alphabet::parse("upper_digits").is_err());
    }

    #[test]
    fn alphabet_chars_are_distinct_ascii_alnum() {
        let sizes = [10, 26, 36, 62];
        for (a, size) in Alphabet::ALL.into_iter().zip(sizes) {
            let c = a.chars();
            assert_eq!(c.len(), size, "{a}");
            assert!(c.iter().all(|b| b.is_ascii_alphanumeric()));
            assert!(c.windows(2).all(|w| w[0] < w[1]), "sorted, distinct: {a}");
            assert_eq!(
                a.is_case_insensitive(),
                !c.iter().any(|b| b.is_ascii_lowercase())
            );
        }
    }

    #[test]
    fn seed_from_bytes_and_redaction() {
        assert_eq!(
            DeviceSeed::from_bytes(&[1u8; 31]).unwrap_err(),
            OtcError::SeedLength { got: 31 }
        );
        assert!(DeviceSeed::from_bytes(&[1u8; 33]).is_err());
        let s = seed(0xAB);
        assert_eq!(s.as_bytes(), &[0xAB; SEED_LEN]);
        let dbg = format!("{s:?}");
        assert_eq!(dbg, "DeviceSeed(<redacted>)");
        assert!(!dbg.to_lowercase().contains("ab"));
        let r1 = DeviceSeed::random();
        let r2 = DeviceSeed::random();
        assert_ne!(r1.as_bytes(), r2.as_bytes());
    }

    #[test]
    fn security_string_parse_display_debug() {
        let s = SecurityString::parse("7469832160").unwrap();
        assert_eq!(s.as_str(), "7469832160");
        assert_eq!(s.to_string(), "7469832160");
        assert_eq!(format!("{s:?}"), "SecurityString(<redacted>)");
        assert_eq!(s.char_at(1), Some(b'7'));
        assert_eq!(s.char_at(9), Some(b'6'));
        assert_eq!(s.char_at(0), Some(b'0'));
        assert_eq!(s.char_at(10), None);
        assert_eq!(
            SecurityString::parse("746983216").unwrap_err(),
            OtcError::StringLength { got: 9 }
        );
        assert_eq!(
            SecurityString::parse("74698321601").unwrap_err(),
            OtcError::StringLength { got: 11 }
        );
        assert_eq!(
            SecurityString::parse("74698-2160").unwrap_err(),
            OtcError::StringCharset
        );
        assert_eq!(
            SecurityString::parse("74698é216").unwrap_err(),
            OtcError::StringLength { got: 9 }
        );
        assert_eq!(
            SecurityString::parse("7469é32160").unwrap_err(),
            OtcError::StringCharset
        );
        assert!(SecurityString::parse("aZ09bY18cX").is_ok());
    }

    #[test]
    fn derive_rejects_bad_index() {
        let s = seed(1);
        assert_eq!(
            derive_string(&s, 0, 0, Alphabet::Digits).unwrap_err(),
            OtcError::IndexOutOfRange(0)
        );
        assert_eq!(
            derive_string(&s, 0, 100, Alphabet::Digits).unwrap_err(),
            OtcError::IndexOutOfRange(100)
        );
        assert!(derive_string(&s, 0, 1, Alphabet::Digits).is_ok());
        assert!(derive_string(&s, 0, 99, Alphabet::Digits).is_ok());
    }

    #[test]
    fn derive_is_deterministic_and_batch_matches_single() {
        for a in Alphabet::ALL {
            let b1 = derive_batch(&seed(7), 3, a);
            let b2 = derive_batch(&seed(7), 3, a);
            assert_eq!(b1.len(), 99);
            assert!(b1 == b2, "same seed and batch give the same strings");
            for (i, s) in b1.iter().enumerate() {
                let index = u8::try_from(i + 1).unwrap();
                assert!(*s == derive_string(&seed(7), 3, index, a).unwrap());
                assert!(s.as_bytes().iter().all(|&c| a.contains(c)));
            }
            let other_batch = derive_batch(&seed(7), 4, a);
            let differing = b1.iter().zip(&other_batch).filter(|(x, y)| x != y).count();
            assert!(differing >= 98, "another batch gives other strings");
            let other_seed = derive_batch(&seed(8), 3, a);
            let differing = b1.iter().zip(&other_seed).filter(|(x, y)| x != y).count();
            assert!(differing >= 98, "another seed gives other strings");
            // Strings within a batch differ from each other.
            let mut v: Vec<&str> = b1.iter().map(SecurityString::as_str).collect();
            v.sort_unstable();
            v.dedup();
            assert!(v.len() >= 98);
        }
    }

    /// Independent re-implementation of the documented derivation (HMAC with the seed
    /// as a slice key, explicit rejection sampling) must agree.
    #[test]
    fn derive_matches_the_documented_construction() {
        let sd = DeviceSeed::from_bytes(&(0u8..32).collect::<Vec<_>>()).unwrap();
        for a in Alphabet::ALL {
            for (batch, index) in [(0u32, 1u8), (1, 42), (u32::MAX, 99)] {
                let n = a.chars().len();
                let mut expect = Vec::new();
                let mut counter = 0u32;
                while expect.len() < 10 {
                    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(sd.as_bytes()).unwrap();
                    let mut msg = b"pinwheel/security-string/v1".to_vec();
                    msg.extend_from_slice(&batch.to_be_bytes());
                    msg.push(index);
                    msg.extend_from_slice(&counter.to_be_bytes());
                    m.update(&msg);
                    for b in m.finalize().into_bytes() {
                        if (b as usize) < 256 - 256 % n && expect.len() < 10 {
                            expect.push(a.chars()[b as usize % n]);
                        }
                    }
                    counter += 1;
                }
                let got = derive_string(&sd, batch, index, a).unwrap();
                assert_eq!(got.as_bytes().as_slice(), expect.as_slice());
            }
        }
    }

    /// Known answers, pinned so an accidental change of the derivation (which would
    /// invalidate every device in the field) fails loudly.
    #[test]
    fn derive_known_answers() {
        let sd = DeviceSeed::from_bytes(&(0u8..32).collect::<Vec<_>>()).unwrap();
        let got: Vec<String> = Alphabet::ALL
            .iter()
            .map(|&a| derive_string(&sd, 1, 1, a).unwrap().to_string())
            .collect();
        assert_eq!(got, KNOWN_ANSWERS);
    }

    const KNOWN_ANSWERS: [&str; 4] = ["4655216493", "YORHCPODDY", "AGNDORGIT3", "UAXN8lAmT3"];

    /// Chi-square goodness of fit of derived characters against the uniform
    /// distribution, per alphabet, over ~100k characters from fixed seeds.
    #[test]
    fn derived_characters_are_uniform() {
        for a in Alphabet::ALL {
            let n = a.chars().len();
            let mut counts = vec![0u64; n];
            let mut per_position = vec![vec![0u64; n]; STRING_LEN];
            let mut total = 0u64;
            let sd = seed(0x5A);
            for batch in 0..102u32 {
                for s in derive_batch(&sd, batch, a) {
                    for (pos, &c) in s.as_bytes().iter().enumerate() {
                        let k = a.chars().iter().position(|&x| x == c).unwrap();
                        counts[k] += 1;
                        per_position[pos][k] += 1;
                        total += 1;
                    }
                }
            }
            assert!(total >= 100_000);
            let chi = chi_square(&counts, total);
            let df = (n - 1) as f64;
            // Mean df, sd sqrt(2 df): 6 standard deviations is generous.
            let threshold = df + 6.0 * (2.0 * df).sqrt();
            assert!(chi < threshold, "{a}: chi2 {chi:.1} >= {threshold:.1}");
            for (pos, c) in per_position.iter().enumerate() {
                let t: u64 = c.iter().sum();
                let chi = chi_square(c, t);
                assert!(chi < threshold, "{a} position {pos}: chi2 {chi:.1}");
            }
        }
    }

    fn chi_square(counts: &[u64], total: u64) -> f64 {
        let expected = total as f64 / counts.len() as f64;
        counts
            .iter()
            .map(|&c| {
                let d = c as f64 - expected;
                d * d / expected
            })
            .sum()
    }

    /// The chi-square test above can tell a biased draw from a uniform one: the same
    /// volume of `byte % 62` (with modulo bias) fails it.
    #[test]
    fn chi_square_detects_modulo_bias() {
        let n = 62usize;
        let mut counts = vec![0u64; n];
        let mut total = 0u64;
        // Perfectly even bytes 0..=255, reduced with modulo bias.
        for _ in 0..400 {
            for b in 0..=255usize {
                counts[b % n] += 1;
                total += 1;
            }
        }
        let df = (n - 1) as f64;
        let threshold = df + 6.0 * (2.0 * df).sqrt();
        assert!(chi_square(&counts, total) > threshold);
    }
}
