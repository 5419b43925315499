//! The resolution rules of API.md: from a Workspace's `spec.compute`, the catalog and the image
//! catalog to a concrete machine and its hourly cost, or a rejection naming the field.
//!
//! Pure: no I/O, no clock. The same inputs always give the same answer.

use crate::catalog::{Catalog, InstanceType, Usd};
use crate::images::{ImageCatalog, ImageKey};
use crate::reasons::{Reason, Rejection};
use crate::v1alpha1::{ComputeSpec, DisplayMode, GpuSpec, GpuType, OsFamily, ResolvedCompute, WorkspaceSpec};

/// Instance type without a display profile or GPU.
pub const DEFAULT_INSTANCE_TYPE: &str = "t3.large";
/// Instance type of the desktop-control profile.
pub const DESKTOP_INSTANCE_TYPE: &str = "t3.xlarge";
/// Root GB without a display profile.
pub const DEFAULT_ROOT_GB: u32 = 50;
/// Root GB of the desktop-control profile.
pub const DESKTOP_ROOT_GB: u32 = 80;
/// Root GB of the gpu-desktop-control profile.
pub const GPU_DESKTOP_ROOT_GB: u32 = 100;
/// Smallest root volume of the hermes runtime.
pub const HERMES_MIN_ROOT_GB: u32 = 50;
/// gp3 baseline IOPS (included in the GB price).
pub const GP3_BASE_IOPS: u32 = 3000;
/// gp3 baseline throughput in MiB/s (included in the GB price).
pub const GP3_BASE_THROUGHPUT: u32 = 125;

/// gp3 list prices per month in nano-USD, and hours per month, for the cost estimate.
const GP3_GB_MONTH: u64 = 80_000_000;
const GP3_IOPS_MONTH: u64 = 5_000_000;
const GP3_MIBPS_MONTH: u64 = 40_000_000;
const HOURS_PER_MONTH: u64 = 730;

/// The outcome of resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The machine, as written to `status.resolved`.
    pub compute: ResolvedCompute,
    /// Instance list price plus gp3 storage, per hour.
    pub hourly: Usd,
}

/// Resolves `spec` against the catalogs. See API.md, "Resolution rules".
pub fn resolve(spec: &WorkspaceSpec, catalog: &Catalog, images: &ImageCatalog) -> Result<Resolved, Rejection> {
    let c = &spec.compute;
    let mode = c.display.as_ref().map_or(DisplayMode::None, |d| d.mode);
    let gpu_request = requested_gpu(c, mode);
    let itype = instance_type(c, mode, gpu_request.as_ref(), catalog)?;

    if let Some(want) = &gpu_request {
        // gpu-desktop-control's implicit T4 x1 only picks a type; an explicit GPU type satisfies it.
        let implicit_with_type = c.gpu.is_none() && c.instance_type.is_some();
        let ok =
            itype.gpus.is_some_and(|g| implicit_with_type || (g.gpu_type == want.gpu_type && g.count >= want.count));
        if !ok {
            let has = itype.gpus.map_or("no GPU".to_owned(), |g| format!("{} x{}", g.gpu_type, g.count));
            let field = if c.gpu.is_some() { "spec.compute.gpu" } else { "spec.compute.display.mode" };
            return Err(Rejection::new(
                Reason::GpuMismatch,
                field,
                format!("{} x{} requested but instance type {} has {has}", want.gpu_type, want.count, itype.name),
            ));
        }
    }

    let os = c.os.clone().unwrap_or_default();
    if let Some(arch) = os.arch
        && arch != itype.arch
    {
        return Err(Rejection::new(
            Reason::ArchMismatch,
            "spec.compute.os.arch",
            format!("{arch} requested but instance type {} is {}", itype.name, itype.arch),
        ));
    }

    let version = match (&os.version, os.family.default_version()) {
        (Some(v), _) => v.clone(),
        (None, Some(d)) => d.to_owned(),
        (None, None) => String::new(),
    };
    let ami_id = match (os.family, &os.ami_id) {
        (OsFamily::Custom, Some(ami)) => ami.clone(),
        (OsFamily::Custom, None) => {
            return Err(Rejection::new(Reason::NoImage, "spec.compute.os.amiId", "os.family custom requires os.amiId"));
        }
        (family, _) => {
            let key = ImageKey { family, version: version.clone(), arch: itype.arch, gpu: itype.gpus.is_some() };
            images.lookup(&key).map(str::to_owned).ok_or_else(|| {
                Rejection::new(
                    Reason::NoImage,
                    "spec.compute.os",
                    format!(
                        "the image catalog has no AMI for {} {} {}{}",
                        family.as_str(),
                        key.version,
                        key.arch,
                        if key.gpu { " with GPU drivers" } else { "" }
                    ),
                )
            })?
        }
    };

    let vol = c.volume.clone().unwrap_or_default();
    let profile_root = match mode {
        DisplayMode::None => DEFAULT_ROOT_GB,
        DisplayMode::DesktopControl => DESKTOP_ROOT_GB,
        DisplayMode::GpuDesktopControl => GPU_DESKTOP_ROOT_GB,
    };
    let mut root_gb = vol.root_gb.unwrap_or(profile_root);
    if spec.runtime == "hermes" {
        root_gb = root_gb.max(HERMES_MIN_ROOT_GB);
    }
    let iops = vol.iops.unwrap_or(GP3_BASE_IOPS);
    let throughput = vol.throughput_mi_bps.unwrap_or(GP3_BASE_THROUGHPUT);

    let compute = ResolvedCompute {
        instance_type: itype.name.clone(),
        vcpus: itype.vcpus,
        memory_mib: itype.memory_mib,
        arch: itype.arch,
        os_family: os.family,
        os_version: version,
        ami_id,
        root_gb,
        iops,
        throughput_mi_bps: throughput,
        data_gb: vol.data_gb,
        gpu: itype.gpus.map(|g| GpuSpec { gpu_type: g.gpu_type, count: g.count }),
        market: c.market,
        display_mode: mode,
    };
    let hourly = itype.hourly + storage_hourly(&compute);
    Ok(Resolved { compute, hourly })
}

/// The GPUs asked for: the `gpu` block, or T4 x1 for gpu-desktop-control without one.
fn requested_gpu(c: &ComputeSpec, mode: DisplayMode) -> Option<GpuSpec> {
    match (&c.gpu, mode) {
        (Some(g), _) => Some(g.clone()),
        (None, DisplayMode::GpuDesktopControl) => Some(GpuSpec { gpu_type: GpuType::T4, count: 1 }),
        (None, _) => None,
    }
}

/// Explicit type, else the cheapest type with the requested GPU, else the profile default.
fn instance_type<'c>(
    c: &ComputeSpec,
    mode: DisplayMode,
    gpu: Option<&GpuSpec>,
    catalog: &'c Catalog,
) -> Result<&'c InstanceType, Rejection> {
    if let Some(name) = &c.instance_type {
        return catalog.get(name).ok_or_else(|| {
            Rejection::new(
                Reason::UnknownInstanceType,
                "spec.compute.instanceType",
                format!("{name} is not in the operator's instance type catalog"),
            )
        });
    }
    if let Some(g) = gpu {
        let field = if c.gpu.is_some() { "spec.compute.gpu" } else { "spec.compute.display.mode" };
        return catalog.cheapest_with_gpu(g.gpu_type, g.count).ok_or_else(|| {
            Rejection::new(
                Reason::GpuMismatch,
                field,
                format!("no instance type in the catalog carries {} x{}", g.gpu_type, g.count),
            )
        });
    }
    let name = match mode {
        DisplayMode::DesktopControl => DESKTOP_INSTANCE_TYPE,
        DisplayMode::None | DisplayMode::GpuDesktopControl => DEFAULT_INSTANCE_TYPE,
    };
    catalog.get(name).ok_or_else(|| {
        Rejection::new(
            Reason::UnknownInstanceType,
            "spec.compute.instanceType",
            format!("the default {name} is not in the operator's instance type catalog; set an instance type"),
        )
    })
}

/// gp3 storage (root and data volume, plus IOPS and throughput above the baseline) per hour.
fn storage_hourly(c: &ResolvedCompute) -> Usd {
    let gb = u64::from(c.root_gb) + u64::from(c.data_gb.unwrap_or(0));
    let iops = u64::from(c.iops.saturating_sub(GP3_BASE_IOPS));
    let tput = u64::from(c.throughput_mi_bps.saturating_sub(GP3_BASE_THROUGHPUT));
    let month = gb * GP3_GB_MONTH + iops * GP3_IOPS_MONTH + tput * GP3_MIBPS_MONTH;
    Usd::from_nanos(month / HOURS_PER_MONTH)
}

#[cfg(test)]
mod tests;
