//! /healthz, /readyz and /metrics (OpenMetrics text).
//!
//! - `/healthz` (liveness) answers 503 with a body naming every watched loop (fleet-cache refresh
//!   of the main account, orphan scan, leader renewal) that has made no progress for longer than
//!   its bound ([`crate::watchdog`]): a hung dependency a restart may cure.
//! - `/readyz` answers 503 while the main account is marked unusable (its first listing failed,
//!   access denied). A follower that does not lead is ready: whether this replica leads is the
//!   `molecule_leader` gauge (a follower that never turned ready would block a rolling update).
//!
//! The server starts once the configuration and CRDs have been checked.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::metrics::Metrics;
use crate::watchdog::Watchdog;

#[derive(Clone)]
struct Shared {
    metrics: Metrics,
    dog: Watchdog,
}

fn probe(result: Result<(), String>) -> (StatusCode, String) {
    match result {
        Ok(()) => (StatusCode::OK, "ok".into()),
        Err(body) => (StatusCode::SERVICE_UNAVAILABLE, body + "\n"),
    }
}

/// The operator's HTTP routes, on the process's watchdog.
pub fn router(metrics: Metrics) -> Router {
    router_with(metrics, crate::watchdog::global().clone())
}

/// The routes on `dog`.
pub fn router_with(metrics: Metrics, dog: Watchdog) -> Router {
    Router::new()
        .route("/healthz", get(|State(s): State<Shared>| async move { probe(s.dog.health()) }))
        .route("/readyz", get(|State(s): State<Shared>| async move { probe(s.dog.readiness()) }))
        .route(
            "/metrics",
            get(|State(s): State<Shared>| async move {
                ([(axum::http::header::CONTENT_TYPE, Metrics::CONTENT_TYPE)], encode(&s.metrics, &s.dog))
            }),
        )
        .with_state(Shared { metrics, dog })
}

/// The registry's metrics and the watchdog's, before the one `# EOF`.
fn encode(metrics: &Metrics, dog: &Watchdog) -> String {
    let text = metrics.encode();
    let body = text.strip_suffix("# EOF\n").unwrap_or(&text);
    format!("{body}{}# EOF\n", dog.encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_metrics_come_before_the_end_marker() {
        let dog = Watchdog::default();
        dog.register("orphan-scan", std::time::Duration::from_mins(1), true);
        let text = encode(&Metrics::new(), &dog);
        assert!(text.contains("molecule_watchdog_stalled{loop=\"orphan-scan\"} 0\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
        assert_eq!(probe(Err("loop x".into())).0, StatusCode::SERVICE_UNAVAILABLE);
    }
}
