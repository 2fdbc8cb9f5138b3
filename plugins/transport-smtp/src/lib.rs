//! Pinwheel transport plugin `smtp`: delivers messages to the user's email
//! address through an SMTP relay (lettre, TLS by rustls; no OpenSSL).
//!
//! # Configuration
//!
//! ```toml
//! [[transport]]
//! name = "email"
//! plugin = "libpinwheel_transport_smtp.so"
//! config = { host = "smtp.example.org", from = "Pinwheel <pinwheel@example.org>", username = "pinwheel", password_file = "/etc/pinwheel/smtp-password" }
//!
//! # Optional per-kind wording, as a separate table:
//! [transport.config.templates.provision-code]
//! subject = "Your Pinwheel provision code"
//! body = """
//! Hello {username},
//!
//! your Mobile Provision Code is {code}.
//! Open {url} on your phone to provision the app.
//! """
//! ```
//!
//! | key | meaning |
//! |---|---|
//! | `host` | the relay's host name or address (required); also the name its TLS certificate must carry |
//! | `tls` | `"starttls"` (default: plain connection upgraded with STARTTLS, which must succeed), `"implicit"` (TLS from the first byte, "SMTPS") or `"none"` (no encryption at all: only for a relay on the loopback interface or a test sink) |
//! | `port` | default by `tls`: 587 for `starttls`, 465 for `implicit`, 25 for `none` |
//! | `username` | log in with this name (optional; needs a password) |
//! | `password_file` | file holding the password (read once at start, one trailing newline removed); preferred over `password` |
//! | `password` | the password inline (only when a file is not possible; never both) |
//! | `from` | the sender mailbox, `pinwheel@example.org` or `Pinwheel <pinwheel@example.org>` (required) |
//! | `timeout` | seconds allowed for connecting and for each SMTP reply (default 10, 1..=300) |
//! | `ca_file` | PEM file with CA certificates trusted in addition to the built-in Mozilla roots (for a relay with a private CA) |
//! | `templates` | per message kind (`provision-code`, `pin`, `security-string`, `reset-code`) a table with optional `from`, `subject` and `body` |
//!
//! Templates are plain text. `{username}` works in every kind; besides it
//! `provision-code` knows `{code}` and `{url}`, `pin` knows `{pin}`,
//! `security-string` knows `{string}` and `reset-code` knows `{code}`. Any
//! other `{name}` is refused when the plugin starts; braces that do not form
//! a `{name}` are kept as they are. A kind without a template (or a template
//! without `subject` or `body`) uses the daemon's own subject and body.
//!
//! Each message is sent on a fresh connection. A user without an email
//! address gives a `no_recipient` error; a 5xx reply from the relay gives
//! `rejected`; a refused or timed-out connection, a TLS failure or a 4xx
//! reply gives `unavailable`. Errors name the relay and its reply, never the
//! message, its codes or the password.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::Transport as _;
use pinwheel_sdk::{Message, MessageKind, Plugin, PluginError, Transport};
use serde::Deserialize;

use pinwheel_sdk::template::Template;

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS; the upgrade must succeed.
    #[default]
    Starttls,
    /// TLS from the first byte ("SMTPS", port 465).
    Implicit,
    /// No encryption: only for a relay on the loopback interface or a test
    /// sink.
    None,
}

impl TlsMode {
    fn default_port(self) -> u16 {
        match self {
            TlsMode::Starttls => 587,
            TlsMode::Implicit => 465,
            TlsMode::None => 25,
        }
    }
}

/// The plugin's `config` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The relay's host name or address; also the name its certificate must
    /// carry.
    pub host: String,
    /// TCP port; default by `tls` (587, 465 or 25).
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default), `implicit` or `none`.
    #[serde(default)]
    pub tls: TlsMode,
    /// Log in with this name (needs `password_file` or `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password, read once at start.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The password inline; prefer `password_file`.
    #[serde(default)]
    pub password: Option<String>,
    /// The sender mailbox (`Name <address>` or a bare address).
    pub from: String,
    /// Seconds allowed for connecting and for each reply (default 10).
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// PEM file with extra trusted CA certificates.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Per message kind (`provision-code`, `pin`, `security-string`,
    /// `reset-code`): the wording to send.
    #[serde(default)]
    pub templates: BTreeMap<String, TemplateSettings>,
}

/// One entry of `templates`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSettings {
    /// Sender mailbox for this kind, instead of the top-level `from`.
    #[serde(default)]
    pub from: Option<String>,
    /// Subject template; without it the daemon's subject is used.
    #[serde(default)]
    pub subject: Option<String>,
    /// Body template; without it the daemon's body is used.
    #[serde(default)]
    pub body: Option<String>,
}

fn default_timeout() -> u64 {
    10
}

/// Parsed wording for one kind.
#[derive(Debug)]
struct KindTemplate {
    from: Option<Mailbox>,
    subject: Option<Template>,
    body: Option<Template>,
}

/// The SMTP transport: one configured relay.
pub struct Smtp {
    transport: lettre::SmtpTransport,
    from: Mailbox,
    templates: BTreeMap<MessageKind, KindTemplate>,
    /// `host:port`, for error messages.
    relay: String,
    timeout: u64,
}

fn config_error(message: impl std::fmt::Display) -> PluginError {
    PluginError::config(format!("transport-smtp: {message}"))
}

/// Reads a secret from `path`, without one trailing newline.
fn read_secret(key: &str, path: &Path) -> Result<String, PluginError> {
    pinwheel_sdk::read_secret_file(path).map_err(|e| config_error(format!("{key}: {e}")))
}

fn parse_mailbox(key: &str, text: &str) -> Result<Mailbox, PluginError> {
    text.trim().parse::<Mailbox>().map_err(|e| {
        config_error(format!(
            "{key}: {text:?} is not a mailbox such as \"Pinwheel <pinwheel@example.org>\" ({e})"
        ))
    })
}

fn parse_templates(
    raw: BTreeMap<String, TemplateSettings>,
) -> Result<BTreeMap<MessageKind, KindTemplate>, PluginError> {
    let mut templates = BTreeMap::new();
    for (name, settings) in raw {
        let kind = MessageKind::from_name(&name)
            .map_err(|e| config_error(format!("templates.{name}: {e}")))?;
        let allowed = kind.placeholders();
        let parse = |field: &str, text: Option<String>| {
            text.map(|t| Template::parse(&t, allowed))
                .transpose()
                .map_err(|e| config_error(format!("templates.{name}.{field}: {e}")))
        };
        let template = KindTemplate {
            from: settings
                .from
                .map(|f| parse_mailbox(&format!("templates.{name}.from"), &f))
                .transpose()?,
            subject: parse("subject", settings.subject)?,
            body: parse("body", settings.body)?,
        };
        templates.insert(kind, template);
    }
    Ok(templates)
}

impl Plugin for Smtp {
    const NAME: &'static str = "smtp";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config: serde_json::Value) -> Result<Self, PluginError> {
        // Never echoes a value: an inline secret of the wrong type stays out.
        let settings: Settings = pinwheel_sdk::scrub::parse_config(config).map_err(config_error)?;

        let host = settings.host.trim().to_string();
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(config_error(format!(
                "host: {:?} is not a host name or address",
                settings.host
            )));
        }
        if !(1..=300).contains(&settings.timeout) {
            return Err(config_error(format!(
                "timeout: {} is out of range (1 to 300 seconds)",
                settings.timeout
            )));
        }
        if settings.port == Some(0) {
            return Err(config_error("port: 0 is not a port"));
        }
        let port = settings.port.unwrap_or(settings.tls.default_port());
        let from = parse_mailbox("from", &settings.from)?;

        let password =
            match (&settings.password_file, &settings.password) {
                (Some(_), Some(_)) => return Err(config_error(
                    "password and password_file are both set: keep one (password_file preferred)",
                )),
                (Some(path), None) => Some(read_secret("password_file", path)?),
                (None, Some(password)) if password.is_empty() => {
                    return Err(config_error("password: is empty"))
                }
                (None, Some(password)) => Some(password.clone()),
                (None, None) => None,
            };
        let credentials = match (&settings.username, password) {
            (Some(user), Some(password)) if !user.is_empty() => {
                Some(Credentials::new(user.clone(), password))
            }
            (Some(_), Some(_)) => return Err(config_error("username: is empty")),
            (Some(_), None) => {
                return Err(config_error(
                    "username is set but neither password_file nor password",
                ))
            }
            (None, Some(_)) => {
                return Err(config_error(
                    "a password is set but no username to log in with",
                ))
            }
            (None, None) => None,
        };

        let tls = match settings.tls {
            TlsMode::None => {
                if settings.ca_file.is_some() {
                    return Err(config_error(
                        "ca_file: has no use with tls = \"none\" (choose \"starttls\" or \"implicit\")",
                    ));
                }
                Tls::None
            }
            mode => {
                let mut builder = TlsParameters::builder(host.clone());
                if let Some(path) = &settings.ca_file {
                    let pem = std::fs::read(path).map_err(|e| {
                        config_error(format!("ca_file: cannot read {}: {e}", path.display()))
                    })?;
                    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                        return Err(config_error(format!(
                            "ca_file: {} holds no PEM certificate",
                            path.display()
                        )));
                    }
                    let cert = Certificate::from_pem(&pem)
                        .map_err(|e| config_error(format!("ca_file: {}: {e}", path.display())))?;
                    builder = builder.add_root_certificate(cert);
                }
                let parameters = builder
                    .build_rustls()
                    .map_err(|e| config_error(format!("tls: cannot set up TLS for {host}: {e}")))?;
                if mode == TlsMode::Implicit {
                    Tls::Wrapper(parameters)
                } else {
                    Tls::Required(parameters)
                }
            }
        };

        let templates = parse_templates(settings.templates)?;

        let mut builder = lettre::SmtpTransport::builder_dangerous(host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(settings.timeout)));
        if let Some(credentials) = credentials {
            builder = builder.credentials(credentials);
        }
        let relay = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Smtp {
            transport: builder.build(),
            from,
            templates,
            relay,
            timeout: settings.timeout,
        })
    }

    fn health(&self) -> Result<(), PluginError> {
        match self.transport.test_connection() {
            Ok(true) => Ok(()),
            Ok(false) => Err(PluginError::unavailable(format!(
                "SMTP relay {}: the connection test failed",
                self.relay
            ))),
            // No message was sent: nothing to cut out.
            Err(e) => Err(self.classify(&e, &[])),
        }
    }
}

/// The most of the relay's answer that goes into an error, in bytes.
const MAX_DETAIL: usize = 300;

/// Whether `e` comes from a socket timeout (Linux reports a read timeout
/// as `WouldBlock`, which lettre's own `is_timeout` misses).
fn timed_out(e: &lettre::transport::smtp::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            );
        }
        source = err.source();
    }
    false
}

impl Smtp {
    /// Maps a lettre error to the SDK's kinds: 5xx is `rejected`, anything
    /// else (4xx, connection, TLS, timeout) `unavailable`. The relay's text
    /// goes into the error with every secret of the message cut out
    /// (`secrets`, see [`pinwheel_sdk::scrub`]): a relay may echo the body.
    fn classify(&self, e: &lettre::transport::smtp::Error, secrets: &[String]) -> PluginError {
        let detail = pinwheel_sdk::scrub::scrub(&e.to_string(), secrets, MAX_DETAIL);
        if e.is_permanent() {
            PluginError::rejected(format!(
                "SMTP relay {} refused the message: {detail}",
                self.relay
            ))
        } else if timed_out(e) {
            PluginError::unavailable(format!(
                "SMTP relay {} did not answer within {} s: {detail}",
                self.relay, self.timeout
            ))
        } else if e.is_transient() {
            PluginError::unavailable(format!(
                "SMTP relay {} deferred the message (try again later): {detail}",
                self.relay
            ))
        } else {
            PluginError::unavailable(format!("SMTP relay {}: {detail}", self.relay))
        }
    }

    /// The sender, subject and body for `message`, from its kind's template
    /// or the daemon's own wording.
    fn compose(&self, message: &Message) -> Result<(Mailbox, String, String), PluginError> {
        let template = self.templates.get(&message.kind);
        let lookup = |name: &str| message.values.get(name).map(String::as_str);
        let render = |t: &Template, field: &str| {
            t.render(lookup).map_err(|name| {
                PluginError::internal(format!(
                    "the {} message has no `{name}` value for templates.{}.{field}",
                    message.kind.as_str(),
                    message.kind.as_str()
                ))
            })
        };
        let from = template
            .and_then(|t| t.from.clone())
            .unwrap_or_else(|| self.from.clone());
        let subject = match template.and_then(|t| t.subject.as_ref()) {
            Some(t) => render(t, "subject")?,
            None => message.subject.clone(),
        };
        // A header is one line.
        let subject = subject.replace(['\r', '\n'], " ");
        let body = match template.and_then(|t| t.body.as_ref()) {
            Some(t) => render(t, "body")?,
            None => message.body.clone(),
        };
        Ok((from, subject, body))
    }
}

impl Transport for Smtp {
    fn send(&self, message: &Message) -> Result<(), PluginError> {
        let address = message
            .email
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                PluginError::no_recipient(format!(
                    "user {:?} has no email address",
                    message.username
                ))
            })?;
        let to = address.parse::<Mailbox>().map_err(|e| {
            PluginError::no_recipient(format!(
                "the email address of user {:?} is not usable: {e}",
                message.username
            ))
        })?;
        let (from, subject, body) = self.compose(message)?;
        let secrets = pinwheel_sdk::scrub::message_secrets(message, &[&subject, &body]);
        let email = lettre::Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| PluginError::internal(format!("cannot build the email: {e}")))?;
        self.transport
            .send(&email)
            .map(|_| ())
            .map_err(|e| self.classify(&e, &secrets))
    }
}

pinwheel_sdk::export_plugin!(Transport, Smtp);

#[cfg(test)]
mod tests {
    use super::*;
    use pinwheel_sdk::ErrorKind;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({ "host": "127.0.0.1", "tls": "none", "port": 2525, "from": "Pinwheel <pinwheel@example.org>" })
    }

    fn with(extra: serde_json::Value) -> serde_json::Value {
        let mut config = base();
        if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                c.insert(k.clone(), v.clone());
            }
        }
        config
    }

    fn config_err(config: serde_json::Value) -> String {
        match Smtp::new(config) {
            Ok(_) => panic!("config accepted"),
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::Config, "{e}");
                e.message
            }
        }
    }

    fn message(kind: MessageKind) -> Message {
        let mut m = Message::new(kind, "alice");
        m.email = Some("alice@example.org".into());
        m.subject = "Daemon subject".into();
        m.body = "Daemon body".into();
        m
    }

    #[test]
    fn minimal_config_builds() {
        let smtp = Smtp::new(base()).unwrap();
        assert_eq!(smtp.relay, "127.0.0.1:2525");
        assert_eq!(smtp.from.email.to_string(), "pinwheel@example.org");
    }

    #[test]
    fn default_ports_follow_tls_mode() {
        for (tls, port) in [("starttls", 587), ("implicit", 465), ("none", 25)] {
            let smtp = Smtp::new(
                json!({ "host": "mail.example.org", "tls": tls, "from": "p@example.org" }),
            )
            .unwrap();
            assert_eq!(smtp.relay, format!("mail.example.org:{port}"));
        }
        let smtp =
            Smtp::new(json!({ "host": "mail.example.org", "from": "p@example.org" })).unwrap();
        assert_eq!(smtp.relay, "mail.example.org:587");
    }

    #[test]
    fn config_errors_name_the_key() {
        assert!(config_err(with(json!({ "hots": "x" }))).contains("hots"));
        assert!(config_err(json!({ "host": "x" })).contains("`from`"));
        assert!(config_err(json!({ "from": "a@b.org" })).contains("`host`"));
        assert!(config_err(with(json!({ "from": "not a mailbox" }))).contains("from:"));
        assert!(config_err(with(json!({ "tls": "ssl" }))).contains("ssl"));
        assert!(config_err(with(json!({ "timeout": 0 }))).contains("timeout"));
        assert!(config_err(with(json!({ "port": 0 }))).contains("port"));
        assert!(config_err(with(json!({ "host": "" }))).contains("host"));
        assert!(config_err(with(json!({ "username": "u" }))).contains("username"));
        assert!(config_err(with(json!({ "password": "p" }))).contains("username"));
        assert!(config_err(with(
            json!({ "username": "u", "password": "p", "password_file": "/x" })
        ))
        .contains("password_file"));
        let e = config_err(with(
            json!({ "username": "u", "password_file": "/nonexistent/pw" }),
        ));
        assert!(
            e.contains("password_file") && e.contains("/nonexistent/pw"),
            "{e}"
        );
        let e = config_err(with(json!({ "ca_file": "/nonexistent/ca.pem" })));
        assert!(e.contains("ca_file"), "{e}");
        let e =
            config_err(json!({ "host": "h", "from": "a@b.org", "ca_file": "/nonexistent/ca.pem" }));
        assert!(
            e.contains("ca_file") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
    }

    #[test]
    fn secrets_come_from_files_without_the_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(read_secret("password_file", &path).unwrap(), "s3cret");
        std::fs::write(&path, "s3cret\r\n").unwrap();
        assert_eq!(read_secret("password_file", &path).unwrap(), "s3cret");
        std::fs::write(&path, "\n").unwrap();
        let e = read_secret("password_file", &path).unwrap_err();
        assert!(e.message.contains("empty"));
        std::fs::write(&path, "s3cret\n").unwrap();
        Smtp::new(with(json!({ "username": "u", "password_file": path }))).unwrap();
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e = config_err(json!({ "host": "h", "from": "a@b.org", "ca_file": path }));
        assert!(e.contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn template_errors_name_kind_and_field() {
        let e = config_err(with(
            json!({ "templates": { "pin": { "body": "PIN {pin} code {code}" } } }),
        ));
        assert!(
            e.contains("templates.pin.body") && e.contains("{code}"),
            "{e}"
        );
        let e = config_err(with(json!({ "templates": { "sms": { "body": "x" } } })));
        assert!(
            e.contains("templates.sms") && e.contains("provision-code"),
            "{e}"
        );
        let e = config_err(with(json!({ "templates": { "pin": { "bodу": "x" } } })));
        assert!(e.contains("bodу"), "{e}");
        let e = config_err(with(
            json!({ "templates": { "pin": { "from": "nobody" } } }),
        ));
        assert!(e.contains("templates.pin.from"), "{e}");
    }

    #[test]
    fn templates_replace_the_daemon_wording_per_kind() {
        let smtp = Smtp::new(with(json!({ "templates": {
            "provision-code": { "subject": "Code for {username}", "body": "Code {code}\nLink {url}\n" },
            "pin": { "from": "PIN desk <pins@example.org>", "body": "PIN: {pin}" },
            "security-string": { "subject": "String\r\nBcc: x@example.org" },
            "reset-code": {},
        } })))
        .unwrap();

        let mut m = message(MessageKind::ProvisionCode);
        m.values.insert("code".into(), "0123456789".into());
        m.values.insert(
            "url".into(),
            "https://p.example.org/provision#user=alice&code=0123456789".into(),
        );
        let (from, subject, body) = smtp.compose(&m).unwrap();
        assert_eq!(from.email.to_string(), "pinwheel@example.org");
        assert_eq!(subject, "Code for alice");
        assert_eq!(
            body,
            "Code 0123456789\nLink https://p.example.org/provision#user=alice&code=0123456789\n"
        );

        let mut m = message(MessageKind::Pin);
        m.values.insert("pin".into(), "4711".into());
        let (from, subject, body) = smtp.compose(&m).unwrap();
        assert_eq!(from.to_string(), "PIN desk <pins@example.org>");
        assert_eq!(subject, "Daemon subject");
        assert_eq!(body, "PIN: 4711");

        let (_, subject, body) = smtp.compose(&message(MessageKind::SecurityString)).unwrap();
        assert_eq!(subject, "String  Bcc: x@example.org");
        assert_eq!(body, "Daemon body");

        let (_, subject, body) = smtp.compose(&message(MessageKind::ResetCode)).unwrap();
        assert_eq!(
            (subject.as_str(), body.as_str()),
            ("Daemon subject", "Daemon body")
        );
    }

    #[test]
    fn a_missing_value_is_an_internal_error_without_the_body() {
        let smtp = Smtp::new(with(
            json!({ "templates": { "pin": { "body": "PIN: {pin}" } } }),
        ))
        .unwrap();
        let m = message(MessageKind::Pin);
        let e = smtp.compose(&m).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(
            e.message.contains("`pin`") && e.message.contains("templates.pin.body"),
            "{e}"
        );
    }

    #[test]
    fn no_or_bad_email_is_no_recipient() {
        let smtp = Smtp::new(base()).unwrap();
        let mut m = message(MessageKind::Pin);
        m.email = None;
        assert_eq!(smtp.send(&m).unwrap_err().kind, ErrorKind::NoRecipient);
        m.email = Some("  ".into());
        assert_eq!(smtp.send(&m).unwrap_err().kind, ErrorKind::NoRecipient);
        m.email = Some("alice@example.org\r\nBcc: eve@example.org".into());
        assert_eq!(smtp.send(&m).unwrap_err().kind, ErrorKind::NoRecipient);
    }

    #[test]
    fn the_example_config_builds_and_renders() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc/transport-smtp.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: toml::Value = toml::from_str(&text).unwrap();
        let entry = &doc["transport"][0];
        assert_eq!(
            entry["plugin"].as_str(),
            Some("libpinwheel_transport_smtp.so")
        );
        let mut config = serde_json::to_value(&entry["config"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("smtp-password");
        std::fs::write(&password, "dummy-secret\n").unwrap();
        config["password_file"] = json!(password);
        let smtp = Smtp::new(config).unwrap();
        assert_eq!(smtp.relay, "smtp.example.org:587");
        assert_eq!(smtp.templates.len(), 4);
        let mut m = message(MessageKind::ProvisionCode);
        m.values.insert("code".into(), "0123456789".into());
        m.values.insert(
            "url".into(),
            "https://p.example.org/provision#user=alice&code=0123456789".into(),
        );
        let (_, subject, body) = smtp.compose(&m).unwrap();
        assert_eq!(subject, "Your Pinwheel provision code");
        assert!(
            body.starts_with("Hello alice,\n\nyour Mobile Provision Code is 0123456789."),
            "{body}"
        );
        assert!(
            body.contains("\nhttps://p.example.org/provision#user=alice&code=0123456789\n"),
            "{body}"
        );
    }

    #[test]
    fn relay_text_is_cut_and_has_no_controls() {
        let out = pinwheel_sdk::scrub::scrub("a\r\nb", &[], MAX_DETAIL);
        assert_eq!(out, "a  b");
    }
}
