//! Real peers for Pinwheel's tests, started privately on 127.0.0.1 at ports
//! chosen at run time and stopped when dropped:
//!
//! - [`slapd::Slapd`]: an OpenLDAP `slapd` with its own config and database
//!   in a temporary folder (Debian's `slapd` and `ldap-utils`);
//! - [`smtp::Sink`]: an SMTP sink on aiosmtpd (`python3` with aiosmtpd),
//!   through the script `smtp_sink.py` beside this crate's manifest;
//! - [`http::Receiver`]: a small HTTP server that records each request and
//!   answers a chosen status and body, after a chosen delay.
//!
//! A missing peer program fails the test (never skips it) with a message
//! to run `tools/test.sh`, which installs them.
//!
//! Used only as a dev-dependency; it does not depend on the daemon.

#![forbid(unsafe_code)]

pub mod http;
pub mod slapd;
pub mod smtp;

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}
