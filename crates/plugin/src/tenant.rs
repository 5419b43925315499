//! `receipt TENANT` (the erasure receipt ConfigMaps in the operator namespace) and `orphans`
//! (Tenant `status.orphans`).

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use molecule_crds::v1alpha1::Tenant;
use serde::{Deserialize, Serialize};

use crate::error::{Error, kube as kerr};
use crate::out::{cell, table};

/// A receipt as read from its ConfigMap: the operator's format (molecule-crds) and the
/// ConfigMap's name.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Receipt {
    /// The ConfigMap it was read from.
    #[serde(default)]
    pub name: String,
    /// What the operator wrote.
    #[serde(flatten)]
    pub body: molecule_crds::receipt::Receipt,
}

/// Every receipt of `tenant` (a slug reused later has one per erasure), oldest first.
pub async fn receipts(client: &kube::Client, operator_ns: &str, tenant: &str) -> Result<Vec<Receipt>, Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), operator_ns);
    let lp = ListParams::default()
        .labels(&format!("{}=true,moleculesai.app/tenant={tenant}", molecule_crds::receipt::LABEL));
    let scope = format!("erasure receipts in namespace {operator_ns}");
    let list = api.list(&lp).await.map_err(|e| kerr("list", &scope, e))?;
    let mut out = Vec::new();
    for cm in list.items {
        let name = cm.name_any();
        let mut r: Receipt = parse(operator_ns, &name, &key_of(&cm))?;
        // A receipt too large for one ConfigMap continues in the parts its index names.
        let mut parts = Vec::with_capacity(r.body.parts.len());
        for p in &r.body.parts {
            let cm = api
                .get_opt(p)
                .await
                .map_err(|e| kerr("read", &format!("erasure receipt part {operator_ns}/{p}"), e))?;
            let Some(cm) = cm else {
                return Err(Error::NotFound(format!("part {p} of erasure receipt {operator_ns}/{name}")));
            };
            parts.push(parse::<molecule_crds::receipt::Part>(operator_ns, p, &key_of(&cm))?);
        }
        r.body = molecule_crds::receipt::join(r.body, parts);
        r.name = name;
        out.push(r);
    }
    if out.is_empty() {
        return Err(Error::NotFound(format!("erasure receipt of tenant {tenant} (in namespace {operator_ns})")));
    }
    out.sort_by(|a, b| a.body.started_at.cmp(&b.body.started_at));
    Ok(out)
}

fn key_of(cm: &ConfigMap) -> String {
    cm.data.as_ref().and_then(|d| d.get(molecule_crds::receipt::KEY)).cloned().unwrap_or_default()
}

/// The `receipt.json` of ConfigMap `name` (an index or a part).
fn parse<T: serde::de::DeserializeOwned>(operator_ns: &str, name: &str, text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error::Call {
        action: "read".into(),
        object: format!("erasure receipt {operator_ns}/{name}"),
        message: format!("receipt.json does not parse: {e}"),
    })
}

/// A receipt for people: a header and one line per resource.
pub fn render_receipt(named: &Receipt) -> String {
    let r = &named.body;
    let done = r.resources.iter().filter(|e| e.confirmed_gone_at.is_some()).count();
    let mut s = format!(
        "Receipt:    {}\nTenant:     {} (uid {})\nStarted:    {}\nCompleted:  {}\nConfirmed:  {done}/{} resources gone\n\n",
        named.name,
        r.tenant,
        r.tenant_uid,
        r.started_at,
        r.completed_at.as_deref().unwrap_or("<not yet: erasure in progress>"),
        r.resources.len()
    );
    let rows: Vec<Vec<String>> = r
        .resources
        .iter()
        .map(|e| {
            vec![
                e.kind.clone(),
                e.id.clone(),
                cell(e.account.as_deref()),
                cell(e.region.as_deref()),
                cell(e.delete_requested_at.as_deref().map(short_time).as_deref()),
                cell(e.confirmed_gone_at.as_deref().map(short_time).as_deref()),
            ]
        })
        .collect();
    s.push_str(&table(&["KIND", "ID", "ACCOUNT", "REGION", "DELETE REQUESTED", "CONFIRMED GONE"], &rows));
    s
}

/// An RFC 3339 time in whole seconds, for tables (JSON and YAML keep the exact value).
pub fn short_time(t: &str) -> String {
    t.parse::<jiff::Timestamp>().map_or_else(|_| t.to_owned(), crate::lock::show_time)
}

/// One orphan finding with its Tenant.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Orphan {
    /// Tenant slug.
    pub tenant: String,
    /// Instance, SecurityGroup, ...
    pub kind: String,
    /// Cloud ID.
    pub id: String,
    /// Region.
    pub region: String,
    /// First seen.
    pub detected_at: String,
    /// Why it is an orphan.
    pub reason: String,
    /// Kept on purpose (deletionPolicy Retain), not an orphan to reap.
    pub retained: bool,
}

/// The findings (and, per Tenant, the total when the list is truncated).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Orphans {
    /// Every finding listed in status.
    pub orphans: Vec<Orphan>,
    /// Tenants whose list holds fewer entries than `orphanCount`: (tenant, count).
    pub truncated: Vec<(String, u32)>,
}

/// Reads `status.orphans` of one Tenant or of all.
pub async fn orphans(client: &kube::Client, tenant: Option<&str>) -> Result<Orphans, Error> {
    let api: Api<Tenant> = Api::all(client.clone());
    let tenants = match tenant {
        Some(t) => vec![api.get(t).await.map_err(|e| kerr("get", &format!("tenant {t}"), e))?],
        None => api.list(&ListParams::default()).await.map_err(|e| kerr("list", "tenants", e))?.items,
    };
    let mut out = Orphans { orphans: Vec::new(), truncated: Vec::new() };
    for t in tenants {
        let st = t.status.clone().unwrap_or_default();
        let listed = st.orphans.len();
        for o in st.orphans {
            out.orphans.push(Orphan {
                tenant: t.name_any(),
                kind: serde_json::to_value(o.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
                id: o.id,
                region: o.region,
                detected_at: o.detected_at,
                reason: o.reason,
                retained: o.retained,
            });
        }
        if let Some(n) = st.orphan_count.filter(|n| usize::try_from(*n).unwrap_or(0) > listed) {
            out.truncated.push((t.name_any(), n));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use molecule_crds::receipt::{PART_BYTES, Part, split};

    #[test]
    fn a_receipt_in_several_configmaps_reads_back_whole() {
        let mut whole = molecule_crds::receipt::Receipt { tenant: "acme".into(), ..Default::default() };
        for i in 0..2_000 {
            whole.requested(
                "Workspace",
                &format!("acme/workspace-{i:05}-with-a-long-name"),
                None,
                "2026-11-29T06:00:00Z",
            );
            whole.gone("Workspace", &format!("acme/workspace-{i:05}-with-a-long-name"), "2026-11-29T06:01:00Z");
            whole.requested("Instance", &format!("i-{i:017x}"), Some(("main", "us-east-1")), "2026-11-29T06:00:00Z");
        }
        let (index, parts) = split(&whole, "erasure-acme-1", PART_BYTES);
        assert!(!parts.is_empty(), "4,000 entries take more than one ConfigMap");
        let r: Receipt = parse("ns", "erasure-acme-1", &serde_json::to_string_pretty(&index).unwrap()).unwrap();
        let read: Vec<Part> =
            parts.iter().map(|(n, p)| parse("ns", n, &serde_json::to_string_pretty(p).unwrap()).unwrap()).collect();
        let body = molecule_crds::receipt::join(r.body, read);
        assert_eq!(body, whole);
        let text = render_receipt(&Receipt { name: "erasure-acme-1".into(), body });
        assert!(text.contains("Confirmed:  2000/4000 resources gone"), "{}", &text[..300]);
    }
}
