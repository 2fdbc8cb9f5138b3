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
use crate::daemon::App;
use crate::otc::{Pin, BATCH_SIZE};
use crate::provision;
use crate::secrets::Purpose;
use crate::store::{devices, users, StoreError};
use crate::transport::{Message, MessageKind};

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
        } => user_add(app, &name, email, phone, pin),
        AdminRequest::UserList => user_list(app),
        AdminRequest::UserShow { name } => user_show(app, &name),
        AdminRequest::UserDelete { name } => app
            .store
            .transaction(|tx| users::delete(tx, &name))
            .map(|()| {
                tracing::info!(user = ?name, "user deleted");
                serde_json::json!({"deleted": name})
            })
            .map_err(|e| e.to_string()),
        AdminRequest::ProvisionSend { name } => {
            provision::send_code(app, &name, &crate::audit::Source::Admin)
                .map(|()| serde_json::json!({"sent": name, "transport": app.transport.name()}))
                .map_err(|e| e.to_string())
        }
        AdminRequest::Status => status(app),
    };
    match outcome {
        Ok(value) => success(value),
        Err(e) => failure(e),
    }
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

fn user_add(
    app: &App,
    name: &str,
    email: Option<String>,
    phone: Option<String>,
    pin: Option<String>,
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
    let cfg = &app.config.pin;
    let (pin, generated) = match pin {
        Some(p) => (
            Pin::parse(&p, cfg.min_length, cfg.max_length).map_err(|_| {
                format!(
                    "bad PIN: must be {} to {} digits",
                    cfg.min_length, cfg.max_length
                )
            })?,
            false,
        ),
        None => (Pin::random(cfg.length), true),
    };
    let sealed = app.key.seal(Purpose::Pin, name, pin.as_str().as_bytes());
    let now = crate::unix_now();
    let recipient = email.clone().or_else(|| phone.clone()).unwrap_or_default();
    // Insert and (for a generated PIN) send in one transaction: if the PIN
    // cannot be sent the user is not created, so no one holds a PIN nobody knows.
    app.store
        .transaction(|tx| {
            users::insert(tx, name, email.as_deref(), phone.as_deref(), &sealed, now)
                .map_err(|e| match e {
                    StoreError::Duplicate(_) => format!("user {name} already exists"),
                    other => other.to_string(),
                })?;
            if generated {
                let message = Message {
                    kind: MessageKind::Pin,
                    username: name.to_string(),
                    recipient: recipient.clone(),
                    subject: "Your Pinwheel PIN".to_string(),
                    body: format!(
                        "Your Pinwheel PIN is: {}\nKeep it secret. You combine it with the security strings on your phone to log in.\n",
                        pin.as_str()
                    ),
                };
                app.transport.send(&message).map_err(|e| {
                    format!("user {name} not added: the generated PIN could not be sent: {e}")
                })?;
            }
            Ok::<_, String>(())
        })?;
    tracing::info!(user = ?name, pin_generated = generated, "user added");
    Ok(serde_json::json!({
        "added": name,
        "pin": if generated { "generated and sent" } else { "set" },
        "transport": app.transport.name(),
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
    let device = devices::by_user(conn, user.id)?.map(|d| DeviceView {
        id: d.id,
        name: d.name,
        batch: d.batch,
        strings_left: u32::from(BATCH_SIZE) - d.used.count(),
        created_at: d.created_at,
    });
    Ok(UserView {
        name: user.name,
        directory: user.directory,
        email: user.email,
        phone: user.phone,
        enabled: user.enabled,
        has_pin: user.pin_sealed.is_some(),
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
    Ok(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "http": app.config.http.listen.to_string(),
        "radius": app.config.radius.listen.to_string(),
        "radius_clients": app.config.radius.clients.len(),
        "users": users,
        "devices": devices,
        "transport": app.transport.name(),
    }))
}
