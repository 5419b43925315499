//! `ORPHAN_POLICY=reap`: deletes an orphan past its grace period, and says so with its ID in the
//! log, an Event on its Tenant (when it has one) and a metric.

use kube::{Resource, ResourceExt};
use molecule_crds::v1alpha1::OrphanKind;

use super::classify::{Finding, Live};
use super::gather::Handle;
use crate::cloud::marks::owner_record_name;
use crate::cloud::{CloudError, CloudResult, ErrorKind, Volume};
use crate::context::Context;
use crate::reconcile::publish_about;
use crate::reconcile::teardown::{self, Outcome};

/// A delete the cloud refused because the resource is still used: the next scan retries.
fn in_use(f: &Finding, o: Outcome) -> CloudResult<()> {
    match o {
        Outcome::InUse { code, message } => {
            Err(CloudError { kind: ErrorKind::InUse, action: "reap orphan", target: f.id.clone(), code, message })
        }
        Outcome::Deleted | Outcome::Detaching => Ok(()),
    }
}

fn unavailable(f: &Finding, what: &str) -> CloudError {
    CloudError {
        kind: ErrorKind::Rejected,
        action: "reap orphan",
        target: f.id.clone(),
        code: "Unavailable".into(),
        message: format!("{what} is not configured or not reachable"),
    }
}

/// Whether the DNS ownership marks at a name all point at owners that are gone (a mark of a
/// live owner beside a leftover one means the name is in use).
fn marks_all_dead(ctx: &Context, txt: &[String], live: &Live) -> bool {
    txt.iter().filter_map(|t| ctx.identity.our_mark(t)).all(|m| !live.owners.contains_key(&m.owner_uid))
}

pub(crate) async fn delete(ctx: &Context, f: &Finding, h: &Handle, live: &Live) -> CloudResult<bool> {
    match h {
        Handle::Ec2(a) | Handle::Secret(a) => {
            let acct = ctx.account(a).ok_or_else(|| unavailable(f, &format!("the {a} account")))?;
            let acct = acct.as_ref();
            let uid = f.owner_uid.clone().unwrap_or_default();
            match f.kind {
                OrphanKind::Instance => teardown::terminate(acct, std::slice::from_ref(&f.id)).await?,
                OrphanKind::SecurityGroup => in_use(f, teardown::delete_group(acct, &f.id).await?)?,
                OrphanKind::Volume => {
                    let v = Volume { id: f.id.clone(), state: String::new(), attached_to: None, ..Volume::default() };
                    in_use(f, teardown::delete_volume(acct, &uid, &v, false).await?)?;
                }
                OrphanKind::Secret => acct.secrets.delete(&f.id).await?,
                OrphanKind::DnsRecord | OrphanKind::Tunnel | OrphanKind::IamRole | OrphanKind::InstanceProfile => {
                    return Err(unavailable(f, "this handle"));
                }
            }
            Ok(true)
        }
        Handle::Iam(a) => {
            let acct = ctx.account(a).ok_or_else(|| unavailable(f, &format!("the {a} account")))?;
            match f.kind {
                OrphanKind::InstanceProfile => acct.identities.delete_profile(&f.id).await?,
                OrphanKind::IamRole => acct.identities.delete_role(&f.id).await?,
                _ => return Err(unavailable(f, "this handle")),
            }
            Ok(true)
        }
        Handle::Route53 => {
            let dns = ctx.dns.as_ref().ok_or_else(|| unavailable(f, "WORKSPACE_HOSTED_ZONE_ID"))?;
            let current = dns.get(&f.id, "A").await?;
            if !marks_all_dead(ctx, &current.txt, live) {
                return Ok(false);
            }
            dns.delete(&f.id, "A", &current).await?;
            Ok(true)
        }
        Handle::CfRecords(ids) => {
            let cf = ctx.tunnels.as_ref().ok_or_else(|| unavailable(f, "Cloudflare"))?;
            // The CNAME goes only when no live owner's mark stays beside it; then the leftover
            // mark. A CNAME is never left without its ownership record.
            let marks = cf.records("TXT", &owner_record_name(&f.id)).await?;
            let live_marks = marks
                .iter()
                .filter(|r| !ids.contains(&r.id))
                .any(|r| ctx.identity.our_mark(&r.content).is_some_and(|m| live.owners.contains_key(&m.owner_uid)));
            if !live_marks {
                for r in cf.records("CNAME", &f.id).await? {
                    cf.delete_record(&r.id).await?;
                }
            }
            for id in ids {
                cf.delete_record(id).await?;
            }
            Ok(true)
        }
        Handle::Tunnel => {
            let cf = ctx.tunnels.as_ref().ok_or_else(|| unavailable(f, "Cloudflare"))?;
            cf.delete(&f.id).await?;
            Ok(true)
        }
    }
}

/// Deletes one orphan; failures are logged and retried by the next scan.
pub async fn reap(ctx: &Context, f: &Finding, h: &Handle, live: &Live) {
    let kind = super::kind_str(f.kind);
    match delete(ctx, f, h, live).await {
        Ok(false) => tracing::info!(kind, id = %f.id, "orphan not reaped: a live owner's mark is beside it"),
        Ok(true) => {
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
