//! The erasure receipt: a ConfigMap in the operator's namespace, written when the erasure starts
//! and after every step, listing each resource of the tenant with when its deletion was asked for
//! and when the cloud (or Kubernetes) confirmed it gone. It outlives the Tenant. A receipt larger
//! than one ConfigMap holds (about 2,000 entries) continues in further ConfigMaps the index names
//! (`parts`; docs/api.md, "Erasure receipt").

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::context::Context;
use crate::reconcile::MANAGER;
use crate::reconcile::{Error, kube_err};

pub use molecule_crds::receipt::{Entry, KEY, LABEL, PART_BYTES, PART_LABEL, Part, Place, Receipt};

/// The receipt's ConfigMap name: `erasure-<slug>-<first 8 of uid>` (a slug reused later gets
/// its own receipt).
pub fn name(slug: &str, uid: &str) -> String {
    format!("erasure-{slug}-{}", uid.chars().take(8).collect::<String>())
}

/// Reads a receipt written by an earlier reconcile (crash-safe progress), its parts joined. A
/// part the index names but that cannot be read fails the load (the erasure waits rather than
/// restarting a receipt without those entries).
pub async fn load(ctx: &Context, name: &str) -> Result<Option<Receipt>, Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.tenant.operator_namespace);
    let cm = api.get_opt(name).await.map_err(kube_err("read the erasure receipt"))?;
    let Some(index) =
        cm.and_then(|c| c.data).and_then(|d| d.get(KEY).and_then(|j| serde_json::from_str::<Receipt>(j).ok()))
    else {
        return Ok(None);
    };
    let mut parts = Vec::with_capacity(index.parts.len());
    for p in &index.parts {
        let cm = api.get_opt(p).await.map_err(kube_err("read a part of the erasure receipt"))?;
        let part = cm.and_then(|c| c.data).and_then(|d| d.get(KEY).and_then(|j| serde_json::from_str::<Part>(j).ok()));
        let Some(part) = part else {
            let what = format!("part {p} of erasure receipt {name} (missing or unreadable)");
            return Err(Error::waiting_for(what, std::time::Duration::from_secs(15)));
        };
        parts.push(part);
    }
    Ok(Some(molecule_crds::receipt::join(index, parts)))
}

/// Writes the receipt (server-side apply; creates it the first time): the parts that changed
/// since `before` first, then the index, so the index never names a part not yet written.
pub async fn save(ctx: &Context, name: &str, r: &Receipt, before: Option<&Receipt>) -> Result<(), Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.tenant.operator_namespace);
    let (index, parts) = molecule_crds::receipt::split(r, name, PART_BYTES);
    let old: Vec<(String, Part)> =
        before.map(|b| molecule_crds::receipt::split(b, name, PART_BYTES).1).unwrap_or_default();
    for (k, (part_name, part)) in parts.iter().enumerate() {
        if old.get(k).is_some_and(|(n, p)| n == part_name && p == part) {
            continue;
        }
        let labels = serde_json::json!({ PART_LABEL: name, "moleculesai.app/tenant": r.tenant, "app.kubernetes.io/managed-by": ctx.identity.operator_id });
        let data = BTreeMap::from([(KEY.to_owned(), serde_json::to_string_pretty(part).unwrap_or_default())]);
        apply(&api, part_name, &ctx.tenant.operator_namespace, labels, data).await?;
    }
    let mut data = BTreeMap::from([
        ("tenant".to_owned(), r.tenant.clone()),
        ("tenantUid".to_owned(), r.tenant_uid.clone()),
        ("startedAt".to_owned(), r.started_at.clone()),
        (KEY.to_owned(), serde_json::to_string_pretty(&index).unwrap_or_default()),
    ]);
    if let Some(c) = &r.completed_at {
        data.insert("completedAt".into(), c.clone());
    }
    let labels = serde_json::json!({ LABEL: "true", "moleculesai.app/tenant": r.tenant, "app.kubernetes.io/managed-by": ctx.identity.operator_id });
    apply(&api, name, &ctx.tenant.operator_namespace, labels, data).await
}

async fn apply(
    api: &Api<ConfigMap>,
    name: &str,
    ns: &str,
    labels: serde_json::Value,
    data: BTreeMap<String, String>,
) -> Result<(), Error> {
    let cm = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": name, "namespace": ns, "labels": labels },
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
