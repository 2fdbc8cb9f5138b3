//! The HTTP front door: the REST provisioning API under `/api/v1` ([`api`])
//! and `/healthz`. Served with axum on an already bound listener; drains on
//! shutdown.
//!
//! Request bodies are capped at `http.max_body_bytes`. Nothing here puts a
//! code or token in a URL, a log line or an error message; blocking store and
//! transport work runs on the blocking pool.

pub mod api;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;

use crate::daemon::App;

/// Builds the router with every route.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.http.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .nest("/api/v1", api::routes())
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

/// `GET /healthz`: 200 `ok` when the store answers, 503 otherwise.
async fn healthz(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
) -> (axum::http::StatusCode, &'static str) {
    let ok = tokio::task::spawn_blocking(move || {
        app.store
            .with(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .is_ok()
    })
    .await
    .unwrap_or(false);
    if ok {
        (axum::http::StatusCode::OK, "ok\n")
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "store unavailable\n",
        )
    }
}

/// Serves HTTP on `listener` until `shutdown` turns true, then lets
/// in-flight requests finish.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let router = router(app);
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            crate::system::shutdown_requested(&mut shutdown).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!("HTTP server stopped: {e}");
    }
}
