//! What GitOps users and their tools rely on, against the real API server, moto and the operator
//! process: kstatus conditions (Reconciling, Stalled, Paused), the paused annotation (no cloud
//! call), `deletionPolicy: Retain`, the packaged metrics and the CRD version check.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use kube::ResourceExt;
use molecule_crds::v1alpha1::Workspace;
use molecule_e2e::scenario::{Scenario, condition, tags, uid};
use serde_json::json;

const T: Duration = Duration::from_secs(90);

fn status_of(w: &Workspace, t: &str) -> String {
    condition(w, t).map(|c| c.0).unwrap_or_default()
}

/// Mutating EC2 calls captured by the fault proxy whose body mentions `needle`.
async fn mutations_naming(s: &Scenario, needle: &str) -> Vec<String> {
    let all = s.captured().await.unwrap();
    all.into_iter().filter(|(_, body)| body.contains(needle)).map(|(call, _)| call).collect()
}

#[tokio::test]
async fn kstatus_conditions_say_reconciling_ready_and_stalled() {
    let mut s = Scenario::new("kstatus", 2, json!({})).await.unwrap();
    s.start_operator(&[]).unwrap();
    s.apply(&s.workspace("ok", json!({"runtime": "codex", "compute": {"instanceType": "t3.medium"}}))).unwrap();
    // A GPU the instance type does not carry: only a spec change can help.
    s.apply(&s.workspace(
        "gpu",
        json!({"runtime": "codex", "compute": {"instanceType": "t3.medium", "gpu": {"type": "T4"}}}),
    ))
    .unwrap();
    let w = s
        .wait_ws("ok", "Reconciling while converging", T, |w| status_of(w, "Reconciling") == "True")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(status_of(&w, "Stalled"), "False");
    let w = s.wait_ready("ok", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(status_of(&w, "Reconciling"), "False");
    assert_eq!(status_of(&w, "Stalled"), "False");
    assert_eq!(status_of(&w, "Paused"), "False");

    let g = s
        .wait_ws("gpu", "Stalled", T, |w| status_of(w, "Stalled") == "True")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let (_, reason, message) = condition(&g, "Stalled").unwrap();
    assert_eq!(reason, "GpuMismatch");
    assert!(message.contains("gpu"), "{message}");
    assert_eq!(status_of(&g, "Reconciling"), "False");
    assert_eq!(
        condition(&g, "Stalled").and_then(|_| g.status.as_ref()?.observed_generation),
        g.metadata.generation,
        "observedGeneration is current, so kstatus reads Stalled as Failed"
    );

    // The packaged metrics: OpenMetrics content type, build info, phases, stalled, time to ready.
    let url = format!("http://{}/metrics", s.metrics_addr);
    let (content_type, body) = molecule_e2e::harness::http_get_typed(&url).await.unwrap();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    assert!(body.contains("molecule_build_info{version=\""), "no build info");
    molecule_e2e::harness::wait_for("gauges", T, || async {
        let running = s.metric_sum("molecule_objects", &["kind=\"Workspace\"", "phase=\"Running\""]).await;
        let stalled = s.metric_sum("molecule_stalled_objects", &["reason=\"GpuMismatch\""]).await;
        let age = s.metric_sum("molecule_fleet_cache_age_seconds", &["account=\"main\""]).await;
        (running >= 1.0 && stalled >= 1.0 && age < 60.0).then_some(())
    })
    .await
    .unwrap();
    assert!(s.metric_sum("molecule_time_to_ready_seconds_count", &["kind=\"Workspace\""]).await >= 1.0);
}

#[tokio::test]
async fn a_paused_workspace_makes_no_cloud_call_until_resumed() {
    let mut s = Scenario::new("paused", 2, json!({})).await.unwrap();
    s.start_operator(&[]).unwrap();
    let mut m = s.workspace("p", json!({"runtime": "codex", "compute": {"instanceType": "t3.medium"}}));
    m["metadata"]["annotations"] = json!({"moleculesai.app/paused": "true"});
    s.apply(&m).unwrap();
    let w = s
        .wait_ws("p", "Paused", T, |w| status_of(w, "Paused") == "True")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(status_of(&w, "Reconciling"), "False");
    // Several fleet refreshes (1 s each) later: nothing was created for it. Every create carries
    // the owner-uid tag, whose value (hex and dashes) appears verbatim in the request body.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let id = uid(&w);
    assert!(mutations_naming(&s, &id).await.is_empty(), "a paused Workspace caused cloud calls");
    assert!(s.alive(&id).await.is_empty());
    assert!(w.finalizers().is_empty(), "not even the finalizer is added while paused");
    assert!(s.events("p").await.iter().any(|(_, r, _)| r == "Paused"));

    // Resumed: it converges.
    s.patch("p", json!({"metadata": {"annotations": {"moleculesai.app/paused": null}}})).await.unwrap();
    let w = s.wait_ready("p", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(status_of(&w, "Paused"), "False");
    let creates = mutations_naming(&s, &id).await;
    assert!(creates.iter().any(|c| c.contains("RunInstances")), "the needle finds the creates: {creates:?}");
    let id = w.status.clone().unwrap().instance_id.unwrap();

    // Paused and resumed with nothing else changed: Paused goes back to False.
    s.patch("p", json!({"metadata": {"annotations": {"moleculesai.app/paused": "true"}}})).await.unwrap();
    s.wait_ws("p", "Paused while Ready", T, |w| status_of(w, "Paused") == "True").await.unwrap();
    s.patch("p", json!({"metadata": {"annotations": {"moleculesai.app/paused": null}}})).await.unwrap();
    s.wait_ws("p", "resumed while Ready", T, |w| status_of(w, "Paused") == "False" && status_of(w, "Ready") == "True")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));

    // Paused again, then asked to stop: the instance keeps running until resumed.
    s.patch("p", json!({"metadata": {"annotations": {"moleculesai.app/paused": "true"}}})).await.unwrap();
    s.wait_ws("p", "Paused again", T, |w| status_of(w, "Paused") == "True").await.unwrap();
    s.patch("p", json!({"spec": {"state": "Stopped"}})).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!mutations_naming(&s, &id).await.iter().any(|c| c.contains("StopInstances")), "stopped while paused");
    assert_eq!(s.alive(&uid(&w)).await, vec![id.clone()]);
    s.patch("p", json!({"metadata": {"annotations": {"moleculesai.app/paused": "false"}}})).await.unwrap();
    s.wait_ws("p", "Stopped after resume", T, |w| {
        w.status.as_ref().and_then(|st| st.phase) == Some(molecule_crds::v1alpha1::WorkspacePhase::Stopped)
            && status_of(w, "Reconciling") == "False"
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    s.delete("p").await.unwrap();
    s.wait_gone("p", T).await.unwrap();
}

#[tokio::test]
async fn retain_leaves_the_machine_tagged_and_the_scan_lists_it_as_retained() {
    // No expect_orphans(): the end-of-scenario check then also proves that no scan ever logged a
    // retained resource as an orphan.
    let mut s = Scenario::new("retain", 2, json!({})).await.unwrap();
    // Reap with no grace: a retained resource must still never be deleted.
    s.start_operator(&[("ORPHAN_POLICY", "reap"), ("ORPHAN_GRACE_SECONDS", "0")]).unwrap();
    s.apply(&s.workspace(
        "keep",
        json!({"runtime": "codex", "deletionPolicy": "Retain", "compute": {"instanceType": "t3.medium", "volume": {"dataGb": 5}}}),
    ))
    .unwrap();
    let w = s.wait_ready("keep", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let st = w.status.clone().unwrap();
    let (id, sg, vol) = (st.instance_id.unwrap(), st.security_group_id.unwrap(), st.data_volume_id.unwrap());
    let secret = st.secret_arn.expect("status.secretArn: the Workspace's own secret");
    s.delete("keep").await.unwrap();
    s.wait_gone("keep", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert!(s.events("keep").await.iter().any(|(_, r, n)| r == "Retained" && n.contains(&id)));

    let ec2 = s.env.ec2_direct().await;
    let inst = s.instances(&uid(&w)).await;
    assert_eq!(inst.len(), 1);
    assert_eq!(inst[0].state().unwrap().name().unwrap().as_str(), "running", "the instance still runs");
    assert_eq!(tags(&inst[0]).get("moleculesai.app/retained").map(String::as_str), Some("true"));
    let groups = ec2.describe_security_groups().group_ids(&sg).send().await.unwrap();
    assert!(groups.security_groups()[0].tags().iter().any(|t| t.key() == Some("moleculesai.app/retained")));
    let volumes = ec2.describe_volumes().volume_ids(&vol).send().await.unwrap();
    assert!(volumes.volumes()[0].tags().iter().any(|t| t.key() == Some("moleculesai.app/retained")));
    let sm = s.env.secretsmanager_direct().await;
    let d = sm.describe_secret().secret_id(&secret).send().await.expect("the Workspace's secret is kept");
    assert!(d.tags().iter().any(|t| t.key() == Some("moleculesai.app/retained") && t.value() == Some("true")));

    // The scan (every 2 s) lists them as retained, counts no orphan, and reaps nothing.
    let tenant = s
        .wait_tenant("retained findings", T, |t| {
            t.status.as_ref().is_some_and(|st| {
                st.orphans.iter().any(|o| o.id == id && o.retained)
                    && st.orphans.iter().any(|o| o.id == secret && o.retained)
            })
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let st = tenant.status.unwrap();
    assert!(st.orphans.iter().filter(|o| [&id, &sg, &vol, &secret].contains(&&o.id)).all(|o| o.retained));
    assert_eq!(st.orphan_count, Some(0), "retained resources are not orphans: {:?}", st.orphans);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let inst = s.instances(&uid(&w)).await;
    assert_eq!(inst[0].state().unwrap().name().unwrap().as_str(), "running", "reap left it alone");
    // Clean up what the test retained (moto can answer 500 under load: try a few times).
    let _ = sm.delete_secret().secret_id(&secret).force_delete_without_recovery(true).send().await;
    for _ in 0..5 {
        if ec2.terminate_instances().instance_ids(&id).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn a_crd_of_another_version_stops_the_operator_with_the_fix() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, PostParams};
    let s = Scenario::new("crdcheck", 2, json!({})).await.unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(s.env.kube().await.unwrap());
    // A throwaway CRD with a digest, and the same CRD as a binary of another version would see it.
    let group = format!("{}.e2e.example", s.id);
    let mut crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}"), "annotations": {"moleculesai.app/schema-hash": "aaaa"}},
        "spec": {"group": group, "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object"}}}]}
    }))
    .unwrap();
    api.create(&PostParams::default(), &crd).await.unwrap();
    assert!(molecule_operator::crds::check(&api, &crd).await.is_ok());
    crd.metadata.annotations.as_mut().unwrap().insert("moleculesai.app/schema-hash".into(), "bbbb".into());
    let err = molecule_operator::crds::check(&api, &crd).await.unwrap_err().to_string();
    let name = crd.metadata.name.clone().unwrap();
    api.delete(&name, &kube::api::DeleteParams::default()).await.unwrap();
    assert!(err.contains(&name) && err.contains("aaaa") && err.contains("bbbb"), "{err}");
    assert!(err.contains("kubectl apply --server-side --force-conflicts -f charts/molecule-operator/crds/"), "{err}");
    assert!(err.contains("INSTALL_CRDS=true"), "{err}");
    // The shipped CRDs carry the digest this binary was built with (the operator starts on them).
    for want in molecule_crds::crd::all() {
        let crds: Api<CustomResourceDefinition> = Api::all(s.env.kube().await.unwrap());
        molecule_operator::crds::check(&crds, &want).await.unwrap();
    }
}

#[tokio::test]
async fn a_workspace_of_a_stalled_tenant_is_stalled_too() {
    let mut s = Scenario::new("tnstall", 2, json!({"canary": true})).await.unwrap();
    // The canary account is unusable (its subnet does not exist): the Tenant is stalled.
    s.start_operator(&[("CANARY_SUBNET_ID", "subnet-0000000000000dead")]).unwrap();
    s.wait_tenant("Tenant stalled", T, |t| {
        molecule_e2e::scenario::tenant_condition(t, "Stalled").is_some_and(|c| c.0 == "True")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    s.apply(&s.workspace("w", json!({"runtime": "codex", "compute": {"instanceType": "t3.medium"}}))).unwrap();
    let w = s
        .wait_ws("w", "Stalled", T, |w| status_of(w, "Stalled") == "True")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let (_, reason, message) = condition(&w, "Stalled").unwrap();
    assert_eq!(reason, "TenantStalled");
    assert!(message.contains("CanaryNotConfigured"), "{message}");
    assert_eq!(status_of(&w, "Reconciling"), "False");
    assert!(s.alive(&uid(&w)).await.is_empty(), "nothing launched");
}

#[tokio::test]
async fn an_admitted_workspace_is_not_stalled_by_its_old_refusal() {
    // Tier 1 with room for one vCPU: a t3.medium (2 vCPUs) is refused.
    let mut s = Scenario::new("readmit", 1, json!({"quotas": {"maxVcpus": 1}})).await.unwrap();
    s.start_operator(&[]).unwrap();
    s.apply(&s.workspace("q", json!({"runtime": "codex", "compute": {"instanceType": "t3.medium"}}))).unwrap();
    let w = s
        .wait_ws("q", "QuotaExceeded", T, |w| condition(w, "Stalled").is_some_and(|c| c.1 == "QuotaExceeded"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    // Its first admitted pass fails on the security group (a fault scoped to this Workspace).
    let rule = json!({"operation": "CreateSecurityGroup", "kind": "error", "status": 400,
                      "code": "InvalidParameterValue", "count": 3, "bodyContains": uid(&w)});
    s.env.add_faults(rule).await.unwrap();
    let quotas = json!({"spec": {"quotas": {"maxVcpus": 8}}});
    s.tenants().patch(&s.tenant, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&quotas)).await.unwrap();
    let w = s
        .wait_ws("q", "admitted, failing on the group", T, |w| {
            condition(w, "Ready").is_some_and(|c| c.1 == "ReconcileError")
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(status_of(&w, "Admitted"), "True", "the refusal is not left standing");
    assert_eq!(status_of(&w, "Stalled"), "False", "a transient failure is not stalled");
    assert_eq!(status_of(&w, "Reconciling"), "True");
    s.wait_ready("q", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
}
