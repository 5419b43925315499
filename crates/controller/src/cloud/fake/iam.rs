//! IAM: roles (trust policy, boundary, inline and managed policies), instance profiles, with
//! AWS's answers: `NoSuchEntity`, `EntityAlreadyExists`, `LimitExceeded` for a second role in a
//! profile. A delete cascades as the AWS implementation does (profiles emptied, policies
//! removed first); each delete is one logged call.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::state::State;
use super::{FakeCloud, aws_error, ops};
use crate::cloud::CloudResult;
use crate::cloud::identities::{IamEntity, IamKind, Identities, Profile, Role, RoleSpec};
use crate::cloud::tags::OWNER_UID;

/// The fake's account number in IAM ARNs.
const ACCOUNT: &str = "000000000000";

/// A role and what IAM keeps beside it.
#[derive(Clone, Debug)]
pub struct FRole {
    /// The role.
    pub role: Role,
    /// Trust policy.
    pub trust: String,
    /// Permissions boundary.
    pub boundary: Option<String>,
    /// Inline policies by name.
    pub policies: BTreeMap<String, String>,
    /// Managed policy ARNs.
    pub attached: Vec<String>,
}

/// IAM's state.
#[derive(Clone, Debug, Default)]
pub struct IamState {
    /// Roles by name.
    pub roles: BTreeMap<String, FRole>,
    /// Instance profiles by name.
    pub profiles: BTreeMap<String, Profile>,
}

fn no_such(action: &'static str, kind: &str, name: &str) -> crate::cloud::CloudError {
    aws_error(action, name, "NoSuchEntity", &format!("The {kind} with name {name} cannot be found."))
}

fn exists(action: &'static str, kind: &str, name: &str) -> crate::cloud::CloudError {
    aws_error(action, name, "EntityAlreadyExists", &format!("{kind} with name {name} already exists."))
}

impl State {
    fn iam_role(&self, name: &str, action: &'static str) -> CloudResult<&FRole> {
        self.iam.roles.get(name).ok_or_else(|| no_such(action, "role", name))
    }

    fn iam_role_mut(&mut self, name: &str, action: &'static str) -> CloudResult<&mut FRole> {
        self.iam.roles.get_mut(name).ok_or_else(|| no_such(action, "role", name))
    }
}

/// [`Identities`] of a [`FakeCloud`].
#[derive(Debug)]
pub(super) struct FakeIdentities(pub FakeCloud);

#[async_trait]
impl Identities for FakeIdentities {
    async fn role(&self, name: &str) -> CloudResult<Option<Role>> {
        self.0.call(ops::GET_ROLE, "read role", name, None, |s| Ok(s.iam.roles.get(name).map(|r| r.role.clone())))
    }

    async fn create_role(&self, spec: &RoleSpec) -> CloudResult<Role> {
        let owner = spec.tags.get(OWNER_UID).map(String::as_str);
        self.0.call(ops::CREATE_ROLE, "create role", &spec.name, owner, |s| {
            if s.iam.roles.contains_key(&spec.name) {
                return Err(exists("create role", "Role", &spec.name));
            }
            let role = Role {
                name: spec.name.clone(),
                arn: format!("arn:aws:iam::{ACCOUNT}:role{}{}", spec.path, spec.name),
                path: spec.path.clone(),
                tags: spec.tags.clone(),
            };
            let f = FRole {
                role: role.clone(),
                trust: spec.trust.clone(),
                boundary: spec.boundary.clone(),
                policies: BTreeMap::new(),
                attached: Vec::new(),
            };
            s.iam.roles.insert(spec.name.clone(), f);
            Ok(role)
        })
    }

    async fn policy(&self, role: &str, policy: &str) -> CloudResult<Option<String>> {
        self.0.call(ops::GET_ROLE_POLICY, "read inline policy of role", role, None, |s| {
            Ok(s.iam_role(role, "read inline policy of role")?.policies.get(policy).cloned())
        })
    }

    async fn put_policy(&self, role: &str, policy: &str, document: &str) -> CloudResult<()> {
        self.0.call(ops::PUT_ROLE_POLICY, "write inline policy of role", role, None, |s| {
            s.iam_role_mut(role, "write inline policy of role")?
                .policies
                .insert(policy.to_owned(), document.to_owned());
            Ok(())
        })
    }

    async fn attached(&self, role: &str) -> CloudResult<Vec<String>> {
        self.0.call(ops::LIST_ATTACHED_ROLE_POLICIES, "list managed policies of role", role, None, |s| {
            Ok(s.iam_role(role, "list managed policies of role")?.attached.clone())
        })
    }

    async fn profile(&self, name: &str) -> CloudResult<Option<Profile>> {
        self.0.call(ops::GET_INSTANCE_PROFILE, "read instance profile", name, None, |s| {
            Ok(s.iam.profiles.get(name).cloned())
        })
    }

    async fn create_profile(&self, name: &str, path: &str, tags: &BTreeMap<String, String>) -> CloudResult<Profile> {
        let owner = tags.get(OWNER_UID).map(String::as_str);
        self.0.call(ops::CREATE_INSTANCE_PROFILE, "create instance profile", name, owner, |s| {
            if s.iam.profiles.contains_key(name) {
                return Err(exists("create instance profile", "Instance Profile", name));
            }
            let p = Profile {
                name: name.to_owned(),
                arn: format!("arn:aws:iam::{ACCOUNT}:instance-profile{path}{name}"),
                path: path.to_owned(),
                roles: Vec::new(),
                tags: tags.clone(),
            };
            s.iam.profiles.insert(name.to_owned(), p.clone());
            Ok(p)
        })
    }

    async fn add_role(&self, profile: &str, role: &str) -> CloudResult<()> {
        self.0.call(ops::ADD_ROLE_TO_INSTANCE_PROFILE, "add role to instance profile", profile, None, |s| {
            s.iam_role(role, "add role to instance profile")?;
            let p = s
                .iam
                .profiles
                .get_mut(profile)
                .ok_or_else(|| no_such("add role to instance profile", "instance profile", profile))?;
            if p.roles.iter().any(|r| r == role) {
                return Err(exists("add role to instance profile", "Role in instance profile", role));
            }
            if !p.roles.is_empty() {
                let msg = "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1";
                return Err(aws_error("add role to instance profile", profile, "LimitExceeded", msg));
            }
            p.roles.push(role.to_owned());
            Ok(())
        })
    }

    async fn delete_profile(&self, name: &str) -> CloudResult<()> {
        self.0.call(ops::DELETE_INSTANCE_PROFILE, "delete instance profile", name, None, |s| {
            s.iam.profiles.remove(name);
            Ok(())
        })
    }

    async fn delete_role(&self, name: &str) -> CloudResult<()> {
        self.0.call(ops::DELETE_ROLE, "delete role", name, None, |s| {
            for p in s.iam.profiles.values_mut() {
                p.roles.retain(|r| r != name);
            }
            s.iam.roles.remove(name);
            Ok(())
        })
    }

    async fn list(&self, path: &str) -> CloudResult<Vec<IamEntity>> {
        self.0.call(ops::LIST_ROLES, "list roles under", path, None, |s| {
            let roles = s.iam.roles.values().filter(|r| r.role.path.starts_with(path)).map(|r| IamEntity {
                kind: IamKind::Role,
                name: r.role.name.clone(),
                tags: r.role.tags.clone(),
            });
            let profiles = s.iam.profiles.values().filter(|p| p.path.starts_with(path)).map(|p| IamEntity {
                kind: IamKind::InstanceProfile,
                name: p.name.clone(),
                tags: p.tags.clone(),
            });
            Ok(roles.chain(profiles).collect())
        })
    }
}

impl FakeCloud {
    /// IAM.
    pub fn identities(&self) -> std::sync::Arc<dyn Identities> {
        std::sync::Arc::new(FakeIdentities(self.clone()))
    }

    /// The role named `name` with its trust, boundary and policies (tests read documents here).
    pub fn iam_role(&self, name: &str) -> Option<FRole> {
        self.lock().iam.roles.get(name).cloned()
    }

    /// The instance profile named `name`.
    pub fn iam_profile(&self, name: &str) -> Option<Profile> {
        self.lock().iam.profiles.get(name).cloned()
    }

    /// Puts a role in IAM as someone else made it (a foreign role of a name the operator uses).
    pub fn seed_role(&self, name: &str, path: &str, tags: BTreeMap<String, String>) {
        let role = Role {
            name: name.to_owned(),
            arn: format!("arn:aws:iam::{ACCOUNT}:role{path}{name}"),
            path: path.to_owned(),
            tags,
        };
        let f = FRole { role, trust: String::new(), boundary: None, policies: BTreeMap::new(), attached: Vec::new() };
        self.lock().iam.roles.insert(name.to_owned(), f);
    }
}
