//! The Tenant controller: its watches (the operator's one Tenant watch, the one Workspace watch
//! for usage, the fleet caches' changes) and the wiring of the apply path and the erasure.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::Event as Finalizer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use molecule_crds::v1alpha1::{Tenant, Workspace};

use super::scope::Scope;
use super::wakes::{self, Gone, UsageWakes};
use super::{FINALIZER, Memory, apply, cleanup};
use crate::context::{Account, Context};
use crate::reconcile::finalized::{self, RecentUids};
use crate::reconcile::{Error, broadcast_stream};

/// The reconciler's state.
pub struct Reconciler {
    /// Shared context.
    pub ctx: Arc<Context>,
    /// Every Workspace this operator sees (usage).
    pub workspaces: Store<Workspace>,
    /// Memory between reconciles.
    pub memory: Arc<Memory>,
    /// The Tenants whose finalizer this process removed (an erasure finishes once).
    pub finalized: RecentUids,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler").finish_non_exhaustive()
    }
}

/// Runs the Tenant controller until shutdown, on the operator's one Tenant watch
/// (`tenant_events`, its store in the Context). `workspace_events` are the operator's one
/// Workspace watch (shared with the Workspace controller) and the Workspaces that left it: a
/// Workspace wakes its Tenant when its usage changes, its delete starts or it is gone
/// ([`wakes`]).
pub async fn run(
    ctx: Arc<Context>,
    tenant_events: impl futures::Stream<Item = Arc<Tenant>> + Send + 'static,
    workspace_events: (
        impl futures::Stream<Item = Arc<Workspace>> + Send + 'static,
        impl futures::Stream<Item = Gone> + Send + 'static,
    ),
    workspaces: Store<Workspace>,
    memory: Arc<Memory>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = Controller::for_shared_stream(tenant_events, ctx.tenants.clone());
    let wakes = Arc::new(UsageWakes::new(workspaces.clone()));
    let (changes, gone) = workspace_events;
    let w = wakes.clone();
    let changes = changes.filter_map(move |ws| futures::future::ready(w.on_change(&ws)));
    let gone = gone.map(move |g| wakes.on_gone(&g));
    let usage = wakes::throttle(futures::stream::select(changes, gone), wakes::WAKE_EVERY);
    let cloud = futures::stream::select(account_changes(&ctx.main), canary_changes(&ctx));
    let concurrency = ctx.settings.concurrency;
    let r = Arc::new(Reconciler { ctx, workspaces, memory, finalized: RecentUids::default() });
    controller
        .reconcile_on(futures::stream::select(cloud, usage))
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, r)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// The Tenants whose cloud state changed in `acct`'s fleet cache.
fn account_changes(acct: &Account) -> BoxStream<'static, ObjectRef<Tenant>> {
    broadcast_stream(acct.cache.subscribe())
        .filter_map(|o| async move { (o.kind == "Tenant").then(|| ObjectRef::<Tenant>::new(&o.name)) })
        .boxed()
}

/// Once the canary account is usable (at start, or later after a failure): every canary Tenant
/// (they waited for it), then the changes of its fleet cache.
fn canary_changes(ctx: &Arc<Context>) -> BoxStream<'static, ObjectRef<Tenant>> {
    let (slot, tenants) = (ctx.canary.clone(), ctx.tenants.clone());
    futures::stream::once(async move { slot.usable().await })
        .flat_map(move |acct| {
            let waiting: Vec<ObjectRef<Tenant>> =
                tenants.state().iter().filter(|t| t.spec.canary).map(|t| ObjectRef::from_obj(t.as_ref())).collect();
            futures::stream::iter(waiting).chain(account_changes(&acct))
        })
        .boxed()
}

async fn reconcile(t: Arc<Tenant>, r: Arc<Reconciler>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let ctx = r.ctx.clone();
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let key = format!("tenant/{}", t.name_any());
    if crate::reconcile::is_paused(t.as_ref()) {
        let res = crate::reconcile::paused::tenant(&ctx, &t).await;
        crate::reconcile::record(&ctx, "Tenant", &key, started, &res);
        return res;
    }
    let res = finalized::run(&api, FINALIZER, t, &r.finalized, |ev| async {
        match ev {
            Finalizer::Apply(t) => {
                let mut scope = Scope::new(&ctx, &t);
                let res = apply::converge(&mut scope, &r).await;
                scope.close(res).await
            }
            Finalizer::Cleanup(t) => cleanup::cleanup(&t, &r).await,
        }
    })
    .await;
    crate::reconcile::record(&ctx, "Tenant", &key, started, &res);
    res
}

// kube-runtime's error policy signature takes the Arcs by value.
#[allow(clippy::needless_pass_by_value)]
fn error_policy(t: Arc<Tenant>, e: &Error, r: Arc<Reconciler>) -> Action {
    crate::reconcile::requeue_after(&r.ctx, "Tenant", &format!("tenant/{}", t.name_any()), e)
}
