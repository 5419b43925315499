//! The delete path of a Tenant: the erasure ([`erase`]), then the receipt, then (by returning
//! Ok) the finalizer.

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
    let slug = t.name_any();
    let owner = owner_of(t);
    let now_ts = Timestamp::now();
    let now = now_ts.to_string();
    let old = t.status.clone().unwrap_or_default();
    let mut st = old.clone();
    let receipt_name = receipt::name(&slug, &owner.uid);
    let mut rc = receipt::load(ctx, &receipt_name).await?.unwrap_or_else(|| receipt::Receipt {
        tenant: slug.clone(),
        tenant_uid: owner.uid.clone(),
        started_at: now.clone(),
        ..receipt::Receipt::default()
    });
    if st.phase != Some(TenantPhase::Erasing) {
        tracing::info!(tenant = %slug, uid = %owner.uid, receipt = %receipt_name, "tenant erasure started");
        publish(
            ctx,
            &t.object_ref(&()),
            false,
            "ErasureStarted",
            format!("erasing everything tenant {slug} owns; receipt {}/{receipt_name}", ctx.tenant.operator_namespace),
        )
        .await;
    }
    st.phase = Some(TenantPhase::Erasing);
    let before = rc.clone();
    let accounts = match erasure_accounts(ctx, t) {
        Ok(a) => a,
        Err(e) => {
            erase::blocked_status(&mut st, t, ctx, &rc.started_at, &receipt_name, "Workspaces", &e, now_ts);
            finish(ctx, t, &old, &st).await?;
            return Err(e);
        }
    };
    let host = hostname(&slug, &ctx.tenant.base_domain);
    let mut erasure = erase::Erasure {
        ctx,
        memory: &r.memory,
        tenant: t,
        owner: &owner,
        hostname: &host,
        accounts,
        receipt: &mut rc,
        now: now.clone(),
    };
    let outcome = erasure.run().await;
    if rc != before || outcome.is_ok() {
        if outcome.is_ok() {
            rc.completed_at.get_or_insert_with(|| now.clone());
        }
        receipt::save(ctx, &receipt_name, &rc).await?;
        ctx.failpoints.hit("tenant.erase.after-progress").await;
    }
    match outcome {
        Ok(()) => {
            let n = rc.resources.len();
            tracing::info!(tenant = %slug, uid = %owner.uid, resources = n, receipt = %receipt_name, "tenant erasure completed");
            publish(
                ctx,
                &t.object_ref(&()),
                false,
                "ErasureCompleted",
                format!(
                    "tenant {slug} erased: {n} resources confirmed gone; receipt {}/{receipt_name}",
                    ctx.tenant.operator_namespace
                ),
            )
            .await;
            ctx.metrics.erasures.inc();
            Ok(Action::await_change())
        }
        Err((step, e)) => {
            erase::blocked_status(&mut st, t, ctx, &rc.started_at, &receipt_name, step, &e, now_ts);
            finish(ctx, t, &old, &st).await?;
            Err(e)
        }
    }
}

/// The accounts an erasure looks in: the Tenant's own first, then every other one reachable.
/// A Tenant whose own account is unreachable waits: erasing the rest and calling it complete
/// would leave its resources behind unseen.
fn erasure_accounts<'a>(ctx: &'a Context, t: &Tenant) -> Result<Vec<&'a Account>, Error> {
    let own = account_for(ctx, t).map_err(|(_, why)| {
        Error::waiting_for(format!("the canary account to erase the Tenant: {why}"), Duration::from_mins(1))
    })?;
    let mut accounts: Vec<&Account> = vec![own.as_ref()];
    if own.name != "main" {
        accounts.push(ctx.main.as_ref());
    }
    if let Ok(c) = &ctx.canary
        && own.name != "canary"
    {
        accounts.push(c.as_ref());
    }
    Ok(accounts)
}
