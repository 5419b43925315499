//! The bootstrap simulator. moto never runs user-data, so nothing on a moto "instance" would tag
//! it `moleculesai.app/boot=ready` the way the real bootstrap does. This loop plays that part:
//! for every running instance of ours without a boot tag it reads the instance's user-data and,
//! as the rendered script would, tags `boot=ready`, and `display=ready` when the script carries
//! the display health loop. It talks to moto directly (not through the fault proxy), so it never
//! shows up in the operator's call counts.
//!
//! An instance tagged `testenv/boot=hold` is left alone (tests of booting and failed boots).

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, InstanceAttributeName, Tag};

/// Tag that makes the simulator skip an instance.
pub const HOLD_TAG: &str = "testenv/boot";

/// Runs until the process is killed, polling every `every`.
pub async fn run(ec2: aws_sdk_ec2::Client, every: Duration) {
    let mut done: HashSet<String> = HashSet::new();
    loop {
        if let Err(e) = pass(&ec2, &mut done).await {
            eprintln!("bootsim: {e}");
        }
        tokio::time::sleep(every).await;
    }
}

async fn pass(ec2: &aws_sdk_ec2::Client, done: &mut HashSet<String>) -> Result<(), String> {
    let filters = [
        Filter::builder().name("tag-key").values("moleculesai.app/managed-by").build(),
        Filter::builder().name("instance-state-name").values("running").build(),
    ];
    let mut token = None;
    let mut todo = Vec::new();
    loop {
        let page = ec2
            .describe_instances()
            .set_filters(Some(filters.to_vec()))
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| format!("describe: {e:?}"))?;
        for i in page.reservations().iter().flat_map(aws_sdk_ec2::types::Reservation::instances) {
            let Some(id) = i.instance_id() else { continue };
            let has = |k: &str| i.tags().iter().any(|t| t.key() == Some(k));
            if has("moleculesai.app/boot") || has(HOLD_TAG) || done.contains(id) {
                continue;
            }
            todo.push(id.to_owned());
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    for id in todo {
        let ud = ec2
            .describe_instance_attribute()
            .instance_id(&id)
            .attribute(InstanceAttributeName::UserData)
            .send()
            .await
            .map_err(|e| format!("user-data of {id}: {e:?}"))?;
        let script = ud
            .user_data()
            .and_then(|v| v.value())
            .and_then(|b| aws_smithy_types::base64::decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let mut tags = vec![Tag::builder().key("moleculesai.app/boot").value("ready").build()];
        if script.contains("molecule-display-health") {
            tags.push(Tag::builder().key("moleculesai.app/display").value("ready").build());
        }
        ec2.create_tags().resources(&id).set_tags(Some(tags)).send().await.map_err(|e| format!("tag {id}: {e:?}"))?;
        done.insert(id);
    }
    Ok(())
}
