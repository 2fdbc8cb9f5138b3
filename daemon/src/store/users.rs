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

const COLUMNS: &str = "id, name, directory, email, phone, enabled, pin_sealed, created_at";

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
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM users WHERE name = ?1"),
            params![name],
            from_row,
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

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
                delete(c, "bob")?;
                assert!(by_name(c, "bob")?.is_none());
                assert!(matches!(delete(c, "bob"), Err(StoreError::NotFound(_))));
                Ok(())
            })
            .unwrap();
    }
}
