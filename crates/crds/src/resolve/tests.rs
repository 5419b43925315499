//! Unit tests for every rule and rejection reason, and property tests for the invariants.

use proptest::prelude::*;

use super::*;
use crate::quota::{self, EffectiveQuotas};
use crate::v1alpha1::{Arch, DisplaySpec, Market, OsSpec, TenantQuotas, TenantUsage, VolumeSpec};

fn images() -> ImageCatalog {
    ImageCatalog::from_yaml(
        "images:\n\
         - {family: ubuntu, version: '24.04', arch: arm64, amiId: ami-0a64}\n\
         - {family: ubuntu, version: '24.04', arch: x86_64, gpu: true, amiId: ami-0c9d}\n\
         - {family: ubuntu, version: '22.04', arch: x86_64, amiId: ami-02204}\n\
         - {family: debian, version: '12', arch: x86_64, amiId: ami-0deb}\n",
        Some("ami-0def"),
    )
    .expect("test image catalog")
}

fn spec(runtime: &str, compute: ComputeSpec) -> WorkspaceSpec {
    WorkspaceSpec {
        tenant: "acme".into(),
        runtime: runtime.into(),
        tier: 2,
        state: crate::v1alpha1::PowerState::Running,
        update_policy: crate::v1alpha1::UpdatePolicy::Manual,
        deletion_policy: crate::v1alpha1::DeletionPolicy::Delete,
        env: std::collections::BTreeMap::new(),
        compute,
    }
}

fn run(compute: ComputeSpec) -> Result<Resolved, Rejection> {
    resolve(&spec("claude-code", compute), &Catalog::builtin(), &images())
}

#[allow(clippy::unnecessary_wraps)] // shaped like the spec field it fills
fn display(mode: DisplayMode) -> Option<DisplaySpec> {
    Some(DisplaySpec { mode, ..DisplaySpec::default() })
}

#[allow(clippy::unnecessary_wraps)] // shaped like the spec field it fills
fn gpu(t: GpuType, count: u8) -> Option<GpuSpec> {
    Some(GpuSpec { gpu_type: t, count })
}

fn reason(r: Result<Resolved, Rejection>) -> Option<Reason> {
    r.err().map(|e| e.reason)
}

#[test]
fn defaults_are_t3_large_ubuntu_50gb() {
    let r = run(ComputeSpec::default()).expect("resolves");
    let c = &r.compute;
    assert_eq!(
        (c.instance_type.as_str(), c.arch, c.root_gb, c.iops, c.throughput_mi_bps),
        ("t3.large", Arch::X86_64, 50, 3000, 125)
    );
    assert_eq!((c.os_family, c.os_version.as_str(), c.ami_id.as_str()), (OsFamily::Ubuntu, "24.04", "ami-0def"));
    assert_eq!(c.market, Market::OnDemand);
    assert_eq!(c.gpu, None);
    // 0.0832 + 50 GB * 0.08 / 730 = 0.08868
    assert_eq!(r.hourly.to_string(), "0.0887");
}

#[test]
fn display_profiles() {
    let r = run(ComputeSpec { display: display(DisplayMode::DesktopControl), ..Default::default() }).expect("ok");
    assert_eq!((r.compute.instance_type.as_str(), r.compute.root_gb), ("t3.xlarge", 80));
    let r = run(ComputeSpec { display: display(DisplayMode::GpuDesktopControl), ..Default::default() }).expect("ok");
    assert_eq!((r.compute.instance_type.as_str(), r.compute.root_gb), ("g4dn.xlarge", 100));
    assert_eq!(r.compute.gpu, gpu(GpuType::T4, 1));
    assert_eq!(r.compute.ami_id, "ami-0c9d", "GPU types boot the GPU image");
    // Explicit values win over the profile.
    let r = run(ComputeSpec {
        instance_type: Some("m6i.2xlarge".into()),
        volume: Some(VolumeSpec { root_gb: Some(64), ..Default::default() }),
        display: display(DisplayMode::DesktopControl),
        ..Default::default()
    })
    .expect("ok");
    assert_eq!((r.compute.instance_type.as_str(), r.compute.root_gb), ("m6i.2xlarge", 64));
    // gpu-desktop-control on an explicit GPU type of another model is fine.
    let r = run(ComputeSpec {
        instance_type: Some("g5.xlarge".into()),
        display: display(DisplayMode::GpuDesktopControl),
        ..Default::default()
    });
    assert_eq!(r.map(|r| r.compute.instance_type).ok().as_deref(), Some("g5.xlarge"));
}

#[test]
fn gpu_selection_picks_cheapest_sufficient_type() {
    let pick = |t, n| run(ComputeSpec { gpu: gpu(t, n), ..Default::default() }).map(|r| r.compute.instance_type);
    assert_eq!(pick(GpuType::T4, 1).as_deref(), Ok("g4dn.xlarge"));
    assert_eq!(pick(GpuType::L4, 3).as_deref(), Ok("g6.12xlarge"));
    assert_eq!(pick(GpuType::A100, 8).as_deref(), Ok("p4d.24xlarge"));
    let none = run(ComputeSpec { gpu: gpu(GpuType::L4, 8), ..Default::default() }).expect_err("no 8x L4 type");
    assert_eq!((none.reason, none.field), (Reason::GpuMismatch, "spec.compute.gpu"));
}

#[test]
fn gpu_mismatch_with_explicit_type() {
    for (itype, g) in
        [("t3.large", gpu(GpuType::T4, 1)), ("g4dn.xlarge", gpu(GpuType::T4, 2)), ("g4dn.xlarge", gpu(GpuType::L4, 1))]
    {
        let e = run(ComputeSpec { instance_type: Some(itype.into()), gpu: g, ..Default::default() }).expect_err(itype);
        assert_eq!(e.reason, Reason::GpuMismatch);
        assert!(e.message.starts_with("spec.compute.gpu: "), "{}", e.message);
    }
    let e = run(ComputeSpec {
        instance_type: Some("t3.large".into()),
        display: display(DisplayMode::GpuDesktopControl),
        ..Default::default()
    })
    .expect_err("gpu desktop on a CPU type");
    assert_eq!((e.reason, e.field), (Reason::GpuMismatch, "spec.compute.display.mode"));
}

#[test]
fn unknown_instance_type() {
    let e = run(ComputeSpec { instance_type: Some("t3.mega".into()), ..Default::default() }).expect_err("unknown");
    assert_eq!((e.reason, e.field), (Reason::UnknownInstanceType, "spec.compute.instanceType"));
    assert!(e.message.contains("t3.mega"));
}

#[test]
fn arch_defaults_and_mismatch() {
    let os = |arch| Some(OsSpec { arch: Some(arch), ..Default::default() });
    let r = run(ComputeSpec { instance_type: Some("m7g.large".into()), ..Default::default() }).expect("arm");
    assert_eq!((r.compute.arch, r.compute.ami_id.as_str()), (Arch::Arm64, "ami-0a64"));
    let e = run(ComputeSpec { instance_type: Some("t3.medium".into()), os: os(Arch::Arm64), ..Default::default() })
        .expect_err("mismatch");
    assert_eq!((e.reason, e.field), (Reason::ArchMismatch, "spec.compute.os.arch"));
    assert!(e.message.contains("t3.medium is x86_64"), "{}", e.message);
    // arm64 without a type: the default t3.large cannot run it.
    assert_eq!(reason(run(ComputeSpec { os: os(Arch::Arm64), ..Default::default() })), Some(Reason::ArchMismatch));
}

#[test]
fn images_and_no_image() {
    let os =
        |family, version: Option<&str>| Some(OsSpec { family, version: version.map(Into::into), ..Default::default() });
    let r = run(ComputeSpec { os: os(OsFamily::Debian, None), ..Default::default() }).expect("debian");
    assert_eq!((r.compute.os_version.as_str(), r.compute.ami_id.as_str()), ("12", "ami-0deb"));
    let r = run(ComputeSpec { os: os(OsFamily::Ubuntu, Some("22.04")), ..Default::default() }).expect("jammy");
    assert_eq!(r.compute.ami_id, "ami-02204");
    let e = run(ComputeSpec {
        os: os(OsFamily::Debian, None),
        instance_type: Some("t4g.small".into()),
        ..Default::default()
    })
    .expect_err("no arm debian");
    assert_eq!((e.reason, e.field), (Reason::NoImage, "spec.compute.os"));
    let custom =
        Some(OsSpec { family: OsFamily::Custom, ami_id: Some("ami-0123456789abcdef0".into()), ..Default::default() });
    let r = run(ComputeSpec { os: custom, ..Default::default() }).expect("custom");
    assert_eq!((r.compute.ami_id.as_str(), r.compute.os_version.as_str()), ("ami-0123456789abcdef0", ""));
    let no_catalog = resolve(&spec("x", ComputeSpec::default()), &Catalog::builtin(), &ImageCatalog::default());
    assert_eq!(reason(no_catalog), Some(Reason::NoImage));
}

#[test]
fn hermes_raises_root_volume() {
    let small =
        ComputeSpec { volume: Some(VolumeSpec { root_gb: Some(32), ..Default::default() }), ..Default::default() };
    let r = resolve(&spec("hermes", small.clone()), &Catalog::builtin(), &images()).expect("ok");
    assert_eq!(r.compute.root_gb, 50);
    assert_eq!(run(small).map(|r| r.compute.root_gb), Ok(32));
}

#[test]
fn storage_is_priced() {
    let r = run(ComputeSpec {
        volume: Some(VolumeSpec {
            root_gb: Some(100),
            iops: Some(4000),
            throughput_mi_bps: Some(250),
            data_gb: Some(100),
        }),
        ..Default::default()
    })
    .expect("ok");
    // 0.0832 + (200 GB * 0.08 + 1000 IOPS * 0.005 + 125 MiB/s * 0.04) / 730 = 0.0832 + 26/730
    assert_eq!(r.hourly.to_string(), "0.1188");
}

fn quotas(tier: u8) -> EffectiveQuotas {
    EffectiveQuotas::for_tier(tier)
}

fn used(workspaces: u32, vcpus: u32, gpus: u32, root: u32) -> TenantUsage {
    TenantUsage { workspaces, vcpus, gpus, root_gb_total: root, data_gb_total: 0 }
}

#[test]
fn tier_one_rejects_gpu_display_and_a_third_workspace() {
    let q = quotas(1);
    let g = run(ComputeSpec { gpu: gpu(GpuType::T4, 1), ..Default::default() }).expect("resolves");
    let e = quota::check(&q, used(0, 0, 0, 0), &g).expect_err("gpu");
    assert_eq!((e.reason, e.field), (Reason::QuotaExceeded, "spec.compute.gpu.type"));
    let d = run(ComputeSpec { display: display(DisplayMode::DesktopControl), ..Default::default() }).expect("resolves");
    let e = quota::check(&q, used(0, 0, 0, 0), &d).expect_err("display");
    assert!(e.message.contains("allowDisplay"), "{}", e.message);
    let plain = run(ComputeSpec::default()).expect("resolves");
    assert!(quota::check(&q, used(1, 2, 0, 50), &plain).is_ok());
    let e = quota::check(&q, used(2, 4, 0, 100), &plain).expect_err("third");
    assert_eq!(e.message, "spec.tenant: quota maxWorkspaces is 2; 2 already admitted, this Workspace requests 1");
}

#[test]
fn overrides_replace_tier_defaults() {
    let o = TenantQuotas {
        max_workspaces: Some(1),
        allowed_gpu_types: Some(vec![GpuType::L4]),
        max_gpus: Some(4),
        ..Default::default()
    };
    let q = EffectiveQuotas::new(3, Some(&o));
    assert_eq!(q.max_workspaces, Some(1));
    assert_eq!(q.max_vcpus, Some(200), "unset fields keep the tier default");
    let t4 = run(ComputeSpec { gpu: gpu(GpuType::T4, 1), ..Default::default() }).expect("resolves");
    assert!(quota::check(&q, used(0, 0, 0, 0), &t4).is_err());
    let l4 = run(ComputeSpec { gpu: gpu(GpuType::L4, 1), ..Default::default() }).expect("resolves");
    assert!(quota::check(&q, used(0, 0, 0, 0), &l4).is_ok());
    // An explicit GPU instance type counts its GPUs even without a gpu block.
    let p5 = run(ComputeSpec { instance_type: Some("p5.48xlarge".into()), ..Default::default() }).expect("resolves");
    let e = quota::check(&EffectiveQuotas::new(2, None), used(0, 0, 0, 0), &p5).expect_err("p5 on tier 2");
    assert_eq!(e.reason, Reason::QuotaExceeded);
}

#[test]
fn custom_image_and_root_per_workspace_quotas() {
    let custom =
        Some(OsSpec { family: OsFamily::Custom, ami_id: Some("ami-0123456789abcdef0".into()), ..Default::default() });
    let r = run(ComputeSpec { os: custom, ..Default::default() }).expect("resolves");
    let e = quota::check(&quotas(3), used(0, 0, 0, 0), &r).expect_err("custom on tier 3");
    assert!(e.message.contains("allowCustomImage"));
    assert!(quota::check(&quotas(4), used(0, 0, 0, 0), &r).is_ok());
    let big = run(ComputeSpec {
        volume: Some(VolumeSpec { root_gb: Some(201), ..Default::default() }),
        ..Default::default()
    })
    .expect("resolves");
    let e = quota::check(&quotas(2), used(0, 0, 0, 0), &big).expect_err("201 GB on tier 2");
    assert_eq!(e.field, "spec.compute.volume.rootGb");
}

#[test]
fn every_resolution_reason_is_reachable() {
    let mut seen = std::collections::BTreeSet::new();
    seen.extend(reason(run(ComputeSpec { instance_type: Some("x.y".into()), ..Default::default() })));
    seen.extend(reason(run(ComputeSpec {
        os: Some(OsSpec { arch: Some(Arch::Arm64), ..Default::default() }),
        ..Default::default()
    })));
    seen.extend(reason(run(ComputeSpec {
        gpu: gpu(GpuType::H100, 8),
        instance_type: Some("p4d.24xlarge".into()),
        ..Default::default()
    })));
    seen.extend(reason(resolve(&spec("x", ComputeSpec::default()), &Catalog::builtin(), &ImageCatalog::default())));
    let expected: std::collections::BTreeSet<_> =
        [Reason::UnknownInstanceType, Reason::ArchMismatch, Reason::GpuMismatch, Reason::NoImage].into();
    assert_eq!(seen, expected);
}

fn arb_compute() -> impl Strategy<Value = ComputeSpec> {
    let names: Vec<String> =
        Catalog::builtin().iter().map(|t| t.name.clone()).chain(["nope.large".to_owned()]).collect();
    (
        proptest::option::of(proptest::sample::select(names)),
        proptest::option::of(prop_oneof![Just(Arch::X86_64), Just(Arch::Arm64)]),
        proptest::option::of((proptest::sample::select(GpuType::ALL.to_vec()), 1u8..=8)),
        proptest::option::of(32u32..=2048),
        prop_oneof![Just(DisplayMode::None), Just(DisplayMode::DesktopControl), Just(DisplayMode::GpuDesktopControl)],
        proptest::option::of(0u32..=64),
    )
        .prop_map(|(itype, arch, g, root, mode, data)| ComputeSpec {
            instance_type: itype,
            os: Some(OsSpec { arch, ..Default::default() }),
            gpu: g.map(|(gpu_type, count)| GpuSpec { gpu_type, count }),
            volume: Some(VolumeSpec { root_gb: root, data_gb: data.filter(|d| *d > 0), ..Default::default() }),
            display: display(mode),
            ..Default::default()
        })
}

fn arb_quotas() -> impl Strategy<Value = (u8, TenantQuotas)> {
    (
        1u8..=4,
        proptest::option::of(0u32..6),
        proptest::option::of(0u32..64),
        proptest::option::of(0u32..10),
        proptest::option::of(0u32..500),
        proptest::option::of(0u32..100),
    )
        .prop_map(|(tier, w, v, g, r, d)| {
            (
                tier,
                TenantQuotas {
                    max_workspaces: w,
                    max_vcpus: v,
                    max_gpus: g,
                    max_root_gb_total: r,
                    max_data_gb_total: d,
                    ..Default::default()
                },
            )
        })
}

proptest! {
    #[test]
    fn resolution_is_deterministic(c in arb_compute()) {
        prop_assert_eq!(run(c.clone()), run(c));
    }

    #[test]
    fn resolved_type_satisfies_arch_and_gpu(c in arb_compute()) {
        if let Ok(r) = run(c.clone()) {
            let t = Catalog::builtin().get(&r.compute.instance_type).cloned().expect("from catalog");
            prop_assert_eq!(t.arch, r.compute.arch);
            if let Some(arch) = c.os.as_ref().and_then(|o| o.arch) {
                prop_assert_eq!(arch, t.arch);
            }
            if let Some(g) = &c.gpu {
                let have = t.gpus.expect("a GPU was requested");
                prop_assert_eq!(have.gpu_type, g.gpu_type);
                prop_assert!(have.count >= g.count);
            }
            if c.display.as_ref().is_some_and(|d| d.mode == DisplayMode::GpuDesktopControl) {
                prop_assert!(t.gpus.is_some());
            }
        }
    }

    /// Admitting Workspaces one by one through `check` never takes usage past any limit.
    #[test]
    fn quota_never_admits_past_a_limit(
        (tier, o) in arb_quotas(),
        requests in proptest::collection::vec(arb_compute(), 1..12),
    ) {
        let q = EffectiveQuotas::new(tier, Some(&o));
        let mut usage = TenantUsage::default();
        for c in requests {
            let Ok(r) = run(c) else { continue };
            if quota::check(&q, usage, &r).is_ok() {
                usage = quota::add(usage, quota::usage_of(&r));
            }
            for (limit, value) in [
                (q.max_workspaces, usage.workspaces),
                (q.max_vcpus, usage.vcpus),
                (q.max_gpus, usage.gpus),
                (q.max_root_gb_total, usage.root_gb_total),
                (q.max_data_gb_total, usage.data_gb_total),
            ] {
                if let Some(l) = limit { prop_assert!(value <= l); }
            }
        }
    }
}
