//! The erasure receipt's format: the JSON in the `receipt.json` key of the ConfigMap the operator
//! writes in its namespace when it erases a Tenant (docs/api.md, "Erasure receipt"). The operator
//! writes it; `kubectl molecule receipt` and auditors read it.

use serde::{Deserialize, Serialize};

/// Label on every receipt.
pub const LABEL: &str = "moleculesai.app/erasure-receipt";
/// The data key holding the JSON receipt.
pub const KEY: &str = "receipt.json";

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
    /// Every resource, in the order found.
    pub resources: Vec<Entry>,
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
