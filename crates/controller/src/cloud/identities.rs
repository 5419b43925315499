//! IAM: the per-tenant roles and instance profiles (issue 12). Each Tenant gets a role and an
//! instance profile of the same name per use (its VM, its Workspaces), under a path and a
//! permissions boundary from configuration, tagged with the owner tags. Policy documents go in as
//! JSON text and come back as JSON text (decoded: IAM answers them URL-encoded).

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::CloudResult;

/// Where the roles live and what bounds them (TENANT_IAM_PATH, TENANT_IAM_PERMISSIONS_BOUNDARY).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IamSettings {
    /// IAM path, `/` first and last.
    pub path: String,
    /// Permissions boundary ARN.
    pub boundary: Option<String>,
}

impl Default for IamSettings {
    fn default() -> Self {
        Self { path: "/molecule/".into(), boundary: None }
    }
}

/// Everything a role is created with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleSpec {
    /// Role (and instance profile) name.
    pub name: String,
    /// IAM path, `/` first and last (`/molecule/`).
    pub path: String,
    /// Permissions boundary policy ARN, when configured.
    pub boundary: Option<String>,
    /// Trust policy (who may assume the role): EC2.
    pub trust: String,
    /// Owner tags, in the create call.
    pub tags: BTreeMap<String, String>,
}

/// A role as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    /// Name.
    pub name: String,
    /// ARN (`arn:<partition>:iam::<account>:role<path><name>`).
    pub arn: String,
    /// Path.
    pub path: String,
    /// All tags.
    pub tags: BTreeMap<String, String>,
}

/// An instance profile as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// Path.
    pub path: String,
    /// Names of the roles it holds (at most one on AWS).
    pub roles: Vec<String>,
    /// All tags.
    pub tags: BTreeMap<String, String>,
}

/// What an IAM listing holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IamKind {
    /// A role.
    Role,
    /// An instance profile.
    InstanceProfile,
}

/// One role or instance profile found by [`Identities::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IamEntity {
    /// Role or instance profile.
    pub kind: IamKind,
    /// Name.
    pub name: String,
    /// All tags.
    pub tags: BTreeMap<String, String>,
}

/// IAM of one account (global: no region).
#[async_trait]
pub trait Identities: Send + Sync {
    /// The role named `name`, with its tags; `None` when there is none.
    async fn role(&self, name: &str) -> CloudResult<Option<Role>>;
    /// Creates a role with its trust policy, path, boundary and tags in the create call.
    ///
    /// Caveat: a name that exists answers [`super::ErrorKind::Rejected`] with code
    /// `EntityAlreadyExists`; callers read [`Identities::role`] first, and again after that
    /// answer (a concurrent create), and check the owner tags either way.
    async fn create_role(&self, spec: &RoleSpec) -> CloudResult<Role>;
    /// The inline policy `policy` of `role`, decoded JSON text; `None` when missing.
    async fn policy(&self, role: &str, policy: &str) -> CloudResult<Option<String>>;
    /// Writes (creates or replaces) the inline policy `policy` of `role`.
    async fn put_policy(&self, role: &str, policy: &str, document: &str) -> CloudResult<()>;
    /// The managed policy ARNs attached to `role` (the operator attaches none; a delete detaches
    /// what someone else attached).
    async fn attached(&self, role: &str) -> CloudResult<Vec<String>>;
    /// The instance profile named `name`, with its roles and tags; `None` when there is none.
    async fn profile(&self, name: &str) -> CloudResult<Option<Profile>>;
    /// Creates an instance profile with its path and tags (same caveat as [`Self::create_role`]).
    async fn create_profile(&self, name: &str, path: &str, tags: &BTreeMap<String, String>) -> CloudResult<Profile>;
    /// Puts `role` in `profile`.
    async fn add_role(&self, profile: &str, role: &str) -> CloudResult<()>;
    /// Deletes an instance profile: its roles removed first. A missing profile is success.
    async fn delete_profile(&self, name: &str) -> CloudResult<()>;
    /// Deletes a role: removed from every profile, its inline policies deleted and managed ones
    /// detached first. A missing role is success.
    async fn delete_role(&self, name: &str) -> CloudResult<()>;
    /// Every role and instance profile under `path` (all pages), with their tags.
    async fn list(&self, path: &str) -> CloudResult<Vec<IamEntity>>;
}

/// Decodes an IAM policy document as IAM returns it: URL-encoded JSON (moto returns it plain;
/// plain JSON is returned as it is).
pub fn decode_document(text: &str) -> String {
    if text.trim_start().starts_with('{') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|b| char::from(*b).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b'+', ..) => {
                out.push(b' ');
                i += 1;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether two policy documents say the same (compared as JSON values; text that is not JSON
/// compares as text).
pub fn same_document(a: &str, b: &str) -> bool {
    match (serde_json::from_str::<serde_json::Value>(a), serde_json::from_str::<serde_json::Value>(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_decoded_as_iam_returns_them() {
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s:G","Resource":"a/b*"}]}"#;
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s%3AG%22%2C%22Resource%22%3A%22a%2Fb%2A%22%7D%5D%7D";
        assert_eq!(decode_document(encoded), doc);
        assert_eq!(decode_document(doc), doc, "moto answers plain JSON");
        assert!(same_document(
            &decode_document(encoded),
            &serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(doc).unwrap()).unwrap()
        ));
        assert!(!same_document(doc, &doc.replace("a/b*", "a/c*")));
        assert_eq!(decode_document("100%"), "100%", "a stray percent stays");
    }
}
