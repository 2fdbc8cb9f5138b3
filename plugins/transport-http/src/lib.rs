//! Pinwheel transport plugin `http`: sends messages as SMS through an HTTP
//! gateway, one request per message (ureq, TLS by rustls).
//!
//! # Configuration
//!
//! ```toml
//! [[transport]]
//! name = "sms"
//! plugin = "libpinwheel_transport_http.so"
//! address = "phone"
//!
//! [transport.config]
//! method = "POST"
//! url = "https://sms.example.net/v1/messages"
//! body_format = "json"
//! body = '{"to": "{to}", "text": "{message}", "sender": "Pinwheel"}'
//! bearer_file = "/etc/pinwheel/sms-token"
//! headers = { Accept = "application/json" }
//! success_status = [200, 202]
//!
//! [transport.config.templates]
//! pin = "Your Pinwheel PIN is {pin}"
//! security-string = "Pinwheel security string: {string}"
//! ```
//!
//! | key | meaning |
//! |---|---|
//! | `method` | `"GET"`, `"POST"` (default) or `"PUT"` |
//! | `url` | URL template (`http://` or `https://`); placeholders are percent-encoded, so they may stand in the path or the query, not in the host |
//! | `body` | body template (not with `GET`); without it no body is sent |
//! | `body_format` | how placeholders in `body` are escaped, and the default `Content-Type`: `"form"` (default; `application/x-www-form-urlencoded`), `"json"` (`application/json`: `body` is a JSON document whose placeholders stand inside strings; checked at start) or `"text"` (`text/plain; charset=utf-8`, values as they are) |
//! | `headers` | extra request headers, `{ "X-Api-Key" = "..." }` (literal values; a `Content-Type` here replaces the default) |
//! | `header_files` | headers whose secret values are read from files at start, `{ "X-Api-Key" = "/etc/pinwheel/sms-key" }` |
//! | `basic` | HTTP basic auth: `{ username = "...", password_file = "/path" }` |
//! | `bearer_file` | file holding a bearer token (`Authorization: Bearer ...`) |
//! | `success_status` | the HTTP statuses that mean "accepted" (default: any 2xx); redirects are not followed |
//! | `success_body_contains` | text the gateway's answer must also contain to count as accepted (for gateways that answer 200 to errors) |
//! | `timeout` | seconds for the whole request (default 10, 1..=300) |
//! | `templates` | the SMS text per message kind (`provision-code`, `pin`, `security-string`, `reset-code`); without one the daemon's own text is sent |
//!
//! Secret files are read once at start; one trailing newline is removed.
//!
//! Placeholders in `url` and `body`: `{to}` (the user's phone number as the
//! directory stores it), `{message}` (the SMS text), `{username}` and
//! `{kind}` (`provision-code`, `pin`, ...). In `templates`, `{username}` works
//! for every kind; `provision-code` also knows `{code}` and `{url}`, `pin`
//! knows `{pin}`, `security-string` knows `{string}` and `reset-code` knows
//! `{code}`. Any other `{name}` is refused at start; braces that do not form
//! a `{name}` (as in JSON) are literal text.
//!
//! A user without a phone number gives `no_recipient`. A status not in
//! `success_status`, or an answer without `success_body_contains`, gives
//! `rejected` with the status and the first 200 bytes of the gateway's answer
//! (the message text and its codes cut out). No connection, a TLS failure or
//! a timeout gives `unavailable`. Errors show the gateway's scheme, host and
//! port, never the full URL (a `GET` gateway carries the message in it).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use pinwheel_sdk::{Message, MessageKind, Plugin, PluginError, Transport};
use serde::Deserialize;

mod escape;

use pinwheel_sdk::template::Template;

/// The HTTP method of the gateway request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Method {
    /// `GET`: everything in the URL, no body.
    #[serde(rename = "GET")]
    Get,
    /// `POST` (the default).
    #[default]
    #[serde(rename = "POST")]
    Post,
    /// `PUT`.
    #[serde(rename = "PUT")]
    Put,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// How placeholders in the body are escaped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded` (the default).
    #[default]
    Form,
    /// A JSON document; placeholders stand inside JSON strings.
    Json,
    /// Plain text; values are inserted as they are.
    Text,
}

impl BodyFormat {
    fn content_type(self) -> &'static str {
        match self {
            BodyFormat::Form => "application/x-www-form-urlencoded",
            BodyFormat::Json => "application/json",
            BodyFormat::Text => "text/plain; charset=utf-8",
        }
    }

    fn escape(self) -> fn(&str, &mut String) {
        match self {
            BodyFormat::Form => escape::form,
            BodyFormat::Json => escape::json,
            BodyFormat::Text => escape::raw,
        }
    }
}

/// The plugin's `config` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `GET`, `POST` (default) or `PUT`.
    #[serde(default)]
    pub method: Method,
    /// URL template.
    pub url: String,
    /// Body template (not with `GET`).
    #[serde(default)]
    pub body: Option<String>,
    /// How the body's placeholders are escaped: `form` (default), `json`,
    /// `text`.
    #[serde(default)]
    pub body_format: Option<BodyFormat>,
    /// Extra request headers with literal values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Extra request headers whose values are read from files.
    #[serde(default)]
    pub header_files: BTreeMap<String, PathBuf>,
    /// HTTP basic auth.
    #[serde(default)]
    pub basic: Option<BasicAuth>,
    /// File holding a bearer token.
    #[serde(default)]
    pub bearer_file: Option<PathBuf>,
    /// HTTP statuses that mean success (default: any 2xx).
    #[serde(default)]
    pub success_status: Option<Vec<u16>>,
    /// Text the answer must contain to count as success.
    #[serde(default)]
    pub success_body_contains: Option<String>,
    /// Seconds for the whole request (default 10).
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// SMS text template per message kind.
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
}

/// `basic = { username = "...", password_file = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name (no `:`).
    pub username: String,
    /// File holding the password.
    pub password_file: PathBuf,
}

fn default_timeout() -> u64 {
    10
}

/// The placeholders of `url` and `body`.
const REQUEST_PLACEHOLDERS: &[&str] = &["to", "message", "username", "kind"];

/// The HTTP transport: one configured gateway.
pub struct Http {
    agent: ureq::Agent,
    method: Method,
    url: Template,
    body: Option<(Template, BodyFormat)>,
    /// Headers to send, in order, secrets included.
    headers: Vec<(String, String)>,
    success_status: Option<Vec<u16>>,
    success_body_contains: Option<String>,
    templates: BTreeMap<MessageKind, Template>,
    /// `scheme://host:port` of the gateway, for error messages.
    endpoint: String,
    timeout: u64,
}

fn config_error(message: impl std::fmt::Display) -> PluginError {
    PluginError::config(format!("transport-http: {message}"))
}

/// Reads a secret from `path`, without one trailing newline.
fn read_secret(key: &str, path: &Path) -> Result<String, PluginError> {
    pinwheel_sdk::read_secret_file(path).map_err(|e| config_error(format!("{key}: {e}")))
}

/// RFC 9110 token characters, for header names.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value may hold visible characters, spaces and tabs only.
fn check_header(key: &str, name: &str, value: &str) -> Result<(), PluginError> {
    if !is_token(name) {
        return Err(config_error(format!(
            "{key}: {name:?} is not a header name"
        )));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(config_error(format!(
            "{key}.{name}: the value holds a line break or another control character"
        )));
    }
    Ok(())
}

/// Checks the URL template and returns `scheme://authority` for messages.
fn check_url(template_text: &str) -> Result<String, PluginError> {
    let lower = template_text.to_ascii_lowercase();
    let scheme_len = if lower.starts_with("https://") {
        8
    } else if lower.starts_with("http://") {
        7
    } else {
        return Err(config_error(format!(
            "url: {template_text:?} must start with https:// or http://"
        )));
    };
    let rest = &template_text[scheme_len..];
    let authority = rest.find(['/', '?', '#']).map_or(rest, |end| &rest[..end]);
    if authority.is_empty() {
        return Err(config_error("url: has no host"));
    }
    if authority.contains('{') || authority.contains('}') {
        return Err(config_error(
            "url: placeholders may stand in the path or the query, not in the host",
        ));
    }
    if authority.contains('@') {
        return Err(config_error(
            "url: holds a user name or password; use basic = { username, password_file } instead",
        ));
    }
    Ok(format!("{}{authority}", &lower[..scheme_len]))
}

fn parse_templates(
    raw: BTreeMap<String, String>,
) -> Result<BTreeMap<MessageKind, Template>, PluginError> {
    let mut templates = BTreeMap::new();
    for (name, text) in raw {
        let kind = MessageKind::from_name(&name)
            .map_err(|e| config_error(format!("templates.{name}: {e}")))?;
        let template = Template::parse(&text, kind.placeholders())
            .map_err(|e| config_error(format!("templates.{name}: {e}")))?;
        templates.insert(kind, template);
    }
    Ok(templates)
}

/// A value for every request placeholder that escapes badly outside a JSON
/// string, so a JSON template with a bare placeholder fails its check.
const PROBE: &str = "probe \"\\ +&=%#\n é";

impl Plugin for Http {
    const NAME: &'static str = "http";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config: serde_json::Value) -> Result<Self, PluginError> {
        // Never echoes a value: an inline secret of the wrong type stays out.
        let settings: Settings = pinwheel_sdk::scrub::parse_config(config).map_err(config_error)?;

        if !(1..=300).contains(&settings.timeout) {
            return Err(config_error(format!(
                "timeout: {} is out of range (1 to 300 seconds)",
                settings.timeout
            )));
        }
        let endpoint = check_url(&settings.url)?;
        let url = Template::parse(&settings.url, REQUEST_PLACEHOLDERS)
            .map_err(|e| config_error(format!("url: {e}")))?;
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(settings.timeout))
            .redirects(0)
            .user_agent(concat!(
                "pinwheel-transport-http/",
                env!("CARGO_PKG_VERSION")
            ))
            .build();
        let probe_url = url
            .render_escaped(|_| Some(PROBE), escape::percent)
            .map_err(|name| config_error(format!("url: no value for {{{name}}}")))?;
        agent
            .request(settings.method.as_str(), &probe_url)
            .request_url()
            .map_err(|e| config_error(format!("url: not a valid URL template ({})", e.kind())))?;

        let body = match (settings.body, settings.body_format) {
            (Some(_), _) if settings.method == Method::Get => {
                return Err(config_error(
                    "body: a GET request has no body; use POST or PUT",
                ))
            }
            (Some(text), format) => {
                let format = format.unwrap_or_default();
                let template = Template::parse(&text, REQUEST_PLACEHOLDERS)
                    .map_err(|e| config_error(format!("body: {e}")))?;
                if format == BodyFormat::Json {
                    let probe = template
                        .render_escaped(|_| Some(PROBE), escape::json)
                        .map_err(|name| config_error(format!("body: no value for {{{name}}}")))?;
                    serde_json::from_str::<serde_json::Value>(&probe).map_err(|e| {
                        config_error(format!(
                            "body: with body_format = \"json\" the body must be a JSON document \
                             with its placeholders inside strings, as in {{\"to\": \"{{to}}\"}} \
                             ({e})"
                        ))
                    })?;
                }
                Some((template, format))
            }
            (None, Some(_)) => {
                return Err(config_error("body_format: is set but there is no body"))
            }
            (None, None) => None,
        };
        if !url.uses("to") && !body.as_ref().is_some_and(|(t, _)| t.uses("to")) {
            return Err(config_error(
                "url and body: neither uses {to}, so the gateway would not learn the phone number",
            ));
        }

        let mut headers: Vec<(String, String)> = Vec::new();
        for (name, value) in &settings.headers {
            check_header("headers", name, value)?;
            headers.push((name.clone(), value.clone()));
        }
        for (name, path) in &settings.header_files {
            let value = read_secret(&format!("header_files.{name}"), path)?;
            check_header("header_files", name, &value)?;
            headers.push((name.clone(), value));
        }
        let has_header = |headers: &[(String, String)], wanted: &str| {
            headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(wanted))
        };
        for (i, (name, _)) in headers.iter().enumerate() {
            if has_header(&headers[..i], name) {
                return Err(config_error(format!(
                    "headers: {name} is set twice (in headers and header_files)"
                )));
            }
        }
        let authorization = match (settings.basic, settings.bearer_file) {
            (Some(_), Some(_)) => {
                return Err(config_error(
                    "basic and bearer_file are both set: a request has one Authorization",
                ))
            }
            (Some(basic), None) => {
                if basic.username.is_empty() || basic.username.contains(':') {
                    return Err(config_error(
                        "basic.username: must be non-empty and hold no ':'",
                    ));
                }
                let password = read_secret("basic.password_file", &basic.password_file)?;
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{password}", basic.username));
                Some(format!("Basic {token}"))
            }
            (None, Some(path)) => {
                let token = read_secret("bearer_file", &path)?;
                check_header("bearer_file", "Authorization", &token)?;
                Some(format!("Bearer {token}"))
            }
            (None, None) => None,
        };
        if let Some(value) = authorization {
            if has_header(&headers, "Authorization") {
                return Err(config_error(
                    "headers: Authorization is set as well as basic or bearer_file",
                ));
            }
            check_header("basic", "Authorization", &value)?;
            headers.push(("Authorization".to_string(), value));
        }
        if let Some((_, format)) = &body {
            if !has_header(&headers, "Content-Type") {
                headers.push((
                    "Content-Type".to_string(),
                    format.content_type().to_string(),
                ));
            }
        }

        if let Some(statuses) = &settings.success_status {
            if statuses.is_empty() {
                return Err(config_error(
                    "success_status: is empty (leave it out to accept any 2xx)",
                ));
            }
            if let Some(bad) = statuses.iter().find(|s| !(100..=599).contains(*s)) {
                return Err(config_error(format!(
                    "success_status: {bad} is not an HTTP status"
                )));
            }
        }
        if settings
            .success_body_contains
            .as_deref()
            .is_some_and(str::is_empty)
        {
            return Err(config_error("success_body_contains: is empty"));
        }

        Ok(Http {
            agent,
            method: settings.method,
            url,
            body,
            headers,
            success_status: settings.success_status,
            success_body_contains: settings.success_body_contains,
            templates: parse_templates(settings.templates)?,
            endpoint,
            timeout: settings.timeout,
        })
    }
}

/// The most of the gateway's answer that is read.
const MAX_ANSWER: u64 = 64 * 1024;
/// The most of the gateway's answer that goes into an error.
const MAX_SNIPPET: usize = 200;

/// Everything of `message` that must not reach an error: its text, body,
/// their lines and its values (but the user name), raw and in every escaped
/// form ([`pinwheel_sdk::scrub::message_secrets`]).
fn secrets(message: &Message, text: &str) -> Vec<String> {
    let raw = pinwheel_sdk::scrub::message_secrets(message, &[text]);
    let mut all = Vec::new();
    for value in &raw {
        all.push(value.clone());
        for f in [escape::percent, escape::form, escape::json] {
            let mut escaped = String::new();
            f(value, &mut escaped);
            all.push(escaped);
        }
    }
    // Longest first, so a value inside a longer one does not break it up.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    all.dedup();
    all
}

/// `answer` with every secret cut out and control characters replaced,
/// cut to [`MAX_SNIPPET`] bytes.
fn scrub(answer: &str, secrets: &[String]) -> String {
    pinwheel_sdk::scrub::scrub(answer, secrets, MAX_SNIPPET)
}

impl Http {
    /// The SMS text for `message`.
    fn text(&self, message: &Message) -> Result<String, PluginError> {
        match self.templates.get(&message.kind) {
            Some(template) => template
                .render(|name| message.values.get(name).map(String::as_str))
                .map_err(|name| {
                    PluginError::internal(format!(
                        "the {0} message has no `{name}` value for templates.{0}",
                        message.kind.as_str()
                    ))
                }),
            None => Ok(message.body.clone()),
        }
    }

    fn unavailable(&self, error: &ureq::Transport, secrets: &[String]) -> PluginError {
        let mut parts = vec![error.kind().to_string()];
        parts.extend(error.message().map(str::to_string));
        parts.extend(std::error::Error::source(error).map(|s| s.to_string()));
        parts.dedup();
        let detail = parts.join(": ");
        let timed_out = detail.contains("timed out")
            || std::error::Error::source(error)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .is_some_and(|io| {
                    matches!(
                        io.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                    )
                });
        let detail = scrub(&detail, secrets);
        if timed_out {
            PluginError::unavailable(format!(
                "SMS gateway {} did not answer within {} s: {detail}",
                self.endpoint, self.timeout
            ))
        } else {
            PluginError::unavailable(format!("SMS gateway {}: {detail}", self.endpoint))
        }
    }
}

/// One request, ready to send.
#[derive(Debug)]
struct Prepared {
    url: String,
    body: Option<String>,
    /// What must not appear in an error.
    secrets: Vec<String>,
}

impl Http {
    /// The URL and body for `message`.
    fn prepare(&self, message: &Message) -> Result<Prepared, PluginError> {
        let to = message
            .phone
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                PluginError::no_recipient(format!(
                    "user {:?} has no phone number",
                    message.username
                ))
            })?;
        let text = self.text(message)?;
        let secrets = secrets(message, &text);
        let lookup = |name: &str| match name {
            "to" => Some(to),
            "message" => Some(text.as_str()),
            "username" => Some(message.username.as_str()),
            "kind" => Some(message.kind.as_str()),
            _ => None,
        };
        let missing =
            |name: String| PluginError::internal(format!("no value for placeholder {{{name}}}"));
        let url = self
            .url
            .render_escaped(lookup, escape::percent)
            .map_err(missing)?;
        let body = match &self.body {
            Some((template, format)) => {
                let body = template
                    .render_escaped(lookup, format.escape())
                    .map_err(missing)?;
                if *format == BodyFormat::Json
                    && serde_json::from_str::<serde_json::Value>(&body).is_err()
                {
                    return Err(PluginError::internal(
                        "the JSON body template gave a document that is not JSON",
                    ));
                }
                Some(body)
            }
            None => None,
        };
        Ok(Prepared { url, body, secrets })
    }
}

impl Transport for Http {
    fn send(&self, message: &Message) -> Result<(), PluginError> {
        let Prepared { url, body, secrets } = self.prepare(message)?;
        let mut request = self.agent.request(self.method.as_str(), &url);
        for (name, value) in &self.headers {
            request = request.set(name, value);
        }
        let result = match &body {
            Some(body) => request.send_string(body),
            None => request.call(),
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(ureq::Error::Transport(error)) => return Err(self.unavailable(&error, &secrets)),
        };
        let status = response.status();
        let mut answer = Vec::new();
        response
            .into_reader()
            .take(MAX_ANSWER)
            .read_to_end(&mut answer)
            .map_err(|e| {
                let detail = scrub(&e.to_string(), &secrets);
                PluginError::unavailable(format!(
                    "SMS gateway {} answered HTTP {status} but its body could not be read: {detail}",
                    self.endpoint
                ))
            })?;
        let answer = String::from_utf8_lossy(&answer);

        let status_ok = match &self.success_status {
            Some(list) => list.contains(&status),
            None => (200..300).contains(&status),
        };
        if !status_ok {
            return Err(PluginError::rejected(format!(
                "SMS gateway {} answered HTTP {status}: {}",
                self.endpoint,
                scrub(&answer, &secrets)
            )));
        }
        if let Some(wanted) = &self.success_body_contains {
            if !answer.contains(wanted.as_str()) {
                return Err(PluginError::rejected(format!(
                    "SMS gateway {} answered HTTP {status} without {wanted:?} in its body: {}",
                    self.endpoint,
                    scrub(&answer, &secrets)
                )));
            }
        }
        Ok(())
    }
}

pinwheel_sdk::export_plugin!(Transport, Http);

#[cfg(test)]
mod tests;
