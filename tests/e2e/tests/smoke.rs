//! The smoke scenario of the test world: a CRD object round-trips through the real API server
//! (spec and status subresource), an instance launched in moto is found by tag, a tunnel and its
//! CNAME are created in the Cloudflare fake, a fault injected by the proxy reaches an SDK call as a
//! throttling error, and the operator runs as a process with the operator's RBAC and dies to kill -9.

// Integration tests fail by panicking; helpers here are test code too.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use molecule_crds::v1alpha1::{Tenant, TenantPhase, TenantSpec, TenantStatus};
use molecule_e2e::harness::{TestEnv, http_json, unique, wait_for};
use serde_json::json;

fn env() -> TestEnv {
    TestEnv::load().expect("test world")
}

#[tokio::test]
async fn tenant_round_trips_through_the_api_server() {
    let env = env();
    let client = env.kube().await.expect("client");
    let tenants: Api<Tenant> = Api::all(client);
    let name = unique("smoke");
    let mut t = Tenant::new(
        &name,
        TenantSpec {
            tier: 3,
            display_name: Some("Smoke Test".into()),
            ..serde_json::from_value(json!({})).expect("defaults")
        },
    );
    t.spec.namespaces = Some(vec![name.clone()]);
    let created = tenants.create(&PostParams::default(), &t).await.expect("create");
    assert_eq!(created.spec, t.spec, "spec survives the round trip");
    let status = TenantStatus {
        phase: Some(TenantPhase::Provisioning),
        observed_generation: created.metadata.generation,
        ..Default::default()
    };
    let patch = json!({"apiVersion": "moleculesai.app/v1alpha1", "kind": "Tenant", "status": status});
    tenants
        .patch_status(&name, &PatchParams::apply("smoke-test").force(), &Patch::Apply(&patch))
        .await
        .expect("status patch");
    let read = tenants.get(&name).await.expect("get");
    assert_eq!(read.status.and_then(|s| s.phase), Some(TenantPhase::Provisioning));
    assert_eq!(read.spec.tier, 3);
    // The Tenant deletion policy refuses a DELETE without the erasure confirmation.
    let confirm = json!({"metadata": {"annotations": {"moleculesai.app/erasure": "confirmed"}}});
    tenants.patch(&name, &PatchParams::default(), &Patch::Merge(&confirm)).await.expect("confirm erasure");
    tenants.delete(&name, &kube::api::DeleteParams::default()).await.expect("delete");
}

#[tokio::test]
async fn instance_launched_in_moto_is_found_by_tag() {
    let env = env();
    let ec2 = env.ec2_via_proxy(3).await;
    let owner = unique("uid");
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(Tag::builder().key("moleculesai.app/owner-uid").value(&owner).build())
        .tags(Tag::builder().key("moleculesai.app/managed-by").value("molecule-operator").build())
        .build();
    let run = ec2
        .run_instances()
        .image_id(env.var("EC2_AMI"))
        .instance_type(InstanceType::T3Micro)
        .subnet_id(env.var("EC2_SUBNET_ID"))
        .min_count(1)
        .max_count(1)
        .tag_specifications(tags)
        .send()
        .await
        .expect("RunInstances");
    let launched = run.instances()[0].instance_id().expect("id").to_owned();
    let found = env.instances_by_tag("moleculesai.app/owner-uid", &owner).await.expect("describe");
    assert_eq!(found, vec![launched.clone()]);
    assert!(env.instances_by_tag("moleculesai.app/owner-uid", "nobody").await.expect("describe").is_empty());
    // moto validates AMIs as AWS does in the test world: an unknown image is refused.
    let bad = ec2
        .run_instances()
        .image_id("ami-00000000000000000")
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await;
    assert!(bad.is_err(), "an unknown AMI was accepted");
    ec2.terminate_instances().instance_ids(&launched).send().await.expect("terminate");
}

#[tokio::test]
async fn tunnel_and_cname_in_the_cloudflare_fake() {
    let env = env();
    let account = env.var("CLOUDFLARE_ACCOUNT_ID").to_owned();
    let zone = env.var("CLOUDFLARE_ZONE_ID").to_owned();
    let name = unique("tenant");
    let (status, body) = env
        .cloudflare(
            "POST",
            &format!("/accounts/{account}/cfd_tunnel"),
            Some(json!({"name": name, "config_src": "cloudflare"})),
        )
        .await
        .expect("create tunnel");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    let id = body["result"]["id"].as_str().expect("tunnel id").to_owned();
    assert_eq!(id.len(), 36, "tunnel IDs are UUIDs");
    assert!(body["result"]["token"].as_str().is_some_and(|t| !t.is_empty()));
    // A second tunnel with the same name is refused, as Cloudflare does.
    let (status, dup) = env
        .cloudflare(
            "POST",
            &format!("/accounts/{account}/cfd_tunnel"),
            Some(json!({"name": name, "config_src": "cloudflare"})),
        )
        .await
        .expect("duplicate");
    assert_eq!((status, dup["success"].clone()), (409, json!(false)));
    // The ingress configuration must end with a catch-all.
    let cfg = json!({"config": {"ingress": [{"hostname": format!("{name}.moleculesai.test"), "service": "http://localhost:8080"}]}});
    let (status, _) = env
        .cloudflare("PUT", &format!("/accounts/{account}/cfd_tunnel/{id}/configurations"), Some(cfg))
        .await
        .expect("put");
    assert_eq!(status, 400);
    let cfg = json!({"config": {"ingress": [{"hostname": format!("{name}.moleculesai.test"), "service": "http://localhost:8080"}, {"service": "http_status:404"}]}});
    let (status, _) = env
        .cloudflare("PUT", &format!("/accounts/{account}/cfd_tunnel/{id}/configurations"), Some(cfg))
        .await
        .expect("put");
    assert_eq!(status, 200);
    let (status, rec) = env
        .cloudflare("POST", &format!("/zones/{zone}/dns_records"), Some(json!({"type": "CNAME", "name": name, "content": format!("{id}.cfargotunnel.com"), "proxied": true, "ttl": 1})))
        .await
        .expect("cname");
    assert_eq!(status, 200, "{rec}");
    let state = env.cloudflare_state().await.expect("state");
    let tunnel = state["tunnels"]
        .as_array()
        .expect("tunnels")
        .iter()
        .find(|t| t["id"] == id.as_str())
        .expect("tunnel in state")
        .clone();
    assert_eq!(tunnel["config"]["ingress"][1]["service"], "http_status:404");
    let record = state["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["name"] == format!("{name}.moleculesai.test"))
        .expect("record")
        .clone();
    assert_eq!(record["content"], format!("{id}.cfargotunnel.com"));
    // Wrong token: Cloudflare's authentication error.
    let url = format!("{}/accounts/{account}/cfd_tunnel", env.var("CLOUDFLARE_API_URL"));
    let (status, body) = http_json("GET", &url, None, Some("wrong")).await.expect("call");
    assert_eq!((status, body["errors"][0]["code"].clone()), (403, json!(10000)));
}

#[tokio::test]
async fn injected_throttling_reaches_the_sdk() {
    let env = env();
    // Only this test's operation, so parallel tests are not disturbed.
    env.add_faults(json!({"service": "ec2", "operation": "DescribeAvailabilityZones", "kind": "throttle", "count": 1}))
        .await
        .expect("add fault");
    let before = env.fault_counts().await.expect("counts");
    let seen = |v: &serde_json::Value| v["total"]["ec2.DescribeAvailabilityZones"].as_u64().unwrap_or(0);
    let ec2 = env.ec2_via_proxy(1).await;
    let err = ec2.describe_availability_zones().send().await.expect_err("throttled");
    assert_eq!(err.code(), Some("RequestLimitExceeded"), "{err:?}");
    // The rule fired once; the next call goes through to moto.
    ec2.describe_availability_zones().send().await.expect("second call passes");
    let after = env.fault_counts().await.expect("counts");
    assert_eq!(seen(&after) - seen(&before), 2, "the proxy counted both calls");
}

#[tokio::test]
async fn operator_runs_with_its_own_rbac_and_dies_to_kill_9() {
    let env = env();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let addr = format!("127.0.0.1:{port}");
    // A selector that matches nothing: this operator must not touch other scenarios' objects.
    let mut op = env
        .start_operator(&[("METRICS_ADDR", addr.as_str()), ("WORKSPACE_SELECTOR", "molecule-e2e=smoke-none")])
        .expect("start");
    let url = format!("http://{addr}/healthz");
    let healthy = wait_for("operator /healthz", Duration::from_secs(30), || async {
        http_json("GET", &url, None, None).await.ok().filter(|(s, _)| *s == 200).map(|_| ())
    })
    .await;
    assert!(healthy.is_ok(), "operator did not become healthy; log:\n{}", op.log());
    // Health comes first; "started" follows once the first fleet listing is in.
    let started = wait_for("operator started", Duration::from_secs(30), || async {
        op.log().contains("molecule-operator started").then_some(())
    })
    .await;
    assert!(started.is_ok(), "{}", op.log());
    op.kill9();
    assert!(!op.is_running());
}
