//! What the user typed, and the one rule deciding a security-string code.
//!
//! This file owns [`parse_typed_code`] (OTC followed by the 2-digit string index,
//! `746912`, or the legacy `7469,12`), [`ct_eq`] and [`check_string_code`], the single
//! place where a typed code is accepted or refused. It must never accept an index
//! twice (the index is spent before the comparison, pass or fail), never compare
//! codes in variable time, never print a typed or expected code (`Debug` of
//! [`TypedCode`] is redacted), and never do I/O: the caller persists the updated
//! [`UsedSet`] before answering.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{
    derive_string, extract, Alphabet, DeviceSeed, OtcError, Pin, UsedSet, BATCH_SIZE, INDEX_DIGITS,
};

/// A parsed code: the OTC as typed (ASCII letters and digits, `otc_len` of them) and
/// the string index (1..=99). `Debug` redacts the OTC.
#[derive(Clone, PartialEq, Eq)]
pub struct TypedCode {
    /// The one-time code part, exactly as typed (case preserved).
    pub otc: String,
    /// The string index, 1..=99.
    pub index: u8,
}

impl fmt::Debug for TypedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedCode")
            .field("otc", &"<redacted>")
            .field("index", &self.index)
            .finish()
    }
}

/// Parses what the user typed into an OTC of `otc_len` characters and a string index.
///
/// Accepted forms, after trimming surrounding whitespace:
/// - compact: the OTC immediately followed by exactly 2 index digits (`746912`);
/// - legacy: OTC, a comma, then 1 or 2 index digits (`7469,12`, `7469,5`); whitespace
///   around the comma is ignored.
///
/// The OTC must be ASCII letters or digits (any alphabet; membership is decided by
/// the comparison), the index must be 1..=99.
///
/// Errors, in the order checked: [`OtcError::EmptyCode`]; compact form
/// [`OtcError::CodeLength`] (characters, expected `otc_len + 2`); legacy form
/// [`OtcError::OtcLength`]; [`OtcError::OtcCharset`]; [`OtcError::IndexMissing`];
/// [`OtcError::IndexNotDigits`]; [`OtcError::IndexLength`];
/// [`OtcError::IndexOutOfRange`] (index `00`/`0`).
pub fn parse_typed_code(input: &str, otc_len: usize) -> Result<TypedCode, OtcError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(OtcError::EmptyCode);
    }
    let (otc, index, legacy) = match s.split_once(',') {
        Some((otc, index)) => (otc.trim(), index.trim(), true),
        None => {
            let expected = otc_len.saturating_add(INDEX_DIGITS);
            let got = s.chars().count();
            if got != expected {
                return Err(OtcError::CodeLength { expected, got });
            }
            // Byte offset of the first index character (a char boundary).
            let split = s.char_indices().nth(otc_len).map_or(s.len(), |(i, _)| i);
            let (otc, index) = s.split_at(split);
            (otc, index, false)
        }
    };
    let got = otc.chars().count();
    if got != otc_len {
        return Err(OtcError::OtcLength {
            expected: otc_len,
            got,
        });
    }
    if !otc.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(OtcError::OtcCharset);
    }
    let index = parse_index(index, legacy)?;
    Ok(TypedCode {
        otc: otc.to_owned(),
        index,
    })
}

/// The index part: digits only, 2 of them (compact) or 1..=2 (legacy), value 1..=99.
fn parse_index(s: &str, legacy: bool) -> Result<u8, OtcError> {
    if s.is_empty() {
        return Err(OtcError::IndexMissing);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OtcError::IndexNotDigits);
    }
    let got = s.len(); // ASCII digits: bytes == characters
    let length_ok = if legacy {
        got <= INDEX_DIGITS
    } else {
        got == INDEX_DIGITS
    };
    if !length_ok {
        return Err(OtcError::IndexLength { got });
    }
    // At most 2 digits: at most 99, no overflow.
    let value = s.bytes().fold(0u8, |acc, b| acc * 10 + (b - b'0'));
    if !(1..=BATCH_SIZE).contains(&value) {
        return Err(OtcError::IndexOutOfRange(value));
    }
    Ok(value)
}

/// Constant-time equality of two byte strings (`subtle`): the time depends only on the
/// lengths. Different lengths give `false`.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    bool::from(a.ct_eq(b))
}

/// The outcome of [`check_string_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Right OTC for an unspent index; the index is now spent.
    Accept,
    /// Wrong OTC for an unspent index; the index is now spent all the same.
    WrongCode,
    /// The index was already spent (it stays spent); the OTC was not looked at.
    IndexAlreadyUsed,
    /// The input could not be parsed ([`parse_typed_code`] failed); nothing spent.
    Malformed,
}

/// The one rule deciding a security-string code.
///
/// Parses `input` with [`parse_typed_code`] using the PIN's length as the OTC length:
/// [`Verdict::Malformed`] if that fails (nothing spent). [`Verdict::IndexAlreadyUsed`]
/// if the index is already spent in `used` (it stays spent). Otherwise marks the index
/// spent in `used` FIRST, then derives the string of that index of `batch` from `seed`,
/// extracts the expected OTC with `pin`, and compares in constant time:
/// [`Verdict::Accept`] or [`Verdict::WrongCode`]. With every alphabet but
/// [`Alphabet::Mixed`] the typed OTC is upper-cased before the comparison (those
/// alphabets have no lower-case letters). A well-formed OTC with characters outside
/// the alphabet is a [`Verdict::WrongCode`] and spends the index like any other
/// attempt. The caller must persist `used` whenever it
/// changed (every verdict but `Malformed`/`IndexAlreadyUsed`) before answering.
pub fn check_string_code(
    seed: &DeviceSeed,
    batch: u32,
    alphabet: Alphabet,
    pin: &Pin,
    used: &mut UsedSet,
    input: &str,
) -> Verdict {
    let typed = match parse_typed_code(input, pin.len()) {
        Ok(t) => t,
        Err(_) => return Verdict::Malformed,
    };
    let index = typed.index;
    let mut otc = Zeroizing::new(typed.otc);
    if used.is_used(index) {
        return Verdict::IndexAlreadyUsed;
    }
    used.mark(index);
    let string = match derive_string(seed, batch, index, alphabet) {
        Ok(s) => s,
        // Unreachable: the index was validated by the parser. Refuse regardless.
        Err(_) => return Verdict::WrongCode,
    };
    let expected = Zeroizing::new(extract(&string, pin));
    if alphabet.is_case_insensitive() {
        otc.make_ascii_uppercase();
    }
    if ct_eq(expected.as_bytes(), otc.as_bytes()) {
        Verdict::Accept
    } else {
        Verdict::WrongCode
    }
}

#[cfg(test)]
mod tests {
    use super::super::{derive_batch, SecurityString, SEED_LEN};
    use super::*;
    use proptest::prelude::*;

    fn tc(otc: &str, index: u8) -> TypedCode {
        TypedCode {
            otc: otc.to_owned(),
            index,
        }
    }

    #[test]
    fn compact_form() {
        assert_eq!(parse_typed_code("746912", 4).unwrap(), tc("7469", 12));
        assert_eq!(parse_typed_code("746901", 4).unwrap(), tc("7469", 1));
        assert_eq!(parse_typed_code("746999", 4).unwrap(), tc("7469", 99));
        assert_eq!(parse_typed_code("  746912\n", 4).unwrap(), tc("7469", 12));
        assert_eq!(parse_typed_code("\t74691203 ", 6).unwrap(), tc("746912", 3));
        assert_eq!(parse_typed_code("AbC9zz07", 6).unwrap(), tc("AbC9zz", 7));
        assert_eq!(
            parse_typed_code("123456789042", 10).unwrap(),
            tc("1234567890", 42)
        );
    }

    #[test]
    fn legacy_form() {
        assert_eq!(parse_typed_code("7469,12", 4).unwrap(), tc("7469", 12));
        assert_eq!(parse_typed_code("7469,5", 4).unwrap(), tc("7469", 5));
        assert_eq!(parse_typed_code("7469,05", 4).unwrap(), tc("7469", 5));
        assert_eq!(parse_typed_code(" 7469 , 12 ", 4).unwrap(), tc("7469", 12));
        assert_eq!(parse_typed_code("ABCDE,99", 5).unwrap(), tc("ABCDE", 99));
    }

    #[test]
    fn index_zero_is_refused() {
        assert_eq!(
            parse_typed_code("746900", 4),
            Err(OtcError::IndexOutOfRange(0))
        );
        assert_eq!(
            parse_typed_code("7469,00", 4),
            Err(OtcError::IndexOutOfRange(0))
        );
        assert_eq!(
            parse_typed_code("7469,0", 4),
            Err(OtcError::IndexOutOfRange(0))
        );
    }

    #[test]
    fn index_100_is_refused() {
        assert_eq!(
            parse_typed_code("7469,100", 4),
            Err(OtcError::IndexLength { got: 3 })
        );
        // Compact: one character too many for a 4-digit OTC.
        assert_eq!(
            parse_typed_code("7469100", 4),
            Err(OtcError::CodeLength {
                expected: 6,
                got: 7
            })
        );
    }

    #[test]
    fn too_short_and_too_long() {
        assert_eq!(parse_typed_code("", 4), Err(OtcError::EmptyCode));
        assert_eq!(parse_typed_code("   \t", 4), Err(OtcError::EmptyCode));
        assert_eq!(
            parse_typed_code("7469", 4),
            Err(OtcError::CodeLength {
                expected: 6,
                got: 4
            })
        );
        assert_eq!(
            parse_typed_code("74691", 4),
            Err(OtcError::CodeLength {
                expected: 6,
                got: 5
            })
        );
        assert_eq!(
            parse_typed_code("7469123", 4),
            Err(OtcError::CodeLength {
                expected: 6,
                got: 7
            })
        );
        assert_eq!(parse_typed_code("7469,", 4), Err(OtcError::IndexMissing));
        assert_eq!(
            parse_typed_code(",12", 4),
            Err(OtcError::OtcLength {
                expected: 4,
                got: 0
            })
        );
    }

    #[test]
    fn wrong_otc_length() {
        assert_eq!(
            parse_typed_code("746,12", 4),
            Err(OtcError::OtcLength {
                expected: 4,
                got: 3
            })
        );
        assert_eq!(
            parse_typed_code("74698,12", 4),
            Err(OtcError::OtcLength {
                expected: 4,
                got: 5
            })
        );
        // A 6-digit PIN user typing a 4-character code.
        assert_eq!(
            parse_typed_code("746912", 6),
            Err(OtcError::CodeLength {
                expected: 8,
                got: 6
            })
        );
    }

    #[test]
    fn letters_in_index() {
        assert_eq!(parse_typed_code("7469AB", 4), Err(OtcError::IndexNotDigits));
        assert_eq!(parse_typed_code("74691A", 4), Err(OtcError::IndexNotDigits));
        assert_eq!(
            parse_typed_code("7469,1x", 4),
            Err(OtcError::IndexNotDigits)
        );
        assert_eq!(
            parse_typed_code("7469,-1", 4),
            Err(OtcError::IndexNotDigits)
        );
        assert_eq!(
            parse_typed_code("7469,12,3", 4),
            Err(OtcError::IndexNotDigits)
        );
        assert_eq!(parse_typed_code("7469 12", 5), Err(OtcError::OtcCharset));
    }

    #[test]
    fn otc_charset_and_non_ascii() {
        assert_eq!(parse_typed_code("74-912", 4), Err(OtcError::OtcCharset));
        assert_eq!(parse_typed_code("74é912", 4), Err(OtcError::OtcCharset));
        assert_eq!(parse_typed_code("7469é2", 4), Err(OtcError::IndexNotDigits));
        assert_eq!(parse_typed_code("7469١٢", 4), Err(OtcError::IndexNotDigits));
        assert_eq!(parse_typed_code("éééé,12", 4), Err(OtcError::OtcCharset));
        assert_eq!(
            parse_typed_code("😀😀😀😀😀😀😀", 4),
            Err(OtcError::CodeLength {
                expected: 6,
                got: 7
            })
        );
    }

    #[test]
    fn typed_code_debug_is_redacted() {
        let t = tc("7469", 12);
        let d = format!("{t:?}");
        assert!(!d.contains("7469"), "{d}");
        assert!(d.contains("12"), "{d}");
    }

    #[test]
    fn ct_eq_basics() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"7469", b"7469"));
        assert!(!ct_eq(b"7469", b"7468"));
        assert!(!ct_eq(b"7469", b"74690"));
        assert!(!ct_eq(b"", b"0"));
    }

    fn seed() -> DeviceSeed {
        DeviceSeed::from_bytes(&[0x42; SEED_LEN]).unwrap()
    }

    fn good_input(seed: &DeviceSeed, batch: u32, a: Alphabet, pin: &Pin, index: u8) -> String {
        let s = derive_string(seed, batch, index, a).unwrap();
        format!("{}{:02}", extract(&s, pin), index)
    }

    #[test]
    fn check_accepts_once_then_refuses() {
        let sd = seed();
        let pin = Pin::parse("1234", 4, 10).unwrap();
        let mut used = UsedSet::default();
        let input = good_input(&sd, 1, Alphabet::Digits, &pin, 12);
        let v = check_string_code(&sd, 1, Alphabet::Digits, &pin, &mut used, &input);
        assert_eq!(v, Verdict::Accept);
        assert!(used.is_used(12));
        let v = check_string_code(&sd, 1, Alphabet::Digits, &pin, &mut used, &input);
        assert_eq!(v, Verdict::IndexAlreadyUsed);
        assert_eq!(used.count(), 1);
    }

    #[test]
    fn check_wrong_code_spends_the_index() {
        let sd = seed();
        let pin = Pin::parse("1234", 4, 10).unwrap();
        let mut used = UsedSet::default();
        let good = good_input(&sd, 1, Alphabet::Digits, &pin, 7);
        let otc = &good[..4];
        let wrong: String = otc
            .bytes()
            .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
            .collect();
        let v = check_string_code(
            &sd,
            1,
            Alphabet::Digits,
            &pin,
            &mut used,
            &format!("{wrong}07"),
        );
        assert_eq!(v, Verdict::WrongCode);
        assert!(used.is_used(7));
        // The right code for that index is now refused too.
        let v = check_string_code(&sd, 1, Alphabet::Digits, &pin, &mut used, &good);
        assert_eq!(v, Verdict::IndexAlreadyUsed);
    }

    #[test]
    fn check_malformed_spends_nothing() {
        let sd = seed();
        let pin = Pin::parse("123456", 4, 10).unwrap();
        let mut used = UsedSet::default();
        for bad in [
            "",
            "746912",
            "7469121",
            "123456,100",
            "123456,00",
            "12345-12",
        ] {
            let v = check_string_code(&sd, 1, Alphabet::Digits, &pin, &mut used, bad);
            assert_eq!(v, Verdict::Malformed, "{bad:?}");
        }
        assert_eq!(used, UsedSet::default());
    }

    #[test]
    fn check_legacy_form_and_other_batch() {
        let sd = seed();
        let pin = Pin::parse("90817", 4, 10).unwrap();
        let mut used = UsedSet::default();
        let s = derive_string(&sd, 5, 3, Alphabet::UpperDigits).unwrap();
        let otc = extract(&s, &pin);
        // The right code of batch 5 is wrong for batch 6 (spends index 3 of batch 6's set).
        let mut other = UsedSet::default();
        let v = check_string_code(
            &sd,
            6,
            Alphabet::UpperDigits,
            &pin,
            &mut other,
            &format!("{otc},3"),
        );
        assert_eq!(v, Verdict::WrongCode);
        let v = check_string_code(
            &sd,
            5,
            Alphabet::UpperDigits,
            &pin,
            &mut used,
            &format!(" {otc} , 3 "),
        );
        assert_eq!(v, Verdict::Accept);
    }

    #[test]
    fn check_case_rules() {
        let sd = seed();
        let pin = Pin::parse("13579", 4, 10).unwrap();
        // Upper alphabets: lower-case typing is accepted.
        for a in [Alphabet::Upper, Alphabet::UpperDigits] {
            let mut used = UsedSet::default();
            let input = good_input(&sd, 2, a, &pin, 9).to_ascii_lowercase();
            assert_eq!(
                check_string_code(&sd, 2, a, &pin, &mut used, &input),
                Verdict::Accept
            );
        }
        // Mixed: case matters. Find an index whose OTC has a letter.
        let a = Alphabet::Mixed;
        let batch = derive_batch(&sd, 2, a);
        let (i, s): (usize, &SecurityString) = batch
            .iter()
            .enumerate()
            .find(|(_, s)| extract(s, &pin).bytes().any(|b| b.is_ascii_alphabetic()))
            .unwrap();
        let index = u8::try_from(i + 1).unwrap();
        let otc = extract(s, &pin);
        let swapped: String = otc
            .chars()
            .map(|c| {
                if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        let mut used = UsedSet::default();
        let v = check_string_code(&sd, 2, a, &pin, &mut used, &format!("{swapped}{index:02}"));
        assert_eq!(v, Verdict::WrongCode);
        let mut used = UsedSet::default();
        let v = check_string_code(&sd, 2, a, &pin, &mut used, &format!("{otc}{index:02}"));
        assert_eq!(v, Verdict::Accept);
    }

    #[derive(Debug, Clone)]
    enum Attempt {
        Right(u8),
        Wrong(u8, String),
        Garbage(String),
    }

    fn attempt() -> impl Strategy<Value = Attempt> {
        prop_oneof![
            (1u8..=99).prop_map(Attempt::Right),
            (1u8..=99, "[0-9]{4}").prop_map(|(i, s)| Attempt::Wrong(i, s)),
            "\\PC{0,10}".prop_map(Attempt::Garbage),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn prop_no_index_accepted_twice(
            seed_bytes in proptest::array::uniform32(any::<u8>()),
            batch in any::<u32>(),
            attempts in proptest::collection::vec(attempt(), 1..150),
        ) {
            let sd = DeviceSeed::from_bytes(&seed_bytes).unwrap();
            let a = Alphabet::Digits;
            let pin = Pin::parse("4096", 4, 10).unwrap();
            let strings = derive_batch(&sd, batch, a);
            let mut used = UsedSet::default();
            let mut accepted = [0u32; 100];
            for at in &attempts {
                let before = used;
                let (input, index) = match at {
                    Attempt::Right(i) => (
                        format!("{}{:02}", extract(&strings[usize::from(*i) - 1], &pin), i),
                        Some(*i),
                    ),
                    Attempt::Wrong(i, otc) => (format!("{otc},{i}"), Some(*i)),
                    Attempt::Garbage(g) => (g.clone(), parse_typed_code(g, 4).ok().map(|t| t.index)),
                };
                let v = check_string_code(&sd, batch, a, &pin, &mut used, &input);
                match index {
                    Some(i) => {
                        prop_assert!(used.is_used(i), "spent after any attempt");
                        if before.is_used(i) {
                            prop_assert_eq!(v, Verdict::IndexAlreadyUsed);
                            prop_assert_eq!(used, before);
                        } else {
                            prop_assert!(v == Verdict::Accept || v == Verdict::WrongCode);
                            prop_assert_eq!(used.count(), before.count() + 1);
                        }
                        if matches!(at, Attempt::Right(_)) && !before.is_used(i) {
                            prop_assert_eq!(v, Verdict::Accept);
                        }
                        if v == Verdict::Accept {
                            accepted[usize::from(i)] += 1;
                        }
                    }
                    None => {
                        prop_assert_eq!(v, Verdict::Malformed);
                        prop_assert_eq!(used, before);
                    }
                }
            }
            prop_assert!(accepted.iter().all(|&n| n <= 1), "no index accepted twice");
        }

        #[test]
        fn prop_parse_never_panics(input in "\\PC{0,40}", otc_len in 0usize..12) {
            let _ = parse_typed_code(&input, otc_len);
        }

        #[test]
        fn prop_parse_round_trip(otc in "[0-9A-Za-z]{4,10}", index in 1u8..=99, legacy in any::<bool>()) {
            let input = if legacy { format!("{otc},{index}") } else { format!("{otc}{index:02}") };
            let t = parse_typed_code(&input, otc.len()).unwrap();
            prop_assert_eq!(t.otc, otc);
            prop_assert_eq!(t.index, index);
        }
    }
}
