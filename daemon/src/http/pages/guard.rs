//! What protects the self-service pages: CSRF tokens, rate limits and the
//! change-PIN forms' security strings, all in memory and bounded.
//!
//! CSRF uses a signed double-submit token: `base64url(nonce16 || tag16)`,
//! `tag = HMAC-SHA256(process key, "csrf" || nonce)[..16]`, set in a
//! `SameSite=Strict; HttpOnly` cookie and repeated in a hidden form field; a
//! POST is accepted only when the cookie's tag verifies and the field equals
//! the cookie (both compared in constant time). Rate limits are fixed
//! one-minute windows per key (source address, an IPv6 address counted by its
//! /64, or user name), in maps of at most [`MAX_KEYS`] keys. A full map never
//! refuses a new key (that would lock out every newcomer): it drops ended
//! windows first, then the oldest window still under its limit, and only
//! when every window is over its limit the oldest of those. The change-PIN
//! form map likewise drops expired forms, then the oldest. Nothing here
//! holds a PIN or a code.

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

/// One rate-limit window: when it started, hits counted, and whether the
/// key is over its limit (such windows are dropped last when the map is full).
struct Window {
    start: Instant,
    hits: u32,
    over: bool,
}

#[derive(Default)]
struct Windows {
    map: Mutex<HashMap<String, Window>>,
}

impl Windows {
    /// Counts a hit for `key`; `Err(seconds)` (until the window ends) when
    /// `limit` hits were already counted in this window.
    fn hit(&self, key: &str, limit: u32, now: Instant) -> Result<(), u64> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            map.retain(|_, w| now.saturating_duration_since(w.start) < WINDOW);
            if map.len() >= MAX_KEYS {
                // Oldest under-limit window first; over-limit ones last.
                let victim = map
                    .iter()
                    .min_by_key(|(_, w)| (w.over, w.start))
                    .map(|(k, _)| k.clone());
                if let Some(victim) = victim {
                    map.remove(&victim);
                }
            }
        }
        let entry = map.entry(key.to_string()).or_insert(Window {
            start: now,
            hits: 0,
            over: false,
        });
        if now.saturating_duration_since(entry.start) >= WINDOW {
            *entry = Window {
                start: now,
                hits: 0,
                over: false,
            };
        }
        if entry.hits >= limit {
            entry.over = true;
            let left = WINDOW.saturating_sub(now.saturating_duration_since(entry.start));
            return Err(left.as_secs().max(1));
        }
        entry.hits += 1;
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

    /// Counts a page request from `address` (an IP address in text; an IPv6
    /// one is counted by its /64, see [`crate::http::client_key`]);
    /// `Err(retry_after_seconds)` over the limit, the seconds left in the
    /// address's window (at least 1).
    pub fn hit_address(&self, address: &str, limit: u32) -> Result<(), u64> {
        let key = match address.parse::<std::net::IpAddr>() {
            Ok(ip) => crate::http::client_key(ip).to_string(),
            Err(_) => address.to_string(),
        };
        self.by_address.hit(&key, limit, Instant::now())
    }

    /// Counts a form naming `username`; `Err(retry_after_seconds)` over the
    /// limit, the seconds left in that user name's window (at least 1).
    pub fn hit_user(&self, username: &str, limit: u32) -> Result<(), u64> {
        self.by_user.hit(username, limit, Instant::now())
    }

    /// Opens a change-PIN form: a fresh distinct-digit security string bound
    /// to a random form id, usable for [`FORM_TTL`]. When [`MAX_KEYS`] forms
    /// are open, expired forms and then the oldest form are dropped to make
    /// room, so a form always opens.
    pub fn open_form(&self) -> (String, SecurityString) {
        let now = Instant::now();
        let mut map = self.forms.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS {
            map.retain(|_, (_, expires)| *expires > now);
            if map.len() >= MAX_KEYS {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, (_, expires))| *expires)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    map.remove(&oldest);
                }
            }
        }
        let id = hex::encode(secrets::random_bytes(16));
        let string = crate::provision::reset::distinct_string();
        map.insert(id.clone(), (string.clone(), now + FORM_TTL));
        (id, string)
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
    fn a_full_window_map_admits_new_keys_and_keeps_limits() {
        let w = Windows::default();
        let t0 = Instant::now();
        // "limited" is the oldest key and over its limit.
        assert!(w.hit("limited", 1, t0).is_ok());
        assert!(w.hit("limited", 1, t0).is_err());
        for i in 0..MAX_KEYS + 50 {
            assert!(
                w.hit(&format!("k{i}"), 1, t0 + Duration::from_millis(1))
                    .is_ok(),
                "new key {i} refused"
            );
        }
        assert!(w.map.lock().unwrap().len() <= MAX_KEYS);
        // A fresh key is still admitted; the over-limit key stays limited,
        // with Retry-After the rest of its window.
        assert!(w.hit("fresh", 1, t0 + Duration::from_secs(2)).is_ok());
        let left = w
            .hit("limited", 1, t0 + Duration::from_secs(2))
            .unwrap_err();
        assert_eq!(left, WINDOW.as_secs() - 2);
        // An under-limit key that was still in the map stays counted.
        assert!(w.hit("fresh", 1, t0 + Duration::from_secs(3)).is_err());
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let s = PagesState::default();
        assert!(s.hit_address("2001:db8:1:2::1", 2).is_ok());
        assert!(s.hit_address("2001:db8:1:2:ffff::9", 2).is_ok());
        assert!(s.hit_address("2001:db8:1:2::77", 2).is_err());
        assert!(s.hit_address("2001:db8:1:3::1", 2).is_ok());
        assert!(s.hit_address("127.0.0.1", 1).is_ok());
        assert!(s.hit_address("::ffff:127.0.0.1", 1).is_err());
    }

    #[test]
    fn a_full_form_map_still_opens_forms() {
        let s = PagesState::default();
        let (first, _) = s.open_form();
        for _ in 0..MAX_KEYS + 10 {
            // Every new form is open at once, even with the map full.
            let (id, _) = s.open_form();
            assert!(s.forms.lock().unwrap().contains_key(&id));
        }
        assert!(s.forms.lock().unwrap().len() <= MAX_KEYS);
        // The oldest form made room.
        assert!(s.take_form(&first).is_none());
    }

    #[test]
    fn forms_are_single_use() {
        let s = PagesState::default();
        let (id, string) = s.open_form();
        assert_eq!(s.take_form(&id).unwrap().as_bytes(), string.as_bytes());
        assert!(s.take_form(&id).is_none());
    }
}
