//! Every name and mark the operator writes into a cloud and later reads back, each rendered and
//! parsed in one place: the DNS TXT ownership mark, the Cloudflare ownership record's name,
//! tunnel names, bootstrap bundle names, launch tokens and the data volume's ClientToken.
//!
//! A writer renders through this module and a reader parses through it, so a change of format
//! changes both at once (an erasure that parsed a mark by hand would stop finding records while
//! its receipt still said complete). Callers ask "is this ours", they never compare strings.
//! The tag set itself stays in [`super::tags`].

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};

use super::tags::{Identity, Owner};

/// The `heritage` every DNS mark of this operator carries, whatever its operator id.
const HERITAGE: &str = "molecule-operator";

/// Prefix of the Cloudflare ownership record's name: `_molecule-owner.<hostname>` (a CNAME cannot
/// share its name with another record, so the mark lives beside it).
pub const MARK_PREFIX: &str = "_molecule-owner";

/// The TXT ownership mark written beside every DNS record the operator owns. It names the owner
/// by kind and uid only, so it stays well inside a TXT string's 255 characters whatever the names
/// (an operator id of 63 characters still fits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsMark {
    /// The writer's operator id (`managed-by`).
    pub operator_id: String,
    /// The writer's environment.
    pub env: String,
    /// Workspace or Tenant (kept as written: a reader must not drop a mark of a kind it does not
    /// know yet).
    pub owner_kind: String,
    /// The owner's metadata.uid.
    pub owner_uid: String,
}

impl DnsMark {
    /// The text of the TXT record.
    pub fn render(&self) -> String {
        format!(
            "heritage={HERITAGE},managed-by={},env={},owner-kind={},owner-uid={}",
            self.operator_id, self.env, self.owner_kind, self.owner_uid
        )
    }

    /// A mark from a TXT value (quoted, as Route 53 returns it, or not); `None` for a text this
    /// operator (any operator id) did not write or that lacks a field.
    pub fn parse(text: &str) -> Option<Self> {
        let fields: BTreeMap<&str, &str> =
            text.trim().trim_matches('"').split(',').filter_map(|kv| kv.split_once('=')).collect();
        if fields.get("heritage") != Some(&HERITAGE) {
            return None;
        }
        let field = |k: &str| fields.get(k).map(|v| (*v).to_owned());
        Some(Self {
            operator_id: field("managed-by")?,
            env: field("env")?,
            owner_kind: field("owner-kind")?,
            owner_uid: field("owner-uid")?,
        })
    }

    /// Whether `text` is this very mark (same writer, same owner).
    pub fn matches(&self, text: &str) -> bool {
        Self::parse(text).as_ref() == Some(self)
    }
}

impl fmt::Display for DnsMark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// The name of the Cloudflare ownership record of `hostname`.
pub fn owner_record_name(hostname: &str) -> String {
    format!("{MARK_PREFIX}.{hostname}")
}

/// The hostname an ownership record's name stands beside; `None` for any other name.
pub fn owner_record_host(name: &str) -> Option<&str> {
    name.strip_prefix(MARK_PREFIX)?.strip_prefix('.').filter(|h| !h.is_empty())
}

/// What an owner is, as launch tokens name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OwnerKind {
    /// A Workspace's instance.
    Workspace,
    /// A Tenant's VM.
    Tenant,
}

impl OwnerKind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Workspace => "ws",
            Self::Tenant => "tn",
        }
    }
}

/// The EC2 ClientToken of one launch attempt: `ws-<uid>-<attempt>` or `tn-<uid>-<attempt>`.
/// Deterministic per (kind, uid, attempt), so a retried launch is the same request, and readable
/// back, so a token found in status or on an instance names its owner.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LaunchToken {
    kind: OwnerKind,
    uid: String,
    attempt: u32,
}

impl LaunchToken {
    /// EC2's limit on a ClientToken.
    pub const MAX_LEN: usize = 64;
    /// The longest uid that fits beside the prefix and the largest attempt (a Kubernetes uid has 36).
    pub const MAX_UID: usize = Self::MAX_LEN - "ws--".len() - "4294967295".len();

    /// The token of `attempt` for `uid`; `None` when the uid is empty, too long, or not plain
    /// ASCII (EC2 accepts printable ASCII only).
    pub fn new(kind: OwnerKind, uid: &str, attempt: u32) -> Option<Self> {
        let ok = !uid.is_empty() && uid.len() <= Self::MAX_UID && uid.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self { kind, uid: uid.to_owned(), attempt })
    }

    /// Whose launch this is.
    pub fn kind(&self) -> OwnerKind {
        self.kind
    }

    /// The owner's uid.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The launch attempt.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The ClientToken (at most [`Self::MAX_LEN`] ASCII characters).
    pub fn render(&self) -> String {
        format!("{}-{}-{}", self.kind.prefix(), self.uid, self.attempt)
    }

    /// A token from its text; `None` for anything else (a token of the older hashed form too).
    pub fn parse(text: &str) -> Option<Self> {
        let (prefix, rest) = text.split_once('-')?;
        let kind = [OwnerKind::Workspace, OwnerKind::Tenant].into_iter().find(|k| k.prefix() == prefix)?;
        let (uid, attempt) = rest.rsplit_once('-')?;
        // `u32::from_str` takes a leading `+`: refuse it, so that only a rendered text parses.
        if !attempt.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Self::new(kind, uid, attempt.parse().ok()?)
    }
}

impl fmt::Display for LaunchToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// The ClientToken of generation `generation` of an owner's data volume, so that a create
/// retried after a crash finds the volume the first one made, and a volume deleted behind the
/// operator's back is replaced by the next generation (AWS answers a used token with the volume
/// it made, even once that is deleted). Generation 0 is the value volumes were created with
/// before generations (one per uid): a record-less volume of that time keeps its token.
pub fn data_volume_token(owner_uid: &str, generation: u32) -> String {
    let base = format!("data-{}", hex::encode(&Sha256::digest(owner_uid.as_bytes())[..16]));
    if generation == 0 { base } else { format!("{base}-{generation}") }
}

impl Identity {
    /// The DNS ownership mark of `owner`, written by this operator.
    pub fn dns_mark(&self, owner: &Owner) -> DnsMark {
        DnsMark {
            operator_id: self.operator_id.clone(),
            env: self.env.clone(),
            owner_kind: owner.kind.to_owned(),
            owner_uid: owner.uid.clone(),
        }
    }

    /// The mark in `text` if this operator id in this environment wrote it (any owner).
    pub fn our_mark(&self, text: &str) -> Option<DnsMark> {
        DnsMark::parse(text).filter(|m| m.operator_id == self.operator_id && m.env == self.env)
    }

    /// Whether `text` is a mark of this operator id in this environment (any owner).
    pub fn is_our_mark(&self, text: &str) -> bool {
        self.our_mark(text).is_some()
    }

    /// The Cloudflare tunnel of Tenant `slug`: unique per operator id, environment and tenant.
    pub fn tunnel_name(&self, slug: &str) -> String {
        format!("{}.{}.{slug}", self.operator_id, self.env)
    }

    /// The Tenant slug a tunnel of ours is named after; `None` for another's tunnel. A slug is a
    /// DNS label: a name with a dot after our prefix belongs to another operator id that starts
    /// like ours (`a` and `a.dev`).
    pub fn tunnel_slug<'a>(&self, name: &'a str) -> Option<&'a str> {
        let rest = name.strip_prefix(&self.operator_id)?.strip_prefix('.')?.strip_prefix(&self.env)?;
        rest.strip_prefix('.').filter(|s| !s.is_empty() && !s.contains('.'))
    }

    /// The Secrets Manager name of Tenant `slug`'s bootstrap bundle.
    pub fn bundle_name(&self, slug: &str) -> String {
        format!("{}/{}/tenants/{slug}/bootstrap", self.operator_id, self.env)
    }

    /// The Tenant slug of a bundle name of ours; `None` for another's secret.
    pub fn bundle_slug<'a>(&self, name: &'a str) -> Option<&'a str> {
        let rest = name.strip_prefix(&self.operator_id)?.strip_prefix('/')?.strip_prefix(&self.env)?;
        let slug = rest.strip_prefix("/tenants/")?.strip_suffix("/bootstrap")?;
        (!slug.is_empty() && !slug.contains('/')).then_some(slug)
    }
}

/// Which of a Tenant's two IAM identities (role and instance profile of the same name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IamUse {
    /// The tenant VM's: reads the tenant's bootstrap bundle.
    Vm,
    /// The tenant's Workspaces': reads the tenant's Workspace secrets only.
    Workspace,
}

impl IamUse {
    /// Both, in the order they are created.
    pub const ALL: [Self; 2] = [Self::Vm, Self::Workspace];

    fn infix(self) -> &'static str {
        match self {
            Self::Vm => "vm",
            Self::Workspace => "ws",
        }
    }
}

/// The name of a Tenant's IAM role and of the instance profile holding it:
/// `molecule-tenant-vm-<uid>` or `molecule-tenant-ws-<uid>`. Named after the Tenant's uid, not
/// its slug: a Tenant re-created under the same name while the old one is being erased gets
/// identities of its own, and the name fits IAM's 64 characters for role names whatever the slug.
/// The name only finds the role: whose it is, the owner tags say (checked before any use).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IamName {
    role: IamUse,
    uid: String,
}

impl IamName {
    /// IAM's limit on a role name (instance profiles allow 128).
    pub const MAX_LEN: usize = 64;
    const PREFIX: &'static str = "molecule-tenant-";

    /// The name of `role` for Tenant `uid`; `None` when the uid is empty, too long or holds a
    /// character IAM does not accept in a name (`[A-Za-z0-9+=,.@_-]`).
    pub fn new(role: IamUse, uid: &str) -> Option<Self> {
        let fits = Self::PREFIX.len() + role.infix().len() + 1 + uid.len() <= Self::MAX_LEN;
        let chars = uid.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
        (fits && chars && !uid.is_empty()).then(|| Self { role, uid: uid.to_owned() })
    }

    /// Which identity.
    pub fn role(&self) -> IamUse {
        self.role
    }

    /// The Tenant's uid.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The role (and instance profile) name.
    pub fn render(&self) -> String {
        format!("{}{}-{}", Self::PREFIX, self.role.infix(), self.uid)
    }

    /// A name from its text; `None` for a name this operator does not write.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(Self::PREFIX)?;
        let (infix, uid) = rest.split_once('-')?;
        let role = IamUse::ALL.into_iter().find(|r| r.infix() == infix)?;
        Self::new(role, uid)
    }
}

impl fmt::Display for IamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl Identity {
    /// The IAM path of this operator's per-tenant roles and instance profiles:
    /// `<TENANT_IAM_PATH><operator id>/<env>/` (`/molecule/molecule-operator/prod/`). One path per
    /// operator id and environment, so the orphan scan lists only its own (ListRoles by path
    /// prefix) and reads the tags of nothing else, and the operator's IAM policy can be scoped to
    /// `<TENANT_IAM_PATH>*`.
    pub fn iam_path(&self, base: &str) -> String {
        format!("{base}{}/{}/", self.operator_id, self.env)
    }

    /// The name prefix of every Workspace secret of Tenant `slug`:
    /// `<operator id>/<env>/tenants/<slug>/workspaces/`. It ends with the tenant's own path
    /// segment and `/`, so the Workspace role's `<prefix>*` ARN pattern matches no other tenant's
    /// secret (a slug is a DNS label: it holds no `/`), and not the tenant's bundle either.
    pub fn workspace_secret_prefix(&self, slug: &str) -> String {
        format!("{}/{}/tenants/{slug}/workspaces/", self.operator_id, self.env)
    }

    /// The Secrets Manager name of a Workspace's own secret: its tenant's prefix and its uid.
    pub fn workspace_secret_name(&self, slug: &str, uid: &str) -> String {
        format!("{}{uid}", self.workspace_secret_prefix(slug))
    }

    /// The tenant slug of a Workspace secret name of ours; `None` for any other name.
    pub fn workspace_secret_tenant<'a>(&self, name: &'a str) -> Option<&'a str> {
        let rest = name.strip_prefix(&self.operator_id)?.strip_prefix('/')?.strip_prefix(&self.env)?;
        let (slug, uid) = rest.strip_prefix("/tenants/")?.split_once("/workspaces/")?;
        let plain = |s: &str| !s.is_empty() && !s.contains('/');
        (plain(slug) && plain(uid)).then_some(slug)
    }
}

/// The hostname of a Workspace: `<name>.<tenant>.<domain>`, or `<name>.<namespace>.<tenant>.<domain>`
/// when its namespace is not named after its tenant.
pub fn workspace_hostname(name: &str, namespace: &str, tenant: &str, domain: &str) -> String {
    if namespace == tenant {
        format!("{name}.{tenant}.{domain}")
    } else {
        format!("{name}.{namespace}.{tenant}.{domain}")
    }
}

#[cfg(test)]
mod tests;
