//! The in-place redeploy of a tenant VM's platform image over SSM Run Command.

use molecule_crds::v1alpha1::{RedeployState, Tenant, TenantStatus};

use crate::cloud::InstanceState;
use crate::cloud::commands::CommandState;
use crate::cloud::fake::{Fault, InstanceSeed, ops};
use crate::reconcile::tenant::vm;
use crate::testing;

fn tenant() -> Tenant {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "moleculesai.app/v1alpha1", "kind": "Tenant",
        "metadata": {"name": "acme", "uid": "r-1"}, "spec": {}
    }))
    .unwrap()
}

#[tokio::test]
async fn one_command_is_sent_and_followed_to_success() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let i = fake.seed_instance(InstanceSeed { state: Some(InstanceState::Running), ..InstanceSeed::default() });
    let (t, image) = (tenant(), "ghcr.io/molecule/platform:2");
    let mut st = TenantStatus { image: Some("ghcr.io/molecule/platform:1".into()), ..TenantStatus::default() };
    let wait = vm::redeploy(&ctx, &ctx.main, &t, &i, image, &mut st).await.unwrap();
    assert!(wait.is_some());
    assert_eq!(st.redeploy.as_ref().map(|r| r.state), Some(RedeployState::Pending));
    vm::redeploy(&ctx, &ctx.main, &t, &i, image, &mut st).await.unwrap();
    assert_eq!(st.redeploy.as_ref().map(|r| r.state), Some(RedeployState::Succeeded));
    assert_eq!(st.image.as_deref(), Some(image));
    assert_eq!(vm::redeploy(&ctx, &ctx.main, &t, &i, image, &mut st).await.unwrap(), None);
    assert_eq!(fake.count(ops::SEND_COMMAND), 1, "one command, never a second");
    assert!(fake.sent_commands()[0].commands.iter().any(|c| c.contains(image)));
}

#[tokio::test]
async fn a_failed_redeploy_keeps_the_old_image_and_is_not_retried() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let i = fake.seed_instance(InstanceSeed::default());
    fake.set_command_outcome(&i.id, CommandState::Failed("pull failed".into()));
    let (t, image) = (tenant(), "ghcr.io/molecule/platform:3");
    let mut st = TenantStatus { image: Some("ghcr.io/molecule/platform:1".into()), ..TenantStatus::default() };
    vm::redeploy(&ctx, &ctx.main, &t, &i, image, &mut st).await.unwrap();
    vm::redeploy(&ctx, &ctx.main, &t, &i, image, &mut st).await.unwrap();
    let r = st.redeploy.clone().unwrap();
    assert_eq!((r.state, r.message.as_deref()), (RedeployState::Failed, Some("pull failed")));
    assert_eq!(st.image.as_deref(), Some("ghcr.io/molecule/platform:1"));
    assert_eq!(vm::redeploy(&ctx, &ctx.main, &t, &i, image, &mut st).await.unwrap(), None);
    assert_eq!(fake.count(ops::SEND_COMMAND), 1);
}

#[tokio::test]
async fn an_image_reference_that_could_inject_a_command_is_refused() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let i = fake.seed_instance(InstanceSeed::default());
    let mut st = TenantStatus::default();
    let bad = "ghcr.io/x:1'; rm -rf / #";
    assert!(vm::redeploy(&ctx, &ctx.main, &tenant(), &i, bad, &mut st).await.is_err());
    assert_eq!(fake.count(ops::SEND_COMMAND), 0);
}

#[tokio::test]
async fn a_crash_between_the_send_and_the_status_write_sends_no_second_command() {
    let fake = testing::cloud();
    fake.configure(|c| c.command_time = std::time::Duration::from_secs(20));
    let (ctx, api) = testing::context(&fake).await;
    let i = fake.seed_instance(InstanceSeed { state: Some(InstanceState::Running), ..InstanceSeed::default() });
    let (t, image) = (tenant(), "ghcr.io/molecule/platform:4");
    let before = TenantStatus { image: Some("ghcr.io/molecule/platform:1".into()), ..TenantStatus::default() };
    // SSM runs the command, the answer is lost: the reconcile fails before its status write.
    fake.inject(Fault::lost(ops::SEND_COMMAND));
    let mut st = before.clone();
    assert!(vm::redeploy(&ctx, &ctx.main, &t, &i, image, &mut st).await.is_err());
    // The restart reads the status as last written.
    let mut st = api.statuses().last().map_or(before, |v| serde_json::from_value(v.clone()).unwrap());
    let r = st.redeploy.clone().expect("the intent was written before the send");
    assert_eq!((r.image.as_str(), r.command_id.as_str(), r.state), (image, "", RedeployState::Pending));
    vm::redeploy(&ctx, &ctx.main, &t, &i, image, &mut st).await.unwrap();
    assert_eq!(fake.count(ops::SEND_COMMAND), 1, "a second concurrent redeploy was sent");
    let sent = fake.sent_commands();
    assert_eq!(st.redeploy.as_ref().map(|r| r.command_id.as_str()), Some(sent[0].id.as_str()));
    assert_eq!(sent[0].comment, vm::comment("r-1", &r), "the marker it was found by");
    fake.advance(std::time::Duration::from_secs(30));
    vm::redeploy(&ctx, &ctx.main, &t, &i, image, &mut st).await.unwrap();
    assert_eq!(st.redeploy.as_ref().map(|r| r.state), Some(RedeployState::Succeeded));
}

#[tokio::test]
async fn an_intent_whose_send_never_happened_is_sent_once() {
    let fake = testing::cloud();
    let (ctx, api) = testing::context(&fake).await;
    let i = fake.seed_instance(InstanceSeed { state: Some(InstanceState::Running), ..InstanceSeed::default() });
    let (t, image) = (tenant(), "ghcr.io/molecule/platform:5");
    // SSM refused before running anything: the intent stands, nothing was sent.
    fake.inject(Fault::server_error(ops::SEND_COMMAND));
    let mut st = TenantStatus { image: Some("ghcr.io/molecule/platform:1".into()), ..TenantStatus::default() };
    assert!(vm::redeploy(&ctx, &ctx.main, &t, &i, image, &mut st).await.is_err());
    let mut st: TenantStatus = serde_json::from_value(api.statuses().last().unwrap().clone()).unwrap();
    vm::redeploy(&ctx, &ctx.main, &t, &i, image, &mut st).await.unwrap();
    vm::redeploy(&ctx, &ctx.main, &t, &i, image, &mut st).await.unwrap();
    assert_eq!(fake.count(ops::SEND_COMMAND), 2, "the refused send and one more");
    assert_eq!(fake.sent_commands().len(), 1);
    assert_eq!(st.redeploy.as_ref().map(|r| r.state), Some(RedeployState::Succeeded));
}
