//! Security groups: found by owner uid, created with their tags, rules converged.

use crate::cloud::fake::ops;
use crate::cloud::{Peer, Rule, RuleChange};
use crate::failpoints::Failpoints;
use crate::metrics::Metrics;
use crate::reconcile::groups::{self, Desired};
use crate::testing;

fn desired<'a>(uid: &'a str, eic: &str) -> Desired<'a> {
    Desired {
        uid,
        status_sg: None,
        name: format!("molecule-ws-{uid}"),
        description: "test".into(),
        tags: testing::tags(&testing::workspace_owner(uid)),
        ingress: vec![Rule { protocol: "tcp".into(), from_port: 22, to_port: 22, peer: Peer::Group(eic.into()) }],
        egress: vec![Rule::all_with("10.0.0.0/16")],
        failpoint: "workspace.sg.after-create",
    }
}

#[tokio::test]
async fn a_group_is_created_once_with_its_tags_and_exact_rules() {
    let fake = testing::cloud();
    let acct = testing::account(&fake, "main", &Metrics::new()).await;
    let fp = Failpoints::default();
    let eic = fake.seed_group("eic", &std::collections::BTreeMap::new());
    let g = groups::converge(acct.network.as_ref(), &acct.cache, &fp, desired("g1", &eic)).await.unwrap();
    let real = fake.group(&g.id).unwrap();
    assert_eq!(real.tags, testing::tags(&testing::workspace_owner("g1")));
    assert_eq!((real.ingress.clone(), real.egress.clone()), (desired("g1", &eic).ingress, desired("g1", &eic).egress));
    fake.clear_calls();
    groups::converge(acct.network.as_ref(), &acct.cache, &fp, desired("g1", &eic)).await.unwrap();
    assert!(fake.calls().is_empty(), "converged: no call ({:?})", fake.calls());
}

#[tokio::test]
async fn a_rule_removed_out_of_band_comes_back_and_an_added_one_goes() {
    let fake = testing::cloud();
    let acct = testing::account(&fake, "main", &Metrics::new()).await;
    let fp = Failpoints::default();
    let eic = fake.seed_group("eic", &std::collections::BTreeMap::new());
    let g = groups::converge(acct.network.as_ref(), &acct.cache, &fp, desired("g2", &eic)).await.unwrap();
    let open = Rule::all_with("0.0.0.0/0");
    fake.network().change_rules(&g.id, &desired("g2", &eic).ingress, RuleChange::RevokeIngress).await.unwrap();
    fake.network().change_rules(&g.id, std::slice::from_ref(&open), RuleChange::AuthorizeIngress).await.unwrap();
    acct.cache.refresh().await.unwrap();
    groups::converge(acct.network.as_ref(), &acct.cache, &fp, desired("g2", &eic)).await.unwrap();
    assert_eq!(fake.group(&g.id).unwrap().ingress, desired("g2", &eic).ingress);
    assert!(fake.count(ops::REVOKE_INGRESS) >= 2);
}
