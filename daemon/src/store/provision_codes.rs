//! The `provision_codes` and `provision_requests` tables: at most one
//! outstanding Mobile Provision Code per user, stored only as a keyed hash
//! with its expiry, and the times codes were sent (for the hourly limit).

use rusqlite::{params, Connection, OptionalExtension};

use super::StoreError;

/// An outstanding code as stored.
pub struct ProvisionCodeRow {
    /// Keyed hash of the code ([`crate::secrets::Purpose::ProvisionCode`]).
    pub code_hash: Vec<u8>,
    /// Unix seconds after which the code is refused.
    pub expires_at: i64,
}

/// Stores the user's new code, replacing any earlier one.
pub fn replace(
    conn: &Connection,
    user_id: i64,
    code_hash: &[u8],
    expires_at: i64,
    now: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO provision_codes(user_id, code_hash, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(user_id) DO UPDATE SET code_hash = ?2, expires_at = ?3, created_at = ?4",
        params![user_id, code_hash, expires_at, now],
    )?;
    Ok(())
}

/// Records that a code is being sent to the user now (for the hourly limit)
/// and forgets records older than an hour. Call it in the same transaction as
/// [`requests_since`] so two concurrent requests cannot both pass the limit.
pub fn record_request(conn: &Connection, user_id: i64, now: i64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO provision_requests(user_id, at) VALUES (?1, ?2)",
        params![user_id, now],
    )?;
    conn.execute(
        "DELETE FROM provision_requests WHERE at < ?1",
        params![now - 3600],
    )?;
    Ok(())
}

/// The user's outstanding code, if any, without spending it.
pub fn peek(conn: &Connection, user_id: i64) -> Result<Option<ProvisionCodeRow>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT code_hash, expires_at FROM provision_codes WHERE user_id = ?1",
            params![user_id],
            |r| {
                Ok(ProvisionCodeRow {
                    code_hash: r.get(0)?,
                    expires_at: r.get(1)?,
                })
            },
        )
        .optional()?)
}

/// Puts `previous` back as the user's code if the stored one still has hash
/// `current_hash` (nothing redeemed or replaced it meanwhile); with no
/// previous code, removes the current one.
pub fn restore(
    conn: &Connection,
    user_id: i64,
    current_hash: &[u8],
    previous: Option<&ProvisionCodeRow>,
    now: i64,
) -> Result<(), StoreError> {
    match previous {
        Some(p) => conn.execute(
            "UPDATE provision_codes SET code_hash = ?3, expires_at = ?4, created_at = ?5
             WHERE user_id = ?1 AND code_hash = ?2",
            params![user_id, current_hash, p.code_hash, p.expires_at, now],
        )?,
        None => conn.execute(
            "DELETE FROM provision_codes WHERE user_id = ?1 AND code_hash = ?2",
            params![user_id, current_hash],
        )?,
    };
    Ok(())
}

/// Removes and returns the user's outstanding code: any redeem attempt spends it.
pub fn take(conn: &Connection, user_id: i64) -> Result<Option<ProvisionCodeRow>, StoreError> {
    let row = peek(conn, user_id)?;
    if row.is_some() {
        conn.execute(
            "DELETE FROM provision_codes WHERE user_id = ?1",
            params![user_id],
        )?;
    }
    Ok(row)
}

/// How many codes were sent to the user since `since` (Unix seconds).
pub fn requests_since(conn: &Connection, user_id: i64, since: i64) -> Result<u32, StoreError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM provision_requests WHERE user_id = ?1 AND at >= ?2",
        params![user_id, since],
        |r| r.get(0),
    )?)
}
