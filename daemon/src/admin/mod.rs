//! The admin API: JSON lines over a Unix socket (one [`AdminRequest`] per
//! line in, one [`AdminResponse`] per line out). The socket's file mode
//! (0600) decides who may use it. [`server`] serves it inside the daemon;
//! [`client`] is what `pinwheelctl` uses.
//!
//! Requests may carry a PIN (`user add --pin`); it is never echoed back or
//! logged.

pub mod client;
pub mod ops;
pub mod server;

use serde::{Deserialize, Serialize};

/// Longest request line accepted, in bytes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// One admin command.
#[derive(Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AdminRequest {
    /// Add a local user. With no PIN, a random one is generated and sent.
    UserAdd {
        /// Login name.
        name: String,
        /// Email address.
        email: Option<String>,
        /// Phone number.
        phone: Option<String>,
        /// PIN (4 to 10 digits, per config); generated when absent.
        pin: Option<String>,
        /// Groups, returned to NASes that ask for them.
        #[serde(default)]
        groups: Vec<String>,
    },
    /// Replace a user's groups.
    UserSetGroups {
        /// Login name.
        name: String,
        /// The groups (none clears them).
        groups: Vec<String>,
    },
    /// List users.
    UserList,
    /// Show one user.
    UserShow {
        /// Login name.
        name: String,
    },
    /// Delete a user, their device and provision code.
    UserDelete {
        /// Login name.
        name: String,
    },
    /// Send the user a new Mobile Provision Code.
    ProvisionSend {
        /// Login name.
        name: String,
    },
    /// Lock a user until an administrator unlocks them.
    UserLock {
        /// Login name.
        name: String,
    },
    /// Unlock a user and clear their failure count.
    UserUnlock {
        /// Login name.
        name: String,
    },
    /// Disable a user: every authentication is rejected.
    UserDisable {
        /// Login name.
        name: String,
    },
    /// Enable a disabled user.
    UserEnable {
        /// Login name.
        name: String,
    },
    /// Set a user's PIN; with none, a random one is generated and sent.
    UserSetPin {
        /// Login name.
        name: String,
        /// The new PIN.
        pin: Option<String>,
    },
    /// Set (or with `None` clear) the user's local directory password, checked
    /// in the first leg of two-stage RADIUS logins.
    UserSetPassword {
        /// Login name.
        name: String,
        /// The new password; `None` clears it.
        password: Option<String>,
    },
    /// Set what the user's next provisioning makes: `strings` or `oath`.
    UserSetMode {
        /// Login name.
        name: String,
        /// `strings` or `oath`.
        mode: String,
        /// OATH: `"true"`/`"false"` (PIN then code, or code alone), `"default"`
        /// (follow `[oath] require_pin`); `None` leaves the setting unchanged.
        require_pin: Option<String>,
    },
    /// Resynchronise a user's HOTP token with two consecutive codes.
    TokenResync {
        /// Login name.
        name: String,
        /// The first code the token shows.
        code1: String,
        /// The next code.
        code2: String,
    },
    /// Read the audit trail.
    Audit {
        /// Only this user.
        user: Option<String>,
        /// Only rows newer than this many seconds.
        since_seconds: Option<u64>,
        /// At most this many rows (newest), default 100.
        limit: Option<u32>,
    },
    /// Daemon status.
    Status,
    /// The RADIUS clients with their last request time and request count.
    Clients,
    /// Copy the database with SQLite's online backup to `path` (absolute;
    /// written by the daemon's user, 0600, atomically replacing a file there).
    Backup {
        /// Destination file.
        path: String,
    },
    /// The loaded plugins with their health, checked now.
    Plugins,
    /// Synchronise a directory's users now: update attributes, create
    /// records for new users, disable users gone from the directory.
    DirectorySync {
        /// The `[[directory]]` entry's name.
        name: String,
        /// Apply the sync even if it would disable too many users (see
        /// `directory::sync_refused`).
        #[serde(default)]
        force: bool,
    },
}

impl std::fmt::Debug for AdminRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            AdminRequest::UserAdd { .. } => "user-add",
            AdminRequest::UserList => "user-list",
            AdminRequest::UserShow { .. } => "user-show",
            AdminRequest::UserDelete { .. } => "user-delete",
            AdminRequest::ProvisionSend { .. } => "provision-send",
            AdminRequest::UserLock { .. } => "user-lock",
            AdminRequest::UserUnlock { .. } => "user-unlock",
            AdminRequest::UserDisable { .. } => "user-disable",
            AdminRequest::UserEnable { .. } => "user-enable",
            AdminRequest::UserSetPin { .. } => "user-set-pin",
            AdminRequest::UserSetMode { .. } => "user-set-mode",
            AdminRequest::UserSetPassword { .. } => "user-set-password",
            AdminRequest::UserSetGroups { .. } => "user-set-groups",
            AdminRequest::TokenResync { .. } => "token-resync",
            AdminRequest::Audit { .. } => "audit",
            AdminRequest::Status => "status",
            AdminRequest::Clients => "clients",
            AdminRequest::Backup { .. } => "backup",
            AdminRequest::Plugins => "plugins",
            AdminRequest::DirectorySync { .. } => "directory-sync",
        };
        f.write_str(name)
    }
}

/// The answer to one request: `{"ok": true, "result": ...}` or
/// `{"ok": false, "error": "..."}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AdminResponse {
    /// Whether the command succeeded.
    pub ok: bool,
    /// The command's result (shape depends on the command).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// What went wrong, for the administrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A user as the admin API shows it (no secrets).
#[derive(Debug, Serialize, Deserialize)]
pub struct UserView {
    /// Login name.
    pub name: String,
    /// Directory: `local`, or the `[[directory]]` entry the user came from.
    pub directory: String,
    /// Email address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Whether the user may log in.
    pub enabled: bool,
    /// Whether a PIN is set.
    pub has_pin: bool,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// What the next provisioning makes: `strings` or `oath`.
    #[serde(default)]
    pub mode: String,
    /// Per-user `require_pin` for OATH (`None` = global default).
    #[serde(default)]
    pub require_pin: Option<bool>,
    /// Failed attempts in a row.
    #[serde(default)]
    pub failures: u32,
    /// Locked until (Unix seconds; `i64::MAX` = until unlocked), when locked now.
    #[serde(default)]
    pub locked_until: Option<i64>,
    /// The provisioned device, if any.
    pub device: Option<DeviceView>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// A device as the admin API shows it (no token, no seed).
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceView {
    /// Public device id.
    pub id: String,
    /// Name the device gave.
    pub name: String,
    /// `strings` or `oath`.
    #[serde(default)]
    pub mode: String,
    /// OATH: `totp` or `hotp`.
    #[serde(default)]
    pub oath_kind: Option<String>,
    /// Current batch number.
    pub batch: u32,
    /// Strings left unspent in the batch.
    pub strings_left: u32,
    /// Provisioning time, Unix seconds.
    pub created_at: i64,
}
