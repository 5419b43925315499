//! /healthz, /readyz and /metrics (Prometheus text format).
//!
//! The server starts once the configuration and CRDs have been checked, so /readyz answering at
//! all means the operator is configured and connected; whether this replica leads and reconciles
//! is the `molecule_leader` gauge (a follower that never turned ready would block a rolling
//! update).

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use crate::metrics::Metrics;

/// The operator's HTTP routes.
pub fn router(metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(|State(m): State<Metrics>| async move {
                ([(axum::http::header::CONTENT_TYPE, Metrics::CONTENT_TYPE)], m.encode())
            }),
        )
        .with_state(metrics)
}
