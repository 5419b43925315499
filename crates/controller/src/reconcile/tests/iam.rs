//! The per-tenant IAM identities on the fake cloud (issue 12): both are created with the owner
//! tags, path, boundary and the policy documents of docs/design/identity.md; a second run writes
//! nothing; a role of that name that is not the Tenant's is refused, never adopted; the erasure
//! deletes them after the instances and before the bundle, each confirmed in the receipt; the
//! orphan scan finds those of a gone Tenant.

use std::time::Duration;

use molecule_crds::v1alpha1::OrphanKind;
use serde_json::Value;

use super::erase_run::{self, first_call};
use crate::cloud::fake::{FakeCloud, InstanceSeed, ops};
use crate::cloud::identities::IamSettings;
use crate::cloud::marks::{IamName, IamUse};
use crate::cloud::tags::{self, LAUNCH_ATTEMPT};
use crate::context::Context;
use crate::reconcile::tenant::identity::{self, Grant, Outcome, POLICY_NAME};
use crate::reconcile::tenant::receipt::Receipt;
use crate::testing;

const UID: &str = "7a1c0f00-0000-4000-8000-0000000001a3";
const BUNDLE: &str =
    "arn:aws:secretsmanager:eu-west-1:000000000000:secret:molecule-test/test/tenants/acme/bootstrap-AbC123";

fn settings() -> IamSettings {
    IamSettings {
        path: "/molecule/".into(),
        boundary: Some("arn:aws:iam::000000000000:policy/molecule-boundary".into()),
    }
}

fn name(u: IamUse) -> String {
    IamName::new(u, UID).unwrap().render()
}

async fn ensure_both(ctx: &Context, uid: &str, slug: &str) -> Vec<Outcome> {
    let owner = testing::tenant_owner(uid, slug);
    let prefix = ctx.identity.workspace_secret_prefix(slug);
    let grants = [
        Grant::Vm { bundle_arn: BUNDLE, region: "eu-west-1", workspaces: &prefix },
        Grant::Workspace { prefix: &prefix, region: "eu-west-1" },
    ];
    let mut out = Vec::new();
    for g in grants {
        let iam = ctx.main.identities.as_ref();
        out.push(identity::ensure(iam, &ctx.identity, &settings(), &owner, "main", &g).await.unwrap());
    }
    out
}

fn statement(doc: &Value, sid: &str) -> Value {
    doc["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == sid).cloned().unwrap()
}

#[tokio::test]
async fn both_identities_are_created_with_tags_path_boundary_and_their_own_secrets_only() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let outcomes = ensure_both(&ctx, UID, "acme").await;
    for (o, u) in outcomes.iter().zip(IamUse::ALL) {
        let Outcome::Ready(i) = o else { panic!("{o:?}") };
        assert_eq!((i.role.as_str(), i.instance_profile.as_str(), i.account.as_str()), (&*name(u), &*name(u), "main"));
        let role = fake.iam_role(&name(u)).unwrap();
        assert_eq!(role.role.path, "/molecule/molecule-test/test/", "the operator's own path");
        assert_eq!(fake.iam_profile(&name(u)).unwrap().path, role.role.path);
        assert_eq!(role.boundary, settings().boundary);
        assert_eq!(role.role.tags, testing::tags(&testing::tenant_owner(UID, "acme")));
        assert_eq!(role.role.tags[tags::ROLE], "tenant");
        assert_eq!(role.role.tags[tags::NAME], "tenant-acme");
        let trust: Value = serde_json::from_str(&role.trust).unwrap();
        assert_eq!(trust["Statement"][0]["Principal"]["Service"], "ec2.amazonaws.com");
        let profile = fake.iam_profile(&name(u)).unwrap();
        assert_eq!(profile.roles, vec![name(u)]);
        assert_eq!(profile.tags, role.role.tags);
    }
    let vm: Value = serde_json::from_str(&fake.iam_role(&name(IamUse::Vm)).unwrap().policies[POLICY_NAME]).unwrap();
    assert_eq!(statement(&vm, "ReadOwnSecrets")["Resource"], BUNDLE, "exactly the bundle, no wildcard");
    let tag = statement(&vm, "TagOwnInstance");
    assert_eq!(tag["Condition"]["StringEquals"]["aws:ARN"], "${ec2:SourceInstanceARN}");
    assert_eq!(tag["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"], serde_json::json!([tags::BOOT]));
    let describe = statement(&vm, "DescribeOwnWorkspaceSecrets");
    assert_eq!(describe["Action"], "secretsmanager:DescribeSecret", "tags only, never a Workspace's value");
    assert_eq!(
        describe["Resource"],
        "arn:aws:secretsmanager:eu-west-1:000000000000:secret:molecule-test/test/tenants/acme/workspaces/*"
    );
    let ssm = statement(&vm, "SsmAgent");
    assert_eq!(ssm["Action"], serde_json::json!(identity::SSM_AGENT_ACTIONS));
    assert!(!ssm["Action"].to_string().contains("GetParameter"), "no read of the account's parameters");
    let ws: Value =
        serde_json::from_str(&fake.iam_role(&name(IamUse::Workspace)).unwrap().policies[POLICY_NAME]).unwrap();
    let read = statement(&ws, "ReadOwnSecrets");
    assert_eq!(
        read["Resource"],
        "arn:aws:secretsmanager:eu-west-1:000000000000:secret:molecule-test/test/tenants/acme/workspaces/*"
    );
    let keys = &statement(&ws, "TagOwnInstance")["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"];
    assert_eq!(keys, &serde_json::json!([tags::BOOT, tags::DISPLAY]));
    assert_eq!(ws["Statement"].as_array().unwrap().len(), 2, "no SSM for Workspaces: {ws}");
}

#[tokio::test]
async fn a_second_run_writes_nothing_and_a_changed_document_is_rewritten() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let first = ensure_both(&ctx, UID, "acme").await;
    let writes = |f: &FakeCloud| {
        [ops::CREATE_ROLE, ops::PUT_ROLE_POLICY, ops::CREATE_INSTANCE_PROFILE, ops::ADD_ROLE_TO_INSTANCE_PROFILE]
            .iter()
            .map(|op| f.count(op))
            .sum::<usize>()
    };
    let before = writes(&fake);
    assert_eq!(before, 2 + 2 + 2 + 2);
    assert_eq!(ensure_both(&ctx, UID, "acme").await, first, "same status");
    assert_eq!(writes(&fake), before, "an unchanged identity costs reads only");
    // Somebody widened the policy by hand: the next run puts the operator's back.
    let iam = ctx.main.identities.clone();
    iam.put_policy(&name(IamUse::Workspace), POLICY_NAME, r#"{"Statement":[{"Resource":"*"}]}"#).await.unwrap();
    ensure_both(&ctx, UID, "acme").await;
    let doc = fake.iam_role(&name(IamUse::Workspace)).unwrap().policies[POLICY_NAME].clone();
    assert!(doc.contains("/tenants/acme/workspaces/*") && !doc.contains(r#""Resource":"*""#), "{doc}");
}

#[tokio::test]
async fn two_tenants_never_name_each_others_secrets() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    ensure_both(&ctx, UID, "acme").await;
    let other = "7a1c0f00-0000-4000-8000-0000000001b4";
    ensure_both(&ctx, other, "acme2").await;
    let ws_b = IamName::new(IamUse::Workspace, other).unwrap().render();
    let doc: Value = serde_json::from_str(&fake.iam_role(&ws_b).unwrap().policies[POLICY_NAME]).unwrap();
    let pattern = statement(&doc, "ReadOwnSecrets")["Resource"].as_str().unwrap().to_owned();
    let prefix = pattern.trim_end_matches('*').rsplit(":secret:").next().unwrap().to_owned();
    let a_secret = format!("{}w-1-AbCdEf", ctx.identity.workspace_secret_prefix("acme"));
    assert!(!a_secret.starts_with(&prefix), "{pattern} matches {a_secret}");
    assert!(!ctx.identity.bundle_name("acme2").starts_with(&prefix), "nor its own bundle");
}

#[tokio::test]
async fn a_foreign_role_of_that_name_is_refused_and_left_untouched() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let mut theirs = testing::tags(&testing::tenant_owner("someone-else", "acme"));
    theirs.insert("team".into(), "platform".into());
    fake.seed_role(&name(IamUse::Vm), "/molecule/", theirs.clone());
    let outcomes = ensure_both(&ctx, UID, "acme").await;
    assert!(matches!(&outcomes[0], Outcome::NotOurs(m) if m.contains(&name(IamUse::Vm))), "{outcomes:?}");
    let role = fake.iam_role(&name(IamUse::Vm)).unwrap();
    assert!(role.policies.is_empty(), "nothing written into it");
    assert_eq!(role.role.tags, theirs);
    assert!(fake.iam_profile(&name(IamUse::Vm)).is_none(), "no profile made around it");
    assert!(molecule_crds::kstatus::STALLED_REASONS.contains(&"IamRoleNotOurs"));
    // And the erasure leaves it alone.
    let mut rc = Receipt::default();
    erase_all(&ctx, &fake, &mut rc).await;
    assert!(fake.iam_role(&name(IamUse::Vm)).is_some(), "a role that is not ours is never deleted");
}

async fn erase_all(ctx: &Context, fake: &FakeCloud, rc: &mut Receipt) {
    let t = erase_run::tenant(UID, &Value::Null);
    let done = erase_run::rounds(ctx, fake, &t, rc, 30, |step, err| {
        assert!(err.waiting().is_some(), "step {step} failed: {err}");
    })
    .await;
    assert!(done, "the erasure did not complete");
}

#[tokio::test]
async fn the_erasure_deletes_both_after_the_vm_and_before_the_bundle_and_lists_them() {
    let fake = testing::cloud();
    fake.configure(|c| c.terminate_time = Duration::from_mins(1));
    let (ctx, _api) = testing::context(&fake).await;
    let owner = testing::tenant_owner(UID, "acme");
    let mut vm_tags = testing::tags(&owner);
    vm_tags.insert(LAUNCH_ATTEMPT.into(), "1".into());
    let vm = fake.seed_instance(InstanceSeed { tags: vm_tags, ..InstanceSeed::default() });
    let bundle = fake.seed_secret(&ctx.identity.bundle_name("acme"), "{}", &testing::tags(&owner)).unwrap();
    ctx.main.cache.refresh().await.unwrap();
    ensure_both(&ctx, UID, "acme").await;
    let mut rc = Receipt::default();
    erase_all(&ctx, &fake, &mut rc).await;
    let terminate = first_call(&fake, ops::TERMINATE_INSTANCES, &vm.id);
    let mut last = terminate;
    for u in IamUse::ALL {
        let (profile, role) =
            (first_call(&fake, ops::DELETE_INSTANCE_PROFILE, &name(u)), first_call(&fake, ops::DELETE_ROLE, &name(u)));
        assert!(last < profile && profile < role, "{u:?}: profile before role, after the VM");
        last = role;
        assert!(fake.iam_role(&name(u)).is_none() && fake.iam_profile(&name(u)).is_none());
        for kind in ["IamRole", "InstanceProfile"] {
            let e = rc.resources.iter().find(|e| e.kind == kind && e.id == name(u));
            let e = e.unwrap_or_else(|| panic!("{kind} {} not in the receipt: {:?}", name(u), rc.resources));
            assert!(e.delete_requested_at.is_some() && e.confirmed_gone_at.is_some(), "{e:?}");
        }
    }
    assert!(last < first_call(&fake, ops::DELETE_SECRET, &bundle.arn), "identities go before the bundle");
    assert!(rc.all_gone());
}

#[tokio::test]
async fn the_orphan_scan_lists_the_identities_of_a_gone_tenant_and_reap_deletes_them() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    ensure_both(&ctx, UID, "acme").await;
    let items = crate::orphans::gather::iam(&ctx, &ctx.main).await.unwrap();
    let kinds: Vec<_> = items.iter().map(|(m, _)| (m.kind, m.id.clone(), m.owner_uid.clone())).collect();
    for u in IamUse::ALL {
        assert!(kinds.contains(&(OrphanKind::IamRole, name(u), Some(UID.into()))), "{kinds:?}");
        assert!(kinds.contains(&(OrphanKind::InstanceProfile, name(u), Some(UID.into()))), "{kinds:?}");
    }
    // Another operator's role under the same path is not listed.
    let mut foreign = testing::tags(&testing::tenant_owner("u-x", "x"));
    foreign.insert(tags::MANAGED_BY.into(), "another-operator".into());
    fake.seed_role("molecule-tenant-vm-u-x", "/molecule/molecule-test/test/", foreign);
    let items = crate::orphans::gather::iam(&ctx, &ctx.main).await.unwrap();
    assert_eq!(items.len(), 4, "{items:?}");
    let live = crate::orphans::classify::Live::default();
    for (m, h) in &items {
        let f = crate::orphans::classify::classify(std::slice::from_ref(m), &live, jiff::Timestamp::now());
        let f = f.first().unwrap_or_else(|| panic!("{m:?} of a gone Tenant is an orphan"));
        assert!(crate::orphans::reap::delete(&ctx, f, h, &live).await.unwrap());
    }
    assert!(fake.iam_role(&name(IamUse::Vm)).is_none() && fake.iam_profile(&name(IamUse::Workspace)).is_none());
    assert!(fake.iam_role("molecule-tenant-vm-u-x").is_some());
}
