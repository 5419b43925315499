//! The tenant's Cloudflare side: a named, remotely managed tunnel (found by name before it is
//! created) with its ingress for the tenant hostname, and a proxied CNAME to it beside a TXT
//! ownership record. A CNAME without our ownership record is never touched.

use crate::bootstrap::PLATFORM_PORT;
use crate::cloud::marks::owner_record_name;
use crate::cloud::tags::{Identity, Owner};
use crate::cloud::{CfRecord, Tunnels};
use crate::reconcile::Error;

/// The tunnel's name: unique per operator id, environment and tenant (rendered by
/// [`Identity::tunnel_name`], which also parses it back).
pub fn tunnel_name(identity: &Identity, slug: &str) -> String {
    identity.tunnel_name(slug)
}

/// Where the tunnel sends the hostname's traffic: the platform, on the VM's loopback.
pub fn service() -> String {
    format!("http://localhost:{PLATFORM_PORT}")
}

/// The CNAME's target.
pub fn target(tunnel_id: &str) -> String {
    format!("{tunnel_id}.cfargotunnel.com")
}

/// The tunnel, created if missing; its ingress is written when `configure` (new tunnel, or not
/// known ready). Returns (tunnel id, whether it was created).
pub async fn ensure_tunnel(
    cf: &dyn Tunnels,
    name: &str,
    hostname: &str,
    known_ready: Option<&str>,
) -> Result<(String, bool), Error> {
    let (id, created) = match cf.find(name).await? {
        Some(t) => (t.id, false),
        None => (cf.create(name).await?.id, true),
    };
    if created || known_ready != Some(id.as_str()) {
        cf.configure(&id, hostname, &service()).await?;
    }
    Ok((id, created))
}

/// What the zone holds for the tenant hostname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cname {
    /// Ours, pointing at the tunnel.
    Ready,
    /// A CNAME we do not own is there; left alone.
    NotOurs(String),
}

/// The proxied CNAME to the tunnel and its ownership TXT.
pub async fn ensure_cname(
    cf: &dyn Tunnels,
    identity: &Identity,
    owner: &Owner,
    hostname: &str,
    tunnel_id: &str,
) -> Result<Cname, Error> {
    let mark = identity.dns_mark(owner);
    let txt = cf.records("TXT", &owner_record_name(hostname)).await?;
    let ours = txt.iter().any(|r| mark.matches(&r.content));
    let cnames = cf.records("CNAME", hostname).await?;
    let want = target(tunnel_id);
    if !cnames.is_empty() && !ours {
        return Ok(Cname::NotOurs(format!(
            "a CNAME {hostname} exists without our ownership record {}; it is left alone",
            owner_record_name(hostname)
        )));
    }
    if !ours {
        // The mark first: a crash between the two leaves a mark, never an unowned CNAME.
        cf.create_record("TXT", &owner_record_name(hostname), &mark.render()).await?;
    }
    if cnames.iter().any(|r| r.content == want) {
        return Ok(Cname::Ready);
    }
    for stale in &cnames {
        cf.delete_record(&stale.id).await?;
    }
    cf.create_record("CNAME", hostname, &want).await?;
    Ok(Cname::Ready)
}

/// Our records at the hostname (CNAMEs, then their ownership TXT), if the TXT is ours.
pub async fn owned_records(
    cf: &dyn Tunnels,
    identity: &Identity,
    owner: &Owner,
    hostname: &str,
) -> Result<Vec<CfRecord>, Error> {
    let mark = identity.dns_mark(owner);
    let txt: Vec<CfRecord> = cf
        .records("TXT", &owner_record_name(hostname))
        .await?
        .into_iter()
        .filter(|r| mark.matches(&r.content))
        .collect();
    if txt.is_empty() {
        return Ok(vec![]);
    }
    let mut out = cf.records("CNAME", hostname).await?;
    out.extend(txt);
    Ok(out)
}
