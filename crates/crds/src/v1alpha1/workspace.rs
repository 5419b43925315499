//! The Workspace kind: one agent machine on one EC2 instance.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Arch, Condition, DisplayMode, DisplayProtocol, GpuSpec, Market, OsFamily, PowerState};

/// The most `spec.env` may hold, in bytes: the sum over its entries of key + value + 2 (the bytes
/// of each `KEY=value` line and its newline, as user-data carries them). The CRD's CEL rule on
/// `spec.env` names this number (a test keeps the two equal); the operator's user-data test shows
/// that any env within it fits EC2's 16 KiB user-data limit in the largest rendering.
pub const ENV_MAX_BYTES: usize = 6144;

/// A Workspace is one agent machine: the operator converges it onto one EC2 instance, a
/// security group, an optional data volume and a DNS record, reports drift, stops and starts it,
/// relaunches it when it is lost, and removes all of it when the Workspace is deleted.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "moleculesai.app",
    version = "v1alpha1",
    kind = "Workspace",
    plural = "workspaces",
    singular = "workspace",
    shortname = "ws",
    category = "molecule",
    namespaced,
    status = "WorkspaceStatus",
    doc = "A Workspace is one agent machine: one EC2 instance with its security group, optional data volume and DNS record, sized by spec.compute and optionally running a desktop (spec.compute.display).",
    validation = Rule::new("self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be a DNS label (lowercase letters, digits and '-', at most 63 characters): it becomes the workspace hostname"),
    printcolumn(name = "Tenant", type_ = "string", json_path = ".spec.tenant", description = "Owning Tenant"),
    printcolumn(name = "Type", type_ = "string", json_path = ".status.resolved.instanceType", description = "Resolved EC2 instance type"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase", description = "Lifecycle phase"),
    printcolumn(name = "Instance", type_ = "string", json_path = ".status.instanceId", description = "EC2 instance ID"),
    printcolumn(name = "IP", type_ = "string", json_path = ".status.privateIp", description = "Private IP address"),
    printcolumn(name = "$/H", type_ = "string", json_path = ".status.estimatedHourlyUsd", description = "Estimated list price per hour, USD"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Display", type_ = "string", json_path = ".status.display.status", description = "Desktop status", priority = 1),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Ready condition", priority = 1),
    selectable = ".spec.tenant"
)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSpec {
    /// Name of the Tenant this Workspace belongs to. Required and immutable; the Workspace's
    /// namespace must be listed in the Tenant's `spec.namespaces`.
    #[schemars(length(min = 1, max = 40), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.tenant is immutable: delete and recreate the Workspace to move it to another tenant"))]
    pub tenant: String,

    /// Agent runtime to run, such as claude-code, codex or hermes. Lowercase letters, digits,
    /// '.', '_' and '-'. The hermes runtime needs a root volume of at least 50 GB.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9][a-z0-9._-]*$"))]
    pub runtime: String,

    /// The agent's access tier, 1 to 4 (default 2). Independent of machine size.
    #[serde(default = "default_tier")]
    #[schemars(range(min = 1, max = 4))]
    pub tier: u8,

    /// Running (default) or Stopped. Stopped stops the instance and keeps every volume and
    /// record; Running starts it again.
    #[serde(default)]
    pub state: PowerState,

    /// How a change of `spec.compute` on a launched Workspace is applied. Manual (default): the
    /// change is reported as Drifted and applied only when the annotation
    /// `moleculesai.app/recreate-at` is set to a time after the last launch. Recreate: applied at
    /// once by replacing the instance (the root volume is lost, the data volume moves).
    #[serde(default)]
    pub update_policy: UpdatePolicy,

    /// What deleting the Workspace does to its cloud resources. Delete (default): the instance,
    /// security group, data volume and DNS record are deleted, and the Workspace goes only once AWS
    /// confirms them gone. Retain: they are left as they are, tagged
    /// `moleculesai.app/retained=true`, and the Workspace goes at once; the orphan scan lists
    /// them as retained (never reaped).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Non-secret environment variables for the runtime. They are written into the instance's
    /// user-data: never put a secret here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64, "additionalProperties" = {"type": "string", "maxLength": 4096, "pattern": "^[^\r\n]*$"}))]
    #[x_kube(validation = Rule::new("self.all(k, k.matches('^[A-Za-z_][A-Za-z0-9_]*$') && k.size() <= 128)").message("spec.env keys must be environment variable names ([A-Za-z_][A-Za-z0-9_]*, at most 128 characters)"))]
    #[x_kube(validation = Rule::new("self.map(k, size(k) + size(bytes(self[k])) + 2).sum() <= 6144").message("spec.env is too large: its keys and values (plus 2 bytes per entry) must total at most 6144 bytes, or the machine's user-data would pass EC2's 16 KiB limit"))]
    pub env: BTreeMap<String, String>,

    /// Machine sizing: instance type, OS image, volumes, GPU, market, network and desktop. Every
    /// field is optional; the operator resolves defaults and reports them in `status.resolved`.
    #[serde(default)]
    pub compute: ComputeSpec,
}

fn default_tier() -> u8 {
    2
}

/// How a change of `spec.compute` is applied to a launched Workspace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum UpdatePolicy {
    /// Report drift; replace only when `moleculesai.app/recreate-at` is set after the last launch.
    #[default]
    Manual,
    /// Replace the instance as soon as the spec changes.
    Recreate,
}

/// What deleting a Workspace does to its cloud resources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the cloud resources and wait until AWS confirms them gone.
    #[default]
    Delete,
    /// Leave the cloud resources, tagged `moleculesai.app/retained=true`.
    Retain,
}

/// Machine sizing of a Workspace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComputeSpec {
    /// EC2 instance type from the operator's catalog (default t3.large; t3.xlarge for
    /// desktop-control, g4dn.xlarge for gpu-desktop-control; with `gpu` and no type, the cheapest
    /// type carrying that GPU). A type outside the catalog is not admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"))]
    pub instance_type: Option<String>,
    /// Operating system image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsSpec>,
    /// Root and data volumes (encrypted gp3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeSpec>,
    /// GPUs. Needs a Tenant whose quotas allow the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuSpec>,
    /// How the instance is bought: onDemand (default) or spot. A spot interruption relaunches
    /// the instance and reattaches the data volume; the root volume is lost.
    #[serde(default)]
    pub market: Market,
    /// Network policy of the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,
    /// Desktop for desktop-control agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<DisplaySpec>,
}

/// Operating system image of a Workspace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.amiId) || self.family == 'custom'").message("os.amiId is only allowed with os.family custom").field_path(".amiId"))]
#[x_kube(validation = Rule::new("self.family != 'custom' || has(self.amiId)").message("os.family custom requires os.amiId").field_path(".amiId"))]
#[x_kube(validation = Rule::new("!has(self.version) || (self.family == 'ubuntu' && self.version in ['22.04', '24.04']) || (self.family == 'debian' && self.version == '12') || self.family == 'custom'").message("os.version is not offered by os.family: ubuntu offers 22.04 and 24.04, debian offers 12").field_path(".version"))]
pub struct OsSpec {
    /// OS family: ubuntu (default), debian, or custom (your own AMI in `amiId`, which needs the
    /// Tenant quota allowCustomImage).
    #[serde(default)]
    pub family: OsFamily,
    /// Version of the family: ubuntu 22.04 or 24.04 (default 24.04); debian 12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub version: Option<String>,
    /// x86_64 or arm64. Default: the architecture of the instance type; an architecture the
    /// instance type cannot run is not admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    /// Your own AMI ID; only with family custom, which needs the Tenant quota allowCustomImage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^ami-[0-9a-f]{8,17}$"))]
    pub ami_id: Option<String>,
}

/// Volumes of a Workspace. All are encrypted gp3.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSpec {
    /// Root volume size in GB, 32 to 2048 (default 50; 80 for desktop-control, 100 for
    /// gpu-desktop-control). Lost when the instance is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 32, max = 2048))]
    pub root_gb: Option<u32>,
    /// Provisioned IOPS of the root volume, 3000 to 16000 (default 3000, the gp3 baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3000, max = 16000))]
    pub iops: Option<u32>,
    /// Throughput of the root volume in MiB/s, 125 to 1000 (default 125, the gp3 baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 125, max = 1000))]
    pub throughput_mi_bps: Option<u32>,
    /// Size in GB of a persistent data volume mounted at /home/agent, 1 to 16384. It survives
    /// stop, start, replacement and spot interruption, and is deleted with the Workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16384))]
    pub data_gb: Option<u32>,
}

/// Network policy of a Workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// true (default): outbound traffic to anywhere. false: outbound only to the VPC CIDR.
    /// Inbound is never open to the internet either way.
    #[serde(default = "default_true")]
    pub egress_open: bool,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        Self { egress_open: true }
    }
}

fn default_true() -> bool {
    true
}

/// Desktop of a Workspace. The display stack listens on localhost on the instance only; no
/// display port is ever opened in a security group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisplaySpec {
    /// Desktop mode. none (default): no desktop. desktop-control: a virtual desktop (Xvfb, XFCE)
    /// that the agent and a user take turns controlling through the `<workspace>-display` Lease;
    /// defaults the instance type to t3.xlarge and the root volume to 80 GB. gpu-desktop-control:
    /// the same on a GPU (T4 x1 unless `gpu` says otherwise), g4dn.xlarge and 100 GB by default.
    /// Needs a Tenant whose quotas allow display.
    #[serde(default)]
    pub mode: DisplayMode,
    /// Screen width in pixels, 640 to 3840 (default 1920).
    #[serde(default = "default_width")]
    #[schemars(range(min = 640, max = 3840))]
    pub width: u32,
    /// Screen height in pixels, 480 to 2160 (default 1080).
    #[serde(default = "default_height")]
    #[schemars(range(min = 480, max = 2160))]
    pub height: u32,
    /// Remote desktop protocol: novnc (default; noVNC over x11vnc) or dcv (Amazon DCV). Either
    /// listens on localhost on the instance only.
    #[serde(default)]
    pub protocol: DisplayProtocol,
}

impl Default for DisplaySpec {
    fn default() -> Self {
        Self {
            mode: DisplayMode::None,
            width: default_width(),
            height: default_height(),
            protocol: DisplayProtocol::Novnc,
        }
    }
}

fn default_width() -> u32 {
    1920
}

fn default_height() -> u32 {
    1080
}

/// Lifecycle phase of a Workspace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum WorkspacePhase {
    /// Seen, not admitted or not launched yet.
    #[default]
    Pending,
    /// The instance is being launched and booted.
    Provisioning,
    /// The instance runs and its bootstrap reported ready.
    Running,
    /// The instance is being stopped.
    Stopping,
    /// The instance is stopped as asked by `spec.state`.
    Stopped,
    /// A new instance is replacing the old one (spec change under Recreate, or recreate-at).
    Replacing,
    /// The Workspace is being deleted and its cloud resources removed.
    Terminating,
    /// The Workspace cannot converge; see the conditions.
    Failed,
}

/// What the operator observed and did for a Workspace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceStatus {
    /// Pending, Provisioning, Running, Stopping, Stopped, Replacing, Terminating or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<WorkspacePhase>,
    /// The metadata.generation the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Admitted, InstanceReady, NetworkReady, DnsReady, DisplayReady, DataVolumeReady, Drifted and
    /// Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// EC2 instance ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Private IP address of the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    /// DNS name of the workspace, `<name>.<tenant>.<workspace domain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Security group of the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group_id: Option<String>,
    /// ID of the persistent data volume, when `dataGb` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_volume_id: Option<String>,
    /// The data volume's CreateVolume: its idempotency token and generation, written before the
    /// call (a volume deleted outside the operator is replaced by the next generation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_volume_record: Option<DataVolumeRecord>,
    /// ARN of the Workspace's own Secrets Manager secret (its token for the tenant platform and
    /// its display password; never a value of the tenant's bundle). Created before the first
    /// launch, read by the instance at boot with its instance profile, deleted with the Workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_arn: Option<String>,
    /// The current launch: its idempotency token, attempt number and spec hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<LaunchRecord>,
    /// The instance whose bootstrap did not report within the boot deadline
    /// (`BOOT_DEADLINE_SECONDS`) and that was terminated to be relaunched once as the next
    /// attempt. Set, a next instance that misses the deadline is kept, failed (`BootTimedOut`);
    /// cleared once an instance's bootstrap reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_timed_out: Option<String>,
    /// What the defaults, display profile and catalog produced from `spec.compute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<ResolvedCompute>,
    /// Estimated list price per hour in USD (instance plus gp3 storage), as a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_hourly_usd: Option<String>,
    /// Desktop state, for display-enabled Workspaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<DisplayStatus>,
}

/// One CreateVolume of a Workspace's data volume. Written before the call, so a create retried
/// after a crash repeats the token and AWS returns the same volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataVolumeRecord {
    /// EC2 ClientToken of the CreateVolume, derived from the Workspace uid and the generation.
    pub token: String,
    /// Generation, starting at 1 (0: a volume created before generations were recorded); a
    /// volume deleted outside the operator is replaced by generation + 1.
    pub generation: u32,
    /// When CreateVolume returned the volume (RFC 3339); unset until it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// One launch of a Workspace's instance. Written before RunInstances is called, so a crash can
/// never launch twice for the same attempt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LaunchRecord {
    /// EC2 ClientToken of the launch, derived from the Workspace uid and the attempt.
    pub token: String,
    /// Launch attempt number, starting at 1; a relaunch or replacement adds one.
    pub attempt: u32,
    /// Hash of `spec.compute` the instance was launched from; drift compares against it.
    pub spec_hash: String,
    /// When the instance was launched (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launched_at: Option<String>,
    /// When a RunInstances call of this attempt failed without a known outcome (a 5xx, a
    /// throttle, a timeout, a lost answer or `IdempotentParameterMismatch`; RFC 3339). The
    /// instance may exist: the operator launches nothing for this object until it has read an
    /// instance listing that started later, then clears this field. Kept in status so that a
    /// restarted or new leader keeps waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncertain_since: Option<String>,
}

/// The sizing that the resolution rules produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedCompute {
    /// EC2 instance type.
    pub instance_type: String,
    /// vCPUs of the instance type.
    pub vcpus: u32,
    /// Memory of the instance type in MiB.
    pub memory_mib: u32,
    /// CPU architecture.
    pub arch: Arch,
    /// Operating system family.
    pub os_family: OsFamily,
    /// Operating system version (empty for custom images).
    #[serde(default)]
    pub os_version: String,
    /// AMI the instance runs.
    pub ami_id: String,
    /// Root volume size in GB.
    pub root_gb: u32,
    /// Root volume IOPS.
    pub iops: u32,
    /// Root volume throughput in MiB/s.
    pub throughput_mi_bps: u32,
    /// Data volume size in GB, when one is requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_gb: Option<u32>,
    /// GPUs of the instance type, when it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuSpec>,
    /// onDemand or spot.
    pub market: Market,
    /// Desktop mode.
    pub display_mode: DisplayMode,
}

/// Desktop status as API.md describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisplayStatus {
    /// Desktop mode in effect.
    pub mode: DisplayMode,
    /// unavailable, provisioning, starting, ready or offline.
    pub status: DisplayStatusSpec,
    /// Screen width in pixels.
    pub width: u32,
    /// Screen height in pixels.
    pub height: u32,
    /// Remote desktop protocol.
    pub protocol: DisplayProtocol,
    /// Who holds the display control Lease: none, agent or user. An expired lease reads as none.
    #[serde(default)]
    pub controller: String,
    /// Identity of the holder (without its agent:/user: prefix); empty when nobody holds it.
    #[serde(default)]
    pub controlled_by: String,
    /// When the holder's lease expires unless renewed (RFC 3339).
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// State of a Workspace desktop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DisplayStatusSpec {
    /// The Workspace has no desktop, or it is stopped.
    #[default]
    Unavailable,
    /// The instance is being launched.
    Provisioning,
    /// The instance runs and the desktop stack is starting.
    Starting,
    /// The desktop answers on the instance.
    Ready,
    /// The desktop stack reported it is down.
    Offline,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::{ENV_MAX_BYTES, Workspace};

    #[test]
    fn the_env_size_rule_uses_the_budget() {
        let crd = serde_json::to_value(Workspace::crd()).unwrap_or_default();
        let env = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["env"];
        let rules = env["x-kubernetes-validations"].as_array().cloned().unwrap_or_default();
        let rule = rules
            .iter()
            .find(|r| r["rule"].as_str().is_some_and(|s| s.contains(".sum()")))
            .unwrap_or_else(|| panic!("no size rule on spec.env: {env}"));
        let budget = format!("<= {ENV_MAX_BYTES}");
        assert!(rule["rule"].as_str().is_some_and(|s| s.ends_with(&budget)), "{rule}");
        assert!(
            rule["message"].as_str().is_some_and(|m| m.contains("spec.env") && m.contains(&ENV_MAX_BYTES.to_string()))
        );
    }
}
