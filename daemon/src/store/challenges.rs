//! The `challenges` table: outstanding two-stage RADIUS challenges. A row
//! holds the keyed hash of the State sent in the Access-Challenge, the user,
//! the RADIUS client it was sent to, the expected one-time code (sealed) and
//! the expiry. Taking a row removes it: a State works once.

use rusqlite::{params, Connection, OptionalExtension};

use super::StoreError;

/// An outstanding challenge.
pub struct ChallengeRow {
    /// The user challenged.
    pub user_id: i64,
    /// Name of the RADIUS client the challenge was sent to.
    pub client: String,
    /// The expected code, sealed with [`crate::secrets::Purpose::ChallengeCode`].
    pub otc_sealed: Vec<u8>,
    /// Unix seconds after which the State is refused.
    pub expires_at: i64,
}

/// Stores a new challenge and forgets expired ones.
pub fn insert(
    conn: &Connection,
    state_hash: &[u8],
    row: &ChallengeRow,
    now: i64,
) -> Result<(), StoreError> {
    conn.execute("DELETE FROM challenges WHERE expires_at < ?1", params![now])?;
    conn.execute(
        "INSERT INTO challenges(state_hash, user_id, client, otc_sealed, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![state_hash, row.user_id, row.client, row.otc_sealed, row.expires_at],
    )?;
    Ok(())
}

/// How many unexpired challenges the user has.
pub fn outstanding(conn: &Connection, user_id: i64, now: i64) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM challenges WHERE user_id = ?1 AND expires_at >= ?2",
        params![user_id, now],
        |r| r.get(0),
    )?)
}

/// Removes and returns the challenge with this State hash.
pub fn take(conn: &Connection, state_hash: &[u8]) -> Result<Option<ChallengeRow>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT user_id, client, otc_sealed, expires_at FROM challenges WHERE state_hash = ?1",
        )?
        .query_row(params![state_hash], |r| {
            Ok(ChallengeRow {
                user_id: r.get(0)?,
                client: r.get(1)?,
                otc_sealed: r.get(2)?,
                expires_at: r.get(3)?,
            })
        })
        .optional()?;
    if row.is_some() {
        conn.prepare_cached("DELETE FROM challenges WHERE state_hash = ?1")?
            .execute(params![state_hash])?;
    }
    Ok(row)
}
