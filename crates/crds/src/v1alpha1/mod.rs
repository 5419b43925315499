//! `moleculesai.app/v1alpha1`: the Tenant and Workspace kinds.
//!
//! Doc comments on these types become `kubectl explain` text: they are written for the users who
//! apply the objects, not for the operator's developers.

mod common;
mod tenant;
mod workspace;

pub use common::{
    Arch, Condition, ConditionStatus, DisplayMode, DisplayProtocol, GpuSpec, GpuType, Market, OsFamily, PowerState,
};
pub use tenant::{
    ErasureStatus, IamIdentity, OrphanFinding, OrphanKind, RedeployState, RedeployStatus, Tenant, TenantIdentity,
    TenantPhase, TenantQuotas, TenantSpec, TenantStatus, TenantUsage,
};
pub use workspace::{
    ComputeSpec, DataVolumeRecord, DeletionPolicy, DisplaySpec, DisplayStatus, DisplayStatusSpec, ENV_MAX_BYTES,
    LaunchRecord, NetworkSpec, OsSpec, ResolvedCompute, UpdatePolicy, VolumeSpec, Workspace, WorkspacePhase,
    WorkspaceSpec, WorkspaceStatus,
};

/// The API group of both kinds.
pub const GROUP: &str = "moleculesai.app";
/// The API version of this module.
pub const VERSION: &str = "v1alpha1";
