//! Tenant scenarios against the real API server, moto, the Cloudflare fake and the operator
//! process: the samples reach Ready with what API.md and docs/design/tenant.md imply (VM, group,
//! bundle, credentials, tunnel, DNS) and no secret value leaks; a canary Tenant lands in the
//! canary account; a tier-1 Tenant refuses what its quotas forbid; a Workspace outside the
//! Tenant's namespaces is refused. Each test runs its own operator, so they run in parallel.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, clippy::many_single_char_names)]

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types::Instance;
use molecule_crds::v1alpha1::{Tenant, TenantPhase, Workspace};
use molecule_e2e::harness::wait_for;
use molecule_e2e::scenario::{Scenario, condition, tags, tenant_condition, tenant_sample, uid};
use serde_json::{Value, json};

/// Tenant provisioning: VM boot plus tunnel, bundle and DNS. Seconds on a fresh test world; moto
/// slows down as its state grows over many runs (a DescribeInstances can take a second).
const READY: Duration = Duration::from_mins(3);

fn tenant_uid(t: &Tenant) -> String {
    t.metadata.uid.clone().unwrap_or_default()
}

/// The eight API.md tags every tenant resource carries.
fn tenant_tags(s: &Scenario, t: &Tenant) -> Vec<(&'static str, String)> {
    vec![
        ("moleculesai.app/managed-by", s.operator_id.clone()),
        ("moleculesai.app/env", s.env.var("MOLECULE_ENV").to_owned()),
        ("moleculesai.app/tenant", s.tenant.clone()),
        ("moleculesai.app/owner-kind", "Tenant".to_owned()),
        ("moleculesai.app/owner-uid", tenant_uid(t)),
        ("moleculesai.app/owner", s.tenant.clone()),
        ("Role", "tenant".to_owned()),
        ("Name", format!("tenant-{}", s.tenant)),
    ]
}

fn check_tags(what: &str, got: &BTreeMap<String, String>, want: &[(&str, String)]) {
    for (k, v) in want {
        assert_eq!(got.get(*k), Some(v), "{what}: tag {k} in {got:?}");
    }
}

fn is_hex64(v: &str) -> bool {
    v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn describe(ec2: &aws_sdk_ec2::Client, id: &str) -> Option<Instance> {
    let out = ec2.describe_instances().instance_ids(id).send().await.ok()?;
    out.reservations().iter().flat_map(aws_sdk_ec2::types::Reservation::instances).next().cloned()
}

/// Everything a Ready main-account Tenant must have, in moto, Kubernetes and Cloudflare; then the
/// secret scan. `instance_type` and `image` are what the Tenant's spec (or the defaults) ask for.
async fn check_provisioned(s: &Scenario, t: &Tenant, instance_type: &str, image: &str) {
    let st = t.status.clone().expect("status");
    let host = s.tenant_hostname();
    assert_eq!(host, format!("{}.moleculesai.test", s.tenant));
    assert_eq!(st.hostname.as_deref(), Some(host.as_str()), "status.hostname");
    assert_eq!(st.phase, Some(TenantPhase::Ready));
    for c in ["InstanceReady", "NetworkReady", "SecretReady", "TunnelReady", "DnsReady"] {
        assert_eq!(tenant_condition(t, c).map(|c| c.0).as_deref(), Some("True"), "condition {c}");
    }
    assert_eq!(st.account.as_deref(), Some("main"));
    assert_eq!(st.region.as_deref(), Some(s.env.var("AWS_REGION")));
    assert_eq!(st.image.as_deref(), Some(image), "status.image");
    check_vm(s, t, instance_type).await;
    check_group(s, t).await;
    let creds = check_bundle_and_credentials(s, t).await;
    // User-data: the bundle ARN, hostname and image; never a credential value.
    let id = st.instance_id.clone().expect("status.instanceId");
    let arn = st.secret_arn.clone().expect("status.secretArn");
    let ud = s.user_data(&s.env.ec2_direct().await, &id).await;
    assert!(ud.contains(&arn), "user-data carries the bundle ARN");
    assert!(ud.contains(&host) && ud.contains(image), "user-data carries hostname and image");
    for (k, v) in &creds {
        assert!(!ud.contains(v.as_str()), "user-data contains {k}");
    }
    check_cloudflare(s, t).await;
    check_secret_scan(s, t).await;
}

/// The VM: exactly one live instance of the Tenant, the one in status, as design/tenant.md says.
async fn check_vm(s: &Scenario, t: &Tenant, instance_type: &str) {
    let st = t.status.clone().expect("status");
    let id = st.instance_id.clone().expect("status.instanceId");
    let sg = st.security_group_id.clone().expect("status.securityGroupId");
    assert_eq!(s.alive(&tenant_uid(t)).await, vec![id.clone()], "one tenant VM");
    let ec2 = s.env.ec2_direct().await;
    let i = describe(&ec2, &id).await.expect("instance in moto");
    check_tags("instance", &tags(&i), &tenant_tags(s, t));
    assert_eq!(i.instance_type().unwrap().as_str(), instance_type, "instance type");
    assert_eq!(i.image_id(), Some(s.env.var("EC2_AMI")), "AMI: the image catalog default");
    assert_eq!(
        i.metadata_options().and_then(|m| m.http_tokens()).map(|h| h.as_str().to_owned()).as_deref(),
        Some("required"),
        "IMDSv2 required"
    );
    assert_eq!(i.vpc_id(), Some(s.env.var("EC2_VPC_ID")));
    // The Tenant's own VM identity (issue 12), not a shared profile.
    let profile = st.identity.as_ref().and_then(|x| x.vm.as_ref()).map(|v| v.instance_profile.clone());
    let profile = profile.expect("status.identity.vm");
    assert_eq!(profile, format!("molecule-tenant-vm-{}", tenant_uid(t)));
    assert_eq!(
        i.iam_instance_profile().and_then(|p| p.arn()).map(|a| a.ends_with(&format!("/{profile}"))),
        Some(true),
        "tenant instance profile: {:?}",
        i.iam_instance_profile()
    );
    assert!(i.security_groups().iter().any(|g| g.group_id() == Some(sg.as_str())), "VM in its group");
    let root = ec2
        .describe_volumes()
        .filters(aws_sdk_ec2::types::Filter::builder().name("attachment.instance-id").values(&id).build())
        .send()
        .await
        .unwrap();
    let root = root.volumes().first().expect("root volume");
    assert_eq!((root.encrypted(), root.size()), (Some(true), Some(30)), "encrypted root of 30 GiB");
    assert_eq!(root.volume_type().map(|v| v.as_str().to_owned()).as_deref(), Some("gp3"));
}

/// The group: tagged, no CIDR ingress at all (so never 0.0.0.0/0), SSH from the EIC group only.
async fn check_group(s: &Scenario, t: &Tenant) {
    let sg = t.status.as_ref().and_then(|x| x.security_group_id.clone()).expect("status.securityGroupId");
    let ec2 = s.env.ec2_direct().await;
    let g = ec2.describe_security_groups().group_ids(&sg).send().await.unwrap();
    let g = &g.security_groups()[0];
    let gtags: BTreeMap<_, _> =
        g.tags().iter().map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned())).collect();
    check_tags("security group", &gtags, &tenant_tags(s, t));
    assert_eq!(g.group_name(), Some(format!("molecule-tenant-{}", tenant_uid(t)).as_str()));
    for p in g.ip_permissions() {
        assert!(p.ip_ranges().is_empty() && p.ipv6_ranges().is_empty(), "CIDR ingress {p:?}");
        assert_eq!((p.from_port(), p.to_port()), (Some(22), Some(22)), "only SSH: {p:?}");
        assert_eq!(p.user_id_group_pairs().first().and_then(|u| u.group_id()), Some(s.env.var("EIC_ENDPOINT_SG_ID")));
    }
}

/// The bundle in Secrets Manager (name, tags, contents) and the credentials Secret (three 64-hex
/// values, the ones in the bundle, owned by the Tenant). Returns the credentials.
async fn check_bundle_and_credentials(s: &Scenario, t: &Tenant) -> BTreeMap<String, String> {
    let arn = t.status.as_ref().and_then(|x| x.secret_arn.clone()).expect("status.secretArn");
    let sm = s.env.secretsmanager_direct().await;
    let d = sm.describe_secret().secret_id(&arn).send().await.expect("bundle exists");
    let name = format!("{}/{}/tenants/{}/bootstrap", s.operator_id, s.env.var("MOLECULE_ENV"), s.tenant);
    assert_eq!(d.name(), Some(name.as_str()), "bundle name");
    let stags: BTreeMap<_, _> =
        d.tags().iter().map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned())).collect();
    check_tags("bundle", &stags, &tenant_tags(s, t));
    let v = sm.get_secret_value().secret_id(&arn).send().await.unwrap();
    let bundle: Value = serde_json::from_str(v.secret_string().unwrap()).expect("bundle is JSON");
    for k in [
        "tenant",
        "hostname",
        "adminToken",
        "provisionSharedSecret",
        "displaySigningSecret",
        "tunnelToken",
        "ghcrPullToken",
        "backupS3Prefix",
        "cpBaseUrl",
    ] {
        assert!(
            bundle.get(k).is_some(),
            "bundle has {k}: keys {:?}",
            bundle.as_object().map(|o| o.keys().collect::<Vec<_>>())
        );
    }
    assert_eq!(bundle["tenant"], json!(s.tenant));
    assert_eq!(bundle["hostname"], json!(s.tenant_hostname()));

    let secret = s.credentials_secret().await.expect("credentials Secret");
    let creds = s.credentials().await;
    assert_eq!(
        creds.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["admin-token", "display-signing-secret", "provision-shared-secret"],
        "exactly the three keys"
    );
    assert!(creds.values().all(|v| is_hex64(v)), "64 hex characters each");
    assert_eq!(bundle["adminToken"].as_str(), creds.get("admin-token").map(String::as_str));
    assert_eq!(bundle["provisionSharedSecret"].as_str(), creds.get("provision-shared-secret").map(String::as_str));
    assert_eq!(bundle["displaySigningSecret"].as_str(), creds.get("display-signing-secret").map(String::as_str));
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("moleculesai.app/tenant"), Some(&s.tenant));
    assert_eq!(labels.get("app.kubernetes.io/managed-by"), Some(&s.operator_id));
    assert!(
        secret.metadata.owner_references.iter().flatten().any(|o| o.kind == "Tenant" && o.uid == tenant_uid(t)),
        "owned by the Tenant"
    );
    creds
}

/// Cloudflare: the tunnel by name, its ingress, the proxied CNAME and the ownership TXT.
async fn check_cloudflare(s: &Scenario, t: &Tenant) {
    let tunnel = t.status.as_ref().and_then(|x| x.tunnel_id.clone()).expect("status.tunnelId");
    let host = s.tenant_hostname();
    let cf = s.env.cloudflare_state().await.unwrap();
    let tunnels: Vec<&Value> = cf["tunnels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"].as_str() == Some(s.tunnel_name().as_str()) && t["deleted_at"].is_null())
        .collect();
    assert_eq!(tunnels.len(), 1, "one live tunnel named {}", s.tunnel_name());
    assert_eq!(tunnels[0]["id"].as_str(), Some(tunnel.as_str()), "status.tunnelId");
    assert_eq!(tunnels[0]["config_src"], "cloudflare", "remotely managed");
    let ingress = tunnels[0]["config"]["ingress"].as_array().cloned().unwrap_or_default();
    assert_eq!(ingress.first().and_then(|r| r["hostname"].as_str()), Some(host.as_str()), "ingress {ingress:?}");
    assert_eq!(ingress.first().and_then(|r| r["service"].as_str()), Some("http://localhost:8080"));
    assert_eq!(ingress.last().and_then(|r| r["service"].as_str()), Some("http_status:404"), "catch-all");
    let records: Vec<&Value> = cf["records"].as_array().unwrap().iter().collect();
    let cname: Vec<_> = records.iter().filter(|r| r["name"] == json!(host) && r["type"] == "CNAME").collect();
    assert_eq!(cname.len(), 1, "one CNAME at {host}");
    assert_eq!(cname[0]["content"].as_str(), Some(format!("{tunnel}.cfargotunnel.com").as_str()));
    assert_eq!(cname[0]["proxied"], true, "proxied");
    let owner = format!("_molecule-owner.{host}");
    let txt: Vec<_> = records.iter().filter(|r| r["name"] == json!(owner) && r["type"] == "TXT").collect();
    assert_eq!(txt.len(), 1, "one TXT at {owner}");
    let content = txt[0]["content"].as_str().unwrap();
    for part in [
        format!("owner-uid={}", tenant_uid(t)),
        format!("managed-by={}", s.operator_id),
        "owner-kind=Tenant".to_owned(),
        "heritage=molecule-operator".to_owned(),
    ] {
        assert!(content.contains(&part), "TXT {content:?} has {part}");
    }
}

/// No secret value anywhere it must not be; and a control that the scan reads each place (the
/// ARN is in status and user-data, the uid in the Events, the tenant name in the log).
async fn check_secret_scan(s: &Scenario, t: &Tenant) {
    let st = t.status.clone().expect("status");
    let (id, arn) = (st.instance_id.expect("instanceId"), st.secret_arn.expect("secretArn"));
    let values = s.tenant_secret_values(t).await.expect("secret values");
    assert!(values.len() >= 5, "{values:?}");
    let leaks = s.secret_leaks(&values).await;
    assert!(leaks.is_empty(), "leaks: {leaks:?}");
    let control = s
        .secret_leaks(&[
            ("arn".to_owned(), arn.clone()),
            ("uid".to_owned(), tenant_uid(t)),
            ("name".to_owned(), s.tenant.clone()),
        ])
        .await;
    for place in [
        "arn appears in the Tenant object".to_owned(),
        format!("arn appears in user-data of {id}"),
        "uid appears in the cluster's Events".to_owned(),
        "name appears in the operator log".to_owned(),
    ] {
        assert!(control.contains(&place), "the secret scan does not see {place}: {control:?}");
    }
}

#[tokio::test]
async fn the_minimal_tenant_sample_reaches_ready_and_leaks_nothing() {
    let mut s = Scenario::with_tenant("tmin", |id| tenant_sample("tenant-minimal.yaml", id)).await.unwrap();
    s.start_operator_for_leak_scan(&[]).unwrap();
    let t = s.wait_tenant_ready(READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    Box::pin(check_provisioned(&s, &t, s.env.var("EC2_INSTANCE_TYPE"), s.env.var("TENANT_IMAGE"))).await;
    assert_eq!(s.env.var("EC2_INSTANCE_TYPE"), "t3.small");
    // kubectl wait works on the Tenant's Ready condition.
    let out = s
        .env
        .kubectl(&["wait", "--for=condition=Ready", "--timeout=30s", &format!("tenant/{}", s.tenant)], None)
        .unwrap();
    assert!(out.status.success(), "kubectl wait: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn the_full_tenant_sample_reaches_ready_and_leaks_nothing() {
    let mut s = Scenario::with_tenant("tfull", |id| tenant_sample("tenant-full.yaml", id)).await.unwrap();
    assert_eq!(s.ns, s.tenant, "first namespace rebound to the tenant name");
    s.start_operator_for_leak_scan(&[]).unwrap();
    let t = s.wait_tenant_ready(READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(t.spec.namespaces.as_ref().map(Vec::len), Some(2));
    Box::pin(check_provisioned(&s, &t, "t3.medium", "ghcr.io/moleculesai/tenant:1.4.2")).await;
}

#[tokio::test]
async fn a_canary_tenant_lands_in_the_canary_account() {
    let mut s = Scenario::new("canary", 2, json!({"canary": true})).await.unwrap();
    s.start_operator_for_leak_scan(&[]).unwrap();
    let t = s.wait_tenant_ready(READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let st = t.status.clone().unwrap();
    assert_eq!(st.account.as_deref(), Some("canary"));
    assert_eq!(st.region.as_deref(), Some("us-west-2"));
    assert_eq!(s.env.var("CANARY_REGION"), "us-west-2");
    let id = st.instance_id.clone().expect("instanceId");
    let canary = s.env.ec2_canary_direct().await.expect("canary client");
    let i = describe(&canary, &id).await.expect("the VM is in the canary account");
    assert_eq!(i.image_id(), Some(s.env.var("CANARY_EC2_AMI")), "canary AMI");
    assert_eq!(i.subnet_id(), Some(s.env.var("CANARY_SUBNET_ID")), "canary subnet");
    check_tags("canary instance", &tags(&i), &tenant_tags(&s, &t));
    assert!(s.alive(&tenant_uid(&t)).await.is_empty(), "nothing of the Tenant in the main account");
    assert!(describe(&s.env.ec2_direct().await, &id).await.is_none(), "{id} is not in the main account");
    assert_eq!(st.image.as_deref(), Some(s.env.var("CANARY_TENANT_IMAGE")), "canary image");
    let arn = st.secret_arn.clone().expect("secretArn");
    assert!(arn.contains(":us-west-2:") && arn.contains(s.env.var("CANARY_ACCOUNT_ID")), "bundle in canary: {arn}");
    let g = canary.describe_security_groups().group_ids(st.security_group_id.clone().unwrap()).send().await.unwrap();
    assert_eq!(g.security_groups()[0].vpc_id(), Some(s.env.var("CANARY_VPC_ID")), "group in the canary VPC");
    assert!(g.security_groups()[0].ip_permissions().iter().all(|p| p.ip_ranges().is_empty()), "no CIDR ingress");

    // Erasure reaches the canary account too.
    let inv = molecule_e2e::tenant::TenantInventory::of(&t);
    s.delete_tenant().await.unwrap();
    s.wait_tenant_gone(READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let problems = s.erasure_problems(&inv).await;
    assert!(problems.is_empty(), "after erasure: {problems:#?}");
    assert_eq!(
        describe(&canary, &id)
            .await
            .and_then(|i| i.state().and_then(|x| x.name()).map(|n| n.as_str().to_owned()))
            .as_deref(),
        Some("terminated")
    );
}

/// Waits until the Workspace has an Admitted condition; returns it with the condition.
async fn decided(s: &Scenario, name: &str) -> (Workspace, (String, String, String)) {
    let w = s
        .wait_ws(name, "admission decided", READY, |w| condition(w, "Admitted").is_some())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let c = condition(&w, "Admitted").unwrap();
    (w, c)
}

#[tokio::test]
async fn a_tier_1_tenant_refuses_gpu_display_and_a_third_workspace() {
    let mut s = Scenario::new("tier1", 1, json!({})).await.unwrap();
    s.start_operator(&[]).unwrap();
    s.wait_tenant_ready(READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    s.apply(&s.sample("workspace-gpu.yaml", "gpu")).unwrap();
    s.apply(&s.sample("workspace-desktop.yaml", "desktop")).unwrap();
    let small = json!({"runtime": "codex", "compute": {"instanceType": "t3.small"}});
    s.apply(&s.workspace("a1", small.clone())).unwrap();
    s.apply(&s.workspace("a2", small.clone())).unwrap();
    let mut refused = Vec::new();
    for (name, field) in [("gpu", "spec.compute.gpu"), ("desktop", "spec.compute.display.mode")] {
        let (w, (status, reason, msg)) = decided(&s, name).await;
        assert_eq!((status.as_str(), reason.as_str()), ("False", "QuotaExceeded"), "{name}: {msg}");
        assert!(msg.contains(field), "{name}: message {msg:?} names {field}");
        let ready = condition(&w, "Ready").expect("Ready condition");
        assert!(ready.0 == "False" && ready.2.contains(field), "{name}: Ready {ready:?}");
        let ev = s.events(name).await;
        assert!(ev.iter().any(|(t, r, _)| t == "Warning" && r == "QuotaExceeded"), "{name}: events {ev:?}");
        refused.push(w);
    }
    // The two small ones fit (maxWorkspaces 2) and run.
    for n in ["a1", "a2"] {
        let (_, c) = decided(&s, n).await;
        assert_eq!(c.0, "True", "{n} admitted: {c:?}");
    }
    s.wait_tenant("usage.workspaces 2", READY, |t| {
        t.status.as_ref().and_then(|x| x.usage).is_some_and(|u| u.workspaces == 2 && u.vcpus == 4 && u.gpus == 0)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    // A third is refused on the count.
    s.apply(&s.workspace("a3", small)).unwrap();
    let (w3, (status, reason, msg)) = decided(&s, "a3").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "QuotaExceeded"), "a3: {msg}");
    assert!(msg.contains("maxWorkspaces"), "a3: message {msg:?} names maxWorkspaces");
    refused.push(w3);
    for n in ["a1", "a2"] {
        s.wait_ready(n, READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    }
    // By now the operator has launched what it was going to launch: nothing for the refused.
    for w in &refused {
        let name = w.metadata.name.clone().unwrap();
        assert!(s.alive(&uid(w)).await.is_empty(), "{name}: launched an instance");
        assert!(s.leftovers(&uid(w), None).await.is_empty(), "{name}: created something in AWS");
        let again = s.get(&name).await.unwrap();
        assert_eq!(condition(&again, "Admitted").unwrap().1, "QuotaExceeded", "{name} stays refused");
        assert!(again.status.as_ref().and_then(|x| x.instance_id.clone()).is_none(), "{name}: no instanceId");
    }
}

#[tokio::test]
async fn a_workspace_outside_the_tenants_namespaces_is_refused() {
    let mut s = Scenario::new("nsbind", 2, json!({})).await.unwrap();
    s.start_operator(&[]).unwrap();
    s.wait_tenant_ready(READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let other = format!("{}-other", s.ns);
    let out = s.env.kubectl(&["create", "namespace", &other], None).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut foreign = s.workspace("foreign", json!({"runtime": "codex", "compute": {"instanceType": "t3.small"}}));
    foreign["metadata"]["namespace"] = json!(other);
    s.apply(&foreign).unwrap();
    s.apply(&s.workspace("home", json!({"runtime": "codex", "compute": {"instanceType": "t3.small"}}))).unwrap();

    let api: kube::Api<Workspace> = kube::Api::namespaced(s.kube.clone(), &other);
    let w = wait_for("foreign: admission decided", READY, || async {
        api.get_opt("foreign").await.ok().flatten().filter(|w| condition(w, "Admitted").is_some())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let (status, reason, msg) = condition(&w, "Admitted").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "NamespaceNotAllowed"), "{msg}");
    assert!(msg.contains(&other), "message {msg:?} names the namespace");
    assert_eq!(condition(&w, "Ready").map(|c| c.0).as_deref(), Some("False"));
    let ev: Vec<_> = s.events_in(&other, "foreign").await;
    assert!(ev.iter().any(|(t, r, _)| t == "Warning" && r == "NamespaceNotAllowed"), "events {ev:?}");
    // The one in an allowed namespace runs; by then nothing was launched for the other.
    s.wait_ready("home", READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert!(s.alive(&uid(&w)).await.is_empty(), "launched an instance for a refused Workspace");
    assert!(s.leftovers(&uid(&w), None).await.is_empty(), "created something in AWS");
    let w = api.get("foreign").await.unwrap();
    assert_eq!(condition(&w, "Admitted").unwrap().1, "NamespaceNotAllowed", "stays refused");
}
