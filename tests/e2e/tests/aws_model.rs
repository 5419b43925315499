//! The AWS model of the test world (tests/e2e/testenv/aws_model.py, loaded by moto_launcher.py)
//! and the fault proxy's `hang` rule, tested on their own with the AWS SDK. Each test starts a
//! private moto + fault proxy (molecule_e2e::aws_world) from the same launcher up.sh uses, so
//! switching the model here never touches the shared test world.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, InstanceType, ResourceType, Tag, TagSpecification};
use molecule_e2e::aws_world::PrivateAws;
use molecule_e2e::harness::http_json;
use serde_json::json;

const AMI: &str = "ami-12c6146b"; // one of moto's built-in images

fn tags(kind: ResourceType, owner: &str) -> TagSpecification {
    TagSpecification::builder().resource_type(kind).tags(Tag::builder().key("owner").value(owner).build()).build()
}

async fn run(
    ec2: &Client,
    owner: &str,
    token: Option<&str>,
    ty: InstanceType,
) -> Result<String, (String, u16, String)> {
    let out = ec2
        .run_instances()
        .image_id(AMI)
        .min_count(1)
        .max_count(1)
        .instance_type(ty)
        .tag_specifications(tags(ResourceType::Instance, owner))
        .set_client_token(token.map(str::to_owned))
        .send()
        .await;
    match out {
        Ok(o) => Ok(o.instances().first().and_then(|i| i.instance_id()).expect("an instance").to_owned()),
        Err(e) => {
            let (status, body) = e.raw_response().map_or((0, String::new()), |raw| {
                (raw.status().as_u16(), String::from_utf8_lossy(raw.body().bytes().unwrap_or_default()).into_owned())
            });
            Err((e.code().unwrap_or_default().to_owned(), status, body))
        }
    }
}

async fn listed_instances(ec2: &Client, owner: &str) -> Vec<String> {
    let f = Filter::builder().name("tag:owner").values(owner).build();
    let out = ec2.describe_instances().filters(f).send().await.expect("describe");
    out.reservations()
        .iter()
        .flat_map(aws_sdk_ec2::types::Reservation::instances)
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect()
}

async fn all_instances(ec2: &Client) -> Vec<String> {
    let out = ec2.describe_instances().send().await.expect("describe");
    out.reservations()
        .iter()
        .flat_map(aws_sdk_ec2::types::Reservation::instances)
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect()
}

async fn state_by_id(ec2: &Client, id: &str) -> Result<String, String> {
    match ec2.describe_instances().instance_ids(id).send().await {
        Ok(o) => Ok(o.reservations()[0].instances()[0].state().unwrap().name().unwrap().as_str().to_owned()),
        Err(e) => Err(e.code().unwrap_or_default().to_owned()),
    }
}

async fn create_volume(ec2: &Client, token: &str, size: i32) -> Result<String, String> {
    let out = ec2.create_volume().availability_zone("us-east-1a").size(size).client_token(token).send().await;
    out.map(|v| v.volume_id().unwrap().to_owned()).map_err(|e| e.code().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn off_by_default_when_not_configured() {
    let aws = PrivateAws::start(None).await.unwrap();
    assert_eq!(
        aws.model().await.unwrap(),
        json!({"clientToken": false, "listingLagMs": 0, "instanceListingLagMs": null, "purgeAfterMs": null, "eventsQueueUrl": null})
    );
    let ec2 = aws.ec2(None);
    let a = run(&ec2, "off", Some("tok-off"), InstanceType::T3Small).await.unwrap();
    let b = run(&ec2, "off", Some("tok-off"), InstanceType::T3Small).await.unwrap();
    assert_ne!(a, b, "plain moto ignores ClientToken: two instances");
    assert_eq!(listed_instances(&ec2, "off").await.len(), 2, "listed at once");
    ec2.terminate_instances().instance_ids(&a).send().await.unwrap();
    assert_eq!(state_by_id(&ec2, &a).await.unwrap(), "terminated", "kept forever");
    let v1 = create_volume(&ec2, "vol-off", 8).await.unwrap();
    assert_ne!(v1, create_volume(&ec2, "vol-off", 8).await.unwrap());
}

#[tokio::test]
async fn configuration_is_validated_and_profiles_apply() {
    let aws = PrivateAws::start(Some("realistic")).await.unwrap();
    assert_eq!(
        aws.model().await.unwrap(),
        json!({"clientToken": true, "listingLagMs": 2000, "instanceListingLagMs": null, "purgeAfterMs": 60000, "eventsQueueUrl": null})
    );
    for bad in [json!({"lag": 1}), json!({"listingLagMs": -1}), json!({"profile": "harsh"}), json!({"clientToken": 1})]
    {
        let (status, body) = aws.set_model(bad.clone()).await.unwrap();
        assert_eq!(status, 400, "{bad} refused: {body}");
    }
    let (status, body) = aws.set_model(json!({"profile": "off", "purgeAfterMs": 5})).await.unwrap();
    assert_eq!(
        (status, body),
        (
            200,
            json!({"clientToken": false, "listingLagMs": 0, "instanceListingLagMs": null, "purgeAfterMs": 5, "eventsQueueUrl": null})
        )
    );
}

#[tokio::test]
async fn client_token_makes_run_instances_and_create_volume_idempotent() {
    let aws = PrivateAws::start(Some(r#"{"clientToken": true}"#)).await.unwrap();
    let ec2 = aws.ec2(None);
    let a = run(&ec2, "ct", Some("tok-1"), InstanceType::T3Small).await.unwrap();
    assert_eq!(run(&ec2, "ct", Some("tok-1"), InstanceType::T3Small).await.unwrap(), a, "same token, same instance");
    assert_eq!(listed_instances(&ec2, "ct").await, vec![a.clone()], "exactly one instance");
    let (code, status, body) = run(&ec2, "ct", Some("tok-1"), InstanceType::T3Micro).await.unwrap_err();
    assert_eq!((code.as_str(), status), ("IdempotentParameterMismatch", 400));
    assert!(body.contains("<Errors><Error><Code>IdempotentParameterMismatch</Code><Message>"), "EC2 XML: {body}");
    assert!(body.contains("</Errors><RequestID>") && body.trim_end().ends_with("</Response>"), "EC2 XML: {body}");
    assert_ne!(run(&ec2, "ct", Some("tok-2"), InstanceType::T3Small).await.unwrap(), a, "another token");
    assert_ne!(run(&ec2, "ct", None, InstanceType::T3Small).await.unwrap(), a, "no token");

    let v = create_volume(&ec2, "vtok-1", 10).await.unwrap();
    assert_eq!(create_volume(&ec2, "vtok-1", 10).await.unwrap(), v, "same token, same volume");
    assert_eq!(create_volume(&ec2, "vtok-1", 20).await.unwrap_err(), "IdempotentParameterMismatch");
    ec2.delete_volume().volume_id(&v).send().await.unwrap();
    assert_eq!(create_volume(&ec2, "vtok-1", 10).await.unwrap(), v, "a deleted volume's token still names it");
}

#[tokio::test]
async fn a_purged_instance_is_gone_and_its_token_is_terminated() {
    let aws = PrivateAws::start(Some(r#"{"clientToken": true, "purgeAfterMs": 1500}"#)).await.unwrap();
    let ec2 = aws.ec2(None);
    let a = run(&ec2, "purge", Some("tok-p"), InstanceType::T3Small).await.unwrap();
    ec2.terminate_instances().instance_ids(&a).send().await.unwrap();
    let terminated = Instant::now();
    assert_eq!(state_by_id(&ec2, &a).await.unwrap(), "terminated");
    assert_eq!(listed_instances(&ec2, "purge").await, vec![a.clone()], "listed until purged");
    assert_eq!(run(&ec2, "purge", Some("tok-p"), InstanceType::T3Small).await.unwrap(), a, "before the purge");
    while listed_instances(&ec2, "purge").await.contains(&a) {
        assert!(terminated.elapsed() < Duration::from_secs(10), "never purged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(terminated.elapsed() >= Duration::from_millis(1400), "purged after {:?}", terminated.elapsed());
    assert_eq!(state_by_id(&ec2, &a).await.unwrap_err(), "InvalidInstanceID.NotFound");
    let stop = ec2.terminate_instances().instance_ids(&a).send().await.unwrap_err();
    assert_eq!(stop.code(), Some("InvalidInstanceID.NotFound"), "every call that names it");
    let (code, status, body) = run(&ec2, "purge", Some("tok-p"), InstanceType::T3Small).await.unwrap_err();
    assert_eq!((code.as_str(), status), ("IdempotentInstanceTerminated", 400));
    assert!(body.contains("<Code>IdempotentInstanceTerminated</Code>"), "EC2 XML: {body}");
}

async fn listed_volumes(ec2: &Client) -> Vec<String> {
    let out = ec2.describe_volumes().send().await.expect("volumes");
    out.volumes().iter().filter_map(|v| v.volume_id().map(str::to_owned)).collect()
}

async fn listed_groups(ec2: &Client) -> Vec<String> {
    let out = ec2.describe_security_groups().send().await.expect("groups");
    out.security_groups().iter().filter_map(|g| g.group_id().map(str::to_owned)).collect()
}

#[tokio::test]
async fn new_resources_are_listed_only_after_the_lag() {
    let aws = PrivateAws::start(Some(r#"{"listingLagMs": 3000}"#)).await.unwrap();
    let ec2 = aws.ec2(None);
    let i = run(&ec2, "lag", None, InstanceType::T3Small).await.unwrap();
    let created = Instant::now();
    let v = create_volume(&ec2, "vlag", 8).await.unwrap();
    let g = ec2.create_security_group().group_name("lag").description("lag").send().await.unwrap();
    let g = g.group_id().unwrap().to_owned();
    // The group's lag runs from its own creation, a moment after the instance's (longer in a
    // busy world): it is listed at its own time, not the instance's.
    let g_created = Instant::now();
    assert!(listed_instances(&ec2, "lag").await.is_empty(), "not in a tag-filtered listing yet");
    assert!(!all_instances(&ec2).await.contains(&i), "nor in the full listing");
    assert!(!listed_volumes(&ec2).await.contains(&v) && !listed_groups(&ec2).await.contains(&g));
    assert_eq!(state_by_id(&ec2, &i).await.unwrap(), "running", "describe-by-ID sees it");
    assert_eq!(listed_instances(&aws.ec2_direct(), "lag").await, vec![i.clone()], "straight to moto: no lag");
    ec2.describe_volumes().volume_ids(&v).send().await.expect("volume by ID");
    ec2.describe_security_groups().group_ids(&g).send().await.expect("group by ID");
    while listed_instances(&ec2, "lag").await.is_empty() {
        assert!(created.elapsed() < Duration::from_secs(15), "never listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(created.elapsed() >= Duration::from_millis(2800), "listed after {:?}", created.elapsed());
    while !(listed_volumes(&ec2).await.contains(&v) && listed_groups(&ec2).await.contains(&g)) {
        assert!(g_created.elapsed() < Duration::from_secs(15), "volume or group never listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(g_created.elapsed() >= Duration::from_millis(2800), "group listed after {:?}", g_created.elapsed());
    assert_eq!(aws.set_model(json!({"listingLagMs": 0})).await.unwrap().0, 200);
    let j = run(&ec2, "lag", None, InstanceType::T3Small).await.unwrap();
    assert!(all_instances(&ec2).await.contains(&j), "switched off at run time: listed at once");
    // Instances alone may lag longer (or, here, alone at all).
    assert_eq!(aws.set_model(json!({"instanceListingLagMs": 60_000})).await.unwrap().0, 200);
    let late = run(&ec2, "lag", None, InstanceType::T3Small).await.unwrap();
    let group = ec2.create_security_group().group_name("lag2").description("lag").send().await.unwrap();
    assert!(!all_instances(&ec2).await.contains(&late), "the instance lags");
    assert!(listed_groups(&ec2).await.contains(&group.group_id().unwrap().to_owned()), "the group does not");
}

#[tokio::test]
async fn a_hang_rule_holds_matching_calls_until_cleared() {
    let aws = PrivateAws::start(None).await.unwrap();
    let rule = json!({"service": "ec2", "operation": "RunInstances", "kind": "hang", "bodyContains": "hang-me"});
    let (status, _) = http_json("POST", &format!("{}/rules", aws.faults_url), Some(rule), None).await.unwrap();
    assert_eq!(status, 200);
    let impatient = aws.ec2(Some(Duration::from_secs(2)));
    let started = Instant::now();
    let err = run(&impatient, "hang-me", None, InstanceType::T3Small).await;
    assert!(err.is_err() && started.elapsed() >= Duration::from_secs(2), "no answer: timed out");
    run(&impatient, "other", None, InstanceType::T3Small).await.expect("another owner's call goes through");
    assert_eq!(listed_instances(&impatient, "other").await.len(), 1, "other operations go through");

    let patient = aws.ec2(None);
    let held = tokio::spawn(async move { run(&patient, "hang-me", None, InstanceType::T3Small).await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!held.is_finished(), "still held after 3 s");
    let (status, _) = http_json("DELETE", &format!("{}/rules", aws.faults_url), None, None).await.unwrap();
    assert_eq!(status, 200);
    let released = tokio::time::timeout(Duration::from_secs(5), held).await.expect("released on clear").unwrap();
    assert!(released.is_err(), "closed without an answer");
    assert!(listed_instances(&impatient, "hang-me").await.is_empty(), "a hung call never reaches moto");
    let counts = http_json("GET", &format!("{}/counts", aws.faults_url), None, None).await.unwrap().1;
    assert_eq!(counts["faulted"]["ec2.RunInstances"], json!(2));
}

#[tokio::test]
async fn the_launch_journal_lists_each_launch_once_in_order() {
    let aws = PrivateAws::start(None).await.unwrap();
    let journal = |after: &str| format!("{}/__aws_model/launched?after={after}", aws.moto_url);
    let (_, start) = http_json("GET", &journal("0"), None, None).await.unwrap();
    let ec2 = aws.ec2_direct();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(run(&ec2, "journal", None, InstanceType::T3Small).await.unwrap());
    }
    let after = start["next"].as_u64().unwrap();
    let (code, v) = http_json("GET", &journal(&after.to_string()), None, None).await.unwrap();
    assert_eq!(code, 200);
    let listed: Vec<&str> = v["instances"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(listed, ids, "every launch, in order");
    assert_eq!(v["instances"][0]["region"], "us-east-1");
    assert_eq!(v["next"].as_u64(), Some(after + 3));
    let (_, v) = http_json("GET", &journal(&(after + 3).to_string()), None, None).await.unwrap();
    assert_eq!(v["instances"], json!([]), "nothing new: {v}");
    let (_, v) = http_json("GET", &journal(&(after + 2).to_string()), None, None).await.unwrap();
    assert_eq!(v["instances"][0]["id"], ids[2].as_str(), "from the cursor on");
    let (code, _) = http_json("GET", &journal("soon"), None, None).await.unwrap();
    assert_eq!(code, 400, "a cursor that is not a number is refused");
}

/// The bootstrap simulator on a private moto: it learns launches from the journal, boots the
/// managed instance (with `display=ready` when the user-data carries the display health loop),
/// and leaves an unmanaged one and a held one alone.
#[tokio::test]
async fn bootsim_boots_managed_instances_it_learns_from_the_journal() {
    let aws = PrivateAws::start(None).await.unwrap();
    let ec2 = aws.ec2_direct();
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .region(aws_sdk_sts::config::Region::new("us-east-1"))
            .endpoint_url(&aws.moto_url)
            .credentials_provider(aws_sdk_sts::config::Credentials::new("testenv", "testenv", None, None, "testenv"))
            .build(),
    );
    let launch = |tags: Vec<(&'static str, &'static str)>, user_data: &'static str| {
        let ec2 = ec2.clone();
        async move {
            let spec =
                tags.iter().fold(TagSpecification::builder().resource_type(ResourceType::Instance), |b, (k, v)| {
                    b.tags(Tag::builder().key(*k).value(*v).build())
                });
            let out = ec2
                .run_instances()
                .image_id(AMI)
                .min_count(1)
                .max_count(1)
                .user_data(aws_smithy_types::base64::encode(user_data))
                .tag_specifications(spec.build())
                .send()
                .await
                .unwrap();
            out.instances()[0].instance_id().unwrap().to_owned()
        }
    };
    let managed = ("moleculesai.app/managed-by", "molecule-operator");
    let plain = launch(vec![managed], "#!/bin/sh\n").await;
    let desktop = launch(vec![managed], "#!/bin/sh\nmolecule-display-health &\n").await;
    let foreign = launch(vec![("owner", "someone")], "#!/bin/sh\n").await;
    let held = launch(vec![managed, ("testenv/boot", "hold")], "#!/bin/sh\n").await;
    let sim = tokio::spawn({
        let (ec2, url) = (ec2.clone(), aws.moto_url.clone());
        async move { molecule_e2e::bootsim::run(ec2, sts, &url, Duration::from_millis(200)).await }
    });
    let tags_of = |id: String| {
        let ec2 = ec2.clone();
        async move {
            let out = ec2.describe_instances().instance_ids(id).send().await.unwrap();
            let i = &out.reservations()[0].instances()[0];
            i.tags().iter().map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned())).collect::<Vec<_>>()
        }
    };
    let has = |tags: &[(String, String)], k: &str, v: &str| tags.iter().any(|(a, b)| a == k && b == v);
    let t0 = Instant::now();
    while !has(&tags_of(desktop.clone()).await, "moleculesai.app/boot", "ready") {
        assert!(t0.elapsed() < Duration::from_secs(30), "bootsim did not boot {desktop}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while !has(&tags_of(plain.clone()).await, "moleculesai.app/boot", "ready") {
        assert!(t0.elapsed() < Duration::from_secs(30), "bootsim did not boot {plain}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A few more passes: what was left alone stays alone.
    tokio::time::sleep(Duration::from_secs(1)).await;
    sim.abort();
    assert!(has(&tags_of(desktop).await, "moleculesai.app/display", "ready"));
    assert!(!tags_of(plain).await.iter().any(|(k, _)| k == "moleculesai.app/display"));
    assert!(!tags_of(foreign).await.iter().any(|(k, _)| k.starts_with("moleculesai.app/")), "unmanaged");
    assert!(!tags_of(held).await.iter().any(|(k, _)| k == "moleculesai.app/boot"), "held");
}
