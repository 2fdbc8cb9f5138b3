//! The one rule that decides whether a code is right for a user.
//!
//! RADIUS calls [`check_code`] today; the agent API and the pages will call
//! the same function. It loads the user and device, opens the sealed PIN and
//! seed, lets [`crate::otc::check_string_code`] spend the index and compare,
//! and commits the spent index before returning, so a caller that answers
//! afterwards never answers about an uncommitted decision. The store's lock is
//! held across read-check-write: two requests with one code cannot both pass.
//! It never logs the code, the PIN or the strings; the reason it returns is
//! for the audit log only and must not reach the client.

use crate::daemon::App;
use crate::otc::{self, Alphabet, DeviceSeed, Pin, Verdict};
use crate::secrets::Purpose;
use crate::store::{devices, users, StoreError};

/// The answer for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The code is right and has now been spent.
    Accept,
    /// Anything else. The reason is for logs only.
    Reject(RejectReason),
}

/// Why a request was rejected (logged and audited, never told to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// No such user.
    UnknownUser,
    /// The user is disabled.
    Disabled,
    /// The user has no provisioned device.
    NoDevice,
    /// The user has no PIN.
    NoPin,
    /// The input is not OTC + index.
    Malformed,
    /// The index was spent before.
    IndexUsed,
    /// The OTC does not match (the index is now spent).
    WrongCode,
    /// A stored value could not be opened (wrong master key or corrupted row).
    Internal,
}

impl RejectReason {
    /// Stable reason code for logs and audit.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::UnknownUser => "unknown_user",
            RejectReason::Disabled => "disabled",
            RejectReason::NoDevice => "no_device",
            RejectReason::NoPin => "no_pin",
            RejectReason::Malformed => "malformed_code",
            RejectReason::IndexUsed => "index_used",
            RejectReason::WrongCode => "wrong_code",
            RejectReason::Internal => "internal_error",
        }
    }
}

/// Decides whether `input` (OTC followed by the 2-digit string index, or the
/// legacy `OTC,index`) is right for `username`, spending the index on any
/// well-formed attempt, and commits before returning.
///
/// Errors: only store failures ([`StoreError`]); every wrong input is a
/// [`Decision::Reject`].
pub fn check_code(app: &App, username: &str, input: &str) -> Result<Decision, StoreError> {
    app.store.transaction(|tx| {
        let Some(user) = users::by_name(tx, username)? else {
            return Ok(Decision::Reject(RejectReason::UnknownUser));
        };
        if !user.enabled {
            return Ok(Decision::Reject(RejectReason::Disabled));
        }
        let Some(device) = devices::by_user(tx, user.id)? else {
            return Ok(Decision::Reject(RejectReason::NoDevice));
        };
        let Some(pin_sealed) = &user.pin_sealed else {
            return Ok(Decision::Reject(RejectReason::NoPin));
        };
        let opened = (|| {
            let pin = app.key.open(Purpose::Pin, &user.name, pin_sealed).ok()?;
            let pin = Pin::parse(std::str::from_utf8(&pin).ok()?, 4, 10).ok()?;
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::tests::test_app;
    use crate::provision::{redeem, send_code, Requester};

    /// Provisions alice and returns her 99 strings.
    fn provisioned(dir: &std::path::Path) -> (App, Vec<otc::SecurityString>) {
        let app = test_app(dir, "");
        send_code(&app, "alice", Requester::Admin).unwrap();
        let mut files: Vec<_> = std::fs::read_dir(dir.join("spool"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let text = std::fs::read_to_string(files.last().unwrap()).unwrap();
        let code = text
            .lines()
            .find_map(|l| l.strip_prefix("Your Mobile Provision Code is: "))
            .unwrap()
            .to_string();
        let p = redeem(&app, "alice", &code, "phone").unwrap();
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
        assert_eq!(check_code(&app, "alice", &code).unwrap(), Decision::Accept);
        assert_eq!(
            check_code(&app, "alice", &code).unwrap(),
            Decision::Reject(RejectReason::IndexUsed)
        );
        // Legacy form of the same index is spent too.
        let legacy = format!("{},7", &code[..4]);
        assert_eq!(
            check_code(&app, "alice", &legacy).unwrap(),
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
            check_code(&app, "alice", &wrong).unwrap(),
            Decision::Reject(RejectReason::WrongCode)
        );
        assert_eq!(
            check_code(&app, "alice", &right).unwrap(),
            Decision::Reject(RejectReason::IndexUsed)
        );
        assert_eq!(
            check_code(&app, "nobody", &right).unwrap(),
            Decision::Reject(RejectReason::UnknownUser)
        );
        assert_eq!(
            check_code(&app, "alice", "12").unwrap(),
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
                    std::thread::spawn(move || check_code(&app, "alice", &code).unwrap())
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
}
