//! The erasure's Workspace and Route 53 steps at scale (issue 16): each pass reads the operator's
//! Workspace watch cache and looks up the Workspaces' own records by name (`Dns::get`, answered
//! from the zone record cache); a listing of every Workspace (paginated) and a sweep of the zone
//! under the tenant's subdomain each run once, at the end of their step, and are kept in the
//! receipt as `Sweep` entries so a later pass does not run them again.

use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};
use molecule_crds::v1alpha1::Workspace;

use super::erase::{Erasure, bound, wait};
use crate::cloud::marks::workspace_hostname as hostname;
use crate::reconcile::{Error, kube_err};

/// Receipt kind of a final listing that found nothing of the tenant left.
pub const SWEEP: &str = "Sweep";
/// The Sweep entry of the final Workspace listing.
pub const WORKSPACE_SWEEP: &str = "Workspaces in every namespace and shard";
/// Workspaces per page of the final listing.
const PAGE: u32 = 500;

fn key(w: &Workspace) -> String {
    format!("{}/{}", w.namespace().unwrap_or_default(), w.name_any())
}

/// The Sweep entry of the final zone sweep under `suffix`.
pub fn zone_sweep(suffix: &str) -> String {
    format!("Route 53 records under {suffix}")
}

impl Erasure<'_> {
    /// Whether the final listing `sweep` already ran and found nothing of the tenant left.
    fn swept(&self, sweep: &str) -> bool {
        self.receipt.resources.iter().any(|e| e.kind == SWEEP && e.id == sweep && e.confirmed_gone_at.is_some())
    }

    /// Step 1: deletes every Workspace of the tenant and waits until none is left: the watch cache
    /// answers every pass; one paginated listing of all Workspaces (those outside this shard's
    /// WORKSPACE_SELECTOR are not in the cache) confirms at the end.
    pub(super) async fn workspaces(&mut self) -> Result<(), Error> {
        let slug = self.owner.name.clone();
        let cached: Vec<Workspace> = self
            .workspaces
            .state()
            .into_iter()
            .filter(|w| bound(self.tenant, &slug, w))
            .map(|w| w.as_ref().clone())
            .collect();
        if !cached.is_empty() {
            return self.delete_workspaces(&cached).await;
        }
        if self.swept(WORKSPACE_SWEEP) {
            return Ok(());
        }
        let listed: Vec<Workspace> =
            self.list_all().await?.into_iter().filter(|w| bound(self.tenant, &slug, w)).collect();
        self.receipt.requested(SWEEP, WORKSPACE_SWEEP, None, &self.now);
        if !listed.is_empty() {
            return self.delete_workspaces(&listed).await;
        }
        for e in self.receipt.pending("Workspace") {
            self.receipt.gone("Workspace", &e.id, &self.now);
        }
        self.receipt.gone(SWEEP, WORKSPACE_SWEEP, &self.now);
        Ok(())
    }

    /// Notes `mine` (and their A records) in the receipt, deletes those not being deleted yet,
    /// and waits for them.
    async fn delete_workspaces(&mut self, mine: &[Workspace]) -> Result<(), Error> {
        let domain = self.ctx.settings.workspace_domain.clone();
        for w in mine {
            let (ns, name) = (w.namespace().unwrap_or_default(), w.name_any());
            self.receipt.requested("Workspace", &key(w), None, &self.now);
            if self.ctx.dns.is_some() {
                let host = w
                    .status
                    .as_ref()
                    .and_then(|s| s.hostname.clone())
                    .unwrap_or_else(|| hostname(&name, &ns, &self.owner.name, &domain));
                self.receipt.seen("DnsRecord", &format!("A {host}"), None);
            }
            if w.metadata.deletion_timestamp.is_none() {
                let api: Api<Workspace> = Api::namespaced(self.ctx.client.clone(), &ns);
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(kube_err("delete a Workspace of the tenant")(e)),
                }
            }
        }
        let first = mine.first().map(key).unwrap_or_default();
        Err(wait(format!("Workspace {first} (and {} more) to be deleted", mine.len().saturating_sub(1))))
    }

    /// Every Workspace in the cluster, a page at a time.
    async fn list_all(&self) -> Result<Vec<Workspace>, Error> {
        let api: Api<Workspace> = Api::all(self.ctx.client.clone());
        let mut out = Vec::new();
        let mut lp = ListParams::default().limit(PAGE);
        loop {
            let page = api.list(&lp).await.map_err(kube_err("list the tenant's Workspaces"))?;
            out.extend(page.items);
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
                _ => return Ok(out),
            }
        }
    }

    /// Step 6, Route 53: each Workspace's A record (and its TXT mark) by name, deleted while it bears
    /// a mark of ours; then, once, a sweep of the zone under the tenant's subdomain for any other
    /// record marked as ours (a Workspace deleted before the erasure began, a crash).
    pub(super) async fn dns(&mut self) -> Result<(), Error> {
        let Some(dns) = self.ctx.dns.clone() else { return Ok(()) };
        let mut waiting = None;
        for e in self.receipt.pending("DnsRecord") {
            let Some(name) = e.id.strip_prefix("A ") else { continue };
            let current = dns.get(name, "A").await?;
            if current.txt.iter().any(|t| self.ctx.identity.is_our_mark(t)) {
                self.receipt.requested("DnsRecord", &e.id, None, &self.now);
                dns.delete(name, "A", &current).await?;
                waiting.get_or_insert_with(|| format!("Route 53 record {name} to be deleted"));
            } else {
                // Gone, or somebody else's record now: none of ours is left at this name.
                self.receipt.gone("DnsRecord", &e.id, &self.now);
            }
        }
        if let Some(w) = waiting {
            return Err(wait(w));
        }
        let suffix = format!("{}.{}", self.owner.name, self.ctx.settings.workspace_domain);
        let sweep = zone_sweep(&suffix);
        if self.swept(&sweep) {
            return Ok(());
        }
        self.receipt.requested(SWEEP, &sweep, None, &self.now);
        let ours = |txt: &Vec<String>| txt.iter().any(|t| self.ctx.identity.is_our_mark(t));
        let found: Vec<String> =
            dns.txt_under(&suffix).await?.into_iter().filter(|(_, txt)| ours(txt)).map(|(n, _)| n).collect();
        if let Some(first) = found.first() {
            for name in &found {
                self.receipt.seen("DnsRecord", &format!("A {name}"), None);
            }
            // The next pass deletes them by name, then sweeps again.
            return Err(wait(format!("Route 53 record {first} (and {} more) to be deleted", found.len() - 1)));
        }
        self.receipt.gone(SWEEP, &sweep, &self.now);
        Ok(())
    }
}
