//! The fault proxy: forwards AWS SDK traffic to moto, counts calls per service and operation, and
//! on demand answers named operations with AWS errors, resets connections, adds latency or hangs.
//!
//! Control endpoints (JSON), under `/__faults`:
//! - `GET /healthz`; `GET /counts`; `POST /counts/reset`; `GET /requests` (recent mutating calls)
//! - `GET /rules`; `POST /rules` (one [`Rule`] or a list, appended); `DELETE /rules` (also releases
//!   every call a `hang` rule holds: its connection is closed without an answer)
//! - `GET /model`, `POST /model`: the AWS model of the moto behind the proxy (ClientToken
//!   idempotency, listing lag, purge of terminated instances), forwarded to moto's `/__aws_model`
//!   (tests/e2e/testenv/aws_model.py)
//!
//! moto has no fault injection of its own, so this is how throttling, 5xx, DependencyViolation
//! and friends reach the operator in tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

mod classify;
mod respond;

use classify::contains;
pub use classify::{Call, classify};
use respond::{error_response, throttle_of};

/// What a rule does to a matching call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// The service's throttling error (EC2: 503 RequestLimitExceeded).
    Throttle,
    /// An error with `status` and `code` (default 500 InternalError).
    Error,
    /// Close the connection without an answer.
    Reset,
    /// Wait `latencyMs`, then forward.
    Latency,
    /// Accept the call and never answer, until the rules are cleared (`DELETE /rules`), which
    /// closes the connection without an answer. The call never reaches moto.
    Hang,
}

/// One fault rule. Unset matchers match everything.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Service from the request's SigV4 scope (ec2, route53, secretsmanager, sts, iam, ssm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Operation name, such as RunInstances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// What to do.
    pub kind: FaultKind,
    /// Share of matching calls hit, 0.0..=1.0 (default 1.0).
    #[serde(default = "one")]
    pub probability: f64,
    /// Fire at most this many times (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// HTTP status for `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// AWS error code for `error` (and to override the throttling code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Delay for `latency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Only requests whose body contains this text (as sent: form-encoded or JSON), for example an
    /// owner uid, so one scenario's fault does not hit the others sharing the world.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// How many times the rule fired (read-only).
    #[serde(default)]
    pub fired: u64,
}

fn one() -> f64 {
    1.0
}

/// Calls seen, by `service.Operation`, split by what the proxy did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Every call.
    pub total: BTreeMap<String, u64>,
    /// Calls answered by a fault instead of moto.
    pub faulted: BTreeMap<String, u64>,
}

/// Most recent mutating requests kept for `GET /requests` (a bounded ring).
const KEPT_REQUESTS: usize = 2000;

/// One captured request: operation and its body (form-encoded or JSON), as sent.
#[derive(Clone, Debug, Serialize)]
pub struct Captured {
    /// `service.Operation`.
    pub call: String,
    /// The body, truncated to 64 KiB.
    pub body: String,
}

#[derive(Debug, Default)]
struct Inner {
    rules: Vec<Rule>,
    counts: Counts,
    rng: u64,
    requests: std::collections::VecDeque<Captured>,
}

/// Shared proxy state.
#[derive(Clone, Debug)]
pub struct Proxy {
    inner: Arc<Mutex<Inner>>,
    /// Bumped when the rules are cleared: releases the calls `hang` rules hold.
    release: Arc<watch::Sender<u64>>,
}

impl Default for Proxy {
    fn default() -> Self {
        Self { inner: Arc::default(), release: Arc::new(watch::channel(0).0) }
    }
}

/// What to do with one call.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Forward to moto.
    Forward,
    /// Forward after a delay.
    Delay(Duration),
    /// Answer with an error.
    Fail(u16, String, String),
    /// Drop the connection.
    Reset,
    /// Hold the call until the rules are cleared, then drop the connection.
    Hang,
}

impl Proxy {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts the call and decides its fate from the first matching rule that fires.
    pub fn decide(&self, call: &Call, body: &[u8]) -> Decision {
        let mut inner = self.lock();
        let key = format!("{}.{}", call.service, call.operation);
        *inner.counts.total.entry(key.clone()).or_default() += 1;
        let mut rng = inner.rng;
        let mut decision = Decision::Forward;
        for rule in &mut inner.rules {
            if rule.service.as_ref().is_some_and(|s| s != &call.service)
                || rule.operation.as_ref().is_some_and(|o| o != &call.operation)
                || rule.count.is_some_and(|c| rule.fired >= c)
                || rule.body_contains.as_ref().is_some_and(|n| !contains(body, n.as_bytes()))
            {
                continue;
            }
            // xorshift64*: deterministic and good enough to pick a share of calls.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            #[allow(clippy::cast_precision_loss)] // a 53-bit uniform draw, on purpose
            let draw = (rng >> 11) as f64 / (1u64 << 53) as f64;
            if draw >= rule.probability {
                continue;
            }
            rule.fired += 1;
            decision = match rule.kind {
                FaultKind::Latency => Decision::Delay(Duration::from_millis(rule.latency_ms.unwrap_or(1000))),
                FaultKind::Reset => Decision::Reset,
                FaultKind::Hang => Decision::Hang,
                FaultKind::Throttle => {
                    let (status, code, msg) = throttle_of(&call.service);
                    Decision::Fail(
                        status,
                        rule.code.clone().unwrap_or_else(|| code.into()),
                        rule.message.clone().unwrap_or_else(|| msg.into()),
                    )
                }
                FaultKind::Error => Decision::Fail(
                    rule.status.unwrap_or(500),
                    rule.code.clone().unwrap_or_else(|| "InternalError".into()),
                    rule.message.clone().unwrap_or_else(|| "Injected by the fault proxy".into()),
                ),
            };
            break;
        }
        inner.rng = rng;
        if !matches!(decision, Decision::Forward | Decision::Delay(_)) {
            *inner.counts.faulted.entry(key).or_default() += 1;
        }
        decision
    }

    /// Keeps a mutating request (not Describe/List/Get) so tests can check what was sent where
    /// moto drops a field (it ignores a root volume's IOPS and throughput, for one).
    pub fn capture(&self, call: &Call, body: &[u8]) {
        if ["Describe", "List", "Get"].iter().any(|p| call.operation.starts_with(p)) {
            return;
        }
        let mut inner = self.lock();
        if inner.requests.len() >= KEPT_REQUESTS {
            inner.requests.pop_front();
        }
        let body = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]).into_owned();
        inner.requests.push_back(Captured { call: format!("{}.{}", call.service, call.operation), body });
    }

    /// Removes every rule and releases the calls hung by them.
    pub fn clear_rules(&self) {
        self.lock().rules.clear();
        self.release.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Appends rules.
    pub fn add_rules(&self, rules: Vec<Rule>) {
        self.lock().rules.extend(rules);
    }
}

type Resp = Response<Full<Bytes>>;

fn json_response(status: StatusCode, v: &impl Serialize) -> Resp {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    r
}

fn control(proxy: &Proxy, method: &str, path: &str, body: &[u8]) -> Resp {
    match (method, path) {
        ("GET", "/__faults/healthz") => json_response(StatusCode::OK, &"ok"),
        ("GET", "/__faults/counts") => json_response(StatusCode::OK, &proxy.lock().counts),
        ("POST", "/__faults/counts/reset") => {
            proxy.lock().counts = Counts::default();
            json_response(StatusCode::OK, &"reset")
        }
        ("GET", "/__faults/requests") => json_response(StatusCode::OK, &proxy.lock().requests),
        ("GET", "/__faults/rules") => json_response(StatusCode::OK, &proxy.lock().rules),
        ("DELETE", "/__faults/rules") => {
            proxy.clear_rules();
            json_response(StatusCode::OK, &"cleared")
        }
        ("POST", "/__faults/rules") => {
            let parsed: Result<Vec<Rule>, _> = serde_json::from_slice::<Vec<Rule>>(body)
                .or_else(|_| serde_json::from_slice::<Rule>(body).map(|r| vec![r]));
            match parsed {
                Ok(rules) if rules.iter().all(|r| (0.0..=1.0).contains(&r.probability)) => {
                    proxy.add_rules(rules);
                    json_response(StatusCode::OK, &proxy.lock().rules)
                }
                Ok(_) => json_response(StatusCode::BAD_REQUEST, &"probability must be within 0..=1"),
                Err(e) => json_response(StatusCode::BAD_REQUEST, &format!("bad rule: {e}")),
            }
        }
        _ => json_response(StatusCode::NOT_FOUND, &"unknown control endpoint"),
    }
}

/// Failure that drops the client connection.
#[derive(Debug, thiserror::Error)]
#[error("connection reset by the fault proxy")]
pub struct ResetConnection;

async fn handle(
    proxy: Proxy,
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: Arc<str>,
    req: Request<Incoming>,
) -> Result<Resp, ResetConnection> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| ResetConnection)?.to_bytes();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    if parts.uri.path() == "/__faults/model" {
        return Ok(model_control(&client, &upstream, parts, body).await);
    }
    if path.starts_with("/__faults") {
        return Ok(control(&proxy, parts.method.as_str(), parts.uri.path(), &body));
    }
    let call = classify(parts.method.as_str(), &path, &parts.headers, &body);
    proxy.capture(&call, &body);
    // Subscribed before the rules are read, so a clear that races this call still releases it.
    let mut released = proxy.release.subscribe();
    match proxy.decide(&call, &body) {
        Decision::Reset => return Err(ResetConnection),
        Decision::Hang => {
            let _ = released.changed().await;
            return Err(ResetConnection);
        }
        Decision::Fail(status, code, message) => return Ok(error_response(&call, status, &code, &message)),
        Decision::Delay(d) => tokio::time::sleep(d).await,
        Decision::Forward => {}
    }
    match forward(&client, &format!("{upstream}{path}"), parts, body).await {
        Ok(resp) => Ok(resp),
        Err(Upstream::Reset) => Err(ResetConnection),
        Err(Upstream::Unreachable(e)) => Ok(error_response(&call, 502, "BadGateway", &format!("upstream: {e}"))),
    }
}

/// Why a forwarded call has no answer.
enum Upstream {
    /// The call cannot be forwarded or moto's answer broke off.
    Reset,
    /// moto cannot be reached.
    Unreachable(String),
}

async fn forward(
    client: &Client<HttpConnector, Full<Bytes>>,
    uri: &str,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Result<Resp, Upstream> {
    let uri: hyper::Uri = uri.parse().map_err(|_| Upstream::Reset)?;
    let mut out = Request::builder().method(parts.method).uri(uri);
    for (k, v) in &parts.headers {
        out = out.header(k, v);
    }
    // The AWS model (testenv/aws_model.py) lags listings only for calls through the proxy.
    out = out.header("x-molecule-via-proxy", "1");
    let out = out.body(Full::new(body)).map_err(|_| Upstream::Reset)?;
    let resp = client.request(out).await.map_err(|e| Upstream::Unreachable(e.to_string()))?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map_err(|_| Upstream::Reset)?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(bytes)))
}

/// `/__faults/model` is the AWS model of the moto upstream: forwarded to its `/__aws_model`.
async fn model_control(
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: &str,
    mut parts: hyper::http::request::Parts,
    body: Bytes,
) -> Resp {
    parts.headers.remove(hyper::header::HOST);
    match forward(client, &format!("{upstream}/__aws_model"), parts, body).await {
        Ok(resp) => resp,
        Err(Upstream::Reset) => json_response(StatusCode::BAD_GATEWAY, &"moto broke off its answer"),
        Err(Upstream::Unreachable(e)) => {
            json_response(StatusCode::BAD_GATEWAY, &format!("moto (with the AWS model loaded) unreachable: {e}"))
        }
    }
}

/// Serves the proxy on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, upstream: String, proxy: Proxy) -> std::io::Result<()> {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let upstream: Arc<str> = upstream.trim_end_matches('/').into();
    {
        let mut inner = proxy.lock();
        inner.rng = 0x9E37_79B9_7F4A_7C15;
    }
    loop {
        let (stream, _peer): (_, SocketAddr) = listener.accept().await?;
        let (proxy, client, upstream) = (proxy.clone(), client.clone(), upstream.clone());
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req| handle(proxy.clone(), client.clone(), upstream.clone(), req));
            // An error here is either a client that went away or an injected reset.
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(service: &str, target: Option<&str>) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=AKID/20261123/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=x"
        );
        h.insert("authorization", auth.parse().expect("header"));
        if let Some(t) = target {
            h.insert("x-amz-target", t.parse().expect("header"));
        }
        h
    }

    #[test]
    fn classifies_each_protocol() {
        let c = classify("POST", "/", &headers("ec2", None), b"Action=RunInstances&Version=2016-11-15");
        assert_eq!((c.service.as_str(), c.operation.as_str()), ("ec2", "RunInstances"));
        let c = classify("POST", "/", &headers("secretsmanager", Some("secretsmanager.CreateSecret")), b"{}");
        assert_eq!(c.operation, "CreateSecret");
        let c = classify("POST", "/2013-04-01/hostedzone/Z123/rrset/", &headers("route53", None), b"<xml/>");
        assert_eq!(c.operation, "ChangeResourceRecordSets");
        let c = classify("GET", "/2013-04-01/change/C1", &headers("route53", None), b"");
        assert_eq!(c.operation, "GetChange");
    }

    #[test]
    fn rules_fire_by_operation_count_and_share() {
        let p = Proxy::default();
        p.lock().rng = 42;
        p.add_rules(vec![Rule {
            service: Some("ec2".into()),
            operation: Some("DeleteSecurityGroup".into()),
            kind: FaultKind::Error,
            probability: 1.0,
            count: Some(2),
            status: Some(400),
            code: Some("DependencyViolation".into()),
            message: None,
            latency_ms: None,
            body_contains: None,
            fired: 0,
        }]);
        let del = Call { service: "ec2".into(), operation: "DeleteSecurityGroup".into() };
        let run = Call { service: "ec2".into(), operation: "RunInstances".into() };
        assert!(matches!(p.decide(&del, b""), Decision::Fail(400, ref c, _) if c == "DependencyViolation"));
        assert_eq!(p.decide(&run, b""), Decision::Forward);
        assert!(matches!(p.decide(&del, b""), Decision::Fail(..)));
        assert_eq!(p.decide(&del, b""), Decision::Forward, "count exhausted");
        let scoped = Proxy::default();
        scoped.add_rules(vec![
            serde_json::from_str(r#"{"operation":"RunInstances","kind":"error","status":500,"bodyContains":"uid-1"}"#)
                .expect("rule"),
        ]);
        assert_eq!(scoped.decide(&run, b"Tag.1.Value=uid-2"), Decision::Forward, "another owner's call");
        assert!(matches!(scoped.decide(&run, b"Tag.1.Value=uid-1"), Decision::Fail(500, ..)));
        let hung = Proxy::default();
        hung.add_rules(vec![
            serde_json::from_str(r#"{"operation":"RunInstances","kind":"hang","bodyContains":"uid-1"}"#).expect("rule"),
        ]);
        assert_eq!(hung.decide(&run, b"Tag.1.Value=uid-2"), Decision::Forward, "another owner's call");
        assert_eq!(hung.decide(&run, b"Tag.1.Value=uid-1"), Decision::Hang);
        hung.clear_rules();
        assert_eq!(hung.decide(&run, b"Tag.1.Value=uid-1"), Decision::Forward, "cleared");
        assert_eq!(p.lock().counts.total.get("ec2.DeleteSecurityGroup"), Some(&3));
        assert_eq!(p.lock().counts.faulted.get("ec2.DeleteSecurityGroup"), Some(&2));

        let q = Proxy::default();
        q.lock().rng = 7;
        q.add_rules(vec![
            serde_json::from_str(r#"{"service":"ec2","kind":"throttle","probability":0.3}"#).expect("rule"),
        ]);
        let hits = (0..1000).filter(|_| matches!(q.decide(&run, b""), Decision::Fail(503, ..))).count();
        assert!((200..400).contains(&hits), "{hits} of 1000 throttled at 30%");
    }
}
