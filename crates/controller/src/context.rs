//! The Context every reconcile shares: clients, settings, catalogs, the accounts (cloud clients
//! and fleet caches), metrics and the recorder. Memory of one kind's protocol lives in that
//! kind's reconciler, not here; this module imports no reconciler.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::runtime::reflector::Store;
use molecule_crds::catalog::Catalog;
use molecule_crds::images::ImageCatalog;
use molecule_crds::v1alpha1::Tenant;

use crate::backoff::Backoff;
use crate::cloud::cache::FleetCache;
use crate::cloud::commands::Commands;
use crate::cloud::guard::LaunchGuard;
use crate::cloud::secrets::Secrets;
use crate::cloud::tags::Identity;
use crate::cloud::{Dns, Instances, Network, Tunnels, Volumes};
use crate::failpoints::Failpoints;
use crate::metrics::Metrics;

/// Operator settings the reconcilers read (a subset of the command line, resolved at start).
/// Where an account's resources live (region, subnet, zone) is the [`Account`]'s.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Domain of workspace hostnames.
    pub workspace_domain: String,
    /// How long a delete may wait on AWS before a condition names what blocks it.
    pub deprovision_deadline: Duration,
    /// How long an instance may run without its bootstrap reporting before it is `BootTimedOut`.
    pub boot_deadline: Duration,
    /// How long after an erasure (or a launch) began the listing that confirms the instances gone
    /// must have started: a listing lags new instances by up to `cloud::cache::LISTING_LAG`.
    pub erasure_listing_allowance: Duration,
    /// How often the fleet cache refreshes in steady state.
    pub refresh_interval: Duration,
    /// Workspaces reconciled at once.
    pub concurrency: u16,
    /// Label selector of the Workspaces reconciled.
    pub workspace_selector: Option<String>,
}

/// One AWS account and region the operator launches into: the main one, or the canary one
/// reached through STS AssumeRole.
pub struct Account {
    /// `main` or `canary` (Tenant `status.account`).
    pub name: &'static str,
    /// Region.
    pub region: String,
    /// Subnet instances are launched in.
    pub subnet_id: String,
    /// Availability zone of that subnet (data volumes must live there).
    pub zone: String,
    /// CIDR of the VPC (egress of `egressOpen: false`).
    pub vpc_cidr: String,
    /// EC2 Instance Connect endpoint group (SSH source), main account only.
    pub eic_sg: Option<String>,
    /// AMI of tenant VMs.
    pub ami: Option<String>,
    /// EC2 instances.
    pub instances: Arc<dyn Instances>,
    /// Security groups.
    pub network: Arc<dyn Network>,
    /// EBS volumes.
    pub volumes: Arc<dyn Volumes>,
    /// Secrets Manager.
    pub secrets: Arc<dyn Secrets>,
    /// IAM (the per-tenant roles and instance profiles).
    pub identities: Arc<dyn crate::cloud::identities::Identities>,
    /// SSM Run Command.
    pub commands: Arc<dyn Commands>,
    /// The account's fleet cache.
    pub cache: Arc<FleetCache>,
    /// Launches whose outcome is unknown, by owner uid (see [`LaunchGuard`]).
    pub guard: LaunchGuard,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account").field("name", &self.name).field("region", &self.region).finish_non_exhaustive()
    }
}

/// Settings of the Tenant reconciler.
#[derive(Clone)]
pub struct TenantSettings {
    /// Base domain of tenant hostnames.
    pub base_domain: String,
    /// Default instance type of tenant VMs.
    pub instance_type: String,
    /// Default platform image.
    pub image: Option<String>,
    /// Platform image of canary tenants.
    pub canary_image: Option<String>,
    /// Registry pull token (secret: goes into bundles only).
    pub ghcr_pull_token: Option<String>,
    /// S3 prefix of tenant backups.
    pub backup_prefix: Option<String>,
    /// Control-plane URL.
    pub cp_base_url: Option<String>,
    /// Namespace of credentials Secrets and erasure receipts.
    pub operator_namespace: String,
    /// Path and permissions boundary of the per-tenant IAM roles.
    pub iam: crate::cloud::identities::IamSettings,
}

impl std::fmt::Debug for TenantSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pull token is a secret: never printed.
        f.debug_struct("TenantSettings")
            .field("base_domain", &self.base_domain)
            .field("instance_type", &self.instance_type)
            .field("operator_namespace", &self.operator_namespace)
            .finish_non_exhaustive()
    }
}

/// See the module docs.
pub struct Context {
    /// Kubernetes client (the operator's own identity).
    pub client: Client,
    /// Event recorder.
    pub recorder: crate::recorder::Recorder,
    /// Settings.
    pub settings: Settings,
    /// Tags that mark our resources.
    pub identity: Identity,
    /// Instance type catalog.
    pub catalog: Catalog,
    /// Image catalog.
    pub images: ImageCatalog,
    /// Workspace DNS zone, when configured.
    pub dns: Option<Arc<dyn Dns>>,
    /// Metrics.
    pub metrics: Metrics,
    /// Armed failpoints (tests only).
    pub failpoints: Failpoints,
    /// Per-object requeue backoff.
    pub backoff: Backoff,
    /// Tenants, from a watch (admission reads quotas and namespaces here).
    pub tenants: Store<Tenant>,
    /// The main account: Workspaces and main Tenants live here (clients and fleet cache).
    pub main: Arc<Account>,
    /// The canary account, or why it is not usable (not configured, being connected, refused).
    pub canary: Arc<crate::accounts::Slot>,
    /// Cloudflare tunnels and records, when configured.
    pub tunnels: Option<Arc<dyn Tunnels>>,
    /// Tenant settings.
    pub tenant: TenantSettings,
}

impl Context {
    /// The usable accounts: main first, then the canary one when it is usable.
    pub fn accounts(&self) -> Vec<Arc<Account>> {
        std::iter::once(self.main.clone()).chain(self.canary.get().ok()).collect()
    }

    /// The account named `name` (`main`, `canary`), when usable.
    pub fn account(&self, name: &str) -> Option<Arc<Account>> {
        self.accounts().into_iter().find(|a| a.name == name)
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}
