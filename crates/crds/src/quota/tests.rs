//! Data-volume quotas: the per-Workspace and total limits, their tier defaults and overrides.

use super::*;
use crate::catalog::Catalog;
use crate::images::ImageCatalog;
use crate::reasons::Reason;
use crate::resolve::resolve;
use crate::v1alpha1::{ComputeSpec, VolumeSpec, WorkspaceSpec};

/// A plain Workspace with a data volume of `data_gb` GB (none when `None`), resolved.
fn ws(data_gb: Option<u32>) -> Resolved {
    let spec = WorkspaceSpec {
        tenant: "acme".into(),
        runtime: "codex".into(),
        tier: 2,
        state: crate::v1alpha1::PowerState::Running,
        update_policy: crate::v1alpha1::UpdatePolicy::Manual,
        deletion_policy: crate::v1alpha1::DeletionPolicy::Delete,
        env: std::collections::BTreeMap::new(),
        compute: ComputeSpec {
            volume: Some(VolumeSpec { data_gb, ..VolumeSpec::default() }),
            ..ComputeSpec::default()
        },
    };
    let images = ImageCatalog::from_yaml("images: []\n", Some("ami-0def")).expect("image catalog");
    resolve(&spec, &Catalog::builtin(), &images).expect("resolves")
}

/// Usage of Workspaces already admitted holding `data` GB of data volumes in all.
fn admitted(data: u32) -> TenantUsage {
    TenantUsage { workspaces: 1, vcpus: 2, root_gb_total: 50, data_gb_total: data, ..TenantUsage::default() }
}

#[test]
fn tier_defaults_follow_the_api_table() {
    let table =
        [(1, Some(100), Some(200)), (2, Some(500), Some(5000)), (3, Some(2000), Some(50_000)), (4, Some(16384), None)];
    for (tier, per, total) in table {
        let q = EffectiveQuotas::for_tier(tier);
        assert_eq!((q.max_data_gb_per_workspace, q.max_data_gb_total), (per, total), "tier {tier}");
    }
}

#[test]
fn a_data_volume_over_the_per_workspace_limit_is_refused() {
    let q = EffectiveQuotas::for_tier(1);
    assert!(check(&q, TenantUsage::default(), &ws(Some(100))).is_ok(), "100 GB is tier 1's maximum");
    let e = check(&q, TenantUsage::default(), &ws(Some(101))).expect_err("101 GB on tier 1");
    assert_eq!((e.reason, e.field), (Reason::QuotaExceeded, "spec.compute.volume.dataGb"));
    assert_eq!(
        e.message,
        "spec.compute.volume.dataGb: quota maxDataGbPerWorkspace is 100; this Workspace requests 101 GB"
    );
    // Tier 4 allows the schema's maximum.
    assert!(check(&EffectiveQuotas::for_tier(4), TenantUsage::default(), &ws(Some(16384))).is_ok());
}

#[test]
fn data_volumes_over_the_total_are_refused() {
    let q = EffectiveQuotas::for_tier(1);
    assert!(check(&q, admitted(100), &ws(Some(100))).is_ok(), "exactly the total of 200");
    let e = check(&q, admitted(150), &ws(Some(60))).expect_err("210 GB in all on tier 1");
    assert_eq!((e.reason, e.field), (Reason::QuotaExceeded, "spec.compute.volume.dataGb"));
    assert_eq!(
        e.message,
        "spec.compute.volume.dataGb: quota maxDataGbTotal is 200; 150 already admitted, this Workspace requests 60"
    );
    // Tier 4: no total.
    assert!(check(&EffectiveQuotas::for_tier(4), admitted(u32::MAX - 10), &ws(Some(16384))).is_ok());
}

#[test]
fn overrides_replace_the_data_defaults() {
    let o =
        TenantQuotas { max_data_gb_per_workspace: Some(10), max_data_gb_total: Some(15), ..TenantQuotas::default() };
    let q = EffectiveQuotas::new(4, Some(&o));
    assert_eq!((q.max_data_gb_per_workspace, q.max_data_gb_total), (Some(10), Some(15)));
    assert_eq!(q.max_root_gb_per_workspace, Some(2048), "unset fields keep the tier default");
    let e = check(&q, TenantUsage::default(), &ws(Some(11))).expect_err("over the override");
    assert!(e.message.contains("maxDataGbPerWorkspace is 10"), "{}", e.message);
    let e = check(&q, admitted(10), &ws(Some(6))).expect_err("over the total override");
    assert!(e.message.contains("maxDataGbTotal is 15"), "{}", e.message);
    // Raising a tier-1 default above it is honoured too.
    let up = TenantQuotas { max_data_gb_per_workspace: Some(1000), ..TenantQuotas::default() };
    let q = EffectiveQuotas::new(1, Some(&up));
    let e = check(&q, TenantUsage::default(), &ws(Some(500))).expect_err("the tier-1 total of 200 still holds");
    assert!(e.message.contains("maxDataGbTotal is 200"), "{}", e.message);
}

#[test]
fn a_workspace_without_a_data_volume_counts_zero() {
    let plain = ws(None);
    assert_eq!(usage_of(&plain).data_gb_total, 0);
    assert_eq!(usage_of(&ws(Some(42))).data_gb_total, 42);
    assert_eq!(add(usage_of(&ws(Some(42))), usage_of(&ws(Some(8)))).data_gb_total, 50);
    // Even with no data GB left (a total of 0, or usage already past a lowered total), a
    // Workspace without a data volume is admitted.
    let none = TenantQuotas { max_data_gb_total: Some(0), ..TenantQuotas::default() };
    assert!(check(&EffectiveQuotas::new(2, Some(&none)), TenantUsage::default(), &plain).is_ok());
    assert!(check(&EffectiveQuotas::for_tier(1), admitted(500), &plain).is_ok());
    assert!(check(&EffectiveQuotas::new(2, Some(&none)), TenantUsage::default(), &ws(Some(1))).is_err());
}

#[test]
fn a_usage_without_the_data_total_still_reads() {
    // Statuses written before the data quotas existed have no dataGbTotal.
    let old: TenantUsage =
        serde_json::from_str(r#"{"workspaces":1,"vcpus":2,"gpus":0,"rootGbTotal":50}"#).expect("old status");
    assert_eq!(old.data_gb_total, 0);
}
