//! The user's PIN and OTC extraction.
//!
//! This file owns [`Pin`] (4 to 10 ASCII digits, zeroized on drop) and [`extract`],
//! which turns a security string and a PIN into the one-time code. It must never
//! print a PIN (`Debug` is redacted, errors carry bounds only), never compare PINs or
//! codes in variable time (callers use [`super::ct_eq`]), and never do I/O.

use std::fmt;

use rand::rngs::OsRng;
use rand::Rng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{SecurityString, MAX_PIN_LEN, MIN_PIN_LEN, STRING_LEN};

/// A PIN: 4 to 10 ASCII digits (`MIN_PIN_LEN..=MAX_PIN_LEN`), each naming a string
/// position (`0` names position 10). Zeroized on drop; `Debug` prints `<redacted>`.
/// Stored encrypted, never hashed (the server needs it to extract).
#[derive(Clone)]
pub struct Pin {
    digits: [u8; MAX_PIN_LEN],
    len: u8,
}

impl Pin {
    /// Parses a PIN typed by a user or an admin. `s` is taken as is (no trimming).
    /// The allowed length is `min_len..=max_len` (digits) intersected with 4..=10.
    ///
    /// Errors: [`OtcError::PinNotDigits`](super::OtcError::PinNotDigits) if any
    /// character is not `0-9`; [`OtcError::PinLength`](super::OtcError::PinLength)
    /// (with the effective bounds) if the length is outside them.
    pub fn parse(s: &str, min_len: usize, max_len: usize) -> Result<Pin, super::OtcError> {
        let min = min_len.max(MIN_PIN_LEN);
        let max = max_len.min(MAX_PIN_LEN);
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(super::OtcError::PinNotDigits);
        }
        // All ASCII now: bytes == characters.
        let len = s.len();
        if len < min || len > max {
            return Err(super::OtcError::PinLength { min, max });
        }
        let mut pin = Pin {
            digits: [0u8; MAX_PIN_LEN],
            len: 0,
        };
        pin.digits[..len].copy_from_slice(s.as_bytes());
        pin.len = len as u8; // len <= 10
        Ok(pin)
    }

    /// A uniformly random PIN of `len` digits from the OS CSPRNG (`OsRng`); `len` is
    /// clamped to 4..=10. Leading zeros are allowed.
    pub fn random(len: usize) -> Pin {
        let len = len.clamp(MIN_PIN_LEN, MAX_PIN_LEN);
        let mut pin = Pin {
            digits: [0u8; MAX_PIN_LEN],
            len: len as u8, // len <= 10
        };
        for d in pin.digits[..len].iter_mut() {
            *d = b'0' + OsRng.gen_range(0..10u8);
        }
        pin
    }

    /// The digits as a `&str` (for encryption at rest and extraction). Never log it.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored, so this never falls back.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The digits as ASCII bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[..usize::from(self.len)]
    }

    /// Number of digits, 4..=10; also the OTC length.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a PIN has at least 4 digits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.digits.zeroize();
        self.len.zeroize();
    }
}

impl ZeroizeOnDrop for Pin {}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// The OTC of `string` under `pin`: for each PIN digit in PIN order, the character at
/// the position that digit names (digits 1..9 name positions 1..9, digit 0 names
/// position 10). The result has `pin.len()` characters. Example: string `7469832160`,
/// PIN `1234` gives `7469`; PIN `9012` gives `6074`.
pub fn extract(string: &SecurityString, pin: &Pin) -> String {
    let chars = string.as_bytes();
    pin.as_bytes()
        .iter()
        .map(|&d| {
            // b'1'..=b'9' -> 0..=8, b'0' -> 9.
            let pos = (usize::from(d.wrapping_sub(b'0')) + STRING_LEN - 1) % STRING_LEN;
            char::from(chars[pos])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::OtcError;
    use super::*;
    use proptest::prelude::*;

    fn s(x: &str) -> SecurityString {
        SecurityString::parse(x).unwrap()
    }

    fn p(x: &str) -> Pin {
        Pin::parse(x, 4, 10).unwrap()
    }

    #[test]
    fn worked_example_from_design() {
        assert_eq!(extract(&s("7469832160"), &p("1234")), "7469");
    }

    #[test]
    fn digit_zero_names_position_ten() {
        assert_eq!(extract(&s("7469832160"), &p("0000")), "0000");
        assert_eq!(extract(&s("ABCDEFGHIJ"), &p("0123")), "JABC");
        assert_eq!(extract(&s("7469832160"), &p("9012")), "6074");
    }

    #[test]
    fn longer_pins_and_pin_order() {
        assert_eq!(extract(&s("ABCDEFGHIJ"), &p("4321")), "DCBA");
        assert_eq!(extract(&s("ABCDEFGHIJ"), &p("135790")), "ACEGIJ");
        assert_eq!(extract(&s("ABCDEFGHIJ"), &p("1234567890")), "ABCDEFGHIJ");
        assert_eq!(extract(&s("ABCDEFGHIJ"), &p("0987654321")), "JIHGFEDCBA");
        assert_eq!(extract(&s("7469832160"), &p("11111")), "77777");
    }

    #[test]
    fn pin_parse_bounds_and_charset() {
        assert_eq!(p("0123").as_str(), "0123");
        assert_eq!(p("0123").len(), 4);
        assert!(!p("0123").is_empty());
        assert_eq!(
            Pin::parse("123", 4, 10).unwrap_err(),
            OtcError::PinLength { min: 4, max: 10 }
        );
        assert_eq!(
            Pin::parse("12345678901", 4, 10).unwrap_err(),
            OtcError::PinLength { min: 4, max: 10 }
        );
        assert_eq!(
            Pin::parse("12345", 4, 4).unwrap_err(),
            OtcError::PinLength { min: 4, max: 4 }
        );
        assert_eq!(
            Pin::parse("12345", 6, 8).unwrap_err(),
            OtcError::PinLength { min: 6, max: 8 }
        );
        // Bounds outside 4..=10 are clamped.
        assert_eq!(
            Pin::parse("12", 0, 100).unwrap_err(),
            OtcError::PinLength { min: 4, max: 10 }
        );
        assert!(Pin::parse("1234567890", 0, 100).is_ok());
        assert_eq!(
            Pin::parse("", 4, 10).unwrap_err(),
            OtcError::PinLength { min: 4, max: 10 }
        );
        assert_eq!(
            Pin::parse("12a4", 4, 10).unwrap_err(),
            OtcError::PinNotDigits
        );
        assert_eq!(
            Pin::parse(" 1234", 4, 10).unwrap_err(),
            OtcError::PinNotDigits
        );
        assert_eq!(
            Pin::parse("１２３４", 4, 10).unwrap_err(),
            OtcError::PinNotDigits
        );
        assert_eq!(
            Pin::parse("-1234", 4, 10).unwrap_err(),
            OtcError::PinNotDigits
        );
    }

    #[test]
    fn pin_debug_is_redacted() {
        let pin = p("9876");
        let d = format!("{pin:?}");
        assert_eq!(d, "Pin(<redacted>)");
        assert!(!d.contains("9876"));
        let e = Pin::parse("98765432101", 4, 10).unwrap_err();
        assert!(!e.to_string().contains("9876"));
    }

    #[test]
    fn random_pins() {
        for len in 4..=10 {
            let pin = Pin::random(len);
            assert_eq!(pin.len(), len);
            assert!(pin.as_str().bytes().all(|b| b.is_ascii_digit()));
        }
        assert_eq!(Pin::random(0).len(), 4);
        assert_eq!(Pin::random(99).len(), 10);
        // Every digit shows up across enough draws.
        let mut seen = [false; 10];
        for _ in 0..200 {
            for b in Pin::random(10).as_bytes() {
                seen[usize::from(b - b'0')] = true;
            }
        }
        assert!(seen.iter().all(|&x| x));
    }

    proptest! {
        #[test]
        fn prop_extraction_round_trip(
            string in "[0-9A-Za-z]{10}",
            pin in "[0-9]{4,10}",
        ) {
            let st = SecurityString::parse(&string).unwrap();
            let pn = Pin::parse(&pin, 4, 10).unwrap();
            let otc = extract(&st, &pn);
            prop_assert_eq!(otc.len(), pin.len());
            for (c, d) in otc.bytes().zip(pin.bytes()) {
                let label = d - b'0';
                let position = if label == 0 { 10 } else { usize::from(label) };
                prop_assert_eq!(c, string.as_bytes()[position - 1]);
                prop_assert_eq!(Some(c), st.char_at(label));
            }
        }

        #[test]
        fn prop_pin_parse_accepts_exactly_digit_strings(s in "\\PC{0,12}") {
            let ok = s.bytes().all(|b| b.is_ascii_digit()) && (4..=10).contains(&s.len());
            let r = Pin::parse(&s, 4, 10);
            prop_assert_eq!(r.is_ok(), ok);
            if let Ok(pin) = r {
                prop_assert_eq!(pin.as_str(), s.as_str());
            }
        }
    }
}
