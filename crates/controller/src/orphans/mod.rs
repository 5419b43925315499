//! The periodic orphan scan: everything that carries this operator's marks (its managed-by and env
//! tags, its DNS ownership records, its tunnel names) is compared with the live Workspaces and
//! Tenants by owner uid. Findings go to the owning Tenant's `status.orphans`, an Event per new
//! finding, the log and a metric by kind; under `ORPHAN_POLICY=reap` an orphan older than the
//! grace period is deleted, logged and evented with its ID.
//!
//! Guarantees: only resources with this operator id and env are ever listed, reported or touched.
//! The live objects are read before and after the cloud listings and their union is used, so an
//! owner created or deleted while the scan runs is never mistaken for a missing one; every
//! Workspace and Tenant that exists counts as live, selected by this operator's shard or not.

pub mod classify;
pub mod gather;
pub mod owners;
pub(crate) mod reap;
pub mod sources;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};
use molecule_crds::v1alpha1::{OrphanFinding, OrphanKind, Tenant, Workspace, WorkspacePhase};
use serde_json::json;

use self::classify::{Finding, Live, LiveOwner};
use self::gather::{Handle, Item};
use crate::context::Context;
use crate::reconcile::publish_about;

/// Field manager of the orphan fields of Tenant status (the Tenant reconciler owns the rest).
pub const MANAGER: &str = "molecule-operator-orphans";
/// At most this many findings are listed in a Tenant's status (`orphanCount` stays exact).
pub const MAX_LISTED: usize = 100;

/// What to do with orphans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Report only.
    Report,
    /// Delete orphans older than the grace period.
    Reap,
}

/// The scan's memory between runs.
#[derive(Debug, Default)]
struct Memory {
    /// When each finding was first seen: (kind, id) -> time.
    first_seen: HashMap<(OrphanKind, String), Timestamp>,
    /// Whether the first scan seeded `first_seen` from the Tenants' statuses.
    seeded: bool,
    /// The last good listing of each source, and the failing ones.
    sources: sources::SourceMemory,
    /// The last good list of every Workspace and Tenant, whatever the selectors.
    everywhere: Option<Live>,
    /// The reconcilers' per-object memory, pruned after a scan that listed every owner.
    forget: Vec<Arc<dyn crate::bounded::Prune>>,
}

/// Scan settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Time between scans.
    pub interval: Duration,
    /// Report or reap.
    pub policy: Policy,
    /// Age of a finding before `reap` deletes it.
    pub grace: Duration,
    /// Age of a second live instance of a live owner before it counts.
    pub duplicate_age: Duration,
}

impl Settings {
    /// From the command line.
    pub fn from_args(args: &crate::cli::RunArgs) -> Self {
        Self {
            interval: Duration::from_secs(args.orphan_scan_interval_seconds.max(1)),
            policy: if args.orphan_policy == "reap" { Policy::Reap } else { Policy::Report },
            grace: Duration::from_secs(args.orphan_grace_seconds),
            duplicate_age: Duration::from_secs(args.orphan_duplicate_age_seconds),
        }
    }
}

/// Runs the scan every `interval` (the first one at once) until the process ends. After each scan
/// that listed every owner, the reconcilers' `forget` memory drops the objects that are gone.
pub async fn run(
    ctx: Arc<Context>,
    workspaces: Store<Workspace>,
    settings: Settings,
    forget: Vec<Arc<dyn crate::bounded::Prune>>,
) {
    let interval = settings.interval;
    // A scan that stops making progress (a hung listing past its deadlines) fails /healthz.
    let beat = crate::watchdog::global().register("orphan-scan", crate::watchdog::bound_for(interval, 8), true);
    let mut memory = Memory { forget, ..Memory::default() };
    loop {
        crate::reconcile::store_ready(&ctx.tenants).await;
        crate::reconcile::store_ready(&workspaces).await;
        let started = std::time::Instant::now();
        let (n, failed) = scan(&ctx, &workspaces, &mut memory, settings).await;
        beat.progress();
        let failed: Vec<&str> = failed.iter().map(|s| s.label()).collect();
        tracing::info!(orphans = n, failed_sources = ?failed, took = ?started.elapsed(), "orphan scan finished");
        tokio::time::sleep(interval).await;
    }
}

/// The live owners: every Workspace and Tenant this operator sees, by uid.
fn live_owners(ctx: &Context, workspaces: &Store<Workspace>) -> Live {
    let mut l = Live::default();
    for w in workspaces.state() {
        let st = w.status.clone().unwrap_or_default();
        let o = LiveOwner {
            qualified: format!("{}/{}", w.namespace().unwrap_or_default(), w.name_any()),
            instance_id: st.instance_id,
            replacing: st.phase == Some(WorkspacePhase::Replacing),
            attempt: st.launch.as_ref().map(|l| l.attempt),
        };
        l.owners.insert(w.uid().unwrap_or_default(), o);
    }
    for t in ctx.tenants.state() {
        let o = LiveOwner {
            qualified: t.name_any(),
            instance_id: t.status.as_ref().and_then(|s| s.instance_id.clone()),
            replacing: false,
            attempt: t.status.as_ref().and_then(|s| s.launch.as_ref()).map(|l| l.attempt),
        };
        l.owners.insert(t.uid().unwrap_or_default(), o);
        l.tenants.insert(t.name_any());
    }
    l
}

fn union(mut a: Live, b: Live) -> Live {
    a.owners.extend(b.owners);
    a.tenants.extend(b.tenants);
    a
}

/// One scan: the number of findings and the sources that failed (their last listing stood in).
async fn scan(
    ctx: &Context,
    workspaces: &Store<Workspace>,
    memory: &mut Memory,
    settings: Settings,
) -> (usize, Vec<sources::Source>) {
    let Settings { policy, grace, duplicate_age, .. } = settings;
    let before = live_owners(ctx, workspaces);
    let gathered = sources::gather_all(ctx, &mut memory.sources).await;
    sources::report(ctx, &gathered.failed, &mut memory.sources).await;
    let failed: Vec<sources::Source> = gathered.failed.keys().copied().collect();
    let items: Vec<Item> = gathered.items.iter().map(|(_, i)| i.clone()).collect();
    let (everywhere, owners_listed) = every_owner(ctx, memory).await;
    if owners_listed {
        let keep =
            crate::bounded::Keep::new(everywhere.owners.keys().cloned(), &workspaces.state(), &ctx.tenants.state());
        let dropped = crate::bounded::prune(ctx, &memory.forget, &keep);
        tracing::debug!(dropped, "forgot the memory of objects that are gone");
    }
    let mut live = owners::complete(union(before, live_owners(ctx, workspaces)), &everywhere);
    live.duplicate_age_secs = i64::try_from(duplicate_age.as_secs()).unwrap_or(i64::MAX);
    let now = Timestamp::now();
    let marked: Vec<_> = items.iter().map(|(m, _)| m.clone()).collect();
    let findings = classify::classify(&marked, &live, now);
    // Two marks can share a DNS name (a reused slug beside a leftover mark): the owner uid tells
    // them apart.
    let handles: HashMap<(OrphanKind, String, Option<String>), (sources::Source, Handle)> =
        gathered.items.into_iter().map(|(s, (m, h))| ((m.kind, m.id, m.owner_uid), (s, h))).collect();

    if !memory.seeded {
        seed(ctx, memory);
    }
    let current: HashSet<(OrphanKind, String)> = findings.iter().map(|f| (f.kind, f.id.clone())).collect();
    memory.first_seen.retain(|k, _| current.contains(k));
    let mut new = Vec::new();
    for f in &findings {
        if let std::collections::hash_map::Entry::Vacant(e) = memory.first_seen.entry((f.kind, f.id.clone())) {
            e.insert(now);
            new.push(f.clone());
        }
    }
    report(ctx, &findings, &new, memory, now, failed.is_empty()).await;
    if policy == Policy::Reap && owners_listed {
        let due: Vec<&Finding> = findings
            .iter()
            .filter(|f| !f.retained())
            .filter(|f| {
                memory.first_seen.get(&(f.kind, f.id.clone())).is_some_and(|t| {
                    now.duration_since(*t).as_secs() >= i64::try_from(grace.as_secs()).unwrap_or(i64::MAX)
                })
            })
            .collect();
        reap_due(ctx, workspaces, &due, &handles, &failed, &everywhere).await;
    }
    (findings.len(), failed)
}

/// Deletes the due findings whose owner is still missing, except those of a failed source.
async fn reap_due(
    ctx: &Context,
    workspaces: &Store<Workspace>,
    due: &[&Finding],
    handles: &HashMap<(OrphanKind, String, Option<String>), (sources::Source, Handle)>,
    failed: &[sources::Source],
    everywhere: &Live,
) {
    for f in due {
        // Re-checked just before the delete: an owner that appeared since the listing (a
        // Tenant recreated with the same slug adopts its tunnel) keeps its resource.
        let now_live = owners::complete(live_owners(ctx, workspaces), everywhere);
        if !classify::still_orphan(f, &now_live) {
            continue;
        }
        // A failed source's findings come from its last listing: never deleted on that.
        if let Some((s, h)) = handles.get(&(f.kind, f.id.clone(), f.owner_uid.clone()))
            && !failed.contains(s)
        {
            reap::reap(ctx, f, h, &now_live).await;
        }
    }
}

/// Every Workspace and Tenant that exists, and whether this scan listed them (else the last list
/// stands in, and the scan reaps nothing).
async fn every_owner(ctx: &Context, memory: &mut Memory) -> (Live, bool) {
    match owners::everywhere(&ctx.client).await {
        Ok(all) => {
            memory.everywhere = Some(all.clone());
            (all, true)
        }
        Err(e) => {
            tracing::warn!(error = %e, "failed to list every Workspace and Tenant; this orphan scan reaps nothing");
            (memory.everywhere.clone().unwrap_or_default(), false)
        }
    }
}

/// After a restart, a finding already listed in a Tenant's status keeps its `detectedAt` (the
/// grace period does not start again).
fn seed(ctx: &Context, memory: &mut Memory) {
    for t in ctx.tenants.state() {
        for o in t.status.iter().flat_map(|s| s.orphans.iter()) {
            if let Ok(at) = o.detected_at.parse::<Timestamp>() {
                memory.first_seen.insert((o.kind, o.id.clone()), at);
            }
        }
    }
    memory.seeded = true;
}

/// The cloud resource of a finding as an Event's related object.
pub(crate) fn resource_ref(f: &Finding) -> k8s_openapi::api::core::v1::ObjectReference {
    k8s_openapi::api::core::v1::ObjectReference {
        kind: Some(kind_str(f.kind).to_owned()),
        name: Some(f.id.clone()),
        ..Default::default()
    }
}

fn kind_str(k: OrphanKind) -> &'static str {
    match k {
        OrphanKind::Instance => "Instance",
        OrphanKind::SecurityGroup => "SecurityGroup",
        OrphanKind::Volume => "Volume",
        OrphanKind::Secret => "Secret",
        OrphanKind::DnsRecord => "DnsRecord",
        OrphanKind::Tunnel => "Tunnel",
        OrphanKind::IamRole => "IamRole",
        OrphanKind::InstanceProfile => "InstanceProfile",
    }
}

/// Metric by kind, a log line and an Event per new finding, and each live Tenant's status.
/// `complete`: every source listed (only such scans count in `molecule_orphan_scans_total`).
async fn report(ctx: &Context, findings: &[Finding], new: &[Finding], memory: &Memory, now: Timestamp, complete: bool) {
    for k in [
        OrphanKind::Instance,
        OrphanKind::SecurityGroup,
        OrphanKind::Volume,
        OrphanKind::Secret,
        OrphanKind::DnsRecord,
        OrphanKind::Tunnel,
        OrphanKind::IamRole,
        OrphanKind::InstanceProfile,
    ] {
        let n = findings.iter().filter(|f| f.kind == k && !f.retained()).count();
        ctx.metrics
            .orphans
            .get_or_create(&crate::metrics::OrphanLabel { kind: kind_str(k) })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    if complete {
        ctx.metrics.orphan_scans.inc();
    }
    let tenants: BTreeMap<String, Arc<Tenant>> = ctx.tenants.state().into_iter().map(|t| (t.name_any(), t)).collect();
    for f in new {
        let tenant = f.tenant.as_deref().unwrap_or("");
        let reason = if f.retained() {
            tracing::info!(kind = kind_str(f.kind), id = %f.id, region = %f.region, tenant, reason = %f.reason, "retained resource found");
            "RetainedResource"
        } else {
            tracing::warn!(kind = kind_str(f.kind), id = %f.id, region = %f.region, tenant, reason = %f.reason, "orphan found");
            "OrphanFound"
        };
        if let Some(t) = tenants.get(tenant) {
            let note = format!("{} {} in {}: {}", kind_str(f.kind), f.id, f.region, f.reason);
            publish_about(ctx, &t.object_ref(&()), Some(resource_ref(f)), !f.retained(), reason, note).await;
        }
    }
    let at = now.to_string();
    for slug in tenants.keys() {
        let mut mine: Vec<OrphanFinding> = findings
            .iter()
            .filter(|f| f.tenant.as_deref() == Some(slug.as_str()))
            .map(|f| OrphanFinding {
                kind: f.kind,
                id: f.id.clone(),
                region: f.region.clone(),
                detected_at: memory.first_seen.get(&(f.kind, f.id.clone())).copied().unwrap_or(now).to_string(),
                reason: f.reason.to_string(),
                retained: f.retained(),
            })
            .collect();
        let when = |o: &OrphanFinding| o.detected_at.parse::<Timestamp>().ok();
        mine.sort_by(|a, b| (when(a), a.kind, &a.id).cmp(&(when(b), b.kind, &b.id)));
        // Retained resources are listed for the record; orphanCount counts only real orphans.
        let count = mine.iter().filter(|o| !o.retained).count();
        mine.truncate(MAX_LISTED);
        let patch = json!({
            "apiVersion": "moleculesai.app/v1alpha1", "kind": "Tenant",
            "status": { "orphans": mine, "orphanCount": count, "lastOrphanScanTime": at },
        });
        let api: Api<Tenant> = Api::all(ctx.client.clone());
        if let Err(e) = api.patch_status(slug, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch)).await {
            tracing::warn!(tenant = %slug, error = %e, "failed to write the orphan findings into the Tenant status");
        }
    }
}
