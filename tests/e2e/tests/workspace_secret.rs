//! The Workspace's own secret (issue 12), against the real API server, moto and the operator
//! process: a desktop Workspace gets a per-Workspace secret (owner tags, owner-kind Workspace,
//! under its tenant's Workspace-secret prefix) holding only its token and display password; its
//! user-data names that secret and never the tenant's bundle; neither the user-data nor the secret
//! carries any of the tenant's admin, provision, display-signing, tunnel or GHCR values; nothing of
//! the Workspace's own values reaches the operator log (at trace), Events or user-data; the
//! instance runs under the tenant's own Workspace instance profile; deleting the Workspace
//! deletes its secret.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use molecule_crds::v1alpha1::Tenant;
use molecule_e2e::harness::wait_for;
use molecule_e2e::scenario::{Scenario, uid};
use serde_json::{Value, json};

const READY: Duration = Duration::from_mins(3);

async fn secret_of(s: &Scenario, arn: &str) -> (String, BTreeMap<String, String>, Value) {
    let sm = s.env.secretsmanager_direct().await;
    let d = sm.describe_secret().secret_id(arn).send().await.expect("DescribeSecret of the Workspace secret");
    let tags: BTreeMap<String, String> =
        d.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect();
    let v = sm.get_secret_value().secret_id(arn).send().await.expect("GetSecretValue");
    let text = v.secret_string().unwrap_or_default().to_owned();
    let json: Value = serde_json::from_str(&text).expect("the Workspace secret is JSON");
    (d.name().unwrap_or_default().to_owned(), tags, json)
}

#[tokio::test]
async fn a_workspace_gets_only_its_own_secret_and_it_goes_with_it() {
    let mut s = Scenario::new("wsec", 2, json!({})).await.unwrap();
    s.start_operator_for_leak_scan(&[]).unwrap();
    s.apply(&s.sample("workspace-desktop.yaml", "desk")).unwrap();
    let t: Tenant = s.wait_tenant_ready(READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let w = s.wait_ready("desk", READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let st = w.status.clone().expect("status");
    let arn = st.secret_arn.clone().expect("status.secretArn");
    let tst = t.status.clone().expect("tenant status");
    let bundle_arn = tst.secret_arn.clone().expect("tenant status.secretArn");
    assert_ne!(arn, bundle_arn, "the Workspace's secret is not the tenant bundle");

    // The secret: its name under the tenant's prefix, the owner tags, only the Workspace's values.
    let (name, tags, value) = secret_of(&s, &arn).await;
    let prefix = format!("{}/{}/tenants/{}/workspaces/", s.operator_id, s.env.var("MOLECULE_ENV"), s.tenant);
    assert_eq!(name, format!("{prefix}{}", uid(&w)));
    for (k, v) in [
        ("moleculesai.app/owner-kind", "Workspace".to_owned()),
        ("moleculesai.app/owner-uid", uid(&w)),
        ("moleculesai.app/tenant", s.tenant.clone()),
        ("moleculesai.app/managed-by", s.operator_id.clone()),
    ] {
        assert_eq!(tags.get(k), Some(&v), "tag {k} in {tags:?}");
    }
    let keys: Vec<&str> = value.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(keys, ["displayPassword", "tenant", "token", "uid", "workspace"], "{keys:?}");
    let token = value["token"].as_str().expect("token").to_owned();
    let password = value["displayPassword"].as_str().expect("displayPassword").to_owned();
    assert!(token.len() >= 32 && password.len() >= 16);

    // User-data: the Workspace's secret ARN, never the bundle, never a value.
    let ec2 = s.env.ec2_direct().await;
    let id = st.instance_id.clone().expect("status.instanceId");
    let ud = s.user_data(&ec2, &id).await;
    assert!(ud.contains(&arn), "user-data names the Workspace's secret");
    assert!(!ud.contains(&bundle_arn) && !ud.contains("/bootstrap"), "user-data names the tenant bundle");
    assert!(!ud.contains("-nopw"), "the desktop requires a password");
    let tenant_values = s.tenant_secret_values(&t).await.expect("tenant secret values");
    assert!(tenant_values.iter().any(|(k, _)| k.contains("ghcrPullToken")), "the GHCR token is checked too");
    let raw = value.to_string();
    for (k, v) in &tenant_values {
        assert!(!ud.contains(v.as_str()), "Workspace user-data contains the tenant's {k}");
        assert!(!raw.contains(v.as_str()), "the Workspace secret contains the tenant's {k}");
    }

    // The instance runs under the tenant's own Workspace profile.
    let profile = tst.identity.and_then(|i| i.workspace).map(|w| w.instance_profile).expect("identity.workspace");
    let out = ec2.describe_instances().instance_ids(&id).send().await.unwrap();
    let inst = out.reservations().iter().flat_map(aws_sdk_ec2::types::Reservation::instances).next().unwrap();
    let got = inst.iam_instance_profile().and_then(|p| p.arn()).unwrap_or_default();
    assert!(got.ends_with(&format!("/{profile}")), "instance profile {got} is not {profile}");

    // The Workspace's own values leak nowhere either (operator log at trace, Events, user-data).
    let own = vec![("workspace token".to_owned(), token), ("display password".to_owned(), password)];
    let mut all = own;
    all.extend(tenant_values);
    let leaks = s.secret_leaks(&all).await;
    assert!(leaks.is_empty(), "leaks: {leaks:?}");

    // Deleting the Workspace deletes its secret.
    s.delete("desk").await.unwrap();
    s.wait_gone("desk", READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let sm = s.env.secretsmanager_direct().await;
    let gone = wait_for("the Workspace secret to be deleted", Duration::from_secs(20), || async {
        sm.describe_secret().secret_id(&arn).send().await.is_err().then_some(())
    })
    .await;
    assert!(gone.is_ok(), "secret {arn} outlived its Workspace\n{}", s.log());
    assert!(sm.describe_secret().secret_id(&bundle_arn).send().await.is_ok(), "the bundle stays with the Tenant");
}
