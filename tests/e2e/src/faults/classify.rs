//! Which AWS call a request makes: service from the SigV4 scope, operation from the protocol.

/// The AWS call a request makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// SigV4 service name.
    pub service: String,
    /// Operation name.
    pub operation: String,
}

/// Finds service and operation: the SigV4 credential scope names the service; the operation is
/// `Action=` (query protocols), `X-Amz-Target` (JSON protocols) or method + path (Route 53).
pub fn classify(method: &str, path: &str, headers: &hyper::HeaderMap, body: &[u8]) -> Call {
    let service = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unknown")
        .to_owned();
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let operation = if let Some(t) = target {
        t.rsplit('.').next().unwrap_or(t).to_owned()
    } else if let Some(action) =
        query_action(body).or_else(|| query_action(path.split_once('?').map_or(&b""[..], |(_, q)| q.as_bytes())))
    {
        action
    } else if service == "route53" {
        route53_operation(method, path)
    } else {
        format!("{method} {}", path.split('?').next().unwrap_or(path))
    };
    Call { service, operation }
}

fn query_action(form: &[u8]) -> Option<String> {
    std::str::from_utf8(form).ok()?.split('&').find_map(|kv| kv.strip_prefix("Action=")).map(str::to_owned)
}

fn route53_operation(method: &str, path: &str) -> String {
    let p = path.split('?').next().unwrap_or(path).trim_end_matches('/');
    let segs: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    // /2013-04-01/hostedzone[/{id}[/rrset]] and /2013-04-01/change/{id}
    match (method, segs.get(1).copied(), segs.len(), segs.last().copied()) {
        ("POST", Some("hostedzone"), 4, Some("rrset")) => "ChangeResourceRecordSets".into(),
        ("GET", Some("hostedzone"), 4, Some("rrset")) => "ListResourceRecordSets".into(),
        ("GET", Some("hostedzone"), 3, _) => "GetHostedZone".into(),
        ("GET", Some("hostedzone"), 2, _) => "ListHostedZones".into(),
        ("POST", Some("hostedzone"), 2, _) => "CreateHostedZone".into(),
        ("DELETE", Some("hostedzone"), 3, _) => "DeleteHostedZone".into(),
        ("GET", Some("change"), 3, _) => "GetChange".into(),
        ("GET", Some("hostedzonesbyname"), _, _) => "ListHostedZonesByName".into(),
        _ => format!("{method} {p}"),
    }
}

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
