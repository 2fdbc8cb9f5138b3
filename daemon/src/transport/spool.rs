//! The spool transport: each message becomes one file in a folder, holding
//! the recipient, subject and body. Useful on a machine with nothing else
//! installed, for tests, and for handing messages to another program.
//!
//! Files are written atomically (temporary name, fsync, rename) with mode
//! 0600 in a folder created 0700, because they contain codes. Names sort by
//! time: `YYYYmmddTHHMMSS.nnnnnnnnnZ-KIND-RANDOM.msg`.

use std::path::{Path, PathBuf};

use super::{Message, Transport, TransportError};

/// A spool folder.
pub struct SpoolTransport {
    name: String,
    folder: PathBuf,
}

impl SpoolTransport {
    /// A spool transport writing into `folder` (created 0700 on first send if missing).
    pub fn new(name: impl Into<String>, folder: impl Into<PathBuf>) -> Self {
        SpoolTransport {
            name: name.into(),
            folder: folder.into(),
        }
    }

    /// The folder messages go to.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    fn fail(&self, reason: String) -> TransportError {
        TransportError::Failed {
            transport: self.name.clone(),
            reason,
        }
    }
}

/// The text of a spool file: header lines, a blank line, the body.
pub fn render(message: &Message) -> String {
    format!(
        "To: {}\nUser: {}\nSubject: {}\nKind: {}\n\n{}\n",
        message.recipient.replace('\n', " "),
        message.username.replace('\n', " "),
        message.subject.replace('\n', " "),
        message.kind.as_str(),
        message.body
    )
}

impl Transport for SpoolTransport {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&self, message: &Message) -> Result<(), TransportError> {
        use std::os::unix::fs::DirBuilderExt;
        if message.recipient.trim().is_empty() {
            return Err(TransportError::NoRecipient(message.username.clone()));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.folder)
            .map_err(|e| self.fail(format!("cannot create {}: {e}", self.folder.display())))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let stamp = humantime::format_rfc3339_nanos(std::time::UNIX_EPOCH + now).to_string();
        let stamp: String = stamp.chars().filter(|c| *c != '-' && *c != ':').collect();
        let file = self.folder.join(format!(
            "{stamp}-{}-{}.msg",
            message.kind.as_str(),
            hex::encode(crate::secrets::random_bytes(4))
        ));
        crate::secrets::write_private_file(&file, render(message).as_bytes())
            .map_err(|e| self.fail(format!("cannot write {}: {e}", file.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::MessageKind;

    fn message() -> Message {
        Message {
            kind: MessageKind::Pin,
            username: "alice".into(),
            recipient: "alice@example.org".into(),
            subject: "Your PIN".into(),
            body: "Your PIN is 1234".into(),
        }
    }

    #[test]
    fn writes_one_private_file_per_message() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let spool = SpoolTransport::new("spool", dir.path().join("out"));
        spool.send(&message()).unwrap();
        spool.send(&message()).unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 2);
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text
            .starts_with("To: alice@example.org\nUser: alice\nSubject: Your PIN\nKind: pin\n\n"));
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn no_recipient_and_unwritable_folder_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let spool = SpoolTransport::new("spool", dir.path());
        let mut m = message();
        m.recipient = String::new();
        assert!(matches!(
            spool.send(&m),
            Err(TransportError::NoRecipient(_))
        ));
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let spool = SpoolTransport::new("spool", blocker.join("sub"));
        let e = spool.send(&message()).unwrap_err().to_string();
        assert!(e.contains("cannot create"), "{e}");
        assert!(!e.contains("1234"));
    }
}
