//! The DNS record endpoints of the Cloudflare fake (`/zones/{z}/dns_records`: create, list,
//! delete), with Cloudflare's validation and error codes.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get};
use serde::Deserialize;
use serde_json::json;

use super::{ApiResult, App, CfError, DnsRecord, auth, body, check_zone, now, ok, ok_list};
use crate::ids;

/// The record routes, for the fake's `/client/v4` router.
pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/zones/{zone}/dns_records", get(list_records).post(create_record))
        .route("/zones/{zone}/dns_records/{id}", delete(delete_record))
}

#[derive(Deserialize)]
struct CreateRecord {
    #[serde(rename = "type")]
    record_type: String,
    name: String,
    content: String,
    #[serde(default)]
    proxied: bool,
    #[serde(default = "auto_ttl")]
    ttl: u32,
    #[serde(default)]
    comment: Option<String>,
}

fn auto_ttl() -> u32 {
    1
}

async fn create_record(State(app): State<App>, Path(zone): Path<String>, headers: HeaderMap, raw: String) -> ApiResult {
    auth(&app, &headers)?;
    check_zone(&app, &zone)?;
    let req: CreateRecord = body(&raw)?;
    if !["A", "AAAA", "CNAME", "TXT"].contains(&req.record_type.as_str()) {
        return Err(CfError(StatusCode::BAD_REQUEST, 9005, format!("Unsupported record type {}", req.record_type)));
    }
    if req.name.is_empty() || req.content.is_empty() {
        return Err(CfError(StatusCode::BAD_REQUEST, 9000, "DNS name and content are required".into()));
    }
    if req.proxied && req.record_type == "TXT" {
        return Err(CfError(StatusCode::BAD_REQUEST, 9004, "This record type cannot be proxied.".into()));
    }
    if req.ttl != 1 && !(60..=86400).contains(&req.ttl) {
        return Err(CfError(
            StatusCode::BAD_REQUEST,
            9021,
            "TTL must be between 60 and 86400 seconds, or 1 for Automatic.".into(),
        ));
    }
    // Names are stored fully qualified, as Cloudflare returns them.
    let name = if req.name == "@" {
        app.cfg.zone_name.clone()
    } else if req.name == app.cfg.zone_name || req.name.ends_with(&format!(".{}", app.cfg.zone_name)) {
        req.name.to_lowercase()
    } else {
        format!("{}.{}", req.name.to_lowercase(), app.cfg.zone_name)
    };
    let mut st = app.lock();
    let exclusive = |t: &str| matches!(t, "A" | "AAAA" | "CNAME");
    for r in st.records.values().filter(|r| r.name == name) {
        if r.record_type == "CNAME" || (req.record_type == "CNAME" && exclusive(&r.record_type)) {
            return Err(CfError(
                StatusCode::BAD_REQUEST,
                81053,
                "An A, AAAA, or CNAME record with that host already exists.".into(),
            ));
        }
        if r.record_type == req.record_type && r.content == req.content {
            return Err(CfError(StatusCode::BAD_REQUEST, 81058, "An identical record already exists.".into()));
        }
    }
    let at = now();
    let r = DnsRecord {
        id: ids::hex32(),
        zone_id: zone,
        zone_name: app.cfg.zone_name.clone(),
        name,
        record_type: req.record_type,
        content: req.content,
        proxied: req.proxied,
        ttl: req.ttl,
        comment: req.comment,
        created_on: at.clone(),
        modified_on: at,
    };
    st.records.insert(r.id.clone(), r.clone());
    ok(r)
}

#[derive(Deserialize)]
struct ListRecords {
    #[serde(rename = "type")]
    record_type: Option<String>,
    name: Option<String>,
    content: Option<String>,
    page: Option<usize>,
    per_page: Option<usize>,
}

async fn list_records(
    State(app): State<App>,
    Path(zone): Path<String>,
    Query(q): Query<ListRecords>,
    headers: HeaderMap,
) -> ApiResult {
    auth(&app, &headers)?;
    check_zone(&app, &zone)?;
    let st = app.lock();
    let items: Vec<DnsRecord> = st
        .records
        .values()
        .filter(|r| q.record_type.as_ref().is_none_or(|t| &r.record_type == t))
        .filter(|r| q.name.as_ref().is_none_or(|n| r.name == n.to_lowercase()))
        .filter(|r| q.content.as_ref().is_none_or(|c| &r.content == c))
        .cloned()
        .collect();
    ok_list(&items, q.page.unwrap_or(1).max(1), q.per_page.unwrap_or(100).clamp(5, 5000))
}

async fn delete_record(
    State(app): State<App>,
    Path((zone, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    auth(&app, &headers)?;
    check_zone(&app, &zone)?;
    let mut st = app.lock();
    match st.records.remove(&id) {
        Some(r) => ok(json!({"id": r.id})),
        None => Err(CfError(StatusCode::NOT_FOUND, 81044, "Record does not exist.".into())),
    }
}
