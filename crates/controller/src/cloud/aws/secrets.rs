//! [`Secrets`] on Secrets Manager.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};

use super::limiter::Class;
use super::{Aws, absent_as, cloud_error, gone};
use crate::cloud::CloudResult;
use crate::cloud::secrets::{SecretRef, Secrets};

/// [`Secrets`] of the account and region of an [`Aws`].
#[derive(Clone, Debug)]
pub struct SecretsManager(pub Aws);

fn tags_of(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned()))).collect()
}

/// The tag pair ListSecrets filters on server side: the most selective of `filters`.
fn server_filter(filters: &BTreeMap<String, String>) -> Option<(&str, &str)> {
    use crate::cloud::tags::{MANAGED_BY, OWNER_UID, TENANT};
    [OWNER_UID, TENANT, MANAGED_BY]
        .iter()
        .find_map(|k| filters.get_key_value(*k))
        .or_else(|| filters.iter().next())
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

#[async_trait]
impl Secrets for SecretsManager {
    async fn list(&self, filters: &BTreeMap<String, String>) -> CloudResult<Vec<SecretRef>> {
        // Secrets Manager filters keys and values separately (values by prefix): filter server
        // side on the most selective pair (the owner's uid, else the tenant, else the operator
        // id), as a tag-key and a tag-value filter, then keep only the secrets that carry each
        // pair. A bundle check then reads one page, not every bundle of the operator.
        let mut call = self.0.secrets.list_secrets();
        if let Some((k, v)) = server_filter(filters) {
            call = call
                .filters(Filter::builder().key(FilterNameStringType::TagKey).values(k).build())
                .filters(Filter::builder().key(FilterNameStringType::TagValue).values(v).build());
        }
        let mut pages = call.into_paginator().page_size(100).send();
        let mut out = Vec::new();
        loop {
            self.0.limiter.take(Class::Secrets).await;
            let Some(page) = pages.next().await else { return Ok(out) };
            let page = page.map_err(|e| cloud_error(&e, "list secrets", "by tag"))?;
            for s in page.secret_list() {
                let tags = tags_of(s.tags());
                if filters.iter().all(|(k, v)| tags.get(k) == Some(v)) {
                    out.push(SecretRef {
                        arn: s.arn().unwrap_or_default().to_owned(),
                        name: s.name().unwrap_or_default().to_owned(),
                        tags,
                    });
                }
            }
        }
    }

    async fn create(&self, name: &str, value: &str, tags: &BTreeMap<String, String>) -> CloudResult<SecretRef> {
        let mut call = self.0.secrets.create_secret().name(name).secret_string(value);
        for (k, v) in tags {
            call = call.tags(Tag::builder().key(k).value(v).build());
        }
        self.0.limiter.take(Class::Secrets).await;
        let out = call.send().await.map_err(|e| cloud_error(&e, "create secret", name))?;
        Ok(SecretRef { arn: out.arn().unwrap_or_default().to_owned(), name: name.to_owned(), tags: tags.clone() })
    }

    async fn put(&self, arn: &str, value: &str) -> CloudResult<()> {
        self.0.limiter.take(Class::Secrets).await;
        self.0
            .secrets
            .put_secret_value()
            .secret_id(arn)
            .secret_string(value)
            .send()
            .await
            .map_err(|e| cloud_error(&e, "write secret", arn))?;
        Ok(())
    }

    async fn delete(&self, arn: &str) -> CloudResult<()> {
        self.0.limiter.take(Class::Secrets).await;
        let r = self.0.secrets.delete_secret().secret_id(arn).force_delete_without_recovery(true).send().await;
        gone(r.map(|_| ()).map_err(|e| cloud_error(&e, "delete secret", arn)))
    }

    async fn tag(&self, arn: &str, tags: &BTreeMap<String, String>) -> CloudResult<()> {
        let mut call = self.0.secrets.tag_resource().secret_id(arn);
        for (k, v) in tags {
            call = call.tags(Tag::builder().key(k).value(v).build());
        }
        self.0.limiter.take(Class::Secrets).await;
        call.send().await.map_err(|e| cloud_error(&e, "tag secret", arn))?;
        Ok(())
    }

    async fn describe(&self, id: &str) -> CloudResult<Option<SecretRef>> {
        self.0.limiter.take(Class::Secrets).await;
        match self.0.secrets.describe_secret().secret_id(id).send().await {
            Ok(out) => Ok(Some(SecretRef {
                arn: out.arn().unwrap_or_default().to_owned(),
                name: out.name().unwrap_or_default().to_owned(),
                tags: tags_of(out.tags()),
            })),
            Err(e) => absent_as(cloud_error(&e, "describe secret", id), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::tags::{MANAGED_BY, OWNER_UID, TENANT};

    #[test]
    fn the_server_side_filter_is_the_owner_then_the_tenant_then_the_operator() {
        let mut f = BTreeMap::from([(MANAGED_BY.to_owned(), "op-1".to_owned())]);
        assert_eq!(server_filter(&f), Some((MANAGED_BY, "op-1")));
        f.insert(TENANT.into(), "acme".into());
        assert_eq!(server_filter(&f), Some((TENANT, "acme")));
        f.insert(OWNER_UID.into(), "uid-1".into());
        assert_eq!(server_filter(&f), Some((OWNER_UID, "uid-1")));
        assert_eq!(server_filter(&BTreeMap::new()), None);
    }
}
