//! A small typed client of the Cloudflare API v4 endpoints the Tenant reconciler needs: named,
//! remotely managed tunnels, their ingress configuration and token, and the zone's records.
//! (The `cloudflare` crate lacks the token and configuration endpoints; see FACTS.md.)

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use super::{CfRecord, CloudError, CloudResult, ErrorKind, TIMED_OUT, Tunnel, Tunnels};

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// Page size of the listings (Cloudflare allows up to 1,000 tunnels and 5,000 records per page;
/// 100 is accepted by both).
const PER_PAGE: usize = 100;
/// Pages read by one listing at most (a bound on one orphan scan's Cloudflare calls).
const MAX_PAGES: usize = 200;
/// Cloudflare error code of a missing object (tunnel or record).
const NOT_FOUND_CODES: &[i64] = &[1003, 81044, 7003];

/// [`Tunnels`] on one account and zone.
#[derive(Clone)]
pub struct Cloudflare {
    base: String,
    token: String,
    account: String,
    zone: String,
    http: HttpClient<Https, Full<Bytes>>,
    metrics: Option<crate::metrics::Metrics>,
}

impl std::fmt::Debug for Cloudflare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never printed.
        f.debug_struct("Cloudflare")
            .field("base", &self.base)
            .field("account", &self.account)
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

impl Cloudflare {
    /// A client of `base` (`https://api.cloudflare.com/client/v4`, or the test world's fake).
    pub fn new(base: &str, token: &str, account: &str, zone: &str) -> Result<Self, CloudError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(super::aws::deadlines().connect));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| err(ErrorKind::Rejected, "load TLS roots for", base, "Tls", &e.to_string()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            account: account.to_owned(),
            zone: zone.to_owned(),
            http: HttpClient::builder(TokioExecutor::new()).build(https),
            metrics: None,
        })
    }

    /// Counts every call in `molecule_cloudflare_calls_total`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count(&self, operation: &'static str, outcome: &'static str) {
        if let Some(m) = &self.metrics {
            m.cloudflare_calls.get_or_create(&crate::metrics::CfCall { operation, outcome }).inc();
        }
    }

    /// Calls the API; returns `result` of a successful envelope.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        action: &'static str,
        target: &str,
    ) -> CloudResult<Value> {
        let url = format!("{}{path}", self.base);
        let req = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.map(|b| b.to_string()).unwrap_or_default())))
            .map_err(|e| err(ErrorKind::Rejected, action, target, "Request", &e.to_string()))?;
        crate::leader::check_fence()
            .map_err(|f| err(ErrorKind::Transient, action, target, "Fenced", &f.to_string()))?;
        let deadline = super::aws::deadlines().operation;
        let (status, bytes) = match tokio::time::timeout(deadline, self.send(req)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                self.count(action, "transport_error");
                let code =
                    if e.is_connect() && format!("{e:?}").contains("timed out") { TIMED_OUT } else { "Transport" };
                return Err(err(ErrorKind::Transient, action, target, code, &e.to_string()));
            }
            Err(_) => {
                self.count(action, "timeout");
                let message = format!("no answer within {deadline:?} (CLOUD_OPERATION_TIMEOUT_SECONDS)");
                return Err(err(ErrorKind::Transient, action, target, TIMED_OUT, &message));
            }
        };
        self.count(
            action,
            match status {
                200..=299 => "ok",
                404 => "not_found",
                429 => "throttled",
                500.. => "server_error",
                _ => "client_error",
            },
        );
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status < 300 && v["success"] == true {
            return Ok(v["result"].clone());
        }
        let first = &v["errors"][0];
        let code = first["code"].as_i64().unwrap_or(0);
        let message = first["message"].as_str().unwrap_or("no message").to_owned();
        let kind = match status {
            429 => ErrorKind::Throttled,
            404 => ErrorKind::NotFound,
            _ if NOT_FOUND_CODES.contains(&code) => ErrorKind::NotFound,
            500.. => ErrorKind::Transient,
            _ => ErrorKind::Rejected,
        };
        Err(err(kind, action, target, &format!("{status}/{code}"), &message))
    }
}

/// An error of the transport (no complete answer).
#[derive(Debug)]
enum SendError {
    Request(hyper_util::client::legacy::Error),
    Body(hyper::Error),
}

impl SendError {
    fn is_connect(&self) -> bool {
        matches!(self, Self::Request(e) if e.is_connect())
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Request(e) => e.fmt(f),
            Self::Body(e) => e.fmt(f),
        }
    }
}

impl Cloudflare {
    /// Sends `req` and reads the whole answer: its status and body.
    async fn send(&self, req: hyper::Request<Full<Bytes>>) -> Result<(u16, Bytes), SendError> {
        let resp = self.http.request(req).await.map_err(SendError::Request)?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.map_err(SendError::Body)?.to_bytes();
        Ok((status, bytes))
    }
}

fn err(kind: ErrorKind, action: &'static str, target: &str, code: &str, message: &str) -> CloudError {
    CloudError { kind, action, target: target.to_owned(), code: code.to_owned(), message: message.to_owned() }
}

fn tunnel(v: &Value) -> Option<Tunnel> {
    Some(Tunnel { id: v["id"].as_str()?.to_owned(), name: v["name"].as_str()?.to_owned() })
}

fn record(v: &Value) -> Option<CfRecord> {
    Some(CfRecord {
        id: v["id"].as_str()?.to_owned(),
        record_type: v["type"].as_str()?.to_owned(),
        name: v["name"].as_str()?.to_owned(),
        content: v["content"].as_str()?.to_owned(),
    })
}

/// Minimal percent-encoding for query values (names are DNS names here).
fn q(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn gone_is_ok(r: CloudResult<Value>) -> CloudResult<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl Tunnels for Cloudflare {
    async fn find(&self, name: &str) -> CloudResult<Option<Tunnel>> {
        let path = format!("/accounts/{}/cfd_tunnel?name={}&is_deleted=false", self.account, q(name));
        let v = self.call("GET", &path, None, "list tunnels named", name).await?;
        Ok(v.as_array().into_iter().flatten().filter_map(tunnel).find(|t| t.name == name))
    }

    async fn create(&self, name: &str) -> CloudResult<Tunnel> {
        let path = format!("/accounts/{}/cfd_tunnel", self.account);
        let v = self
            .call("POST", &path, Some(json!({"name": name, "config_src": "cloudflare"})), "create tunnel", name)
            .await?;
        tunnel(&v)
            .ok_or_else(|| err(ErrorKind::Transient, "create tunnel", name, "EmptyResponse", "no tunnel in the answer"))
    }

    async fn token(&self, id: &str) -> CloudResult<String> {
        let path = format!("/accounts/{}/cfd_tunnel/{id}/token", self.account);
        let v = self.call("GET", &path, None, "read the token of tunnel", id).await?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| err(ErrorKind::Transient, "read the token of tunnel", id, "EmptyResponse", "no token"))
    }

    async fn configure(&self, id: &str, hostname: &str, service: &str) -> CloudResult<()> {
        let path = format!("/accounts/{}/cfd_tunnel/{id}/configurations", self.account);
        let body = json!({"config": {"ingress": [{"hostname": hostname, "service": service}, {"service": "http_status:404"}]}});
        self.call("PUT", &path, Some(body), "configure tunnel", id).await.map(|_| ())
    }

    async fn delete(&self, id: &str) -> CloudResult<()> {
        let path = format!("/accounts/{}/cfd_tunnel/{id}", self.account);
        gone_is_ok(self.call("DELETE", &path, None, "delete tunnel", id).await)
    }

    async fn records(&self, record_type: &str, name: &str) -> CloudResult<Vec<CfRecord>> {
        let path = format!("/zones/{}/dns_records?type={}&name={}", self.zone, q(record_type), q(name));
        let v = self.call("GET", &path, None, "list records at", name).await?;
        Ok(v.as_array().into_iter().flatten().filter_map(record).collect())
    }

    async fn create_record(&self, record_type: &str, name: &str, content: &str) -> CloudResult<CfRecord> {
        let path = format!("/zones/{}/dns_records", self.zone);
        let body =
            json!({"type": record_type, "name": name, "content": content, "ttl": 1, "proxied": record_type == "CNAME"});
        let v = self.call("POST", &path, Some(body), "create record", name).await?;
        record(&v)
            .ok_or_else(|| err(ErrorKind::Transient, "create record", name, "EmptyResponse", "no record in the answer"))
    }

    async fn delete_record(&self, id: &str) -> CloudResult<()> {
        let path = format!("/zones/{}/dns_records/{id}", self.zone);
        gone_is_ok(self.call("DELETE", &path, None, "delete record", id).await)
    }

    async fn list_all(&self) -> CloudResult<Vec<Tunnel>> {
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let path =
                format!("/accounts/{}/cfd_tunnel?is_deleted=false&per_page={PER_PAGE}&page={page}", self.account);
            let v = self.call("GET", &path, None, "list tunnels of", &self.account).await?;
            let items: Vec<Tunnel> = v.as_array().into_iter().flatten().filter_map(tunnel).collect();
            let last = items.len() < PER_PAGE;
            out.extend(items);
            if last {
                break;
            }
        }
        Ok(out)
    }

    async fn all_records(&self, record_type: &str) -> CloudResult<Vec<CfRecord>> {
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let path =
                format!("/zones/{}/dns_records?type={}&per_page={PER_PAGE}&page={page}", self.zone, q(record_type));
            let v = self.call("GET", &path, None, "list records of", &self.zone).await?;
            let items: Vec<CfRecord> = v.as_array().into_iter().flatten().filter_map(record).collect();
            let last = items.len() < PER_PAGE;
            out.extend(items);
            if last {
                break;
            }
        }
        Ok(out)
    }
}
