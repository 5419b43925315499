//! Data-volume quotas (API.md "Round two additions"), end to end: a tier-1 Tenant (data volumes of
//! at most 100 GB each, 200 GB in all) refuses a Workspace whose `dataGb` is over the per-Workspace
//! maximum, and one that passes alone but would take the total past 200 GB, with `QuotaExceeded`
//! naming the quota and `spec.compute.volume.dataGb`; nothing is created in AWS for either (no
//! instance, group or volume carries their owner uid). A Workspace without a data volume still
//! fits, and the Tenant's `status.usage.dataGbTotal` shows the 200 GB.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use molecule_crds::v1alpha1::Workspace;
use molecule_e2e::scenario::{Scenario, condition, uid};
use serde_json::json;

const T: Duration = Duration::from_secs(90);

fn data(gb: u32) -> serde_json::Value {
    json!({"runtime": "codex", "compute": {"volume": {"dataGb": gb}}})
}

async fn admitted(s: &Scenario, name: &str) -> Workspace {
    s.wait_ws(name, "Admitted=True", T, |w| condition(w, "Admitted").is_some_and(|c| c.0 == "True"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()))
}

/// Waits for `Admitted=False`, reason `QuotaExceeded`, and returns the Workspace and its message.
async fn over_quota(s: &Scenario, name: &str) -> (Workspace, String) {
    let w = s
        .wait_ws(name, "Admitted=False", T, |w| condition(w, "Admitted").is_some_and(|c| c.0 == "False"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let (_, reason, msg) = condition(&w, "Admitted").unwrap();
    assert_eq!(reason, "QuotaExceeded", "{name}: {msg}");
    let ev = s.events(name).await;
    assert!(ev.iter().any(|(t, r, _)| t == "Warning" && r == "QuotaExceeded"), "{name}: warning event, got {ev:?}");
    (w, msg)
}

#[tokio::test]
async fn data_volumes_over_the_tier_quota_are_refused_and_create_nothing() {
    // maxWorkspaces raised so that the count is not what refuses the third data volume.
    let mut s = Scenario::new("qdata", 1, json!({"quotas": {"maxWorkspaces": 4}})).await.expect("scenario");
    s.start_operator(&[]).expect("operator");
    s.apply(&s.workspace("a", data(100))).expect("apply a");
    s.apply(&s.workspace("b", data(100))).expect("apply b");
    let a = admitted(&s, "a").await;
    admitted(&s, "b").await;

    // Over the per-Workspace maximum of tier 1 (100 GB).
    s.apply(&s.workspace("big", data(101))).expect("apply big");
    let (big, msg) = over_quota(&s, "big").await;
    assert_eq!(msg, "spec.compute.volume.dataGb: quota maxDataGbPerWorkspace is 100; this Workspace requests 101 GB");
    // Within the per-Workspace maximum, but 200 GB are already admitted.
    s.apply(&s.workspace("c", data(50))).expect("apply c");
    let (c, msg) = over_quota(&s, "c").await;
    assert_eq!(
        msg,
        "spec.compute.volume.dataGb: quota maxDataGbTotal is 200; 200 already admitted, this Workspace requests 50"
    );
    // No data volume: counts 0, so it fits even with the data total used up.
    s.apply(&s.workspace("plain", json!({"runtime": "codex"}))).expect("apply plain");
    admitted(&s, "plain").await;

    // Once a is Ready its volumes exist: the leftovers check does find a Workspace's resources.
    s.wait_ready("a", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let of_a = s.leftovers(&uid(&a), None).await;
    assert!(of_a.iter().any(|r| r.starts_with("volume")), "a's data volume is in moto: {of_a:?}");
    for (name, w) in [("big", &big), ("c", &c)] {
        assert!(s.leftovers(&uid(w), None).await.is_empty(), "{name}: nothing in AWS");
        let st = w.status.as_ref().unwrap();
        assert!(st.launch.is_none(), "{name}: no launch attempt");
    }
    let usage = s
        .wait_tenant("usage.dataGbTotal=200", T, |t| {
            t.status.as_ref().and_then(|x| x.usage).is_some_and(|u| u.data_gb_total == 200 && u.workspaces == 3)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(usage.status.unwrap().usage.unwrap().data_gb_total, 200);

    for n in ["a", "b", "big", "c", "plain"] {
        s.delete(n).await.unwrap();
    }
    for n in ["a", "b", "big", "c", "plain"] {
        s.wait_gone(n, T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    }
    assert!(s.leftovers(&uid(&a), None).await.is_empty(), "a's resources deleted with it");
}
