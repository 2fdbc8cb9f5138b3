//! REST provisioning API (`/api/v1`), JSON in and out:
//!
//! - `POST /provision/request {username}` -> always 202 (the code goes only
//!   to the user's transport; the answer is the same for unknown users);
//! - `POST /provision {username, code, device: {name}}` -> 200 `{device_id,
//!   device_token, mode, batch, strings[99], server}` or 403
//!   `{error: "PROVISION_FAILURE", message: "Provision Failure"}`;
//! - `POST /strings` with `Authorization: Bearer TOKEN` -> 200 `{batch,
//!   strings[99]}` or 401;
//! - `GET /server-settings` -> `{server, mode, alphabet}`.
//!
//! Errors are JSON `{error, message}`; a malformed body is a 400 that says
//! what is wrong with it, never a code or token.

// Handler helpers return axum's `Response` as their error: it is what the
// handler sends, and boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::audit::Source;
use crate::daemon::App;
use crate::provision::{self, ProvisionError};

/// The `/api/v1` routes.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/provision/request", post(request_code))
        .route("/provision", post(redeem))
        .route("/strings", post(strings))
        .route("/server-settings", get(server_settings))
        .route("/auth", post(super::agent::authenticate))
}

/// A JSON error answer `{error, message}`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": code, "message": message}))).into_response()
}

/// Parses a JSON body. The error says where and what kind of problem, never
/// the offending value (it may be a code someone mistyped into another field).
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    body: &Bytes,
    expected: &str,
) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        let kind = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "is not valid JSON"
            }
            serde_json::error::Category::Data => "has a missing, unknown or mistyped field",
            serde_json::error::Category::Io => "could not be read",
        };
        error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            &format!(
                "the request body {kind} (line {}, column {}); expected {expected}",
                e.line(),
                e.column()
            ),
        )
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error",
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeRequest {
    username: String,
}

async fn request_code(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let req: CodeRequest = match parse(&body, r#"{"username": string}"#) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let username = req.username.trim().to_string();
    if username.is_empty() || username.len() > 256 || username.chars().any(char::is_control) {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "username must be 1 to 256 characters without control characters",
        );
    }
    // Answer at once and send in the background, so the answer and its
    // timing are the same whether or not the user exists. Pending sends are
    // bounded per transport (and for directory look-ups), see
    // `provision::queue`; beyond that requests are dropped with a WARN.
    let name = username.clone();
    provision::queue::in_background(&app, &name, "provision code request", move |app| {
        let source = Source::Api { addr: Some(peer) };
        // The outcome is in the audit trail (and its log line).
        let _ = provision::send_code(app, &username, &source);
    });
    // Same answer whatever happened: the page must not reveal who exists.
    (
        StatusCode::ACCEPTED,
        Json(json!({"status": "accepted", "message": "If the user exists, a Mobile Provision Code has been sent to their registered address."})),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceInfo {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeemRequest {
    username: String,
    code: String,
    #[serde(default)]
    device: Option<DeviceInfo>,
}

async fn redeem(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let req: RedeemRequest = match parse(
        &body,
        r#"{"username": string, "code": string, "device": {"name": string}}"#,
    ) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let server = app.config.server.public_url.clone();
    let name = req.device.map(|d| d.name).unwrap_or_default();
    let outcome = blocking(move || {
        let source = Source::Api { addr: Some(peer) };
        provision::redeem(&app, req.username.trim(), &req.code, &name, &source)
    })
    .await;
    match outcome {
        Ok(Ok(p)) => match &p.otpauth_uri {
            Some(uri) => Json(json!({
                "device_id": p.device_id,
                "device_token": p.device_token,
                "mode": "oath",
                "otpauth_uri": uri.as_str(),
                "server": server,
            }))
            .into_response(),
            None => {
                let strings: Vec<&str> = p.strings.iter().map(|s| s.as_str()).collect();
                Json(json!({
                    "device_id": p.device_id,
                    "device_token": p.device_token,
                    "mode": "strings",
                    "batch": p.batch,
                    "strings": strings,
                    "server": server,
                }))
                .into_response()
            }
        },
        Ok(Err(ProvisionError::Failure)) => error(
            StatusCode::FORBIDDEN,
            "PROVISION_FAILURE",
            "Provision Failure",
        ),
        Ok(Err(e)) => {
            tracing::error!("provision redeem failed: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "internal error",
            )
        }
        Err(resp) => resp,
    }
}

/// The token of an `Authorization: Bearer TOKEN` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then(|| token.to_string())
}

async fn strings(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = bearer(&headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "an Authorization: Bearer device token is required",
        );
    };
    match blocking(move || provision::next_batch(&app, &token, &Source::Api { addr: Some(peer) }))
        .await
    {
        Ok(Ok((batch, strings))) => {
            let strings: Vec<&str> = strings.iter().map(|s| s.as_str()).collect();
            Json(json!({"batch": batch, "strings": strings})).into_response()
        }
        Ok(Err(ProvisionError::NotStringsMode)) => error(
            StatusCode::CONFLICT,
            "NOT_STRINGS_MODE",
            "this device is in OATH mode: it has no security strings",
        ),
        Ok(Err(ProvisionError::BadToken)) => error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "device token not recognised; provision the device again",
        ),
        Ok(Err(e)) => {
            tracing::error!("new batch failed: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "internal error",
            )
        }
        Err(resp) => resp,
    }
}

async fn server_settings(State(app): State<Arc<App>>) -> Response {
    Json(json!({
        "server": app.config.server.public_url,
        "mode": "strings",
        "alphabet": app.config.strings.alphabet,
    }))
    .into_response()
}
