//! The error bodies each AWS protocol family answers with.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::Call;

/// The protocol family of a service, which decides the shape of an error body.
pub(super) fn error_response(call: &Call, status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    let request_id = "00000000-fault-proxy-0000-000000000000";
    let (content_type, body) = match call.service.as_str() {
        "ec2" => (
            "text/xml;charset=UTF-8",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
            ),
        ),
        "secretsmanager" | "ssm" => {
            ("application/x-amz-json-1.1", serde_json::json!({"__type": code, "message": message}).to_string())
        }
        _ => (
            "text/xml",
            format!(
                "<?xml version=\"1.0\"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            ),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert("content-type", hyper::header::HeaderValue::from_static(content_type));
    h.insert("x-amzn-requestid", hyper::header::HeaderValue::from_static(request_id));
    if let Ok(v) = hyper::header::HeaderValue::from_str(code) {
        h.insert("x-amzn-errortype", v);
    }
    resp
}

/// The throttling error each service really answers with.
pub(super) fn throttle_of(service: &str) -> (u16, &'static str, &'static str) {
    match service {
        "ec2" => (503, "RequestLimitExceeded", "Request limit exceeded."),
        "secretsmanager" | "ssm" => (400, "ThrottlingException", "Rate exceeded"),
        _ => (400, "Throttling", "Rate exceeded"),
    }
}
