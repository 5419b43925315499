//! A Cloudflare fault proxy for one scenario: it forwards every call to the test world's
//! Cloudflare fake, and while told to fail it answers the paginated listings (`page=` in the
//! query: the orphan scan's tunnel and TXT listings) with Cloudflare's 500 envelope. Only the
//! operator pointed at it (through `CLOUDFLARE_API_URL`) sees the fault, so scenarios running in
//! parallel against the shared fake are not hurt. A Tenant's own calls (find by name, records by
//! name, create, delete) carry no `page=` and pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::harness::{HarnessError, http_json};

#[derive(Debug, Default)]
struct Shared {
    upstream: String,
    failing: AtomicBool,
    failed: AtomicU64,
}

/// A running proxy (it stops with the test process).
#[derive(Clone, Debug)]
pub struct CfFaults {
    shared: Arc<Shared>,
    /// The base URL to give the operator as `CLOUDFLARE_API_URL` (`http://127.0.0.1:P/client/v4`).
    pub url: String,
}

impl CfFaults {
    /// Starts a proxy in front of `upstream` (the world's `CLOUDFLARE_API_URL`).
    pub async fn start(upstream: &str) -> Result<Self, HarnessError> {
        let origin = upstream.trim_end_matches('/').trim_end_matches("/client/v4").to_owned();
        let shared = Arc::new(Shared { upstream: origin, ..Shared::default() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| HarnessError::Spawn { cmd: "cf-faults listener".into(), source })?;
        let addr = listener.local_addr().map_err(|source| HarnessError::Spawn { cmd: "cf-faults".into(), source })?;
        let app = Router::new().fallback(forward).with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { shared, url: format!("http://{addr}/client/v4") })
    }

    /// Listings fail (500) from now on, or pass again.
    pub fn fail_listings(&self, on: bool) {
        self.shared.failing.store(on, Ordering::SeqCst);
    }

    /// How many listings were answered with a 500.
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::SeqCst)
    }
}

async fn forward(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path_and_query().map_or_else(String::new, |p| p.as_str().to_owned());
    if method == "GET" && path.contains("page=") && s.failing.load(Ordering::SeqCst) {
        s.failed.fetch_add(1, Ordering::SeqCst);
        let body = json!({"success": false, "errors": [{"code": 10000, "message": "injected: internal error"}],
                          "messages": [], "result": null});
        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    match http_json(&method, &format!("{}{path}", s.upstream), body, bearer.as_deref()).await {
        Ok((code, v)) => (StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY), axum::Json(v)).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
