//! The `audit` table: one row per decision or change (time, event, user,
//! source, result, reason code). Rows never hold a PIN, code, secret or
//! token: the callers pass only names and reason codes.

use rusqlite::{params, Connection, Row};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// Unix seconds (UTC).
    pub at: i64,
    /// What happened: `auth`, `provision`, `provision-code`, `lock`, `unlock`, `user-add`, ...
    pub event: String,
    /// The user concerned, if any.
    pub username: Option<String>,
    /// Who asked: `radius:NAS@ADDR`, `agent:NAME@ADDR`, `api@ADDR`, `admin`.
    pub source: String,
    /// `pass`, `fail` or `ok`.
    pub result: String,
    /// Reason code such as `wrong_code` or `locked`.
    pub reason: Option<String>,
}

/// Appends a row.
pub fn insert(conn: &Connection, row: &AuditRow) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit(at, event, username, source, result, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![row.at, row.event, row.username, row.source, row.result, row.reason])?;
    Ok(())
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        at: r.get(0)?,
        event: r.get(1)?,
        username: r.get(2)?,
        source: r.get(3)?,
        result: r.get(4)?,
        reason: r.get(5)?,
    })
}

/// The newest `limit` rows at or after `since` (Unix seconds), optionally for
/// one user, oldest first.
pub fn query(
    conn: &Connection,
    username: Option<&str>,
    since: i64,
    limit: u32,
) -> Result<Vec<AuditRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT at, event, username, source, result, reason FROM audit
         WHERE at >= ?1 AND (?2 IS NULL OR username = ?2)
         ORDER BY id DESC LIMIT ?3",
    )?;
    let mut rows = stmt
        .query_map(params![since, username, limit], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.reverse();
    Ok(rows)
}

/// Deletes rows older than `before` (Unix seconds); returns how many.
pub fn prune(conn: &Connection, before: i64) -> Result<usize, StoreError> {
    Ok(conn.execute("DELETE FROM audit WHERE at < ?1", params![before])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn row(at: i64, user: &str) -> AuditRow {
        AuditRow {
            at,
            event: "auth".into(),
            username: Some(user.into()),
            source: "admin".into(),
            result: "fail".into(),
            reason: Some("wrong_code".into()),
        }
    }

    #[test]
    fn insert_query_prune() {
        let store = Store::open_in_memory().unwrap();
        store
            .with(|c| {
                for (at, u) in [(10, "a"), (20, "b"), (30, "a"), (40, "a")] {
                    insert(c, &row(at, u))?;
                }
                let a = query(c, Some("a"), 0, 10)?;
                assert_eq!(a.iter().map(|r| r.at).collect::<Vec<_>>(), [10, 30, 40]);
                let newest = query(c, None, 0, 2)?;
                assert_eq!(newest.iter().map(|r| r.at).collect::<Vec<_>>(), [30, 40]);
                assert_eq!(query(c, None, 25, 10)?.len(), 2);
                assert_eq!(prune(c, 30)?, 2);
                assert_eq!(query(c, None, 0, 10)?.len(), 2);
                Ok(())
            })
            .unwrap();
    }
}
