//! The agent API: `POST /api/v1/auth {username, otc}` for trusted
//! applications (web and VPN portals) configured as `[[agent]]` with a source
//! network and a shared secret sent as `Authorization: Bearer SECRET`.
//!
//! The answer is `{"result": "PASS"}` or `{"result": "FAIL", "error": CODE}`
//! with the seed product's agent error codes. The decision is
//! [`crate::auth::check_code`], the same function RADIUS calls. A request
//! from outside every agent's network, or with a secret that matches none,
//! gets 403 and an audit row, and its code is never looked at.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::api::{bearer, error, parse};
use crate::audit::{self, Outcome, Source};
use crate::auth::{self, Decision, RejectReason};
use crate::config::AgentConfig;
use crate::daemon::App;

/// The agent error code for a rejection (DESIGN.md, "Agent XML compatibility").
pub fn error_code(reason: RejectReason) -> &'static str {
    match reason {
        RejectReason::Disabled => "AGENT_ERROR_USER_DISABLED",
        RejectReason::Locked => "AGENT_ERROR_USER_LOCKED",
        RejectReason::TooManyFailures => "AGENT_ERROR_USER_LOGIN_TRIES_EXCEEDED",
        RejectReason::NoDevice => "AGENT_ERROR_NO_SECURITY_STRINGS",
        // An unknown user looks like a wrong code, so agents cannot probe names.
        RejectReason::UnknownUser
        | RejectReason::NoPin
        | RejectReason::Malformed
        | RejectReason::IndexUsed
        | RejectReason::Replay
        | RejectReason::WrongCode
        | RejectReason::WrongPassword
        | RejectReason::BadState
        | RejectReason::NotDelivered
        | RejectReason::TooManyChallenges
        | RejectReason::ChapUnsupported
        | RejectReason::Internal => "AGENT_ERROR_BAD_OTC",
    }
}

/// The agent whose network holds `peer` and whose secret is `secret`. Every
/// candidate's secret is compared (in constant time), so timing does not
/// tell which agents exist. `Err` carries the audit reason.
pub fn identify<'a>(
    agents: &'a [AgentConfig],
    peer: SocketAddr,
    secret: Option<&str>,
) -> Result<&'a AgentConfig, &'static str> {
    let ip = match peer.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(std::net::IpAddr::V4)
            .unwrap_or(std::net::IpAddr::V6(v6)),
        v4 => v4,
    };
    let mut candidates = agents.iter().filter(|a| a.address.contains(&ip)).peekable();
    if candidates.peek().is_none() {
        return Err("address_not_allowed");
    }
    let Some(secret) = secret else {
        return Err("no_agent_secret");
    };
    let mut found = None;
    for agent in candidates {
        if crate::otc::ct_eq(agent.secret.expose(), secret.as_bytes()) && found.is_none() {
            found = Some(agent);
        }
    }
    found.ok_or("bad_agent_secret")
}

/// Audits a request that no agent matched (`reason` from [`identify`]).
/// Nobody authenticated it, so its rows are budgeted.
pub(crate) async fn audit_refusal(app: &Arc<App>, peer: SocketAddr, reason: &'static str) {
    let source = Source::Agent {
        name: "unknown".into(),
        addr: peer,
    };
    let row = audit::row(
        crate::unix_now(),
        "agent-auth",
        None,
        &source,
        Outcome::Fail,
        Some(reason),
    );
    let app = app.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if !app.audit.allow_unauthenticated() {
            return;
        }
        if let Err(e) = app.store.with(|c| crate::store::audit::insert(c, &row)) {
            tracing::warn!("audit write failed: {e}");
        }
        app.audit.emit(&[row]);
    })
    .await;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthRequest {
    username: String,
    otc: String,
}

/// `POST /api/v1/auth`.
pub async fn authenticate(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let secret = bearer(&headers);
    let agent = match identify(&app.config.agents, peer, secret.as_deref()) {
        Ok(agent) => agent.name.clone(),
        Err(reason) => {
            audit_refusal(&app, peer, reason).await;
            return error(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "not a configured agent: check the agent's address and secret",
            );
        }
    };
    let req: AuthRequest = match parse(&body, r#"{"username": string, "otc": string}"#) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if req.username.is_empty()
        || req.username.len() > 256
        || req.username.chars().any(char::is_control)
        || req.otc.len() > 256
    {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "username must be 1 to 256 characters without control characters, and otc at most 256",
        );
    }
    let source = Source::Agent {
        name: agent,
        addr: peer,
    };
    let decided = tokio::task::spawn_blocking(move || {
        auth::check_code(&app, &req.username, &req.otc, &source)
    })
    .await;
    match decided {
        Ok(Ok(Decision::Accept)) => Json(json!({"result": "PASS"})).into_response(),
        Ok(Ok(Decision::Reject(RejectReason::Internal))) | Ok(Err(_)) | Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "the code could not be checked; try again",
        ),
        Ok(Ok(Decision::Reject(reason))) => {
            Json(json!({"result": "FAIL", "error": error_code(reason)})).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn agent(name: &str, net: &str, secret: &str) -> AgentConfig {
        AgentConfig {
            name: name.into(),
            address: net.parse().unwrap(),
            secret: Secret::new(secret),
        }
    }

    #[test]
    fn agents_need_address_and_secret() {
        let agents = vec![
            agent("portal", "10.0.0.0/24", "portal-secret-0123456789"),
            agent("vpn", "10.0.0.5/32", "vpn-secret-0123456789ab"),
        ];
        let at = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 40000);
        assert_eq!(
            identify(&agents, at("10.0.0.5"), Some("vpn-secret-0123456789ab"))
                .map(|a| a.name.as_str()),
            Ok("vpn")
        );
        assert_eq!(
            identify(&agents, at("10.0.0.5"), Some("portal-secret-0123456789"))
                .map(|a| a.name.as_str()),
            Ok("portal")
        );
        assert_eq!(
            identify(&agents, at("10.0.0.9"), Some("vpn-secret-0123456789ab")).err(),
            Some("bad_agent_secret")
        );
        assert_eq!(
            identify(&agents, at("192.0.2.1"), Some("portal-secret-0123456789")).err(),
            Some("address_not_allowed")
        );
        assert_eq!(
            identify(&agents, at("10.0.0.9"), None).err(),
            Some("no_agent_secret")
        );
    }

    #[test]
    fn error_codes_follow_the_agent_api() {
        assert_eq!(error_code(RejectReason::WrongCode), "AGENT_ERROR_BAD_OTC");
        assert_eq!(error_code(RejectReason::UnknownUser), "AGENT_ERROR_BAD_OTC");
        assert_eq!(error_code(RejectReason::Locked), "AGENT_ERROR_USER_LOCKED");
        assert_eq!(
            error_code(RejectReason::Disabled),
            "AGENT_ERROR_USER_DISABLED"
        );
        assert_eq!(
            error_code(RejectReason::TooManyFailures),
            "AGENT_ERROR_USER_LOGIN_TRIES_EXCEEDED"
        );
        assert_eq!(
            error_code(RejectReason::NoDevice),
            "AGENT_ERROR_NO_SECURITY_STRINGS"
        );
    }
}
