//! Leaving root: when pinwheeld is started as root without systemd's
//! `User=` (by hand, from an init script, in a container), it binds its
//! sockets and opens the database and master key first, then hands the
//! folders it writes to `[server] user` and switches to that user and its
//! primary group for good ([`LeaveRoot`]). It never keeps root unless
//! the configuration says `user = "root"` explicitly. This module owns only
//! that switch; it never changes anything outside the paths it is given.

use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, User};

/// Why the daemon could not leave root. Every message starts with
/// "running as root:" and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// `[server] user` names no user on this machine.
    #[error(
        "running as root: user {0} not found; create it (see systemd/pinwheel.sysusers.conf) or set [server] user"
    )]
    UnknownUser(String),
    /// The user database could not be read.
    #[error("running as root: cannot look up user {user}: {source}")]
    Lookup {
        /// The configured user.
        user: String,
        /// What the lookup said.
        source: nix::Error,
    },
    /// A folder or file the daemon writes could not be handed to the user.
    #[error("running as root: cannot give {path} to user {user}: {source}")]
    Chown {
        /// The file or folder.
        path: PathBuf,
        /// The configured user.
        user: String,
        /// What `lchown` said.
        source: std::io::Error,
    },
    /// `setgroups`, `setgid` or `setuid` failed.
    #[error("running as root: cannot switch to user {user} ({step}): {source}")]
    Switch {
        /// The configured user.
        user: String,
        /// The call that failed.
        step: &'static str,
        /// What it said.
        source: nix::Error,
    },
    /// After switching, root could be regained or the ids are not the
    /// user's: refuse to serve rather than run half-privileged.
    #[error("running as root: switched to user {0}, but the process could still become root; refusing to run")]
    Regainable(String),
}

/// What [`LeaveRoot::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privileges {
    /// Not started as root (e.g. systemd's `User=pinwheel`): nothing to drop.
    NotRoot,
    /// Started as root and `[server] user = "root"`: kept root.
    KeptRoot,
    /// Switched to this user.
    Dropped {
        /// The user name.
        user: String,
        /// Its uid.
        uid: u32,
        /// Its primary gid.
        gid: u32,
    },
}

/// The switch away from root, decided before anything is opened (so a
/// missing user stops the start before a file is made) and applied once
/// the sockets, database and key are open ([`LeaveRoot::apply`]).
#[derive(Debug)]
pub struct LeaveRoot {
    /// The configured user name.
    name: String,
    /// `None`: nothing to switch (not root, or root kept on purpose).
    target: Option<User>,
    /// What [`LeaveRoot::apply`] reports when there is nothing to switch.
    otherwise: Privileges,
}

impl LeaveRoot {
    /// Looks up `user` if the process runs as root (effective uid 0);
    /// `"root"` (or another name for uid 0) keeps root.
    ///
    /// Errors: the user does not exist ([`PrivilegeError::UnknownUser`]) or
    /// the user database cannot be read.
    pub fn plan(user: &str) -> Result<LeaveRoot, PrivilegeError> {
        let keep = |otherwise| LeaveRoot {
            name: user.to_string(),
            target: None,
            otherwise,
        };
        if !Uid::effective().is_root() {
            return Ok(keep(Privileges::NotRoot));
        }
        if user == "root" {
            return Ok(keep(Privileges::KeptRoot));
        }
        let entry = User::from_name(user)
            .map_err(|source| PrivilegeError::Lookup {
                user: user.to_string(),
                source,
            })?
            .ok_or_else(|| PrivilegeError::UnknownUser(user.to_string()))?;
        if entry.uid.is_root() {
            return Ok(keep(Privileges::KeptRoot));
        }
        Ok(LeaveRoot {
            name: user.to_string(),
            target: Some(entry),
            otherwise: Privileges::NotRoot,
        })
    }

    /// Gives `owned` (files and folders; missing ones are skipped, folders
    /// are not descended into) to the user and its primary group, then
    /// switches to them for good: supplementary groups set to the primary
    /// group only, then gid, then uid, then checks that root cannot be
    /// regained. glibc applies the switch to every thread of the process.
    /// Returns what was done.
    ///
    /// Errors: see [`PrivilegeError`]; after one the daemon must not serve.
    pub fn apply(self, owned: &[PathBuf]) -> Result<Privileges, PrivilegeError> {
        let Some(entry) = self.target else {
            return Ok(self.otherwise);
        };
        let user = self.name.as_str();
        for path in owned {
            give(path, entry.uid, entry.gid).map_err(|source| PrivilegeError::Chown {
                path: path.clone(),
                user: user.to_string(),
                source,
            })?;
        }
        let switch = |step: &'static str| {
            move |source| PrivilegeError::Switch {
                user: user.to_string(),
                step,
                source,
            }
        };
        nix::unistd::setgroups(&[entry.gid]).map_err(switch("setgroups"))?;
        nix::unistd::setgid(entry.gid).map_err(switch("setgid"))?;
        nix::unistd::setuid(entry.uid).map_err(switch("setuid"))?;
        let ids_are_the_users = Uid::current() == entry.uid
            && Uid::effective() == entry.uid
            && Gid::current() == entry.gid
            && Gid::effective() == entry.gid;
        if !ids_are_the_users || nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err(PrivilegeError::Regainable(user.to_string()));
        }
        Ok(Privileges::Dropped {
            user: user.to_string(),
            uid: entry.uid.as_raw(),
            gid: entry.gid.as_raw(),
        })
    }
}

/// Gives `path` (not following a symbolic link) to `uid`:`gid` unless it is
/// theirs already; a missing path is skipped.
fn give(path: &Path, uid: Uid, gid: Gid) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.uid() == uid.as_raw() && meta.gid() == gid.as_raw() {
        return Ok(());
    }
    std::os::unix::fs::lchown(path, Some(uid.as_raw()), Some(gid.as_raw()))
}

/// The files and folders a daemon with `config` writes after leaving root:
/// the state folder, the database and its WAL/SHM/journal files, the master
/// key file when it lies in the state folder, the spool folder and the
/// messages in it, the runtime folder and the admin socket.
pub fn owned_paths(config: &crate::config::Config) -> Vec<PathBuf> {
    let server = &config.server;
    let mut paths = vec![server.state_dir.clone(), server.runtime_dir.clone()];
    let db = server.database_path();
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.clone().into_os_string();
        name.push(suffix);
        paths.push(PathBuf::from(name));
    }
    paths.push(db);
    let key = server.master_key_path();
    if key.starts_with(&server.state_dir) {
        paths.push(key);
    }
    let spool = config.spool_folder();
    if let Ok(entries) = std::fs::read_dir(&spool) {
        paths.extend(
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                .map(|e| e.path()),
        );
    }
    paths.push(spool);
    paths.push(server.admin_socket_path());
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        let e = PrivilegeError::UnknownUser("pinwheel".into());
        assert_eq!(
            e.to_string(),
            "running as root: user pinwheel not found; create it (see systemd/pinwheel.sysusers.conf) or set [server] user"
        );
    }

    #[test]
    fn owned_paths_cover_the_database_files_and_sockets() {
        let config = crate::config::Config::default();
        let paths = owned_paths(&config);
        for p in [
            "/var/lib/pinwheel",
            "/var/lib/pinwheel/pinwheel.db",
            "/var/lib/pinwheel/pinwheel.db-wal",
            "/var/lib/pinwheel/master.key",
            "/var/lib/pinwheel/spool",
            "/run/pinwheel",
            "/run/pinwheel/admin.sock",
        ] {
            assert!(paths.contains(&PathBuf::from(p)), "{p} in {paths:?}");
        }
    }

    #[test]
    fn a_missing_path_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let me = (Uid::current(), Gid::current());
        give(&dir.path().join("absent"), me.0, me.1).unwrap();
        give(dir.path(), me.0, me.1).unwrap();
    }
}
