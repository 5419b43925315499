//! Tenant quotas: tier defaults, `spec.quotas` overrides, and the admission check.

use std::collections::BTreeSet;
use std::fmt;

use crate::reasons::{Reason, Rejection};
use crate::resolve::Resolved;
use crate::v1alpha1::{GpuType, OsFamily, ResolvedCompute, TenantQuotas, TenantUsage};

/// The Workspace field a data-volume quota refusal names.
const DATA_GB_FIELD: &str = "spec.compute.volume.dataGb";

/// A numeric limit; `None` means unlimited.
pub type Limit = Option<u32>;

/// The quotas in force for a Tenant: its tier's defaults with `spec.quotas` laid over them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveQuotas {
    /// Most admitted Workspaces.
    pub max_workspaces: Limit,
    /// Most vCPUs over admitted Workspaces.
    pub max_vcpus: Limit,
    /// Most GPUs over admitted Workspaces.
    pub max_gpus: Limit,
    /// Most root GB over admitted Workspaces.
    pub max_root_gb_total: Limit,
    /// Largest root volume of one Workspace.
    pub max_root_gb_per_workspace: Limit,
    /// Most data volume GB over admitted Workspaces.
    pub max_data_gb_total: Limit,
    /// Largest data volume of one Workspace.
    pub max_data_gb_per_workspace: Limit,
    /// Whether a desktop is allowed.
    pub allow_display: bool,
    /// GPU models allowed; `None` means all.
    pub allowed_gpu_types: Option<BTreeSet<GpuType>>,
    /// Whether custom AMIs are allowed.
    pub allow_custom_image: bool,
}

impl EffectiveQuotas {
    /// The defaults of `tier` (1..4; anything else is treated as the most restrictive tier 1,
    /// although the schema never lets it through).
    pub fn for_tier(tier: u8) -> Self {
        let gpus = |list: &[GpuType]| Some(list.iter().copied().collect::<BTreeSet<_>>());
        match tier {
            4 => Self {
                max_workspaces: None,
                max_vcpus: None,
                max_gpus: None,
                max_root_gb_total: None,
                max_root_gb_per_workspace: Some(2048),
                max_data_gb_total: None,
                max_data_gb_per_workspace: Some(16384),
                allow_display: true,
                allowed_gpu_types: None,
                allow_custom_image: true,
            },
            3 => Self {
                max_workspaces: Some(50),
                max_vcpus: Some(200),
                max_gpus: Some(8),
                max_root_gb_total: None,
                max_root_gb_per_workspace: Some(1000),
                max_data_gb_total: Some(50_000),
                max_data_gb_per_workspace: Some(2000),
                allow_display: true,
                allowed_gpu_types: gpus(&[GpuType::T4, GpuType::L4, GpuType::A10G]),
                allow_custom_image: false,
            },
            2 => Self {
                max_workspaces: Some(10),
                max_vcpus: Some(40),
                max_gpus: Some(0),
                max_root_gb_total: None,
                max_root_gb_per_workspace: Some(200),
                max_data_gb_total: Some(5000),
                max_data_gb_per_workspace: Some(500),
                allow_display: true,
                allowed_gpu_types: gpus(&[]),
                allow_custom_image: false,
            },
            _ => Self {
                max_workspaces: Some(2),
                max_vcpus: Some(8),
                max_gpus: Some(0),
                max_root_gb_total: None,
                max_root_gb_per_workspace: Some(64),
                max_data_gb_total: Some(200),
                max_data_gb_per_workspace: Some(100),
                allow_display: false,
                allowed_gpu_types: gpus(&[]),
                allow_custom_image: false,
            },
        }
    }

    /// The tier defaults with every field of `overrides` that is set laid over them.
    pub fn new(tier: u8, overrides: Option<&TenantQuotas>) -> Self {
        let mut q = Self::for_tier(tier);
        let Some(o) = overrides else { return q };
        let set = |limit: &mut Limit, v: Option<u32>| {
            if v.is_some() {
                *limit = v;
            }
        };
        set(&mut q.max_workspaces, o.max_workspaces);
        set(&mut q.max_vcpus, o.max_vcpus);
        set(&mut q.max_gpus, o.max_gpus);
        set(&mut q.max_root_gb_total, o.max_root_gb_total);
        set(&mut q.max_root_gb_per_workspace, o.max_root_gb_per_workspace);
        set(&mut q.max_data_gb_total, o.max_data_gb_total);
        set(&mut q.max_data_gb_per_workspace, o.max_data_gb_per_workspace);
        if let Some(v) = o.allow_display {
            q.allow_display = v;
        }
        if let Some(list) = &o.allowed_gpu_types {
            q.allowed_gpu_types = Some(list.iter().copied().collect());
        }
        if let Some(v) = o.allow_custom_image {
            q.allow_custom_image = v;
        }
        q
    }
}

/// What one admitted Workspace adds to its Tenant's usage.
pub fn usage_of(r: &Resolved) -> TenantUsage {
    usage_of_compute(&r.compute)
}

/// The same, from a resolved machine (as `status.resolved` reports it).
pub fn usage_of_compute(c: &ResolvedCompute) -> TenantUsage {
    TenantUsage {
        workspaces: 1,
        vcpus: c.vcpus,
        gpus: c.gpu.as_ref().map_or(0, |g| u32::from(g.count)),
        root_gb_total: c.root_gb,
        data_gb_total: c.data_gb.unwrap_or(0),
    }
}

/// Adds two usages, saturating.
pub fn add(a: TenantUsage, b: TenantUsage) -> TenantUsage {
    TenantUsage {
        workspaces: a.workspaces.saturating_add(b.workspaces),
        vcpus: a.vcpus.saturating_add(b.vcpus),
        gpus: a.gpus.saturating_add(b.gpus),
        root_gb_total: a.root_gb_total.saturating_add(b.root_gb_total),
        data_gb_total: a.data_gb_total.saturating_add(b.data_gb_total),
    }
}

struct Over<'a> {
    quota: &'a str,
    limit: u32,
    used: u32,
    request: u32,
}

impl fmt::Display for Over<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "quota {} is {}; {} already admitted, this Workspace requests {}",
            self.quota, self.limit, self.used, self.request
        )
    }
}

/// Checks one Workspace against the quotas, given the usage of the Workspaces already admitted
/// (not counting this one). `Ok` means admitting it keeps every limit.
pub fn check(q: &EffectiveQuotas, admitted: TenantUsage, r: &Resolved) -> Result<(), Rejection> {
    let c = &r.compute;
    let reject = |field, detail: String| Err(Rejection::new(Reason::QuotaExceeded, field, detail));

    if c.display_mode.is_enabled() && !q.allow_display {
        return reject(
            "spec.compute.display.mode",
            format!(
                "quota allowDisplay is false for this tenant; this Workspace requests display mode {}",
                c.display_mode.as_str()
            ),
        );
    }
    if c.os_family == OsFamily::Custom && !q.allow_custom_image {
        return reject(
            "spec.compute.os.family",
            "quota allowCustomImage is false for this tenant; this Workspace requests a custom AMI".to_owned(),
        );
    }
    if let (Some(g), Some(allowed)) = (&c.gpu, &q.allowed_gpu_types)
        && !allowed.contains(&g.gpu_type)
    {
        let list: Vec<&str> = allowed.iter().map(|t| t.as_str()).collect();
        let list = if list.is_empty() { "none".to_owned() } else { list.join(", ") };
        return reject(
            "spec.compute.gpu.type",
            format!(
                "quota allowedGpuTypes is [{list}]; this Workspace requests {} (instance type {})",
                g.gpu_type, c.instance_type
            ),
        );
    }
    if let Some(limit) = q.max_root_gb_per_workspace
        && c.root_gb > limit
    {
        return reject(
            "spec.compute.volume.rootGb",
            format!("quota maxRootGbPerWorkspace is {limit}; this Workspace requests {} GB", c.root_gb),
        );
    }
    if let (Some(limit), Some(data_gb)) = (q.max_data_gb_per_workspace, c.data_gb)
        && data_gb > limit
    {
        return reject(
            DATA_GB_FIELD,
            format!("quota maxDataGbPerWorkspace is {limit}; this Workspace requests {data_gb} GB"),
        );
    }
    let want = usage_of(r);
    let checks = [
        ("maxWorkspaces", "spec.tenant", q.max_workspaces, admitted.workspaces, want.workspaces),
        ("maxVcpus", "spec.compute.instanceType", q.max_vcpus, admitted.vcpus, want.vcpus),
        ("maxGpus", "spec.compute.gpu", q.max_gpus, admitted.gpus, want.gpus),
        (
            "maxRootGbTotal",
            "spec.compute.volume.rootGb",
            q.max_root_gb_total,
            admitted.root_gb_total,
            want.root_gb_total,
        ),
        ("maxDataGbTotal", DATA_GB_FIELD, q.max_data_gb_total, admitted.data_gb_total, want.data_gb_total),
    ];
    for (quota, field, limit, used, request) in checks {
        if request == 0 {
            continue;
        }
        if let Some(limit) = limit
            && used.saturating_add(request) > limit
        {
            return reject(field, Over { quota, limit, used, request }.to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
