//! A stateful fake of the few Cloudflare API v4 endpoints the operator uses, with Cloudflare's
//! response envelope, bearer-token check, ID formats and error codes.
//!
//! Endpoints and the Cloudflare documentation page each follows
//! (developers.cloudflare.com/api/resources/...):
//! - `POST   /accounts/{a}/cfd_tunnel`                       zero_trust/tunnels/cloudflared: create
//! - `GET    /accounts/{a}/cfd_tunnel?name=&is_deleted=`     zero_trust/tunnels/cloudflared: list
//! - `GET    /accounts/{a}/cfd_tunnel/{id}`                  zero_trust/tunnels/cloudflared: get
//! - `DELETE /accounts/{a}/cfd_tunnel/{id}`                  zero_trust/tunnels/cloudflared: delete
//! - `GET    /accounts/{a}/cfd_tunnel/{id}/token`            .../cloudflared/subresources/token: get
//! - `PUT    /accounts/{a}/cfd_tunnel/{id}/configurations`   .../cloudflared/subresources/configurations: update
//! - `GET    /accounts/{a}/cfd_tunnel/{id}/configurations`   .../cloudflared/subresources/configurations: get
//! - `POST   /zones/{z}/dns_records`                         dns/subresources/records: create
//! - `GET    /zones/{z}/dns_records?type=&name=&content=`    dns/subresources/records: list
//! - `DELETE /zones/{z}/dns_records/{id}`                    dns/subresources/records: delete
//!
//! Outside the API, `GET /__state` dumps everything for tests and `GET /healthz` answers ok.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ids;

#[path = "cloudflare_records.rs"]
mod records;

/// Settings of one fake: the token it accepts and the one account and zone it serves.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// Bearer token that authenticates.
    pub token: String,
    /// Account ID.
    pub account: String,
    /// Zone ID.
    pub zone: String,
    /// Zone name, such as example.com.
    pub zone_name: String,
}

/// A tunnel as Cloudflare returns it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tunnel {
    /// UUID.
    pub id: String,
    /// Account tag.
    pub account_tag: String,
    /// Unique name among non-deleted tunnels.
    pub name: String,
    /// "cloudflare" for remotely managed tunnels.
    pub config_src: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339 once deleted.
    pub deleted_at: Option<String>,
    /// inactive, degraded, healthy or down.
    pub status: String,
    /// Connector connections (always empty here: no cloudflared runs).
    pub connections: Vec<Value>,
    /// Remote configuration, once put.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// Version of the configuration.
    #[serde(skip)]
    pub config_version: u64,
    /// The connector secret (part of the token).
    #[serde(skip)]
    pub secret: String,
}

/// A DNS record as Cloudflare returns it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DnsRecord {
    /// 32 hex characters.
    pub id: String,
    /// Zone ID.
    pub zone_id: String,
    /// Zone name.
    pub zone_name: String,
    /// Fully qualified name.
    pub name: String,
    /// CNAME, TXT, A or AAAA.
    #[serde(rename = "type")]
    pub record_type: String,
    /// Target or text.
    pub content: String,
    /// Orange-clouded.
    pub proxied: bool,
    /// 1 means automatic.
    pub ttl: u32,
    /// Free-text comment.
    pub comment: Option<String>,
    /// RFC 3339.
    pub created_on: String,
    /// RFC 3339.
    pub modified_on: String,
}

/// Everything the fake holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FakeState {
    /// Tunnels by ID, deleted ones included (Cloudflare keeps them, marked).
    pub tunnels: BTreeMap<String, Tunnel>,
    /// DNS records by ID.
    pub records: BTreeMap<String, DnsRecord>,
}

#[derive(Clone)]
struct App {
    cfg: Arc<FakeConfig>,
    state: Arc<Mutex<FakeState>>,
}

impl App {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An API error: HTTP status, Cloudflare error code and message.
struct CfError(StatusCode, u32, String);

impl IntoResponse for CfError {
    fn into_response(self) -> Response {
        let body = json!({
            "success": false,
            "errors": [{"code": self.1, "message": self.2}],
            "messages": [],
            "result": null,
        });
        (self.0, Json(body)).into_response()
    }
}

type ApiResult = Result<Json<Value>, CfError>;

#[allow(clippy::unnecessary_wraps)] // handlers return ApiResult; this is their success arm
fn ok(result: impl Serialize) -> ApiResult {
    Ok(Json(json!({"success": true, "errors": [], "messages": [], "result": result})))
}

#[allow(clippy::unnecessary_wraps)] // handlers return ApiResult; this is their success arm
fn ok_list<T: Serialize>(items: &[T], page: usize, per_page: usize) -> ApiResult {
    let total = items.len();
    let start = (page.saturating_sub(1)) * per_page;
    let slice: Vec<&T> = items.iter().skip(start).take(per_page).collect();
    Ok(Json(json!({
        "success": true, "errors": [], "messages": [],
        "result": slice,
        "result_info": {"page": page, "per_page": per_page, "count": slice.len(), "total_count": total,
                        "total_pages": total.div_ceil(per_page.max(1))},
    })))
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn auth(app: &App, headers: &HeaderMap) -> Result<(), CfError> {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(CfError(StatusCode::BAD_REQUEST, 6003, "Invalid request headers".into()));
    };
    match value.strip_prefix("Bearer ") {
        Some(t) if t == app.cfg.token => Ok(()),
        Some(_) => Err(CfError(StatusCode::FORBIDDEN, 10000, "Authentication error".into())),
        None => Err(CfError(StatusCode::BAD_REQUEST, 6111, "Invalid format for Authorization header".into())),
    }
}

fn check_account(app: &App, account: &str) -> Result<(), CfError> {
    if account == app.cfg.account {
        Ok(())
    } else {
        Err(CfError(
            StatusCode::NOT_FOUND,
            7003,
            "Could not route to /accounts/..., perhaps your object identifier is invalid?".into(),
        ))
    }
}

fn check_zone(app: &App, zone: &str) -> Result<(), CfError> {
    if zone == app.cfg.zone {
        Ok(())
    } else {
        Err(CfError(
            StatusCode::NOT_FOUND,
            7003,
            "Could not route to /zones/..., perhaps your object identifier is invalid?".into(),
        ))
    }
}

fn body<T: for<'de> Deserialize<'de>>(raw: &str) -> Result<T, CfError> {
    serde_json::from_str(raw)
        .map_err(|e| CfError(StatusCode::BAD_REQUEST, 1001, format!("Request body is invalid: {e}")))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn tunnel_token(account: &str, t: &Tunnel) -> String {
    use std::fmt::Write as _;
    // Cloudflare's token is base64 of {"a": account tag, "t": tunnel ID, "s": secret}.
    let raw = json!({"a": account, "t": t.id, "s": t.secret}).to_string();
    let mut out = String::new();
    for chunk in raw.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let _ = write!(out, "{}", B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[derive(Deserialize)]
struct CreateTunnel {
    name: String,
    #[serde(default)]
    config_src: Option<String>,
    #[serde(default)]
    tunnel_secret: Option<String>,
}

async fn create_tunnel(
    State(app): State<App>,
    Path(account): Path<String>,
    headers: HeaderMap,
    raw: String,
) -> ApiResult {
    auth(&app, &headers)?;
    check_account(&app, &account)?;
    let req: CreateTunnel = body(&raw)?;
    if req.name.is_empty() || req.name.len() > 200 {
        return Err(CfError(StatusCode::BAD_REQUEST, 1001, "name must be 1..200 characters".into()));
    }
    let src = req.config_src.unwrap_or_else(|| "local".into());
    if src != "cloudflare" && src != "local" {
        return Err(CfError(StatusCode::BAD_REQUEST, 1001, "config_src must be cloudflare or local".into()));
    }
    let mut st = app.lock();
    if st.tunnels.values().any(|t| t.name == req.name && t.deleted_at.is_none()) {
        return Err(CfError(StatusCode::CONFLICT, 1013, "You already have a tunnel with this name.".into()));
    }
    let t = Tunnel {
        id: ids::uuid_v4(),
        account_tag: account.clone(),
        name: req.name,
        config_src: src,
        created_at: now(),
        deleted_at: None,
        status: "inactive".into(),
        connections: vec![],
        config: None,
        config_version: 0,
        secret: req.tunnel_secret.unwrap_or_else(ids::hex32),
    };
    let mut out =
        serde_json::to_value(&t).map_err(|e| CfError(StatusCode::INTERNAL_SERVER_ERROR, 1000, e.to_string()))?;
    out["token"] = Value::String(tunnel_token(&account, &t));
    st.tunnels.insert(t.id.clone(), t);
    ok(out)
}

#[derive(Deserialize)]
struct ListTunnels {
    name: Option<String>,
    is_deleted: Option<bool>,
    page: Option<usize>,
    per_page: Option<usize>,
}

async fn list_tunnels(
    State(app): State<App>,
    Path(account): Path<String>,
    Query(q): Query<ListTunnels>,
    headers: HeaderMap,
) -> ApiResult {
    auth(&app, &headers)?;
    check_account(&app, &account)?;
    let st = app.lock();
    let items: Vec<Tunnel> = st
        .tunnels
        .values()
        .filter(|t| q.name.as_ref().is_none_or(|n| &t.name == n))
        .filter(|t| q.is_deleted.is_none_or(|d| d == t.deleted_at.is_some()))
        .cloned()
        .collect();
    ok_list(&items, q.page.unwrap_or(1).max(1), q.per_page.unwrap_or(20).clamp(1, 1000))
}

fn find_tunnel<'s>(st: &'s mut FakeState, id: &str) -> Result<&'s mut Tunnel, CfError> {
    st.tunnels.get_mut(id).ok_or_else(|| CfError(StatusCode::NOT_FOUND, 1003, format!("Tunnel not found: {id}")))
}

async fn get_tunnel(
    State(app): State<App>,
    Path((account, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    auth(&app, &headers)?;
    check_account(&app, &account)?;
    let mut st = app.lock();
    ok(find_tunnel(&mut st, &id)?.clone())
}

async fn delete_tunnel(
    State(app): State<App>,
    Path((account, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    auth(&app, &headers)?;
    check_account(&app, &account)?;
    let mut st = app.lock();
    let t = find_tunnel(&mut st, &id)?;
    if t.deleted_at.is_some() {
        return Err(CfError(StatusCode::NOT_FOUND, 1003, format!("Tunnel not found: {id}")));
    }
    t.deleted_at = Some(now());
    ok(t.clone())
}

async fn tunnel_token_handler(
    State(app): State<App>,
    Path((account, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    auth(&app, &headers)?;
    check_account(&app, &account)?;
    let mut st = app.lock();
    let t = find_tunnel(&mut st, &id)?;
    if t.deleted_at.is_some() {
        return Err(CfError(StatusCode::NOT_FOUND, 1003, format!("Tunnel not found: {id}")));
    }
    ok(tunnel_token(&account, t))
}

fn config_result(t: &Tunnel) -> Value {
    json!({"tunnel_id": t.id, "version": t.config_version, "config": t.config, "source": t.config_src, "created_at": now()})
}

async fn put_config(
    State(app): State<App>,
    Path((account, id)): Path<(String, String)>,
    headers: HeaderMap,
    raw: String,
) -> ApiResult {
    auth(&app, &headers)?;
    check_account(&app, &account)?;
    let req: Value = body(&raw)?;
    let Some(ingress) = req.pointer("/config/ingress").and_then(Value::as_array) else {
        return Err(CfError(StatusCode::BAD_REQUEST, 1055, "config.ingress is required".into()));
    };
    let catch_all = ingress.last().is_some_and(|r| r.get("hostname").is_none() && r.get("service").is_some());
    if !catch_all {
        return Err(CfError(
            StatusCode::BAD_REQUEST,
            1055,
            "The last ingress rule must match all URLs (i.e. it should not have a hostname or path filter)".into(),
        ));
    }
    if ingress.iter().any(|r| r.get("service").and_then(Value::as_str).is_none()) {
        return Err(CfError(StatusCode::BAD_REQUEST, 1055, "Every ingress rule needs a service".into()));
    }
    let mut st = app.lock();
    let t = find_tunnel(&mut st, &id)?;
    if t.config_src != "cloudflare" {
        return Err(CfError(
            StatusCode::BAD_REQUEST,
            1056,
            "The tunnel is not remotely managed (config_src is not cloudflare)".into(),
        ));
    }
    t.config = req.get("config").cloned();
    t.config_version += 1;
    ok(config_result(t))
}

async fn get_config(
    State(app): State<App>,
    Path((account, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    auth(&app, &headers)?;
    check_account(&app, &account)?;
    let mut st = app.lock();
    ok(config_result(find_tunnel(&mut st, &id)?))
}

async fn dump(State(app): State<App>) -> Json<Value> {
    let st = app.lock().clone();
    Json(json!({"account": app.cfg.account, "zone": app.cfg.zone, "zoneName": app.cfg.zone_name,
                "tunnels": st.tunnels.into_values().collect::<Vec<_>>(),
                "records": st.records.into_values().collect::<Vec<_>>()}))
}

async fn not_found() -> CfError {
    CfError(StatusCode::NOT_FOUND, 7000, "No route for that URI".into())
}

/// The fake's router (mount at the root; the API lives under `/client/v4`).
pub fn router(cfg: FakeConfig) -> Router {
    let app = App { cfg: Arc::new(cfg), state: Arc::new(Mutex::new(FakeState::default())) };
    let api = Router::new()
        .route("/accounts/{account}/cfd_tunnel", get(list_tunnels).post(create_tunnel))
        .route("/accounts/{account}/cfd_tunnel/{id}", get(get_tunnel).delete(delete_tunnel))
        .route("/accounts/{account}/cfd_tunnel/{id}/token", get(tunnel_token_handler))
        .route("/accounts/{account}/cfd_tunnel/{id}/configurations", get(get_config).put(put_config))
        .merge(records::routes())
        .fallback(not_found);
    Router::new()
        .nest("/client/v4", api)
        .route("/__state", get(dump))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(not_found)
        .with_state(app)
}
