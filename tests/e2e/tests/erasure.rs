//! Tenant erasure (GDPR Article 17): deleting a Tenant with three Workspaces (a data volume, a
//! desktop, a minimal one) and an instance launched behind the operator's back with the tenant's
//! tags leaves nothing in AWS, Cloudflare, Route 53 or Kubernetes, and a complete receipt that
//! lists every resource with the time it was confirmed gone.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use molecule_crds::v1alpha1::{Tenant, TenantPhase};
use molecule_e2e::harness::wait_for;
use molecule_e2e::scenario::{Scenario, tenant_condition};
use molecule_e2e::tenant::TenantInventory;
use serde_json::{Value, json};

const READY: Duration = Duration::from_mins(3);
const ERASED: Duration = Duration::from_mins(4);

/// Launches an instance straight into moto with the tenant's tags, owned by a Workspace uid that
/// does not exist: what a crashed operator or a hand launch would leave.
async fn launch_out_of_band(s: &Scenario) -> String {
    s.launch_ghost("00000000-dead-4bad-beef-000000000000", aws_sdk_ec2::types::InstanceType::T3Micro).await
}

/// State of each instance by ID in the main account (None: unknown to moto).
async fn instance_state(s: &Scenario, id: &str) -> Option<String> {
    let out = s.env.ec2_direct().await.describe_instances().instance_ids(id).send().await.ok()?;
    let i = out.reservations().iter().flat_map(aws_sdk_ec2::types::Reservation::instances).next()?;
    i.state().and_then(|x| x.name()).map(|n| n.as_str().to_owned())
}

fn has_entry(resources: &[Value], kind: &str, id: &str) -> bool {
    resources
        .iter()
        .any(|e| e["kind"] == kind && e["id"] == id && e["confirmedGoneAt"].as_str().is_some_and(|t| !t.is_empty()))
}

/// The leftover check sees every kind of resource while they exist (so that its empty answer
/// after the erasure means something).
async fn leftover_check_sees_everything(s: &Scenario, inv: &TenantInventory, oob: &str) {
    let t = s.get_tenant().await.expect("tenant");
    let st = t.status.expect("status");
    let (tenant_vm, tenant_sg) = (st.instance_id.expect("instanceId"), st.security_group_id.expect("group"));
    let present = s.tenant_leftovers(&inv.tenant_uid, &inv.ws_hostnames).await.join("\n");
    for what in [
        format!("main: instance {oob}"),
        format!("main: instance {tenant_vm}"),
        format!("main: security group {tenant_sg}"),
        format!("main: volume {}", inv.volumes.first().unwrap()),
        format!("main: secret {}", inv.secret_arn),
        format!("cloudflare: CNAME record {}", s.tenant_hostname()),
        format!("cloudflare: TXT record _molecule-owner.{}", s.tenant_hostname()),
        format!("cloudflare: tunnel {}", inv.tunnel_id),
        format!("route53: A record {}", inv.ws_hostnames[0]),
        format!("kubernetes secret {}", s.credentials_name()),
    ] {
        assert!(present.contains(&what), "the leftover check misses {what}:\n{present}");
    }
}

/// The receipt also names the Workspaces, the out-of-band instance, the DNS records and the
/// credentials Secret, each confirmed gone.
async fn receipt_names_workspaces_records_and_secret(s: &Scenario, inv: &TenantInventory, oob: &str, names: &[&str]) {
    let receipt = s.receipt(&inv.tenant_uid).await.expect("receipt");
    let resources = receipt["resources"].as_array().cloned().unwrap_or_default();
    assert!(has_entry(&resources, "Instance", oob), "out-of-band {oob} in the receipt");
    for n in names {
        assert!(has_entry(&resources, "Workspace", &format!("{}/{n}", s.ns)), "Workspace {n} in {receipt:#}");
    }
    let cred = format!("{}/{}", s.env.var("OPERATOR_NAMESPACE"), s.credentials_name());
    assert!(has_entry(&resources, "KubernetesSecret", &cred), "{cred} in {receipt:#}");
    let host = s.tenant_hostname();
    assert!(has_entry(&resources, "DnsRecord", &format!("CNAME {host}")), "CNAME {host} in {receipt:#}");
    for h in &inv.ws_hostnames {
        assert!(has_entry(&resources, "DnsRecord", &format!("A {h}")), "A {h} in {receipt:#}");
    }
}

#[tokio::test]
async fn deleting_a_tenant_erases_everything_it_owns_and_writes_a_receipt() {
    let mut s = Scenario::new("erase", 2, json!({})).await.unwrap();
    s.start_operator_for_leak_scan(&[]).unwrap();
    // The out-of-band instance planted below is a real orphan until the erasure removes it.
    s.expect_orphans();
    let names = ["data", "desktop", "minimal"];
    s.apply(&s.sample("workspace-data-volume.yaml", "data")).unwrap();
    s.apply(&s.sample("workspace-desktop.yaml", "desktop")).unwrap();
    s.apply(&s.sample("workspace-minimal.yaml", "minimal")).unwrap();
    let t: Tenant = s.wait_tenant_ready(READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let mut inv = TenantInventory::of(&t);
    for n in names {
        let w = s.wait_ready(n, READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
        inv.add_workspace(&w);
    }
    assert_eq!(inv.instances.len(), 4, "three Workspace instances and the tenant VM: {inv:?}");
    assert_eq!(inv.security_groups.len(), 4, "{inv:?}");
    assert_eq!(inv.volumes.len(), 1, "the data volume: {inv:?}");
    assert_eq!(inv.ws_hostnames.len(), 3);
    let oob = launch_out_of_band(&s).await;
    inv.instances.insert(oob.clone());

    // The secret scan, with every instance of the tenant in place.
    let values = s.tenant_secret_values(&t).await.expect("secret values");
    let leaks = s.secret_leaks(&values).await;
    assert!(leaks.is_empty(), "leaks: {leaks:?}");

    leftover_check_sees_everything(&s, &inv, &oob).await;

    s.delete_tenant().await.unwrap();
    // While erasing: phase Erasing, the Erasing condition and the receipt's name in status.
    let seen = wait_for("tenant Erasing or gone", ERASED, || async {
        match s.get_tenant().await {
            None => Some(None),
            Some(t) if t.status.as_ref().and_then(|x| x.phase) == Some(TenantPhase::Erasing) => Some(Some(t)),
            Some(_) => None,
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    if let Some(t) = seen {
        let c = tenant_condition(&t, "Erasing");
        assert_eq!(c.as_ref().map(|c| c.0.as_str()), Some("True"), "Erasing condition: {c:?}");
        let er = t.status.as_ref().and_then(|x| x.erasure.clone()).expect("status.erasure");
        let name = s.receipt_name(&inv.tenant_uid);
        let qualified = format!("{}/{name}", s.env.var("OPERATOR_NAMESPACE"));
        assert!(
            er.receipt == name || er.receipt == qualified,
            "status.erasure.receipt {:?} names {qualified}",
            er.receipt
        );
        assert!(!er.started_at.is_empty() && !er.step.is_empty(), "{er:?}");
    }
    s.wait_tenant_gone(ERASED).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));

    // Nothing left, and a complete receipt.
    let problems = s.erasure_problems(&inv).await;
    assert!(problems.is_empty(), "after erasure: {problems:#?}\n{}", s.log());
    for n in names {
        assert!(s.get(n).await.is_none(), "Workspace {n} is gone");
    }
    for id in &inv.instances {
        let st = instance_state(&s, id).await;
        assert!(st.is_none() || st.as_deref() == Some("terminated"), "{id} is {st:?}");
    }
    let ec2 = s.env.ec2_direct().await;
    for g in &inv.security_groups {
        assert!(ec2.describe_security_groups().group_ids(g).send().await.is_err(), "group {g} still exists");
    }
    for v in &inv.volumes {
        let out = ec2.describe_volumes().volume_ids(v).send().await;
        let live =
            out.ok().is_some_and(|o| o.volumes().iter().any(|v| v.state().is_none_or(|st| st.as_str() != "deleted")));
        assert!(!live, "volume {v} still exists");
    }
    let sm = s.env.secretsmanager_direct().await;
    assert!(sm.describe_secret().secret_id(&inv.secret_arn).send().await.is_err(), "the bundle is gone");
    assert!(s.records(&inv.ws_hostnames[0]).await.is_empty());

    receipt_names_workspaces_records_and_secret(&s, &inv, &oob, &names).await;

    let ev = s.tenant_events().await;
    assert!(ev.iter().any(|(t, r, _)| t == "Normal" && r == "ErasureCompleted"), "events {ev:?}");
    s.wait_log("tenant erasure completed", Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let line = s.log().lines().find(|l| l.contains("tenant erasure completed")).unwrap_or_default().to_owned();
    assert!(line.contains(&s.tenant) && line.contains(&inv.tenant_uid), "log line names tenant and uid: {line}");
}
