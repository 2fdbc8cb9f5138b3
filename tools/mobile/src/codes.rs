//! Pure one-time-code logic of `pinwheel-mobile`, with no I/O: choosing the string
//! index to use (the next unused one, or one the user asked for) and building the
//! code the user types, which is the OTC extracted from the security string with the
//! PIN followed by the 2-digit index (`7469` and index 12 give `746912`).

use std::fmt;

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
