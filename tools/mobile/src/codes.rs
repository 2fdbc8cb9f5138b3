//! Pure one-time-code logic of `pinwheel-mobile`, with no I/O (the time is a
//! parameter): in strings mode, choosing the string index to use (the next unused
//! one, or one the user asked for) and building the code the user types, which is
//! the OTC extracted from the security string with the PIN followed by the 2-digit
//! index (`7469` and index 12 give `746912`); in OATH mode, the TOTP code of a time
//! or the HOTP code of the key's counter, optionally after the PIN.

use std::fmt;

use pinwheel::otc::oath::{hotp, totp, KeyUri, OathKind};
use pinwheel::otc::{extract, Pin, SecurityString, UsedSet, BATCH_SIZE};

/// Why no index could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexError {
    /// Every index of the batch has been used.
    NoneLeft,
    /// The requested index is outside 1..=99.
    OutOfRange(u8),
    /// The requested index has already been used on this device.
    Used(u8),
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::NoneLeft => write!(
                f,
                "No security strings left: run `pinwheel-mobile strings refresh`"
            ),
            IndexError::OutOfRange(index) => {
                write!(f, "Index {index} is outside 1..={BATCH_SIZE}")
            }
            IndexError::Used(index) => write!(
                f,
                "Index {index:02} has already been used on this device: choose another or leave out --index"
            ),
        }
    }
}

impl std::error::Error for IndexError {}

/// Picks the index to use: `requested` if it is in range and unused, else (when
/// nothing is requested) the lowest unused index.
pub fn choose_index(used: &UsedSet, requested: Option<u8>) -> Result<u8, IndexError> {
    match requested {
        Some(index) if !(1..=BATCH_SIZE).contains(&index) => Err(IndexError::OutOfRange(index)),
        Some(index) if used.is_used(index) => Err(IndexError::Used(index)),
        Some(index) => Ok(index),
        None => used
            .next_unused()
            .filter(|index| (1..=BATCH_SIZE).contains(index))
            .ok_or(IndexError::NoneLeft),
    }
}

/// The code the user types: the OTC followed by the 2-digit index.
pub fn format_code(otc: &str, index: u8) -> String {
    format!("{otc}{index:02}")
}

/// Extracts the OTC from `string` with `pin` and appends the index.
pub fn code_for(string: &SecurityString, pin: &Pin, index: u8) -> String {
    format_code(&extract(string, pin), index)
}

/// The OATH code of `key`: TOTP at `unix_time` (seconds since the epoch), or HOTP
/// of `key.counter` (the caller then stores `counter + 1`).
pub fn oath_code(key: &KeyUri, unix_time: u64) -> String {
    let secret = key.secret.as_bytes();
    match key.params.kind {
        OathKind::Totp { period } => totp(
            secret,
            unix_time,
            period,
            key.params.algorithm,
            key.params.digits,
        ),
        OathKind::Hotp => hotp(secret, key.counter, key.params.algorithm, key.params.digits),
    }
}

/// What the user types in OATH mode: the code alone, or the PIN followed by the
/// code when a PIN is given (for a server that requires one).
pub fn oath_typed(pin: Option<&Pin>, code: &str) -> String {
    match pin {
        Some(pin) => format!("{}{code}", pin.as_str()),
        None => code.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(indexes: &[u8]) -> UsedSet {
        let mut set = UsedSet::default();
        for &i in indexes {
            set.mark(i);
        }
        set
    }

    #[test]
    fn code_has_two_digit_index() {
        assert_eq!(format_code("7469", 12), "746912");
        assert_eq!(format_code("7469", 1), "746901");
        assert_eq!(format_code("7469", 99), "746999");
        assert_eq!(format_code("7469832160", 5), "746983216005");
    }

    #[test]
    fn code_from_string_and_pin() {
        let string = SecurityString::parse("7469832160").unwrap();
        let pin = Pin::parse("1234", 4, 10).unwrap();
        assert_eq!(code_for(&string, &pin, 12), "746912");
        let pin = Pin::parse("0901", 4, 10).unwrap();
        assert_eq!(code_for(&string, &pin, 3), "060703");
    }

    /// RFC 4226 Appendix D and RFC 6238 Appendix B: key "12345678901234567890".
    #[test]
    fn oath_codes_match_the_rfc_vectors() {
        let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let totp = KeyUri::parse(&format!("otpauth://totp/a?secret={secret}&digits=8")).unwrap();
        assert_eq!(oath_code(&totp, 59), "94287082");
        assert_eq!(oath_code(&totp, 1_111_111_109), "07081804");
        let mut hotp =
            KeyUri::parse(&format!("otpauth://hotp/a?secret={secret}&counter=0")).unwrap();
        assert_eq!(oath_code(&hotp, 59), "755224");
        hotp.counter = 1;
        assert_eq!(oath_code(&hotp, 0), "287082");
        hotp.counter = 9;
        assert_eq!(oath_code(&hotp, 0), "520489");
    }

    #[test]
    fn oath_typed_puts_the_pin_first() {
        assert_eq!(oath_typed(None, "081804"), "081804");
        let pin = Pin::parse("0123", 4, 10).unwrap();
        assert_eq!(oath_typed(Some(&pin), "081804"), "0123081804");
    }

    #[test]
    fn next_index_is_lowest_unused() {
        assert_eq!(choose_index(&used(&[]), None), Ok(1));
        assert_eq!(choose_index(&used(&[1, 2, 4]), None), Ok(3));
        let all: Vec<u8> = (1..=98).collect();
        assert_eq!(choose_index(&used(&all), None), Ok(99));
        let all: Vec<u8> = (1..=99).collect();
        assert_eq!(choose_index(&used(&all), None), Err(IndexError::NoneLeft));
    }

    #[test]
    fn requested_index_must_be_unused_and_in_range() {
        assert_eq!(choose_index(&used(&[1, 2]), Some(50)), Ok(50));
        assert_eq!(
            choose_index(&used(&[1, 2]), Some(2)),
            Err(IndexError::Used(2))
        );
        assert_eq!(
            choose_index(&used(&[]), Some(0)),
            Err(IndexError::OutOfRange(0))
        );
        assert_eq!(
            choose_index(&used(&[]), Some(100)),
            Err(IndexError::OutOfRange(100))
        );
        assert!(IndexError::NoneLeft.to_string().contains("strings refresh"));
        assert!(IndexError::Used(7).to_string().contains("07"));
    }
}
