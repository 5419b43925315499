//! The tenant's edge: its Cloudflare tunnel (ingress and token) and the proxied CNAME with its
//! ownership record, as steps of the Tenant reconcile that say how they went in status.

use std::time::Duration;

use kube::{Resource, ResourceExt};
use molecule_crds::v1alpha1::{Tenant, TenantStatus};

use super::{cloudflare, owner_of, status};
use crate::context::Context;
use crate::reconcile::{Error, publish};

/// How long a tunnel found and configured stays trusted without asking Cloudflare again (its
/// deletion outside the operator is noticed within this time; a Workspace change does not cost a
/// Cloudflare call).
const TUNNEL_RECHECK: Duration = Duration::from_mins(5);

/// The tunnel, its ingress and its token (read once per process): `None` without Cloudflare.
pub(super) async fn tunnel_step(
    ctx: &Context,
    memory: &super::Memory,
    t: &Tenant,
    old: &TenantStatus,
    st: &mut TenantStatus,
    host: &str,
    now: &str,
) -> Result<Option<(String, String)>, Error> {
    let generation = t.metadata.generation;
    let Some(cf) = &ctx.tunnels else {
        let msg = "CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_ZONE_ID are not all set: the tenant has no tunnel";
        status::set(st, "TunnelReady", false, "CloudflareNotConfigured", msg, generation, now);
        return Ok(None);
    };
    let known = old.tunnel_id.clone().filter(|_| molecule_crds::conditions::is_true(&old.conditions, "TunnelReady"));
    let memo = |id: &str| memory.tunnel_tokens.lock().ok().and_then(|m| m.get(id).cloned());
    if let Some(id) = &known
        && let Some((token, checked)) = memo(id)
        && checked.elapsed() < TUNNEL_RECHECK
    {
        return Ok(Some((id.clone(), token)));
    }
    let name = cloudflare::tunnel_name(&ctx.identity, &t.name_any());
    let (id, created) = cloudflare::ensure_tunnel(cf.as_ref(), &name, host, known.as_deref()).await?;
    let token = match memo(&id) {
        Some((tok, _)) => tok,
        None => cf.token(&id).await?,
    };
    if let Ok(mut m) = memory.tunnel_tokens.lock() {
        m.insert(id.clone(), (token.clone(), std::time::Instant::now()));
    }
    if created {
        let note = format!("Cloudflare tunnel {name} ({id}) created for {host}");
        publish(ctx, &t.object_ref(&()), false, "TunnelCreated", note).await;
    }
    st.tunnel_id = Some(id.clone());
    let msg = format!("tunnel {id} routes {host} to the platform");
    status::set(st, "TunnelReady", true, "TunnelConfigured", msg, generation, now);
    Ok(Some((id, token)))
}

/// The proxied CNAME and its ownership record (skipped when the last status shows them written
/// for this tunnel).
pub(super) async fn cname_step(
    ctx: &Context,
    t: &Tenant,
    old: &TenantStatus,
    st: &mut TenantStatus,
    host: &str,
    tunnel: Option<&str>,
    now: &str,
) -> Result<(), Error> {
    let generation = t.metadata.generation;
    let (Some(cf), Some(id)) = (&ctx.tunnels, tunnel) else {
        let msg = "the CNAME points at the tunnel, which does not exist";
        status::set(st, "DnsReady", false, "NoTunnel", msg, generation, now);
        return Ok(());
    };
    let already = old.tunnel_id.as_deref() == Some(id)
        && molecule_crds::conditions::get(&old.conditions, "DnsReady")
            .is_some_and(|c| c.reason == "RecordWritten" && c.status == molecule_crds::v1alpha1::ConditionStatus::True);
    let res = if already {
        cloudflare::Cname::Ready
    } else {
        cloudflare::ensure_cname(cf.as_ref(), &ctx.identity, &owner_of(t), host, id).await?
    };
    match res {
        cloudflare::Cname::Ready => {
            let msg = format!("proxied CNAME {host} → {} and its ownership record", cloudflare::target(id));
            status::set(st, "DnsReady", true, "RecordWritten", msg, generation, now);
        }
        cloudflare::Cname::NotOurs(m) => status::set(st, "DnsReady", false, "RecordNotOurs", m, generation, now),
    }
    Ok(())
}
