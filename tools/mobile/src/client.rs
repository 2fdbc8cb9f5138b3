//! The HTTP side of `pinwheel-mobile`: checking the server address, calling the
//! Pinwheel REST API (`POST /api/v1/provision`, `POST /api/v1/strings`) with a
//! 10-second timeout and no redirects, and turning every answer into either a
//! checked reply or an [`ApiError`] that says what went wrong without repeating a
//! secret (provision code, device token, strings or OATH key never appear in an
//! error).

use std::fmt;
use std::io::Read;
use std::time::Duration;

use anyhow::{ensure, Result};
use pinwheel::otc::{SecurityString, BATCH_SIZE};
use serde::Deserialize;
use serde_json::json;

/// Timeout of one HTTP call, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Largest reply body read from the server.
const MAX_REPLY: u64 = 1 << 20;

/// Checks a server base URL and returns it without trailing slashes: it must be
/// `http://` or `https://`, name a host, and carry no user info, query or fragment.
pub fn parse_server(url: &str) -> Result<String, String> {
    let url = url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| "server URL must start with http:// or https://".to_string())?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("server URL must not contain spaces or control characters".into());
    }
    if url.contains(['?', '#']) {
        return Err("server URL must not have a query or fragment".into());
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err("server URL must not contain a user name or password".into());
    }
    let (host, port) = if let Some(inside) = authority.strip_prefix('[') {
        let (host, tail) = inside
            .split_once(']')
            .ok_or_else(|| "server URL has an unclosed [".to_string())?;
        match tail {
            "" => (host, None),
            _ => (
                host,
                Some(
                    tail.strip_prefix(':')
                        .ok_or_else(|| "server URL has text after ]".to_string())?,
                ),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("server URL has no host name".into());
    }
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("server URL has an invalid port {port:?}"));
        }
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// What can go wrong when calling the server.
#[derive(Debug)]
pub enum ApiError {
    /// The server could not be reached (DNS, connection, TLS, timeout...).
    Network {
        /// The URL that was called.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// The server answered with an error status.
    Status {
        /// The URL that was called.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The `error` code of the JSON body, if any.
        code: Option<String>,
        /// The `message` of the JSON body (or the Location of a redirect), if any.
        message: Option<String>,
    },
    /// The server answered 200 with a body that is not what the API promises.
    BadReply {
        /// The URL that was called.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Network { url, reason } => write!(f, "could not reach {url}: {reason}"),
            ApiError::Status {
                url,
                status,
                code,
                message,
            } => {
                write!(f, "{url} answered HTTP {status}")?;
                if let Some(code) = code {
                    write!(f, " {code}")?;
                }
                if (300..400).contains(status) {
                    if let Some(location) = message {
                        write!(
                            f,
                            " (redirect to {location}; redirects are not followed: check the server address)"
                        )?;
                    }
                } else if let Some(message) = message {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            ApiError::BadReply { url, reason } => {
                write!(f, "{url} sent a reply that is not valid: {reason}")
            }
        }
    }
}

impl std::error::Error for ApiError {}

/// A successful provision. (No `Debug`: it holds secrets.)
#[derive(Deserialize)]
pub struct Provisioned {
    /// Identifier of the new device.
    pub device_id: String,
    /// Credential for later calls.
    pub device_token: String,
    /// `strings` (security strings) or `oath`.
    pub mode: String,
    /// Batch number of `strings` (strings mode).
    #[serde(default)]
    pub batch: u64,
    /// The 99 security strings, index 1 first (strings mode).
    #[serde(default)]
    pub strings: Vec<String>,
    /// The `otpauth://` key URI (OATH mode), checked by
    /// [`crate::state::parse_key_uri`] and trimmed.
    #[serde(default)]
    pub otpauth_uri: Option<String>,
    // The reply's `server` (the server's own idea of its base URL) is not used: the
    // client keeps calling the address that just worked.
}

/// A new batch of security strings.
#[derive(Deserialize)]
pub struct Batch {
    /// Batch number.
    pub batch: u64,
    /// The 99 security strings, index 1 first.
    pub strings: Vec<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<String>,
    message: Option<String>,
}

/// A client for one Pinwheel server.
pub struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    /// A client for the server at `base` (already checked by [`parse_server`]).
    pub fn new(base: &str) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout(TIMEOUT)
            .redirects(0)
            .user_agent(concat!("pinwheel-mobile/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent,
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// The full URL of an API path such as `/api/v1/provision`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Trades a Mobile Provision Code for a device credential and strings.
    pub fn provision(
        &self,
        username: &str,
        code: &str,
        device_name: &str,
    ) -> Result<Provisioned, ApiError> {
        let url = self.url("/api/v1/provision");
        let body = json!({"username": username, "code": code, "device": {"name": device_name}});
        let request = self.agent.post(&url).set("Accept", "application/json");
        let mut reply: Provisioned = call(&url, request.send_json(body))?;
        let bad = |reason: String| ApiError::BadReply {
            url: url.clone(),
            reason,
        };
        check_device_id(&reply.device_id).map_err(|e| bad(e.to_string()))?;
        check_device_token(&reply.device_token).map_err(|e| bad(e.to_string()))?;
        match reply.mode.as_str() {
            "strings" => {
                check_batch(reply.batch, &reply.strings).map_err(|e| bad(e.to_string()))?;
            }
            "oath" => {
                let uri = reply
                    .otpauth_uri
                    .as_deref()
                    .map(str::trim)
                    .ok_or_else(|| bad("OATH mode without an otpauth_uri".into()))?;
                crate::state::parse_key_uri(uri).map_err(|e| bad(format!("otpauth_uri: {e}")))?;
                reply.otpauth_uri = Some(uri.to_string());
            }
            // The caller refuses other modes with its own message.
            _ => {}
        }
        Ok(reply)
    }

    /// Fetches a new batch of strings with the device token.
    pub fn fetch_strings(&self, device_token: &str) -> Result<Batch, ApiError> {
        let url = self.url("/api/v1/strings");
        let request = self
            .agent
            .post(&url)
            .set("Accept", "application/json")
            .set("Authorization", &format!("Bearer {device_token}"));
        let reply: Batch = call(&url, request.send_json(json!({})))?;
        check_batch(reply.batch, &reply.strings).map_err(|e| ApiError::BadReply {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        Ok(reply)
    }
}

/// Turns the outcome of one call into the decoded 200 body or an [`ApiError`].
fn call<T: serde::de::DeserializeOwned>(
    url: &str,
    result: Result<ureq::Response, ureq::Error>,
) -> Result<T, ApiError> {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(status, response)) => {
            let body = read_body(response).unwrap_or_default();
            let parsed: Option<ErrorBody> = serde_json::from_slice(&body).ok();
            let (code, message) = parsed.map_or((None, None), |b| (b.error, b.message));
            return Err(ApiError::Status {
                url: url.to_string(),
                status,
                code: code.map(|c| printable(&c)),
                message: message.map(|m| printable(&m)),
            });
        }
        Err(ureq::Error::Transport(transport)) => {
            return Err(ApiError::Network {
                url: url.to_string(),
                reason: describe_transport(&transport),
            })
        }
    };
    let status = response.status();
    if status != 200 {
        // Redirects are not followed (they could carry the device token elsewhere).
        let location = response.header("Location").map(printable);
        return Err(ApiError::Status {
            url: url.to_string(),
            status,
            code: None,
            message: location,
        });
    }
    let body = read_body(response).map_err(|reason| ApiError::BadReply {
        url: url.to_string(),
        reason,
    })?;
    serde_json::from_slice(&body).map_err(|err| ApiError::BadReply {
        url: url.to_string(),
        reason: format!("JSON: {err}"),
    })
}

fn read_body(response: ureq::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    response
        .into_reader()
        .take(MAX_REPLY + 1)
        .read_to_end(&mut body)
        .map_err(|err| format!("reading the reply failed: {err}"))?;
    if body.len() as u64 > MAX_REPLY {
        return Err(format!("the reply is larger than {MAX_REPLY} bytes"));
    }
    Ok(body)
}

fn describe_transport(transport: &ureq::Transport) -> String {
    let mut parts = vec![transport.kind().to_string()];
    parts.extend(transport.message().map(str::to_string));
    let mut source = std::error::Error::source(transport);
    while let Some(err) = source {
        parts.push(err.to_string());
        source = err.source();
    }
    // ureq repeats the kind and message in its causes: keep each piece once.
    let mut reason = String::new();
    for part in parts {
        if reason.contains(&part) {
            continue;
        }
        if part.contains(&reason) {
            reason = part;
        } else {
            reason = format!("{reason}: {part}");
        }
    }
    if reason.to_ascii_lowercase().contains("timed out") {
        reason.push_str(&format!(" (timeout {} s)", TIMEOUT.as_secs()));
    }
    printable(&reason)
}

/// Makes text from the server safe for a terminal: drops control characters and
/// cuts it to 300 characters.
pub fn printable(text: &str) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    if text.chars().filter(|c| !c.is_control()).count() > 300 {
        out.push_str("...");
    }
    out
}

/// Checks a device id: 1 to 200 characters, none of them control characters.
pub fn check_device_id(id: &str) -> Result<()> {
    ensure!(
        !id.is_empty() && id.chars().count() <= 200,
        "device_id must have 1 to 200 characters"
    );
    ensure!(
        !id.chars().any(char::is_control),
        "device_id contains control characters"
    );
    Ok(())
}

/// Checks a device token: 1 to 4096 visible ASCII characters (it goes in a header).
pub fn check_device_token(token: &str) -> Result<()> {
    ensure!(
        !token.is_empty() && token.len() <= 4096,
        "device_token must have 1 to 4096 characters"
    );
    ensure!(
        token.bytes().all(|b| b.is_ascii_graphic()),
        "device_token must be visible ASCII characters"
    );
    Ok(())
}

/// Checks a batch number and its strings.
pub fn check_batch(batch: u64, strings: &[String]) -> Result<()> {
    ensure!(batch >= 1, "batch number must be at least 1");
    check_strings(strings)
}

/// Checks a batch of strings: exactly 99, each a valid security string.
pub fn check_strings(strings: &[String]) -> Result<()> {
    ensure!(
        strings.len() == usize::from(BATCH_SIZE),
        "expected {BATCH_SIZE} security strings, got {}",
        strings.len()
    );
    for (i, text) in strings.iter().enumerate() {
        ensure!(
            SecurityString::parse(text).is_ok(),
            "security string {:02} is not valid",
            i + 1
        );
    }
    Ok(())
}

#[cfg(test)]
pub mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        assert_eq!(
            parse_server("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            parse_server("https://2fa.example.com/pinwheel").unwrap(),
            "https://2fa.example.com/pinwheel"
        );
        assert_eq!(parse_server("http://[::1]:80").unwrap(), "http://[::1]:80");
        assert_eq!(parse_server("https://[::1]").unwrap(), "https://[::1]");
        for bad in [
            "",
            "127.0.0.1:8080",
            "ftp://host",
            "http://",
            "http:///path",
            "http://user:pw@host",
            "http://host?x=1",
            "http://host/#frag",
            "http://ho st",
            "http://host:0",
            "http://host:99999",
            "http://host:abc",
            "HTTP://host",
        ] {
            assert!(parse_server(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn printable_drops_control_characters() {
        assert_eq!(printable("a\x1b[31mb\nc"), "a[31mbc");
        assert!(printable(&"x".repeat(1000)).ends_with("..."));
    }

    #[test]
    fn error_texts() {
        let e = ApiError::Status {
            url: "http://h/api/v1/strings".into(),
            status: 500,
            code: Some("INTERNAL".into()),
            message: Some("boom".into()),
        };
        assert_eq!(
            e.to_string(),
            "http://h/api/v1/strings answered HTTP 500 INTERNAL: boom"
        );
        let e = ApiError::Status {
            url: "http://h/api/v1/strings".into(),
            status: 308,
            code: None,
            message: Some("https://h/api/v1/strings".into()),
        };
        assert!(e
            .to_string()
            .contains("redirect to https://h/api/v1/strings; redirects are not followed"));
    }

    #[test]
    fn batch_checks() {
        let good: Vec<String> = (0..99).map(|_| "0123456789".to_string()).collect();
        assert!(check_batch(1, &good).is_ok());
        assert!(check_batch(0, &good).is_err());
        assert!(check_batch(1, &good[..98]).is_err());
        let mut bad = good.clone();
        bad[4] = "12".into();
        let err = check_batch(1, &bad).unwrap_err().to_string();
        assert!(err.contains("05"), "{err}");
        assert!(check_device_token("abc\r\nX-Evil: 1").is_err());
        assert!(check_device_token("").is_err());
        assert!(check_device_id("dev\u{1b}").is_err());
    }
}
