//! HTTPS for the HTTP listener: the certificate chain and private key read
//! from the PEM files named by `[http] tls_certificate` and `tls_key`, checked
//! against each other, and served by rustls (ring provider, TLS 1.2 and 1.3,
//! ALPN `http/1.1`).
//!
//! The pair in use sits behind a swappable [`Arc`]: [`Tls::reload`] reads the
//! files again (on SIGHUP) and, only if the new pair is whole and matches,
//! puts it in place for new connections; connections already open keep the
//! certificate they were handshaken with. This module never logs or returns
//! key material: errors name the file and what is wrong with it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate/key pair cannot be used. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read (not found, no permission, ...).
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM `CERTIFICATE` block, or a broken one.
    #[error("{}: no certificate in it ({reason}): expected PEM \"-----BEGIN CERTIFICATE-----\" blocks, the server's certificate first", file.display())]
    NoCertificate {
        /// The certificate file.
        file: PathBuf,
        /// What the PEM reader found wrong (never the file's bytes).
        reason: String,
    },
    /// The key file holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[error("{}: no private key in it ({reason}): expected a PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" block", file.display())]
    NoKey {
        /// The key file.
        file: PathBuf,
        /// What the PEM reader found wrong (never the file's bytes).
        reason: String,
    },
    /// The key is a PEM block rustls cannot use (unsupported algorithm, corrupt).
    #[error("{}: the private key cannot be used: {reason}", file.display())]
    BadKey {
        /// The key file.
        file: PathBuf,
        /// rustls' reason.
        reason: String,
    },
    /// The key is not the private key of the (first) certificate.
    #[error("{} does not match the certificate in {}: {reason}", key.display(), certificate.display())]
    Mismatch {
        /// The certificate file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        reason: String,
    },
}

/// The crypto provider every TLS object of the daemon uses (ring).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks a PEM certificate chain (server certificate first) and
/// its private key.
///
/// Errors: [`TlsError::Read`] for a file that cannot be read,
/// [`TlsError::NoCertificate`] / [`TlsError::NoKey`] for a file without the
/// expected PEM block, [`TlsError::BadKey`] for a key rustls cannot use and
/// [`TlsError::Mismatch`] when the key is not the certificate's.
pub fn load_pair(certificate: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |file: &Path| {
        std::fs::read(file).map_err(|source| TlsError::Read {
            file: file.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(certificate)?;
    let no_cert = |reason: String| TlsError::NoCertificate {
        file: certificate.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| no_cert(pem_reason(&e)))?;
    if chain.is_empty() {
        return Err(no_cert("the file has no CERTIFICATE block".into()));
    }
    let key_pem = zeroize::Zeroizing::new(read(key)?);
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::NoKey {
        file: key.to_path_buf(),
        reason: pem_reason(&e),
    })?;
    let provider = provider();
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| TlsError::BadKey {
            file: key.to_path_buf(),
            reason: e.to_string(),
        })?;
    let pair = CertifiedKey::new(chain, signing);
    match pair.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(pair)
        }
        Err(e) => Err(TlsError::Mismatch {
            certificate: certificate.to_path_buf(),
            key: key.to_path_buf(),
            reason: match e {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    "the key is another certificate's".to_string()
                }
                other => other.to_string(),
            },
        }),
    }
}

/// A PEM reader's error in words, without any of the file's bytes.
fn pem_reason(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::NoItemsFound => "no matching PEM block found".into(),
        Error::MissingSectionEnd { .. } => "a PEM block has no END line".into(),
        Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".into(),
        Error::Base64Decode(_) => "a PEM block is not valid base64".into(),
        Error::Io(e) => format!("read error: {e}"),
        _ => "the PEM text is malformed".into(),
    }
}

/// The pair served to new connections; swapped whole on reload.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// HTTPS state of the HTTP listener: the files, the pair in use and the
/// rustls acceptor that serves it.
pub struct Tls {
    certificate: PathBuf,
    key: PathBuf,
    current: Arc<Current>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("certificate", &self.certificate)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the pair from `certificate` and `key` (PEM) and builds the
    /// acceptor (TLS 1.2 and 1.3, ALPN `http/1.1`, no client certificates).
    ///
    /// Errors: as [`load_pair`].
    pub fn open(certificate: &Path, key: &Path) -> Result<Tls, TlsError> {
        let pair = load_pair(certificate, key)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(pair))));
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::BadKey {
                file: key.to_path_buf(),
                reason: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            certificate: certificate.to_path_buf(),
            key: key.to_path_buf(),
            current,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads the files again and, when the new pair is good, serves it to
    /// new connections. On error the pair in use stays.
    ///
    /// Errors: as [`load_pair`].
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = self.read_again()?;
        self.replace(pair);
        Ok(())
    }

    /// Reads and checks the files again without changing what is served
    /// (a reload reads everything first and swaps afterwards).
    ///
    /// Errors: as [`load_pair`].
    pub fn read_again(&self) -> Result<CertifiedKey, TlsError> {
        load_pair(&self.certificate, &self.key)
    }

    /// Serves `pair` to new connections from now on.
    pub fn replace(&self, pair: CertifiedKey) {
        *self.current.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(pair);
    }

    /// The acceptor that runs handshakes with the pair in use.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        self.acceptor.clone()
    }

    /// The certificate file.
    pub fn certificate_path(&self) -> &Path {
        &self.certificate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn files_are_checked_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        let e = load_pair(&missing, &missing).unwrap_err();
        assert!(matches!(e, TlsError::Read { .. }), "{e}");
        assert!(e.to_string().contains("none.pem"), "{e}");

        let empty = write(dir.path(), "empty.pem", "nothing here\n");
        let e = load_pair(&empty, &empty).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        assert!(e.to_string().contains("empty.pem: no certificate"), "{e}");

        let broken = write(
            dir.path(),
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        let e = load_pair(&broken, &empty).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");

        let cert_only = write(
            dir.path(),
            "cert.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let e = load_pair(&cert_only, &empty).unwrap_err();
        assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
        assert!(e.to_string().contains("empty.pem: no private key"), "{e}");
    }
}
