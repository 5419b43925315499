//! The GDPR Article 17 erasure of a Tenant, in DESIGN.md's order: its Workspaces (the ones bound
//! to it: see [`bound`]), any instance
//! left with its tag, its VM, its groups and volumes, its IAM roles and instance profiles, its
//! Cloudflare records then its tunnel, its
//! Route 53 records, its bundle (no recovery window), its credentials. Each step waits for the
//! cloud to confirm before the next starts; progress is kept in the receipt, so a crash resumes.
//! The VM, group and tunnel in the Tenant's status (and a CNAME pointing at that tunnel) are also
//! looked up by ID: one that lives under another identity blocks the receipt
//! ([`launch::verify`](crate::reconcile::launch::verify), IdentityMismatch).

use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use molecule_crds::v1alpha1::{ErasureStatus, Tenant, TenantStatus, Workspace};

use super::receipt::Receipt;
use super::{cloudflare, credentials, status};
use crate::cloud::InstanceState;
use crate::cloud::tags::{OWNER_UID, Owner};
use crate::context::{Account, Context};
use crate::reconcile::Error;
use crate::reconcile::launch::verify::{self, Mismatch, Seen};
use crate::reconcile::teardown::{self, Blocker, Outcome};

/// What every step needs.
pub struct Erasure<'a> {
    /// Context.
    pub ctx: &'a Context,
    /// The Tenant reconciler's memory (the bundle digest is forgotten with the bundle).
    pub memory: &'a super::Memory,
    /// The Tenant.
    pub tenant: &'a Tenant,
    /// Its owner tags.
    pub owner: &'a Owner,
    /// Its hostname.
    pub hostname: &'a str,
    /// The operator's Workspace watch cache (this shard's Workspaces; see
    /// [`erase_lookup`](super::erase_lookup)).
    pub workspaces: Store<Workspace>,
    /// The accounts that may hold its resources (its own first).
    pub accounts: Vec<&'a Account>,
    /// The receipt being written.
    pub receipt: &'a mut Receipt,
    /// Now, RFC 3339.
    pub now: String,
}

impl std::fmt::Debug for Erasure<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Erasure").field("tenant", &self.owner.name).finish_non_exhaustive()
    }
}

pub(super) fn wait(what: String) -> Error {
    Error::waiting_for(what, Duration::from_secs(2))
}

/// A wait on a resource living under another identity (a person has to act: looked at again
/// every 15 s).
fn mismatch(m: Mismatch) -> Error {
    let what = m.to_string();
    teardown::wait_on(Blocker::IdentityMismatch(m), what, Duration::from_secs(15))
}

fn place(a: &Account) -> (&str, &str) {
    (a.name, a.region.as_str())
}

impl Erasure<'_> {
    /// Runs the steps in order; `Err(Waiting)` names the step and what it waits for.
    pub async fn run(&mut self) -> Result<(), (&'static str, Error)> {
        self.inventory();
        self.workspaces().await.map_err(|e| ("Workspaces", e))?;
        self.instances(false).await.map_err(|e| ("Instances", e))?;
        self.instances(true).await.map_err(|e| ("TenantVm", e))?;
        self.listed_after_allowance().map_err(|e| ("TenantVm", e))?;
        self.status_vm().await.map_err(|e| ("TenantVm", e))?;
        self.groups_and_volumes().await.map_err(|e| ("SecurityGroups", e))?;
        self.status_group().await.map_err(|e| ("SecurityGroups", e))?;
        super::identity::erase_step(self).await.map_err(|e| ("Identities", e))?;
        self.cloudflare().await.map_err(|e| ("Cloudflare", e))?;
        self.status_tunnel().await.map_err(|e| ("Cloudflare", e))?;
        self.dns().await.map_err(|e| ("Dns", e))?;
        self.bundle().await.map_err(|e| ("Bundle", e))?;
        self.credentials().await.map_err(|e| ("Credentials", e))?;
        // The receipt is complete only when every resource it lists is confirmed gone.
        match self.receipt.resources.iter().find(|e| e.confirmed_gone_at.is_none()) {
            Some(e) => Err(("Receipt", wait(format!("{} {} to be confirmed gone", e.kind, e.id)))),
            None => Ok(()),
        }
    }

    /// The final instance confirmation: a listing of every account that started at least the
    /// listing allowance (ERASURE_LISTING_ALLOWANCE_SECONDS, `LISTING_LAG` by default) after the
    /// erasure began. An instance launched with the tenant's tags just before the delete is
    /// absent from listings for that long; the next pass terminates what the later listing shows.
    fn listed_after_allowance(&self) -> Result<(), Error> {
        let began = self.receipt.started_at.parse::<Timestamp>().unwrap_or_else(|_| Timestamp::now());
        let allowance = jiff::SignedDuration::try_from(self.ctx.settings.erasure_listing_allowance)
            .unwrap_or(jiff::SignedDuration::MAX);
        let since = began.checked_add(allowance).unwrap_or(Timestamp::MAX);
        let Some(a) = self.accounts.iter().find(|a| !a.cache.refreshed_since(since)) else { return Ok(()) };
        let now = Timestamp::now();
        if now >= since {
            a.cache.request_refresh();
        }
        let left = Duration::try_from(since.duration_since(now)).unwrap_or_default();
        let what = format!("a {} instance listing started after {since} (the listing lag allowance)", a.name);
        Err(Error::waiting_for(what, left.clamp(Duration::from_secs(2), Duration::from_secs(30))))
    }

    /// Lists everything the caches know with the tenant's tag, before anything is deleted.
    fn inventory(&mut self) {
        if self.receipt.started_at.parse::<Timestamp>().is_err() {
            self.receipt.started_at.clone_from(&self.now);
        }
        for a in &self.accounts {
            let (instances, groups, volumes) = a.cache.of_tenant(&self.owner.name);
            for i in instances.iter().filter(|i| i.state.is_alive()) {
                self.receipt.seen("Instance", &i.id, Some(place(a)));
            }
            for g in &groups {
                self.receipt.seen("SecurityGroup", &g.id, Some(place(a)));
            }
            for v in volumes.iter().filter(|v| v.state != "deleted") {
                self.receipt.seen("Volume", &v.id, Some(place(a)));
            }
        }
    }

    /// After step 3: the tenant VM status names, described by ID in the tenant's own account
    /// (the listings see only what carries our identity tags). Gone or terminated goes on; ours
    /// but unlisted is terminated and waited for; alive under another identity blocks.
    async fn status_vm(&mut self) -> Result<(), Error> {
        let Some(a) = self.accounts.first().copied() else { return Ok(()) };
        let Some(id) = self.tenant.status.as_ref().and_then(|s| s.instance_id.clone()) else { return Ok(()) };
        match verify::instance(a, &self.ctx.identity, &self.owner.uid, &id).await? {
            Seen::Absent => Ok(()),
            Seen::Ours(i) | Seen::Foreign(i, _) if i.state == InstanceState::Terminated => Ok(()),
            Seen::Foreign(i, m) if i.state.is_alive() => Err(mismatch(m)),
            Seen::Ours(i) | Seen::Foreign(i, _) => {
                if i.state.is_alive() {
                    a.instances.terminate(std::slice::from_ref(&i.id)).await?;
                }
                a.cache.request_refresh();
                Err(wait(format!("tenant VM {} ({}) to be terminated", i.id, i.state)))
            }
        }
    }

    /// After step 4: the tenant's security group status names, described by ID.
    async fn status_group(&mut self) -> Result<(), Error> {
        let Some(a) = self.accounts.first().copied() else { return Ok(()) };
        let Some(id) = self.tenant.status.as_ref().and_then(|s| s.security_group_id.clone()) else { return Ok(()) };
        match verify::group(a, &self.ctx.identity, &self.owner.uid, &id).await? {
            Seen::Absent => Ok(()),
            Seen::Foreign(_, m) => Err(mismatch(m)),
            Seen::Ours(g) => match teardown::delete_group(a, &g.id).await? {
                Outcome::Deleted => Ok(()),
                _ => Err(wait(format!("security group {} is still in use", g.id))),
            },
        }
    }

    /// After step 5: the tunnel status names, by ID, and a CNAME at the hostname that still
    /// points at it (the Cloudflare step finds them by this operator's names and marks).
    async fn status_tunnel(&mut self) -> Result<(), Error> {
        let (Some(cf), Some(id)) =
            (self.ctx.tunnels.clone(), self.tenant.status.as_ref().and_then(|s| s.tunnel_id.clone()))
        else {
            return Ok(());
        };
        let ours = cloudflare::tunnel_name(&self.ctx.identity, &self.owner.name);
        if let Some(t) = cf.list_all().await?.into_iter().find(|t| t.id == id) {
            if t.name == ours {
                return Err(wait(format!("tunnel {id} to be deleted")));
            }
            let differs = format!("named {} (this operator's name for it is {ours})", t.name);
            return Err(mismatch(Mismatch { what: "tunnel", id, differs }));
        }
        let target = cloudflare::target(&id);
        if let Some(r) = cf.records("CNAME", self.hostname).await?.into_iter().find(|r| r.content == target) {
            let differs = format!("points at tunnel {id} but its ownership record is not this operator's");
            return Err(mismatch(Mismatch { what: "Cloudflare record", id: format!("CNAME {}", r.name), differs }));
        }
        Ok(())
    }

    /// 2 and 3. Terminate the instances with the tenant's tag (the VM's when `vm`, the others
    /// otherwise) and wait for a listing newer than the terminate to show them terminated.
    async fn instances(&mut self, vm: bool) -> Result<(), Error> {
        let mut waiting = None;
        for a in self.accounts.clone() {
            let (instances, _, _) = a.cache.of_tenant(&self.owner.name);
            let (ours, others): (Vec<_>, Vec<_>) =
                instances.into_iter().partition(|i| i.tags.get(OWNER_UID) == Some(&self.owner.uid));
            let these = if vm { ours } else { others };
            let alive: Vec<String> = these.iter().filter(|i| i.state.is_alive()).map(|i| i.id.clone()).collect();
            if !alive.is_empty() {
                a.instances.terminate(&alive).await?;
                for id in &alive {
                    self.receipt.requested("Instance", id, Some(place(a)), &self.now);
                }
            }
            for i in &these {
                self.receipt.seen("Instance", &i.id, Some(place(a)));
                let entry = self.receipt.resources.iter().find(|e| e.kind == "Instance" && e.id == i.id).cloned();
                let since = entry.and_then(|e| e.delete_requested_at).and_then(|t| t.parse::<Timestamp>().ok());
                let fresh = since.is_none_or(|t| a.cache.refreshed_since(t));
                if i.state == InstanceState::Terminated && fresh {
                    self.receipt.gone("Instance", &i.id, &self.now);
                } else if waiting.is_none() {
                    a.cache.request_refresh();
                    waiting = Some(format!("instance {} ({}) to be terminated", i.id, i.state));
                }
            }
        }
        // Instances listed earlier that no listing shows any more are gone too.
        self.confirm_absent("Instance");
        waiting.map_or(Ok(()), |w| Err(wait(w)))
    }

    /// Marks pending entries of `kind` (Instance, SecurityGroup, Volume) gone when a listing of
    /// their account newer than their delete lacks them (a terminated instance or a deleted volume
    /// still listed counts as gone). Each account's cache is read once.
    fn confirm_absent(&mut self, kind: &str) {
        let present: std::collections::HashMap<&str, std::collections::HashSet<String>> = self
            .accounts
            .iter()
            .map(|a| {
                let (instances, groups, volumes) = a.cache.of_tenant(&self.owner.name);
                let ids: std::collections::HashSet<String> = match kind {
                    "Instance" => {
                        instances.into_iter().filter(|i| i.state != InstanceState::Terminated).map(|i| i.id).collect()
                    }
                    "SecurityGroup" => groups.into_iter().map(|g| g.id).collect(),
                    _ => volumes.into_iter().filter(|v| v.state != "deleted").map(|v| v.id).collect(),
                };
                (a.name, ids)
            })
            .collect();
        for e in self.receipt.pending(kind) {
            let Some(a) = self.accounts.iter().find(|a| Some(a.name) == e.account.as_deref()) else { continue };
            let since = e.delete_requested_at.as_deref().and_then(|t| t.parse::<Timestamp>().ok());
            let listed = present.get(a.name).is_some_and(|ids| ids.contains(&e.id));
            if since.is_none_or(|t| a.cache.refreshed_since(t)) && !listed {
                self.receipt.gone(kind, &e.id, &self.now);
            }
        }
    }

    /// 4. Delete the groups (retried while an instance still holds them) and the volumes.
    async fn groups_and_volumes(&mut self) -> Result<(), Error> {
        let mut waiting = None;
        for a in self.accounts.clone() {
            let (_, groups, volumes) = a.cache.of_tenant(&self.owner.name);
            for g in groups {
                self.receipt.requested("SecurityGroup", &g.id, Some(place(a)), &self.now);
                if let Outcome::InUse { message, .. } = teardown::delete_group(a, &g.id).await? {
                    waiting.get_or_insert(format!("security group {} is still in use ({message})", g.id));
                }
            }
            for v in volumes.into_iter().filter(|v| v.state != "deleted") {
                self.receipt.requested("Volume", &v.id, Some(place(a)), &self.now);
                let uid = v.tags.get(OWNER_UID).map_or("", String::as_str);
                if let Outcome::InUse { message, .. } = teardown::delete_volume(a, uid, &v, false).await? {
                    waiting.get_or_insert(format!("volume {} is still attached ({message})", v.id));
                }
            }
        }
        if let Some(w) = waiting {
            return Err(wait(w));
        }
        // A delete that succeeded is confirmed by the next listing.
        self.confirm_absent("SecurityGroup");
        self.confirm_absent("Volume");
        let left: Vec<String> = ["SecurityGroup", "Volume"]
            .iter()
            .flat_map(|k| self.receipt.pending(k))
            .map(|e| format!("{} {}", e.kind, e.id))
            .collect();
        if let Some(first) = left.first() {
            self.accounts.iter().for_each(|a| a.cache.request_refresh());
            return Err(wait(format!("a listing that confirms {first} is gone")));
        }
        Ok(())
    }

    /// 5. The CNAME and its ownership record, then the tunnel.
    async fn cloudflare(&mut self) -> Result<(), Error> {
        let Some(cf) = self.ctx.tunnels.clone() else {
            if let Some(id) = self.tenant.status.as_ref().and_then(|s| s.tunnel_id.clone()) {
                return Err(wait(format!(
                    "Cloudflare settings to delete tunnel {id} (CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID, CLOUDFLARE_ZONE_ID)"
                )));
            }
            return Ok(());
        };
        let records = cloudflare::owned_records(cf.as_ref(), &self.ctx.identity, self.owner, self.hostname).await?;
        for r in &records {
            let id = format!("{} {}", r.record_type, r.name);
            self.receipt.requested("DnsRecord", &id, None, &self.now);
            cf.delete_record(&r.id).await?;
        }
        if !records.is_empty() {
            let left = cloudflare::owned_records(cf.as_ref(), &self.ctx.identity, self.owner, self.hostname).await?;
            if let Some(r) = left.first() {
                return Err(wait(format!("Cloudflare record {} {} to be deleted", r.record_type, r.name)));
            }
            for r in &records {
                self.receipt.gone("DnsRecord", &format!("{} {}", r.record_type, r.name), &self.now);
            }
        }
        let name = cloudflare::tunnel_name(&self.ctx.identity, &self.owner.name);
        if let Some(t) = cf.find(&name).await? {
            self.receipt.requested("Tunnel", &t.id, None, &self.now);
            cf.delete(&t.id).await?;
            if cf.find(&name).await?.is_some() {
                return Err(wait(format!("tunnel {} to be deleted", t.id)));
            }
        }
        for e in self.receipt.pending("Tunnel") {
            self.receipt.gone("Tunnel", &e.id, &self.now);
        }
        Ok(())
    }

    /// 7. The tenant's Workspace secrets (a sweep: the Workspace deletes removed theirs, this
    ///    catches any left by a crash or a retained Workspace), then the bootstrap bundle, each
    ///    deleted without a recovery window.
    async fn bundle(&mut self) -> Result<(), Error> {
        let Some(a) = self.accounts.first().copied() else { return Ok(()) };
        // Workspace secrets live in the main account (Workspaces run there), the bundle in the
        // Tenant's own: each is recorded with the account it was deleted in.
        let main = self.ctx.main.as_ref();
        let (ws_asked, mut left) =
            crate::reconcile::teardown::sweep_workspace_secrets(self.ctx, main, &self.owner.name).await?;
        let known = self.tenant.status.as_ref().and_then(|s| s.secret_arn.clone());
        let (bundle_asked, bundle_left) =
            super::bundle::erase(self.ctx, self.memory, a, self.owner, known.as_deref()).await?;
        left.extend(bundle_left);
        for (arn, acct) in ws_asked.iter().map(|x| (x, main)).chain(bundle_asked.iter().map(|x| (x, a))) {
            self.receipt.requested("Secret", arn, Some(place(acct)), &self.now);
        }
        if let Some(arn) = left.first() {
            return Err(wait(format!("secret {arn} to be deleted")));
        }
        for e in self.receipt.pending("Secret") {
            self.receipt.gone("Secret", &e.id, &self.now);
        }
        Ok(())
    }

    /// 8. The credentials Secret, last.
    async fn credentials(&mut self) -> Result<(), Error> {
        let id = format!("{}/{}", self.ctx.tenant.operator_namespace, credentials::secret_name(&self.owner.name));
        self.receipt.requested("KubernetesSecret", &id, None, &self.now);
        if credentials::delete(self.ctx, &self.owner.name).await? {
            self.receipt.gone("KubernetesSecret", &id, &self.now);
            Ok(())
        } else {
            Err(wait(format!("Secret {id} to be deleted")))
        }
    }
}

/// Whether `w` belongs to the tenant: it names the tenant and either lives in one of its
/// namespaces or was admitted or owns something. A Workspace that names the tenant from a
/// namespace the tenant never bound, never admitted and owning nothing is somebody else's: it is
/// neither deleted nor waited for (its own finalizer must not hold the erasure forever).
pub(super) fn bound(t: &Tenant, slug: &str, w: &Workspace) -> bool {
    if w.spec.tenant != slug {
        return false;
    }
    let ns = w.namespace().unwrap_or_default();
    if t.spec.allowed_namespaces(slug).contains(ns.as_str()) {
        return true;
    }
    w.status.as_ref().is_some_and(|s| {
        s.launch.is_some()
            || s.instance_id.is_some()
            || s.security_group_id.is_some()
            || s.data_volume_id.is_some()
            || molecule_crds::conditions::is_true(&s.conditions, "Admitted")
    })
}

/// Status of an erasure that waits: the step, what blocks it, and past the deadline a Ready
/// condition that names it.
#[allow(clippy::too_many_arguments)]
pub(super) fn blocked_status(
    st: &mut TenantStatus,
    t: &Tenant,
    ctx: &Context,
    receipt_started: &str,
    receipt_name: &str,
    step: &str,
    e: &Error,
    now: Timestamp,
) {
    let generation = t.metadata.generation;
    let now_s = now.to_string();
    let started =
        t.metadata.deletion_timestamp.as_ref().map_or_else(|| receipt_started.to_owned(), |d| d.0.to_string());
    st.erasure = Some(ErasureStatus {
        started_at: started.clone(),
        step: step.to_owned(),
        blocked_by: Some(e.to_string()),
        receipt: format!("{}/{receipt_name}", ctx.tenant.operator_namespace),
    });
    status::set(st, "Erasing", true, step, e.to_string(), generation, &now_s);
    let deadline = i64::try_from(ctx.settings.deprovision_deadline.as_secs()).unwrap_or(i64::MAX);
    if let Some(Blocker::IdentityMismatch(m)) = e.blocker() {
        let msg = format!("erasure step {step} is blocked: {m}");
        status::set(st, "Ready", false, verify::REASON, msg, generation, &now_s);
    } else if started.parse::<Timestamp>().is_ok_and(|s| now.duration_since(s).as_secs() > deadline) {
        let msg = format!("erasure step {step} is blocked past the deadline: {e}");
        status::set(st, "Ready", false, "ErasureBlocked", msg, generation, &now_s);
    } else {
        status::set(st, "Ready", false, "Erasing", format!("erasure step {step}"), generation, &now_s);
    }
}
