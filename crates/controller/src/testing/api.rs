//! A loopback stand-in for the Kubernetes API: every list is empty, a status patch is kept (and
//! answered with the object it makes), an Event created or patched is kept (and answered with its
//! body; a patch of an Event never created is a 404), every other request is a 404. Enough for
//! code that publishes Events, writes a status mid-protocol, deletes objects that are gone and
//! lists nothing; a test that needs real objects belongs in the e2e suite.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};

/// Writes received, in order, with their bodies: status patches as (path, patch), Event writes as
/// (`METHOD path`, body).
type Writes = Arc<Mutex<Vec<(String, Value)>>>;
/// Every request received: `METHOD path?query`, in order.
type Requests = Arc<Mutex<Vec<String>>>;

/// The running stub; it stops when dropped.
#[derive(Debug)]
pub struct ApiStub {
    url: String,
    task: tokio::task::JoinHandle<()>,
    patches: Writes,
    requests: Requests,
    events: Writes,
}

async fn answer(
    State((patches, requests, events)): State<(Writes, Requests, Writes)>,
    method: Method,
    uri: Uri,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    requests.lock().expect("requests").push(format!("{method} {uri}"));
    let path = uri.path();
    if path.contains("/apis/events.k8s.io/v1/") && (method == Method::POST || method == Method::PATCH) {
        let obj: Value = serde_json::from_slice(&body).unwrap_or_default();
        let mut kept = events.lock().expect("events");
        let name = path.rsplit('/').next().unwrap_or_default();
        let created =
            kept.iter().find(|(w, b)| w.starts_with("POST") && b["metadata"]["name"] == name).map(|(_, b)| b.clone());
        let answer = if method == Method::POST {
            Some((StatusCode::CREATED, obj.clone()))
        } else {
            created.map(|b| (StatusCode::OK, b))
        };
        if let Some((code, body)) = answer {
            kept.push((format!("{method} {path}"), obj));
            return (code, axum::Json(body));
        }
    }
    if method == Method::PATCH && path.ends_with("/status") {
        let mut obj: Value = serde_json::from_slice(&body).unwrap_or_default();
        patches.lock().expect("patches").push((path.to_owned(), obj.clone()));
        let name = path.trim_end_matches("/status").rsplit('/').next().unwrap_or_default();
        obj["metadata"] = json!({"name": name, "resourceVersion": "1"});
        // The fields a Workspace's spec cannot do without (a Tenant's has none).
        let spec = if path.contains("/workspaces/") { json!({"tenant": "", "runtime": ""}) } else { json!({}) };
        obj.as_object_mut().map(|o| o.entry("spec").or_insert(spec));
        return (StatusCode::OK, axum::Json(obj));
    }
    let is_list = method == Method::GET && path.rsplit('/').next().is_some_and(|last| last.ends_with('s'));
    if is_list {
        let body = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": []});
        return (StatusCode::OK, axum::Json(body));
    }
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{path} not found"), "reason": "NotFound", "code": 404
    });
    (StatusCode::NOT_FOUND, axum::Json(body))
}

impl ApiStub {
    /// Starts the stub on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let (patches, requests, events) = (Writes::default(), Requests::default(), Writes::default());
        let app = Router::new().fallback(answer).with_state((patches.clone(), requests.clone(), events.clone()));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, task, patches, requests, events }
    }

    /// The Event writes received, in order: (`POST path` or `PATCH path`, body).
    pub fn events(&self) -> Vec<(String, Value)> {
        self.events.lock().expect("events").clone()
    }

    /// Forgets the Events created so far (as the API server does when their TTL ends): a later
    /// patch of one is a 404.
    pub fn expire_events(&self) {
        self.events.lock().expect("events").clear();
    }

    /// Every request received so far: `METHOD path?query`, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests").clone()
    }

    /// The `status` of every status patch received, in order.
    pub fn statuses(&self) -> Vec<Value> {
        self.patches.lock().expect("patches").iter().map(|(_, p)| p["status"].clone()).collect()
    }

    /// A client of the stub.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url.parse().expect("stub URL"));
        kube::Client::try_from(config).expect("client of the stub")
    }
}

impl Drop for ApiStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}
