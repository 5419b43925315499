//! The bootstrap bundle: the tenant's credentials, its tunnel token and the operator's platform
//! settings as one Secrets Manager secret in the tenant's account, read by the VM at boot with its
//! instance role. Only its ARN appears anywhere else.

use sha2::{Digest, Sha256};

use super::credentials::Credentials;
use crate::cloud::ErrorKind;
use crate::cloud::tags::{OWNER_UID, Owner};
use crate::context::{Account, Context};
use crate::reconcile::Error;

/// The bundle's contents (a secret: never logged).
pub fn contents(ctx: &Context, slug: &str, hostname: &str, creds: &Credentials, tunnel_token: Option<&str>) -> String {
    serde_json::json!({
        "tenant": slug,
        "hostname": hostname,
        "adminToken": creds.get("admin-token"),
        "provisionSharedSecret": creds.get("provision-shared-secret"),
        "displaySigningSecret": creds.get("display-signing-secret"),
        "tunnelToken": tunnel_token.unwrap_or_default(),
        "ghcrPullToken": ctx.tenant.ghcr_pull_token.clone().unwrap_or_default(),
        "backupS3Prefix": ctx.tenant.backup_prefix.clone().unwrap_or_default(),
        "cpBaseUrl": ctx.tenant.cp_base_url.clone().unwrap_or_default(),
    })
    .to_string()
}

/// The bundle's ARN, written when its contents changed since this process last wrote them (a
/// restart rewrites each bundle once; an unchanged one costs no call).
///
/// Guarantees: found by its owner-uid tag before it is created; tags in the create call.
pub async fn ensure(
    ctx: &Context,
    memory: &super::Memory,
    acct: &Account,
    owner: &Owner,
    value: &str,
    status_arn: Option<&str>,
) -> Result<String, Error> {
    let digest = hex::encode(Sha256::digest(value.as_bytes()));
    let memo = memory.bundles.lock().ok().and_then(|m| m.get(&owner.uid).cloned());
    if let Some(arn) = status_arn
        && memo.as_deref() == Some(digest.as_str())
    {
        return Ok(arn.to_owned());
    }
    let mut filter = ctx.identity.filter();
    filter.insert(OWNER_UID.into(), owner.uid.clone());
    let found = acct.secrets.list(&filter).await?;
    let arn = if let Some(s) = found.first() {
        acct.secrets.put(&s.arn, value).await?;
        s.arn.clone()
    } else {
        match acct.secrets.create(&ctx.identity.bundle_name(&owner.name), value, &ctx.identity.tags(owner)).await {
            Ok(s) => s.arn,
            Err(e) if e.kind == ErrorKind::Rejected && e.code == "ResourceExistsException" => {
                return Err(Error::Cloud(crate::cloud::CloudError {
                    message: format!(
                        "{}; a secret of that name exists without our owner tag (or is scheduled for deletion): \
                         delete or restore it",
                        e.message
                    ),
                    ..e
                }));
            }
            Err(e) => return Err(e.into()),
        }
    };
    if let Ok(mut m) = memory.bundles.lock() {
        m.insert(owner.uid.clone(), digest);
    }
    Ok(arn)
}

/// Force-deletes every bundle of the owner (no recovery window): those listed by its owner-uid
/// tag, the one in status and the one of its deterministic name; returns (every ARN asked to go,
/// those still there).
pub async fn erase(
    ctx: &Context,
    memory: &super::Memory,
    acct: &Account,
    owner: &Owner,
    known: Option<&str>,
) -> Result<(Vec<String>, Vec<String>), Error> {
    let mut filter = ctx.identity.filter();
    filter.insert(OWNER_UID.into(), owner.uid.clone());
    // ListSecrets lags: a bundle created just before a crash (its ARN never reached status) is
    // found by its deterministic name, read by ID, and erased when it carries this owner's uid.
    let bundle = ctx.identity.bundle_name(&owner.name);
    let arns = crate::reconcile::teardown::owned_secrets(acct, &filter, &bundle, &owner.uid, known).await?;
    let left = crate::reconcile::teardown::delete_secrets(acct, &arns).await?;
    if let Ok(mut m) = memory.bundles.lock() {
        m.remove(&owner.uid);
    }
    Ok((arns, left))
}
