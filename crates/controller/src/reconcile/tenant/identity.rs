//! The Tenant's own AWS identities (issue 12; docs/design/identity.md): per use (its VM, its
//! Workspaces) an IAM role and an instance profile of the same name ([`IamName`]), under the
//! configured path and permissions boundary, tagged with the owner tags, whose inline policy
//! grants `GetSecretValue` on this tenant's secrets only and the self-tagging its bootstrap needs.
//!
//! Found by name and owned by tag: a role or profile of that name whose owner tags are not this
//! Tenant's is never used, changed or deleted ([`Outcome::NotOurs`]).

use std::collections::BTreeMap;

use molecule_crds::v1alpha1::IamIdentity;
use serde_json::json;

use crate::cloud::identities::{IamSettings, Identities, RoleSpec, same_document};
use crate::cloud::marks::{IamName, IamUse};
use crate::cloud::tags::{self, Identity, Owner};
use crate::cloud::{CloudError, CloudResult, ErrorKind};

/// The inline policy's name on both roles.
pub const POLICY_NAME: &str = "molecule-tenant";
/// What the SSM agent of the tenant VM needs for Run Command (the in-place redeploy): the
/// agent's own channel actions of AWS's `AmazonSSMManagedInstanceCore`, inline, without its
/// `ssm:GetParameter(s)` on every parameter of the account.
pub const SSM_AGENT_ACTIONS: [&str; 16] = [
    "ssm:UpdateInstanceInformation",
    "ssm:ListInstanceAssociations",
    "ssm:DescribeAssociation",
    "ssm:UpdateInstanceAssociationStatus",
    "ssm:GetDocument",
    "ssm:DescribeDocument",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
];

/// What the policy of one identity is built from.
#[derive(Clone, Copy, Debug)]
pub enum Grant<'a> {
    /// The tenant VM: its bundle's ARN, exactly.
    Vm {
        /// The bootstrap bundle's ARN.
        bundle_arn: &'a str,
        /// Region of the VM.
        region: &'a str,
        /// [`Identity::workspace_secret_prefix`]: the tenant platform reads the tags (never the
        /// values) of the tenant's Workspace secrets to check their tokens.
        workspaces: &'a str,
    },
    /// The Workspaces: every secret under the tenant's Workspace-secret prefix.
    Workspace {
        /// [`Identity::workspace_secret_prefix`].
        prefix: &'a str,
        /// Region of the Workspaces.
        region: &'a str,
    },
}

impl Grant<'_> {
    fn role(&self) -> IamUse {
        match self {
            Self::Vm { .. } => IamUse::Vm,
            Self::Workspace { .. } => IamUse::Workspace,
        }
    }
}

/// The trust policy of both roles: EC2 instances assume them.
pub fn trust_policy() -> String {
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"
    }]})
    .to_string()
}

/// The inline policy of `grant`, in the account and partition of the role's ARN.
pub fn policy(grant: &Grant<'_>, role_arn: &str) -> String {
    let (partition, account) = arn_account(role_arn);
    let (secrets, region, keys) = match grant {
        Grant::Vm { bundle_arn, region, .. } => ((*bundle_arn).to_owned(), *region, vec![tags::BOOT]),
        Grant::Workspace { prefix, region } => (
            format!("arn:{partition}:secretsmanager:{region}:{account}:secret:{prefix}*"),
            *region,
            vec![tags::BOOT, tags::DISPLAY],
        ),
    };
    let mut statements = vec![
        json!({"Sid": "ReadOwnSecrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secrets}),
        json!({"Sid": "TagOwnInstance", "Effect": "Allow", "Action": "ec2:CreateTags",
         "Resource": format!("arn:{partition}:ec2:{region}:{account}:instance/*"),
         "Condition": {"StringEquals": {"aws:ARN": "${ec2:SourceInstanceARN}"},
                       "ForAllValues:StringEquals": {"aws:TagKeys": keys}}}),
    ];
    if let Grant::Vm { workspaces, .. } = grant {
        // Workspace secrets live in the main account: for a canary Tenant this names its own
        // account, where there are none (no cross-account reads).
        let pattern = format!("arn:{partition}:secretsmanager:{region}:{account}:secret:{workspaces}*");
        statements.push(json!({"Sid": "DescribeOwnWorkspaceSecrets", "Effect": "Allow",
                               "Action": "secretsmanager:DescribeSecret", "Resource": pattern}));
        statements.push(json!({"Sid": "SsmAgent", "Effect": "Allow", "Action": SSM_AGENT_ACTIONS, "Resource": "*"}));
    }
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

/// (partition, account) of an IAM ARN (`arn:aws:iam::123456789012:role/x`); `("aws", "*")` when
/// it does not parse (never a wider grant: the resource still names the tenant's own prefix).
fn arn_account(arn: &str) -> (String, String) {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "iam", "", account, _] if !account.is_empty() => {
            ((*partition).to_owned(), (*account).to_owned())
        }
        _ => ("aws".to_owned(), "*".to_owned()),
    }
}

/// How long converged identities go unchecked (no IAM call) while their inputs are unchanged: a
/// policy changed by hand is written back within this time (and at every operator start).
pub const RECHECK: std::time::Duration = std::time::Duration::from_hours(1);

/// The digest of everything the two identities are built from.
pub fn digest(settings: &IamSettings, grants: &[(&str, Grant<'_>)]) -> String {
    use sha2::{Digest, Sha256};
    let text = format!("{settings:?}|{grants:?}");
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

/// What [`ensure`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The identity is in place (status value).
    Ready(IamIdentity),
    /// A role or instance profile of the name exists without this Tenant's owner tags: not
    /// ours, never adopted (`Stalled`, reason `IamRoleNotOurs`).
    NotOurs(String),
}

/// Whether `found` tags mark it as this owner's, by this operator.
fn is_ours(me: &Identity, owner: &Owner, found: &BTreeMap<String, String>) -> bool {
    me.owns(found) && found.get(tags::OWNER_UID) == Some(&owner.uid)
}

fn bad_uid(owner: &Owner) -> CloudError {
    CloudError {
        kind: ErrorKind::Rejected,
        action: "name the IAM role of",
        target: owner.uid.clone(),
        code: "InvalidName".into(),
        message: "the Tenant's uid does not fit an IAM role name".into(),
    }
}

/// The role of `spec.name`, created when missing. `EntityAlreadyExists` (made meanwhile: a
/// concurrent reconcile, an answer lost) reads it again; whose it is, the caller checks.
async fn find_or_create_role(iam: &dyn Identities, spec: &RoleSpec) -> CloudResult<crate::cloud::identities::Role> {
    if let Some(r) = iam.role(&spec.name).await? {
        return Ok(r);
    }
    match iam.create_role(spec).await {
        Ok(r) => Ok(r),
        Err(e) if e.code == "EntityAlreadyExists" => iam.role(&spec.name).await?.ok_or(e),
        Err(e) => Err(e),
    }
}

/// Converges one identity of `owner` in the account of `iam` (named `account`).
pub async fn ensure(
    iam: &dyn Identities,
    me: &Identity,
    settings: &IamSettings,
    owner: &Owner,
    account: &str,
    grant: &Grant<'_>,
) -> CloudResult<Outcome> {
    let use_ = grant.role();
    let name = IamName::new(use_, &owner.uid).ok_or_else(|| bad_uid(owner))?.render();
    let tags = me.tags(owner);
    let spec = RoleSpec {
        name: name.clone(),
        path: me.iam_path(&settings.path),
        boundary: settings.boundary.clone(),
        trust: trust_policy(),
        tags: tags.clone(),
    };
    let role = find_or_create_role(iam, &spec).await?;
    if !is_ours(me, owner, &role.tags) {
        return Ok(Outcome::NotOurs(format!("IAM role {name} exists and is not this Tenant's (owner tags differ)")));
    }
    let document = policy(grant, &role.arn);
    if !iam.policy(&name, POLICY_NAME).await?.is_some_and(|d| same_document(&d, &document)) {
        iam.put_policy(&name, POLICY_NAME, &document).await?;
    }
    let profile = match iam.profile(&name).await? {
        Some(p) => p,
        None => match iam.create_profile(&name, &spec.path, &tags).await {
            Ok(p) => p,
            Err(e) if e.code == "EntityAlreadyExists" => iam.profile(&name).await?.ok_or(e)?,
            Err(e) => return Err(e),
        },
    };
    if !is_ours(me, owner, &profile.tags) {
        return Ok(Outcome::NotOurs(format!("instance profile {name} exists and is not this Tenant's")));
    }
    if !profile.roles.contains(&name)
        && let Err(e) = iam.add_role(&name, &name).await
        && e.code != "EntityAlreadyExists"
    {
        return Err(e);
    }
    Ok(Outcome::Ready(IamIdentity {
        account: account.to_owned(),
        role: name.clone(),
        role_arn: Some(role.arn),
        instance_profile: name,
    }))
}

/// The erasure step (after the instances and groups, before the bundle): in every account the
/// Tenant may use, each identity whose owner tags are this Tenant's is listed in the receipt,
/// deleted (the profile first: a role in a profile cannot be deleted) and confirmed gone by a
/// read. One of that name that is not ours is left alone (and was never used).
pub async fn erase_step(e: &mut super::erase::Erasure<'_>) -> Result<(), crate::reconcile::Error> {
    let name_of = |u| IamName::new(u, &e.owner.uid).map(|n| n.render()).ok_or_else(|| bad_uid(e.owner));
    for a in e.accounts.clone() {
        let place = Some((a.name, a.region.as_str()));
        for use_ in IamUse::ALL {
            let name = name_of(use_)?;
            let iam = a.identities.as_ref();
            if let Some(p) = iam.profile(&name).await?.filter(|p| is_ours(&e.ctx.identity, e.owner, &p.tags)) {
                e.receipt.requested("InstanceProfile", &p.name, place, &e.now);
                iam.delete_profile(&name).await?;
                if iam.profile(&name).await?.is_some() {
                    return Err(wait_for("instance profile", &name));
                }
                e.receipt.gone("InstanceProfile", &name, &e.now);
            }
            if let Some(r) = iam.role(&name).await?.filter(|r| is_ours(&e.ctx.identity, e.owner, &r.tags)) {
                e.receipt.requested("IamRole", &r.name, place, &e.now);
                iam.delete_role(&name).await?;
                if iam.role(&name).await?.is_some() {
                    return Err(wait_for("IAM role", &name));
                }
                e.receipt.gone("IamRole", &name, &e.now);
            }
        }
    }
    Ok(())
}

fn wait_for(what: &str, name: &str) -> crate::reconcile::Error {
    crate::reconcile::Error::waiting_for(format!("{what} {name} to be deleted"), std::time::Duration::from_secs(2))
}
