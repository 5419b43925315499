//! Types shared by Tenant and Workspace.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// GPU model. The catalog maps each model to the instance types that carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum GpuType {
    /// NVIDIA T4 (g4dn family).
    T4,
    /// NVIDIA L4 (g6 family).
    L4,
    /// NVIDIA A10G (g5 family).
    A10G,
    /// NVIDIA A100 (p4d family).
    A100,
    /// NVIDIA H100 (p5 family).
    H100,
}

impl GpuType {
    /// Every GPU model, in catalog order.
    pub const ALL: [GpuType; 5] = [Self::T4, Self::L4, Self::A10G, Self::A100, Self::H100];

    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::T4 => "T4",
            Self::L4 => "L4",
            Self::A10G => "A10G",
            Self::A100 => "A100",
            Self::H100 => "H100",
        }
    }
}

impl std::fmt::Display for GpuType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CPU architecture of an instance and its image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Arch {
    /// 64-bit x86 (Intel and AMD instance types).
    #[serde(rename = "x86_64")]
    X86_64,
    /// 64-bit ARM (Graviton instance types such as t4g and m7g).
    #[serde(rename = "arm64")]
    Arm64,
}

impl Arch {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "arm64",
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Operating system family of a Workspace image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OsFamily {
    /// Ubuntu LTS (versions 22.04 and 24.04).
    #[default]
    Ubuntu,
    /// Debian (version 12).
    Debian,
    /// Your own AMI, given in `amiId`; needs the Tenant quota `allowCustomImage`.
    Custom,
}

impl OsFamily {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ubuntu => "ubuntu",
            Self::Debian => "debian",
            Self::Custom => "custom",
        }
    }

    /// The version used when `os.version` is not set.
    pub fn default_version(self) -> Option<&'static str> {
        match self {
            Self::Ubuntu => Some("24.04"),
            Self::Debian => Some("12"),
            Self::Custom => None,
        }
    }

    /// The versions this family offers; `None` means any (custom images).
    pub fn versions(self) -> Option<&'static [&'static str]> {
        match self {
            Self::Ubuntu => Some(&["22.04", "24.04"]),
            Self::Debian => Some(&["12"]),
            Self::Custom => None,
        }
    }
}

/// How the instance is bought.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Market {
    /// On-demand capacity at list price.
    #[default]
    OnDemand,
    /// Spot capacity. On interruption the operator relaunches the instance and reattaches the
    /// data volume; the root volume is lost.
    Spot,
}

/// Desired power state of a machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PowerState {
    /// The machine runs.
    #[default]
    Running,
    /// The machine is stopped (StopInstances); volumes, addresses and records are kept.
    Stopped,
}

/// Desktop mode of a Workspace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DisplayMode {
    /// No desktop.
    #[default]
    None,
    /// A virtual desktop the agent and a user can control. Defaults the instance type to
    /// t3.xlarge and the root volume to 80 GB.
    DesktopControl,
    /// A GPU-accelerated desktop. Defaults the GPU to T4 x1, the instance type to g4dn.xlarge and
    /// the root volume to 100 GB.
    GpuDesktopControl,
}

impl DisplayMode {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::DesktopControl => "desktop-control",
            Self::GpuDesktopControl => "gpu-desktop-control",
        }
    }

    /// Whether this mode runs a desktop at all.
    pub fn is_enabled(self) -> bool {
        self != Self::None
    }
}

/// Remote desktop protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DisplayProtocol {
    /// noVNC in the browser (Xvfb, XFCE, x11vnc, noVNC), bound to localhost on the instance.
    #[default]
    Novnc,
    /// Amazon DCV, bound to localhost on the instance.
    Dcv,
}

/// GPUs requested for a Workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuSpec {
    /// GPU model: T4, L4, A10G, A100 or H100. Without `compute.instanceType` the operator picks the
    /// cheapest catalog instance type with this model and at least `count` GPUs.
    #[serde(rename = "type")]
    pub gpu_type: GpuType,
    /// Number of GPUs, 1 to 8 (default 1).
    #[serde(default = "default_gpu_count")]
    #[schemars(range(min = 1, max = 8))]
    pub count: u8,
}

fn default_gpu_count() -> u8 {
    1
}

/// Status of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The operator cannot tell yet.
    Unknown,
}

/// One observation about the object, following the Kubernetes API conventions, so that
/// `kubectl wait --for=condition=Ready`, kstatus and Argo CD can read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, such as Ready, Admitted or InstanceReady.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// One CamelCase word saying why the condition has its status, such as QuotaExceeded.
    pub reason: String,
    /// Human-readable details; names the field or resource concerned.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The metadata.generation this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl ConditionStatus {
    /// `True` when `b`, else `False`.
    pub fn from_bool(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}
