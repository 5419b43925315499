//! The pure middle of the orphan scan: from what carries our marks and what lives in Kubernetes,
//! the findings. No I/O, no clock but the one passed in.
//!
//! A resource is an orphan when its owner (by uid) is not live, when it has no owner at all, or
//! when it is a second live instance of a live owner (not the one its status names, not a
//! replacement in progress, and older than a launch that status may not show yet).

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use molecule_crds::v1alpha1::OrphanKind;

/// A resource that carries our marks (tags, or a DNS ownership record, or a tunnel name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marked {
    /// What it is.
    pub kind: OrphanKind,
    /// Its ID (instance ID, group ID, volume ID, secret ARN, record name, tunnel ID).
    pub id: String,
    /// Region, or `global` for DNS records and tunnels.
    pub region: String,
    /// Owner kind (Workspace or Tenant), from the tags or the mark.
    pub owner_kind: Option<String>,
    /// Owner uid.
    pub owner_uid: Option<String>,
    /// `namespace/name` or `name`.
    pub owner: Option<String>,
    /// Tenant slug.
    pub tenant: Option<String>,
    /// For instances: alive (not shutting down or terminated). Other kinds: true.
    pub alive: bool,
    /// For instances: launch time.
    pub launched_at: Option<Timestamp>,
    /// For instances: the launch attempt tag.
    pub attempt: Option<u32>,
    /// Tagged `moleculesai.app/retained=true`: its Workspace was deleted with
    /// `deletionPolicy: Retain`.
    pub retained: bool,
}

/// A live owner.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveOwner {
    /// `namespace/name` or `name`.
    pub qualified: String,
    /// The instance its status names.
    pub instance_id: Option<String>,
    /// A replacement is in progress (two instances are expected).
    pub replacing: bool,
    /// The launch attempt its status records: an instance of an older attempt is a predecessor
    /// (a replacement or a relaunch), not a duplicate.
    pub attempt: Option<u32>,
}

/// Everything live, by uid, and the live Tenants' slugs.
#[derive(Clone, Debug, Default)]
pub struct Live {
    /// Workspaces and Tenants by uid.
    pub owners: HashMap<String, LiveOwner>,
    /// Slugs of live Tenants (tunnels are named after them).
    pub tenants: HashSet<String>,
    /// How old (seconds) a second live instance of a live owner must be to count: a launch whose
    /// instance ID has not reached status yet is not a duplicate.
    pub duplicate_age_secs: i64,
}

/// One orphan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Kind.
    pub kind: OrphanKind,
    /// ID.
    pub id: String,
    /// Region or `global`.
    pub region: String,
    /// The tenant it belongs to, when known.
    pub tenant: Option<String>,
    /// Why, naming the owner it points at.
    pub reason: String,
    /// The owner uid it carries (tells two marks at one DNS name apart).
    pub owner_uid: Option<String>,
    /// Kept on purpose (`deletionPolicy: Retain`): reported, never reaped.
    pub retained: bool,
}

/// The findings among `marked`. A resource of a dead owner that was retained (it, or a tagged
/// resource of the same owner: DNS records cannot carry tags) is a retained finding, not an orphan.
pub fn classify(marked: &[Marked], live: &Live, now: Timestamp) -> Vec<Finding> {
    let retained: HashSet<&str> = marked.iter().filter(|m| m.retained).filter_map(|m| m.owner_uid.as_deref()).collect();
    marked
        .iter()
        .filter(|m| m.alive)
        .filter_map(|m| {
            let r = reason(m, live, now)?;
            let owner_gone = m.owner_uid.as_deref().is_some_and(|u| !live.owners.contains_key(u));
            let kept = owner_gone && (m.retained || m.owner_uid.as_deref().is_some_and(|u| retained.contains(u)));
            Some(if kept { retained_finding(m) } else { finding(m, r) })
        })
        .collect()
}

fn retained_finding(m: &Marked) -> Finding {
    let owner = m.owner.as_deref().unwrap_or("?");
    let mut f = finding(m, format!("retained: Workspace {owner} was deleted with deletionPolicy Retain"));
    f.retained = true;
    f
}

/// Whether a finding's owner is still missing from `live` (asked again right before a reap).
pub fn still_orphan(f: &Finding, live: &Live) -> bool {
    match f.kind {
        OrphanKind::Tunnel => f.tenant.as_deref().is_none_or(|t| !live.tenants.contains(t)),
        // A second instance of a live owner was judged with its owner live: keep that judgement.
        _ if f.retained => false,
        _ if f.reason.starts_with("second instance") => true,
        _ => f.owner_uid.as_deref().is_none_or(|u| !live.owners.contains_key(u)),
    }
}

fn finding(m: &Marked, reason: String) -> Finding {
    Finding {
        kind: m.kind,
        id: m.id.clone(),
        region: m.region.clone(),
        tenant: m.tenant.clone(),
        reason,
        owner_uid: m.owner_uid.clone(),
        retained: false,
    }
}

fn reason(m: &Marked, live: &Live, now: Timestamp) -> Option<String> {
    if m.kind == OrphanKind::Tunnel {
        let slug = m.tenant.as_deref().unwrap_or_default();
        return (!live.tenants.contains(slug)).then(|| {
            format!("tunnel of Tenant {slug}, which no longer exists (tunnels are named after their Tenant)")
        });
    }
    let kind = m.owner_kind.as_deref().unwrap_or("owner");
    let owner = m.owner.as_deref().unwrap_or("?");
    let Some(uid) = m.owner_uid.as_deref().filter(|u| !u.is_empty()) else {
        return Some("carries this operator's managed-by and env tags but no owner-uid tag".into());
    };
    let Some(o) = live.owners.get(uid) else {
        return Some(format!("owner {kind} {owner} (uid {uid}) no longer exists"));
    };
    if m.kind != OrphanKind::Instance || o.replacing {
        return None;
    }
    let current = o.instance_id.as_deref()?;
    if let (Some(mine), Some(theirs)) = (m.attempt, o.attempt)
        && mine != theirs
    {
        return None;
    }
    let old_enough = m.launched_at.is_some_and(|t| now.duration_since(t).as_secs() >= live.duplicate_age_secs);
    (current != m.id && old_enough)
        .then(|| format!("second instance of live {kind} {}; its status.instanceId is {current}", o.qualified))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-23T10:00:00Z".parse().unwrap_or_default()
    }

    fn instance(id: &str, uid: Option<&str>, minutes_old: i64) -> Marked {
        Marked {
            kind: OrphanKind::Instance,
            id: id.into(),
            region: "us-east-1".into(),
            owner_kind: Some("Workspace".into()),
            owner_uid: uid.map(str::to_owned),
            owner: Some("acme/agent".into()),
            tenant: Some("acme".into()),
            alive: true,
            launched_at: now().checked_sub(jiff::SignedDuration::from_mins(minutes_old)).ok(),
            attempt: Some(1),
            retained: false,
        }
    }

    fn live() -> Live {
        let mut l = Live::default();
        l.owners.insert(
            "u-ws".into(),
            LiveOwner {
                qualified: "acme/agent".into(),
                instance_id: Some("i-1".into()),
                replacing: false,
                attempt: Some(1),
            },
        );
        l.tenants.insert("acme".into());
        l.duplicate_age_secs = 300;
        l
    }

    #[test]
    fn resources_of_live_owners_are_not_orphans() {
        let marked = vec![instance("i-1", Some("u-ws"), 60)];
        assert!(classify(&marked, &live(), now()).is_empty());
    }

    #[test]
    fn a_dead_owner_makes_an_orphan_naming_it() {
        let f = classify(&[instance("i-9", Some("u-gone"), 60)], &live(), now());
        assert_eq!(f.len(), 1);
        assert!(f[0].reason.contains("acme/agent") && f[0].reason.contains("u-gone"), "{}", f[0].reason);
        assert_eq!(f[0].tenant.as_deref(), Some("acme"));
    }

    #[test]
    fn a_second_instance_counts_only_when_old_enough_and_not_replacing() {
        assert_eq!(classify(&[instance("i-2", Some("u-ws"), 60)], &live(), now()).len(), 1);
        assert!(classify(&[instance("i-2", Some("u-ws"), 1)], &live(), now()).is_empty(), "a launch in flight");
        let mut l = live();
        if let Some(o) = l.owners.get_mut("u-ws") {
            o.replacing = true;
        }
        assert!(classify(&[instance("i-2", Some("u-ws"), 60)], &l, now()).is_empty(), "a replacement");
        // A predecessor of an older attempt is not a duplicate, whatever the phase says.
        let mut older = instance("i-0", Some("u-ws"), 60);
        older.attempt = Some(0);
        let mut newer = live();
        if let Some(o) = newer.owners.get_mut("u-ws") {
            o.attempt = Some(1);
        }
        assert!(classify(&[older], &newer, now()).is_empty(), "a predecessor");
    }

    #[test]
    fn dead_instances_are_never_orphans_and_ownerless_ones_are() {
        let mut dead = instance("i-3", Some("u-gone"), 60);
        dead.alive = false;
        assert!(classify(&[dead], &live(), now()).is_empty());
        let f = classify(&[instance("i-4", None, 60)], &live(), now());
        assert!(f[0].reason.contains("no owner-uid"), "{}", f[0].reason);
    }

    #[test]
    fn tunnels_are_orphans_when_their_tenant_is_gone() {
        let t = |slug: &str| Marked {
            kind: OrphanKind::Tunnel,
            id: "t-1".into(),
            region: "global".into(),
            owner_kind: None,
            owner_uid: None,
            owner: None,
            tenant: Some(slug.into()),
            alive: true,
            launched_at: None,
            attempt: None,
            retained: false,
        };
        assert!(classify(&[t("acme")], &live(), now()).is_empty());
        assert_eq!(classify(&[t("globex")], &live(), now()).len(), 1);
    }

    #[test]
    fn retained_resources_of_a_deleted_owner_are_retained_findings_never_reaped() {
        let mut kept = instance("i-5", Some("u-gone"), 60);
        kept.retained = true;
        let record = Marked {
            kind: OrphanKind::DnsRecord,
            id: "agent.acme.ws.internal".into(),
            region: "global".into(),
            owner_kind: Some("Workspace".into()),
            owner_uid: Some("u-gone".into()),
            owner: Some("agent.acme.ws.internal".into()),
            tenant: Some("acme".into()),
            alive: true,
            launched_at: None,
            attempt: None,
            retained: false,
        };
        let other = instance("i-6", Some("u-other-gone"), 60);
        let f = classify(&[kept, record, other], &live(), now());
        assert_eq!(f.len(), 3);
        assert!(f[0].retained && f[0].reason.starts_with("retained"), "{:?}", f[0]);
        assert!(f[1].retained, "the record of a retained owner is retained too: {:?}", f[1]);
        assert!(!f[2].retained, "another dead owner's instance stays an orphan");
        assert!(!still_orphan(&f[0], &live()), "a retained finding is never reaped");
        assert!(still_orphan(&f[2], &live()));
    }

    #[test]
    fn a_retained_tag_on_a_live_owners_resource_changes_nothing() {
        let mut m = instance("i-1", Some("u-ws"), 60);
        m.retained = true;
        assert!(classify(&[m], &live(), now()).is_empty());
    }
}
