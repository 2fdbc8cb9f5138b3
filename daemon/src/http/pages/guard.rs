//! What protects the self-service pages: CSRF tokens, rate limits and the
//! change-PIN forms' security strings, all in memory and bounded.
//!
//! CSRF uses a signed double-submit token: `base64url(nonce16 || tag16)`,
//! `tag = HMAC-SHA256(process key, "csrf" || nonce)[..16]`, set in a
//! `SameSite=Strict; HttpOnly` cookie and repeated in a hidden form field; a
//! POST is accepted only when the cookie's tag verifies and the field equals
//! the cookie (both compared in constant time). Rate limits are fixed
//! one-minute windows per key (source address, or user name), in maps of at
//! most [`MAX_KEYS`] keys; when a map is full of live windows new keys are
//! refused until a window ends. Nothing here holds a PIN or a code.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::otc::{self, SecurityString};
use crate::secrets;

/// Most keys a rate-limit map or the change-PIN form map holds.
pub const MAX_KEYS: usize = 10_000;

/// Length of a rate-limit window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// How long a change-PIN form (its security string) stays usable.
pub const FORM_TTL: Duration = Duration::from_secs(300);

/// Name of the CSRF cookie.
pub const CSRF_COOKIE: &str = "pinwheel_csrf";

/// The pages' state in memory: a per-process CSRF key, the rate-limit
/// windows and the open change-PIN forms.
pub struct PagesState {
    key: zeroize::Zeroizing<Vec<u8>>,
    by_address: Windows,
    by_user: Windows,
    forms: Mutex<HashMap<String, (SecurityString, Instant)>>,
}

impl Default for PagesState {
    fn default() -> Self {
        PagesState {
            key: zeroize::Zeroizing::new(secrets::random_bytes(32)),
            by_address: Windows::default(),
            by_user: Windows::default(),
            forms: Mutex::new(HashMap::new()),
        }
    }
}

#[derive(Default)]
struct Windows {
    map: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Windows {
    /// Counts a hit for `key`; `Err(seconds)` (until the window ends) when
    /// `limit` hits were already counted in this window.
    fn hit(&self, key: &str, limit: u32, now: Instant) -> Result<(), u64> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            map.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if map.len() >= MAX_KEYS {
                return Err(WINDOW.as_secs());
            }
        }
        let entry = map.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            let left = WINDOW.saturating_sub(now.duration_since(entry.0));
            return Err(left.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

type HmacSha256 = Hmac<Sha256>;

impl PagesState {
    fn tag(&self, nonce: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length; 32 bytes never fails.
        let mut mac = match <HmacSha256 as Mac>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        mac.update(b"csrf");
        mac.update(nonce);
        mac.finalize().into_bytes()[..16].to_vec()
    }

    /// A new CSRF token (URL-safe base64, 43 characters).
    pub fn new_csrf(&self) -> String {
        let mut raw = secrets::random_bytes(16);
        let tag = self.tag(&raw);
        raw.extend_from_slice(&tag);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// Whether `token` is one this process issued.
    pub fn csrf_is_valid(&self, token: &str) -> bool {
        let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        raw.len() == 32 && otc::ct_eq(&self.tag(&raw[..16]), &raw[16..])
    }

    /// Whether a form's `field` and the `cookie` make a valid pair.
    pub fn csrf_matches(&self, cookie: Option<&str>, field: &str) -> bool {
        match cookie {
            Some(c) => self.csrf_is_valid(c) & otc::ct_eq(c.as_bytes(), field.as_bytes()),
            None => false,
        }
    }

    /// Counts a page request from `address`; `Err(retry_after_seconds)` over the limit.
    pub fn hit_address(&self, address: &str, limit: u32) -> Result<(), u64> {
        self.by_address.hit(address, limit, Instant::now())
    }

    /// Counts a form naming `username`; `Err(retry_after_seconds)` over the limit.
    pub fn hit_user(&self, username: &str, limit: u32) -> Result<(), u64> {
        self.by_user.hit(username, limit, Instant::now())
    }

    /// Opens a change-PIN form: a fresh distinct-digit security string bound
    /// to a random form id. `None` when [`MAX_KEYS`] forms are open.
    pub fn open_form(&self) -> Option<(String, SecurityString)> {
        let now = Instant::now();
        let mut map = self.forms.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS {
            map.retain(|_, (_, expires)| *expires > now);
            if map.len() >= MAX_KEYS {
                return None;
            }
        }
        let id = hex::encode(secrets::random_bytes(16));
        let string = crate::provision::reset::distinct_string();
        map.insert(id.clone(), (string.clone(), now + FORM_TTL));
        Some((id, string))
    }

    /// Takes (single use) the security string of form `id` if it has not expired.
    pub fn take_form(&self, id: &str) -> Option<SecurityString> {
        let mut map = self.forms.lock().unwrap_or_else(|p| p.into_inner());
        let (string, expires) = map.remove(id)?;
        (expires > Instant::now()).then_some(string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_verify_and_pair() {
        let s = PagesState::default();
        let t = s.new_csrf();
        assert!(s.csrf_is_valid(&t));
        assert!(s.csrf_matches(Some(&t), &t));
        assert!(!s.csrf_matches(None, &t));
        assert!(!s.csrf_matches(Some(&t), ""));
        let other = PagesState::default().new_csrf();
        assert!(!s.csrf_matches(Some(&other), &other));
        assert!(!s.csrf_is_valid("not base64!"));
    }

    #[test]
    fn windows_limit_and_reopen() {
        let w = Windows::default();
        let t0 = Instant::now();
        assert!(w.hit("a", 2, t0).is_ok());
        assert!(w.hit("a", 2, t0).is_ok());
        assert!(w.hit("a", 2, t0).is_err());
        assert!(w.hit("b", 2, t0).is_ok());
        assert!(w.hit("a", 2, t0 + WINDOW).is_ok());
    }

    #[test]
    fn forms_are_single_use() {
        let s = PagesState::default();
        let (id, string) = s.open_form().unwrap();
        assert_eq!(s.take_form(&id).unwrap().as_bytes(), string.as_bytes());
        assert!(s.take_form(&id).is_none());
    }
}
