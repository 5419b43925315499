//! [`Identities`] on IAM.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_iam::types::Tag;

use super::limiter::Class;
use super::{Aws, absent_as, cloud_error, gone};
use crate::cloud::identities::{IamEntity, IamKind, Identities, Profile, Role, RoleSpec, decode_document};
use crate::cloud::{CloudError, CloudResult, ErrorKind};

/// [`Identities`] of the account of an [`Aws`].
#[derive(Clone, Debug)]
pub struct Iam(pub Aws);

fn tags_of(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
}

fn sdk_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect()
}

fn role_of(r: &aws_sdk_iam::types::Role) -> Role {
    Role { name: r.role_name().to_owned(), arn: r.arn().to_owned(), path: r.path().to_owned(), tags: tags_of(r.tags()) }
}

fn profile_of(p: &aws_sdk_iam::types::InstanceProfile) -> Profile {
    Profile {
        name: p.instance_profile_name().to_owned(),
        arn: p.arn().to_owned(),
        path: p.path().to_owned(),
        roles: p.roles().iter().map(|r| r.role_name().to_owned()).collect(),
        tags: tags_of(p.tags()),
    }
}

impl Iam {
    async fn take(&self) {
        self.0.limiter.take(Class::Platform).await;
    }

    async fn inline_policies(&self, role: &str) -> CloudResult<Vec<String>> {
        self.take().await;
        let out = self
            .0
            .iam
            .list_role_policies()
            .role_name(role)
            .send()
            .await
            .map_err(|e| cloud_error(&e, "list inline policies of role", role))?;
        Ok(out.policy_names().to_vec())
    }

    async fn profiles_of(&self, role: &str) -> CloudResult<Vec<String>> {
        self.take().await;
        let out = self
            .0
            .iam
            .list_instance_profiles_for_role()
            .role_name(role)
            .send()
            .await
            .map_err(|e| cloud_error(&e, "list instance profiles of role", role))?;
        Ok(out.instance_profiles().iter().map(|p| p.instance_profile_name().to_owned()).collect())
    }

    async fn remove_role(&self, profile: &str, role: &str) -> CloudResult<()> {
        self.take().await;
        let r = self.0.iam.remove_role_from_instance_profile().instance_profile_name(profile).role_name(role).send();
        gone(r.await.map(|_| ()).map_err(|e| cloud_error(&e, "remove role from instance profile", profile)))
    }

    async fn delete_role_inner(&self, name: &str) -> CloudResult<()> {
        for p in self.profiles_of(name).await? {
            self.remove_role(&p, name).await?;
        }
        for policy in self.inline_policies(name).await? {
            self.take().await;
            let r = self.0.iam.delete_role_policy().role_name(name).policy_name(&policy).send().await;
            gone(r.map(|_| ()).map_err(|e| cloud_error(&e, "delete inline policy of role", name)))?;
        }
        for arn in self.attached(name).await? {
            self.take().await;
            let r = self.0.iam.detach_role_policy().role_name(name).policy_arn(&arn).send().await;
            gone(r.map(|_| ()).map_err(|e| cloud_error(&e, "detach managed policy from role", name)))?;
        }
        self.take().await;
        let r = self.0.iam.delete_role().role_name(name).send().await;
        r.map(|_| ()).map_err(|e| cloud_error(&e, "delete role", name))
    }

    async fn roles_under(&self, path: &str) -> CloudResult<Vec<IamEntity>> {
        let mut pages = self.0.iam.list_roles().path_prefix(path).into_paginator().send();
        let mut names = Vec::new();
        loop {
            self.take().await;
            let Some(page) = pages.next().await else { break };
            let page = page.map_err(|e| cloud_error(&e, "list roles under", path))?;
            names.extend(page.roles().iter().filter(|r| r.path().starts_with(path)).map(|r| r.role_name().to_owned()));
        }
        let mut out = Vec::new();
        for name in names {
            // ListRoles leaves tags out.
            if let Some(r) = self.role(&name).await? {
                out.push(IamEntity { kind: IamKind::Role, name, tags: r.tags });
            }
        }
        Ok(out)
    }

    async fn profiles_under(&self, path: &str) -> CloudResult<Vec<IamEntity>> {
        let mut pages = self.0.iam.list_instance_profiles().path_prefix(path).into_paginator().send();
        let mut names = Vec::new();
        loop {
            self.take().await;
            let Some(page) = pages.next().await else { break };
            let page = page.map_err(|e| cloud_error(&e, "list instance profiles under", path))?;
            // moto ignores PathPrefix for instance profiles: filter here too.
            let under = page.instance_profiles().iter().filter(|p| p.path().starts_with(path));
            names.extend(under.map(|p| p.instance_profile_name().to_owned()));
        }
        let mut out = Vec::new();
        for name in names {
            if let Some(p) = self.profile(&name).await? {
                out.push(IamEntity { kind: IamKind::InstanceProfile, name, tags: p.tags });
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Identities for Iam {
    async fn role(&self, name: &str) -> CloudResult<Option<Role>> {
        self.take().await;
        match self.0.iam.get_role().role_name(name).send().await {
            Ok(out) => Ok(out.role().map(role_of)),
            Err(e) => absent_as(cloud_error(&e, "read role", name), None),
        }
    }

    async fn create_role(&self, spec: &RoleSpec) -> CloudResult<Role> {
        let call = self
            .0
            .iam
            .create_role()
            .role_name(&spec.name)
            .path(&spec.path)
            .assume_role_policy_document(&spec.trust)
            .set_permissions_boundary(spec.boundary.clone())
            .set_tags(Some(sdk_tags(&spec.tags)));
        self.take().await;
        let out = call.send().await.map_err(|e| cloud_error(&e, "create role", &spec.name))?;
        out.role().map(role_of).ok_or_else(|| CloudError {
            kind: ErrorKind::Transient,
            action: "create role",
            target: spec.name.clone(),
            code: "EmptyAnswer".into(),
            message: "CreateRole answered without a role".into(),
        })
    }

    async fn policy(&self, role: &str, policy: &str) -> CloudResult<Option<String>> {
        self.take().await;
        match self.0.iam.get_role_policy().role_name(role).policy_name(policy).send().await {
            Ok(out) => Ok(Some(decode_document(out.policy_document()))),
            Err(e) => absent_as(cloud_error(&e, "read inline policy of role", role), None),
        }
    }

    async fn put_policy(&self, role: &str, policy: &str, document: &str) -> CloudResult<()> {
        self.take().await;
        let call = self.0.iam.put_role_policy().role_name(role).policy_name(policy).policy_document(document);
        call.send().await.map_err(|e| cloud_error(&e, "write inline policy of role", role))?;
        Ok(())
    }

    async fn attached(&self, role: &str) -> CloudResult<Vec<String>> {
        self.take().await;
        let out = self
            .0
            .iam
            .list_attached_role_policies()
            .role_name(role)
            .send()
            .await
            .map_err(|e| cloud_error(&e, "list managed policies of role", role))?;
        Ok(out.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_owned)).collect())
    }

    async fn profile(&self, name: &str) -> CloudResult<Option<Profile>> {
        self.take().await;
        match self.0.iam.get_instance_profile().instance_profile_name(name).send().await {
            Ok(out) => Ok(out.instance_profile().map(profile_of)),
            Err(e) => absent_as(cloud_error(&e, "read instance profile", name), None),
        }
    }

    async fn create_profile(&self, name: &str, path: &str, tags: &BTreeMap<String, String>) -> CloudResult<Profile> {
        let call =
            self.0.iam.create_instance_profile().instance_profile_name(name).path(path).set_tags(Some(sdk_tags(tags)));
        self.take().await;
        let out = call.send().await.map_err(|e| cloud_error(&e, "create instance profile", name))?;
        out.instance_profile().map(profile_of).ok_or_else(|| CloudError {
            kind: ErrorKind::Transient,
            action: "create instance profile",
            target: name.to_owned(),
            code: "EmptyAnswer".into(),
            message: "CreateInstanceProfile answered without a profile".into(),
        })
    }

    async fn add_role(&self, profile: &str, role: &str) -> CloudResult<()> {
        self.take().await;
        let call = self.0.iam.add_role_to_instance_profile().instance_profile_name(profile).role_name(role);
        call.send().await.map_err(|e| cloud_error(&e, "add role to instance profile", profile))?;
        Ok(())
    }

    async fn delete_profile(&self, name: &str) -> CloudResult<()> {
        let Some(p) = self.profile(name).await? else { return Ok(()) };
        for role in &p.roles {
            self.remove_role(name, role).await?;
        }
        self.take().await;
        let r = self.0.iam.delete_instance_profile().instance_profile_name(name).send().await;
        gone(r.map(|_| ()).map_err(|e| cloud_error(&e, "delete instance profile", name)))
    }

    async fn delete_role(&self, name: &str) -> CloudResult<()> {
        gone(self.delete_role_inner(name).await)
    }

    async fn list(&self, path: &str) -> CloudResult<Vec<IamEntity>> {
        let mut out = self.roles_under(path).await?;
        out.extend(self.profiles_under(path).await?);
        Ok(out)
    }
}
