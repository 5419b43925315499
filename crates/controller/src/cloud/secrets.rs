//! Secrets Manager: the tenant bootstrap bundles. Values go in, ARNs come out; nothing here logs
//! or returns a secret value.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::CloudResult;

/// A secret as the operator sees it: never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// All tags.
    pub tags: BTreeMap<String, String>,
}

/// Secrets Manager of one account and region.
#[async_trait]
pub trait Secrets: Send + Sync {
    /// Every secret carrying all of `filters` as tags (all pages).
    async fn list(&self, filters: &BTreeMap<String, String>) -> CloudResult<Vec<SecretRef>>;
    /// Creates a secret with its tags in the create call.
    ///
    /// Caveat: a name that exists answers [`super::ErrorKind::Rejected`] with code
    /// `ResourceExistsException`; callers look up by tag first.
    async fn create(&self, name: &str, value: &str, tags: &BTreeMap<String, String>) -> CloudResult<SecretRef>;
    /// Writes a new current value.
    async fn put(&self, arn: &str, value: &str) -> CloudResult<()>;
    /// Deletes at once, without a recovery window. A missing secret is success.
    async fn delete(&self, arn: &str) -> CloudResult<()>;
    /// Adds (or overwrites) `tags` on the secret; other tags stay.
    async fn tag(&self, arn: &str, tags: &BTreeMap<String, String>) -> CloudResult<()>;
    /// Whether the secret still exists (a secret scheduled for deletion still does): one
    /// [`Secrets::describe`].
    async fn exists(&self, arn: &str) -> CloudResult<bool> {
        Ok(self.describe(arn).await?.is_some())
    }
    /// The secret named by `id` (its ARN or its name), tags included, read by ID: unlike
    /// [`Secrets::list`], it sees a secret created a moment ago. `None` when there is none.
    async fn describe(&self, id: &str) -> CloudResult<Option<SecretRef>>;
}
