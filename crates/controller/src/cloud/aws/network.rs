//! EC2 security groups.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, Ipv6Range, ResourceType, UserIdGroupPair};

use super::limiter::Class;
use super::{Aws, cloud_error, gone, tag_filters, tag_map, tag_spec};
use crate::cloud::{CloudError, CloudResult, ErrorKind, Network, Peer, Rule, RuleChange, SecurityGroup};

/// Largest page EC2 serves for DescribeSecurityGroups.
const PAGE: i32 = 1000;

fn to_group(g: &aws_sdk_ec2::types::SecurityGroup) -> Option<SecurityGroup> {
    Some(SecurityGroup {
        id: g.group_id()?.to_owned(),
        tags: tag_map(g.tags()),
        ingress: flatten(g.ip_permissions()),
        egress: flatten(g.ip_permissions_egress()),
    })
}

/// [`Network`] on EC2, in one VPC.
#[derive(Clone, Debug)]
pub struct Ec2Network {
    aws: Aws,
    vpc_id: String,
}

impl Ec2Network {
    /// Security groups of `vpc_id`.
    pub fn new(aws: Aws, vpc_id: String) -> Self {
        Self { aws, vpc_id }
    }

    async fn describe(&self, filters: Vec<Filter>) -> CloudResult<Vec<SecurityGroup>> {
        let mut pages =
            self.aws.ec2.describe_security_groups().set_filters(Some(filters)).into_paginator().page_size(PAGE).send();
        let mut out = Vec::new();
        loop {
            self.aws.limiter.take(Class::Describe).await;
            let Some(page) = pages.next().await else { return Ok(out) };
            let page = page.map_err(|e| cloud_error(&e, "describe security groups", "by filter"))?;
            out.extend(page.security_groups().iter().filter_map(to_group));
        }
    }

    /// One rule change; a duplicate authorize or a missing revoke is already the wanted state.
    async fn change(&self, group: &str, rules: &[Rule], change: RuleChange) -> CloudResult<()> {
        if rules.is_empty() {
            return Ok(());
        }
        self.aws.limiter.take(Class::Mutate).await;
        let perms = Some(rules.iter().map(permission).collect());
        let ec2 = &self.aws.ec2;
        let (result, ok_code) = match change {
            RuleChange::AuthorizeIngress => (
                ec2.authorize_security_group_ingress()
                    .group_id(group)
                    .set_ip_permissions(perms)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| cloud_error(&e, "authorize ingress on", group)),
                "InvalidPermission.Duplicate",
            ),
            RuleChange::RevokeIngress => (
                ec2.revoke_security_group_ingress()
                    .group_id(group)
                    .set_ip_permissions(perms)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| cloud_error(&e, "revoke ingress on", group)),
                "InvalidPermission.NotFound",
            ),
            RuleChange::AuthorizeEgress => (
                ec2.authorize_security_group_egress()
                    .group_id(group)
                    .set_ip_permissions(perms)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| cloud_error(&e, "authorize egress on", group)),
                "InvalidPermission.Duplicate",
            ),
            RuleChange::RevokeEgress => (
                ec2.revoke_security_group_egress()
                    .group_id(group)
                    .set_ip_permissions(perms)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| cloud_error(&e, "revoke egress on", group)),
                "InvalidPermission.NotFound",
            ),
        };
        tolerate(result, ok_code)
    }
}

/// One [`Rule`] per peer of every permission.
fn flatten(perms: &[IpPermission]) -> Vec<Rule> {
    let mut out = Vec::new();
    for p in perms {
        let protocol = p.ip_protocol().unwrap_or("-1").to_owned();
        let (from_port, to_port) =
            if protocol == "-1" { (-1, -1) } else { (p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1)) };
        let rule = |peer| Rule { protocol: protocol.clone(), from_port, to_port, peer };
        out.extend(p.user_id_group_pairs().iter().filter_map(|g| g.group_id()).map(|g| rule(Peer::Group(g.into()))));
        out.extend(p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).map(|c| rule(Peer::Cidr(c.into()))));
        out.extend(p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6()).map(|c| rule(Peer::Cidr6(c.into()))));
    }
    out.sort();
    out
}

fn permission(r: &Rule) -> IpPermission {
    let mut b = IpPermission::builder().ip_protocol(&r.protocol);
    if r.protocol != "-1" {
        b = b.from_port(r.from_port).to_port(r.to_port);
    }
    match &r.peer {
        Peer::Group(g) => b.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build()),
        Peer::Cidr(c) => b.ip_ranges(IpRange::builder().cidr_ip(c).build()),
        Peer::Cidr6(c) => b.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(c).build()),
    }
    .build()
}

/// A duplicate authorize or a missing revoke already is the state we want.
fn tolerate(r: Result<(), CloudError>, ok_code: &str) -> CloudResult<()> {
    match r {
        Err(e) if e.code == ok_code => Ok(()),
        other => other,
    }
}

#[async_trait]
impl Network for Ec2Network {
    async fn list(&self, filters: &BTreeMap<String, String>) -> CloudResult<Vec<SecurityGroup>> {
        self.describe(tag_filters(filters)).await
    }

    async fn describe(&self, ids: &[String]) -> CloudResult<Vec<SecurityGroup>> {
        super::ec2::by_ids(&self.aws, ids, |ids| async move {
            let target = ids.join(",");
            let page = self.aws.ec2.describe_security_groups().set_group_ids(Some(ids)).send().await;
            let page = page.map_err(|e| cloud_error(&e, "describe security groups", target))?;
            Ok(page.security_groups().iter().filter_map(to_group).collect())
        })
        .await
    }

    async fn create(&self, name: &str, description: &str, tags: &BTreeMap<String, String>) -> CloudResult<String> {
        self.aws.limiter.take(Class::Mutate).await;
        let res = self
            .aws
            .ec2
            .create_security_group()
            .group_name(name)
            .description(description)
            .vpc_id(&self.vpc_id)
            .tag_specifications(tag_spec(ResourceType::SecurityGroup, tags))
            .send()
            .await;
        match res {
            Ok(out) => out.group_id().map(str::to_owned).ok_or_else(|| CloudError {
                kind: ErrorKind::Transient,
                action: "create security group",
                target: name.into(),
                code: "EmptyResponse".into(),
                message: "CreateSecurityGroup returned no group id".into(),
            }),
            Err(e) => {
                let err = cloud_error(&e, "create security group", name);
                if err.code != "InvalidGroup.Duplicate" {
                    return Err(err);
                }
                // Created by an earlier attempt whose answer we lost: find it by name.
                let filters = vec![
                    Filter::builder().name("group-name").values(name).build(),
                    Filter::builder().name("vpc-id").values(&self.vpc_id).build(),
                ];
                self.describe(filters).await?.into_iter().next().map(|g| g.id).ok_or(err)
            }
        }
    }

    async fn change_rules(&self, group: &str, rules: &[Rule], change: RuleChange) -> CloudResult<()> {
        self.change(group, rules, change).await
    }

    async fn delete(&self, group: &str) -> CloudResult<()> {
        self.aws.limiter.take(Class::Mutate).await;
        let r = self.aws.ec2.delete_security_group().group_id(group).send().await;
        gone(r.map(|_| ()).map_err(|e| cloud_error(&e, "delete security group", group)))
    }
}
