//! Workspace lifecycle: drift under Recreate and Manual, stop and start, relaunch of an instance
//! lost behind the operator's back.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use molecule_crds::v1alpha1::{Workspace, WorkspacePhase};
use molecule_e2e::scenario::{Scenario, condition, uid};
use serde_json::json;

const T: Duration = Duration::from_secs(90);

fn instance_id(w: &Workspace) -> String {
    w.status.as_ref().and_then(|s| s.instance_id.clone()).unwrap_or_default()
}

fn phase(w: &Workspace) -> Option<WorkspacePhase> {
    w.status.as_ref().and_then(|s| s.phase)
}

async fn instance_type(s: &Scenario, id: &str) -> (String, String) {
    let out = s.env.ec2_direct().await.describe_instances().instance_ids(id).send().await.unwrap();
    let i = &out.reservations()[0].instances()[0];
    (i.instance_type().unwrap().as_str().to_owned(), i.state().unwrap().name().unwrap().as_str().to_owned())
}

async fn volume_holder(s: &Scenario, vol: &str) -> Option<String> {
    let out = s.env.ec2_direct().await.describe_volumes().volume_ids(vol).send().await.unwrap();
    out.volumes()[0].attachments().iter().find_map(|a| a.instance_id().map(str::to_owned))
}

#[tokio::test]
async fn recreate_replaces_the_instance_and_keeps_the_data_volume() {
    let mut s = Scenario::new("recreate", 4, json!({})).await.unwrap();
    s.start_operator(&[]).unwrap();
    s.apply(&s.sample("workspace-recreate.yaml", "rc")).unwrap();
    let w = s.wait_ready("rc", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let (old, vol) = (instance_id(&w), w.status.clone().unwrap().data_volume_id.unwrap());
    s.wait_ws("rc", "data volume attached", T, |_| true).await.unwrap();
    molecule_e2e::harness::wait_for("data volume on the first instance", T, || async {
        (volume_holder(&s, &vol).await.as_deref() == Some(old.as_str())).then_some(())
    })
    .await
    .unwrap();

    s.patch("rc", json!({"spec": {"compute": {"instanceType": "t3.large"}}})).await.unwrap();
    let w = s
        .wait_ws("rc", "replaced and Ready", T, |w| {
            instance_id(w) != old
                && condition(w, "Ready").is_some_and(|c| c.0 == "True")
                && phase(w) == Some(WorkspacePhase::Running)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let new = instance_id(&w);
    assert_eq!(instance_type(&s, &new).await.0, "t3.large");
    assert_eq!(w.status.as_ref().unwrap().resolved.as_ref().unwrap().instance_type, "t3.large");
    assert_eq!(w.status.as_ref().unwrap().launch.as_ref().unwrap().attempt, 2);
    assert_eq!(w.status.as_ref().unwrap().data_volume_id.as_deref(), Some(vol.as_str()), "same data volume");
    molecule_e2e::harness::wait_for("data volume moved to the new instance", T, || async {
        (volume_holder(&s, &vol).await.as_deref() == Some(new.as_str())).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(instance_type(&s, &old).await.1, "terminated", "the old instance is terminated");
    assert_eq!(s.alive(&uid(&w)).await, vec![new.clone()]);
    assert!(s.events("rc").await.iter().any(|(_, r, _)| r == "Replacing"));

    s.delete("rc").await.unwrap();
    s.wait_gone("rc", T).await.unwrap();
    let left = s.leftovers(&uid(&w), w.status.as_ref().unwrap().hostname.as_deref()).await;
    assert!(left.is_empty(), "left behind {left:?}");
}

#[tokio::test]
async fn manual_reports_drift_until_the_annotation() {
    let mut s = Scenario::new("manual", 4, json!({})).await.unwrap();
    s.start_operator(&[]).unwrap();
    s.apply(&s.workspace(
        "m",
        json!({"runtime": "codex", "compute": {"instanceType": "t3.medium", "volume": {"dataGb": 5}}}),
    ))
    .unwrap();
    let w = s.wait_ready("m", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let first = instance_id(&w);
    s.patch("m", json!({"spec": {"compute": {"instanceType": "t3.xlarge"}}})).await.unwrap();
    let w = s
        .wait_ws("m", "Drifted", T, |w| condition(w, "Drifted").is_some_and(|c| c.0 == "True"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let msg = condition(&w, "Drifted").unwrap().2;
    assert!(msg.contains("instanceType: t3.medium → t3.xlarge"), "{msg}");
    assert!(msg.contains("root volume is lost") && msg.contains("data volume survives"), "{msg}");
    assert!(msg.contains("moleculesai.app/recreate-at"), "{msg}");
    // Several refreshes later nothing has been replaced and the machine in status is the old one.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let w = s.get("m").await.unwrap();
    assert_eq!(instance_id(&w), first);
    assert_eq!(w.status.as_ref().unwrap().resolved.as_ref().unwrap().instance_type, "t3.medium");
    assert_eq!(s.alive(&uid(&w)).await, vec![first.clone()]);
    assert_eq!(instance_type(&s, &first).await.0, "t3.medium");
    assert!(condition(&w, "Ready").is_some_and(|c| c.0 == "True"), "drift alone keeps Ready");
    assert!(s.events("m").await.iter().any(|(t, r, _)| t == "Warning" && r == "SpecChanged"));

    let at = jiff::Timestamp::now().to_string();
    s.patch("m", json!({"metadata": {"annotations": {"moleculesai.app/recreate-at": at}}})).await.unwrap();
    let w = s
        .wait_ws("m", "replaced after recreate-at", T, |w| {
            instance_id(w) != first
                && condition(w, "Ready").is_some_and(|c| c.0 == "True")
                && condition(w, "Drifted").is_some_and(|c| c.0 == "False")
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(instance_type(&s, &instance_id(&w)).await.0, "t3.xlarge");
    molecule_e2e::harness::wait_for("old instance retired", T, || async {
        (s.alive(&uid(&w)).await.len() == 1).then_some(())
    })
    .await
    .unwrap();
    s.delete("m").await.unwrap();
    s.wait_gone("m", T).await.unwrap();
    assert!(s.leftovers(&uid(&w), w.status.as_ref().unwrap().hostname.as_deref()).await.is_empty());
}

#[tokio::test]
async fn stop_start_and_relaunch_after_loss() {
    let mut s = Scenario::new("life", 4, json!({})).await.unwrap();
    s.start_operator(&[]).unwrap();
    s.apply(&s.workspace("w", json!({"runtime": "codex", "compute": {"volume": {"dataGb": 3}}}))).unwrap();
    let w = s.wait_ready("w", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let id = instance_id(&w);

    s.patch("w", json!({"spec": {"state": "Stopped"}})).await.unwrap();
    s.wait_ws("w", "Stopped", T, |w| phase(w) == Some(WorkspacePhase::Stopped))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(instance_type(&s, &id).await.1, "stopped");
    let w = s.get("w").await.unwrap();
    assert_eq!(condition(&w, "Ready").unwrap().1, "Stopped");
    s.patch("w", json!({"spec": {"state": "Running"}})).await.unwrap();
    let w = s
        .wait_ws("w", "Running again", T, |w| phase(w) == Some(WorkspacePhase::Running))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(instance_id(&w), id, "start keeps the same instance");
    assert_eq!(instance_type(&s, &id).await.1, "running");

    // Terminated behind the operator's back: relaunched as the next attempt, with an Event.
    s.env.ec2_direct().await.terminate_instances().instance_ids(&id).send().await.unwrap();
    let w = s
        .wait_ws("w", "relaunched", T, |w| instance_id(w) != id && condition(w, "Ready").is_some_and(|c| c.0 == "True"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(w.status.as_ref().unwrap().launch.as_ref().unwrap().attempt, 2);
    assert_eq!(s.alive(&uid(&w)).await, vec![instance_id(&w)]);
    let ev = s.events("w").await;
    assert!(ev.iter().any(|(t, r, n)| t == "Warning" && r == "Relaunching" && n.contains(&id)), "{ev:?}");
    assert!(s.metric_sum("molecule_instance_relaunches_total", &[]).await >= 1.0);

    // A second instance of the same attempt (a duplicate launch AWS's ClientToken would have
    // prevented and moto does not): terminated, the one in status kept.
    let current = instance_id(&w);
    let ec2 = s.env.ec2_direct().await;
    let out = ec2.describe_instances().instance_ids(&current).send().await.unwrap();
    let orig = &out.reservations()[0].instances()[0];
    let mut spec =
        aws_sdk_ec2::types::TagSpecification::builder().resource_type(aws_sdk_ec2::types::ResourceType::Instance);
    for t in orig.tags() {
        spec = spec.tags(t.clone());
    }
    let dup = ec2
        .run_instances()
        .image_id(orig.image_id().unwrap())
        .instance_type(orig.instance_type().unwrap().clone())
        .subnet_id(orig.subnet_id().unwrap())
        .min_count(1)
        .max_count(1)
        .tag_specifications(spec.build())
        .send()
        .await
        .unwrap();
    let dup_id = dup.instances()[0].instance_id().unwrap().to_owned();
    molecule_e2e::harness::wait_for("duplicate terminated", T, || async {
        (s.alive(&uid(&w)).await == vec![current.clone()]).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(instance_id(&s.get("w").await.unwrap()), current, "the instance in status is kept");
    let ev = s.events("w").await;
    assert!(ev.iter().any(|(t, r, n)| t == "Warning" && r == "DuplicateTerminated" && n.contains(&dup_id)), "{ev:?}");

    s.delete("w").await.unwrap();
    s.wait_gone("w", T).await.unwrap();
    assert!(s.leftovers(&uid(&w), w.status.as_ref().unwrap().hostname.as_deref()).await.is_empty());
}
