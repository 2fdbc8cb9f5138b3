//! The spool transport: each message becomes one file in a folder, holding
//! the recipient, subject and body. Useful on a machine with nothing else
//! installed, for tests, and for handing messages to another program.
//!
//! It is a plugin like any other (it implements [`pinwheel_sdk::Transport`]
//! and exports the plugin table), and it is also the daemon's built-in
//! default: `pinwheeld` links this crate and calls it through the same
//! JSON-in, JSON-out table as a plugin it loads from a file
//! (`plugin = "spool"` in a `[[transport]]` entry).
//!
//! Config: `config = { folder = "/path" }` (the daemon fills in
//! `STATE_DIR/spool` for its built-in entry when `folder` is missing).
//!
//! Files are written atomically (temporary name starting with a dot, fsync,
//! rename, fsync of the folder) with mode 0600 in a folder created 0700,
//! because they contain codes. Names sort by time:
//! `YYYYmmddTHHMMSS.nnnnnnnnnZ-KIND-RANDOM.msg`. The file text is
//!
//! ```text
//! To: ADDRESS
//! User: NAME
//! Subject: SUBJECT
//! Kind: KIND
//!
//! BODY
//! ```
//!
//! where ADDRESS is the user's email address, or else their phone number.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};

use pinwheel_sdk::{Message, Plugin, PluginError, Transport};
use serde::Deserialize;

/// Settings from `config = { folder = "/path" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Where message files go (created 0700 on first send if missing).
    folder: PathBuf,
}

/// A spool folder.
#[derive(Debug)]
pub struct Spool {
    folder: PathBuf,
}

impl Spool {
    /// A spool writing into `folder` (created 0700 on first send if missing).
    pub fn new_in(folder: impl Into<PathBuf>) -> Spool {
        Spool {
            folder: folder.into(),
        }
    }

    /// The folder messages go to.
    pub fn folder(&self) -> &Path {
        &self.folder
    }
}

/// The address a spool file is addressed to: the email address, else the
/// phone number (blank values count as missing).
fn address(message: &Message) -> Option<&str> {
    [message.email.as_deref(), message.phone.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|a| !a.is_empty())
}

/// The text of a spool file: header lines, a blank line, the body.
pub fn render(message: &Message) -> String {
    format!(
        "To: {}\nUser: {}\nSubject: {}\nKind: {}\n\n{}\n",
        address(message).unwrap_or("").replace('\n', " "),
        message.username.replace('\n', " "),
        message.subject.replace('\n', " "),
        message.kind.as_str(),
        message.body
    )
}

/// Writes `bytes` to `path` atomically with mode 0600: a temporary file in
/// the same folder (name starting with a dot, so readers skip it), fsync,
/// rename, fsync of the folder.
fn write_private_file(folder: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // tempfile creates its files with mode 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(".spool-")
        .suffix(".tmp")
        .tempfile_in(folder)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(dir) = std::fs::File::open(folder) {
        let _ = dir.sync_all();
    }
    Ok(())
}

impl Plugin for Spool {
    const NAME: &'static str = "spool";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config: serde_json::Value) -> Result<Self, PluginError> {
        let settings: Settings = serde_json::from_value(config).map_err(|e| {
            PluginError::config(format!(
                "spool: {e}; expected config = {{ folder = \"/path\" }}"
            ))
        })?;
        if settings.folder.as_os_str().is_empty() {
            return Err(PluginError::config("spool: folder must not be empty"));
        }
        Ok(Spool::new_in(settings.folder))
    }

    /// Healthy when the folder exists (or can be created) and is a folder.
    fn health(&self) -> Result<(), PluginError> {
        self.create_folder()?;
        Ok(())
    }
}

impl Spool {
    fn create_folder(&self) -> Result<(), PluginError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.folder)
            .map_err(|e| {
                PluginError::unavailable(format!("cannot create {}: {e}", self.folder.display()))
            })
    }
}

impl Transport for Spool {
    fn send(&self, message: &Message) -> Result<(), PluginError> {
        if address(message).is_none() {
            return Err(PluginError::no_recipient(format!(
                "user {} has no email address or phone number",
                message.username
            )));
        }
        self.create_folder()?;
        let now = std::time::SystemTime::now();
        let stamp = humantime::format_rfc3339_nanos(now).to_string();
        let stamp: String = stamp.chars().filter(|c| *c != '-' && *c != ':').collect();
        let file = self.folder.join(format!(
            "{stamp}-{}-{:08x}.msg",
            message.kind.as_str(),
            rand::random::<u32>()
        ));
        write_private_file(&self.folder, &file, render(message).as_bytes())
            .map_err(|e| PluginError::unavailable(format!("cannot write {}: {e}", file.display())))
    }
}

pinwheel_sdk::export_plugin!(Transport, Spool);

#[cfg(test)]
mod tests {
    use super::*;
    use pinwheel_sdk::{ErrorKind, MessageKind};

    fn message() -> Message {
        let mut m = Message::new(MessageKind::Pin, "alice");
        m.email = Some("alice@example.org".into());
        m.subject = "Your PIN".into();
        m.body = "Your PIN is 1234".into();
        m
    }

    #[test]
    fn writes_one_private_file_per_message() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(serde_json::json!({"folder": dir.path().join("out")})).unwrap();
        spool.send(&message()).unwrap();
        spool.send(&message()).unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 2);
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert_eq!(
            text,
            "To: alice@example.org\nUser: alice\nSubject: Your PIN\nKind: pin\n\nYour PIN is 1234\n"
        );
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mode = std::fs::metadata(dir.path().join("out"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
        let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(".msg") && name.contains("-pin-"), "{name}");
    }

    #[test]
    fn phone_is_used_without_email() {
        let mut m = message();
        m.email = None;
        m.phone = Some("+15551234".into());
        assert!(render(&m).starts_with("To: +15551234\n"));
        m.email = Some("  ".into());
        assert!(render(&m).starts_with("To: +15551234\n"));
    }

    #[test]
    fn no_recipient_and_unwritable_folder_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new_in(dir.path());
        let mut m = message();
        m.email = None;
        assert_eq!(spool.send(&m).unwrap_err().kind, ErrorKind::NoRecipient);
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let spool = Spool::new_in(blocker.join("sub"));
        let e = spool.send(&message()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.message.contains("cannot create"), "{e}");
        assert!(!e.to_string().contains("1234"));
        assert!(spool.health().is_err());
    }

    #[test]
    fn config_is_checked() {
        let e = Spool::new(serde_json::json!({})).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.message.contains("folder"), "{e}");
        let e = Spool::new(serde_json::json!({"folder": "/x", "typo": 1})).unwrap_err();
        assert!(e.message.contains("typo"), "{e}");
        let e = Spool::new(serde_json::json!({"folder": ""})).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
    }
}
