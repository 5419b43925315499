//! The orphan scan against moto, the Cloudflare fake and the operator process: an out-of-band
//! instance with a tenant's tags, a security group left behind, a duplicate instance of a live
//! Workspace, a secret of a deleted tenant, and a tunnel and a CNAME with our marks and no Tenant
//! are each found within one scan interval with the right kind, id and reason. Under `report`
//! nothing is deleted; under `reap` each is removed after the grace period, and the live
//! Workspace's own machine is untouched.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use molecule_crds::v1alpha1::OrphanKind;
use molecule_e2e::harness::wait_for;
use molecule_e2e::scenario::{Scenario, condition};
use serde_json::json;

const T: Duration = Duration::from_mins(2);

/// What the test planted.
struct Planted {
    stray: String,
    group: String,
    duplicate: String,
    secret: String,
    tunnel: String,
    record: String,
    volume: String,
    live_instance: String,
}

fn spec(tags: &BTreeMap<String, String>, kind: ResourceType) -> TagSpecification {
    let mut b = TagSpecification::builder().resource_type(kind);
    for (k, v) in tags {
        b = b.tags(Tag::builder().key(k).value(v).build());
    }
    b.build()
}

fn marks(s: &Scenario, tenant: &str, kind: &str, owner_uid: &str, owner: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("moleculesai.app/managed-by".to_owned(), s.operator_id.clone()),
        ("moleculesai.app/env".to_owned(), "dev".to_owned()),
        ("moleculesai.app/tenant".to_owned(), tenant.to_owned()),
        ("moleculesai.app/owner-kind".to_owned(), kind.to_owned()),
        ("moleculesai.app/owner-uid".to_owned(), owner_uid.to_owned()),
        ("moleculesai.app/owner".to_owned(), owner.to_owned()),
    ])
}

/// A Ready Workspace whose new spec is then refused (its reconcile stops before the launch plan,
/// so its duplicate is left to the scan), and the six planted orphans.
async fn plant(s: &Scenario) -> Planted {
    s.wait_tenant_ready(T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    s.apply(&s.workspace("w", json!({ "runtime": "hermes" }))).unwrap();
    let w = s.wait_ready("w", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let live_instance = w.status.as_ref().and_then(|x| x.instance_id.clone()).unwrap();
    s.patch("w", json!({ "spec": { "compute": { "instanceType": "zz9.nano" } } })).await.unwrap();
    s.wait_ws("w", "refused", T, |w| condition(w, "Admitted").is_some_and(|c| c.0 == "False")).await.unwrap();

    let ec2 = s.env.ec2_direct().await;
    let ami = s.env.var("EC2_AMI").to_owned();
    let subnet = s.env.var("EC2_SUBNET_ID").to_owned();
    let launch = |tags: BTreeMap<String, String>| {
        let (ec2, ami, subnet) = (ec2.clone(), ami.clone(), subnet.clone());
        async move {
            let out = ec2
                .run_instances()
                .image_id(ami)
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
                .subnet_id(subnet)
                .min_count(1)
                .max_count(1)
                .tag_specifications(spec(&tags, ResourceType::Instance))
                .send()
                .await
                .unwrap();
            out.instances()[0].instance_id().unwrap().to_owned()
        }
    };
    let ghost = format!("{}/ghost", s.ns);
    let stray = launch(marks(s, &s.tenant, "Workspace", "00000000-dead-0000-0000-000000000001", &ghost)).await;
    let live = ec2.describe_instances().instance_ids(&live_instance).send().await.unwrap();
    let live_tags = molecule_e2e::scenario::tags(&live.reservations()[0].instances()[0]);
    let duplicate = launch(live_tags).await;
    let group = ec2
        .create_security_group()
        .group_name(format!("left-behind-{}", s.id))
        .description("left behind")
        .vpc_id(s.env.var("EC2_VPC_ID"))
        .tag_specifications(spec(
            &marks(s, &s.tenant, "Workspace", "00000000-dead-0000-0000-000000000002", &ghost),
            ResourceType::SecurityGroup,
        ))
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_owned();

    let subnet_az = ec2.describe_subnets().subnet_ids(s.env.var("EC2_SUBNET_ID")).send().await.unwrap().subnets()[0]
        .availability_zone()
        .unwrap()
        .to_owned();
    let volume = ec2
        .create_volume()
        .availability_zone(subnet_az)
        .size(8)
        .tag_specifications(spec(
            &marks(s, &s.tenant, "Workspace", "00000000-dead-0000-0000-000000000004", &ghost),
            ResourceType::Volume,
        ))
        .send()
        .await
        .unwrap()
        .volume_id()
        .unwrap()
        .to_owned();

    let gone = format!("gone-{}", s.id);
    let dead_tenant = "00000000-dead-0000-0000-000000000003";
    let sm = s.env.secretsmanager_direct().await;
    let mut create =
        sm.create_secret().name(format!("{}/dev/tenants/{gone}/bootstrap", s.operator_id)).secret_string("{}");
    for (k, v) in marks(s, &gone, "Tenant", dead_tenant, &gone) {
        create = create.tags(aws_sdk_secretsmanager::types::Tag::builder().key(k).value(v).build());
    }
    let secret = create.send().await.unwrap().arn().unwrap().to_owned();

    let (tunnel, record) = plant_cloudflare(s, &gone, dead_tenant).await;
    Planted { stray, group, duplicate, secret, tunnel, record, volume, live_instance }
}

/// A tunnel named after the deleted tenant, and a CNAME with an ownership mark of a dead owner.
async fn plant_cloudflare(s: &Scenario, gone: &str, dead_tenant: &str) -> (String, String) {
    let account = s.env.var("CLOUDFLARE_ACCOUNT_ID").to_owned();
    let zone = s.env.var("CLOUDFLARE_ZONE_ID").to_owned();
    let name = format!("{}.dev.{gone}", s.operator_id);
    let (_, t) = s
        .env
        .cloudflare(
            "POST",
            &format!("/accounts/{account}/cfd_tunnel"),
            Some(json!({"name": name, "config_src": "cloudflare"})),
        )
        .await
        .unwrap();
    let tunnel = t["result"]["id"].as_str().unwrap().to_owned();
    let record = format!("{gone}.moleculesai.test");
    let mark = format!(
        "heritage=molecule-operator,managed-by={},env=dev,owner-kind=Tenant,owner-uid={dead_tenant}",
        s.operator_id
    );
    for (ty, n, content) in [
        ("TXT", format!("_molecule-owner.{record}"), mark),
        ("CNAME", record.clone(), format!("{tunnel}.cfargotunnel.com")),
    ] {
        let body = json!({"type": ty, "name": n, "content": content, "ttl": 1, "proxied": ty == "CNAME"});
        s.env.cloudflare("POST", &format!("/zones/{zone}/dns_records"), Some(body)).await.unwrap();
    }
    (tunnel, record)
}

async fn instance_state(s: &Scenario, id: &str) -> String {
    let out = s.env.ec2_direct().await.describe_instances().instance_ids(id).send().await.unwrap();
    out.reservations()[0].instances()[0].state().and_then(|x| x.name()).map(|n| n.as_str().to_owned()).unwrap()
}

async fn group_exists(s: &Scenario, id: &str) -> bool {
    s.env.ec2_direct().await.describe_security_groups().group_ids(id).send().await.is_ok()
}

async fn secret_exists(s: &Scenario, arn: &str) -> bool {
    s.env.secretsmanager_direct().await.describe_secret().secret_id(arn).send().await.is_ok()
}

async fn tunnel_live(s: &Scenario, id: &str) -> bool {
    let account = s.env.var("CLOUDFLARE_ACCOUNT_ID").to_owned();
    let (code, v) = s.env.cloudflare("GET", &format!("/accounts/{account}/cfd_tunnel/{id}"), None).await.unwrap();
    code == 200 && v["result"]["deleted_at"].is_null()
}

async fn records_at(s: &Scenario, name: &str) -> usize {
    let zone = s.env.var("CLOUDFLARE_ZONE_ID").to_owned();
    let (_, v) = s.env.cloudflare("GET", &format!("/zones/{zone}/dns_records?name={name}"), None).await.unwrap();
    v["result"].as_array().map_or(0, Vec::len)
}

fn start(s: &mut Scenario, extra: &[(&str, &str)]) {
    let mut vars = vec![("ORPHAN_SCAN_INTERVAL_SECONDS", "2"), ("ORPHAN_DUPLICATE_AGE_SECONDS", "0")];
    vars.extend_from_slice(extra);
    s.start_operator(&vars).unwrap();
    s.expect_orphans();
}

#[tokio::test]
async fn every_kind_of_orphan_is_reported_and_nothing_is_deleted() {
    let mut s = Scenario::new("orphrep", 3, json!({})).await.unwrap();
    start(&mut s, &[]);
    let p = plant(&s).await;
    // The tenant's own findings, in its status, within a scan interval or two.
    let t = s
        .wait_tenant("four orphans in status", T, |t| t.status.as_ref().is_some_and(|x| x.orphan_count == Some(4)))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let st = t.status.unwrap();
    let find = |kind: OrphanKind, id: &str| st.orphans.iter().find(|o| o.kind == kind && o.id == id).cloned();
    let stray = find(OrphanKind::Instance, &p.stray).expect("stray instance listed");
    assert!(stray.reason.contains("no longer exists") && stray.reason.contains("ghost"), "{}", stray.reason);
    assert_eq!(stray.region, "us-east-1");
    let group = find(OrphanKind::SecurityGroup, &p.group).expect("left-behind group listed");
    assert!(group.reason.contains("no longer exists"), "{}", group.reason);
    let vol = find(OrphanKind::Volume, &p.volume).expect("left-behind volume listed");
    assert!(vol.reason.contains("no longer exists"), "{}", vol.reason);
    let dup = find(OrphanKind::Instance, &p.duplicate).expect("duplicate listed");
    assert!(dup.reason.contains("second instance") && dup.reason.contains(&p.live_instance), "{}", dup.reason);
    assert!(find(OrphanKind::Instance, &p.live_instance).is_none(), "the live instance is never an orphan");
    assert!(st.last_orphan_scan_time.is_some());
    let events = s.tenant_events().await;
    for id in [&p.stray, &p.group, &p.duplicate, &p.volume] {
        assert!(
            events.iter().any(|(ty, r, n)| ty == "Warning" && r == "OrphanFound" && n.contains(id.as_str())),
            "{id}: {events:?}"
        );
    }
    // Findings of no live Tenant: the log and the metric.
    for id in [&p.secret, &p.tunnel, &p.record] {
        s.wait_log(id, T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    }
    let log = s.log();
    for (kind, id) in [("Secret", &p.secret), ("Tunnel", &p.tunnel), ("DnsRecord", &p.record)] {
        let line = log.lines().find(|l| l.contains("orphan found") && l.contains(id.as_str()));
        let line = line.unwrap_or_else(|| panic!("no finding of {id}\n{log}"));
        assert!(line.contains(&format!("kind=\"{kind}\"")) && line.contains("no longer exists"), "{line}");
    }
    for kind in ["Instance", "SecurityGroup", "Volume", "Secret", "Tunnel", "DnsRecord"] {
        let n = s.metric_sum("molecule_orphans", &[&format!("kind=\"{kind}\"")]).await;
        assert!(n >= 1.0, "molecule_orphans{{kind={kind}}} = {n}");
    }
    // Two more scans later, nothing was deleted.
    let scans = s.metric_sum("molecule_orphan_scans_total", &[]).await;
    wait_for("two more scans", T, || async {
        (s.metric_sum("molecule_orphan_scans_total", &[]).await >= scans + 2.0).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(instance_state(&s, &p.stray).await, "running");
    assert_eq!(instance_state(&s, &p.duplicate).await, "running");
    assert!(group_exists(&s, &p.group).await && secret_exists(&s, &p.secret).await);
    assert!(tunnel_live(&s, &p.tunnel).await && records_at(&s, &p.record).await == 1);
    assert!(!s.log().contains("orphan reaped"));
}

#[tokio::test]
async fn reap_removes_each_orphan_after_the_grace_period_and_nothing_live() {
    let mut s = Scenario::new("orphreap", 3, json!({})).await.unwrap();
    start(&mut s, &[("ORPHAN_POLICY", "reap"), ("ORPHAN_GRACE_SECONDS", "3")]);
    let p = plant(&s).await;
    // A leftover ownership mark of a dead owner beside the live Tenant's own CNAME and mark (a
    // slug reused after a failed erasure): the leftover goes, the live records stay.
    let host = s.tenant_hostname();
    let zone = s.env.var("CLOUDFLARE_ZONE_ID").to_owned();
    let leftover = format!(
        "heritage=molecule-operator,managed-by={},env=dev,owner-kind=Tenant,owner-uid=00000000-dead-0000-0000-000000000005",
        s.operator_id
    );
    let body = json!({"type": "TXT", "name": format!("_molecule-owner.{host}"), "content": leftover, "ttl": 1});
    s.env.cloudflare("POST", &format!("/zones/{zone}/dns_records"), Some(body)).await.unwrap();
    for id in [&p.stray, &p.duplicate, &p.group, &p.volume, &p.secret, &p.tunnel, &p.record] {
        wait_for(&format!("{id} reaped"), T, || async {
            s.log().lines().any(|l| l.contains("orphan reaped") && l.contains(id.as_str())).then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    }
    for id in [&p.stray, &p.duplicate] {
        let state = instance_state(&s, id).await;
        assert!(state == "terminated" || state == "shutting-down", "{id}: {state}");
    }
    assert!(!group_exists(&s, &p.group).await, "group deleted");
    assert!(!secret_exists(&s, &p.secret).await, "secret deleted");
    assert!(!tunnel_live(&s, &p.tunnel).await, "tunnel deleted");
    assert_eq!(records_at(&s, &p.record).await, 0, "CNAME deleted");
    let vol = s.env.ec2_direct().await.describe_volumes().volume_ids(&p.volume).send().await;
    assert!(
        vol.map_or(true, |v| v.volumes().iter().all(|x| x.state().is_some_and(|st| st.as_str() != "available"))),
        "volume deleted"
    );
    wait_for("the leftover mark reaped", T, || async {
        (records_at(&s, &format!("_molecule-owner.{host}")).await == 1).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(records_at(&s, &host).await, 1, "the live Tenant's CNAME stays");
    let events = s.tenant_events().await;
    for id in [&p.stray, &p.group, &p.duplicate, &p.volume] {
        assert!(events.iter().any(|(_, r, n)| r == "OrphanReaped" && n.contains(id.as_str())), "{id}: {events:?}");
    }
    // The live Workspace's machine and the Tenant are untouched.
    assert_eq!(instance_state(&s, &p.live_instance).await, "running");
    let w = s.get("w").await.unwrap();
    assert_eq!(w.status.and_then(|x| x.instance_id).as_deref(), Some(p.live_instance.as_str()));
    assert!(s.wait_tenant_ready(T).await.is_ok());
}
