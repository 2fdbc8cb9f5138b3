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
    /// `strings` (seed + batch) or `oath` (`seed_sealed` holds the OATH secret).
    pub mode: String,
    /// OATH parameters and progress, for `oath` devices.
    pub oath: Option<OathState>,
}

/// An OATH token's parameters and replay state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OathState {
    /// `totp` or `hotp`.
    pub kind: String,
    /// `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
    /// 6 or 8.
    pub digits: u8,
    /// TOTP period in seconds.
    pub period: u32,
    /// HOTP: the next counter value expected.
    pub counter: u64,
    /// TOTP: the last time step accepted (never accepted again, RFC 6238 §5.2).
    pub last_step: Option<u64>,
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

const COLUMNS: &str = "id, user_id, name, seed_sealed, alphabet, batch, used, created_at, \
                       mode, oath_kind, oath_algorithm, oath_digits, oath_period, oath_counter, oath_last_step";

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
        mode: r.get(8)?,
        oath: match r.get::<_, Option<String>>(9)? {
            Some(kind) => Some(OathState {
                kind,
                algorithm: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
                digits: r.get::<_, Option<u8>>(11)?.unwrap_or(6),
                period: r.get::<_, Option<u32>>(12)?.unwrap_or(30),
                counter: r.get::<_, i64>(13)? as u64,
                last_step: r.get::<_, Option<i64>>(14)?.map(|s| s as u64),
            }),
            None => None,
        },
    })
}

/// The user's device, if any.
pub fn by_user(conn: &Connection, user_id: i64) -> Result<Option<DeviceRow>, StoreError> {
    // Cached: this runs for every authentication.
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM devices WHERE user_id = ?1"))?
        .query_row(params![user_id], from_row)
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
    let oath = device.oath.as_ref();
    conn.execute(
        "INSERT INTO devices(id, user_id, name, token_hash, seed_sealed, alphabet, batch, used, created_at,
                             mode, oath_kind, oath_algorithm, oath_digits, oath_period, oath_counter, oath_last_step)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        params![
            device.id,
            device.user_id,
            device.name,
            token_hash,
            device.seed_sealed,
            device.alphabet,
            device.batch,
            device.used.to_bytes().to_vec(),
            device.created_at,
            device.mode,
            oath.map(|o| o.kind.clone()),
            oath.map(|o| o.algorithm.clone()),
            oath.map(|o| o.digits),
            oath.map(|o| o.period),
            oath.map(|o| o.counter as i64).unwrap_or(0),
            oath.and_then(|o| o.last_step.map(|s| s as i64)),
        ],
    )?;
    Ok(())
}

/// Records the spent indexes of the device's current batch.
pub fn set_used(conn: &Connection, device_id: &str, used: UsedSet) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE devices SET used = ?2 WHERE id = ?1")?
        .execute(params![device_id, used.to_bytes().to_vec()])?;
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

/// Records an OATH token's progress: the next HOTP counter and the last
/// accepted TOTP step.
pub fn set_oath_progress(
    conn: &Connection,
    device_id: &str,
    counter: u64,
    last_step: Option<u64>,
) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE devices SET oath_counter = ?2, oath_last_step = ?3 WHERE id = ?1")?
        .execute(params![
            device_id,
            counter as i64,
            last_step.map(|s| s as i64)
        ])?;
    Ok(())
}

/// Number of provisioned devices.
pub fn count(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT count(*) FROM devices", [], |r| r.get(0))?)
}
