//! Secrets at rest: the master key, sealing (AEAD) of PINs and device seeds,
//! and keyed hashes of provision codes and device tokens.
//!
//! The master key is 32 random bytes in a file created 0600 at first start (or
//! a systemd credential). From it, HMAC-SHA256 derives one subkey per purpose,
//! so a value sealed as a PIN can never be opened as a seed. Sealing is
//! XChaCha20-Poly1305 with a random 24-byte nonce and the owner (e.g. the
//! user name) as associated data, so a sealed PIN copied to another user's row
//! does not open. This module never logs or displays key material.

use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Length of the master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// Errors of this module. None carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The key file could not be read or created.
    #[error("master key {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file exists but does not hold exactly 32 bytes.
    #[error("master key {path}: expected {MASTER_KEY_LEN} bytes, found {found}")]
    KeyLength {
        /// The file.
        path: String,
        /// Bytes found.
        found: usize,
    },
    /// The key file is readable by group or others.
    #[error("master key {path}: mode {mode:o} lets others read it; run chmod 600 on it")]
    KeyMode {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A sealed value did not open: wrong key, wrong owner, or corrupted.
    #[error("a sealed value could not be opened (wrong master key or corrupted row)")]
    Open,
}

/// What a sealed value or keyed hash is for; each purpose has its own subkey.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    /// A user's PIN.
    Pin,
    /// A device's security-string seed.
    DeviceSeed,
    /// A device's OATH (HOTP/TOTP) secret.
    OathSecret,
    /// The expected one-time code of a two-stage RADIUS challenge.
    ChallengeCode,
    /// The RADIUS State of a challenge (keyed hash).
    ChallengeState,
    /// Mobile Provision Codes (keyed hash).
    ProvisionCode,
    /// Device tokens (keyed hash).
    DeviceToken,
    /// ResetPIN codes sent by the web pages (keyed hash).
    ResetCode,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Pin => b"pinwheel/seal/pin/v1",
            Purpose::DeviceSeed => b"pinwheel/seal/device-seed/v1",
            Purpose::OathSecret => b"pinwheel/seal/oath-secret/v1",
            Purpose::ChallengeCode => b"pinwheel/seal/challenge-code/v1",
            Purpose::ChallengeState => b"pinwheel/hash/challenge-state/v1",
            Purpose::ProvisionCode => b"pinwheel/hash/provision-code/v1",
            Purpose::DeviceToken => b"pinwheel/hash/device-token/v1",
            Purpose::ResetCode => b"pinwheel/hash/reset-code/v1",
        }
    }
}

/// The master key. Cloning copies the key; memory is wiped on drop.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; MASTER_KEY_LEN]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Wraps raw key bytes (32 bytes).
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        MasterKey(Zeroizing::new(bytes))
    }

    /// Loads the key from `path`, creating it (32 random bytes, mode 0600,
    /// written to a temporary file, synced, then renamed) if it does not exist.
    ///
    /// Errors: unreadable file, wrong length, or a mode that lets group or
    /// others read it.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, SecretsError> {
        let shown = path.display().to_string();
        let io = |source| SecretsError::KeyFile {
            path: shown.clone(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(SecretsError::KeyMode { path: shown, mode });
                }
                let bytes = Zeroizing::new(bytes);
                let key: [u8; MASTER_KEY_LEN] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| SecretsError::KeyLength {
                            path: shown.clone(),
                            found: bytes.len(),
                        })?;
                Ok(MasterKey::from_bytes(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; MASTER_KEY_LEN];
                rand::rngs::OsRng.fill_bytes(&mut key);
                let key = MasterKey::from_bytes(key);
                write_private_file(path, key.0.as_slice()).map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    fn subkey(&self, purpose: Purpose) -> Zeroizing<[u8; 32]> {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.0.as_slice())
            .expect("HMAC accepts keys of any length");
        mac.update(purpose.label());
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    /// Seals `plaintext` for `owner` (associated data, e.g. the user name).
    /// Output: 24-byte nonce followed by ciphertext and 16-byte tag.
    pub fn seal(&self, purpose: Purpose, owner: &str, plaintext: &[u8]) -> Vec<u8> {
        let key = self.subkey(purpose);
        let cipher = XChaCha20Poly1305::new(key.as_slice().into());
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: owner.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a value made by [`MasterKey::seal`] with the same purpose and owner.
    ///
    /// Errors: [`SecretsError::Open`] if the key, owner or bytes do not match.
    pub fn open(
        &self,
        purpose: Purpose,
        owner: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(SecretsError::Open);
        }
        let key = self.subkey(purpose);
        let cipher = XChaCha20Poly1305::new(key.as_slice().into());
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: owner.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SecretsError::Open)
    }

    /// Keyed hash (HMAC-SHA256 under the purpose's subkey) of `value`:
    /// 32 bytes, stored instead of codes and tokens.
    pub fn keyed_hash(&self, purpose: Purpose, value: &[u8]) -> [u8; 32] {
        let key = self.subkey(purpose);
        let mut mac = <HmacSha256 as Mac>::new_from_slice(key.as_slice())
            .expect("HMAC accepts keys of any length");
        mac.update(value);
        mac.finalize().into_bytes().into()
    }
}

/// Writes `bytes` to `path` with mode 0600: temporary file in the same
/// folder, fsync, rename, fsync of the folder. A crash leaves either the old
/// file or the new one, never half of one.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut suffix = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        hex::encode(suffix)
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let result = file
        .write_all(bytes)
        .and_then(|_| file.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `n` random bytes from the operating system's generator.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let key = MasterKey::from_bytes([7u8; 32]);
        let sealed = key.seal(Purpose::Pin, "alice", b"1234");
        assert_eq!(
            &key.open(Purpose::Pin, "alice", &sealed).unwrap()[..],
            b"1234"
        );
        assert!(key.open(Purpose::Pin, "bob", &sealed).is_err());
        assert!(key.open(Purpose::DeviceSeed, "alice", &sealed).is_err());
        let other = MasterKey::from_bytes([8u8; 32]);
        assert!(other.open(Purpose::Pin, "alice", &sealed).is_err());
        assert!(key.open(Purpose::Pin, "alice", &sealed[..10]).is_err());
        // No plaintext in the sealed bytes.
        assert!(!sealed.windows(4).any(|w| w == b"1234"));
    }

    #[test]
    fn keyed_hash_depends_on_purpose_and_key() {
        let key = MasterKey::from_bytes([1u8; 32]);
        let a = key.keyed_hash(Purpose::ProvisionCode, b"0123456789");
        assert_eq!(a, key.keyed_hash(Purpose::ProvisionCode, b"0123456789"));
        assert_ne!(a, key.keyed_hash(Purpose::DeviceToken, b"0123456789"));
        let other = MasterKey::from_bytes([2u8; 32]);
        assert_ne!(a, other.keyed_hash(Purpose::ProvisionCode, b"0123456789"));
    }

    #[test]
    fn key_file_created_0600_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let k1 = MasterKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k2 = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(
            k1.keyed_hash(Purpose::Pin, b"x"),
            k2.keyed_hash(Purpose::Pin, b"x")
        );
        assert!(!format!("{k1:?}").contains('7'));
    }

    #[test]
    fn key_file_with_wrong_length_or_mode_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.key");
        write_private_file(&path, b"short").unwrap();
        let e = MasterKey::load_or_create(&path).unwrap_err();
        assert!(e.to_string().contains("expected 32 bytes"), "{e}");
        let path = dir.path().join("open.key");
        write_private_file(&path, &[0u8; 32]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = MasterKey::load_or_create(&path).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }
}
