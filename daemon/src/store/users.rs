//! The `users` table: name, contact addresses for transports, enabled flag and
//! the sealed PIN. Never holds a PIN in clear.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::StoreError;

/// One user as stored.
#[derive(Clone)]
pub struct UserRow {
    /// Row id.
    pub id: i64,
    /// Login name (as NASes send it in User-Name).
    pub name: String,
    /// Directory the user comes from (`local` for now).
    pub directory: String,
    /// Email address for the email/spool transport.
    pub email: Option<String>,
    /// Phone number for SMS transports.
    pub phone: Option<String>,
    /// Disabled users are always rejected.
    pub enabled: bool,
    /// The PIN sealed with [`crate::secrets::Purpose::Pin`] and the user name.
    pub pin_sealed: Option<Vec<u8>>,
    /// Unix seconds.
    pub created_at: i64,
    /// `strings` or `oath`: what the next provisioning makes.
    pub mode: String,
    /// Whether the user types PIN then code in OATH mode; `None` follows `[oath] require_pin`.
    pub require_pin: Option<bool>,
    /// Failed attempts in a row.
    pub failures: u32,
    /// Locked until this Unix second ([`LOCKED_UNTIL_UNLOCKED`] = until an admin unlocks).
    pub locked_until: Option<i64>,
    /// Groups, returned to NASes that ask for them.
    pub groups: Vec<String>,
}

/// `locked_until` value meaning "until an administrator unlocks".
pub const LOCKED_UNTIL_UNLOCKED: i64 = i64::MAX;

impl UserRow {
    /// Whether the user is locked at `now` (Unix seconds).
    pub fn is_locked(&self, now: i64) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("has_pin", &self.pin_sealed.is_some())
            .finish()
    }
}

const COLUMNS: &str = "id, name, directory, email, phone, enabled, pin_sealed, created_at, \
                       mode, require_pin, failures, locked_until, groups";

fn from_row(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        name: r.get(1)?,
        directory: r.get(2)?,
        email: r.get(3)?,
        phone: r.get(4)?,
        enabled: r.get(5)?,
        pin_sealed: r.get(6)?,
        created_at: r.get(7)?,
        mode: r.get(8)?,
        require_pin: r.get(9)?,
        failures: r.get(10)?,
        locked_until: r.get(11)?,
        groups: split_groups(&r.get::<_, String>(12)?),
    })
}

/// Inserts a new local user. Errors: [`StoreError::Duplicate`] if the name exists.
pub fn insert(
    conn: &Connection,
    name: &str,
    email: Option<&str>,
    phone: Option<&str>,
    pin_sealed: &[u8],
    now: i64,
) -> Result<i64, StoreError> {
    let result = conn.execute(
        "INSERT INTO users(name, email, phone, pin_sealed, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![name, email, phone, pin_sealed, now],
    );
    match result {
        Ok(_) => Ok(conn.last_insert_rowid()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::Duplicate(format!("user {name}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Looks a user up by name (exact, case-sensitive).
pub fn by_name(conn: &Connection, name: &str) -> Result<Option<UserRow>, StoreError> {
    // Cached: this runs for every authentication.
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE name = ?1"))?
        .query_row(params![name], from_row)
        .optional()?)
}

/// Every user, ordered by name.
pub fn list(conn: &Connection) -> Result<Vec<UserRow>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM users ORDER BY name"))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Deletes a user and (by cascade) their device and provision code.
/// Errors: [`StoreError::NotFound`].
pub fn delete(conn: &Connection, name: &str) -> Result<(), StoreError> {
    match conn.execute("DELETE FROM users WHERE name = ?1", params![name])? {
        0 => Err(StoreError::NotFound(format!("user {name}"))),
        _ => Ok(()),
    }
}

fn update_one(
    conn: &Connection,
    name: &str,
    sql: &str,
    value: &dyn rusqlite::ToSql,
) -> Result<(), StoreError> {
    match conn.execute(sql, params![name, value])? {
        0 => Err(StoreError::NotFound(format!("user {name}"))),
        _ => Ok(()),
    }
}

/// Enables or disables a user (an administrator's decision: a directory
/// sync will not enable a user disabled this way). Errors:
/// [`StoreError::NotFound`].
pub fn set_enabled(conn: &Connection, name: &str, enabled: bool) -> Result<(), StoreError> {
    update_one(
        conn,
        name,
        "UPDATE users SET enabled = ?2, directory_disabled = 0 WHERE name = ?1",
        &enabled,
    )
}

/// Locks a user until `until` (Unix seconds), or unlocks (`None`, which also
/// clears the failure count). Errors: [`StoreError::NotFound`].
pub fn set_lock(conn: &Connection, name: &str, until: Option<i64>) -> Result<(), StoreError> {
    update_one(
        conn,
        name,
        "UPDATE users SET locked_until = ?2, failures = CASE WHEN ?2 IS NULL THEN 0 ELSE failures END WHERE name = ?1",
        &until,
    )
}

/// Replaces the sealed PIN. Errors: [`StoreError::NotFound`].
pub fn set_pin(conn: &Connection, name: &str, pin_sealed: &[u8]) -> Result<(), StoreError> {
    update_one(
        conn,
        name,
        "UPDATE users SET pin_sealed = ?2 WHERE name = ?1",
        &pin_sealed,
    )
}

/// Sets the mode (`strings` or `oath`) the next provisioning makes.
pub fn set_mode(conn: &Connection, name: &str, mode: &str) -> Result<(), StoreError> {
    update_one(
        conn,
        name,
        "UPDATE users SET mode = ?2 WHERE name = ?1",
        &mode,
    )
}

/// Sets (or with `None` clears) the local directory password, an Argon2id
/// PHC string. Errors: [`StoreError::NotFound`].
pub fn set_password_hash(
    conn: &Connection,
    name: &str,
    hash: Option<&str>,
) -> Result<(), StoreError> {
    update_one(
        conn,
        name,
        "UPDATE users SET password_hash = ?2 WHERE name = ?1",
        &hash,
    )
}

/// The local directory password hash of a user, if set.
pub fn password_hash(conn: &Connection, user_id: i64) -> Result<Option<String>, StoreError> {
    Ok(conn.query_row(
        "SELECT password_hash FROM users WHERE id = ?1",
        params![user_id],
        |r| r.get(0),
    )?)
}

/// Replaces the user's groups. Errors: [`StoreError::NotFound`].
pub fn set_groups(conn: &Connection, name: &str, groups: &[String]) -> Result<(), StoreError> {
    let text = groups.join(",");
    update_one(
        conn,
        name,
        "UPDATE users SET groups = ?2 WHERE name = ?1",
        &text,
    )
}

/// Splits the stored comma-separated groups.
pub fn split_groups(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect()
}

/// Sets the per-user `require_pin` (None = follow the global setting).
pub fn set_require_pin(
    conn: &Connection,
    name: &str,
    require: Option<bool>,
) -> Result<(), StoreError> {
    update_one(
        conn,
        name,
        "UPDATE users SET require_pin = ?2 WHERE name = ?1",
        &require,
    )
}

/// Counts one failed attempt and returns the number in a row.
pub fn record_failure(conn: &Connection, user_id: i64) -> Result<u32, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE users SET failures = failures + 1 WHERE id = ?1 RETURNING failures",
        )?
        .query_row(params![user_id], |r| r.get(0))?)
}

/// Locks the user with this id until `until` (Unix seconds).
pub fn set_lock_by_id(conn: &Connection, user_id: i64, until: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE users SET locked_until = ?2 WHERE id = ?1")?
        .execute(params![user_id, until])?;
    Ok(())
}

/// Clears the failure count after a success.
pub fn reset_failures(conn: &Connection, user_id: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE users SET failures = 0 WHERE id = ?1 AND failures != 0")?
        .execute(params![user_id])?;
    Ok(())
}

/// A user of a directory plugin as the sync sees it: the attributes the
/// directory owns, and whether the directory disabled the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryMember {
    /// Row id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// Email address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// Whether the user may log in.
    pub enabled: bool,
    /// Whether a sync disabled the user (gone from or disabled in the
    /// directory); only such users are enabled again by a sync.
    pub directory_disabled: bool,
}

/// Every user whose `directory` is `directory` (never local users when
/// `directory` is a plugin's name), ordered by name.
pub fn members_of(conn: &Connection, directory: &str) -> Result<Vec<DirectoryMember>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, name, email, phone, groups, enabled, directory_disabled
         FROM users WHERE directory = ?1 ORDER BY name",
    )?;
    let rows = stmt.query_map(params![directory], |r| {
        Ok(DirectoryMember {
            id: r.get(0)?,
            name: r.get(1)?,
            email: r.get(2)?,
            phone: r.get(3)?,
            groups: split_groups(&r.get::<_, String>(4)?),
            enabled: r.get(5)?,
            directory_disabled: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Attributes a directory gives a user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryAttributes {
    /// Email address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// Whether the directory lets the user log in.
    pub enabled: bool,
}

/// Inserts a user found in directory `directory`, with no PIN (one is
/// issued at first use). A user the directory marks disabled is stored
/// disabled by the directory. Errors: [`StoreError::Duplicate`].
pub fn insert_from_directory(
    conn: &Connection,
    name: &str,
    directory: &str,
    attributes: &DirectoryAttributes,
    now: i64,
) -> Result<i64, StoreError> {
    let result = conn.execute(
        "INSERT INTO users(name, directory, email, phone, groups, enabled, directory_disabled,
                           created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        params![
            name,
            directory,
            attributes.email,
            attributes.phone,
            attributes.groups.join(","),
            attributes.enabled,
            !attributes.enabled,
            now
        ],
    );
    match result {
        Ok(_) => Ok(conn.last_insert_rowid()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::Duplicate(format!("user {name}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes a directory user's attributes, address and groups as given;
/// `enabled` and `directory_disabled` as the sync decided.
pub fn update_from_directory(
    conn: &Connection,
    id: i64,
    attributes: &DirectoryAttributes,
    directory_disabled: bool,
    now: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE users SET email = ?2, phone = ?3, groups = ?4, enabled = ?5,
                          directory_disabled = ?6, updated_at = ?7
         WHERE id = ?1",
        params![
            id,
            attributes.email,
            attributes.phone,
            attributes.groups.join(","),
            attributes.enabled,
            directory_disabled,
            now
        ],
    )?;
    Ok(())
}

/// Sets the sealed PIN of the user with this id if the user has none;
/// `false` when another PIN was set meanwhile.
pub fn set_pin_if_none(
    conn: &Connection,
    user_id: i64,
    pin_sealed: &[u8],
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE users SET pin_sealed = ?2 WHERE id = ?1 AND pin_sealed IS NULL",
        params![user_id, pin_sealed],
    )? == 1)
}

/// Clears the sealed PIN of the user with this id if it is still
/// `pin_sealed` (a generated PIN that could not be sent).
pub fn clear_pin_if(conn: &Connection, user_id: i64, pin_sealed: &[u8]) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE users SET pin_sealed = NULL WHERE id = ?1 AND pin_sealed = ?2",
        params![user_id, pin_sealed],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn directory_users_are_kept_apart() {
        let store = Store::open_in_memory().unwrap();
        store
            .with(|c| {
                insert(c, "zed", Some("z@example.org"), None, b"sealed", 5)?;
                let attrs = DirectoryAttributes {
                    email: Some("a@corp.example".into()),
                    phone: None,
                    groups: vec!["staff".into(), "vpn".into()],
                    enabled: true,
                };
                let id = insert_from_directory(c, "alice", "corp", &attrs, 6)?;
                assert!(matches!(
                    insert_from_directory(c, "zed", "corp", &attrs, 6),
                    Err(StoreError::Duplicate(_))
                ));
                let alice = by_name(c, "alice")?.unwrap();
                assert_eq!(alice.directory, "corp");
                assert!(alice.pin_sealed.is_none() && alice.enabled);
                assert_eq!(alice.groups, ["staff", "vpn"]);
                assert_eq!(by_name(c, "zed")?.unwrap().directory, "local");
                let members = members_of(c, "corp")?;
                assert_eq!(members.len(), 1);
                assert_eq!(members[0].id, id);
                assert!(!members[0].directory_disabled);
                let off = DirectoryAttributes {
                    enabled: false,
                    ..attrs
                };
                update_from_directory(c, id, &off, true, 7)?;
                let m = &members_of(c, "corp")?[0];
                assert!(!m.enabled && m.directory_disabled);
                // An administrator's enable clears the directory's mark.
                set_enabled(c, "alice", true)?;
                assert!(!members_of(c, "corp")?[0].directory_disabled);
                assert!(set_pin_if_none(c, id, b"one")?);
                assert!(!set_pin_if_none(c, id, b"two")?);
                clear_pin_if(c, id, b"two")?;
                assert!(by_name(c, "alice")?.unwrap().pin_sealed.is_some());
                clear_pin_if(c, id, b"one")?;
                assert!(by_name(c, "alice")?.unwrap().pin_sealed.is_none());
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn insert_find_list_delete() {
        let store = Store::open_in_memory().unwrap();
        store
            .with(|c| {
                insert(c, "bob", Some("b@example.org"), None, b"sealed", 5)?;
                insert(c, "alice", None, Some("+100"), b"sealed", 5)?;
                assert!(matches!(
                    insert(c, "bob", None, None, b"x", 6),
                    Err(StoreError::Duplicate(_))
                ));
                let bob = by_name(c, "bob")?.unwrap();
                assert_eq!(bob.email.as_deref(), Some("b@example.org"));
                assert!(bob.enabled);
                let names: Vec<_> = list(c)?.into_iter().map(|u| u.name).collect();
                assert_eq!(names, ["alice", "bob"]);
                assert_eq!(record_failure(c, bob.id)?, 1);
                assert_eq!(record_failure(c, bob.id)?, 2);
                set_lock_by_id(c, bob.id, 100)?;
                let locked = by_name(c, "bob")?.unwrap();
                assert!(locked.is_locked(99) && !locked.is_locked(100));
                assert_eq!(locked.failures, 2);
                set_lock(c, "bob", None)?;
                let unlocked = by_name(c, "bob")?.unwrap();
                assert!(!unlocked.is_locked(0));
                assert_eq!(unlocked.failures, 0, "unlock clears the count");
                set_enabled(c, "bob", false)?;
                assert!(!by_name(c, "bob")?.unwrap().enabled);
                assert!(matches!(
                    set_enabled(c, "zed", true),
                    Err(StoreError::NotFound(_))
                ));
                delete(c, "bob")?;
                assert!(by_name(c, "bob")?.is_none());
                assert!(matches!(delete(c, "bob"), Err(StoreError::NotFound(_))));
                Ok(())
            })
            .unwrap();
    }
}
