//! The erasure receipt's format: the JSON in the `receipt.json` key of the ConfigMap the operator
//! writes in its namespace when it erases a Tenant (docs/api.md, "Erasure receipt"). The operator
//! writes it; `kubectl molecule receipt` and auditors read it.

use serde::{Deserialize, Serialize};

/// Label on every receipt.
pub const LABEL: &str = "moleculesai.app/erasure-receipt";
/// The data key holding the JSON receipt.
pub const KEY: &str = "receipt.json";
/// Label on every further part of a receipt too large for one ConfigMap; its value is the
/// index ConfigMap's name (the part carries no [`LABEL`], so it is never taken for a receipt).
pub const PART_LABEL: &str = "moleculesai.app/erasure-receipt-part";
/// Serialized bytes of entries one ConfigMap holds at most (a ConfigMap holds 1 MiB in all).
pub const PART_BYTES: usize = 512 * 1024;

/// One erased resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Workspace, Instance, SecurityGroup, Volume, DnsRecord, Tunnel, Secret, KubernetesSecret,
    /// IamRole, InstanceProfile (readers must keep kinds they do not know).
    pub kind: String,
    /// Its ID (or `type name` for DNS records, `namespace/name` for Kubernetes objects).
    pub id: String,
    /// main or canary, for AWS resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Region, for AWS resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// When the operator asked for its deletion (absent when its owner's deletion removed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_requested_at: Option<String>,
    /// When it was confirmed gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_gone_at: Option<String>,
}

/// The receipt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// Tenant slug.
    pub tenant: String,
    /// Tenant uid.
    pub tenant_uid: String,
    /// When the erasure started.
    pub started_at: String,
    /// When every resource was confirmed gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Every resource, in the order found (in the index ConfigMap: the first part of them).
    pub resources: Vec<Entry>,
    /// The further ConfigMaps (same namespace) holding the rest of `resources`, in order; absent
    /// when the receipt fits in one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
}

/// One further part of a receipt: the `receipt.json` of the ConfigMap a [`Receipt::parts`] names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// The index ConfigMap's name.
    pub receipt: String,
    /// Its entries, continuing the previous part's.
    pub resources: Vec<Entry>,
}

/// Name of the `k`th further part (from 1) of the receipt in ConfigMap `name`.
#[must_use]
pub fn part_name(name: &str, k: usize) -> String {
    format!("{name}-part-{k}")
}

/// Splits `r` (kept in ConfigMap `name`) into the index receipt and its further parts, each
/// holding entries of at most `max_bytes` serialized (one entry at least).
#[must_use]
pub fn split(r: &Receipt, name: &str, max_bytes: usize) -> (Receipt, Vec<(String, Part)>) {
    let mut chunks: Vec<Vec<Entry>> = Vec::new();
    let mut current: Vec<Entry> = Vec::new();
    let mut size = 0;
    for e in &r.resources {
        let n = serde_json::to_string(e).map_or(0, |j| j.len() + 8);
        if size + n > max_bytes && !current.is_empty() {
            chunks.push(std::mem::take(&mut current));
            size = 0;
        }
        size += n;
        current.push(e.clone());
    }
    chunks.push(current);
    let mut rest = chunks.into_iter();
    let first = rest.next().unwrap_or_default();
    let parts: Vec<(String, Part)> = rest
        .enumerate()
        .map(|(k, resources)| (part_name(name, k + 1), Part { receipt: name.to_owned(), resources }))
        .collect();
    let index = Receipt { resources: first, parts: parts.iter().map(|(n, _)| n.clone()).collect(), ..r.clone() };
    (index, parts)
}

/// The whole receipt from its index and its parts, in the index's order.
#[must_use]
pub fn join(index: Receipt, parts: Vec<Part>) -> Receipt {
    let mut r = Receipt { parts: Vec::new(), ..index };
    for p in parts {
        r.resources.extend(p.resources);
    }
    r
}

/// Where a resource lives: (account, region), or none for Kubernetes and Cloudflare.
pub type Place<'a> = Option<(&'a str, &'a str)>;

impl Receipt {
    /// Lists a resource (once).
    pub fn seen(&mut self, kind: &str, id: &str, place: Place<'_>) {
        if !self.resources.iter().any(|e| e.kind == kind && e.id == id) {
            self.resources.push(Entry {
                kind: kind.into(),
                id: id.into(),
                account: place.map(|p| p.0.to_owned()),
                region: place.map(|p| p.1.to_owned()),
                ..Entry::default()
            });
        }
    }

    /// Notes that its deletion was asked for now (the first time only).
    pub fn requested(&mut self, kind: &str, id: &str, place: Place<'_>, now: &str) {
        self.seen(kind, id, place);
        if let Some(e) = self.resources.iter_mut().find(|e| e.kind == kind && e.id == id) {
            e.delete_requested_at.get_or_insert_with(|| now.to_owned());
        }
    }

    /// Confirms it gone now (the first time only).
    pub fn gone(&mut self, kind: &str, id: &str, now: &str) {
        if let Some(e) = self.resources.iter_mut().find(|e| e.kind == kind && e.id == id) {
            e.confirmed_gone_at.get_or_insert_with(|| now.to_owned());
        }
    }

    /// Entries of `kind` not confirmed gone yet.
    pub fn pending(&self, kind: &str) -> Vec<Entry> {
        self.resources.iter().filter(|e| e.kind == kind && e.confirmed_gone_at.is_none()).cloned().collect()
    }

    /// Whether every entry is confirmed gone.
    pub fn all_gone(&self) -> bool {
        self.resources.iter().all(|e| e.confirmed_gone_at.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(n: usize) -> Receipt {
        let mut r =
            Receipt { tenant: "acme".into(), tenant_uid: "u".into(), started_at: "t0".into(), ..Receipt::default() };
        for i in 0..n {
            r.requested("Workspace", &format!("team-{i}/workspace-{i:05}"), None, "2026-11-29T06:00:00Z");
            r.requested("Instance", &format!("i-{i:017x}"), Some(("main", "us-east-1")), "2026-11-29T06:00:01Z");
        }
        r
    }

    #[test]
    fn a_large_receipt_splits_into_parts_under_the_limit_and_joins_back() {
        // 8,000 entries (past one ConfigMap's 1 MiB as a pretty-printed receipt) need the index
        // and at least one part.
        let r = big(4_000);
        assert!(serde_json::to_string_pretty(&r).unwrap().len() > 1024 * 1024, "the receipt is past the limit");
        let (index, parts) = split(&r, "erasure-acme-1", PART_BYTES);
        assert!(!parts.is_empty(), "8,000 entries need several ConfigMaps");
        assert_eq!(index.parts, parts.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
        assert_eq!(parts[0].0, "erasure-acme-1-part-1");
        assert!(serde_json::to_string_pretty(&index).unwrap().len() < 900 * 1024);
        for (_, p) in &parts {
            assert!(serde_json::to_string_pretty(p).unwrap().len() < 900 * 1024);
        }
        let again: Receipt = serde_json::from_str(&serde_json::to_string(&index).unwrap()).unwrap();
        let back = join(again, parts.into_iter().map(|(_, p)| p).collect());
        assert_eq!(back, r);
    }

    #[test]
    fn a_small_receipt_stays_one_configmap() {
        let r = big(3);
        let (index, parts) = split(&r, "erasure-acme-1", PART_BYTES);
        assert!(parts.is_empty() && index.parts.is_empty());
        assert!(!serde_json::to_string(&index).unwrap().contains("parts"));
        assert_eq!(index, r);
    }

    #[test]
    fn entries_are_listed_once_and_confirmed_once() {
        let mut r = Receipt::default();
        r.seen("Instance", "i-1", Some(("main", "us-east-1")));
        r.requested("Instance", "i-1", Some(("main", "us-east-1")), "t1");
        r.requested("Instance", "i-1", None, "t2");
        assert_eq!(r.resources.len(), 1);
        assert_eq!(r.resources[0].delete_requested_at.as_deref(), Some("t1"));
        assert!(!r.all_gone());
        r.gone("Instance", "i-1", "t3");
        r.gone("Instance", "i-1", "t4");
        assert_eq!(r.resources[0].confirmed_gone_at.as_deref(), Some("t3"));
        assert!(r.all_gone() && r.pending("Instance").is_empty());
    }
}
