//! Agent XML compatibility (DESIGN.md, "Agent XML compatibility"): the
//! `SASRequest` / `SASResponse` protocol that existing agents and mobile apps
//! of the seed's product speak, served under each context they build their
//! base URL with (`/pinsafe`, `/sentry`, `/proxy`):
//!
//! - `POST /CONTEXT/AgentXML`: actions `ping` (always PASS), `login` (agent
//!   secret and source address checked like the JSON agent API, then
//!   [`crate::auth::check_code`]), `provision` (redeems a Mobile Provision
//!   Code like `POST /api/v1/provision`) and `SecurityStrings` (a new batch
//!   for a device token, like `POST /api/v1/strings`);
//! - `GET /CONTEXT/TokenIndex?username=U`: the next unused string index of
//!   the user's batch, two digits, plain text;
//! - `GET /ssdserver/getServerDetails?id=SITE`: the Site ID look-up.
//!
//! This module owns the XML: [`parse_request`] reads only the known child
//! elements of `<SASRequest>` and refuses any DOCTYPE (so no entity is ever
//! declared, let alone expanded) and every entity reference but the five
//! predefined ones and character references; [`SasResponse::render`]
//! escapes every value it writes. A body that cannot be read gets a
//! `SASResponse` FAIL `AGENT_ERROR_BAD_REQUEST` with a message that never
//! quotes the input, never a 500 or a hang.
//!
//! Error codes besides the ones [`super::agent::error_code`] maps decisions
//! to: `AGENT_ERROR_BAD_REQUEST` (unreadable or incomplete request),
//! `AGENT_ERROR_UNKNOWN_ACTION`, `AGENT_ERROR_AGENT_ACCESS` (secret or
//! address refused), `AGENT_ERROR_GENERAL` (server fault, HTTP 500),
//! `PROVISION_FAILURE` (every failure of `provision`, and a device token
//! that is unknown or revoked) and `AGENT_ERROR_NO_SECURITY_STRINGS`
//! (`SecurityStrings` for an OATH device).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use quick_xml::events::Event;
use quick_xml::Reader;
use serde::Deserialize;

use super::agent::{audit_refusal, error_code, identify};
use crate::audit::Source;
use crate::auth::{self, Decision, RejectReason};
use crate::daemon::App;
use crate::otc::SecurityString;
use crate::provision::{self, ProvisionError};
use crate::store::{devices, users};

/// The contexts existing clients put in their base URL.
pub const CONTEXTS: [&str; 3] = ["pinsafe", "sentry", "proxy"];

/// The protocol version written in every `SASResponse`.
pub const PROTOCOL_VERSION: &str = "3.6";

/// The request could not be read, or lacks a field the action needs.
pub const BAD_REQUEST: &str = "AGENT_ERROR_BAD_REQUEST";
/// `<Action>` names no action this server knows.
pub const UNKNOWN_ACTION: &str = "AGENT_ERROR_UNKNOWN_ACTION";
/// The agent secret or the source address was refused.
pub const AGENT_ACCESS: &str = "AGENT_ERROR_AGENT_ACCESS";
/// A server fault (the store failed): try again.
pub const GENERAL: &str = "AGENT_ERROR_GENERAL";
/// The user guide's "Provision Failure".
pub const PROVISION_FAILURE: &str = "PROVISION_FAILURE";
/// The device has no security strings (OATH mode).
pub const NO_SECURITY_STRINGS: &str = "AGENT_ERROR_NO_SECURITY_STRINGS";

/// Largest body [`parse_request`] reads, whatever `http.max_body_bytes` says.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Longest value of one request field, in characters.
pub const MAX_FIELD_CHARS: usize = 256;
/// Deepest element nesting accepted.
const MAX_DEPTH: usize = 16;
/// What `TokenIndex` answers when there is nothing to count: unknown users,
/// users without a device and OATH devices all look like a fresh batch.
const FRESH_INDEX: &str = "01";
/// What `TokenIndex` answers when every index of the batch is spent: index 00
/// is never accepted, so the client has to fetch a new batch.
const EXHAUSTED_INDEX: &str = "00";

// ---------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------

/// The known child elements of `<SASRequest>`, trimmed of surrounding
/// whitespace. `Debug` shows which secrets are present, never their values.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct SasRequest {
    /// `<Version>`.
    pub version: Option<String>,
    /// `<Secret>`: the agent's shared secret.
    pub secret: Option<String>,
    /// `<Action>`.
    pub action: Option<String>,
    /// `<Username>`.
    pub username: Option<String>,
    /// `<Password>`: the code when `<OTC>` is absent.
    pub password: Option<String>,
    /// `<OTC>`.
    pub otc: Option<String>,
    /// `<ProvisionCode>`: a Mobile Provision Code.
    pub provision_code: Option<String>,
    /// `<Id>`: a device token.
    pub id: Option<String>,
    /// `<RequestID>`: echoed in the answer.
    pub request_id: Option<String>,
}

impl std::fmt::Debug for SasRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<hidden>");
        f.debug_struct("SasRequest")
            .field("version", &self.version)
            .field("secret", &hidden(&self.secret))
            .field("action", &self.action)
            .field("username", &self.username)
            .field("password", &hidden(&self.password))
            .field("otc", &hidden(&self.otc))
            .field("provision_code", &hidden(&self.provision_code))
            .field("id", &hidden(&self.id))
            .field("request_id", &self.request_id)
            .finish()
    }
}

/// A request field, by element name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Version,
    Secret,
    Action,
    Username,
    Password,
    Otc,
    ProvisionCode,
    Id,
    RequestId,
}

impl Field {
    fn from_name(name: &[u8]) -> Option<Field> {
        Some(match name {
            b"Version" => Field::Version,
            b"Secret" => Field::Secret,
            b"Action" => Field::Action,
            b"Username" => Field::Username,
            b"Password" => Field::Password,
            b"OTC" => Field::Otc,
            b"ProvisionCode" => Field::ProvisionCode,
            b"Id" => Field::Id,
            b"RequestID" => Field::RequestId,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Field::Version => "Version",
            Field::Secret => "Secret",
            Field::Action => "Action",
            Field::Username => "Username",
            Field::Password => "Password",
            Field::Otc => "OTC",
            Field::ProvisionCode => "ProvisionCode",
            Field::Id => "Id",
            Field::RequestId => "RequestID",
        }
    }

    fn slot(self, req: &mut SasRequest) -> &mut Option<String> {
        match self {
            Field::Version => &mut req.version,
            Field::Secret => &mut req.secret,
            Field::Action => &mut req.action,
            Field::Username => &mut req.username,
            Field::Password => &mut req.password,
            Field::Otc => &mut req.otc,
            Field::ProvisionCode => &mut req.provision_code,
            Field::Id => &mut req.id,
            Field::RequestId => &mut req.request_id,
        }
    }
}

/// Why a request body was refused. `message` says what is wrong and where,
/// never what the body held; `request_id` is the `<RequestID>` read before
/// the problem, if any, so the answer can still echo it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// A sentence for the agent's administrator.
    pub message: String,
    /// The `<RequestID>` read before the problem.
    pub request_id: Option<String>,
}

/// Whether `c` may appear in an XML 1.0 document.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Reads a `SASRequest` body. Only the known child elements of the root are
/// kept (others are skipped); a DOCTYPE, an entity reference other than
/// `&lt; &gt; &amp; &apos; &quot;` and character references, markup inside a
/// known field, a repeated field, a field longer than [`MAX_FIELD_CHARS`],
/// anything that is not well-formed UTF-8 XML and a body over
/// [`MAX_REQUEST_BYTES`] are refused.
pub fn parse_request(body: &[u8]) -> Result<SasRequest, ParseError> {
    let mut req = SasRequest::default();
    match parse_into(body, &mut req) {
        Ok(()) => Ok(req),
        Err(message) => Err(ParseError {
            message,
            request_id: req.request_id,
        }),
    }
}

fn parse_into(body: &[u8], req: &mut SasRequest) -> Result<(), String> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(format!(
            "the request body is larger than {MAX_REQUEST_BYTES} bytes"
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| format!("the request body is not UTF-8 (byte {})", e.valid_up_to()))?;
    // Some clients start their body with a byte order mark.
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    // Open elements; the root is depth 1, its children depth 2.
    let mut depth = 0usize;
    let mut root_seen = false;
    let mut root_closed = false;
    // The known field being read (its element is open at depth 2).
    let mut current: Option<Field> = None;
    let mut value = String::new();
    let not_well_formed =
        |pos: u64| format!("the request body is not well-formed XML (near byte {pos})");
    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(_) => return Err(not_well_formed(reader.error_position())),
        };
        match event {
            Event::DocType(_) => {
                return Err(
                    "DOCTYPE declarations are refused (entities are never declared or expanded)"
                        .to_string(),
                )
            }
            Event::Start(_) | Event::Empty(_) if root_closed => {
                return Err("the request body holds elements after </SASRequest>".to_string());
            }
            Event::Start(e) => {
                open_element(
                    e.local_name().as_ref(),
                    depth,
                    req,
                    &mut current,
                    &mut root_seen,
                )?;
                value.clear();
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!("elements are nested more than {MAX_DEPTH} deep"));
                }
            }
            Event::Empty(e) => {
                let name = e.local_name();
                open_element(name.as_ref(), depth, req, &mut current, &mut root_seen)?;
                if depth == 0 {
                    root_closed = true;
                }
                if let Some(field) = current.take() {
                    *field.slot(req) = Some(String::new());
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    root_closed = true;
                }
                if depth == 1 {
                    if let Some(field) = current.take() {
                        let trimmed = value.trim();
                        if trimmed.chars().count() > MAX_FIELD_CHARS {
                            return Err(format!(
                                "<{}> is longer than {MAX_FIELD_CHARS} characters",
                                field.name()
                            ));
                        }
                        *field.slot(req) = Some(trimmed.to_string());
                        value.clear();
                    }
                }
            }
            Event::Text(t) => {
                let content = t
                    .xml10_content()
                    .map_err(|_| not_well_formed(reader.buffer_position()))?;
                text_content(&content, depth, current.is_some(), &mut value)?;
            }
            Event::CData(c) => {
                let content = c
                    .decode()
                    .map_err(|_| not_well_formed(reader.buffer_position()))?;
                text_content(&content, depth, current.is_some(), &mut value)?;
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    Ok(None) => match &*r {
                        b"lt" => Some('<'),
                        b"gt" => Some('>'),
                        b"amp" => Some('&'),
                        b"apos" => Some('\''),
                        b"quot" => Some('"'),
                        _ => None,
                    },
                    Err(_) => {
                        return Err(format!(
                            "the request body holds an invalid character reference (near byte {})",
                            reader.buffer_position()
                        ))
                    }
                };
                let Some(c) = resolved.filter(|c| is_xml_char(*c)) else {
                    return Err(format!(
                        "the request body refers to an undefined entity or a character XML does not allow (near byte {}); only &lt; &gt; &amp; &apos; &quot; and character references are accepted",
                        reader.buffer_position()
                    ));
                };
                text_content(
                    c.encode_utf8(&mut [0; 4]),
                    depth,
                    current.is_some(),
                    &mut value,
                )?;
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => {
                if !root_seen {
                    return Err("the request body holds no <SASRequest> element".to_string());
                }
                if !root_closed {
                    return Err("<SASRequest> is not closed".to_string());
                }
                return Ok(());
            }
        }
    }
}

/// An element named `name` opens at `depth` (0 = it is the root).
fn open_element(
    name: &[u8],
    depth: usize,
    req: &mut SasRequest,
    current: &mut Option<Field>,
    root_seen: &mut bool,
) -> Result<(), String> {
    match depth {
        0 => {
            if name != b"SASRequest" {
                return Err("the root element must be <SASRequest>".to_string());
            }
            *root_seen = true;
        }
        1 => {
            *current = Field::from_name(name);
            if let Some(field) = current {
                if field.slot(req).is_some() {
                    return Err(format!("<{}> appears more than once", field.name()));
                }
            }
        }
        _ => {
            if let Some(field) = current {
                return Err(format!("<{}> must hold text, not elements", field.name()));
            }
        }
    }
    Ok(())
}

/// Text (already unescaped) found at `depth`.
fn text_content(text: &str, depth: usize, reading: bool, value: &mut String) -> Result<(), String> {
    if depth == 0 {
        if text.chars().all(|c| c.is_ascii_whitespace()) {
            return Ok(());
        }
        return Err("the request body holds text outside <SASRequest>".to_string());
    }
    if reading && depth == 2 {
        // Bounded by the body size; the length rule is checked at the end tag.
        value.push_str(text);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------

/// A `SASResponse`. Elements are written in this order: `Version`,
/// `RequestID`, `Result`, `Error`, then `Message` and the action's own
/// elements (`Id`, `SecurityStrings`, ...) when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasResponse {
    /// The request's `<RequestID>`, echoed (empty when it had none).
    pub request_id: String,
    /// `None` for PASS, the error code for FAIL.
    pub error: Option<&'static str>,
    /// A sentence for administrators (FAIL answers to bad requests only).
    pub message: Option<String>,
    /// The action's own elements, written after the standard ones.
    pub extra: Vec<(&'static str, String)>,
}

impl SasResponse {
    /// PASS.
    pub fn pass(request_id: Option<&str>) -> SasResponse {
        SasResponse {
            request_id: request_id.unwrap_or_default().to_string(),
            error: None,
            message: None,
            extra: Vec::new(),
        }
    }

    /// FAIL with `code`.
    pub fn fail(request_id: Option<&str>, code: &'static str) -> SasResponse {
        SasResponse {
            error: Some(code),
            ..SasResponse::pass(request_id)
        }
    }

    /// Adds a message for administrators.
    pub fn with_message(mut self, message: impl Into<String>) -> SasResponse {
        self.message = Some(message.into());
        self
    }

    /// Adds an element after the standard ones.
    pub fn with(mut self, element: &'static str, value: impl Into<String>) -> SasResponse {
        self.extra.push((element, value.into()));
        self
    }

    /// The XML document.
    pub fn render(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<SASResponse>\n");
        element(&mut out, "Version", PROTOCOL_VERSION);
        element(&mut out, "RequestID", &self.request_id);
        element(
            &mut out,
            "Result",
            if self.error.is_none() { "PASS" } else { "FAIL" },
        );
        element(&mut out, "Error", self.error.unwrap_or_default());
        if let Some(message) = &self.message {
            element(&mut out, "Message", message);
        }
        for (name, value) in &self.extra {
            element(&mut out, name, value);
        }
        out.push_str("</SASResponse>\n");
        out
    }
}

/// Appends `<name>value</name>` with `value` escaped.
fn element(out: &mut String, name: &str, value: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    escape_into(out, value);
    out.push_str("</");
    out.push_str(name);
    out.push_str(">\n");
}

/// Escapes text for XML element content; characters XML 1.0 cannot carry
/// at all are dropped.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if is_xml_char(c) => out.push(c),
            _ => {}
        }
    }
}

/// The `SecurityStrings` value: 100 entries joined by `;`, entry *i* being
/// the string of index *i*. Entry 0 is empty: index 00 is never accepted.
pub fn join_strings(strings: &[SecurityString]) -> String {
    let mut out = String::with_capacity(strings.len() * 11);
    for s in strings {
        out.push(';');
        out.push_str(s.as_str());
    }
    out
}

fn xml_reply(status: StatusCode, response: &SasResponse) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        response.render(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

/// The routes of this module: `AgentXML` and `TokenIndex` under each
/// context, and `/ssdserver/getServerDetails`.
pub fn routes() -> Router<Arc<App>> {
    let mut router = Router::new();
    for context in CONTEXTS {
        router = router
            .route(&format!("/{context}/AgentXML"), post(agent_xml))
            .route(&format!("/{context}/TokenIndex"), get(token_index));
    }
    router.route("/ssdserver/getServerDetails", get(server_details))
}

/// `POST /CONTEXT/AgentXML`.
async fn agent_xml(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!(
                    "the request body is larger than {} bytes",
                    app.config.http.max_body_bytes
                )
            } else {
                "the request body could not be read".to_string()
            };
            return xml_reply(
                status,
                &SasResponse::fail(None, BAD_REQUEST).with_message(message),
            );
        }
    };
    let req = match parse_request(&body) {
        Ok(req) => req,
        Err(e) => {
            tracing::debug!(peer = %peer, "agent XML request refused: {}", e.message);
            return xml_reply(
                StatusCode::OK,
                &SasResponse::fail(e.request_id.as_deref(), BAD_REQUEST).with_message(e.message),
            );
        }
    };
    let action = req.action.as_deref().unwrap_or_default();
    let rid = req.request_id.as_deref();
    if action.eq_ignore_ascii_case("ping") {
        xml_reply(StatusCode::OK, &SasResponse::pass(rid))
    } else if action.eq_ignore_ascii_case("login") {
        login(app, peer, &req).await
    } else if action.eq_ignore_ascii_case("provision") {
        provision_device(app, peer, &req).await
    } else if action.eq_ignore_ascii_case("SecurityStrings") {
        security_strings(app, peer, &req).await
    } else if action.is_empty() {
        xml_reply(
            StatusCode::OK,
            &SasResponse::fail(rid, BAD_REQUEST).with_message("the request has no <Action>"),
        )
    } else {
        xml_reply(
            StatusCode::OK,
            &SasResponse::fail(rid, UNKNOWN_ACTION)
                .with_message("unknown action: expected ping, login, provision or SecurityStrings"),
        )
    }
}

/// A field's value when present and not empty.
fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// `login`: the agent's address and secret, then the code.
async fn login(app: Arc<App>, peer: SocketAddr, req: &SasRequest) -> Response {
    let rid = req.request_id.as_deref();
    let agent = match identify(&app.config.agents, peer, nonempty(&req.secret)) {
        Ok(agent) => agent.name.clone(),
        Err(reason) => {
            audit_refusal(&app, peer, reason).await;
            return xml_reply(
                StatusCode::OK,
                &SasResponse::fail(rid, AGENT_ACCESS)
                    .with_message("not a configured agent: check the agent's address and secret"),
            );
        }
    };
    let username = nonempty(&req.username).unwrap_or_default().to_string();
    let code = nonempty(&req.otc)
        .or(nonempty(&req.password))
        .unwrap_or_default()
        .to_string();
    if username.is_empty() || username.chars().any(char::is_control) {
        return xml_reply(
            StatusCode::OK,
            &SasResponse::fail(rid, BAD_REQUEST)
                .with_message("<Username> must be 1 to 256 characters without control characters"),
        );
    }
    let source = Source::Agent {
        name: agent,
        addr: peer,
    };
    let decided =
        tokio::task::spawn_blocking(move || auth::check_code(&app, &username, &code, &source))
            .await;
    match decided {
        Ok(Ok(Decision::Accept)) => xml_reply(StatusCode::OK, &SasResponse::pass(rid)),
        Ok(Ok(Decision::Reject(RejectReason::Internal))) | Ok(Err(_)) | Err(_) => xml_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            &SasResponse::fail(rid, GENERAL)
                .with_message("the code could not be checked; try again"),
        ),
        Ok(Ok(Decision::Reject(reason))) => {
            xml_reply(StatusCode::OK, &SasResponse::fail(rid, error_code(reason)))
        }
    }
}

/// `provision`: redeems `<ProvisionCode>` for `<Username>`.
async fn provision_device(app: Arc<App>, peer: SocketAddr, req: &SasRequest) -> Response {
    let rid = req.request_id.as_deref();
    let (Some(username), Some(code)) = (nonempty(&req.username), nonempty(&req.provision_code))
    else {
        return xml_reply(
            StatusCode::OK,
            &SasResponse::fail(rid, PROVISION_FAILURE)
                .with_message("<Username> and <ProvisionCode> are required"),
        );
    };
    let (username, code) = (
        username.to_string(),
        zeroize::Zeroizing::new(code.to_string()),
    );
    let outcome = tokio::task::spawn_blocking(move || {
        let source = Source::Api { addr: Some(peer) };
        provision::redeem(&app, &username, &code, "mobile (AgentXML)", &source)
    })
    .await;
    match outcome {
        Ok(Ok(p)) => {
            let response = SasResponse::pass(rid).with("Id", p.device_token.as_str());
            let response = match &p.otpauth_uri {
                // OATH mode: no strings; the key URI is what an authenticator needs.
                Some(uri) => response
                    .with("SecurityStrings", "")
                    .with("Mode", "oath")
                    .with("OathURI", uri.as_str()),
                None => response.with("SecurityStrings", join_strings(&p.strings)),
            };
            xml_reply(StatusCode::OK, &response)
        }
        Ok(Err(ProvisionError::Failure)) => {
            xml_reply(StatusCode::OK, &SasResponse::fail(rid, PROVISION_FAILURE))
        }
        Ok(Err(e)) => {
            tracing::error!("provision redeem (agent XML) failed: {e}");
            xml_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                &SasResponse::fail(rid, PROVISION_FAILURE),
            )
        }
        Err(_) => xml_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            &SasResponse::fail(rid, PROVISION_FAILURE),
        ),
    }
}

/// `SecurityStrings`: a new batch for the device token in `<Id>`.
async fn security_strings(app: Arc<App>, peer: SocketAddr, req: &SasRequest) -> Response {
    let rid = req.request_id.as_deref();
    let Some(token) = nonempty(&req.id) else {
        return xml_reply(
            StatusCode::OK,
            &SasResponse::fail(rid, BAD_REQUEST)
                .with_message("<Id> (the device token) is required"),
        );
    };
    let token = zeroize::Zeroizing::new(token.to_string());
    let outcome = tokio::task::spawn_blocking(move || {
        provision::next_batch(&app, &token, &Source::Api { addr: Some(peer) })
    })
    .await;
    match outcome {
        Ok(Ok((_batch, strings))) => xml_reply(
            StatusCode::OK,
            &SasResponse::pass(rid).with("SecurityStrings", join_strings(&strings)),
        ),
        Ok(Err(ProvisionError::BadToken)) => xml_reply(
            StatusCode::OK,
            &SasResponse::fail(rid, PROVISION_FAILURE)
                .with_message("device not recognised; provision the device again"),
        ),
        Ok(Err(ProvisionError::NotStringsMode)) => xml_reply(
            StatusCode::OK,
            &SasResponse::fail(rid, NO_SECURITY_STRINGS)
                .with_message("this device is in OATH mode: it has no security strings"),
        ),
        Ok(Err(e)) => {
            tracing::error!("new batch (agent XML) failed: {e}");
            xml_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                &SasResponse::fail(rid, GENERAL).with_message("internal error; try again"),
            )
        }
        Err(_) => xml_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            &SasResponse::fail(rid, GENERAL).with_message("internal error; try again"),
        ),
    }
}

fn text_reply(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

#[derive(Deserialize)]
struct TokenIndexQuery {
    username: Option<String>,
}

/// `GET /CONTEXT/TokenIndex?username=U`: the next unused index of the
/// user's batch (`01`..`99`), `00` when every index is spent, and `01` for
/// unknown users, users without a device and OATH devices, so the answer
/// does not tell who exists.
async fn token_index(
    State(app): State<Arc<App>>,
    query: Result<Query<TokenIndexQuery>, QueryRejection>,
) -> Response {
    let username = match query {
        Ok(Query(q)) => q.username.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let username = username.trim().to_string();
    if username.is_empty()
        || username.chars().count() > MAX_FIELD_CHARS
        || username.chars().any(char::is_control)
    {
        return text_reply(
            StatusCode::BAD_REQUEST,
            "the username parameter must be 1 to 256 characters without control characters\n",
        );
    }
    let looked_up = tokio::task::spawn_blocking(move || {
        app.store.with(|c| {
            let Some(user) = users::by_name(c, &username)? else {
                return Ok(None);
            };
            let Some(device) = devices::by_user(c, user.id)? else {
                return Ok(None);
            };
            if device.mode != "strings" {
                return Ok(None);
            }
            Ok(Some(device.used.next_unused()))
        })
    })
    .await;
    match looked_up {
        Ok(Ok(None)) => text_reply(StatusCode::OK, FRESH_INDEX),
        Ok(Ok(Some(Some(index)))) => text_reply(StatusCode::OK, format!("{index:02}")),
        Ok(Ok(Some(None))) => text_reply(StatusCode::OK, EXHAUSTED_INDEX),
        Ok(Err(e)) => {
            tracing::error!("token index look-up failed: {e}");
            text_reply(StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
        }
        Err(_) => text_reply(StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n"),
    }
}

/// What `getServerDetails` tells a client about this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerDetails {
    /// Host name or address, without scheme or port.
    pub hostname: String,
    /// `https` or not.
    pub using_ssl: bool,
    /// The TCP port.
    pub port: u16,
    /// The context clients put after the port.
    pub context: &'static str,
}

/// Splits `server.public_url` (`scheme://host[:port][/...]`) into server
/// details; `None` when it is not an `http` or `https` URL.
pub fn server_details_from_url(public_url: &str) -> Option<ServerDetails> {
    let (scheme, rest) = public_url.split_once("://")?;
    let using_ssl = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let default_port = if using_ssl { 443 } else { 80 };
    let (hostname, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        // [v6]:port
        let (host, after) = bracketed.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), port.parse().ok()?),
            None => (authority.to_string(), default_port),
        }
    };
    if hostname.is_empty() {
        return None;
    }
    Some(ServerDetails {
        hostname,
        using_ssl,
        port,
        context: CONTEXTS[0],
    })
}

/// The `getServerDetailsResponse` document: `responseCode` 0 with
/// `SSDetails` when found, 1 without them when not.
pub fn render_server_details(found: Option<&ServerDetails>) -> String {
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<getServerDetailsResponse>\n");
    match found {
        Some(d) => {
            element(&mut out, "responseCode", "0");
            out.push_str("<SSDetails>\n");
            element(&mut out, "hostname", &d.hostname);
            element(&mut out, "usingSSL", if d.using_ssl { "YES" } else { "NO" });
            element(&mut out, "port", &d.port.to_string());
            element(&mut out, "connectionType", d.context);
            element(&mut out, "pin", "YES");
            element(&mut out, "oath", "NO");
            element(&mut out, "local", "NO");
            element(&mut out, "pushSupport", "NO");
            out.push_str("</SSDetails>\n");
        }
        None => element(&mut out, "responseCode", "1"),
    }
    out.push_str("</getServerDetailsResponse>\n");
    out
}

/// The configured Site ID. There is no config key for it yet (a
/// `[server] site_id` is needed), so no Site ID is ever found.
fn configured_site_id(app: &App) -> Option<&str> {
    app.config
        .server
        .site_id
        .as_deref()
        .filter(|site| !site.is_empty())
}

#[derive(Deserialize)]
struct SiteQuery {
    id: Option<String>,
}

/// `GET /ssdserver/getServerDetails?id=SITE`.
async fn server_details(
    State(app): State<Arc<App>>,
    query: Result<Query<SiteQuery>, QueryRejection>,
) -> Response {
    let id = match query {
        Ok(Query(q)) => q.id.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let found = match configured_site_id(&app) {
        Some(site)
            if !id.is_empty() && crate::otc::ct_eq(site.as_bytes(), id.trim().as_bytes()) =>
        {
            server_details_from_url(&app.config.server.public_url)
        }
        _ => None,
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        render_server_details(found.as_ref()),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SasRequest, ParseError> {
        parse_request(text.as_bytes())
    }

    fn refused(text: &str) -> String {
        match parse(text) {
            Ok(req) => panic!("accepted {text:?}: {req:?}"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn reads_every_known_field() {
        let req = parse(
            "<?xml version=\"1.0\" ?>\n<SASRequest>\n  <Version>3.4</Version>\n  <Secret> s3cret </Secret>\n\
             <Action>login</Action><Username>alice</Username><Password>pw</Password>\
             <OTC>746912</OTC><ProvisionCode>0123456789</ProvisionCode><Id>tok</Id>\
             <RequestID>r-1</RequestID><Unknown><Deep>x</Deep></Unknown><!-- note --></SASRequest>\n",
        )
        .unwrap();
        assert_eq!(
            req,
            SasRequest {
                version: Some("3.4".into()),
                secret: Some("s3cret".into()),
                action: Some("login".into()),
                username: Some("alice".into()),
                password: Some("pw".into()),
                otc: Some("746912".into()),
                provision_code: Some("0123456789".into()),
                id: Some("tok".into()),
                request_id: Some("r-1".into()),
            }
        );
        let shown = format!("{req:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("746912") && !shown.contains("tok\""));
    }

    #[test]
    fn unescapes_predefined_entities_char_refs_and_cdata() {
        let req = parse(
            "<SASRequest><Username>a&lt;&amp;&gt;&quot;&apos;&#65;&#x42;</Username>\
             <RequestID><![CDATA[<x&y>]]></RequestID><Action/></SASRequest>",
        )
        .unwrap();
        assert_eq!(req.username.as_deref(), Some("a<&>\"'AB"));
        assert_eq!(req.request_id.as_deref(), Some("<x&y>"));
        assert_eq!(req.action.as_deref(), Some(""));
        assert_eq!(parse("<SASRequest/>").unwrap(), SasRequest::default());
        let with_bom =
            parse("\u{FEFF}<?xml version=\"1.0\"?><SASRequest><Action>ping</Action></SASRequest>");
        assert_eq!(with_bom.unwrap().action.as_deref(), Some("ping"));
    }

    #[test]
    fn refuses_doctype_and_entities() {
        let laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n \
                      <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n]>\n\
                      <SASRequest><Username>&lol2;</Username></SASRequest>";
        assert!(refused(laughs).contains("DOCTYPE"));
        assert!(
            refused("<SASRequest><Username>&lol;</Username></SASRequest>")
                .contains("undefined entity")
        );
        assert!(
            refused("<SASRequest><Username>&#0;</Username></SASRequest>").contains("reference")
        );
        assert!(refused("<SASRequest><Username>&#1;</Username></SASRequest>").contains("entity"));
        assert!(!refused("<!ENTITY x \"y\"><SASRequest/>").is_empty());
    }

    #[test]
    fn refuses_malformed_bodies_without_quoting_them() {
        for (body, expect) in [
            ("", "no <SASRequest>"),
            ("   ", "no <SASRequest>"),
            ("not xml at all", "outside"),
            ("<Other/>", "root element"),
            ("<SASRequest><Username>alice</Username>", "not closed"),
            (
                "<SASRequest><Username>alice</Action></SASRequest>",
                "not well-formed",
            ),
            (
                "<SASRequest><Username>a & b</Username></SASRequest>",
                "well-formed",
            ),
            (
                "<SASRequest><Username><b>x</b></Username></SASRequest>",
                "must hold text",
            ),
            (
                "<SASRequest><Id>1</Id><Id>2</Id></SASRequest>",
                "more than once",
            ),
            ("<SASRequest/><SASRequest/>", "after </SASRequest>"),
            ("<SASRequest/>trailing", "outside"),
        ] {
            let message = refused(body);
            assert!(message.contains(expect), "{body:?}: {message}");
            assert!(!message.contains("alice"), "{message}");
        }
        let long = format!(
            "<SASRequest><Username>{}</Username></SASRequest>",
            "u".repeat(257)
        );
        assert!(refused(&long).contains("longer than 256"));
        let deep = format!(
            "<SASRequest>{}{}</SASRequest>",
            "<a>".repeat(20),
            "</a>".repeat(20)
        );
        assert!(refused(&deep).contains("nested"));
        assert!(
            parse_request(b"<SASRequest><Username>\xff</Username></SASRequest>")
                .unwrap_err()
                .message
                .contains("UTF-8")
        );
        let huge = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert!(parse_request(&huge).unwrap_err().message.contains("larger"));
    }

    #[test]
    fn a_refused_body_keeps_the_request_id_read_before_the_problem() {
        let e =
            parse("<SASRequest><RequestID>r-7</RequestID><Username>&evil;</Username></SASRequest>")
                .unwrap_err();
        assert_eq!(e.request_id.as_deref(), Some("r-7"));
    }

    #[test]
    fn renders_escaped_values_in_order() {
        let r = SasResponse::fail(Some("<&'\"> \u{1}"), "AGENT_ERROR_BAD_OTC").render();
        assert_eq!(
            r,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<SASResponse>\n<Version>3.6</Version>\n\
             <RequestID>&lt;&amp;&apos;&quot;&gt; </RequestID>\n<Result>FAIL</Result>\n\
             <Error>AGENT_ERROR_BAD_OTC</Error>\n</SASResponse>\n"
        );
        let r = SasResponse::pass(None)
            .with("Id", "a<b")
            .with("SecurityStrings", ";1;2")
            .render();
        assert!(r.contains("<RequestID></RequestID>\n<Result>PASS</Result>\n<Error></Error>\n<Id>a&lt;b</Id>\n<SecurityStrings>;1;2</SecurityStrings>\n"), "{r}");
        // What we write, we can read back.
        let back = r.replace("SASResponse", "SASRequest");
        assert_eq!(parse(&back).unwrap().id.as_deref(), Some("a<b"));
    }

    #[test]
    fn security_strings_have_100_entries_and_entry_0_is_empty() {
        let seed = crate::otc::DeviceSeed::random();
        let strings = crate::otc::derive_batch(&seed, 1, crate::otc::Alphabet::Digits);
        let joined = join_strings(&strings);
        let entries: Vec<&str> = joined.split(';').collect();
        assert_eq!(entries.len(), 100);
        assert_eq!(entries[0], "");
        for (i, s) in strings.iter().enumerate() {
            assert_eq!(entries[i + 1], s.as_str());
        }
    }

    #[test]
    fn server_details_come_from_the_public_url() {
        assert_eq!(
            server_details_from_url("https://auth.example.org"),
            Some(ServerDetails {
                hostname: "auth.example.org".into(),
                using_ssl: true,
                port: 443,
                context: "pinsafe"
            })
        );
        let d = server_details_from_url("http://127.0.0.1:8080/base").unwrap();
        assert_eq!(
            (d.hostname.as_str(), d.using_ssl, d.port),
            ("127.0.0.1", false, 8080)
        );
        let d = server_details_from_url("https://[2001:db8::1]:8443").unwrap();
        assert_eq!((d.hostname.as_str(), d.port), ("2001:db8::1", 8443));
        assert_eq!(server_details_from_url("ftp://x"), None);
        assert_eq!(server_details_from_url("https://host:notaport"), None);
        let found = render_server_details(Some(&d));
        assert!(found.contains("<responseCode>0</responseCode>\n<SSDetails>\n<hostname>2001:db8::1</hostname>\n<usingSSL>YES</usingSSL>\n<port>8443</port>\n<connectionType>pinsafe</connectionType>"), "{found}");
        let missing = render_server_details(None);
        assert!(
            missing.contains("<responseCode>1</responseCode>") && !missing.contains("SSDetails")
        );
    }
}
