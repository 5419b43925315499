//! `ORPHAN_POLICY=reap`: deletes an orphan past its grace period, and says so with its ID in the
//! log, an Event on its Tenant (when it has one) and a metric.

use kube::{Resource, ResourceExt};
use molecule_crds::v1alpha1::OrphanKind;

use super::classify::Finding;
use super::gather::Handle;
use crate::cloud::{CloudResult, ErrorKind};
use crate::context::{Account, Context};
use crate::reconcile::publish_about;

fn account<'a>(ctx: &'a Context, name: &str) -> Option<&'a Account> {
    if name == "main" {
        Some(ctx.main.as_ref())
    } else {
        ctx.canary.as_ref().ok().map(AsRef::as_ref).filter(|a| a.name == name)
    }
}

async fn delete(ctx: &Context, f: &Finding, h: &Handle) -> CloudResult<()> {
    match h {
        Handle::Ec2(a) | Handle::Secret(a) => {
            let Some(acct) = account(ctx, a) else { return Ok(()) };
            match f.kind {
                OrphanKind::Instance => acct.instances.terminate(std::slice::from_ref(&f.id)).await,
                OrphanKind::SecurityGroup => acct.network.delete(&f.id).await,
                OrphanKind::Volume => acct.volumes.delete(&f.id).await,
                OrphanKind::Secret => acct.secrets.delete(&f.id).await,
                OrphanKind::DnsRecord | OrphanKind::Tunnel => Ok(()),
            }
        }
        Handle::Route53 => {
            let Some(dns) = &ctx.dns else { return Ok(()) };
            let current = dns.get(&f.id, "A").await?;
            dns.delete(&f.id, "A", &current).await
        }
        Handle::CfRecords(ids) => {
            let Some(cf) = &ctx.tunnels else { return Ok(()) };
            // The CNAME first, then its ownership record: never an unowned CNAME left behind.
            for r in cf.records("CNAME", &f.id).await? {
                cf.delete_record(&r.id).await?;
            }
            for id in ids {
                cf.delete_record(id).await?;
            }
            Ok(())
        }
        Handle::Tunnel => match &ctx.tunnels {
            Some(cf) => cf.delete(&f.id).await,
            None => Ok(()),
        },
    }
}

/// Deletes one orphan; failures are logged and retried by the next scan.
pub async fn reap(ctx: &Context, f: &Finding, h: &Handle) {
    let kind = super::kind_str(f.kind);
    match delete(ctx, f, h).await {
        Ok(()) => {
            tracing::warn!(kind, id = %f.id, region = %f.region, tenant = f.tenant.as_deref().unwrap_or(""), reason = %f.reason, "orphan reaped");
            ctx.metrics.orphans_reaped.get_or_create(&crate::metrics::OrphanLabel { kind }).inc();
            let tenant = f.tenant.as_deref().and_then(|s| ctx.tenants.state().into_iter().find(|t| t.name_any() == s));
            if let Some(t) = tenant {
                let note = format!("deleted orphan {kind} {} in {} ({})", f.id, f.region, f.reason);
                let related = Some(super::resource_ref(f));
                publish_about(ctx, &t.object_ref(&()), related, true, "OrphanReaped", note).await;
            }
        }
        Err(e) if e.kind == ErrorKind::InUse => {
            tracing::info!(kind, id = %f.id, error = %e, "orphan still in use; the next scan retries");
        }
        Err(e) => tracing::warn!(kind, id = %f.id, error = %e, "failed to reap an orphan; the next scan retries"),
    }
}
