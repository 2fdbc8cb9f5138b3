//! Serves the admin API on a Unix socket inside the daemon. Each connection
//! may send several request lines; each is answered by one response line.
//! Commands run on the blocking pool. A malformed line gets an error
//! response, never a crash; a line longer than [`super::MAX_REQUEST_BYTES`]
//! closes the connection.

use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::{AdminRequest, AdminResponse, DeviceView, UserView};
use crate::audit::{self, Outcome, Source};
use crate::daemon::App;
use crate::otc::{Pin, BATCH_SIZE};
use crate::provision;
use crate::secrets::Purpose;
use crate::store::{audit as audit_store, devices, users, StoreError};
use crate::transport::{Recipient, SendError};
use pinwheel_sdk::{Message, MessageKind};

/// Most admin connections open at once.
const MAX_CONNECTIONS: usize = 32;
/// Longest an admin connection may stay open.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Binds the admin socket at `path` with mode 0600, replacing a stale socket
/// file left by a daemon that died. Refuses if another daemon answers on it.
///
/// Errors: the folder cannot be created, another daemon is running, bind fails.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another pinwheeld is already serving this admin socket",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Accepts admin connections until `shutdown` turns true.
pub async fn serve(
    app: Arc<App>,
    listener: UnixListener,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        tracing::warn!("admin connection refused: {MAX_CONNECTIONS} already open");
                        continue;
                    };
                    let app = app.clone();
                    tokio::spawn(async move {
                        // An idle connection is closed after IDLE_TIMEOUT.
                        let _ = tokio::time::timeout(IDLE_TIMEOUT, handle_connection(app, stream)).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    tracing::warn!("admin socket accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = crate::system::shutdown_requested(&mut shutdown) => break,
        }
    }
}

async fn handle_connection(app: Arc<App>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    // Bound what one connection may send in all (16 requests of the largest size).
    let mut lines = BufReader::new(read.take(super::MAX_REQUEST_BYTES as u64 * 16));
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) => return,
            Ok(n) if n > super::MAX_REQUEST_BYTES => {
                let _ = write_response(&mut write, &failure("request too long".into())).await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let _ =
                    write_response(&mut write, &failure(format!("unreadable request: {e}"))).await;
                return;
            }
        }
        let response = match serde_json::from_str::<AdminRequest>(line.trim()) {
            Ok(request) => {
                tracing::info!(command = ?request, "admin command");
                let app = app.clone();
                tokio::task::spawn_blocking(move || execute(&app, request))
                    .await
                    .unwrap_or_else(|_| failure("internal error".into()))
            }
            // serde's message may quote a value (a PIN sent as a number): say
            // only where the problem is.
            Err(e) => failure(format!(
                "malformed admin request (line {}, column {}): pinwheelctl and pinwheeld versions may differ",
                e.line(),
                e.column()
            )),
        };
        if write_response(&mut write, &response).await.is_err() {
            return;
        }
    }
}

async fn write_response(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    response: &AdminResponse,
) -> std::io::Result<()> {
    let mut text = serde_json::to_string(response).unwrap_or_else(|_| {
        "{\"ok\":false,\"error\":\"response could not be encoded\"}".to_string()
    });
    text.push('\n');
    write.write_all(text.as_bytes()).await
}

fn failure(error: String) -> AdminResponse {
    AdminResponse {
        ok: false,
        result: None,
        error: Some(error),
    }
}

fn success(result: serde_json::Value) -> AdminResponse {
    AdminResponse {
        ok: true,
        result: Some(result),
        error: None,
    }
}

/// Runs one admin command. Every failure becomes an error response.
pub fn execute(app: &App, request: AdminRequest) -> AdminResponse {
    let outcome = match request {
        AdminRequest::UserAdd {
            name,
            email,
            phone,
            pin,
            groups,
        } => valid_groups(&groups).and_then(|()| user_add(app, &name, email, phone, pin, &groups)),
        AdminRequest::UserSetGroups { name, groups } => valid_groups(&groups).and_then(|()| {
            change(app, "set-groups", &name, |tx| {
                users::set_groups(tx, &name, &groups)
            })
            .map(|()| serde_json::json!({"user": name, "groups": groups}))
        }),
        AdminRequest::UserList => user_list(app),
        AdminRequest::UserShow { name } => user_show(app, &name),
        AdminRequest::UserDelete { name } => {
            change(app, "user-delete", &name, |tx| users::delete(tx, &name))
                .map(|()| serde_json::json!({"deleted": name}))
        }
        AdminRequest::ProvisionSend { name } => provision::send_code(app, &name, &Source::Admin)
            .map(|transport| serde_json::json!({"sent": name, "transport": transport}))
            .map_err(|e| e.to_string()),
        AdminRequest::UserLock { name } => change(app, "lock", &name, |tx| {
            users::set_lock(tx, &name, Some(users::LOCKED_UNTIL_UNLOCKED))
        })
        .map(|()| serde_json::json!({"locked": name})),
        AdminRequest::UserUnlock { name } => {
            change(app, "unlock", &name, |tx| users::set_lock(tx, &name, None))
                .map(|()| serde_json::json!({"unlocked": name}))
        }
        AdminRequest::UserDisable { name } => change(app, "disable", &name, |tx| {
            users::set_enabled(tx, &name, false)
        })
        .map(|()| serde_json::json!({"disabled": name})),
        AdminRequest::UserEnable { name } => change(app, "enable", &name, |tx| {
            users::set_enabled(tx, &name, true)
        })
        .map(|()| serde_json::json!({"enabled": name})),
        AdminRequest::UserSetPin { name, pin } => user_set_pin(app, &name, pin),
        AdminRequest::UserSetPassword { name, password } => {
            let hash = match password.as_deref() {
                Some("") => {
                    Err("the password must not be empty (to clear it, use --clear)".to_string())
                }
                Some(p) => crate::auth::challenge::hash_password(p).map(Some),
                None => Ok(None),
            };
            hash.and_then(|hash| {
                let cleared = hash.is_none();
                change(app, "set-password", &name, |tx| {
                    users::set_password_hash(tx, &name, hash.as_deref())
                })
                .map(|()| serde_json::json!({"user": name, "password": if cleared { "cleared" } else { "set" }}))
            })
        }
        AdminRequest::UserSetMode {
            name,
            mode,
            require_pin,
        } => {
            let require_pin = match require_pin.as_deref() {
                None => Ok(None),
                Some("true") => Ok(Some(Some(true))),
                Some("false") => Ok(Some(Some(false))),
                Some("default") => Ok(Some(None)),
                Some(other) => Err(format!("require_pin {other:?}: use true, false or default")),
            };
            if mode != "strings" && mode != "oath" {
                Err(format!("unknown mode {mode:?}: use strings or oath"))
            } else if let Err(e) = require_pin {
                Err(e)
            } else {
                let require_pin = require_pin.unwrap_or(None);
                change(app, "set-mode", &name, |tx| {
                    users::set_mode(tx, &name, &mode)?;
                    match require_pin {
                        Some(r) => users::set_require_pin(tx, &name, r),
                        None => Ok(()),
                    }
                })
                .map(|()| serde_json::json!({"user": name, "mode": mode}))
            }
        }
        AdminRequest::TokenResync { name, code1, code2 } => {
            token_resync(app, &name, &code1, &code2)
        }
        AdminRequest::Audit {
            user,
            since_seconds,
            limit,
        } => {
            let since = since_seconds
                .map(|s| crate::unix_now().saturating_sub(i64::try_from(s).unwrap_or(i64::MAX)))
                .unwrap_or(0);
            let limit = limit.unwrap_or(100).clamp(1, 100_000);
            app.store
                .with(|c| audit_store::query(c, user.as_deref(), since, limit))
                .map_err(|e| e.to_string())
                .and_then(|rows| serde_json::to_value(rows).map_err(|e| e.to_string()))
        }
        AdminRequest::Status => status(app),
        AdminRequest::Clients => Ok(crate::admin::ops::clients(app)),
        AdminRequest::Backup { path } => crate::admin::ops::backup(app, &path),
        AdminRequest::Plugins => Ok(plugins(app)),
        AdminRequest::DirectorySync { name, force } => crate::directory::sync(app, &name, force)
            .map_err(|e| e.to_string())
            .and_then(|report| serde_json::to_value(report).map_err(|e| e.to_string())),
    };
    match outcome {
        Ok(value) => success(value),
        Err(e) => failure(e),
    }
}

/// Runs an admin change on user `name` and its audit row in one transaction,
/// then emits the row. Store errors become the admin's error message.
fn change(
    app: &App,
    event: &str,
    name: &str,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<(), StoreError>,
) -> Result<(), String> {
    let row = audit::row(
        crate::unix_now(),
        event,
        Some(name),
        &Source::Admin,
        Outcome::Ok,
        None,
    );
    app.store
        .transaction(|tx| {
            f(tx)?;
            audit_store::insert(tx, &row)
        })
        .map_err(|e| e.to_string())?;
    app.audit.emit(&[row]);
    Ok(())
}

fn user_set_pin(app: &App, name: &str, pin: Option<String>) -> Result<serde_json::Value, String> {
    let (pin, generated) = parse_or_generate_pin(app, pin)?;
    let sealed = app.key.seal(Purpose::Pin, name, pin.as_str().as_bytes());
    let user = app
        .store
        .with(|c| users::by_name(c, name))?
        .ok_or_else(|| format!("user {name} not found"))?;
    change(app, "set-pin", name, |tx| {
        users::set_pin(tx, name, &sealed)?;
        Ok(())
    })?;
    if generated {
        send_pin(app, &Recipient::of(&user), &pin).map_err(|e| {
            format!(
                "PIN of {name} changed, but the new PIN could not be sent: {e}; set one with --pin"
            )
        })?;
    }
    Ok(serde_json::json!({
        "user": name,
        "pin": if generated { "generated and sent" } else { "set" },
    }))
}

fn token_resync(
    app: &App,
    name: &str,
    code1: &str,
    code2: &str,
) -> Result<serde_json::Value, String> {
    let result = app.store.transaction(|tx| {
        let user = users::by_name(tx, name)?.ok_or_else(|| StoreError::NotFound(format!("user {name}")))?;
        let device = devices::by_user(tx, user.id)?
            .filter(|d| d.mode == "oath")
            .ok_or_else(|| StoreError::NotFound(format!("OATH token of user {name}")))?;
        let (Some(state), Some((params, secret))) = (device.oath.clone(), crate::auth::open_oath(app, &user, &device)) else {
            return Err(StoreError::Corrupt(format!("OATH token of user {name}")));
        };
        if params.kind != crate::otc::oath::OathKind::Hotp {
            return Ok(Err("the token is TOTP (time-based): it needs no resync; check the device clock".to_string()));
        }
        match crate::otc::oath::resync_hotp(&secret, &params, code1, code2, state.counter, 1000) {
            Some(next) => {
                devices::set_oath_progress(tx, &device.id, next, state.last_step)?;
                let row = audit::row(crate::unix_now(), "token-resync", Some(name), &Source::Admin, Outcome::Ok, None);
                audit_store::insert(tx, &row)?;
                Ok(Ok((next, row)))
            }
            None => Ok(Err("the two codes are not consecutive codes of this token within the next 1000; nothing changed".to_string())),
        }
    }).map_err(|e| e.to_string())?;
    let (next, row) = match result {
        Ok(ok) => ok,
        Err(e) => {
            let row = audit::row(
                crate::unix_now(),
                "token-resync",
                Some(name),
                &Source::Admin,
                Outcome::Fail,
                Some("codes_not_found"),
            );
            let _ = app.store.with(|c| audit_store::insert(c, &row));
            app.audit.emit(&[row]);
            return Err(e);
        }
    };
    app.audit.emit(&[row]);
    Ok(serde_json::json!({"user": name, "next_counter": next}))
}

fn valid_groups(groups: &[String]) -> Result<(), String> {
    for g in groups {
        if g.is_empty()
            || g.len() > 64
            || g.contains(',')
            || g.contains(';')
            || g.chars().any(char::is_control)
        {
            return Err(format!(
                "bad group name {g:?}: 1 to 64 characters, no commas, semicolons or control characters"
            ));
        }
    }
    Ok(())
}

fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("user name must be 1 to 253 bytes".into());
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("user name must not contain spaces or control characters".into());
    }
    Ok(())
}

/// Parses the admin's PIN, or generates one (`true` = generated).
fn parse_or_generate_pin(app: &App, pin: Option<String>) -> Result<(Pin, bool), String> {
    let cfg = &app.config.pin;
    match pin {
        Some(p) => Pin::parse(&p, cfg.min_length, cfg.max_length)
            .map(|p| (p, false))
            .map_err(|_| {
                format!(
                    "bad PIN: must be {} to {} digits",
                    cfg.min_length, cfg.max_length
                )
            }),
        None => Ok((Pin::random(cfg.length), true)),
    }
}

/// Sends a generated PIN over the user's transport; returns the transport's name.
pub(crate) fn send_pin(app: &App, user: &Recipient, pin: &Pin) -> Result<String, SendError> {
    let mut message = Message::new(MessageKind::Pin, user.username.clone());
    message.subject = "Your Pinwheel PIN".to_string();
    message.body = format!(
        "Your Pinwheel PIN is: {}\nKeep it secret. You combine it with the security strings on your phone to log in.\n",
        pin.as_str()
    );
    message
        .values
        .insert("pin".into(), pin.as_str().to_string());
    app.transports.send_blocking(user, message)
}

fn user_add(
    app: &App,
    name: &str,
    email: Option<String>,
    phone: Option<String>,
    pin: Option<String>,
    groups: &[String],
) -> Result<serde_json::Value, String> {
    valid_name(name)?;
    let email = email
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty());
    let phone = phone
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty());
    if let Some(e) = &email {
        let ok = e
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
            && !e.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return Err(format!("bad email address {e:?}"));
        }
    }
    if let Some(p) = &phone {
        let digits = p.strip_prefix('+').unwrap_or(p);
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() > 20 {
            return Err(format!(
                "bad phone number {p:?}: digits with an optional leading +"
            ));
        }
    }
    if email.is_none() && phone.is_none() {
        return Err(
            "a user needs --email or --phone: codes are sent only to the user's own address".into(),
        );
    }
    let (pin, generated) = parse_or_generate_pin(app, pin)?;
    let sealed = app.key.seal(Purpose::Pin, name, pin.as_str().as_bytes());
    let now = crate::unix_now();
    let row = audit::row(
        now,
        "user-add",
        Some(name),
        &Source::Admin,
        Outcome::Ok,
        None,
    );
    let recipient = Recipient {
        username: name.to_string(),
        email: email.clone(),
        phone: phone.clone(),
        groups: groups.to_vec(),
    };
    let transport = app
        .transports
        .choose(&recipient)
        .map(|t| t.name().to_string());
    if generated && transport.is_none() {
        return Err(format!(
            "user {name} not added: no configured transport can reach the user's address to send the generated PIN; set one with --pin"
        ));
    }
    // Insert, then (for a generated PIN) send outside any store transaction,
    // so a slow or hung transport never holds the store; if the PIN cannot be
    // sent the user is removed again, so no one holds a PIN nobody knows.
    app.store.transaction(|tx| {
        users::insert(tx, name, email.as_deref(), phone.as_deref(), &sealed, now).map_err(|e| {
            match e {
                StoreError::Duplicate(_) => format!("user {name} already exists"),
                other => other.to_string(),
            }
        })?;
        users::set_groups(tx, name, groups)?;
        Ok::<_, String>(())
    })?;
    let transport = if generated {
        match send_pin(app, &recipient, &pin) {
            Ok(sent_by) => Some(sent_by),
            Err(e) => {
                if let Err(undo) = app.store.transaction(|tx| users::delete(tx, name)) {
                    tracing::error!(user = ?name, "user added but its unsent PIN could not be undone: {undo}");
                }
                return Err(format!(
                    "user {name} not added: the generated PIN could not be sent: {e}"
                ));
            }
        }
    } else {
        transport
    };
    app.store.transaction(|tx| audit_store::insert(tx, &row))?;
    app.audit.emit(&[row]);
    tracing::info!(user = ?name, pin_generated = generated, "user added");
    Ok(serde_json::json!({
        "added": name,
        "pin": if generated { "generated and sent" } else { "set" },
        "transport": transport,
    }))
}

impl From<StoreError> for String {
    fn from(e: StoreError) -> String {
        e.to_string()
    }
}

fn view(
    app: &App,
    conn: &rusqlite::Connection,
    user: users::UserRow,
) -> Result<UserView, StoreError> {
    let _ = app;
    let now = crate::unix_now();
    let locked_until = user.locked_until.filter(|_| user.is_locked(now));
    let device = devices::by_user(conn, user.id)?.map(|d| DeviceView {
        oath_kind: d.oath.as_ref().map(|o| o.kind.clone()),
        mode: d.mode.clone(),
        id: d.id,
        name: d.name,
        batch: d.batch,
        strings_left: if d.mode == "strings" {
            u32::from(BATCH_SIZE).saturating_sub(d.used.count())
        } else {
            0
        },
        created_at: d.created_at,
    });
    Ok(UserView {
        name: user.name,
        directory: user.directory,
        email: user.email,
        phone: user.phone,
        enabled: user.enabled,
        has_pin: user.pin_sealed.is_some(),
        groups: user.groups.clone(),
        mode: user.mode,
        require_pin: user.require_pin,
        failures: user.failures,
        locked_until,
        device,
        created_at: user.created_at,
    })
}

fn user_list(app: &App) -> Result<serde_json::Value, String> {
    let views = app.store.with(|c| {
        users::list(c)?
            .into_iter()
            .map(|u| view(app, c, u))
            .collect::<Result<Vec<_>, _>>()
    })?;
    serde_json::to_value(views).map_err(|e| e.to_string())
}

fn user_show(app: &App, name: &str) -> Result<serde_json::Value, String> {
    let found = app.store.with(|c| match users::by_name(c, name)? {
        Some(u) => Ok(Some(view(app, c, u)?)),
        None => Ok(None),
    })?;
    match found {
        Some(v) => serde_json::to_value(v).map_err(|e| e.to_string()),
        None => Err(format!("user {name} not found")),
    }
}

fn status(app: &App) -> Result<serde_json::Value, String> {
    let (users, devices) = app.store.with(|c| {
        let u: i64 = c.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?;
        Ok((u, devices::count(c)?))
    })?;
    let mut out = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "http": app.config.http.listen.to_string(),
        "radius": app.config.radius.listen.to_string(),
        "radius_clients": app.radius_clients.snapshot().len(),
        "users": users,
        "devices": devices,
        "transports": app.transports.names(),
        "directories": app.directories.snapshot().iter().map(|d| d.name().to_string()).collect::<Vec<_>>(),
    });
    if let (Some(map), serde_json::Value::Object(extra)) = (
        out.as_object_mut(),
        crate::admin::ops::status_extra(app, &plugins(app)),
    ) {
        map.extend(extra);
    }
    Ok(out)
}

/// Every loaded plugin (transports, then directories) with its health,
/// checked now. The checks run at once, so the answer takes at most about
/// the slowest plugin's timeout (twice it when the plugin is busy).
fn plugins(app: &App) -> serde_json::Value {
    let directories = app.directories.snapshot();
    let transports = app.transports.snapshot();
    let all: Vec<&crate::plugin_host::PluginHandle> =
        transports.plugins().chain(directories.iter()).collect();
    let health: Vec<String> = std::thread::scope(|scope| {
        let checks: Vec<_> = all
            .iter()
            .map(|p| scope.spawn(move || p.health_blocking()))
            .collect();
        checks
            .into_iter()
            .map(|c| match c.join() {
                Ok(Ok(())) => "ok".to_string(),
                Ok(Err(e)) => e.failure.to_string(),
                Err(_) => "the health check failed".to_string(),
            })
            .collect()
    });
    let rows: Vec<serde_json::Value> = all
        .iter()
        .zip(health)
        .map(|(p, health)| {
            let info = p.info();
            serde_json::json!({
                "name": info.name,
                "kind": info.kind,
                "implementation": info.implementation,
                "file": info.file,
                "version": info.version,
                "timeout": humantime::format_duration(info.timeout).to_string(),
                "max_concurrent": info.max_concurrent,
                "running": p.running(),
                "health": health,
            })
        })
        .collect();
    serde_json::Value::Array(rows)
}
