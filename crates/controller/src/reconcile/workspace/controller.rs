//! The Workspace controller: its watches (the operator's one Workspace watch, the display Leases,
//! the fleet cache's changes, the Tenants whose Workspace-facing parts changed) and the wiring of
//! the apply path and the delete path behind the finalizer.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::Event as Finalizer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use molecule_crds::v1alpha1::Workspace;

use super::admit::Admission;
use super::scope::Scope;
use super::{FINALIZER, apply, delete, display};
use crate::context::Context;
use crate::reconcile::finalized::{self, RecentUids};
use crate::reconcile::{Error, broadcast_stream};

/// The reconciler's state: the Context, the watch caches and the admission ledger.
pub struct Reconciler {
    /// Shared context.
    pub ctx: Arc<Context>,
    /// Every Workspace, from the controller's own watch.
    pub workspaces: Store<Workspace>,
    /// The display Leases, from the watch that also triggers their Workspaces.
    pub leases: Store<Lease>,
    /// Per-tenant admission ledger.
    pub admission: Admission,
    /// The Workspaces whose finalizer this process removed (a delete finishes once).
    pub finalized: RecentUids,
    /// The deleting Workspaces whose secret this process confirmed deleted (the later passes,
    /// waiting for the DNS delete, do not look it up again).
    pub secrets_gone: RecentUids,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler").finish_non_exhaustive()
    }
}

/// Runs the Workspace controller until shutdown, on the operator's one Workspace watch (`events`
/// and its `workspaces` store, shared with the Tenant controller). `tenant_changes` names the
/// Tenants that changed (from the operator's one Tenant watch); their Workspaces are reconciled.
pub async fn run(
    ctx: Arc<Context>,
    events: impl futures::Stream<Item = Arc<Workspace>> + Send + 'static,
    workspaces: Store<Workspace>,
    tenant_changes: tokio::sync::broadcast::Receiver<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let controller = Controller::for_shared_stream(events, workspaces.clone());
    let by_tenant = workspaces.clone();
    let cloud_changes = broadcast_stream(ctx.main.cache.subscribe()).filter_map(|o| async move {
        (o.kind == "Workspace").then(|| ObjectRef::new(&o.name).within(o.namespace.as_deref().unwrap_or_default()))
    });
    let tenant_refs = broadcast_stream(tenant_changes).flat_map(move |name| {
        let refs: Vec<ObjectRef<Workspace>> = by_tenant
            .state()
            .into_iter()
            .filter(|w| w.spec.tenant == name)
            .map(|w| ObjectRef::from_obj(w.as_ref()))
            .collect();
        futures::stream::iter(refs)
    });
    let lease_cfg = watcher::Config::default().labels(&format!("{}=true", display::LEASE_LABEL));
    let (leases, lease_writer) = kube::runtime::reflector::store::<Lease>();
    let lease_events = watcher(Api::<Lease>::all(client), lease_cfg)
        .default_backoff()
        .modify(crate::bounded::slim)
        .reflect(lease_writer)
        .touched_objects();
    let concurrency = ctx.settings.concurrency;
    let reconciler = Arc::new(Reconciler {
        ctx,
        workspaces,
        leases,
        admission: Admission::default(),
        finalized: RecentUids::default(),
        secrets_gone: RecentUids::default(),
    });
    controller
        .owns_stream(lease_events)
        .reconcile_on(futures::stream::select(cloud_changes, tenant_refs))
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, reconciler)
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn key(ws: &Workspace) -> String {
    format!("{}/{}", ws.namespace().unwrap_or_default(), ws.name_any())
}

async fn reconcile(ws: Arc<Workspace>, r: Arc<Reconciler>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let ctx = r.ctx.clone();
    let api: Api<Workspace> = Api::namespaced(ctx.client.clone(), &ws.namespace().unwrap_or_default());
    let key = key(&ws);
    if crate::reconcile::is_paused(ws.as_ref()) {
        let res = crate::reconcile::paused::workspace(&ctx, &ws).await;
        crate::reconcile::record(&ctx, "Workspace", &key, started, &res);
        return res;
    }
    // A Tenant missing from a store that has not been filled yet is not a missing Tenant.
    crate::reconcile::store_ready(&ctx.tenants).await;
    let res = finalized::run(&api, FINALIZER, ws, &r.finalized, |ev| async {
        match ev {
            Finalizer::Apply(ws) => {
                let mut scope = Scope::new(&ctx, &ws);
                let res = apply::converge(&mut scope, &r).await;
                scope.close(res).await
            }
            Finalizer::Cleanup(ws) => delete::cleanup(&ws, &r).await,
        }
    })
    .await;
    crate::reconcile::record(&ctx, "Workspace", &key, started, &res);
    res
}

// kube-runtime's error policy signature takes the Arcs by value.
#[allow(clippy::needless_pass_by_value)]
fn error_policy(ws: Arc<Workspace>, e: &Error, r: Arc<Reconciler>) -> Action {
    crate::reconcile::requeue_after(&r.ctx, "Workspace", &key(&ws), e)
}
