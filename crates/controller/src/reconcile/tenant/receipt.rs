//! The erasure receipt: a ConfigMap in the operator's namespace, written when the erasure starts
//! and after every step, listing each resource of the tenant with when its deletion was asked for
//! and when the cloud (or Kubernetes) confirmed it gone. It outlives the Tenant.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::context::Context;
use crate::reconcile::MANAGER;
use crate::reconcile::{Error, kube_err};

pub use molecule_crds::receipt::{Entry, KEY, LABEL, Place, Receipt};

/// The receipt's ConfigMap name: `erasure-<slug>-<first 8 of uid>` (a slug reused later gets
/// its own receipt).
pub fn name(slug: &str, uid: &str) -> String {
    format!("erasure-{slug}-{}", uid.chars().take(8).collect::<String>())
}

/// Reads a receipt written by an earlier reconcile (crash-safe progress).
pub async fn load(ctx: &Context, name: &str) -> Result<Option<Receipt>, Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.tenant.operator_namespace);
    let cm = api.get_opt(name).await.map_err(kube_err("read the erasure receipt"))?;
    Ok(cm.and_then(|c| c.data).and_then(|d| d.get(KEY).and_then(|j| serde_json::from_str(j).ok())))
}

/// Writes the receipt (server-side apply; creates it the first time).
pub async fn save(ctx: &Context, name: &str, r: &Receipt) -> Result<(), Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.tenant.operator_namespace);
    let mut data = BTreeMap::from([
        ("tenant".to_owned(), r.tenant.clone()),
        ("tenantUid".to_owned(), r.tenant_uid.clone()),
        ("startedAt".to_owned(), r.started_at.clone()),
        (KEY.to_owned(), serde_json::to_string_pretty(r).unwrap_or_default()),
    ]);
    if let Some(c) = &r.completed_at {
        data.insert("completedAt".into(), c.clone());
    }
    let cm = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": ctx.tenant.operator_namespace,
            "labels": { LABEL: "true", "moleculesai.app/tenant": r.tenant, "app.kubernetes.io/managed-by": ctx.identity.operator_id },
        },
        "data": data,
    });
    api.patch(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&cm))
        .await
        .map_err(kube_err("write the erasure receipt"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels_and_unique_per_uid() {
        assert_eq!(name("acme", "1b2c3d4e-aaaa"), "erasure-acme-1b2c3d4e");
        assert_ne!(name("acme", "1b2c3d4e"), name("acme", "99999999"));
    }
}
