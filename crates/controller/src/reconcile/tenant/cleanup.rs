//! The delete path of a Tenant: the erasure ([`erase`]), then the receipt, then (by returning
//! Ok) the finalizer.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use molecule_crds::v1alpha1::{Tenant, TenantPhase};

use super::controller::Reconciler;
use super::scope::finish;
use super::{account_for, erase, hostname, owner_of, receipt};
use crate::context::{Account, Context};
use crate::reconcile::{Error, publish};

/// The delete path: the erasure, then the receipt, then (by returning Ok) the finalizer.
pub async fn cleanup(t: &Tenant, r: &Reconciler) -> Result<Action, Error> {
    let ctx = r.ctx.as_ref();
    let (slug, owner) = (t.name_any(), owner_of(t));
    let now_ts = Timestamp::now();
    let old = t.status.clone().unwrap_or_default();
    let mut st = old.clone();
    let receipt_name = receipt::name(&slug, &owner.uid);
    let mut rc = receipt::load(ctx, &receipt_name).await?.unwrap_or_else(|| receipt::Receipt {
        tenant: slug.clone(),
        tenant_uid: owner.uid.clone(),
        started_at: now_ts.to_string(),
        ..receipt::Receipt::default()
    });
    if st.phase != Some(TenantPhase::Erasing) {
        tracing::info!(tenant = %slug, uid = %owner.uid, receipt = %receipt_name, "tenant erasure started");
        let ns = &ctx.tenant.operator_namespace;
        let note = format!("erasing everything tenant {slug} owns; receipt {ns}/{receipt_name}");
        publish(ctx, &t.object_ref(&()), false, "ErasureStarted", note).await;
    }
    st.phase = Some(TenantPhase::Erasing);
    let outcome = match erasure_accounts(ctx, t) {
        Ok(accounts) => erase(r, t, &accounts, &mut rc, &receipt_name, now_ts).await?,
        Err(e) => Err(("Workspaces", e)),
    };
    match outcome {
        Ok(()) => {
            completed(ctx, t, &rc, &receipt_name).await;
            Ok(Action::await_change())
        }
        Err((step, e)) => {
            erase::blocked_status(&mut st, t, ctx, &rc.started_at, &receipt_name, step, &e, now_ts);
            finish(ctx, t, &old, &st).await?;
            Err(e)
        }
    }
}

/// Runs the erasure steps over `accounts` and saves the receipt when it moved (or completed).
async fn erase(
    r: &Reconciler,
    t: &Tenant,
    accounts: &[Arc<Account>],
    rc: &mut receipt::Receipt,
    receipt_name: &str,
    now: Timestamp,
) -> Result<Result<(), (&'static str, Error)>, Error> {
    let ctx = r.ctx.as_ref();
    let owner = owner_of(t);
    let host = hostname(&owner.name, &ctx.tenant.base_domain);
    let before = rc.clone();
    let accounts: Vec<&Account> = accounts.iter().map(AsRef::as_ref).collect();
    let now = now.to_string();
    let mut erasure = erase::Erasure {
        ctx,
        memory: &r.memory,
        tenant: t,
        owner: &owner,
        hostname: &host,
        workspaces: r.workspaces.clone(),
        accounts,
        receipt: &mut *rc,
        now: now.clone(),
    };
    let outcome = erasure.run().await;
    if *rc != before || outcome.is_ok() {
        if outcome.is_ok() {
            rc.completed_at.get_or_insert(now);
        }
        receipt::save(ctx, receipt_name, rc, Some(&before)).await?;
        ctx.failpoints.hit("tenant.erase.after-progress").await;
    }
    Ok(outcome)
}

/// Says that the erasure completed: log, Event, metric.
async fn completed(ctx: &Context, t: &Tenant, rc: &receipt::Receipt, receipt_name: &str) {
    let (slug, n, ns) = (t.name_any(), rc.resources.len(), &ctx.tenant.operator_namespace);
    let uid = t.uid().unwrap_or_default();
    tracing::info!(tenant = %slug, uid = %uid, resources = n, receipt = %receipt_name, "tenant erasure completed");
    let note = format!("tenant {slug} erased: {n} resources confirmed gone; receipt {ns}/{receipt_name}");
    publish(ctx, &t.object_ref(&()), false, "ErasureCompleted", note).await;
    ctx.metrics.erasures.inc();
}

/// The accounts an erasure looks in: the Tenant's own first, then every other one reachable.
/// A Tenant whose own account is unreachable waits: erasing the rest and calling it complete
/// would leave its resources behind unseen.
fn erasure_accounts(ctx: &Context, t: &Tenant) -> Result<Vec<Arc<Account>>, Error> {
    let own = account_for(ctx, t).map_err(|(_, why)| {
        Error::waiting_for(format!("the canary account to erase the Tenant: {why}"), Duration::from_mins(1))
    })?;
    let others = ctx.accounts().into_iter().filter(|a| a.name != own.name);
    Ok(std::iter::once(own.clone()).chain(others).collect())
}
