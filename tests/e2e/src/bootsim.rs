//! The bootstrap simulator. moto never runs user-data, so nothing on a moto "instance" would tag
//! it `moleculesai.app/boot=ready` the way the real bootstrap does. This loop plays that part:
//! for every running instance of ours without a boot tag it reads the instance's user-data and,
//! as the rendered script would, tags `boot=ready`, and `display=ready` when the script carries
//! the display health loop. It talks to moto directly (not through the fault proxy), so it never
//! shows up in the operator's call counts.
//!
//! It learns of new instances from the AWS model's launch journal (GET /__aws_model/launched,
//! `testenv/moto_launcher.py`) and describes only those, by ID, until each runs and is tagged:
//! listing every running instance each second made moto render the whole fleet once a second,
//! the test world's limit at 1,000 Workspaces (issue 16). Against a moto without the journal it
//! falls back to that listing. Each instance is tagged once: a test that deletes the tag later
//! gets an instance that never reports (`boot_dns.rs`).
//!
//! Only instances tagged `moleculesai.app/managed-by` are booted; one tagged `testenv/boot=hold`
//! is left alone (tests of booting and failed boots).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, InstanceAttributeName, Tag};

use crate::harness::http_json;

/// Tag that makes the simulator skip an instance.
pub const HOLD_TAG: &str = "testenv/boot";
/// Only instances with this tag are ours to boot (as the fallback listing filters).
const MANAGED: &str = "moleculesai.app/managed-by";
/// An instance that has not run for this long is forgotten (stopped or gone before it booted).
const FORGET: Duration = Duration::from_mins(30);
/// Values of one EC2 filter (AWS's limit).
const CHUNK: usize = 200;

/// Where the simulator stands: the journal cursor and the launched instances not yet tagged.
struct Feed {
    journal: String,
    region: String,
    account: Option<String>,
    after: u64,
    pending: HashMap<String, Instant>,
}

/// Runs until the process is killed, polling every `every`. `endpoint` is moto's.
pub async fn run(ec2: aws_sdk_ec2::Client, sts: aws_sdk_sts::Client, endpoint: &str, every: Duration) {
    let account = sts.get_caller_identity().send().await.ok().and_then(|o| o.account().map(str::to_owned));
    let region = ec2.config().region().map(ToString::to_string).unwrap_or_default();
    let journal = format!("{}/__aws_model/launched", endpoint.trim_end_matches('/'));
    let mut feed = Feed { journal, region, account, after: 0, pending: HashMap::new() };
    let mut done: HashSet<String> = HashSet::new();
    loop {
        let result = match feed.read().await {
            Ok(()) => feed.pass(&ec2).await,
            Err(e) => {
                eprintln!("bootsim: {e}; listing the fleet instead");
                list_pass(&ec2, &mut done).await
            }
        };
        if let Err(e) = result {
            eprintln!("bootsim: {e}");
        }
        tokio::time::sleep(every).await;
    }
}

impl Feed {
    /// Takes the instances launched since the last read, of this account and region.
    async fn read(&mut self) -> Result<(), String> {
        loop {
            let url = format!("{}?after={}", self.journal, self.after);
            let (code, v) = http_json("GET", &url, None, None).await.map_err(|e| e.to_string())?;
            if code != 200 {
                return Err(format!("launch journal: HTTP {code}"));
            }
            let list = v["instances"].as_array().cloned().unwrap_or_default();
            for i in &list {
                let ours =
                    i["region"] == self.region.as_str() && self.account.as_deref().is_none_or(|a| i["account"] == a);
                if let (true, Some(id)) = (ours, i["id"].as_str()) {
                    self.pending.insert(id.to_owned(), Instant::now());
                }
            }
            self.after = v["next"].as_u64().unwrap_or(self.after);
            if list.is_empty() {
                return Ok(());
            }
        }
    }

    /// Tags the pending instances that run; forgets those terminated or too old.
    async fn pass(&mut self, ec2: &aws_sdk_ec2::Client) -> Result<(), String> {
        self.pending.retain(|_, since| since.elapsed() < FORGET);
        let ids: Vec<String> = self.pending.keys().cloned().collect();
        for chunk in ids.chunks(CHUNK) {
            let filter = Filter::builder().name("instance-id").set_values(Some(chunk.to_vec())).build();
            let out = ec2.describe_instances().filters(filter).send().await.map_err(|e| format!("describe: {e:?}"))?;
            for i in out.reservations().iter().flat_map(aws_sdk_ec2::types::Reservation::instances) {
                let Some(id) = i.instance_id() else { continue };
                let state = i.state().and_then(|s| s.name()).map(|n| n.as_str().to_owned()).unwrap_or_default();
                let has = |k: &str| i.tags().iter().any(|t| t.key() == Some(k));
                let gone = matches!(state.as_str(), "shutting-down" | "terminated");
                if gone || has("moleculesai.app/boot") || (state == "running" && !has(MANAGED)) {
                    self.pending.remove(id);
                } else if state == "running" && !has(HOLD_TAG) {
                    // One instance that cannot be tagged (purged meanwhile) holds up no other.
                    match tag_booted(ec2, id).await {
                        Ok(()) => drop(self.pending.remove(id)),
                        Err(e) => eprintln!("bootsim: {e}"),
                    }
                }
            }
        }
        Ok(())
    }
}

/// Without the journal: every running managed instance, filtered client side (EC2 has no "tag
/// absent" filter).
async fn list_pass(ec2: &aws_sdk_ec2::Client, done: &mut HashSet<String>) -> Result<(), String> {
    let filters = [
        Filter::builder().name("tag-key").values(MANAGED).build(),
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
        tag_booted(ec2, &id).await?;
        done.insert(id);
    }
    Ok(())
}

/// What the rendered bootstrap script does once it has run: `boot=ready`, and `display=ready`
/// when it carries the display health loop.
async fn tag_booted(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<(), String> {
    let ud = ec2
        .describe_instance_attribute()
        .instance_id(id)
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
    ec2.create_tags().resources(id).set_tags(Some(tags)).send().await.map_err(|e| format!("tag {id}: {e:?}"))?;
    Ok(())
}
