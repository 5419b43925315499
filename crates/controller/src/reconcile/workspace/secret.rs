//! The Workspace's own secret: one Secrets Manager secret per Workspace, holding only what that
//! Workspace may know: its token for calling the tenant platform and its display password. Never
//! a value of the tenant's bootstrap bundle (admin token, provision secret, display signing
//! secret, tunnel token, GHCR token): an agent that leaks its secret leaks its own Workspace only.
//!
//! Guarantees: found by its owner-uid tag before it is created; tags (owner-kind `Workspace`) in
//! the create call; the values are generated once, at create, and never rewritten while the
//! secret exists (no `PutSecretValue`), so a restart or a reconcile keeps the display password;
//! deleted without a recovery window after the Workspace's instances are confirmed terminated.
//! Only its ARN appears anywhere else (status, user-data).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::cloud::tags::{OWNER_KIND, OWNER_UID, Owner, RETAINED};
use crate::cloud::{CloudError, ErrorKind};
use crate::context::{Account, Context};
use crate::reconcile::{Error, teardown};

/// Tag on the secret: the hex SHA-256 of the Workspace's token. The tenant platform accepts a
/// Workspace token when its hash equals this tag on the secret named after that Workspace
/// (`DescribeSecret`, which returns tags and never the value); deleting the secret revokes it.
pub const TOKEN_SHA256: &str = "moleculesai.app/token-sha256";

/// Random bytes of the token (64 hex characters).
const TOKEN_BYTES: usize = 32;
/// Characters of the display password.
const PASSWORD_LEN: usize = 24;
/// The display password's alphabet: no quote, no shell or JSON metacharacter, no look-alikes.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/// The secret's values (a secret: never logged; `Debug` redacts them).
pub struct Values {
    /// The Workspace's token for the tenant platform.
    pub token: String,
    /// The desktop's password.
    pub display_password: String,
}

impl std::fmt::Debug for Values {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Values { token: <redacted>, display_password: <redacted> }")
    }
}

fn random(n: usize) -> Result<Vec<u8>, Error> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| Error::Kube {
        action: "read the OS random source for a Workspace secret",
        source: kube::Error::Service(Box::new(std::io::Error::other(e.to_string()))),
    })?;
    Ok(b)
}

impl Values {
    /// Fresh random values.
    pub fn generate() -> Result<Self, Error> {
        let token = hex::encode(random(TOKEN_BYTES)?);
        // Rejection sampling keeps every character equally likely.
        let limit = u8::try_from(256 - 256 % ALPHABET.len()).unwrap_or(u8::MAX);
        let mut password = String::with_capacity(PASSWORD_LEN);
        while password.len() < PASSWORD_LEN {
            for b in random(PASSWORD_LEN * 2)? {
                if b < limit && password.len() < PASSWORD_LEN {
                    password.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
                }
            }
        }
        Ok(Self { token, display_password: password })
    }

    /// The hex SHA-256 of the token (safe to publish: the token is 256 random bits).
    pub fn token_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.token.as_bytes()))
    }

    /// The secret's JSON: the Workspace's identity and its two values, nothing of the tenant's.
    pub fn contents(&self, owner: &Owner) -> String {
        serde_json::json!({
            "workspace": owner.qualified(),
            "uid": owner.uid,
            "tenant": owner.tenant,
            "token": self.token,
            "displayPassword": self.display_password,
        })
        .to_string()
    }
}

/// The Secrets Manager name of a Workspace's secret: under its tenant's Workspace-secret prefix.
pub fn name(ctx: &Context, owner: &Owner) -> String {
    ctx.identity.workspace_secret_name(&owner.tenant, &owner.uid)
}

fn filter(ctx: &Context, owner: &Owner) -> BTreeMap<String, String> {
    let mut f = ctx.identity.filter();
    f.insert(OWNER_UID.into(), owner.uid.clone());
    f.insert(OWNER_KIND.into(), "Workspace".into());
    f
}

/// The secret's ARN: the one status records, else the one of its deterministic name read by ID
/// (a secret made just before a crash is found though ListSecrets lags) when it carries this
/// Workspace's owner-uid tag, else a new secret with fresh values (the only time values are
/// generated). A secret of that name without the tag is refused, never adopted.
pub async fn ensure(ctx: &Context, owner: &Owner, status_arn: Option<&str>) -> Result<String, Error> {
    if let Some(arn) = status_arn {
        return Ok(arn.to_owned());
    }
    let acct = &ctx.main;
    let name = name(ctx, owner);
    let found = acct.secrets.describe(&name).await?;
    if let Some(s) = found {
        if s.tags.get(OWNER_UID) == Some(&owner.uid) && ctx.identity.owns(&s.tags) {
            return Ok(s.arn);
        }
        return Err(foreign(&name, &s.arn));
    }
    let values = Values::generate()?;
    let mut tags = ctx.identity.tags(owner);
    tags.insert(TOKEN_SHA256.into(), values.token_sha256());
    match acct.secrets.create(&name, &values.contents(owner), &tags).await {
        Ok(s) => Ok(s.arn),
        Err(e) if e.kind == ErrorKind::Rejected && e.code == "ResourceExistsException" => Err(foreign(&name, &name)),
        Err(e) => Err(e.into()),
    }
}

fn foreign(name: &str, target: &str) -> Error {
    Error::Cloud(CloudError {
        kind: ErrorKind::Rejected,
        action: "create secret",
        code: "ResourceExistsException".into(),
        message: format!(
            "secret {name} exists without this Workspace's owner tag (or is scheduled for deletion): delete or \
             restore it"
        ),
        target: target.to_owned(),
    })
}

/// Every secret of the Workspace (by tag, and the one status names), force-deleted; returns the
/// ARNs still there after the delete (a secret Secrets Manager still reports).
pub async fn remove(ctx: &Context, acct: &Account, owner: &Owner, known: Option<&str>) -> Result<Vec<String>, Error> {
    let arns = teardown::owned_secrets(acct, &filter(ctx, owner), &name(ctx, owner), &owner.uid, known).await?;
    teardown::delete_secrets(acct, &arns).await
}

/// `deletionPolicy: Retain`: tags the Workspace's secrets `moleculesai.app/retained=true` and
/// leaves them; returns their ARNs.
pub async fn retain(ctx: &Context, owner: &Owner) -> Result<Vec<String>, Error> {
    let acct = &ctx.main;
    let arns: Vec<String> = acct.secrets.list(&filter(ctx, owner)).await?.into_iter().map(|s| s.arn).collect();
    let tags = BTreeMap::from([(RETAINED.to_owned(), "true".to_owned())]);
    for arn in &arns {
        acct.secrets.tag(arn, &tags).await?;
    }
    Ok(arns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_random_and_of_the_advertised_shape() {
        let (a, b) = (Values::generate().unwrap(), Values::generate().unwrap());
        assert_eq!(a.token.len(), 64);
        assert!(a.token.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a.display_password.len(), PASSWORD_LEN);
        assert!(a.display_password.bytes().all(|c| ALPHABET.contains(&c)));
        assert_ne!(a.token, b.token);
        assert_ne!(a.display_password, b.display_password);
        assert_eq!(a.token_sha256(), hex::encode(Sha256::digest(a.token.as_bytes())));
    }
}
