//! The tags of API.md ("Cloud resources and tags"). Built in one place so that every create call
//! carries the same set and users cannot override them. Names and marks that are not tags (the
//! DNS ownership mark, tunnel and bundle names, tokens) live in [`super::marks`].

use std::collections::BTreeMap;

/// Operator id.
pub const MANAGED_BY: &str = "moleculesai.app/managed-by";
/// Environment.
pub const ENV: &str = "moleculesai.app/env";
/// Tenant slug.
pub const TENANT: &str = "moleculesai.app/tenant";
/// Workspace or Tenant.
pub const OWNER_KIND: &str = "moleculesai.app/owner-kind";
/// The owner's metadata.uid: the key everything is found by.
pub const OWNER_UID: &str = "moleculesai.app/owner-uid";
/// `namespace/name` or `name`.
pub const OWNER: &str = "moleculesai.app/owner";
/// workspace or tenant.
pub const ROLE: &str = "Role";
/// Human name in the console.
pub const NAME: &str = "Name";
/// Launch attempt of an instance (ours, beyond API.md: tells a replacement from its predecessor).
pub const LAUNCH_ATTEMPT: &str = "moleculesai.app/launch-attempt";
/// What a volume is for (`data`).
pub const VOLUME_PURPOSE: &str = "moleculesai.app/volume";
/// Written by the instance's bootstrap: ready or failed.
pub const BOOT: &str = "moleculesai.app/boot";
/// Written by the instance's display stack: ready or offline.
pub const DISPLAY: &str = "moleculesai.app/display";
/// `true` on the resources of a Workspace deleted with `deletionPolicy: Retain`.
pub const RETAINED: &str = "moleculesai.app/retained";

/// Who owns a cloud resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Workspace or Tenant.
    pub kind: &'static str,
    /// metadata.uid.
    pub uid: String,
    /// Namespace, for Workspaces.
    pub namespace: Option<String>,
    /// metadata.name.
    pub name: String,
    /// Tenant slug.
    pub tenant: String,
}

impl Owner {
    /// `namespace/name` or `name`.
    pub fn qualified(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// The console name of API.md, truncated to 255 characters.
    pub fn console_name(&self) -> String {
        let mut n = match &self.namespace {
            Some(ns) => format!("ws-{}-{ns}-{}", self.tenant, self.name),
            None => format!("tenant-{}", self.name),
        };
        n.truncate(255);
        n
    }
}

/// The operator's identity in tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `moleculesai.app/managed-by`.
    pub operator_id: String,
    /// `moleculesai.app/env`.
    pub env: String,
}

impl Identity {
    /// The filter every list call uses: ours, in our environment.
    pub fn filter(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(MANAGED_BY.to_owned(), self.operator_id.clone()), (ENV.to_owned(), self.env.clone())])
    }

    /// The full tag set of API.md for a resource of `owner`.
    pub fn tags(&self, owner: &Owner) -> BTreeMap<String, String> {
        let mut t = self.filter();
        t.insert(TENANT.into(), owner.tenant.clone());
        t.insert(OWNER_KIND.into(), owner.kind.into());
        t.insert(OWNER_UID.into(), owner.uid.clone());
        t.insert(OWNER.into(), owner.qualified());
        t.insert(ROLE.into(), owner.kind.to_ascii_lowercase());
        t.insert(NAME.into(), owner.console_name());
        t
    }

    /// Whether `tags` mark a resource as ours (operator id and env both match).
    pub fn owns(&self, tags: &BTreeMap<String, String>) -> bool {
        tags.get(MANAGED_BY) == Some(&self.operator_id) && tags.get(ENV) == Some(&self.env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> Owner {
        Owner {
            kind: "Workspace",
            uid: "u-1".into(),
            namespace: Some("acme".into()),
            name: "a".into(),
            tenant: "acme".into(),
        }
    }

    #[test]
    fn tags_are_the_api_set() {
        let id = Identity { operator_id: "molecule-operator".into(), env: "dev".into() };
        let t = id.tags(&ws());
        let keys: Vec<_> = t.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [MANAGED_BY, ENV, OWNER, OWNER_KIND, OWNER_UID, TENANT, NAME, ROLE]
                .iter()
                .copied()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        );
        assert_eq!(t[NAME], "ws-acme-acme-a");
        assert_eq!(t[ROLE], "workspace");
        assert_eq!(t[OWNER], "acme/a");
        assert!(id.owns(&t));
        let other = Identity { operator_id: "molecule-operator".into(), env: "prod".into() };
        assert!(!other.owns(&t));
    }

    #[test]
    fn console_name_is_truncated() {
        let mut o = ws();
        o.name = "x".repeat(300);
        assert_eq!(o.console_name().len(), 255);
    }
}
