//! The scan's sources, listed one by one. A source that fails (a listing error, or a fleet cache
//! that has not listed for a while) does not stop the scan: it is a warning in the log at every
//! scan, a count in `molecule_orphan_scan_source_failures_total{source}`, and a Warning Event on
//! the live Tenants when it starts failing. Its last good listing stands in for it, so its findings
//! stay in status (not dropped as if gone), and nothing it lists is reaped until it lists again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use kube::Resource;

use super::gather::{self, Item};
use crate::context::{Account, Context};
use crate::reconcile::publish_about;

/// A fleet cache older than this many refresh intervals (and at least [`EC2_STALE_MIN`]) counts
/// as a failed source: its contents are what AWS said some time ago.
const EC2_STALE_INTERVALS: u32 = 4;
/// The least age of a fleet cache that counts as stale (a listing of a large fleet takes seconds).
const EC2_STALE_MIN: Duration = Duration::from_mins(1);

/// Where the scan lists what carries its marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The main account's fleet cache (instances, groups, volumes).
    Ec2Main,
    /// The canary account's fleet cache.
    Ec2Canary,
    /// Secrets Manager in the main account.
    SecretsMain,
    /// Secrets Manager in the canary account.
    SecretsCanary,
    /// IAM roles and instance profiles in the main account.
    IamMain,
    /// IAM roles and instance profiles in the canary account.
    IamCanary,
    /// The Route 53 zone of workspace records.
    Route53,
    /// Cloudflare tunnels and TXT records.
    Cloudflare,
}

impl Source {
    /// The metric label and log value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ec2Main => "ec2-main",
            Self::Ec2Canary => "ec2-canary",
            Self::SecretsMain => "secrets-main",
            Self::SecretsCanary => "secrets-canary",
            Self::IamMain => "iam-main",
            Self::IamCanary => "iam-canary",
            Self::Route53 => "route53",
            Self::Cloudflare => "cloudflare",
        }
    }
}

/// Every source listed once.
#[derive(Debug, Default)]
pub struct Gathered {
    /// What each source listed, or its last good listing when it failed this time.
    pub items: Vec<(Source, Item)>,
    /// The sources that failed this time, with why.
    pub failed: BTreeMap<Source, String>,
}

/// The last good listing of each source, and which sources are failing.
#[derive(Debug, Default)]
pub struct SourceMemory {
    last: HashMap<Source, Vec<Item>>,
    failing: HashSet<Source>,
}

/// Why a fleet cache's contents are too old to decide on, if they are.
pub fn stale(last_refresh: Option<Timestamp>, refresh: Duration, now: Timestamp) -> Option<String> {
    let bound = (refresh * EC2_STALE_INTERVALS).max(EC2_STALE_MIN);
    let Some(at) = last_refresh else { return Some("the fleet cache has not listed yet".into()) };
    let age = now.duration_since(at).unsigned_abs();
    (age > bound).then(|| format!("the fleet cache last listed at {at}, more than {}s ago", bound.as_secs()))
}

fn ec2(ctx: &Context, acct: &Account) -> Result<Vec<Item>, String> {
    // Fed by EC2 notifications, the cache lists only every resync and is no staler for it.
    let interval = acct.cache.resync().unwrap_or(ctx.settings.refresh_interval);
    match stale(acct.cache.last_refresh(), interval, Timestamp::now()) {
        Some(why) => Err(why),
        None => Ok(gather::ec2(acct)),
    }
}

/// Lists every source; a failed one is replaced by its last good listing.
pub async fn gather_all(ctx: &Context, memory: &mut SourceMemory) -> Gathered {
    let text = |r: crate::cloud::CloudResult<Vec<Item>>| r.map_err(|e| e.to_string());
    let mut listed = vec![
        (Source::Ec2Main, ec2(ctx, &ctx.main)),
        (Source::SecretsMain, text(gather::secrets(ctx, &ctx.main).await)),
        (Source::IamMain, text(gather::iam(ctx, &ctx.main).await)),
    ];
    if let Ok(c) = &ctx.canary.get() {
        listed.push((Source::Ec2Canary, ec2(ctx, c)));
        listed.push((Source::SecretsCanary, text(gather::secrets(ctx, c).await)));
        listed.push((Source::IamCanary, text(gather::iam(ctx, c).await)));
    }
    listed.push((Source::Route53, text(gather::route53(ctx).await)));
    listed.push((Source::Cloudflare, text(gather::cloudflare(ctx).await)));
    merge(listed, memory)
}

/// Keeps each good listing for next time and stands the last one in for each failed source.
pub fn merge(listed: Vec<(Source, Result<Vec<Item>, String>)>, memory: &mut SourceMemory) -> Gathered {
    let mut out = Gathered::default();
    for (source, result) in listed {
        let items = match result {
            Ok(items) => {
                memory.last.insert(source, items.clone());
                items
            }
            Err(why) => {
                out.failed.insert(source, why);
                memory.last.get(&source).cloned().unwrap_or_default()
            }
        };
        out.items.extend(items.into_iter().map(|i| (source, i)));
    }
    out
}

/// The log line and metric of each failed source, an Event on every live Tenant when a source
/// starts failing, and a log line when it lists again.
pub async fn report(ctx: &Context, failed: &BTreeMap<Source, String>, memory: &mut SourceMemory) {
    for (source, why) in failed {
        let label = source.label();
        tracing::warn!(source = label, error = %why, "orphan scan source failed; its last findings are kept and nothing it lists is reaped");
        ctx.metrics.orphan_source_failures.get_or_create(&crate::metrics::SourceLabel { source: label }).inc();
        if memory.failing.insert(*source) {
            let note = format!(
                "orphan scan: the {label} listing failed ({why}); its last findings are kept and none is reaped until it lists again"
            );
            for t in ctx.tenants.state() {
                publish_about(ctx, &t.object_ref(&()), None, true, "OrphanScanIncomplete", note.clone()).await;
            }
        }
    }
    let recovered: Vec<Source> = memory.failing.iter().copied().filter(|s| !failed.contains_key(s)).collect();
    for s in recovered {
        memory.failing.remove(&s);
        tracing::info!(source = s.label(), "orphan scan source listed again");
    }
}

#[cfg(test)]
mod tests {
    use molecule_crds::v1alpha1::OrphanKind;

    use super::*;
    use crate::orphans::classify::Marked;
    use crate::orphans::gather::Handle;

    fn item(kind: OrphanKind, id: &str) -> Item {
        let m = Marked {
            kind,
            id: id.into(),
            region: "global".into(),
            owner_kind: Some("Tenant".into()),
            owner_uid: None,
            owner: Some("acme".into()),
            tenant: Some("acme".into()),
            alive: true,
            launched_at: None,
            attempt: None,
            retained: false,
        };
        (m, Handle::Tunnel)
    }

    #[test]
    fn a_failed_source_keeps_its_last_listing_and_the_others_report() {
        let mut mem = SourceMemory::default();
        let first = merge(
            vec![
                (Source::Ec2Main, Ok(vec![item(OrphanKind::Instance, "i-1")])),
                (Source::Cloudflare, Ok(vec![item(OrphanKind::Tunnel, "t-1")])),
            ],
            &mut mem,
        );
        assert!(first.failed.is_empty());
        assert_eq!(first.items.len(), 2);
        // Cloudflare fails: its tunnel is still there (from the last listing); EC2 reports anew.
        let second = merge(
            vec![
                (Source::Ec2Main, Ok(vec![item(OrphanKind::Instance, "i-2")])),
                (Source::Cloudflare, Err("HTTP 500".into())),
            ],
            &mut mem,
        );
        let ids: Vec<(Source, &str)> = second.items.iter().map(|(s, (m, _))| (*s, m.id.as_str())).collect();
        assert_eq!(ids, vec![(Source::Ec2Main, "i-2"), (Source::Cloudflare, "t-1")]);
        assert_eq!(second.failed.get(&Source::Cloudflare).map(String::as_str), Some("HTTP 500"));
        // A source that never listed has nothing to stand in.
        let third = merge(vec![(Source::Route53, Err("denied".into()))], &mut mem);
        assert!(third.items.is_empty() && third.failed.contains_key(&Source::Route53));
    }

    #[test]
    fn an_old_fleet_cache_is_a_failed_source() {
        let now = Timestamp::now();
        let refresh = Duration::from_secs(15);
        assert!(stale(None, refresh, now).is_some());
        assert!(stale(Some(now), refresh, now).is_none());
        let at = |secs: i64| now.checked_sub(jiff::SignedDuration::from_secs(secs)).ok();
        assert!(stale(at(59), refresh, now).is_none(), "within the one-minute floor");
        assert!(stale(at(61), refresh, now).is_some());
        assert!(stale(at(200), Duration::from_mins(1), now).is_none(), "four intervals of a slow refresh");
        assert!(stale(at(241), Duration::from_mins(1), now).is_some());
    }

    #[test]
    fn labels_are_bounded_and_distinct() {
        let all = [
            Source::Ec2Main,
            Source::Ec2Canary,
            Source::SecretsMain,
            Source::SecretsCanary,
            Source::Route53,
            Source::Cloudflare,
        ];
        let labels: HashSet<&str> = all.iter().map(|s| s.label()).collect();
        assert_eq!(labels.len(), all.len());
    }
}
