//! A loopback stand-in for the Kubernetes API: every list is empty, every other request is a
//! 404. Enough for code that publishes Events (dropped), deletes objects that are gone and lists
//! nothing; a test that needs real objects belongs in the e2e suite.

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::json;

/// The running stub; it stops when dropped.
#[derive(Debug)]
pub struct ApiStub {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

async fn answer(method: Method, uri: Uri) -> impl IntoResponse {
    let path = uri.path();
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
        let app = Router::new().fallback(answer);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, task }
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
