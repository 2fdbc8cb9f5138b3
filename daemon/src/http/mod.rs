//! The HTTP front door: the REST provisioning API under `/api/v1` ([`api`])
//! and `/healthz`, routed with axum and served by hyper on an already bound
//! listener, as HTTPS when `[http] tls_certificate` and `tls_key` are set
//! ([`tls`]) and as plain HTTP otherwise.
//!
//! This module owns the connection limits that keep one client from starving
//! the others: at most `http.max_connections` connections (more are closed at
//! accept), at most `http.max_connections_per_address` of them from one
//! source address (an IPv4 address or an IPv6 /64, see [`client_key`]; more
//! from it are closed at accept, logged at powers of two), the TLS handshake
//! and then the headers each within
//! `http.header_timeout` (which also closes idle keep-alive connections), the whole request within `http.request_timeout`
//! (408), bodies capped at `http.max_body_bytes` (413). On shutdown it stops
//! accepting and lets in-flight requests finish. Nothing here puts a code or
//! token in a URL, a log line or an error message; blocking store and
//! transport work runs on the blocking pool.

pub mod agent;
pub mod agent_xml;
pub mod api;
pub mod pages;
pub mod tls;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

use crate::daemon::App;

/// The address a client is counted under for connection and page limits:
/// an IPv4 address as is (an IPv4-mapped IPv6 address as its IPv4
/// address), an IPv6 address as its /64 network (the host bits zeroed),
/// since one client commonly holds a whole /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(bits))
            }
        },
    }
}

/// Open connections per [`client_key`]; an entry goes when its count drops
/// to zero, so the map holds at most `http.max_connections` keys.
#[derive(Default)]
struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted in [`PerAddress`]; uncounted on drop.
struct AddressSlot {
    table: Arc<PerAddress>,
    key: IpAddr,
}

impl PerAddress {
    /// Counts a connection from `key`; `None` when `cap` are already open.
    fn admit(table: &Arc<PerAddress>, key: IpAddr, cap: usize) -> Option<AddressSlot> {
        let mut open = table.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: table.clone(),
            key,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Builds the router with every route and the per-request limits.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.http.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(crate::metrics::serve))
        .merge(pages::routes())
        .nest("/api/v1", api::routes())
        .merge(agent_xml::routes())
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            request_deadline,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

/// Answers 408 when a request (reading its body included) takes longer than
/// `http.request_timeout`.
async fn request_deadline(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(app.config.http.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            axum::Json(serde_json::json!({
                "error": "REQUEST_TIMEOUT",
                "message": "the request was not completed in time"
            })),
        )
            .into_response(),
    }
}

/// `GET /healthz`: 200 `ok` when the store answers, 503 otherwise.
async fn healthz(State(app): State<Arc<App>>) -> (StatusCode, &'static str) {
    let ok = tokio::task::spawn_blocking(move || {
        app.store
            .with(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .is_ok()
    })
    .await
    .unwrap_or(false);
    if ok {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
    }
}

/// Serves HTTP (or HTTPS, when `app.tls` is set) on `listener` until
/// `shutdown` turns true, then stops accepting and waits (at most 10 s) for
/// open requests to finish.
///
/// A connection takes one of `http.max_connections` slots from accept until
/// it closes, its TLS handshake included, and one of
/// `http.max_connections_per_address` slots of its [`client_key`]; a handshake not finished within
/// `http.header_timeout` is dropped, so a client that never sends a
/// ClientHello cannot hold a slot.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let cfg = app.config.http.clone();
    let acceptor = app.tls.as_ref().map(|t| t.acceptor());
    if acceptor.is_none() {
        if let Ok(local) = listener.local_addr() {
            if !local.ip().is_loopback() {
                tracing::warn!(
                    listen = %local,
                    "HTTP without TLS on a non-loopback address: provision codes, device tokens and agent secrets would cross the network in clear; set [http] tls_certificate and tls_key, or put a TLS reverse proxy in front"
                );
            }
        }
    }
    let router = router(app);
    let slots = Arc::new(tokio::sync::Semaphore::new(cfg.max_connections));
    let graceful = GracefulShutdown::new();
    let mut refused: u64 = 0;
    let per_address = Arc::new(PerAddress::default());
    let mut refused_per_address: u64 = 0;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = crate::system::shutdown_requested(&mut shutdown) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!("HTTP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let key = client_key(peer.ip());
        let Some(address_slot) =
            PerAddress::admit(&per_address, key, cfg.max_connections_per_address)
        else {
            refused_per_address += 1;
            if refused_per_address.is_power_of_two() {
                tracing::warn!(
                    peer = %key,
                    "HTTP connection refused: {} connections open from this address (http.max_connections_per_address); {refused_per_address} refused so far",
                    cfg.max_connections_per_address
                );
            }
            drop(stream);
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    peer = %peer,
                    "HTTP connection refused: {} connections open (http.max_connections); {refused} refused so far",
                    cfg.max_connections
                );
            }
            drop(stream);
            continue;
        };
        // Handlers see the peer address as axum's ConnectInfo.
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        ));
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(cfg.header_timeout)
            .max_buf_size(64 * 1024);
        match &acceptor {
            None => {
                let connection =
                    graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(peer = %peer, "HTTP connection ended: {e}");
                    }
                    drop(slot);
                    drop(address_slot);
                });
            }
            Some(acceptor) => {
                let handshake = acceptor.accept(stream);
                let watcher = graceful.watcher();
                let limit = cfg.header_timeout;
                tokio::spawn(async move {
                    let _address_slot = address_slot;
                    let stream = match tokio::time::timeout(limit, handshake).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, "TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(peer = %peer, "TLS handshake not finished within http.header_timeout");
                            return;
                        }
                    };
                    let connection =
                        watcher.watch(http.serve_connection(TokioIo::new(stream), service));
                    if let Err(e) = connection.await {
                        tracing::debug!(peer = %peer, "HTTPS connection ended: {e}");
                    }
                    drop(slot);
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open after 10 s; closing them");
    }
}
