//! What carries our marks, everywhere the operator creates things: the fleet caches (instances,
//! groups, volumes, both accounts; no call of their own), Secrets Manager and IAM (both accounts), the
//! Route 53 zone of workspace hostnames, and Cloudflare (tunnels by name, records by ownership
//! mark). Each listing is paginated and bounded.

use std::collections::BTreeMap;

use jiff::Timestamp;
use molecule_crds::v1alpha1::OrphanKind;

use super::classify::Marked;
use crate::cloud::CloudResult;
use crate::cloud::identities::IamKind;
use crate::cloud::marks::owner_record_host;
use crate::cloud::tags::{OWNER, OWNER_KIND, OWNER_UID, RETAINED, TENANT};
use crate::context::{Account, Context};

/// How to remove a finding (kept beside it for `reap`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handle {
    /// An instance, group or volume in an account (by name: main or canary).
    Ec2(&'static str),
    /// A secret in an account.
    Secret(&'static str),
    /// A Route 53 A record and its ownership TXT.
    Route53,
    /// Cloudflare records (the TXT mark and the CNAME beside it), by record ID.
    CfRecords(Vec<String>),
    /// A Cloudflare tunnel.
    Tunnel,
    /// An IAM role or instance profile in an account.
    Iam(&'static str),
}

/// A marked resource and how to remove it.
pub type Item = (Marked, Handle);

fn from_tags(kind: OrphanKind, id: &str, region: &str, tags: &BTreeMap<String, String>) -> Marked {
    Marked {
        kind,
        id: id.to_owned(),
        region: region.to_owned(),
        owner_kind: tags.get(OWNER_KIND).cloned(),
        owner_uid: tags.get(OWNER_UID).cloned(),
        owner: tags.get(OWNER).cloned(),
        tenant: tags.get(TENANT).cloned(),
        alive: true,
        launched_at: None,
        attempt: None,
        retained: tags.get(RETAINED).is_some_and(|v| v == "true"),
    }
}

/// Instances, groups and volumes of an account, from its fleet cache.
pub fn ec2(acct: &Account) -> Vec<Item> {
    let (instances, groups, volumes) = acct.cache.all();
    let mut out = Vec::new();
    for i in instances {
        let mut m = from_tags(OrphanKind::Instance, &i.id, &acct.region, &i.tags);
        m.alive = i.state.is_alive();
        m.launched_at = i.launch_time.as_deref().and_then(|t| t.parse::<Timestamp>().ok());
        m.attempt = i.tag(crate::cloud::tags::LAUNCH_ATTEMPT).and_then(|a| a.parse().ok());
        out.push((m, Handle::Ec2(acct.name)));
    }
    for g in groups {
        out.push((from_tags(OrphanKind::SecurityGroup, &g.id, &acct.region, &g.tags), Handle::Ec2(acct.name)));
    }
    for v in volumes.into_iter().filter(|v| !matches!(v.state.as_str(), "deleting" | "deleted")) {
        out.push((from_tags(OrphanKind::Volume, &v.id, &acct.region, &v.tags), Handle::Ec2(acct.name)));
    }
    out
}

/// The account's secrets with our managed-by and env tags.
pub async fn secrets(ctx: &Context, acct: &Account) -> CloudResult<Vec<Item>> {
    let list = acct.secrets.list(&ctx.identity.filter()).await?;
    Ok(list
        .into_iter()
        .map(|s| (from_tags(OrphanKind::Secret, &s.arn, &acct.region, &s.tags), Handle::Secret(acct.name)))
        .collect())
}

/// The account's IAM roles and instance profiles under this operator's path
/// ([`crate::cloud::tags::Identity::iam_path`]) with our managed-by and env tags (IAM is global:
/// region `global`).
pub async fn iam(ctx: &Context, acct: &Account) -> CloudResult<Vec<Item>> {
    let list = acct.identities.list(&ctx.identity.iam_path(&ctx.tenant.iam.path)).await?;
    Ok(list
        .into_iter()
        .filter(|e| ctx.identity.owns(&e.tags))
        .map(|e| {
            let kind = match e.kind {
                IamKind::Role => OrphanKind::IamRole,
                IamKind::InstanceProfile => OrphanKind::InstanceProfile,
            };
            (from_tags(kind, &e.name, "global", &e.tags), Handle::Iam(acct.name))
        })
        .collect())
}

/// Route 53 records under the workspace domain whose ownership mark is ours.
pub async fn route53(ctx: &Context) -> CloudResult<Vec<Item>> {
    let Some(dns) = &ctx.dns else { return Ok(vec![]) };
    let domain = ctx.settings.workspace_domain.trim_matches('.').to_owned();
    let mut out = Vec::new();
    for (name, txt) in dns.txt_under(&domain).await? {
        let Some(mark) = txt.iter().find_map(|t| ctx.identity.our_mark(t)) else { continue };
        // `<ws>[.<namespace>].<tenant>.<domain>`: the label before the domain is the tenant.
        let tenant = name.strip_suffix(&format!(".{domain}")).and_then(|h| h.rsplit('.').next()).map(str::to_owned);
        let m = Marked {
            kind: OrphanKind::DnsRecord,
            id: name.clone(),
            region: "global".into(),
            owner_kind: Some(mark.owner_kind),
            owner_uid: Some(mark.owner_uid),
            owner: Some(name),
            tenant,
            alive: true,
            launched_at: None,
            attempt: None,
            retained: false,
        };
        out.push((m, Handle::Route53));
    }
    Ok(out)
}

/// Cloudflare: tunnels named after our Tenants, and CNAMEs whose ownership record is ours.
pub async fn cloudflare(ctx: &Context) -> CloudResult<Vec<Item>> {
    let Some(cf) = &ctx.tunnels else { return Ok(vec![]) };
    let mut out = Vec::new();
    for t in cf.list_all().await? {
        let Some(slug) = ctx.identity.tunnel_slug(&t.name) else { continue };
        let m = Marked {
            kind: OrphanKind::Tunnel,
            id: t.id.clone(),
            region: "global".into(),
            owner_kind: Some("Tenant".into()),
            owner_uid: None,
            owner: Some(slug.to_owned()),
            tenant: Some(slug.to_owned()),
            alive: true,
            launched_at: None,
            attempt: None,
            retained: false,
        };
        out.push((m, Handle::Tunnel));
    }
    let base = format!(".{}", ctx.tenant.base_domain.trim_matches('.'));
    for r in cf.all_records("TXT").await? {
        let Some(host) = owner_record_host(&r.name) else { continue };
        let Some(mark) = ctx.identity.our_mark(&r.content) else { continue };
        let tenant = host.strip_suffix(&base).map(str::to_owned);
        let m = Marked {
            kind: OrphanKind::DnsRecord,
            id: host.to_owned(),
            region: "global".into(),
            owner_kind: Some(mark.owner_kind),
            owner_uid: Some(mark.owner_uid),
            owner: tenant.clone(),
            tenant,
            alive: true,
            launched_at: None,
            attempt: None,
            retained: false,
        };
        out.push((m, Handle::CfRecords(vec![r.id.clone()])));
    }
    Ok(out)
}
