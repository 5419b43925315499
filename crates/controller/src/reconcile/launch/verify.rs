//! Verify by ID: the fleet cache lists only what carries our managed-by and env tags, so after a
//! change of `MOLECULE_ENV` or of the operator id, or an edited tag, an instance, group or volume
//! that still lives is simply not listed. Before the launch protocol calls an instance lost,
//! before a delete lets its finalizer go and before an erasure completes its receipt, the IDs in
//! status are described by ID (which sees every tag, and sees a new resource before a listing
//! does). One that lives without our identity is an [`Mismatch`]: a condition with reason
//! [`REASON`] (Stalled), never a relaunch, never a finished delete.

use std::collections::BTreeMap;
use std::fmt;

use crate::cloud::cache::Cached;
use crate::cloud::tags::{ENV, Identity, MANAGED_BY, OWNER_UID};
use crate::cloud::{CloudResult, Instance, SecurityGroup, Volume};
use crate::context::Account;

/// The condition reason of an identity mismatch (one of kstatus's Stalled reasons).
pub const REASON: &str = "IdentityMismatch";

/// A resource named in status that exists but is not this operator's any more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// What it is: "instance", "security group", "volume", "tunnel", "Cloudflare record".
    pub what: &'static str,
    /// Its ID.
    pub id: String,
    /// What differs ("moleculesai.app/managed-by=op-b (this operator expects op-a)").
    pub differs: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} named in status exists but is not this operator's: {}; it is neither replaced, deleted nor \
             forgotten until its tags and the operator's MOLECULE_OPERATOR_ID and MOLECULE_ENV agree again",
            self.what, self.id, self.differs
        )
    }
}

/// What differs between `tags` and the identity tags of owner `uid` under `identity`: the
/// managed-by, env and owner-uid tags. `None` when they agree.
pub fn differs(identity: &Identity, uid: &str, tags: &BTreeMap<String, String>) -> Option<String> {
    let expected = [(MANAGED_BY, identity.operator_id.as_str()), (ENV, identity.env.as_str()), (OWNER_UID, uid)];
    let out: Vec<String> = expected
        .iter()
        .filter_map(|(key, ours)| match tags.get(*key) {
            Some(v) if v == ours => None,
            Some(v) => Some(format!("{key}={v} (this operator expects {ours})")),
            None => Some(format!("no {key} tag (this operator expects {ours})")),
        })
        .collect();
    (!out.is_empty()).then(|| out.join(", "))
}

/// A resource looked up by ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen<T> {
    /// AWS does not know the ID (never existed, deleted, purged).
    Absent,
    /// It exists with our identity and owner tags.
    Ours(T),
    /// It exists, but its tags say another operator, env or owner (or none).
    Foreign(T, Mismatch),
}

fn classify<T: Cached>(found: Vec<T>, what: &'static str, id: &str, identity: &Identity, uid: &str) -> Seen<T> {
    let Some(x) = found.into_iter().find(|x| x.id() == id) else { return Seen::Absent };
    match differs(identity, uid, x.tags()) {
        None => Seen::Ours(x),
        Some(differs) => Seen::Foreign(x, Mismatch { what, id: id.to_owned(), differs }),
    }
}

/// Instance `id` of owner `uid`, described by ID.
pub async fn instance(acct: &Account, identity: &Identity, uid: &str, id: &str) -> CloudResult<Seen<Instance>> {
    let found = acct.instances.describe(&[id.to_owned()]).await?;
    Ok(classify(found, "instance", id, identity, uid))
}

/// Security group `id` of owner `uid`, described by ID.
pub async fn group(acct: &Account, identity: &Identity, uid: &str, id: &str) -> CloudResult<Seen<SecurityGroup>> {
    let found = acct.network.describe(&[id.to_owned()]).await?;
    Ok(classify(found, "security group", id, identity, uid))
}

/// Volume `id` of owner `uid`, described by ID.
pub async fn volume(acct: &Account, identity: &Identity, uid: &str, id: &str) -> CloudResult<Seen<Volume>> {
    let found = acct.volumes.describe(&[id.to_owned()]).await?;
    Ok(classify(found, "volume", id, identity, uid))
}

/// What the launch protocol learns about the status instance the fleet cache does not list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unlisted {
    /// AWS does not know it, or it lives under another identity but is dead: lost (once past
    /// the listing lag).
    Gone,
    /// Ours (a listing that lags, or one that ran before it existed): plan with it.
    Found(Instance),
    /// It lives under another identity: no launch, a condition.
    Foreign(Mismatch),
    /// The describe failed: not lost yet, look again.
    Unknown,
}

/// Looks up by ID the status instance `id` that the cache does not list for owner `uid`.
pub async fn unlisted(acct: &Account, identity: &Identity, uid: &str, id: &str) -> Unlisted {
    match instance(acct, identity, uid, id).await {
        Ok(Seen::Absent) => Unlisted::Gone,
        Ok(Seen::Ours(i)) => Unlisted::Found(i),
        Ok(Seen::Foreign(i, _)) if !i.state.is_alive() => Unlisted::Gone,
        Ok(Seen::Foreign(_, m)) => {
            tracing::warn!(instance = %id, owner_uid = %uid, differs = %m.differs, "status instance lives under another identity: not relaunched");
            Unlisted::Foreign(m)
        }
        Err(e) => {
            tracing::warn!(instance = %id, error = %e, "describe by ID failed; the instance is not called lost yet");
            Unlisted::Unknown
        }
    }
}
