//! The Tenant kind: one organisation, its platform VM, tunnel, bootstrap bundle and quotas.

use std::collections::BTreeSet;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, GpuType, PowerState};
use super::workspace::LaunchRecord;

/// A Tenant is one organisation. The operator gives it its own EC2 VM, security group, Secrets
/// Manager bootstrap bundle, Cloudflare tunnel and hostname `<name>.<baseDomain>`, and enforces its
/// quotas on the Workspaces in its namespaces. Deleting a Tenant erases everything it owns (GDPR
/// Article 17) and leaves an erasure receipt.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "moleculesai.app",
    version = "v1alpha1",
    kind = "Tenant",
    plural = "tenants",
    singular = "tenant",
    shortname = "tn",
    category = "molecule",
    status = "TenantStatus",
    doc = "A Tenant is one organisation: its own EC2 VM, security group, Secrets Manager bootstrap bundle, Cloudflare tunnel and hostname, and the quotas of the Workspaces in its namespaces. Deleting it erases everything it owns and writes an erasure receipt.",
    validation = Rule::new("self.metadata.name.size() <= 40 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit) of at most 40 characters: it is the organisation slug and becomes the tenant hostname"),
    printcolumn(name = "Tier", type_ = "integer", json_path = ".spec.tier", description = "Access tier 1..4"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase", description = "Lifecycle phase"),
    printcolumn(name = "Instance", type_ = "string", json_path = ".status.instanceId", description = "Tenant VM instance ID"),
    printcolumn(name = "Hostname", type_ = "string", json_path = ".status.hostname", description = "Public hostname"),
    printcolumn(name = "Workspaces", type_ = "integer", json_path = ".status.usage.workspaces", description = "Admitted Workspaces"),
    printcolumn(name = "Orphans", type_ = "integer", json_path = ".status.orphanCount", description = "Cloud resources with this tenant's tags and no live owner"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// Access tier, 1 (sandboxed) to 4 (default 2). Sets the default quotas: tier 1 allows 2
    /// Workspaces, 8 vCPUs, no GPU and no display; tier 2 allows 10 Workspaces, 40 vCPUs and
    /// display; tier 3 allows 50 Workspaces, 200 vCPUs and 8 GPUs (T4, L4, A10G); tier 4 is
    /// unlimited and allows custom images. Any field of `quotas` overrides its tier default.
    #[serde(default = "default_tier")]
    #[schemars(range(min = 1, max = 4))]
    pub tier: u8,

    /// Human-readable organisation name, shown in dashboards. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub display_name: Option<String>,

    /// Namespaces whose Workspaces may belong to this Tenant (default: one namespace named like
    /// the Tenant). A Workspace in any other namespace is not admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 64),
        inner(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub namespaces: Option<Vec<String>>,

    /// Running (default) or Stopped. Stopped stops the tenant VM (StopInstances) and keeps
    /// everything; it never terminates it.
    #[serde(default)]
    pub state: PowerState,

    /// Launch the tenant in the canary account and region configured on the operator, with the
    /// canary image. Default false. Immutable: a Tenant cannot move between accounts (delete and
    /// recreate it, which erases it).
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.canary is immutable: a Tenant cannot move between accounts; delete and recreate it"))]
    pub canary: bool,

    /// EC2 instance type of the tenant VM (default: the operator's EC2_INSTANCE_TYPE, t3.small).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"))]
    pub instance_type: Option<String>,

    /// Tenant platform container image reference, `registry/repository:tag` or `@sha256:...`
    /// (default: the operator's tenant image, or its canary image when `canary`). Changing it
    /// redeploys the platform in place, with no reboot. Letters, digits and `._/:@+-` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512), regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$"))]
    pub image: Option<String>,

    /// Quota overrides. Each field set here replaces the default of the tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<TenantQuotas>,
}

fn default_tier() -> u8 {
    2
}

impl TenantSpec {
    /// The namespaces whose Workspaces may belong to the tenant named `slug`.
    pub fn allowed_namespaces<'a>(&'a self, slug: &'a str) -> BTreeSet<&'a str> {
        match &self.namespaces {
            Some(list) if !list.is_empty() => list.iter().map(String::as_str).collect(),
            _ => BTreeSet::from([slug]),
        }
    }
}

/// Quota overrides for a Tenant. A field that is not set takes its tier default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantQuotas {
    /// Most Workspaces the tenant may have admitted at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100_000))]
    pub max_workspaces: Option<u32>,
    /// Most vCPUs, summed over the instance types of admitted Workspaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10_000_000))]
    pub max_vcpus: Option<u32>,
    /// Most GPUs, summed over admitted Workspaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100_000))]
    pub max_gpus: Option<u32>,
    /// Most root volume GB, summed over admitted Workspaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100_000_000))]
    pub max_root_gb_total: Option<u32>,
    /// Largest root volume, in GB, that one Workspace may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 32, max = 2048))]
    pub max_root_gb_per_workspace: Option<u32>,
    /// Most data volume GB (`compute.volume.dataGb`), summed over admitted Workspaces; a
    /// Workspace without a data volume counts 0. Tier defaults: 200 (tier 1), 5000 (2), 50000
    /// (3), unlimited (4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100_000_000))]
    pub max_data_gb_total: Option<u32>,
    /// Largest data volume, in GB (`compute.volume.dataGb`), that one Workspace may ask for.
    /// Tier defaults: 100 (tier 1), 500 (2), 2000 (3), 16384 (4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 16384))]
    pub max_data_gb_per_workspace: Option<u32>,
    /// Whether Workspaces may run a desktop (`compute.display.mode` other than none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_display: Option<bool>,
    /// GPU models Workspaces may use. An empty list allows none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub allowed_gpu_types: Option<Vec<GpuType>>,
    /// Whether Workspaces may bring their own AMI (`os.family: custom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_custom_image: Option<bool>,
}

/// Lifecycle phase of a Tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TenantPhase {
    /// Seen, nothing created yet.
    #[default]
    Pending,
    /// Cloud resources are being created.
    Provisioning,
    /// The VM runs and the hostname answers through the tunnel.
    Ready,
    /// The VM is stopped as asked by `spec.state`.
    Stopped,
    /// The Tenant is being deleted and everything it owns is being erased.
    Erasing,
    /// Provisioning cannot proceed; see the conditions.
    Failed,
}

/// What the operator observed and did for a Tenant. Never holds a secret value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// Pending, Provisioning, Ready, Stopped, Erasing or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TenantPhase>,
    /// The metadata.generation the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, InstanceReady, NetworkReady, SecretReady, TunnelReady and DnsReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// AWS account the tenant lives in: main or canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// AWS region the tenant lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Instance ID of the tenant VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Private IP address of the tenant VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    /// Security group of the tenant VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group_id: Option<String>,
    /// ARN of the Secrets Manager bootstrap bundle (never its contents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_arn: Option<String>,
    /// ID of the Cloudflare tunnel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_id: Option<String>,
    /// Public hostname of the tenant, `<name>.<baseDomain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// What the tenant's admitted Workspaces use, counted against its quotas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TenantUsage>,
    /// The launch attempt of the tenant VM. The token reaches status before RunInstances is
    /// called, so a crash between the two never launches a second VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<LaunchRecord>,
    /// The instance whose bootstrap did not report within the boot deadline
    /// (`BOOT_DEADLINE_SECONDS`) and that was terminated to be relaunched once as the next
    /// attempt. Set, a next instance that misses the deadline is kept, failed (`BootTimedOut`);
    /// cleared once an instance's bootstrap reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_timed_out: Option<String>,
    /// The platform image the tenant VM runs now (set at launch and by each successful redeploy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The last in-place redeploy of the platform image (SSM Run Command, no reboot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeploy: Option<RedeployStatus>,
    /// The tenant's own AWS identities: the IAM roles and instance profiles the operator creates
    /// for the tenant VM and for the tenant's Workspaces. Each may read only this tenant's own
    /// secrets; both are deleted by the erasure and listed in its receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<TenantIdentity>,
    /// Progress of the erasure once the Tenant is being deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure: Option<ErasureStatus>,
    /// Cloud resources tagged as this tenant's that no live object owns (at most 100 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub orphans: Vec<OrphanFinding>,
    /// Number of orphans found by the last scan, even when `orphans` is truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphan_count: Option<u32>,
    /// When the last orphan scan finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_orphan_scan_time: Option<String>,
}

/// Outcome of a redeploy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum RedeployState {
    /// Sent to the VM, not finished yet.
    #[default]
    Pending,
    /// The VM runs the new image.
    Succeeded,
    /// The command failed; the VM keeps the image it ran. Change `spec.image` again to retry.
    Failed,
}

/// One in-place redeploy of the tenant platform image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedeployStatus {
    /// The image being deployed.
    pub image: String,
    /// SSM Run Command ID (look it up with `aws ssm list-command-invocations`).
    pub command_id: String,
    /// Pending, Succeeded or Failed.
    pub state: RedeployState,
    /// Why it failed, from SSM (never command output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the command was sent (RFC 3339).
    pub started_at: String,
    /// When it finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// The tenant's IAM identities, one per use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantIdentity {
    /// What the tenant VM runs under (in the tenant's account): GetSecretValue on the tenant's
    /// bootstrap bundle only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<IamIdentity>,
    /// What every Workspace of this tenant runs under (in the main account, where Workspaces
    /// live): GetSecretValue on this tenant's Workspace secrets only, never on the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<IamIdentity>,
}

/// One IAM role and the instance profile that holds it (same name).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IamIdentity {
    /// AWS account it lives in: main or canary.
    pub account: String,
    /// Name of the IAM role.
    pub role: String,
    /// ARN of the IAM role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Name of the instance profile (what RunInstances names).
    pub instance_profile: String,
}

/// Where an erasure stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureStatus {
    /// When the erasure started (RFC 3339).
    pub started_at: String,
    /// The step in progress: Workspaces, Instances, TenantVm, SecurityGroups, Identities,
    /// Cloudflare, Dns, Bundle, Credentials or Receipt.
    pub step: String,
    /// The resource the step waits for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
    /// The erasure receipt: a ConfigMap in the operator's namespace that outlives the Tenant.
    pub receipt: String,
}

/// Resources used by a tenant's admitted Workspaces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantUsage {
    /// Admitted Workspaces.
    pub workspaces: u32,
    /// vCPUs of their instance types.
    pub vcpus: u32,
    /// GPUs of their instance types.
    pub gpus: u32,
    /// Root volume GB, summed.
    pub root_gb_total: u32,
    /// Data volume GB, summed (a Workspace without a data volume counts 0).
    #[serde(default)]
    pub data_gb_total: u32,
}

/// Kind of a cloud resource found without a live owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum OrphanKind {
    /// An EC2 instance.
    Instance,
    /// An EC2 security group.
    SecurityGroup,
    /// An EBS volume.
    Volume,
    /// A Secrets Manager secret.
    Secret,
    /// A DNS record (Route 53 or Cloudflare).
    DnsRecord,
    /// A Cloudflare tunnel.
    Tunnel,
    /// An IAM role.
    IamRole,
    /// An IAM instance profile.
    InstanceProfile,
}

/// One cloud resource tagged as this tenant's with no live owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrphanFinding {
    /// Instance, SecurityGroup, Volume, Secret, DnsRecord, Tunnel, IamRole or InstanceProfile.
    pub kind: OrphanKind,
    /// The resource's ID (instance ID, group ID, secret ARN, record name, tunnel ID, IAM name).
    pub id: String,
    /// Region of the resource ("global" for DNS records and tunnels).
    pub region: String,
    /// When the scan first saw it (RFC 3339).
    pub detected_at: String,
    /// Why it is an orphan, naming the owner it points at.
    pub reason: String,
    /// True when the resource was kept on purpose (its Workspace was deleted with
    /// `deletionPolicy: Retain`): listed for the record, not counted in `orphanCount`, never
    /// reaped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retained: bool,
}
