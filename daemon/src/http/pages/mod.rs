//! The self-service web pages, server-rendered with askama templates
//! (`daemon/templates/`, auto-escaped) and one stylesheet; no JavaScript:
//!
//! - `GET/POST /resetpin/provision`: request a Mobile Provision Code (sent
//!   in the background through [`provision::send_code`], answer the same for
//!   every user name);
//! - `GET /resetpin`, `POST /resetpin/request`, `GET /resetpin/code`,
//!   `POST /resetpin/reset`: ResetPIN codes and a new random PIN
//!   ([`crate::provision::reset`]);
//! - `GET /provision`, `POST /provision/settings`, `POST /provision/redeem`:
//!   the Provision URL landing page (opening it or asking for the settings
//!   never spends the code; only "Redeem on this page" does, for OATH users);
//! - `GET/POST /userportal/changepin`: change the PIN with OTCs of a
//!   security string of distinct digits;
//! - `GET /pages/pinwheel.css`.
//!
//! Every form carries a CSRF token ([`guard`]); every page request counts
//! against a per-address limit and every form naming a user against a
//! per-user-name limit (429 with `Retry-After`). Every page answer carries
//! the security headers (CSP without scripts, `frame-ancestors 'none'`, no
//! referrer, `no-store`). Codes travel only in POST bodies, never in a URL
//! query or a log line; answers never tell whether a user exists.

pub mod guard;

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::audit::Source;
use crate::config::PagesConfig;
use crate::daemon::App;
use crate::provision::{self, reset};

pub use guard::PagesState;

/// The pages' stylesheet, served at `/pages/pinwheel.css`.
const STYLESHEET: &str = include_str!("../../../templates/pinwheel.css");

/// Checks `[pages]`; returns the offending key and what is wrong.
pub fn check_config(cfg: &PagesConfig) -> Option<(&'static str, &'static str)> {
    let ttl = cfg.reset_code_ttl.as_secs();
    if !(10..=3600).contains(&ttl) {
        return Some(("pages.reset_code_ttl", "must be between 10s and 1h"));
    }
    if cfg.requests_per_minute_per_address == 0 {
        return Some((
            "pages.requests_per_minute_per_address",
            "must be at least 1",
        ));
    }
    if cfg.requests_per_minute_per_user == 0 {
        return Some(("pages.requests_per_minute_per_user", "must be at least 1"));
    }
    if cfg.organisation.len() > 200 || cfg.organisation.chars().any(char::is_control) {
        return Some((
            "pages.organisation",
            "must be at most 200 bytes without control characters",
        ));
    }
    if let Some(url) = &cfg.logo_url {
        // The origin of an https:// logo goes into the CSP: nothing there may
        // end or extend the directive.
        let clean_origin = logo_origin(url).is_some_and(|o| {
            o.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b))
        });
        let ok = (url.starts_with('/') && !url.starts_with("//"))
            || url.starts_with("data:image/")
            || (url.starts_with("https://") && clean_origin);
        if !ok
            || url
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '"')
        {
            return Some((
                "pages.logo_url",
                "must be a path on this server (/...), a data:image/ URI or an https:// URL, without spaces or quotes",
            ));
        }
    }
    None
}

/// `https://host[:port]` of an absolute logo URL.
fn logo_origin(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let end = rest.find('/').unwrap_or(rest.len());
    (end > 0).then(|| &url[.."https://".len() + end])
}

/// The page routes.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/pages/pinwheel.css", get(stylesheet))
        .route(
            "/resetpin/provision",
            get(provision_form).post(provision_request),
        )
        .route("/resetpin", get(reset_form))
        .route("/resetpin/request", axum::routing::post(reset_request))
        .route("/resetpin/code", get(reset_code_form))
        .route("/resetpin/reset", axum::routing::post(reset_redeem))
        .route("/provision", get(provision_landing))
        .route(
            "/provision/settings",
            axum::routing::post(provision_settings),
        )
        .route("/provision/redeem", axum::routing::post(provision_redeem))
        .route(
            "/userportal/changepin",
            get(changepin_form).post(changepin_submit),
        )
}

// ---------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------

/// What every page shows in its header.
struct Head<'a> {
    organisation: &'a str,
    logo: Option<&'a str>,
}

impl<'a> Head<'a> {
    fn of(app: &'a App) -> Head<'a> {
        Head {
            organisation: &app.config.pages.organisation,
            logo: app.config.pages.logo_url.as_deref(),
        }
    }
}

#[derive(Template)]
#[template(path = "provision_request.html")]
struct ProvisionPage<'a> {
    head: Head<'a>,
    title: &'a str,
    csrf: &'a str,
    sent: bool,
}

#[derive(Template)]
#[template(path = "resetpin.html")]
struct ResetPage<'a> {
    head: Head<'a>,
    title: &'a str,
    csrf: &'a str,
    code_form: bool,
    sent: bool,
    lifetime: &'a str,
}

#[derive(Template)]
#[template(path = "landing.html")]
struct LandingPage<'a> {
    head: Head<'a>,
    title: &'a str,
    csrf: &'a str,
    server_encoded: &'a str,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage<'a> {
    head: Head<'a>,
    title: &'a str,
    csrf: &'a str,
    server: &'a str,
    username: &'a str,
    code: &'a str,
    deep_link: &'a str,
    qr_svg: &'a str,
}

#[derive(Template)]
#[template(path = "oath.html")]
struct OathPage<'a> {
    head: Head<'a>,
    title: &'a str,
    username: &'a str,
    qr_svg: &'a str,
}

#[derive(Template)]
#[template(path = "changepin.html")]
struct ChangePinPage<'a> {
    head: Head<'a>,
    title: &'a str,
    csrf: &'a str,
    form_id: &'a str,
    string: &'a str,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    head: Head<'a>,
    title: &'a str,
    text: &'a str,
    link: Option<(&'a str, &'a str)>,
}

// ---------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------

/// The pages' Content-Security-Policy: no scripts at all.
fn csp(app: &App) -> String {
    let logo = app
        .config
        .pages
        .logo_url
        .as_deref()
        .and_then(logo_origin)
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:{logo}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// The CSRF cookie `token` as a `Set-Cookie` value.
fn csrf_cookie(app: &App, token: &str) -> String {
    let secure = if app.config.server.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict{secure}",
        guard::CSRF_COOKIE
    )
}

/// A page answer with the security headers (and the CSRF cookie, if given).
fn respond(app: &App, status: StatusCode, html: String, cookie: Option<&str>) -> Response {
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    let mut set = |name, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, "text/html; charset=utf-8");
    set(header::CONTENT_SECURITY_POLICY, &csp(app));
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::CACHE_CONTROL, "no-store");
    if let Some(token) = cookie {
        set(header::SET_COOKIE, &csrf_cookie(app, token));
    }
    response
}

/// Renders `page`; a template error (a bug) is logged and becomes a 500.
fn render(app: &App, status: StatusCode, page: &impl Template, cookie: Option<&str>) -> Response {
    match page.render() {
        Ok(html) => respond(app, status, html, cookie),
        Err(e) => {
            tracing::error!("page template failed: {e}");
            respond(
                app,
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>Internal error.</p>".into(),
                None,
            )
        }
    }
}

/// A page with one message.
fn message(
    app: &App,
    status: StatusCode,
    title: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Response {
    let page = MessagePage {
        head: Head::of(app),
        title,
        text,
        link,
    };
    render(app, status, &page, None)
}

/// The CSRF cookie of the request, if any.
fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == guard::CSRF_COOKIE).then_some(value)
        })
}

/// The request's valid CSRF token, or a new one (to be set as a cookie).
fn token_for_page(app: &App, headers: &HeaderMap) -> (String, bool) {
    match cookie_token(headers) {
        Some(t) if app.pages.csrf_is_valid(t) => (t.to_string(), false),
        _ => (app.pages.new_csrf(), true),
    }
}

fn too_many(app: &App, retry_after: u64) -> Response {
    let mut r = message(
        app,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests",
        "Too many requests. Please wait a minute and try again.",
        None,
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    r
}

/// Counts a page request from `peer`.
#[allow(clippy::result_large_err)]
fn limit_address(app: &App, peer: &SocketAddr) -> Result<(), Response> {
    app.pages
        .hit_address(
            &peer.ip().to_string(),
            app.config.pages.requests_per_minute_per_address,
        )
        .map_err(|retry| too_many(app, retry))
}

/// What [`check_post`] reads of every page form.
trait PageForm {
    /// The hidden CSRF field.
    fn csrf(&self) -> &str;
    /// The user name typed into the form.
    fn username(&self) -> &str;
}

macro_rules! page_form {
    ($($form:ty),*) => {$(
        impl PageForm for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
            fn username(&self) -> &str {
                &self.username
            }
        }
    )*};
}

page_form!(UserForm, CodeForm, ChangePinForm);

/// The checks of every form POST: the address limit, the form itself, the
/// CSRF pair, then (with `limit_user`) the user-name limit.
#[allow(clippy::result_large_err)]
fn check_post<T: PageForm>(
    app: &App,
    peer: &SocketAddr,
    headers: &HeaderMap,
    form: Result<Form<T>, FormRejection>,
    limit_user: bool,
) -> Result<(T, String), Response> {
    limit_address(app, peer)?;
    let Ok(Form(form)) = form else {
        return Err(message(
            app,
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The form was incomplete or not sent as a web form. Go back, reload the page and try again.",
            None,
        ));
    };
    let cookie = cookie_token(headers);
    if !app.pages.csrf_matches(cookie, form.csrf()) {
        return Err(message(
            app,
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form has expired or was not sent from this site (its security token is missing or wrong). Reload the page and try again; cookies must be enabled.",
            None,
        ));
    }
    if limit_user {
        let user = form.username();
        app.pages
            .hit_user(
                &user.trim().to_lowercase(),
                app.config.pages.requests_per_minute_per_user,
            )
            .map_err(|retry| too_many(app, retry))?;
    }
    let token = cookie.unwrap_or_default().to_string();
    Ok((form, token))
}

/// A user name as typed: trimmed; `None` if empty, too long or with control characters.
fn clean_name(name: &str) -> Option<String> {
    let name = name.trim();
    (!name.is_empty() && name.len() <= 256 && !name.chars().any(char::is_control))
        .then(|| name.to_string())
}

/// Runs `job`, a send for `username`, on the blocking pool in the
/// background, bounded per transport and for directory look-ups (see
/// `provision::queue`; dropped with a rate-limited WARN when full).
fn in_background(
    app: &Arc<App>,
    username: &str,
    what: &'static str,
    job: impl FnOnce(&App) + Send + 'static,
) {
    provision::queue::in_background(app, username, what, job);
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        STYLESHEET,
    )
        .into_response()
}

#[derive(Deserialize)]
struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
}

async fn provision_form(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = limit_address(&app, &peer) {
        return r;
    }
    let (token, fresh) = token_for_page(&app, &headers);
    let page = ProvisionPage {
        head: Head::of(&app),
        title: "Provision a mobile device",
        csrf: &token,
        sent: false,
    };
    render(&app, StatusCode::OK, &page, fresh.then_some(token.as_str()))
}

async fn provision_request(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<UserForm>, FormRejection>,
) -> Response {
    let (form, token) = match check_post(&app, &peer, &headers, form, true) {
        Ok(x) => x,
        Err(r) => return r,
    };
    // Answer at once and send in the background: the answer and its timing
    // are the same whoever the user is.
    if let Some(name) = clean_name(&form.username) {
        in_background(&app, &name.clone(), "provision code request", move |app| {
            // The outcome is in the audit trail.
            let _ = provision::send_code(app, &name, &Source::Page { addr: peer });
        });
    }
    let page = ProvisionPage {
        head: Head::of(&app),
        title: "Provision a mobile device",
        csrf: &token,
        sent: true,
    };
    render(&app, StatusCode::OK, &page, None)
}

fn reset_page(
    app: &App,
    headers: &HeaderMap,
    code_form: bool,
    sent: bool,
    token: Option<&str>,
) -> Response {
    let (token, fresh) = match token {
        Some(t) => (t.to_string(), false),
        None => token_for_page(app, headers),
    };
    let lifetime = provision::describe_lifetime(app.config.pages.reset_code_ttl);
    let page = ResetPage {
        head: Head::of(app),
        title: "Reset PIN",
        csrf: &token,
        code_form,
        sent,
        lifetime: &lifetime,
    };
    render(app, StatusCode::OK, &page, fresh.then_some(token.as_str()))
}

async fn reset_form(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = limit_address(&app, &peer) {
        return r;
    }
    reset_page(&app, &headers, false, false, None)
}

async fn reset_code_form(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = limit_address(&app, &peer) {
        return r;
    }
    reset_page(&app, &headers, true, false, None)
}

async fn reset_request(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<UserForm>, FormRejection>,
) -> Response {
    let (form, token) = match check_post(&app, &peer, &headers, form, true) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Some(name) = clean_name(&form.username) {
        in_background(&app, &name.clone(), "ResetPIN code request", move |app| {
            // The outcome is in the audit trail.
            let _ = reset::send_reset_code(app, &name, &Source::Page { addr: peer });
        });
    }
    reset_page(&app, &headers, true, true, Some(&token))
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    code: String,
}

async fn reset_redeem(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<CodeForm>, FormRejection>,
) -> Response {
    let (form, _) = match check_post(&app, &peer, &headers, form, true) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let name = clean_name(&form.username).unwrap_or_default();
    let job = app.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        reset::redeem_reset_code(&job, &name, &form.code, &Source::Page { addr: peer })
    })
    .await;
    match outcome {
        Ok(Ok(())) => message(
            &app,
            StatusCode::OK,
            "PIN reset",
            "Your PIN has been reset. A new PIN has been sent to your registered address.",
            None,
        ),
        Ok(Err(reset::ResetError::Failure)) => message(
            &app,
            StatusCode::OK,
            "PIN not reset",
            "PIN not reset. The reset code was wrong, already used or expired. Request a new code and try again.",
            Some(("/resetpin", "Request a new code")),
        ),
        Ok(Err(e)) => {
            tracing::error!("ResetPIN failed: {e}");
            internal(&app)
        }
        Err(_) => internal(&app),
    }
}

fn internal(app: &App) -> Response {
    message(
        app,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Error",
        "Something went wrong on the server. Please try again later.",
        None,
    )
}

/// Percent-encodes a query value of the deep link (RFC 3986 unreserved kept).
fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The deep link the mobile app opens: `pinwheel://provision?server=BASE&user=U&code=C`.
pub fn deep_link(server: &str, username: &str, code: &str) -> String {
    format!(
        "pinwheel://provision?server={}&user={}&code={}",
        encode_component(server),
        encode_component(username),
        encode_component(code)
    )
}

/// `text` as an SVG QR code (no XML declaration, for inline use).
fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .build();
    let start = svg.find("<svg")?;
    Some(svg[start..].to_string())
}

/// `GET /provision`: the Provision URL landing page. Never sees the code.
pub async fn provision_landing(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = limit_address(&app, &peer) {
        return r;
    }
    let (token, fresh) = token_for_page(&app, &headers);
    let server = encode_component(&app.config.server.public_url);
    let page = LandingPage {
        head: Head::of(&app),
        title: "Provision your mobile device",
        csrf: &token,
        server_encoded: &server,
    };
    render(&app, StatusCode::OK, &page, fresh.then_some(token.as_str()))
}

/// `POST /provision/settings`: the server settings and a QR code of the
/// deep link. Looks nothing up and spends nothing.
async fn provision_settings(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<CodeForm>, FormRejection>,
) -> Response {
    let (form, token) = match check_post(&app, &peer, &headers, form, false) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let code = form.code.trim();
    let Some(username) =
        clean_name(&form.username).filter(|_| !code.is_empty() && code.len() <= 64)
    else {
        return message(
            &app,
            StatusCode::BAD_REQUEST,
            "Missing details",
            "Enter both the user name and the Mobile Provision Code from your message.",
            Some(("/provision", "Back")),
        );
    };
    let server = &app.config.server.public_url;
    let link = zeroize::Zeroizing::new(deep_link(server, &username, code));
    let Some(svg) = qr_svg(&link) else {
        return internal(&app);
    };
    let page = SettingsPage {
        head: Head::of(&app),
        title: "Server settings",
        csrf: &token,
        server,
        username: &username,
        code,
        deep_link: &link,
        qr_svg: &svg,
    };
    render(&app, StatusCode::OK, &page, None)
}

/// `POST /provision/redeem`: OATH users redeem their code here and see the
/// `otpauth://` QR once. Anyone else sees "Provision Failure" (and, if the
/// user is not in OATH mode, the code is not spent).
async fn provision_redeem(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<CodeForm>, FormRejection>,
) -> Response {
    let (form, _) = match check_post(&app, &peer, &headers, form, true) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let name = clean_name(&form.username).unwrap_or_default();
    let job = app.clone();
    let shown = name.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let oath = job
            .store
            .with(|c| crate::store::users::by_name(c, &name))
            .ok()
            .flatten()
            .is_some_and(|u| u.mode == "oath");
        if !oath {
            return Err(provision::ProvisionError::Failure);
        }
        provision::redeem(
            &job,
            &name,
            &form.code,
            "authenticator app",
            &Source::Page { addr: peer },
        )
    })
    .await;
    match outcome {
        Ok(Ok(p)) => {
            let Some(uri) = p.otpauth_uri.as_ref() else {
                return internal(&app);
            };
            let Some(svg) = qr_svg(uri) else {
                return internal(&app);
            };
            let page = OathPage {
                head: Head::of(&app),
                title: "Device Provisioned",
                username: &shown,
                qr_svg: &svg,
            };
            render(&app, StatusCode::OK, &page, None)
        }
        Ok(Err(provision::ProvisionError::Failure)) => message(
            &app,
            StatusCode::FORBIDDEN,
            "Provision Failure",
            "Provision Failure. The code may be wrong, used or expired, or the account is not set up for an authenticator app (then use the Pinwheel app).",
            Some(("/resetpin/provision", "Request a new code")),
        ),
        Ok(Err(e)) => {
            tracing::error!("page provision failed: {e}");
            internal(&app)
        }
        Err(_) => internal(&app),
    }
}

async fn changepin_form(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = limit_address(&app, &peer) {
        return r;
    }
    let (form_id, string) = app.pages.open_form();
    let (token, fresh) = token_for_page(&app, &headers);
    let page = ChangePinPage {
        head: Head::of(&app),
        title: "Change PIN",
        csrf: &token,
        form_id: &form_id,
        string: string.as_str(),
    };
    render(&app, StatusCode::OK, &page, fresh.then_some(token.as_str()))
}

#[derive(Deserialize)]
struct ChangePinForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    form: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    otc_old: String,
    #[serde(default)]
    otc_new1: String,
    #[serde(default)]
    otc_new2: String,
}

async fn changepin_submit(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<ChangePinForm>, FormRejection>,
) -> Response {
    let (form, _) = match check_post(&app, &peer, &headers, form, true) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let failed = |app: &App| {
        message(
            app,
            StatusCode::OK,
            "PIN not changed",
            "PIN not changed. Check your user name and the one-time codes, and try again with a new security string.",
            Some(("/userportal/changepin", "Try again")),
        )
    };
    let Some(string) = app.pages.take_form(&form.form) else {
        return failed(&app);
    };
    let name = clean_name(&form.username).unwrap_or_default();
    let job = app.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        reset::change_pin(
            &job,
            &string,
            &name,
            form.otc_old.trim(),
            form.otc_new1.trim(),
            form.otc_new2.trim(),
            &Source::Page { addr: peer },
        )
    })
    .await;
    match outcome {
        Ok(Ok(())) => message(
            &app,
            StatusCode::OK,
            "PIN changed",
            "Your PIN has been changed. Use the new PIN from your next login.",
            None,
        ),
        Ok(Err(reset::ResetError::Failure)) => failed(&app),
        Ok(Err(e)) => {
            tracing::error!("change PIN failed: {e}");
            internal(&app)
        }
        Err(_) => internal(&app),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_links_escape_their_values() {
        assert_eq!(
            deep_link("https://vpn.example.org", "j doe&x", "0123"),
            "pinwheel://provision?server=https%3A%2F%2Fvpn.example.org&user=j%20doe%26x&code=0123"
        );
    }

    #[test]
    fn qr_codes_are_inline_svg() {
        let svg = qr_svg("pinwheel://provision?server=x").unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
    }

    #[test]
    fn logo_origins_and_config_checks() {
        assert_eq!(
            logo_origin("https://cdn.example.org/a.png"),
            Some("https://cdn.example.org")
        );
        let mut cfg = PagesConfig::default();
        assert!(check_config(&cfg).is_none());
        cfg.logo_url = Some("javascript:alert(1)".into());
        assert_eq!(check_config(&cfg).unwrap().0, "pages.logo_url");
        cfg.logo_url = Some("/logo.png".into());
        assert!(check_config(&cfg).is_none());
        cfg.reset_code_ttl = std::time::Duration::from_secs(1);
        assert_eq!(check_config(&cfg).unwrap().0, "pages.reset_code_ttl");
    }
}
