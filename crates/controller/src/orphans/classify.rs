//! The pure middle of the orphan scan: from what carries our marks and what lives in Kubernetes,
//! the findings. No I/O, no clock but the one passed in.
//!
//! A resource is an orphan when its owner (by uid) is not live, when it has no owner at all, or
//! when it is a second live instance of a live owner (not the one its status names, not a
//! replacement in progress, and older than a launch that status may not show yet).

use std::collections::{HashMap, HashSet};
use std::fmt;

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

/// Why a resource is a finding. Decisions (reap or keep, count or list) match on the variant;
/// the text of [`fmt::Display`] is what the Tenant status, Events and logs show, unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrphanReason {
    /// A tunnel named after a Tenant that no longer exists.
    TenantGone {
        /// The slug in the tunnel's name.
        slug: String,
    },
    /// Our managed-by and env tags without an owner-uid tag.
    NoOwnerUid,
    /// The owner its tags or mark name is not live.
    OwnerGone {
        /// Workspace or Tenant (or `owner` when the tags do not say).
        kind: String,
        /// `namespace/name` or `name` (or `?`).
        owner: String,
        /// Its uid.
        uid: String,
    },
    /// A second live instance of a live owner, not the one its status names.
    SecondInstance {
        /// Workspace or Tenant (or `owner`).
        kind: String,
        /// The live owner, qualified.
        owner: String,
        /// The instance its status names.
        current: String,
    },
    /// Kept on purpose: its Workspace was deleted with `deletionPolicy: Retain`. Reported,
    /// never reaped.
    Retained {
        /// `namespace/name` of the Workspace (or `?`).
        owner: String,
    },
}

impl fmt::Display for OrphanReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TenantGone { slug } => {
                write!(f, "tunnel of Tenant {slug}, which no longer exists (tunnels are named after their Tenant)")
            }
            Self::NoOwnerUid => f.write_str("carries this operator's managed-by and env tags but no owner-uid tag"),
            Self::OwnerGone { kind, owner, uid } => write!(f, "owner {kind} {owner} (uid {uid}) no longer exists"),
            Self::SecondInstance { kind, owner, current } => {
                write!(f, "second instance of live {kind} {owner}; its status.instanceId is {current}")
            }
            Self::Retained { owner } => {
                write!(f, "retained: Workspace {owner} was deleted with deletionPolicy Retain")
            }
        }
    }
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
    pub reason: OrphanReason,
    /// The owner uid it carries (tells two marks at one DNS name apart).
    pub owner_uid: Option<String>,
}

impl Finding {
    /// Kept on purpose (`deletionPolicy: Retain`): reported, never reaped.
    pub fn retained(&self) -> bool {
        matches!(self.reason, OrphanReason::Retained { .. })
    }
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
    finding(m, OrphanReason::Retained { owner: m.owner.clone().unwrap_or_else(|| "?".into()) })
}

/// Whether a finding's owner is still missing from `live` (asked again right before a reap).
pub fn still_orphan(f: &Finding, live: &Live) -> bool {
    match &f.reason {
        OrphanReason::TenantGone { .. } => f.tenant.as_deref().is_none_or(|t| !live.tenants.contains(t)),
        OrphanReason::Retained { .. } => false,
        // A second instance of a live owner was judged with its owner live: keep that judgement.
        OrphanReason::SecondInstance { .. } => true,
        OrphanReason::NoOwnerUid | OrphanReason::OwnerGone { .. } => {
            f.owner_uid.as_deref().is_none_or(|u| !live.owners.contains_key(u))
        }
    }
}

fn finding(m: &Marked, reason: OrphanReason) -> Finding {
    Finding {
        kind: m.kind,
        id: m.id.clone(),
        region: m.region.clone(),
        tenant: m.tenant.clone(),
        reason,
        owner_uid: m.owner_uid.clone(),
    }
}

fn reason(m: &Marked, live: &Live, now: Timestamp) -> Option<OrphanReason> {
    if m.kind == OrphanKind::Tunnel {
        let slug = m.tenant.clone().unwrap_or_default();
        return (!live.tenants.contains(&slug)).then_some(OrphanReason::TenantGone { slug });
    }
    let kind = m.owner_kind.clone().unwrap_or_else(|| "owner".into());
    let Some(uid) = m.owner_uid.as_deref().filter(|u| !u.is_empty()) else {
        return Some(OrphanReason::NoOwnerUid);
    };
    let Some(o) = live.owners.get(uid) else {
        let owner = m.owner.clone().unwrap_or_else(|| "?".into());
        return Some(OrphanReason::OwnerGone { kind, owner, uid: uid.to_owned() });
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
    (current != m.id && old_enough).then(|| OrphanReason::SecondInstance {
        kind,
        owner: o.qualified.clone(),
        current: current.to_owned(),
    })
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
        assert_eq!(f[0].reason.to_string(), "owner Workspace acme/agent (uid u-gone) no longer exists");
        assert_eq!(f[0].tenant.as_deref(), Some("acme"));
    }

    #[test]
    fn a_second_instance_counts_only_when_old_enough_and_not_replacing() {
        let dup = classify(&[instance("i-2", Some("u-ws"), 60)], &live(), now());
        assert_eq!(dup.len(), 1);
        assert_eq!(
            dup[0].reason.to_string(),
            "second instance of live Workspace acme/agent; its status.instanceId is i-1"
        );
        assert!(still_orphan(&dup[0], &live()), "judged with its owner live: still an orphan");
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
        assert_eq!(f[0].reason, OrphanReason::NoOwnerUid);
        assert_eq!(f[0].reason.to_string(), "carries this operator's managed-by and env tags but no owner-uid tag");
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
        let f = classify(&[t("globex")], &live(), now());
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].reason.to_string(),
            "tunnel of Tenant globex, which no longer exists (tunnels are named after their Tenant)"
        );
        assert!(still_orphan(&f[0], &live()));
        let mut back = live();
        back.tenants.insert("globex".into());
        assert!(!still_orphan(&f[0], &back), "a Tenant recreated with the slug adopts its tunnel");
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
        assert!(f[0].retained(), "{:?}", f[0]);
        assert_eq!(f[0].reason.to_string(), "retained: Workspace acme/agent was deleted with deletionPolicy Retain");
        assert!(f[1].retained(), "the record of a retained owner is retained too: {:?}", f[1]);
        assert!(!f[2].retained(), "another dead owner's instance stays an orphan");
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
