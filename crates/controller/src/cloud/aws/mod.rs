//! The AWS implementation of the cloud traits: EC2 (instances, security groups, volumes),
//! Route 53, IAM, with a call-counting interceptor, standard SDK retries, client-side rate limits
//! that adapt per class of call (see [`limiter`]), deadlines on every call ([`Deadlines`]) and
//! the leader fence (no call leaves a process whose leadership may have lapsed).

pub mod dns;
pub mod ec2;
pub mod iam;
pub mod limiter;
pub mod network;
pub mod secrets;
pub mod sqs;
pub mod ssm;
pub mod volumes;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::timeout::TimeoutConfig;

use super::{CloudError, CloudResult, ErrorKind, TIMED_OUT};
use crate::metrics::{AwsCall, Metrics};
use limiter::{Limiter, Rates};

/// Attempts per call, first included (AWS's standard mode default). The operator's own requeue
/// with backoff, not longer SDK retry chains, is what converges a fleet under throttling. Standard
/// mode, not the SDK's adaptive mode: its one rate per service and region let throttled describes
/// stall launches (20 Workspaces under 30% throttling took 140-220 s with it, 23 s without); the
/// per-class adaptive buckets of [`limiter`] take its place.
const MAX_ATTEMPTS: u32 = 3;

/// Deadlines of every cloud call (AWS and Cloudflare). A call past one fails as
/// [`ErrorKind::Transient`] with code [`super::TIMED_OUT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// To open a TCP (and TLS) connection.
    pub connect: Duration,
    /// From sending a request to the first byte of its answer, per attempt.
    pub read: Duration,
    /// The whole call, SDK retries included.
    pub operation: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self { connect: Duration::from_secs(5), read: Duration::from_secs(20), operation: Duration::from_secs(30) }
    }
}

static DEADLINES: OnceLock<Deadlines> = OnceLock::new();

/// Sets the process's deadlines, before the first client is built (later calls are ignored).
pub fn set_deadlines(d: Deadlines) {
    let _ = DEADLINES.set(d);
}

/// The process's deadlines (the defaults until [`set_deadlines`]).
pub fn deadlines() -> Deadlines {
    DEADLINES.get().copied().unwrap_or_default()
}

/// The SDK form of [`deadlines`].
fn timeout_config() -> TimeoutConfig {
    let d = deadlines();
    TimeoutConfig::builder().connect_timeout(d.connect).read_timeout(d.read).operation_timeout(d.operation).build()
}

/// Refuses to send anything once this process may no longer lead (see [`crate::leader`]).
#[derive(Debug)]
struct Fence;

impl Intercept for Fence {
    fn name(&self) -> &'static str {
        "molecule-leader-fence"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        crate::leader::check_fence().map_err(Into::into)
    }
}

/// Counts every HTTP attempt (retries included) by service, operation and outcome, and feeds
/// EC2 outcomes back to the adaptive rate limits.
#[derive(Debug)]
struct CallCounter(Metrics, Arc<Limiter>);

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "molecule-call-counter"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let (service, operation) = cfg.load::<Metadata>().map_or(("unknown".into(), "unknown".into()), |m| {
            (m.service().to_ascii_lowercase().replace(' ', ""), m.name().to_owned())
        });
        let outcome = outcome(context.response().map(|r| (r.status().as_u16(), r.body().bytes().unwrap_or_default())));
        let class = limiter::Class::of_call(&service, &operation);
        let (limiter, throttled) = (self.1.clone(), outcome == "throttled");
        // The hook is synchronous; the bucket's lock is async and held for microseconds.
        tokio::spawn(async move { limiter.feedback(class, throttled).await });
        self.0.aws_calls.get_or_create(&AwsCall { service, operation, outcome }).inc();
        Ok(())
    }
}

/// The metric outcome of one HTTP answer (`None`: no answer). Throttling is recognised by its
/// error code too: Route 53 and sometimes EC2 throttle with a 400, not a 503.
fn outcome(answer: Option<(u16, &[u8])>) -> &'static str {
    const THROTTLE_CODES: [&[u8]; 4] = [
        b"<Code>RequestLimitExceeded<",
        b"<Code>Throttling<",
        b"<Code>PriorRequestNotComplete<",
        b"ThrottlingException",
    ];
    match answer {
        None => "transport_error",
        Some((200..=299, _)) => "ok",
        Some((429 | 503, _)) => "throttled",
        Some((400, body)) if THROTTLE_CODES.iter().any(|c| body.windows(c.len()).any(|w| w == *c)) => "throttled",
        Some((500.., _)) => "server_error",
        Some(_) => "client_error",
    }
}

/// Clients for one account and region.
#[derive(Clone, Debug)]
pub struct Aws {
    /// EC2.
    pub ec2: aws_sdk_ec2::Client,
    /// Route 53.
    pub route53: aws_sdk_route53::Client,
    /// IAM (the per-tenant roles and instance profiles).
    pub iam: aws_sdk_iam::Client,
    /// Secrets Manager.
    pub secrets: aws_sdk_secretsmanager::Client,
    /// SSM (Run Command).
    pub ssm: aws_sdk_ssm::Client,
    /// SQS (the queue of EC2 notifications, when one is configured).
    pub sqs: aws_sdk_sqs::Client,
    /// Rate limits shared by every call of this account.
    pub limiter: Arc<Limiter>,
}

/// Session name of the canary role, as CloudTrail shows it.
const SESSION_NAME: &str = "molecule-operator";

impl Aws {
    /// Clients for `region`, honouring `AWS_ENDPOINT_URL` and the usual credential chain.
    pub async fn new(region: &str, rates: Rates, metrics: &Metrics) -> Self {
        Self::from_shared(&Self::shared(region).await, rates, metrics)
    }

    /// Clients for `region` of the account of `role_arn`, reached through STS AssumeRole with the
    /// operator's own credentials (refreshed before they expire).
    pub async fn assume(role_arn: &str, region: &str, rates: Rates, metrics: &Metrics) -> Self {
        let base = Self::shared(region).await;
        let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
            .session_name(SESSION_NAME)
            .region(aws_config::Region::new(region.to_owned()))
            .configure(&base)
            .build()
            .await;
        let assumed = base
            .into_builder()
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(provider))
            .build();
        Self::from_shared(&assumed, rates, metrics)
    }

    async fn shared(region: &str) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(timeout_config())
            .load()
            .await
    }

    fn from_shared(shared: &aws_config::SdkConfig, rates: Rates, metrics: &Metrics) -> Self {
        let limiter = Arc::new(Limiter::new(rates));
        let counter = || CallCounter(metrics.clone(), limiter.clone());
        Self {
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(shared).interceptor(Fence).interceptor(counter()).build(),
            ),
            route53: aws_sdk_route53::Client::from_conf(
                aws_sdk_route53::config::Builder::from(shared).interceptor(Fence).interceptor(counter()).build(),
            ),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(shared).interceptor(Fence).interceptor(counter()).build(),
            ),
            secrets: aws_sdk_secretsmanager::Client::from_conf(
                aws_sdk_secretsmanager::config::Builder::from(shared).interceptor(Fence).interceptor(counter()).build(),
            ),
            ssm: aws_sdk_ssm::Client::from_conf(
                aws_sdk_ssm::config::Builder::from(shared).interceptor(Fence).interceptor(counter()).build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(shared).interceptor(Fence).interceptor(counter()).build(),
            ),
            limiter,
        }
    }

    /// The CIDR of `vpc_id` and the availability zone of `subnet_id`, read once at start.
    pub async fn network_facts(&self, vpc_id: &str, subnet_id: &str) -> Result<(String, String), CloudError> {
        let vpcs = self
            .ec2
            .describe_vpcs()
            .vpc_ids(vpc_id)
            .send()
            .await
            .map_err(|e| cloud_error(&e, "describe VPC", vpc_id))?;
        let cidr = vpcs.vpcs().first().and_then(|v| v.cidr_block()).unwrap_or_default().to_owned();
        let subnets = self
            .ec2
            .describe_subnets()
            .subnet_ids(subnet_id)
            .send()
            .await
            .map_err(|e| cloud_error(&e, "describe subnet", subnet_id))?;
        let zone = subnets.subnets().first().and_then(|s| s.availability_zone()).unwrap_or_default().to_owned();
        if cidr.is_empty() || zone.is_empty() {
            return Err(CloudError {
                kind: ErrorKind::NotFound,
                action: "read network facts of",
                target: format!("{vpc_id}/{subnet_id}"),
                code: "NotFound".into(),
                message: "EC2_VPC_ID or EC2_SUBNET_ID does not exist".into(),
            });
        }
        Ok((cidr, zone))
    }
}

/// Maps an SDK error to a [`CloudError`]: the provider's code decides the category, a 5xx or a
/// lost connection is transient (never success), anything else is a rejection.
pub(crate) fn cloud_error<E>(
    e: &SdkError<E, HttpResponse>,
    action: &'static str,
    target: impl Into<String>,
) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let Some(f) = fenced(e) {
        return CloudError {
            kind: ErrorKind::Transient,
            action,
            target: target.into(),
            code: "Fenced".into(),
            message: f,
        };
    }
    let (kind, code, message) = match e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown").to_owned();
            let message = se.err().message().unwrap_or_default().to_owned();
            let kind = classify(&code, se.raw().status().as_u16());
            (if profile_not_ready(&code, &message) { ErrorKind::Transient } else { kind }, code, message)
        }
        SdkError::TimeoutError(_) => (ErrorKind::Transient, TIMED_OUT.to_owned(), e.to_string()),
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            (ErrorKind::Transient, TIMED_OUT.to_owned(), format!("{e:?}").chars().take(300).collect())
        }
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            let detail = format!("{e:?}");
            match denied_in(&detail) {
                // A denied STS AssumeRole (the canary account) surfaces as a failure to dispatch.
                Some(code) => (ErrorKind::Denied, code.to_owned(), detail.chars().take(300).collect()),
                None => (ErrorKind::Transient, "Transport".to_owned(), detail.chars().take(300).collect()),
            }
        }
        _ => (ErrorKind::Rejected, "Construction".to_owned(), e.to_string()),
    };
    CloudError { kind, action, target: target.into(), code, message }
}

/// `value` when `e` is a NotFound (a read of what is not there), `e` otherwise.
pub(crate) fn absent_as<T>(e: CloudError, value: T) -> CloudResult<T> {
    if e.kind == ErrorKind::NotFound { Ok(value) } else { Err(e) }
}

/// Success for a NotFound (a delete of what is gone).
pub(crate) fn gone(r: CloudResult<()>) -> CloudResult<()> {
    r.or_else(|e| absent_as(e, ()))
}

/// Provider codes of a refusal by IAM (or of credentials IAM does not accept).
const DENIED_CODES: [&str; 6] = [
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthFailure",
    "InvalidClientTokenId",
    "ExpiredToken",
];

/// Whether RunInstances refused an instance profile IAM has not propagated to EC2 yet (a new
/// profile is not usable for a few seconds): transient, the same launch is retried.
pub(crate) fn profile_not_ready(code: &str, message: &str) -> bool {
    code == "InvalidParameterValue" && message.to_ascii_lowercase().contains("iam instance profile")
}

/// The denial code inside an error's debug text (the credentials provider wraps STS's answer).
fn denied_in(detail: &str) -> Option<&'static str> {
    DENIED_CODES.iter().copied().find(|c| detail.contains(&format!("code: Some(\"{c}\")")))
}

/// The fence's refusal inside an SDK error, if that is what stopped the call.
fn fenced<E: std::error::Error + 'static>(e: &SdkError<E, HttpResponse>) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(f) = s.downcast_ref::<crate::leader::Fenced>() {
            return Some(f.to_string());
        }
        source = s.source();
    }
    None
}

/// The category of a provider error code.
pub(crate) fn classify(code: &str, status: u16) -> ErrorKind {
    match code {
        c if DENIED_CODES.contains(&c) => ErrorKind::Denied,
        "RequestLimitExceeded"
        | "Throttling"
        | "ThrottlingException"
        | "TooManyRequestsException"
        | "PriorRequestNotComplete"
        | "RequestThrottled" => ErrorKind::Throttled,
        "DependencyViolation" | "VolumeInUse" | "InvalidVolume.InUse" | "DeleteConflict" => ErrorKind::InUse,
        // IAM's "not found".
        "NoSuchEntity" => ErrorKind::NotFound,
        c if c.ends_with(".NotFound")
            || c.ends_with("NotFound")
            || c == "NoSuchHostedZone"
            || c == "ResourceNotFoundException" =>
        {
            ErrorKind::NotFound
        }
        "IncorrectState" | "IncorrectInstanceState" | "InsufficientInstanceCapacity" => ErrorKind::Transient,
        // The data volume lives in another zone than the instance: no retry attaches it (the
        // Workspace says what to do in a Stalled condition).
        crate::cloud::ZONE_MISMATCH => ErrorKind::Rejected,
        _ if status >= 500 => ErrorKind::Transient,
        _ => ErrorKind::Rejected,
    }
}

/// Tag filters in EC2's `tag:<key>` form.
pub(crate) fn tag_filters(filters: &BTreeMap<String, String>) -> Vec<aws_sdk_ec2::types::Filter> {
    filters
        .iter()
        .map(|(k, v)| aws_sdk_ec2::types::Filter::builder().name(format!("tag:{k}")).values(v).build())
        .collect()
}

/// EC2 tag specifications for the create call.
pub(crate) fn tag_spec(
    resource: aws_sdk_ec2::types::ResourceType,
    tags: &BTreeMap<String, String>,
) -> aws_sdk_ec2::types::TagSpecification {
    let mut b = aws_sdk_ec2::types::TagSpecification::builder().resource_type(resource);
    for (k, v) in tags {
        b = b.tags(aws_sdk_ec2::types::Tag::builder().key(k).value(v).build());
    }
    b.build()
}

/// Tags of an SDK resource as a map.
pub(crate) fn tag_map(tags: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_not_found_is_absent() {
        let err = |kind| CloudError { kind, action: "a", target: "t".into(), code: "c".into(), message: String::new() };
        assert_eq!(absent_as(err(ErrorKind::NotFound), None::<u8>).unwrap(), None);
        assert!(gone(Err(err(ErrorKind::NotFound))).is_ok());
        assert_eq!(gone(Err(err(ErrorKind::Throttled))).unwrap_err().kind, ErrorKind::Throttled);
    }

    #[test]
    fn codes_map_to_bounded_kinds() {
        assert_eq!(classify("RequestLimitExceeded", 503), ErrorKind::Throttled);
        assert_eq!(classify("DependencyViolation", 400), ErrorKind::InUse);
        assert_eq!(classify("InvalidGroup.NotFound", 400), ErrorKind::NotFound);
        assert_eq!(classify("InvalidInstanceID.NotFound", 400), ErrorKind::NotFound);
        assert_eq!(classify("InternalError", 500), ErrorKind::Transient);
        assert_eq!(classify("Unknown", 502), ErrorKind::Transient, "a 5xx is never success nor final");
        assert_eq!(classify("InvalidParameterValue", 400), ErrorKind::Rejected);
        assert_eq!(classify("InvalidVolume.ZoneMismatch", 400), ErrorKind::Rejected, "no retry fixes a zone");
        assert_eq!(classify("InvalidAttachment.NotFound", 400), ErrorKind::NotFound);
        assert_eq!(classify("UnauthorizedOperation", 403), ErrorKind::Denied);
        assert_eq!(classify("AuthFailure", 401), ErrorKind::Denied);
        assert_eq!(classify("AccessDeniedException", 400), ErrorKind::Denied);
        assert_eq!(ErrorKind::Denied.as_str(), "CloudDenied");
        assert_eq!(classify("NoSuchEntity", 404), ErrorKind::NotFound);
        assert_eq!(classify("EntityAlreadyExists", 409), ErrorKind::Rejected, "callers read it as found");
        assert_eq!(classify("DeleteConflict", 409), ErrorKind::InUse);
        assert_eq!(classify("AccessDenied", 403), ErrorKind::Denied);
        assert!(profile_not_ready(
            "InvalidParameterValue",
            "Value (molecule-tenant-vm-u) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"
        ));
        assert!(!profile_not_ready("InvalidParameterValue", "Invalid value for InstanceType"));
    }

    #[test]
    fn a_denied_assume_role_is_found_inside_the_dispatch_failure() {
        let wrapped = r#"DispatchFailure(ConnectorError { kind: Other(None), source: ProviderError(ProviderError { source: ServiceError(ServiceError { source: Unhandled(Unhandled { meta: ErrorMetadata { code: Some("AccessDenied"), message: Some("not allowed") } }) }) }) })"#;
        assert_eq!(denied_in(wrapped), Some("AccessDenied"));
        assert_eq!(denied_in("DispatchFailure(ConnectorError { kind: Io, source: refused })"), None);
    }

    #[test]
    fn throttles_are_counted_as_such_whatever_their_status() {
        let r53 = b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code></Error></ErrorResponse>";
        assert_eq!(outcome(Some((400, r53))), "throttled");
        assert_eq!(outcome(Some((503, b""))), "throttled");
        assert_eq!(outcome(Some((400, b"<Code>InvalidParameterValue</Code>"))), "client_error");
        assert_eq!(outcome(Some((500, b""))), "server_error");
        assert_eq!(outcome(Some((200, b""))), "ok");
        assert_eq!(outcome(None), "transport_error");
    }
}
