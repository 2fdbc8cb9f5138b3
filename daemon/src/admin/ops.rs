//! Operations commands of the admin API: the RADIUS clients with their
//! last-seen times ([`clients`]), an online backup of the database
//! ([`backup`]) and the operational part of `status` ([`status_extra`]:
//! listeners, plugin health, store size).

use crate::daemon::App;

/// One row per RADIUS client in effect: `name`, `address` (CIDR),
/// `last_seen` (Unix seconds of the last request signed with its secret, or
/// `null` if none since start) and `requests` (counted since start).
pub fn clients(app: &App) -> serde_json::Value {
    let (clients, stats) = app.radius_clients.snapshot_with_stats();
    let rows: Vec<serde_json::Value> = clients
        .iter()
        .zip(stats.iter())
        .map(|(c, s)| {
            serde_json::json!({
                "name": c.name,
                "address": c.address.to_string(),
                "last_seen": s.last_seen(),
                "requests": s.requests(),
            })
        })
        .collect();
    serde_json::Value::Array(rows)
}

/// Backs the database up to `path` (absolute) with SQLite's online backup
/// from a read-only connection of its own, so decisions keep committing
/// meanwhile. Answers `{path, bytes, pages, master_key}`: the key file the
/// backup needs (it is not in the database).
///
/// Errors: a relative path, a missing folder, a folder the daemon's user
/// cannot write, a destination that is not a regular file (device node,
/// folder, symlink: refused, never written through), SQLite errors; each
/// names the file.
pub fn backup(app: &App, path: &str) -> Result<serde_json::Value, String> {
    let dest = std::path::Path::new(path);
    let info = crate::store::backup::backup(&app.config.server.database_path(), dest)
        .map_err(|e| e.to_string())?;
    tracing::info!(path = %info.path.display(), bytes = info.bytes, "database backed up");
    Ok(serde_json::json!({
        "path": info.path,
        "bytes": info.bytes,
        "pages": info.pages,
        "master_key": master_key_source(app),
    }))
}

/// Where the master key the daemon uses comes from, for the backup reminder.
fn master_key_source(app: &App) -> String {
    match std::env::var_os("CREDENTIALS_DIRECTORY") {
        Some(dir) if std::path::Path::new(&dir).join("master.key").exists() => {
            "the systemd credential master.key (the packaged unit loads /etc/credstore/pinwheel.master.key)"
                .to_string()
        }
        _ => app.config.server.master_key_path().display().to_string(),
    }
}

/// Size of `path` in bytes, 0 if it does not exist.
fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The operational fields of `status`: `listeners` (one line naming each
/// bound address and the admin socket), `plugins` (`name (kind): health`,
/// from `plugin_rows` as the `plugins` command gives them), `store_bytes`
/// (database plus WAL, bytes) and `database`.
pub fn status_extra(app: &App, plugin_rows: &serde_json::Value) -> serde_json::Value {
    let cfg = &app.config;
    let mut listeners = vec![
        format!("http {}", cfg.http.listen),
        format!("radius udp {}", cfg.radius.listen),
    ];
    if cfg.radius.accounting {
        listeners.push(format!("accounting udp {}", cfg.radius.accounting_listen));
    }
    listeners.push(format!(
        "admin {}",
        cfg.server.admin_socket_path().display()
    ));
    let text = |row: &serde_json::Value, key: &str| {
        row.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string()
    };
    let plugins: Vec<String> = plugin_rows
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    format!(
                        "{} ({}): {}",
                        text(r, "name"),
                        text(r, "kind"),
                        text(r, "health")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let db = cfg.server.database_path();
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let store_bytes = file_size(&db) + file_size(std::path::Path::new(&wal));
    serde_json::json!({
        "listeners": listeners.join(", "),
        "plugins": plugins.join(", "),
        "database": db,
        "store_bytes": store_bytes,
    })
}
