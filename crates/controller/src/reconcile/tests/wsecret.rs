//! The Workspace's own secret on the fake cloud (issue 12): created once by the apply step with
//! only the Workspace's values, kept unchanged by later reconciles, deleted with the Workspace,
//! tagged retained under `deletionPolicy: Retain`, swept by the tenant erasure, and an orphan once
//! its Workspace is gone.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::cloud::fake::{FakeCloud, ops};
use crate::cloud::tags::{OWNER_KIND, OWNER_UID, RETAINED};
use crate::orphans::classify::{Live, OrphanReason, classify};
use crate::orphans::gather;
use crate::reconcile::workspace::secret::{self, TOKEN_SHA256};
use crate::testing;

const BUNDLE_VALUES: [&str; 5] = [
    "admin-0123456789abcdef0123456789abcdef",
    "provision-0123456789abcdef0123456789ab",
    "signing-0123456789abcdef0123456789abcd",
    "tunnel-0123456789abcdef0123456789abcde",
    "ghcr-0123456789abcdef0123456789abcdef0",
];

fn value_of(fake: &FakeCloud, arn: &str) -> serde_json::Value {
    serde_json::from_str(&fake.secret_value(arn).expect("the secret exists")).expect("JSON")
}

/// The tenant's bundle, as the Tenant reconciler writes it, beside the Workspace.
fn plant_bundle(fake: &FakeCloud, ctx: &crate::context::Context) {
    let bundle = serde_json::json!({
        "tenant": "acme", "adminToken": BUNDLE_VALUES[0], "provisionSharedSecret": BUNDLE_VALUES[1],
        "displaySigningSecret": BUNDLE_VALUES[2], "tunnelToken": BUNDLE_VALUES[3], "ghcrPullToken": BUNDLE_VALUES[4],
    });
    let owner = testing::tenant_owner("t-acme", "acme");
    fake.seed_secret(&ctx.identity.bundle_name("acme"), &bundle.to_string(), &testing::tags(&owner)).unwrap();
}

#[tokio::test]
async fn created_once_with_only_the_workspace_values_and_never_rewritten() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    plant_bundle(&fake, &ctx);
    let owner = testing::workspace_owner("ws-s1");
    let arn = secret::ensure(&ctx, &owner, None).await.unwrap();
    let made = fake.secret(&arn).unwrap();
    assert_eq!(made.name, "molecule-test/test/tenants/acme/workspaces/ws-s1");
    assert_eq!(made.tags.get(OWNER_KIND).map(String::as_str), Some("Workspace"));
    assert_eq!(made.tags.get(OWNER_UID).map(String::as_str), Some("ws-s1"));
    let v = value_of(&fake, &arn);
    let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["displayPassword", "tenant", "token", "uid", "workspace"]));
    let token = v["token"].as_str().unwrap();
    assert_eq!(made.tags.get(TOKEN_SHA256), Some(&hex::encode(Sha256::digest(token.as_bytes()))));
    let raw = fake.secret_value(&arn).unwrap();
    for b in BUNDLE_VALUES {
        assert!(!raw.contains(b), "a tenant bundle value is in the Workspace secret");
    }
    // A second reconcile with the ARN in status: no call. One that lost its status (a crash
    // between create and the status write): found by tag, not created again, not rewritten.
    let before = fake.calls().len();
    assert_eq!(secret::ensure(&ctx, &owner, Some(&arn)).await.unwrap(), arn);
    assert_eq!(fake.calls().len(), before, "the ARN in status costs no call");
    assert_eq!(secret::ensure(&ctx, &owner, None).await.unwrap(), arn);
    assert_eq!(fake.count(ops::CREATE_SECRET), 1);
    assert_eq!(fake.count(ops::PUT_SECRET_VALUE), 0, "the values are never rewritten");
    assert_eq!(value_of(&fake, &arn), v, "the display password survives reconciles");
}

/// ListSecrets lags behind a create: a reconcile right after a crash that lost the status write
/// finds the secret by its name, read by ID, and does not create or rewrite it.
#[tokio::test]
async fn a_secret_listing_lag_does_not_make_a_second_secret() {
    let fake = testing::cloud();
    fake.configure(|c| c.listing_lag = std::time::Duration::from_mins(1));
    let (ctx, _api) = testing::context(&fake).await;
    let owner = testing::workspace_owner("ws-lag");
    let arn = secret::ensure(&ctx, &owner, None).await.unwrap();
    assert_eq!(secret::ensure(&ctx, &owner, None).await.unwrap(), arn);
    assert_eq!(fake.count(ops::CREATE_SECRET), 1);
    // And a delete in the lag finds it too.
    assert!(secret::remove(&ctx, &ctx.main, &owner, None).await.unwrap().is_empty());
    assert!(fake.secret(&arn).is_none());
}

#[tokio::test]
async fn two_workspaces_get_different_values() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let a = secret::ensure(&ctx, &testing::workspace_owner("ws-a"), None).await.unwrap();
    let b = secret::ensure(&ctx, &testing::workspace_owner("ws-b"), None).await.unwrap();
    let (va, vb) = (value_of(&fake, &a), value_of(&fake, &b));
    assert_ne!(va["token"], vb["token"]);
    assert_ne!(va["displayPassword"], vb["displayPassword"]);
}

#[tokio::test]
async fn a_foreign_secret_of_that_name_is_refused_not_adopted() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let owner = testing::workspace_owner("ws-f");
    fake.seed_secret(&secret::name(&ctx, &owner), "{}", &std::collections::BTreeMap::new()).unwrap();
    let e = secret::ensure(&ctx, &owner, None).await.unwrap_err();
    assert!(e.to_string().contains("without this Workspace's owner tag"), "{e}");
}

#[tokio::test]
async fn deleted_with_the_workspace_and_confirmed() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let owner = testing::workspace_owner("ws-d");
    let other = secret::ensure(&ctx, &testing::workspace_owner("ws-keep"), None).await.unwrap();
    let arn = secret::ensure(&ctx, &owner, None).await.unwrap();
    let left = secret::remove(&ctx, &ctx.main, &owner, Some(&arn)).await.unwrap();
    assert!(left.is_empty());
    assert!(fake.secret(&arn).is_none(), "deleted");
    assert!(fake.secret(&other).is_some(), "another Workspace's secret stays");
    // Again (a retried delete): nothing left, success.
    assert!(secret::remove(&ctx, &ctx.main, &owner, Some(&arn)).await.unwrap().is_empty());
}

#[tokio::test]
async fn retain_tags_it_and_the_scan_reports_it_retained() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let owner = testing::workspace_owner("ws-r");
    let arn = secret::ensure(&ctx, &owner, None).await.unwrap();
    assert_eq!(secret::retain(&ctx, &owner).await.unwrap(), vec![arn.clone()]);
    assert_eq!(fake.secret(&arn).unwrap().tags.get(RETAINED).map(String::as_str), Some("true"));
    let marked: Vec<_> = gather::secrets(&ctx, &ctx.main).await.unwrap().into_iter().map(|(m, _)| m).collect();
    let found = classify(&marked, &Live::default(), jiff::Timestamp::now());
    assert!(found.iter().any(|f| f.id == arn && f.retained()), "{found:?}");
}

#[tokio::test]
async fn the_secret_of_a_gone_workspace_is_an_orphan() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let arn = secret::ensure(&ctx, &testing::workspace_owner("ws-gone"), None).await.unwrap();
    let marked: Vec<_> = gather::secrets(&ctx, &ctx.main).await.unwrap().into_iter().map(|(m, _)| m).collect();
    let found = classify(&marked, &Live::default(), jiff::Timestamp::now());
    let f = found.iter().find(|f| f.id == arn).expect("the secret is a finding");
    assert!(
        matches!(&f.reason, OrphanReason::OwnerGone { kind, uid, .. } if kind == "Workspace" && uid == "ws-gone"),
        "{:?}",
        f.reason
    );
    assert_eq!(f.tenant.as_deref(), Some("acme"));
}

#[tokio::test]
async fn the_erasure_sweep_takes_the_tenants_workspace_secrets_only() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    plant_bundle(&fake, &ctx);
    let mine = secret::ensure(&ctx, &testing::workspace_owner("ws-1"), None).await.unwrap();
    let mut other_owner = testing::workspace_owner("ws-2");
    other_owner.tenant = "globex".into();
    let theirs = secret::ensure(&ctx, &other_owner, None).await.unwrap();
    let (asked, left) = crate::reconcile::teardown::sweep_workspace_secrets(&ctx, &ctx.main, "acme").await.unwrap();
    assert_eq!(asked, vec![mine.clone()], "the bundle is the bundle step's, another tenant's is theirs");
    assert!(left.is_empty());
    assert!(fake.secret(&mine).is_none());
    assert!(fake.secret(&theirs).is_some());
    assert!(fake.secret(&ctx.identity.bundle_name("acme")).is_some());
}

/// A canary Tenant's erasure: its bundle lives in the canary account, its Workspaces' secrets in
/// main; the receipt records each with the account it was deleted in (both were recorded as the
/// Tenant's own account).
#[tokio::test]
async fn a_canary_tenants_receipt_names_the_account_of_each_secret() {
    use crate::reconcile::tenant::{Memory, erase, receipt::Receipt};
    let (fake, canary_fake) = (testing::cloud(), testing::cloud());
    let (ctx, _api) = testing::context(&fake).await;
    let canary = testing::account(&canary_fake, "canary", &crate::metrics::Metrics::new()).await;
    plant_bundle(&canary_fake, &ctx);
    let ws_secret = secret::ensure(&ctx, &testing::workspace_owner("ws-1"), None).await.unwrap();
    let t = super::erase_run::tenant("t-acme", &serde_json::json!({"account": "canary"}));
    let (owner, memory) = (testing::tenant_owner("t-acme", "acme"), Memory::default());
    let mut rc = Receipt::default();
    for _ in 0..10 {
        let mut e = erase::Erasure {
            ctx: &ctx,
            memory: &memory,
            tenant: &t,
            owner: &owner,
            hostname: "acme.example.test",
            workspaces: kube::runtime::reflector::store().0,
            accounts: vec![canary.as_ref(), ctx.main.as_ref()],
            receipt: &mut rc,
            now: jiff::Timestamp::now().to_string(),
        };
        if e.run().await.is_ok() {
            break;
        }
        fake.advance(std::time::Duration::from_mins(2));
        canary_fake.advance(std::time::Duration::from_mins(2));
        ctx.main.cache.refresh().await.unwrap();
        canary.cache.refresh().await.unwrap();
    }
    let account_of = |id: &str| rc.resources.iter().find(|e| e.id == id).and_then(|e| e.account.clone());
    let bundle_arn = canary_fake.secret(&ctx.identity.bundle_name("acme")).map(|s| s.arn);
    assert!(bundle_arn.is_none(), "the bundle is erased in the canary account");
    assert_eq!(account_of(&ws_secret).as_deref(), Some("main"), "{:?}", rc.resources);
    let bundle = rc.resources.iter().find(|e| e.kind == "Secret" && e.id != ws_secret).expect("the bundle entry");
    assert_eq!(bundle.account.as_deref(), Some("canary"));
}
