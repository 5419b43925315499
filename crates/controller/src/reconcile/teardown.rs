//! Deleting cloud resources and waiting for the cloud to confirm, shared by the Workspace delete,
//! the Tenant erasure and the orphan reaper: the account's clients write each effect through to
//! its fleet cache, and a wait names what it waits on as a typed [`Blocker`], never as prose a
//! caller must parse.

use std::fmt;
use std::time::Duration;

use crate::cloud::{CloudResult, ErrorKind, VOLUME_GONE, Volume};
use crate::context::{Account, Context};
use crate::reconcile::Error;

/// The cloud resource a delete waits on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocker {
    /// An instance not yet terminated.
    Instance(String),
    /// A security group still in use.
    SecurityGroup(String),
    /// A volume still attached or in use.
    Volume(String),
    /// A fleet listing newer than the delete, which confirms it.
    Listing,
    /// A resource named in status that lives under another identity (operator id, env or owner
    /// tags): never deleted by us, never forgotten; it blocks until the identities agree again.
    IdentityMismatch(crate::reconcile::launch::verify::Mismatch),
}

impl Blocker {
    /// The resource ID (`cloud-listing` for a listing): the related object of the Event.
    pub fn id(&self) -> &str {
        match self {
            Self::Instance(id) | Self::SecurityGroup(id) | Self::Volume(id) => id,
            Self::IdentityMismatch(m) => &m.id,
            Self::Listing => "cloud-listing",
        }
    }
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Instance(id) => write!(f, "instance {id}"),
            Self::SecurityGroup(id) => write!(f, "security group {id}"),
            Self::Volume(id) => write!(f, "volume {id}"),
            Self::Listing => f.write_str("a fleet listing"),
            Self::IdentityMismatch(m) => write!(f, "{} {} (identity mismatch)", m.what, m.id),
        }
    }
}

/// A wait on `on`, said as `what`, looked at again after `retry`.
pub fn wait_on(on: Blocker, what: String, retry: Duration) -> Error {
    Error::Waiting { what, on: Some(on), retry }
}

/// What a delete call achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The cloud accepted the delete (a missing resource counts: gone is what we wanted).
    Deleted,
    /// The resource is still used, with the provider's code (DependencyViolation, VolumeInUse)
    /// and message.
    InUse {
        /// The provider's code.
        code: String,
        /// The provider's message.
        message: String,
    },
    /// A detach was requested first (a volume still attached).
    Detaching,
}

/// Terminates `ids` (a success means AWS accepted, not that they are gone).
pub async fn terminate(acct: &Account, ids: &[String]) -> CloudResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    acct.instances.terminate(ids).await
}

/// Deletes security group `id`.
pub async fn delete_group(acct: &Account, id: &str) -> CloudResult<Outcome> {
    match acct.network.delete(id).await {
        Ok(()) => Ok(Outcome::Deleted),
        Err(e) if e.kind == ErrorKind::InUse => Ok(Outcome::InUse { code: e.code, message: e.message }),
        Err(e) => Err(e),
    }
}

/// Deletes volume `v` of owner `uid`; when `detach_first` and it is attached, asks for a detach
/// instead (the next call deletes it). A root volume EC2 deleted with its instance answers the
/// detach with `InvalidVolume.NotFound`: gone is what we wanted. A volume that is merely not
/// attached any more (`InvalidAttachment.NotFound`, which the account's clients read as a
/// successful detach) is not gone: it is deleted on the next call, never skipped.
pub async fn delete_volume(acct: &Account, uid: &str, v: &Volume, detach_first: bool) -> CloudResult<Outcome> {
    if detach_first && let Some(i) = &v.attached_to {
        return match acct.volumes.detach(&v.id, i).await {
            Err(e) if e.code == VOLUME_GONE => {
                acct.cache.remove::<Volume>(uid, &v.id);
                Ok(Outcome::Deleted)
            }
            Err(e) => Err(e),
            Ok(()) => {
                acct.cache.request_refresh();
                Ok(Outcome::Detaching)
            }
        };
    }
    match acct.volumes.delete(&v.id).await {
        Ok(()) => Ok(Outcome::Deleted),
        Err(e) if e.kind == ErrorKind::InUse => Ok(Outcome::InUse { code: e.code, message: e.message }),
        Err(e) => Err(e),
    }
}

/// Whether a volume still counts (not being deleted or deleted).
pub fn volume_alive(v: &Volume) -> bool {
    !matches!(v.state.as_str(), "deleting" | "deleted")
}

/// The tenant erasure's sweep: every Workspace secret of tenant `slug` (by tag) and any other
/// secret of ours under the tenant's Workspace-secret prefix; returns (every ARN asked to go,
/// those still there).
pub async fn sweep_workspace_secrets(
    ctx: &Context,
    acct: &Account,
    slug: &str,
) -> Result<(Vec<String>, Vec<String>), Error> {
    let mut f = ctx.identity.filter();
    f.insert(crate::cloud::tags::TENANT.into(), slug.to_owned());
    let found = acct.secrets.list(&f).await?;
    let arns: Vec<String> = found
        .into_iter()
        .filter(|s| {
            s.tags.get(crate::cloud::tags::OWNER_KIND).map(String::as_str) == Some("Workspace")
                || ctx.identity.workspace_secret_tenant(&s.name) == Some(slug)
        })
        .map(|s| s.arn)
        .collect();
    let left = delete_secrets(acct, &arns).await?;
    Ok((arns, left))
}

/// The ARNs of an owner's secrets: those listed with `filter`, the one named `name` when it
/// carries `uid` (ListSecrets lags behind a create: read by name), and `known` (from status).
pub async fn owned_secrets(
    acct: &Account,
    filter: &std::collections::BTreeMap<String, String>,
    name: &str,
    uid: &str,
    known: Option<&str>,
) -> Result<Vec<String>, Error> {
    let mut arns: Vec<String> = acct.secrets.list(filter).await?.into_iter().map(|s| s.arn).collect();
    let named = acct.secrets.describe(name).await?;
    let named = named.filter(|s| s.tags.get(crate::cloud::tags::OWNER_UID).map(String::as_str) == Some(uid));
    for k in known.map(str::to_owned).into_iter().chain(named.map(|s| s.arn)) {
        if !arns.contains(&k) {
            arns.push(k);
        }
    }
    Ok(arns)
}

/// Force-deletes `arns` (no recovery window); returns those Secrets Manager still reports.
pub async fn delete_secrets(acct: &Account, arns: &[String]) -> Result<Vec<String>, Error> {
    let mut left = Vec::new();
    for arn in arns {
        acct.secrets.delete(arn).await?;
        if acct.secrets.exists(arn).await? {
            left.push(arn.clone());
        }
    }
    Ok(left)
}
