//! The orphan scan reports per source: with Cloudflare answering 500 to its listings (a fault
//! proxy only this scenario's operator talks to), an EC2 orphan planted meanwhile is still
//! reported in the Tenant's status, the Cloudflare finding from before the outage stays listed,
//! and the failure is a log line, a metric and a Warning Event; once Cloudflare heals the scan
//! says so.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use molecule_crds::v1alpha1::{OrphanKind, Tenant};
use molecule_e2e::cf_faults::CfFaults;
use molecule_e2e::harness::wait_for;
use molecule_e2e::scenario::Scenario;
use serde_json::json;

const T: Duration = Duration::from_mins(2);

fn listed(t: &Tenant, kind: OrphanKind, id: &str) -> bool {
    t.status.as_ref().is_some_and(|s| s.orphans.iter().any(|o| o.kind == kind && o.id == id))
}

/// An instance tagged for a Workspace of this Tenant that does not exist.
async fn plant_instance(s: &Scenario) -> String {
    s.launch_ghost("00000000-dead-0000-0000-00000000c1f5", aws_sdk_ec2::types::InstanceType::T3Small).await
}

/// A leftover ownership mark of a dead owner at the Tenant's hostname: a Cloudflare finding of
/// this Tenant. Returns the record's id.
async fn plant_mark(s: &Scenario) -> String {
    let zone = s.env.var("CLOUDFLARE_ZONE_ID").to_owned();
    let mark = format!(
        "heritage=molecule-operator,managed-by={},env=dev,owner-kind=Tenant,owner-uid=00000000-dead-0000-0000-00000000c1f6",
        s.operator_id
    );
    let body =
        json!({"type": "TXT", "name": format!("_molecule-owner.{}", s.tenant_hostname()), "content": mark, "ttl": 1});
    let (_, v) = s.env.cloudflare("POST", &format!("/zones/{zone}/dns_records"), Some(body)).await.unwrap();
    v["result"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_failing_cloudflare_listing_does_not_hide_ec2_orphans() {
    let mut s = Scenario::new("orphsrc", 3, json!({})).await.unwrap();
    let cf = CfFaults::start(s.env.var("CLOUDFLARE_API_URL")).await.unwrap();
    s.start_operator(&[("CLOUDFLARE_API_URL", &cf.url), ("ORPHAN_SCAN_INTERVAL_SECONDS", "2")]).unwrap();
    s.expect_orphans();
    s.wait_tenant_ready(T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let host = s.tenant_hostname();
    let mark = plant_mark(&s).await;
    s.wait_tenant("the Cloudflare finding listed", T, |t| listed(t, OrphanKind::DnsRecord, &host))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));

    cf.fail_listings(true);
    // Two scans' listings refused before the orphan is planted.
    wait_for("two listings failed", T, || async { (cf.failed() >= 2).then_some(()) }).await.unwrap();
    let stray = plant_instance(&s).await;
    let t = s
        .wait_tenant("the EC2 orphan listed while Cloudflare fails", T, |t| listed(t, OrphanKind::Instance, &stray))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert!(listed(&t, OrphanKind::DnsRecord, &host), "the failed source's finding is kept: {:?}", t.status);
    let log = s.log();
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("orphan scan source failed")).collect();
    assert!(!failures.is_empty(), "the failure is logged:\n{log}");
    assert!(failures.iter().all(|l| l.contains("source=\"cloudflare\"")), "only Cloudflare failed: {failures:?}");
    assert!(log.lines().any(|l| l.contains("orphan found") && l.contains(&stray)), "the stray is logged");
    let n = s.metric_sum("molecule_orphan_scan_source_failures_total", &["source=\"cloudflare\""]).await;
    assert!(n >= 1.0, "molecule_orphan_scan_source_failures_total{{source=cloudflare}} = {n}");
    let events = s.tenant_events().await;
    assert!(
        events.iter().any(|(ty, r, n)| ty == "Warning" && r == "OrphanScanIncomplete" && n.contains("cloudflare")),
        "{events:?}"
    );

    cf.fail_listings(false);
    s.wait_log("orphan scan source listed again", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let ec2 = s.env.ec2_direct().await;
    ec2.terminate_instances().instance_ids(&stray).send().await.unwrap();
    let zone = s.env.var("CLOUDFLARE_ZONE_ID").to_owned();
    s.env.cloudflare("DELETE", &format!("/zones/{zone}/dns_records/{mark}"), None).await.unwrap();
}
