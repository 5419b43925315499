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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_names_round_trip_fit_and_tell_the_uses_apart() {
        for role in IamUse::ALL {
            let n = IamName::new(role, UID).unwrap();
            let text = n.render();
            assert!(text.len() <= IamName::MAX_LEN, "{text}");
            assert_eq!(IamName::parse(&text), Some(n.clone()), "{text}");
            assert_eq!((n.role(), n.uid()), (role, UID));
        }
        assert_eq!(IamName::new(IamUse::Vm, UID).unwrap().render(), format!("molecule-tenant-vm-{UID}"));
        assert_eq!(IamName::new(IamUse::Workspace, UID).unwrap().render(), format!("molecule-tenant-ws-{UID}"));
        let longest = "u".repeat(IamName::MAX_LEN - "molecule-tenant-vm-".len());
        assert_eq!(IamName::new(IamUse::Vm, &longest).map(|n| n.render().len()), Some(IamName::MAX_LEN));
        assert_eq!(IamName::new(IamUse::Vm, &format!("{longest}u")), None);
        for bad in ["", "a b", "a/b", "a:b"] {
            assert_eq!(IamName::new(IamUse::Vm, bad), None, "{bad:?}");
        }
        for other in ["molecule-tenant-vm-", "molecule-tenant-xx-u", "molecule-tenant-vm", "molecule-workspace", "x"] {
            assert_eq!(IamName::parse(other), None, "{other}");
        }
    }

    #[test]
    fn iam_paths_are_per_operator_and_env() {
        assert_eq!(id("molecule-operator", "prod").iam_path("/molecule/"), "/molecule/molecule-operator/prod/");
        let a = id("a", "dev").iam_path("/m/");
        for other in [id("a", "prod"), id("ab", "dev"), id("a.dev", "dev")] {
            let b = other.iam_path("/m/");
            assert!(!b.starts_with(&a) && !a.starts_with(&b), "{a} {b}");
        }
    }

    #[test]
    fn a_workspace_secret_prefix_matches_no_other_tenant() {
        let me = id("molecule-operator", "prod");
        let acme = me.workspace_secret_prefix("acme");
        assert_eq!(acme, "molecule-operator/prod/tenants/acme/workspaces/");
        for other in ["acme2", "acm", "acme-b", "a"] {
            let theirs = me.workspace_secret_prefix(other);
            assert!(!theirs.starts_with(&acme) && !acme.starts_with(&theirs), "{other}");
        }
        assert!(!me.bundle_name("acme").starts_with(&acme), "the bundle is not a Workspace secret");
    }

    #[test]
    fn workspace_secret_names_round_trip_under_the_prefix() {
        let me = id("op", "dev");
        let n = me.workspace_secret_name("acme", "u-1");
        assert_eq!(n, "op/dev/tenants/acme/workspaces/u-1");
        assert!(n.starts_with(&me.workspace_secret_prefix("acme")));
        assert_eq!(me.workspace_secret_tenant(&n), Some("acme"));
        assert_eq!(me.workspace_secret_tenant(&me.bundle_name("acme")), None);
        assert_eq!(me.workspace_secret_tenant("op/prod/tenants/acme/workspaces/u-1"), None);
        assert_eq!(me.workspace_secret_tenant("op/dev/tenants/a/b/workspaces/u-1"), None);
        assert_eq!(me.workspace_secret_tenant("op/dev/tenants/acme/workspaces/"), None);
    }

    const UID: &str = "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab";

    fn id(operator_id: &str, env: &str) -> Identity {
        Identity { operator_id: operator_id.into(), env: env.into() }
    }

    fn tenant() -> Owner {
        Owner { kind: "Tenant", uid: UID.into(), namespace: None, name: "acme".into(), tenant: "acme".into() }
    }

    #[test]
    fn dns_marks_round_trip_and_keep_todays_text() {
        let me = id("molecule-operator", "dev");
        let m = me.dns_mark(&tenant());
        let text = m.render();
        assert_eq!(
            text,
            format!(
                "heritage=molecule-operator,managed-by=molecule-operator,env=dev,owner-kind=Tenant,owner-uid={UID}"
            )
        );
        assert_eq!(DnsMark::parse(&text), Some(m.clone()));
        assert_eq!(DnsMark::parse(&format!("\"{text}\"")), Some(m.clone()), "Route 53 quotes TXT values");
        assert!(m.matches(&text) && me.is_our_mark(&text));
        assert_eq!(me.our_mark(&text).map(|m| m.owner_uid), Some(UID.to_owned()));
        assert!(text.len() < 255);
    }

    #[test]
    fn foreign_or_malformed_marks_are_not_ours() {
        let me = id("molecule-operator", "dev");
        for text in [
            "",
            "heritage=molecule-operator",
            "heritage=x,managed-by=molecule-operator,env=dev,owner-kind=Tenant,owner-uid=u",
            "v=spf1 -all",
            "heritage=molecule-operator,managed-by=molecule-operator,env=dev,owner-uid=u",
        ] {
            assert_eq!(DnsMark::parse(text), None, "{text}");
            assert!(!me.is_our_mark(text), "{text}");
        }
        let mark = me.dns_mark(&tenant()).render();
        assert!(!id("molecule-operator", "prod").is_our_mark(&mark), "another env");
        assert!(!id("molecule", "dev").is_our_mark(&mark), "an operator id that is a prefix of ours");
        assert!(!id("molecule-operator-2", "dev").is_our_mark(&mark), "an operator id that ours is a prefix of");
        let mut other_owner = tenant();
        other_owner.uid = "another".into();
        assert!(!me.dns_mark(&other_owner).matches(&mark), "another owner's mark");
    }

    #[test]
    fn owner_record_names_round_trip() {
        let name = owner_record_name("acme.moleculesai.app");
        assert_eq!(name, "_molecule-owner.acme.moleculesai.app");
        assert_eq!(owner_record_host(&name), Some("acme.moleculesai.app"));
        for other in ["acme.moleculesai.app", "_molecule-owner", "_molecule-owner.", "_molecule-ownerx.acme.app"] {
            assert_eq!(owner_record_host(other), None, "{other}");
        }
    }

    #[test]
    fn tunnel_names_round_trip_and_other_operators_are_told_apart() {
        let me = id("a", "dev");
        assert_eq!(me.tunnel_name("acme"), "a.dev.acme");
        assert_eq!(me.tunnel_slug(&me.tunnel_name("acme")), Some("acme"));
        // Operator `a.dev` in env `dev` names its tunnel `a.dev.dev.acme`: not ours.
        assert_eq!(me.tunnel_slug(&id("a.dev", "dev").tunnel_name("acme")), None);
        assert_eq!(me.tunnel_slug(&id("ab", "dev").tunnel_name("acme")), None);
        assert_eq!(me.tunnel_slug(&id("a", "prod").tunnel_name("acme")), None);
        for other in ["a.dev.", "a.dev", "a.devx.acme", "acme"] {
            assert_eq!(me.tunnel_slug(other), None, "{other}");
        }
    }

    #[test]
    fn bundle_names_round_trip() {
        let me = id("molecule-operator", "prod");
        let name = me.bundle_name("acme");
        assert_eq!(name, "molecule-operator/prod/tenants/acme/bootstrap");
        assert_eq!(me.bundle_slug(&name), Some("acme"));
        assert_eq!(me.bundle_slug(&id("molecule-operator", "dev").bundle_name("acme")), None);
        assert_eq!(me.bundle_slug(&id("molecule", "prod").bundle_name("acme")), None);
        assert_eq!(me.bundle_slug(&id("molecule-operator-2", "prod").bundle_name("acme")), None);
        for other in ["molecule-operator/prod/tenants//bootstrap", "molecule-operator/prod/tenants/a/b/bootstrap", "x"]
        {
            assert_eq!(me.bundle_slug(other), None, "{other}");
        }
    }

    #[test]
    fn launch_tokens_name_their_kind_and_round_trip() {
        for kind in [OwnerKind::Workspace, OwnerKind::Tenant] {
            for attempt in [0, 1, u32::MAX] {
                let t = LaunchToken::new(kind, UID, attempt).unwrap();
                let text = t.render();
                assert!(text.len() <= LaunchToken::MAX_LEN && text.is_ascii(), "{text}");
                assert_eq!(LaunchToken::parse(&text), Some(t.clone()), "{text}");
                assert_eq!((t.kind(), t.uid(), t.attempt()), (kind, UID, attempt));
            }
        }
        let ws = LaunchToken::new(OwnerKind::Workspace, UID, 1).map(|t| t.render());
        let tn = LaunchToken::new(OwnerKind::Tenant, UID, 1).map(|t| t.render());
        assert_eq!(ws, Some(format!("ws-{UID}-1")));
        assert_ne!(ws, tn, "the kinds never share a token");
        let longest = "u".repeat(LaunchToken::MAX_UID);
        let t = LaunchToken::new(OwnerKind::Tenant, &longest, u32::MAX).map(|t| t.render());
        assert_eq!(t.map(|t| t.len()), Some(LaunchToken::MAX_LEN));
        assert_eq!(LaunchToken::new(OwnerKind::Tenant, &format!("{longest}u"), 0), None);
        assert_eq!(LaunchToken::new(OwnerKind::Tenant, "", 0), None);
        assert_eq!(LaunchToken::new(OwnerKind::Tenant, "a b", 0), None);
    }

    #[test]
    fn foreign_launch_tokens_do_not_parse() {
        let old = format!("ws-{}", "ab".repeat(24));
        for text in [old.as_str(), "", "ws-", "ws--1", "xx-u-1", "ws-u-", "ws-u-+1", "ws-u-x", "data-00"] {
            assert_eq!(LaunchToken::parse(text), None, "{text}");
        }
    }

    #[test]
    fn the_data_volume_token_keeps_its_value() {
        let t = data_volume_token("u-1", 0);
        assert_eq!(t, format!("data-{}", hex::encode(&Sha256::digest(b"u-1")[..16])));
        assert_eq!(t.len(), 5 + 32);
        assert_ne!(t, data_volume_token("u-2", 0));
    }

    #[test]
    fn each_data_volume_generation_has_its_own_token() {
        let (g0, g1, g2) = (data_volume_token("u-1", 0), data_volume_token("u-1", 1), data_volume_token("u-1", 2));
        assert_eq!(g1, format!("{g0}-1"));
        assert!(g0 != g1 && g1 != g2 && g0 != g2);
        assert!(data_volume_token(&"u".repeat(36), u32::MAX).len() <= 64, "EC2 takes 64 characters");
    }
}
