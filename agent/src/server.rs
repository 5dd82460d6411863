//! The admin server: `/metrics`, `/healthz`, `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::exposition::{self, Format};

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
    /// Size of the last page, to size the next buffer.
    last_page: Arc<AtomicUsize>,
}

impl AdminState {
    /// State over a registry and a readiness flag.
    pub fn new(registry: Arc<Registry>, ready: Arc<AtomicBool>) -> Self {
        Self {
            registry,
            ready,
            last_page: Arc::new(AtomicUsize::new(64 * 1024)),
        }
    }
}

/// The router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Binds `addr`, failing with the address in the message.
pub async fn bind(addr: &str) -> Result<TcpListener, std::io::Error> {
    let parsed: SocketAddr = addr.parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {e}"))
    })?;
    TcpListener::bind(parsed)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

async fn metrics(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    // 1/16 headroom: the page grows a little as containers come and go.
    let capacity = state.last_page.load(Ordering::Relaxed);
    match exposition::render_sized(&state.registry, format, capacity + capacity / 16) {
        Ok(body) => {
            state.last_page.store(body.len(), Ordering::Relaxed);
            ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response(),
    }
}

async fn readyz(State(state): State<AdminState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first complete collection\n",
        )
            .into_response()
    }
}
