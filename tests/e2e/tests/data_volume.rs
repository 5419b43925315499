//! The data volume across Recreate (issue 13): five Recreates in a row of a Workspace with a data
//! volume, the Workspace polled every 200 ms; whenever it shows `Ready=True` for the new
//! generation, AWS (read right after, straight from moto) must show the data volume attached to
//! the instance in status and the old instance shutting down or terminated. Before the fix the
//! Workspace showed the new instance Ready while the volume was still on the old one.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use molecule_crds::v1alpha1::Workspace;
use molecule_e2e::scenario::{Scenario, condition, uid};
use serde_json::json;

const T: Duration = Duration::from_mins(2);
const POLL: Duration = Duration::from_millis(200);
const ROUNDS: usize = 5;

fn instance_id(w: &Workspace) -> String {
    w.status.as_ref().and_then(|s| s.instance_id.clone()).unwrap_or_default()
}

/// The instance the volume is attached (or attaching) to, per AWS.
async fn holder(ec2: &aws_sdk_ec2::Client, vol: &str) -> Option<String> {
    let out = ec2.describe_volumes().volume_ids(vol).send().await.unwrap();
    out.volumes()[0].attachments().iter().find_map(|a| a.instance_id().map(str::to_owned))
}

/// The instance's state name per AWS ("gone" once purged).
async fn state(ec2: &aws_sdk_ec2::Client, id: &str) -> String {
    match ec2.describe_instances().instance_ids(id).send().await {
        Ok(out) => out
            .reservations()
            .iter()
            .flat_map(aws_sdk_ec2::types::Reservation::instances)
            .find_map(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str().to_owned()))
            .unwrap_or_else(|| "gone".into()),
        Err(_) => "gone".into(),
    }
}

/// One Recreate: polls until Ready=True for the new generation; asserts the invariant at that
/// moment; returns the new instance and how many polls saw it not Ready yet.
async fn recreate(s: &Scenario, ec2: &aws_sdk_ec2::Client, vol: &str, round: usize, to: &str) -> (String, u32) {
    let before = s.get("dv").await.unwrap();
    let (old, generation) = (instance_id(&before), before.metadata.generation.unwrap_or_default());
    s.patch("dv", json!({"spec": {"compute": {"instanceType": to}}})).await.unwrap();
    let deadline = Instant::now() + T;
    let mut waiting = 0;
    loop {
        let w = s.get("dv").await.unwrap();
        let st = w.status.clone().unwrap_or_default();
        let ready = condition(&w, "Ready").is_some_and(|c| c.0 == "True");
        if ready && st.observed_generation.unwrap_or_default() > generation {
            let new = instance_id(&w);
            // Read after the Workspace: the invariant is monotonic, so a violation seen now was
            // there when the Workspace said Ready.
            let (on, old_state) = (holder(ec2, vol).await, state(ec2, &old).await);
            let log = format!(
                "old {old} is {old_state}; conditions {:?}\nevents {:#?}\n{}",
                st.conditions.iter().map(|c| (&c.type_, &c.status, &c.reason, &c.message)).collect::<Vec<_>>(),
                s.events("dv").await,
                s.log()
            );
            assert_ne!(new, old, "round {round}: Ready for the new generation on the old instance\n{log}");
            assert_eq!(
                on.as_deref(),
                Some(new.as_str()),
                "round {round}: Ready=True while the data volume is on {on:?}, not on {new}\n{log}"
            );
            assert!(
                matches!(old_state.as_str(), "shutting-down" | "terminated" | "gone"),
                "round {round}: Ready=True while the old instance {old} is {old_state}\n{log}"
            );
            return (new, waiting);
        }
        waiting += 1;
        assert!(Instant::now() < deadline, "round {round}: not Ready within {T:?}\n{}", s.log());
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn recreate_with_a_data_volume_is_ready_only_once_the_volume_moved() {
    let mut s = Scenario::new("datavol", 4, json!({})).await.unwrap();
    s.start_operator(&[]).unwrap();
    s.apply(&s.sample("workspace-recreate.yaml", "dv")).unwrap();
    let w = s.wait_ready("dv", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let vol = w.status.clone().unwrap().data_volume_id.unwrap();
    let ec2 = s.env.ec2_direct().await;
    assert_eq!(holder(&ec2, &vol).await, Some(instance_id(&w)), "Ready: the volume is on the instance");
    let mut seen = vec![instance_id(&w)];
    for round in 0..ROUNDS {
        let to = if round % 2 == 0 { "t3.large" } else { "t3.medium" };
        let started = Instant::now();
        let (new, polls) = recreate(&s, &ec2, &vol, round, to).await;
        println!("round {round}: {} -> {new} Ready after {polls} polls, {:?}", seen.last().unwrap(), started.elapsed());
        assert!(!seen.contains(&new), "round {round}: a new instance each time");
        seen.push(new);
    }
    let w = s.get("dv").await.unwrap();
    assert_eq!(w.status.as_ref().and_then(|s| s.data_volume_id.clone()), Some(vol.clone()), "the same volume");
    assert_eq!(s.alive(&uid(&w)).await, vec![seen.last().unwrap().clone()], "one instance left");
    let rec = w.status.as_ref().and_then(|s| s.data_volume_record.clone()).expect("the volume's record");
    assert_eq!(rec.generation, 1, "one volume generation across the Recreates");

    s.delete("dv").await.unwrap();
    s.wait_gone("dv", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let left = s.leftovers(&uid(&w), w.status.as_ref().unwrap().hostname.as_deref()).await;
    assert!(left.is_empty(), "left behind {left:?}");
}
