//! Which Tenant changes wake the Tenant's Workspaces: what Workspaces read of their Tenant.

use molecule_crds::v1alpha1::Tenant;

/// A hash of what Workspaces read of their Tenant (spec, deletion, group, bundle, account,
/// Stalled): the Tenant watch wakes Workspaces only when it changes, not on usage or orphan
/// updates.
pub fn workspace_facing_hash(t: &Tenant) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    t.metadata.generation.hash(&mut h);
    t.metadata.deletion_timestamp.is_some().hash(&mut h);
    if let Some(s) = &t.status {
        (&s.security_group_id, &s.secret_arn, &s.account).hash(&mut h);
        // A waiting Workspace turns TenantStalled (and back) when its Tenant does.
        let stalled = molecule_crds::conditions::get(&s.conditions, "Stalled");
        stalled.map(|c| (c.status == molecule_crds::v1alpha1::ConditionStatus::True, &c.reason)).hash(&mut h);
    }
    h.finish()
}
