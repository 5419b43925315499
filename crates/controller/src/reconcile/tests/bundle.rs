//! The bootstrap bundle's erasure finds a bundle that ListSecrets does not list yet and whose ARN
//! never reached status (created just before a crash): by its deterministic name (issue 13).

use std::time::Duration;

use crate::cloud::fake::{FakeCloud, FakeConfig};
use crate::reconcile::tenant::{Memory, bundle};
use crate::testing;

const UID: &str = "7a1c0f00-0000-4000-8000-00000000b0d1";

fn lagging() -> FakeCloud {
    FakeCloud::with_config(FakeConfig { listing_lag: Duration::from_secs(30), ..FakeConfig::instant() })
}

#[tokio::test]
async fn a_bundle_created_just_before_a_crash_is_erased() {
    let fake = lagging();
    let (ctx, _api) = testing::context(&fake).await;
    let owner = testing::tenant_owner(UID, "acme");
    let arn = bundle::ensure(&ctx, &Memory::default(), &ctx.main, &owner, "{}", None).await.unwrap();
    // The crash: status.secretArn was never written, and ListSecrets does not list it yet.
    let (asked, left) = bundle::erase(&ctx, &Memory::default(), &ctx.main, &owner, None).await.unwrap();
    assert_eq!(asked, std::slice::from_ref(&arn));
    assert!(left.is_empty());
    assert!(fake.secret(&arn).is_none(), "the bundle outlived the erasure");
}

#[tokio::test]
async fn a_same_named_secret_of_another_owner_is_left_alone() {
    let fake = lagging();
    let (ctx, _api) = testing::context(&fake).await;
    let owner = testing::tenant_owner(UID, "acme");
    let previous = testing::tenant_owner("7a1c0f00-0000-4000-8000-00000000b0d2", "acme");
    let theirs = fake.seed_secret(&ctx.identity.bundle_name("acme"), "{}", &testing::tags(&previous)).unwrap();
    let (asked, _) = bundle::erase(&ctx, &Memory::default(), &ctx.main, &owner, None).await.unwrap();
    assert!(asked.is_empty(), "{asked:?}");
    assert!(fake.secret(&theirs.arn).is_some());
}
