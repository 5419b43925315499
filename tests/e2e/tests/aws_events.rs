//! The AWS model's EventBridge notifications (tests/e2e/testenv/aws_model.py, `eventsQueueUrl`),
//! tested on their own against a private moto: instance state changes and instance tag changes,
//! by any caller, land on the configured SQS queue as EventBridge writes them.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use molecule_e2e::aws_world::PrivateAws;
use serde_json::{Value, json};

const AMI: &str = "ami-12c6146b"; // one of moto's built-in images

fn sqs(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testenv", "testenv", None, None, "testenv"))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// Every event on the queue now (received and deleted).
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let got = sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.expect("receive");
        if got.messages().is_empty() {
            return out;
        }
        for m in got.messages() {
            out.push(serde_json::from_str(m.body().unwrap()).expect("an event is JSON"));
            sqs.delete_message().queue_url(url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
    }
}

/// (detail-type, state or changed tag keys) of the events about `id`.
fn about(events: &[Value], id: &str) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["resources"][0].as_str().is_some_and(|r| r.ends_with(&format!("instance/{id}"))))
        .map(|e| {
            let what = e["detail"]["state"]
                .as_str()
                .map_or_else(|| e["detail"]["changed-tag-keys"].to_string(), str::to_owned);
            (e["detail-type"].as_str().unwrap().to_owned(), what)
        })
        .collect()
}

async fn launch(ec2: &aws_sdk_ec2::Client) -> String {
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(Tag::builder().key("owner").value("events").build())
        .build();
    let out = ec2
        .run_instances()
        .image_id(AMI)
        .min_count(1)
        .max_count(1)
        .instance_type(InstanceType::T3Small)
        .tag_specifications(tags)
        .send()
        .await
        .expect("run");
    out.instances()[0].instance_id().unwrap().to_owned()
}

const STATE: &str = "EC2 Instance State-change Notification";
const TAGS: &str = "Tag Change on Resource";

#[tokio::test]
async fn state_and_tag_changes_by_any_caller_reach_the_queue_as_eventbridge_writes_them() {
    let world = PrivateAws::start(None).await.expect("private moto");
    let sqs = sqs(&world.moto_url);
    let url = sqs.create_queue().queue_name("ec2-events").send().await.unwrap().queue_url().unwrap().to_owned();

    // Off until configured: nothing is published.
    let (direct, proxied) = (world.ec2_direct(), world.ec2(None));
    let quiet = launch(&direct).await;
    assert!(drain(&sqs, &url).await.is_empty(), "no queue configured, no events");

    let (status, model) = world.set_model(json!({"eventsQueueUrl": url})).await.unwrap();
    assert_eq!((status, model["eventsQueueUrl"].as_str()), (200, Some(url.as_str())), "{model}");
    // A profile change keeps the queue.
    let (_, model) = world.set_model(json!({"profile": "realistic"})).await.unwrap();
    assert_eq!(model["eventsQueueUrl"].as_str(), Some(url.as_str()), "{model}");

    let id = launch(&proxied).await;
    proxied.stop_instances().instance_ids(&id).send().await.unwrap();
    direct.start_instances().instance_ids(&id).send().await.unwrap();
    direct
        .create_tags()
        .resources(&id)
        .tags(Tag::builder().key("moleculesai.app/boot").value("ready").build())
        .send()
        .await
        .unwrap();
    direct.terminate_instances().instance_ids(&quiet).send().await.unwrap();
    proxied.terminate_instances().instance_ids(&id).send().await.unwrap();

    let events = drain(&sqs, &url).await;
    let got = about(&events, &id);
    let want: Vec<(String, String)> = [
        (TAGS, r#"["owner"]"#),
        (STATE, "pending"),
        (STATE, "running"),
        (STATE, "stopped"),
        (STATE, "running"),
        (TAGS, r#"["moleculesai.app/boot"]"#),
        (STATE, "terminated"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(got, want, "{events:#?}");
    assert_eq!(about(&events, &quiet), vec![(STATE.to_owned(), "terminated".to_owned())]);
    let state = events.iter().find(|e| e["detail-type"] == STATE).unwrap();
    assert_eq!((state["source"].as_str(), state["region"].as_str()), (Some("aws.ec2"), Some("us-east-1")));
    assert_eq!(state["detail"]["instance-id"].as_str().map(|s| s.starts_with("i-")), Some(true));
    let tag = events.iter().rfind(|e| e["detail-type"] == TAGS).unwrap();
    assert_eq!(tag["detail"]["resource-type"], "instance");
    assert_eq!(tag["detail"]["tags"]["moleculesai.app/boot"], "ready", "a tag event carries the tags after it");

    // Switched off again: nothing more.
    world.set_model(json!({"eventsQueueUrl": null})).await.unwrap();
    launch(&direct).await;
    assert!(drain(&sqs, &url).await.is_empty());
}

#[tokio::test]
async fn a_queue_url_that_is_not_one_is_refused() {
    let world = PrivateAws::start(None).await.expect("private moto");
    let (status, body) = world.set_model(json!({"eventsQueueUrl": "not-a-url"})).await.unwrap();
    assert_eq!(status, 400, "{body}");
    let (status, body) = world.set_model(json!({"eventsQueueUrl": 5})).await.unwrap();
    assert_eq!(status, 400, "{body}");
}
