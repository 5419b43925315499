//! Round trips of every name and mark.

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
        format!("heritage=molecule-operator,managed-by=molecule-operator,env=dev,owner-kind=Tenant,owner-uid={UID}")
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
    for other in ["molecule-operator/prod/tenants//bootstrap", "molecule-operator/prod/tenants/a/b/bootstrap", "x"] {
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
