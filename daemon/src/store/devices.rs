//! The `devices` table: at most one provisioned device per user, with the
//! keyed hash of its token, its sealed seed, the current batch number and the
//! set of spent indexes. The strings themselves are never stored: they are
//! derived from seed and batch when needed.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::StoreError;
use crate::otc::UsedSet;

/// One device as stored.
#[derive(Clone)]
pub struct DeviceRow {
    /// Random public identifier (hex).
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// Name the device gave itself.
    pub name: String,
    /// Seed sealed with [`crate::secrets::Purpose::DeviceSeed`] and the user name.
    pub seed_sealed: Vec<u8>,
    /// Alphabet the strings are drawn from (as in config).
    pub alphabet: String,
    /// Current batch number; strings of earlier batches are invalid.
    pub batch: u32,
    /// Indexes of the current batch already spent.
    pub used: UsedSet,
    /// Unix seconds.
    pub created_at: i64,
}

impl std::fmt::Debug for DeviceRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceRow")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("batch", &self.batch)
            .finish()
    }
}

const COLUMNS: &str = "id, user_id, name, seed_sealed, alphabet, batch, used, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<DeviceRow> {
    let used: Vec<u8> = r.get(6)?;
    let used = UsedSet::from_bytes(&used).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Blob, Box::new(e))
    })?;
    Ok(DeviceRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        seed_sealed: r.get(3)?,
        alphabet: r.get(4)?,
        batch: r.get(5)?,
        used,
        created_at: r.get(7)?,
    })
}

/// The user's device, if any.
pub fn by_user(conn: &Connection, user_id: i64) -> Result<Option<DeviceRow>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM devices WHERE user_id = ?1"),
            params![user_id],
            from_row,
        )
        .optional()?)
}

/// The device whose token has this keyed hash, if any.
pub fn by_token_hash(
    conn: &Connection,
    token_hash: &[u8],
) -> Result<Option<DeviceRow>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM devices WHERE token_hash = ?1"),
            params![token_hash],
            from_row,
        )
        .optional()?)
}

/// Binds a new device to the user, replacing (and so revoking) any earlier
/// device, its token and its strings.
pub fn replace(conn: &Connection, device: &DeviceRow, token_hash: &[u8]) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM devices WHERE user_id = ?1",
        params![device.user_id],
    )?;
    conn.execute(
        "INSERT INTO devices(id, user_id, name, token_hash, seed_sealed, alphabet, batch, used, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            device.id,
            device.user_id,
            device.name,
            token_hash,
            device.seed_sealed,
            device.alphabet,
            device.batch,
            device.used.to_bytes().to_vec(),
            device.created_at
        ],
    )?;
    Ok(())
}

/// Records the spent indexes of the device's current batch.
pub fn set_used(conn: &Connection, device_id: &str, used: UsedSet) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE devices SET used = ?2 WHERE id = ?1",
        params![device_id, used.to_bytes().to_vec()],
    )?;
    Ok(())
}

/// Moves the device to a new batch with nothing spent: every string of the
/// old batch stops working.
pub fn set_batch(conn: &Connection, device_id: &str, batch: u32) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE devices SET batch = ?2, used = ?3 WHERE id = ?1",
        params![device_id, batch, UsedSet::default().to_bytes().to_vec()],
    )?;
    Ok(())
}

/// Number of provisioned devices.
pub fn count(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT count(*) FROM devices", [], |r| r.get(0))?)
}
