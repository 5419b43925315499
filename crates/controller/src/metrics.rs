//! Prometheus metrics. Every label value comes from a bounded set (an enum, an operation name of
//! the AWS API), never from an error message or an object name.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// One AWS HTTP attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsCall {
    /// ec2, route53, secretsmanager, sts.
    pub service: String,
    /// The API operation (RunInstances).
    pub operation: String,
    /// ok, throttled, client_error, server_error, transport_error.
    pub outcome: &'static str,
}

/// One reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// Workspace or Tenant.
    pub kind: &'static str,
    /// ok or the error category.
    pub outcome: &'static str,
}

/// A counted event about a kind (duplicates terminated, relaunches, rejections).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindReason {
    /// Workspace or Tenant.
    pub kind: &'static str,
    /// Bounded reason.
    pub reason: &'static str,
}

/// The AWS account a fleet cache lists (main or canary).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabel {
    /// main or canary.
    pub account: &'static str,
}

/// EC2 notifications read from an account's queue, by what became of them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabel {
    /// main or canary.
    pub account: &'static str,
    /// applied (written into the fleet cache, or about nothing we hold) or malformed (deleted).
    pub outcome: &'static str,
}

/// One Cloudflare API call: what it was for and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CfCall {
    /// What was attempted ("list tunnels of", "create record", ...): a fixed set.
    pub operation: &'static str,
    /// ok, throttled, not_found, client_error, server_error or transport_error.
    pub outcome: &'static str,
}

/// An orphan kind (Instance, SecurityGroup, Volume, Secret, DnsRecord, Tunnel).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OrphanLabel {
    /// Kind.
    pub kind: &'static str,
}

/// A source of the orphan scan (`ec2-main`, `ec2-canary`, `secrets-main`, `secrets-canary`,
/// `route53`, `cloudflare`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// Source.
    pub source: &'static str,
}

/// The build of the running binary.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The crate version.
    pub version: &'static str,
}

/// Objects of a kind in a phase.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// Workspace or Tenant.
    pub kind: &'static str,
    /// A phase of the kind's status (a fixed set), `None` before the first status.
    pub phase: String,
}

/// A kind, alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// Workspace or Tenant.
    pub kind: &'static str,
}

/// Every metric of the operator, registered once.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// The registry /metrics encodes.
    pub registry: Arc<Registry>,
    /// AWS HTTP attempts by service, operation and outcome (retries count).
    pub aws_calls: Family<AwsCall, Counter>,
    /// Reconciles by kind and outcome.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Reconcile duration in seconds by kind.
    pub reconcile_seconds: Family<ReconcileLabels, Histogram>,
    /// Duplicate instances terminated.
    pub duplicates_terminated: Family<KindReason, Counter>,
    /// Instances relaunched after being lost.
    pub relaunches: Family<KindReason, Counter>,
    /// Admission refusals by reason.
    pub not_admitted: Family<KindReason, Counter>,
    /// Full refreshes of the fleet caches, by account.
    pub cache_refreshes: Family<AccountLabel, Counter>,
    /// EC2 notifications read from the accounts' queues, by account and outcome.
    pub cloud_events: Family<EventLabel, Counter>,
    /// Instances in the fleet caches, by account.
    pub cached_instances: Family<AccountLabel, Gauge>,
    /// 1 while this replica leads (always 1 without leader election).
    pub leader: Gauge,
    /// Tenant erasures completed (receipt written, finalizer removed).
    pub erasures: Counter,
    /// Orphans found by the last scan, by kind (all tenants, and those of no live tenant).
    pub orphans: Family<OrphanLabel, Gauge>,
    /// Orphans deleted under `ORPHAN_POLICY=reap`, by kind.
    pub orphans_reaped: Family<OrphanLabel, Counter>,
    /// Orphan scans completed.
    pub orphan_scans: Counter,
    /// Orphan scan listings that failed, by source (the other sources still report).
    pub orphan_source_failures: Family<SourceLabel, Counter>,
    /// Cloudflare API calls by operation and outcome.
    pub cloudflare_calls: Family<CfCall, Counter>,
    /// 1, labelled with the version of the running binary.
    pub build_info: Family<BuildLabels, Gauge>,
    /// Objects by kind and phase, from the watch caches.
    pub objects: Family<PhaseLabels, Gauge>,
    /// Objects with `Stalled=True`, by kind and reason (a fixed set of condition reasons).
    pub stalled: Family<KindReason, Gauge>,
    /// Seconds an object was not Ready before it became Ready (after creation, a start, a
    /// relaunch or a replacement).
    pub time_to_ready: Family<KindLabel, Histogram>,
    /// Seconds since the last successful fleet listing started, by account.
    pub cache_age: Family<AccountLabel, Gauge>,
    /// Seconds since the Route 53 zone cache's listing started (-1: none yet).
    pub dns_cache_age: Gauge,
    /// Workspaces' DNS changes per ChangeResourceRecordSets request.
    pub dns_batch_ops: Histogram,
}

impl Metrics {
    /// Registers every metric under the `molecule_` prefix.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("molecule");
        let aws_calls = Family::<AwsCall, Counter>::default();
        r.register("aws_calls", "AWS HTTP attempts by service, operation and outcome", aws_calls.clone());
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        r.register("reconciles", "Reconciles by kind and outcome", reconciles.clone());
        let reconcile_seconds = Family::<ReconcileLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        r.register("reconcile_duration_seconds", "Reconcile duration", reconcile_seconds.clone());
        let duplicates_terminated = Family::<KindReason, Counter>::default();
        r.register("duplicate_instances_terminated", "Duplicate instances terminated", duplicates_terminated.clone());
        let relaunches = Family::<KindReason, Counter>::default();
        r.register("instance_relaunches", "Instances relaunched after loss", relaunches.clone());
        let not_admitted = Family::<KindReason, Counter>::default();
        r.register("not_admitted", "Admission refusals by reason", not_admitted.clone());
        let cache_refreshes = Family::<AccountLabel, Counter>::default();
        r.register("fleet_cache_refreshes", "Full refreshes of the fleet cache", cache_refreshes.clone());
        let cloud_events = Family::<EventLabel, Counter>::default();
        r.register("ec2_events", "EC2 notifications read from the queue, by account and outcome", cloud_events.clone());
        let cached_instances = Family::<AccountLabel, Gauge>::default();
        r.register("fleet_cache_instances", "Instances in the fleet cache", cached_instances.clone());
        let leader = Gauge::default();
        r.register("leader", "1 while this replica leads and reconciles", leader.clone());
        let erasures = Counter::default();
        r.register("tenant_erasures", "Tenant erasures completed with a receipt", erasures.clone());
        let orphans = Family::<OrphanLabel, Gauge>::default();
        r.register("orphans", "Orphans found by the last scan, by kind", orphans.clone());
        let orphans_reaped = Family::<OrphanLabel, Counter>::default();
        r.register("orphans_reaped", "Orphans deleted under ORPHAN_POLICY=reap, by kind", orphans_reaped.clone());
        let orphan_scans = Counter::default();
        r.register("orphan_scans", "Orphan scans completed", orphan_scans.clone());
        let orphan_source_failures = Family::<SourceLabel, Counter>::default();
        r.register(
            "orphan_scan_source_failures",
            "Orphan scan listings that failed, by source",
            orphan_source_failures.clone(),
        );
        let cloudflare_calls = Family::<CfCall, Counter>::default();
        r.register("cloudflare_calls", "Cloudflare API calls by operation and outcome", cloudflare_calls.clone());
        let build_info = Family::<BuildLabels, Gauge>::default();
        r.register("build_info", "1, labelled with the version of the running binary", build_info.clone());
        build_info.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        let objects = Family::<PhaseLabels, Gauge>::default();
        r.register("objects", "Objects by kind and phase", objects.clone());
        let stalled = Family::<KindReason, Gauge>::default();
        r.register("stalled_objects", "Objects with Stalled=True, by kind and reason", stalled.clone());
        let time_to_ready =
            Family::<KindLabel, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(1.0, 2.0, 14)));
        r.register(
            "time_to_ready_seconds",
            "Seconds an object was not Ready before it became Ready",
            time_to_ready.clone(),
        );
        let cache_age = Family::<AccountLabel, Gauge>::default();
        r.register(
            "fleet_cache_age_seconds",
            "Seconds since the last successful fleet listing started",
            cache_age.clone(),
        );
        let dns_cache_age = Gauge::default();
        r.register(
            "dns_cache_age_seconds",
            "Seconds since the Route 53 zone cache's listing started (-1: none yet)",
            dns_cache_age.clone(),
        );
        let dns_batch_ops = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        r.register(
            "dns_batch_changes",
            "Record changes (one per owner) per ChangeResourceRecordSets",
            dns_batch_ops.clone(),
        );
        Self {
            dns_cache_age,
            dns_batch_ops,
            build_info,
            objects,
            stalled,
            time_to_ready,
            cache_age,
            leader,
            erasures,
            cloudflare_calls,
            orphans,
            orphans_reaped,
            orphan_scans,
            orphan_source_failures,
            registry: Arc::new(r),
            aws_calls,
            reconciles,
            reconcile_seconds,
            duplicates_terminated,
            relaunches,
            not_admitted,
            cache_refreshes,
            cloud_events,
            cached_instances,
        }
    }

    /// The content type of [`Metrics::encode`]: prometheus-client writes OpenMetrics text.
    pub const CONTENT_TYPE: &'static str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// The OpenMetrics text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail except on a formatter error, which String never gives.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
