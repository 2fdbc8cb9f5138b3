//! `pinwheel-sdk`: write Pinwheel transports and directories as plugins.
//!
//! A plugin is a Rust `cdylib` that implements one trait —
//! [`Transport`] (deliver a message to a user: email, SMS, a folder) or
//! [`Directory`] (find users, check their directory password) — and calls
//! [`export_plugin!`] once. The daemon loads the built `.so` from its plugin
//! folder with `dlopen`, finds the one entry symbol `pinwheel_plugin_v1`, and
//! talks to the plugin through a small C ABI that carries JSON ([`ffi`],
//! [`protocol`]). The SDK owns every `unsafe` line of that boundary, catches
//! panics before they cross it, and frees what it allocated: a plugin author
//! writes safe Rust only.
//!
//! # Writing a plugin
//!
//! 1. Create a library crate with `crate-type = ["cdylib"]` and depend on
//!    `pinwheel-sdk`, `serde` (with `derive`) and `serde_json`.
//! 2. Implement [`Plugin`] (name, version, construction from the
//!    `config = { ... }` table of its `[[transport]]` or `[[directory]]`
//!    entry) and [`Transport`] or [`Directory`].
//! 3. Call `pinwheel_sdk::export_plugin!(Transport, YourType);` (or
//!    `Directory`).
//! 4. `cargo build --release`, copy `target/release/libyour_plugin.so` into the
//!    plugin folder (`/usr/lib/pinwheel/plugins` by default; owned by root and
//!    not writable by group or others, or the daemon refuses it), name it in
//!    the config and run `systemctl reload pinwheeld`.
//!
//! A complete transport that appends one line per message to a file:
//!
//! ```
//! use std::io::Write;
//! use pinwheel_sdk::{Message, Plugin, PluginError, Transport};
//!
//! /// Settings from `config = { path = "/var/log/pinwheel-messages" }`.
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Settings {
//!     path: std::path::PathBuf,
//! }
//!
//! pub struct Logbook {
//!     file: std::sync::Mutex<std::fs::File>,
//! }
//!
//! impl Plugin for Logbook {
//!     const NAME: &'static str = "logbook";
//!     const VERSION: &'static str = "1.0.0";
//!
//!     fn new(config: serde_json::Value) -> Result<Self, PluginError> {
//!         let settings: Settings = serde_json::from_value(config)
//!             .map_err(|e| PluginError::config(format!("logbook: {e}")))?;
//!         let file = std::fs::OpenOptions::new()
//!             .create(true)
//!             .append(true)
//!             .open(&settings.path)
//!             .map_err(|e| {
//!                 PluginError::config(format!("cannot open {}: {e}", settings.path.display()))
//!             })?;
//!         Ok(Logbook { file: std::sync::Mutex::new(file) })
//!     }
//! }
//!
//! impl Transport for Logbook {
//!     fn send(&self, message: &Message) -> Result<(), PluginError> {
//!         let to = message
//!             .email
//!             .as_deref()
//!             .ok_or_else(|| PluginError::no_recipient("the user has no email address"))?;
//!         let mut file = self
//!             .file
//!             .lock()
//!             .map_err(|_| PluginError::internal("an earlier write panicked"))?;
//!         // Never put the message body into an error: it holds a code.
//!         writeln!(file, "{to}\t{}\t{}", message.subject, message.body)
//!             .map_err(|e| PluginError::unavailable(format!("write failed: {e}")))
//!     }
//! }
//!
//! pinwheel_sdk::export_plugin!(Transport, Logbook);
//! # fn main() {
//! #     let dir = std::env::temp_dir().join(format!("logbook-doctest-{}", std::process::id()));
//! #     let plugin = Logbook::new(serde_json::json!({ "path": dir })).unwrap();
//! #     let mut message = pinwheel_sdk::Message::new(pinwheel_sdk::MessageKind::Pin, "alice");
//! #     message.email = Some("alice@example.org".into());
//! #     plugin.send(&message).unwrap();
//! #     let _ = std::fs::remove_file(dir);
//! # }
//! ```
//!
//! # Rules for plugin authors
//!
//! - **Never log or return message bodies, codes, PINs or passwords.** Error
//!   messages reach the daemon's log: say what failed (host, status, errno),
//!   not what was being sent.
//! - Calls come from the daemon's blocking thread pool, several at once up to
//!   the plugin's concurrency limit, so your type must be `Send + Sync`. Block
//!   freely, but keep every network call under a timeout: the daemon gives up
//!   on a call after its `timeout` (the thread is then left to finish).
//! - A panic is caught by the SDK and reported as an error for that call; the
//!   plugin stays loaded. Do not rely on it: return [`PluginError`]s.
//! - [`Directory::check_password`] is never called with an empty password
//!   (the SDK refuses one itself): LDAP servers treat an empty password as an
//!   anonymous bind that succeeds.
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub mod ffi;
pub mod protocol;
pub mod scrub;
pub mod template;

/// Version of the plugin ABI ([`ffi::PluginTableV1`]). The host refuses a
/// plugin whose table carries another number.
pub const ABI_VERSION: u32 = 1;

/// What kind of plugin a library is. Values are the `kind` field of
/// [`ffi::PluginTableV1`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u32)]
pub enum PluginKind {
    /// Delivers messages to users ([`Transport`]).
    Transport = 1,
    /// Finds users and checks their passwords ([`Directory`]).
    Directory = 2,
}

impl PluginKind {
    /// The kind for a table's `kind` field, if known.
    pub fn from_u32(value: u32) -> Option<PluginKind> {
        match value {
            1 => Some(PluginKind::Transport),
            2 => Some(PluginKind::Directory),
            _ => None,
        }
    }

    /// `"transport"` or `"directory"`, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Transport => "transport",
            PluginKind::Directory => "directory",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a plugin failure was, so the daemon can react (and say so clearly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The plugin's `config` table is wrong (an unknown key, a missing file).
    Config,
    /// The user has no address this transport can use (no email, no phone).
    NoRecipient,
    /// A server could not be reached or timed out; retrying later may work.
    Unavailable,
    /// The far side answered and refused (an SMTP 5xx, an HTTP 500, a bind
    /// refused for the service account).
    Rejected,
    /// The call is not one this plugin answers (asked a transport for users).
    Unsupported,
    /// A bug: a panic, a poisoned lock, an unexpected answer.
    Internal,
}

impl ErrorKind {
    /// Stable snake_case name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::NoRecipient => "no_recipient",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Rejected => "rejected",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal",
        }
    }
}

/// A plugin call's failure: a kind and a message for the administrator.
///
/// The message goes to the daemon's log. It must never contain a message
/// body, a code, a PIN or a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginError {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// What failed, for the administrator.
    pub message: String,
}

impl PluginError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError {
            kind,
            message: message.into(),
        }
    }

    /// [`ErrorKind::Config`].
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// [`ErrorKind::NoRecipient`].
    pub fn no_recipient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NoRecipient, message)
    }

    /// [`ErrorKind::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// [`ErrorKind::Rejected`].
    pub fn rejected(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Rejected, message)
    }

    /// [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.as_str())
    }
}

impl std::error::Error for PluginError {}

/// What a message is about; transports may pick a template per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MessageKind {
    /// A Mobile Provision Code with its Provision URL. Values: `code`, `url`.
    ProvisionCode,
    /// A PIN generated by the server. Values: `pin`.
    Pin,
    /// A security string sent on demand (dual channel, two-stage login).
    /// Values: `string`.
    SecurityString,
    /// A ResetPIN code. Values: `code`.
    ResetCode,
}

impl MessageKind {
    /// Stable kebab-case name (`provision-code`, `pin`, `security-string`,
    /// `reset-code`), as in the JSON and in template tables.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::ProvisionCode => "provision-code",
            MessageKind::Pin => "pin",
            MessageKind::SecurityString => "security-string",
            MessageKind::ResetCode => "reset-code",
        }
    }

    /// The names of [`Message::values`] a message of this kind carries, for
    /// [`template::Template::parse`]: `username` always, plus `code` and `url`
    /// (provision code), `pin` (PIN), `string` (security string) or `code`
    /// (reset code).
    pub fn placeholders(self) -> &'static [&'static str] {
        match self {
            MessageKind::ProvisionCode => &["username", "code", "url"],
            MessageKind::Pin => &["username", "pin"],
            MessageKind::SecurityString => &["username", "string"],
            MessageKind::ResetCode => &["username", "code"],
        }
    }

    /// The kind named `name` (as [`MessageKind::as_str`] spells it), for
    /// per-kind template tables in plugin configs.
    ///
    /// Errors: a message naming the unknown kind and the known ones.
    pub fn from_name(name: &str) -> Result<MessageKind, String> {
        MessageKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = MessageKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown message kind (known: {})", known.join(", "))
            })
    }

    /// Every kind, for building per-kind tables.
    pub const ALL: [MessageKind; 4] = [
        MessageKind::ProvisionCode,
        MessageKind::Pin,
        MessageKind::SecurityString,
        MessageKind::ResetCode,
    ];
}

/// One message for one user, as the daemon hands it to a [`Transport`].
///
/// `subject` and `body` are the daemon's own wording, ready to send.
/// `values` holds the variable parts by name (see [`MessageKind`]: `code`,
/// `url`, `pin`, `string`) plus `username`, for transports with their own
/// templates. `Debug` leaves the body and values out: they hold codes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Message {
    /// What the message is about.
    pub kind: MessageKind,
    /// The user the message is for.
    pub username: String,
    /// The user's email address, from the directory, if any.
    #[serde(default)]
    pub email: Option<String>,
    /// The user's phone number (as stored, often E.164), if any.
    #[serde(default)]
    pub phone: Option<String>,
    /// Subject line (email) or first words (SMS).
    pub subject: String,
    /// The full text.
    pub body: String,
    /// Named variable parts of the message, for templates.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
}

impl Message {
    /// An empty message of `kind` for `username`; fill in the rest.
    pub fn new(kind: MessageKind, username: impl Into<String>) -> Self {
        let username = username.into();
        let mut values = BTreeMap::new();
        values.insert("username".to_string(), username.clone());
        Message {
            kind,
            username,
            email: None,
            phone: None,
            subject: String::new(),
            body: String::new(),
            values,
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("kind", &self.kind)
            .field("username", &self.username)
            .field("email", &self.email)
            .field("phone", &self.phone)
            .finish_non_exhaustive()
    }
}

/// A user as a [`Directory`] knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DirectoryUser {
    /// The login name, as users type it and as Pinwheel stores it.
    pub username: String,
    /// Email address, if the directory has one.
    #[serde(default)]
    pub email: Option<String>,
    /// Phone number, if the directory has one.
    #[serde(default)]
    pub phone: Option<String>,
    /// Group names (short names such as `vpn-users`, not DNs).
    #[serde(default)]
    pub groups: Vec<String>,
    /// False when the directory marks the account disabled (for example
    /// Active Directory's `userAccountControl` bit 2).
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl DirectoryUser {
    /// An enabled user with no address and no groups.
    pub fn new(username: impl Into<String>) -> Self {
        DirectoryUser {
            username: username.into(),
            email: None,
            phone: None,
            groups: Vec::new(),
            enabled: true,
        }
    }
}

/// Reads a secret (a password, a token) from the file at `path`, without one
/// trailing newline (`\n` or `\r\n`), for config keys such as
/// `password_file`.
///
/// Errors: a message naming the file (never its content) when it cannot be
/// read or is empty; wrap it in [`PluginError::config`] with the key.
pub fn read_secret_file(path: &std::path::Path) -> Result<String, String> {
    let mut text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(text)
}

/// What every plugin has: a name, a version, and construction from its
/// config table. The health check is optional.
pub trait Plugin: Sized + Send + Sync + 'static {
    /// Short name of the implementation, for `pinwheelctl plugins` and logs
    /// (`smtp`, `ldap`). ASCII, no NUL.
    const NAME: &'static str;
    /// The plugin's own version (semver), for `pinwheelctl plugins`.
    const VERSION: &'static str;

    /// Builds the plugin from the `config = { ... }` table of its config
    /// entry, converted to JSON (TOML tables become objects). Called once per
    /// load, and again on every `systemctl reload`.
    ///
    /// Errors: [`ErrorKind::Config`] for anything wrong in `config`; the
    /// daemon then refuses to start (or keeps the old config on reload).
    fn new(config: serde_json::Value) -> Result<Self, PluginError>;

    /// Whether the plugin can work now (its server answers). Shown by
    /// `pinwheelctl plugins`. The default says yes.
    fn health(&self) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Delivers messages to users: email, SMS, a folder.
pub trait Transport: Plugin {
    /// Delivers `message`, returning once it is handed over (accepted by the
    /// mail server, the SMS gateway, written to disk).
    ///
    /// Errors: [`ErrorKind::NoRecipient`] when the user has no address this
    /// transport uses; [`ErrorKind::Unavailable`] or [`ErrorKind::Rejected`]
    /// when delivery failed. Never include the body in the error.
    fn send(&self, message: &Message) -> Result<(), PluginError>;
}

/// Finds users and checks their directory passwords: LDAP, Active Directory.
pub trait Directory: Plugin {
    /// The user called `username` (exactly as typed), or `None` when the
    /// directory has no such user.
    ///
    /// Errors: [`ErrorKind::Unavailable`] when no server answered.
    fn lookup(&self, username: &str) -> Result<Option<DirectoryUser>, PluginError>;

    /// Whether `password` is the user's directory password (for example by
    /// binding as the user). Never called with an empty password.
    ///
    /// Errors: [`ErrorKind::Unavailable`] when no server answered; a wrong
    /// password or an unknown user is `Ok(false)`.
    fn check_password(&self, username: &str, password: &str) -> Result<bool, PluginError>;

    /// Every user the directory would let use Pinwheel (for the scheduled and
    /// on-demand sync, which disables users gone from the directory).
    ///
    /// Errors: [`ErrorKind::Unavailable`] when no server answered. Return an
    /// error rather than a partial list: a missing user gets disabled.
    fn list_users(&self) -> Result<Vec<DirectoryUser>, PluginError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_lose_one_trailing_newline_and_never_show_their_content() {
        let dir = std::env::temp_dir().join(format!("pinwheel-sdk-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        for (content, expected) in [
            ("s3cret\n", "s3cret"),
            ("s3cret\r\n", "s3cret"),
            ("s3cret", "s3cret"),
            ("a\n\n", "a\n"),
        ] {
            std::fs::write(&path, content).unwrap();
            assert_eq!(read_secret_file(&path).unwrap(), expected);
        }
        std::fs::write(&path, "\n").unwrap();
        let e = read_secret_file(&path).unwrap_err();
        assert!(e.contains("is empty"), "{e}");
        let e = read_secret_file(&dir.join("missing")).unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn kinds_are_found_by_name() {
        for kind in MessageKind::ALL {
            assert_eq!(MessageKind::from_name(kind.as_str()), Ok(kind));
        }
        let e = MessageKind::from_name("fax").unwrap_err();
        assert!(
            e.contains("provision-code, pin, security-string, reset-code"),
            "{e}"
        );
    }

    #[test]
    fn every_kind_offers_the_user_name() {
        for kind in MessageKind::ALL {
            assert!(kind.placeholders().contains(&"username"), "{kind:?}");
        }
        assert!(MessageKind::ProvisionCode.placeholders().contains(&"url"));
    }
}
