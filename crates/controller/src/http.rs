//! /healthz, /readyz and /metrics (Prometheus text format).

use axum::Router;
use axum::routing::get;

/// The operator's HTTP routes.
pub fn router() -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
}

async fn metrics() -> String {
    let registry = prometheus_client::registry::Registry::default();
    let mut out = String::new();
    // Encoding into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}
