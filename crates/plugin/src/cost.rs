//! `cost`: each Workspace's `status.estimatedHourlyUsd`, and the sum per Tenant (exact: the
//! prices are added in nano-dollars, the way the operator computes them).

use std::collections::BTreeMap;

use kube::api::ListParams;
use kube::{Api, ResourceExt};
use molecule_crds::catalog::Usd;
use molecule_crds::v1alpha1::Workspace;
use serde::Serialize;

use crate::error::{Error, kube as kerr};

/// One Workspace's line.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Tenant.
    pub tenant: String,
    /// Phase.
    pub phase: String,
    /// `status.estimatedHourlyUsd` (empty before the operator resolved it).
    pub hourly_usd: String,
}

/// One Tenant's total.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Total {
    /// Tenant.
    pub tenant: String,
    /// Workspaces counted.
    pub workspaces: usize,
    /// Their sum.
    pub hourly_usd: String,
}

/// The report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Per Workspace.
    pub workspaces: Vec<Line>,
    /// Per Tenant.
    pub tenants: Vec<Total>,
    /// Everything listed.
    pub total_hourly_usd: String,
}

/// Lists Workspaces (`ns` None = all namespaces), optionally of one Tenant, and sums them.
pub async fn report(client: &kube::Client, ns: Option<&str>, tenant: Option<&str>) -> Result<Report, Error> {
    let (api, scope): (Api<Workspace>, String) = match ns {
        Some(n) => (Api::namespaced(client.clone(), n), format!("workspaces in namespace {n}")),
        None => (Api::all(client.clone()), "workspaces in all namespaces".to_owned()),
    };
    let mut lp = ListParams::default();
    if let Some(t) = tenant {
        lp = lp.fields(&format!("spec.tenant={t}"));
    }
    let list = api.list(&lp).await.map_err(|e| kerr("list", &scope, e))?;
    Ok(summarize(&list.items))
}

/// Pure: lines sorted by namespace and name, totals by Tenant.
pub fn summarize(items: &[Workspace]) -> Report {
    let mut lines: Vec<Line> = items
        .iter()
        .map(|w| {
            let st = w.status.as_ref();
            Line {
                namespace: w.namespace().unwrap_or_default(),
                name: w.name_any(),
                tenant: w.spec.tenant.clone(),
                phase: st
                    .and_then(|s| s.phase)
                    .and_then(|p| serde_json::to_value(p).ok())
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                hourly_usd: st.and_then(|s| s.estimated_hourly_usd.clone()).unwrap_or_default(),
            }
        })
        .collect();
    lines.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut by_tenant: BTreeMap<&str, (usize, Usd)> = BTreeMap::new();
    let mut all = Usd::default();
    for l in &lines {
        let price = Usd::parse(&l.hourly_usd).unwrap_or_default();
        let e = by_tenant.entry(l.tenant.as_str()).or_default();
        *e = (e.0 + 1, e.1 + price);
        all = all + price;
    }
    let tenants = by_tenant
        .into_iter()
        .map(|(t, (n, sum))| Total { tenant: t.to_owned(), workspaces: n, hourly_usd: sum.to_decimal_4() })
        .collect();
    Report { workspaces: lines, tenants, total_hourly_usd: all.to_decimal_4() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(ns: &str, name: &str, tenant: &str, price: Option<&str>) -> Workspace {
        let mut w: Workspace = serde_json::from_value(serde_json::json!({
            "apiVersion": "moleculesai.app/v1alpha1", "kind": "Workspace",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"tenant": tenant, "runtime": "codex"},
        }))
        .unwrap_or_else(|e| unreachable!("{e}"));
        w.status = Some(molecule_crds::v1alpha1::WorkspaceStatus {
            estimated_hourly_usd: price.map(str::to_owned),
            ..Default::default()
        });
        w
    }

    #[test]
    fn sums_per_tenant_exactly() {
        let r = summarize(&[
            ws("b", "x", "acme", Some("0.1796")),
            ws("a", "y", "acme", Some("0.0132")),
            ws("a", "z", "beta", Some("0.0001")),
            ws("a", "new", "beta", None),
        ]);
        assert_eq!(r.workspaces[0].name, "new", "sorted by namespace, name");
        let t: Vec<_> = r.tenants.iter().map(|t| (t.tenant.as_str(), t.workspaces, t.hourly_usd.as_str())).collect();
        assert_eq!(t, [("acme", 2, "0.1928"), ("beta", 2, "0.0001")]);
        assert_eq!(r.total_hourly_usd, "0.1929");
    }
}
