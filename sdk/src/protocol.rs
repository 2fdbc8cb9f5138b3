//! The JSON that crosses the plugin boundary: one [`Request`] in, one
//! answer out. Pure serde, no `unsafe`; both the SDK's plugin side and the
//! daemon's host use these types, so the two cannot drift.
//!
//! A call returns a status ([`crate::ffi::STATUS_OK`] and friends) and a
//! JSON document: on success the method's result (see [`Request`]), on
//! failure a [`crate::PluginError`].

use serde::{Deserialize, Serialize};

use crate::{DirectoryUser, Message, PluginError};

/// One call to a plugin, as JSON `{"method": "...", ...}`.
///
/// | method | for | success answer |
/// |---|---|---|
/// | `send` | transport | `null` |
/// | `lookup` | directory | a [`DirectoryUser`] or `null` |
/// | `check_password` | directory | `true` / `false` |
/// | `list_users` | directory | an array of [`DirectoryUser`] |
/// | `health` | both | `null` |
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// [`crate::Transport::send`].
    Send {
        /// The message to deliver.
        message: Message,
    },
    /// [`crate::Directory::lookup`].
    Lookup {
        /// The user name as typed.
        username: String,
    },
    /// [`crate::Directory::check_password`].
    CheckPassword {
        /// The user name as typed.
        username: String,
        /// The password (never empty when it reaches the plugin).
        password: String,
    },
    /// [`crate::Directory::list_users`].
    ListUsers,
    /// [`crate::Plugin::health`].
    Health,
}

impl std::fmt::Debug for Request {
    /// Leaves out passwords and message bodies.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Send { message } => f.debug_struct("Send").field("message", message).finish(),
            Request::Lookup { username } => f
                .debug_struct("Lookup")
                .field("username", username)
                .finish(),
            Request::CheckPassword { username, .. } => f
                .debug_struct("CheckPassword")
                .field("username", username)
                .finish_non_exhaustive(),
            Request::ListUsers => f.write_str("ListUsers"),
            Request::Health => f.write_str("Health"),
        }
    }
}

impl Request {
    /// The method name, as in the JSON (for logs).
    pub fn method(&self) -> &'static str {
        match self {
            Request::Send { .. } => "send",
            Request::Lookup { .. } => "lookup",
            Request::CheckPassword { .. } => "check_password",
            Request::ListUsers => "list_users",
            Request::Health => "health",
        }
    }
}

/// Answer of `lookup`.
pub type LookupAnswer = Option<DirectoryUser>;
/// Answer of `check_password`.
pub type CheckPasswordAnswer = bool;
/// Answer of `list_users`.
pub type ListUsersAnswer = Vec<DirectoryUser>;

/// Decodes a plugin's answer: `status` and `json` as returned by the call.
///
/// Errors: the plugin's own [`PluginError`] for [`crate::ffi::STATUS_ERROR`];
/// [`crate::ErrorKind::Internal`] for a panic, an unknown status or JSON that
/// does not have the expected shape.
pub fn decode_answer<T: serde::de::DeserializeOwned>(
    status: i32,
    json: &[u8],
) -> Result<T, PluginError> {
    match status {
        crate::ffi::STATUS_OK => serde_json::from_slice(json).map_err(|e| {
            PluginError::internal(format!("plugin answered with unexpected JSON: {e}"))
        }),
        crate::ffi::STATUS_ERROR => Err(serde_json::from_slice::<PluginError>(json)
            .unwrap_or_else(|e| {
                PluginError::internal(format!("plugin error could not be read: {e}"))
            })),
        crate::ffi::STATUS_PANIC => Err(PluginError::internal(format!(
            "plugin panicked: {}",
            String::from_utf8_lossy(json)
        ))),
        other => Err(PluginError::internal(format!(
            "plugin returned unknown status {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, MessageKind};

    #[test]
    fn requests_have_the_documented_json_shape() {
        let json = serde_json::to_value(Request::CheckPassword {
            username: "alice".into(),
            password: "pw".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"method": "check_password", "username": "alice", "password": "pw"})
        );
        let mut m = Message::new(MessageKind::ProvisionCode, "bob");
        m.email = Some("bob@example.org".into());
        let json = serde_json::to_value(Request::Send { message: m }).unwrap();
        assert_eq!(json["method"], "send");
        assert_eq!(json["message"]["kind"], "provision-code");
        assert_eq!(json["message"]["values"]["username"], "bob");
        assert_eq!(
            serde_json::to_value(Request::ListUsers).unwrap(),
            serde_json::json!({"method": "list_users"})
        );
    }

    #[test]
    fn debug_hides_passwords() {
        let r = Request::CheckPassword {
            username: "alice".into(),
            password: "s3cret-pw".into(),
        };
        assert!(!format!("{r:?}").contains("s3cret"));
    }

    #[test]
    fn answers_decode_by_status() {
        let ok: bool = decode_answer(crate::ffi::STATUS_OK, b"true").unwrap();
        assert!(ok);
        let e = decode_answer::<bool>(
            crate::ffi::STATUS_ERROR,
            br#"{"kind":"unavailable","message":"ldap://x: timeout"}"#,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable);
        let e = decode_answer::<bool>(crate::ffi::STATUS_PANIC, b"boom").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(e.message.contains("boom"));
        let e = decode_answer::<bool>(crate::ffi::STATUS_OK, b"{not json").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Internal);
        let e = decode_answer::<bool>(7, b"").unwrap_err();
        assert!(e.message.contains("unknown status 7"));
    }
}
