//! One isolated scenario: its own namespace, Tenant, operator id and operator process, so that
//! scenarios run in parallel without seeing each other's objects or cloud resources.
//!
//! The operator is started with `MOLECULE_OPERATOR_ID=e2e-<id>` (its tags, hence its fleet cache,
//! are its own), `WORKSPACE_SELECTOR=molecule-e2e=<id>` and `TENANT_SELECTOR=molecule-e2e=<id>` (it
//! reconciles only this scenario's Workspaces and Tenant, which carry that label).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use kube::Api;
use kube::api::{Patch, PatchParams};
use molecule_crds::v1alpha1::{Tenant, Workspace};
use serde_json::{Value, json};

use crate::harness::{HarnessError, OperatorProcess, TestEnv, repo_root, unique, wait_for};

/// The annotation that confirms a Tenant's erasure; without it the API server refuses the DELETE.
pub const ERASURE_ANNOTATION: &str = "moleculesai.app/erasure";

/// Label that ties a Workspace or a Tenant to its scenario.
pub const LABEL: &str = "molecule-e2e";

/// See the module docs.
pub struct Scenario {
    /// The test world.
    pub env: TestEnv,
    /// Unique id.
    pub id: String,
    /// Namespace of the scenario's Workspaces.
    pub ns: String,
    /// The scenario's Tenant.
    pub tenant: String,
    /// Operator id (the managed-by tag).
    pub operator_id: String,
    /// Address of the running operator's /metrics.
    pub metrics_addr: String,
    /// The running operator.
    pub operator: Option<OperatorProcess>,
    /// Kubernetes client (admin).
    pub kube: kube::Client,
    /// The test plants real orphans: the end-of-scenario check of zero false positives is off.
    pub orphans_expected: bool,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario").field("id", &self.id).field("operator_id", &self.operator_id).finish_non_exhaustive()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(0, |a| a.port())
}

impl Scenario {
    /// A namespace and a Tenant of `tier` listing it, with extra Tenant spec fields.
    pub async fn new(prefix: &str, tier: u8, tenant_extra: Value) -> Result<Self, HarnessError> {
        Self::with_tenant(prefix, |id| {
            let mut spec = json!({ "tier": tier, "namespaces": [id] });
            if let (Some(s), Some(extra)) = (spec.as_object_mut(), tenant_extra.as_object()) {
                s.extend(extra.clone());
            }
            json!({ "apiVersion": "moleculesai.app/v1alpha1", "kind": "Tenant", "metadata": { "name": id }, "spec": spec })
        })
        .await
    }

    /// A scenario whose Tenant is `tenant(id)`, a whole Tenant manifest (name, spec, labels) chosen
    /// by the test; `metadata.name` defaults to the id. The scenario label is added to it, every
    /// namespace of `spec.namespaces` (default: the Tenant's name) is created, and the first one
    /// is the scenario's namespace.
    pub async fn with_tenant(prefix: &str, tenant: impl FnOnce(&str) -> Value) -> Result<Self, HarnessError> {
        let env = TestEnv::load()?;
        let id = unique(prefix);
        let kube = env.kube().await?;
        let mut t = tenant(&id);
        t["apiVersion"] = json!("moleculesai.app/v1alpha1");
        t["kind"] = json!("Tenant");
        if t["metadata"]["name"].as_str().is_none_or(str::is_empty) {
            t["metadata"]["name"] = json!(id);
        }
        t["metadata"]["labels"][LABEL] = json!(id);
        let name = t["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let mut namespaces: Vec<String> = t["spec"]["namespaces"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        if namespaces.is_empty() {
            namespaces.push(name.clone());
        }
        let mut items: Vec<Value> = namespaces
            .iter()
            .map(|n| json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": n } }))
            .collect();
        items.push(t);
        let manifest = json!({ "apiVersion": "v1", "kind": "List", "items": items });
        let out = env.kubectl(&["apply", "-f", "-"], Some(&manifest.to_string()))?;
        if !out.status.success() {
            return Err(HarnessError::Kube(String::from_utf8_lossy(&out.stderr).into_owned()));
        }
        Ok(Self {
            operator_id: format!("e2e-{id}"),
            ns: namespaces[0].clone(),
            tenant: name,
            id,
            env,
            metrics_addr: String::new(),
            operator: None,
            kube,
            orphans_expected: false,
        })
    }

    /// Declares that this scenario plants real orphans (out-of-band resources with its marks), so
    /// its orphan findings are not false positives.
    pub fn expect_orphans(&mut self) {
        self.orphans_expected = true;
    }

    /// Starts (or restarts) the operator with the scenario's identity and `extra` settings.
    pub fn start_operator(&mut self, extra: &[(&str, &str)]) -> Result<(), HarnessError> {
        let (op, metrics_addr) = self.start_replica(extra)?;
        (self.operator, self.metrics_addr) = (Some(op), metrics_addr);
        Ok(())
    }

    /// Starts one more operator process with the scenario's identity and settings plus `extra` (a
    /// second replica, e.g. a standby with `LEADER_ELECTION=true`), on a metrics address of its
    /// own: the process and that address. The scenario's own operator is left as it is.
    pub fn start_replica(&self, extra: &[(&str, &str)]) -> Result<(OperatorProcess, String), HarnessError> {
        let metrics_addr = format!("127.0.0.1:{}", free_port());
        let selector = format!("{LABEL}={}", self.id);
        let mut vars: Vec<(&str, &str)> = vec![
            ("MOLECULE_OPERATOR_ID", &self.operator_id),
            ("WORKSPACE_SELECTOR", &selector),
            ("TENANT_SELECTOR", &selector),
            // Every scenario's operator scans for orphans all along; the end of the scenario
            // asserts that no live resource was ever reported (see `Drop`).
            ("ORPHAN_SCAN_INTERVAL_SECONDS", "2"),
            ("METRICS_ADDR", &metrics_addr),
            ("CLOUD_REFRESH_SECONDS", "1"),
            ("DEPROVISION_DEADLINE_SECONDS", "60"),
            ("RUST_LOG", "info,molecule_operator=debug"),
        ];
        vars.extend_from_slice(extra);
        Ok((self.env.start_operator(&vars)?, metrics_addr))
    }

    /// kill -9 of the operator.
    pub fn kill_operator(&mut self) {
        if let Some(mut op) = self.operator.take() {
            op.kill9();
        }
    }

    /// The operator's log so far.
    pub fn log(&self) -> String {
        self.operator.as_ref().map(OperatorProcess::log).unwrap_or_default()
    }

    /// Waits until the operator's log contains `needle`.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) -> Result<(), HarnessError> {
        wait_for(&format!("operator log line {needle:?}"), timeout, || async {
            self.log().contains(needle).then_some(())
        })
        .await
    }

    /// Reads a sample from config/samples and rebinds it to this scenario: namespace, tenant,
    /// name and the scenario label.
    pub fn sample(&self, file: &str, name: &str) -> Value {
        let text = std::fs::read_to_string(repo_root().join("config/samples").join(file)).unwrap_or_default();
        let mut v: Value = serde_yaml_ng::from_str(&text).unwrap_or(Value::Null);
        v["metadata"]["name"] = json!(name);
        v["metadata"]["namespace"] = json!(self.ns);
        v["metadata"]["labels"][LABEL] = json!(self.id);
        v["spec"]["tenant"] = json!(self.tenant);
        v
    }

    /// A Workspace manifest of this scenario with `spec`.
    pub fn workspace(&self, name: &str, spec: Value) -> Value {
        let mut spec = spec;
        spec["tenant"] = json!(self.tenant);
        json!({
            "apiVersion": "moleculesai.app/v1alpha1", "kind": "Workspace",
            "metadata": { "name": name, "namespace": self.ns, "labels": { LABEL: self.id } },
            "spec": spec,
        })
    }

    /// kubectl apply of a manifest.
    pub fn apply(&self, manifest: &Value) -> Result<(), HarnessError> {
        let out = self.env.kubectl(&["apply", "-f", "-"], Some(&manifest.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(HarnessError::Kube(String::from_utf8_lossy(&out.stderr).into_owned()))
        }
    }

    /// Applies `items` in one `kubectl apply` (a `v1/List`), as a GitOps sync does: the
    /// objects arrive together rather than one process start apart.
    pub fn apply_all(&self, items: &[Value]) -> Result<(), HarnessError> {
        self.apply(&json!({"apiVersion": "v1", "kind": "List", "items": items}))
    }

    /// The Workspaces API of the scenario's namespace.
    pub fn api(&self) -> Api<Workspace> {
        Api::namespaced(self.kube.clone(), &self.ns)
    }

    /// The Workspace, if it exists.
    pub async fn get(&self, name: &str) -> Option<Workspace> {
        self.api().get_opt(name).await.ok().flatten()
    }

    /// Merge-patches a Workspace's spec or metadata.
    pub async fn patch(&self, name: &str, patch: Value) -> Result<(), HarnessError> {
        self.api()
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
            .map_err(|e| HarnessError::Kube(e.to_string()))
    }

    /// Waits until `check` holds for the Workspace; returns it.
    pub async fn wait_ws(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Workspace) -> bool,
    ) -> Result<Workspace, HarnessError> {
        wait_for(&format!("{name}: {what}"), timeout, || async { self.get(name).await.filter(|w| check(w)) }).await
    }

    /// Waits for the Ready condition.
    pub async fn wait_ready(&self, name: &str, timeout: Duration) -> Result<Workspace, HarnessError> {
        self.wait_ws(name, "Ready", timeout, |w| condition(w, "Ready").is_some_and(|c| c.0 == "True")).await
    }

    /// Waits until the Workspace is gone.
    pub async fn wait_gone(&self, name: &str, timeout: Duration) -> Result<(), HarnessError> {
        wait_for(&format!("{name} to be gone"), timeout, || async { self.get(name).await.is_none().then_some(()) })
            .await
    }

    /// Deletes a Workspace (does not wait).
    pub async fn delete(&self, name: &str) -> Result<(), HarnessError> {
        self.api()
            .delete(name, &kube::api::DeleteParams::default())
            .await
            .map(|_| ())
            .map_err(|e| HarnessError::Kube(e.to_string()))
    }

    /// Every instance with the owner uid, straight from moto: (id, state, tags).
    pub async fn instances(&self, uid: &str) -> Vec<aws_sdk_ec2::types::Instance> {
        let ec2 = self.env.ec2_direct().await;
        let out = ec2
            .describe_instances()
            .filters(Filter::builder().name("tag:moleculesai.app/owner-uid").values(uid).build())
            .send()
            .await;
        out.map(|o| o.reservations().iter().flat_map(|r| r.instances().to_vec()).collect()).unwrap_or_default()
    }

    /// Instances with the owner uid that are not terminated.
    pub async fn alive(&self, uid: &str) -> Vec<String> {
        self.instances(uid)
            .await
            .iter()
            .filter(|i| i.state().and_then(|s| s.name()).is_none_or(|n| n.as_str() != "terminated"))
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect()
    }

    /// Everything of `uid` still in moto: live instances, groups, volumes and DNS names.
    pub async fn leftovers(&self, uid: &str, hostname: Option<&str>) -> Vec<String> {
        let ec2 = self.env.ec2_direct().await;
        let f = Filter::builder().name("tag:moleculesai.app/owner-uid").values(uid).build();
        let mut out: Vec<String> = self.alive(uid).await.into_iter().map(|i| format!("instance {i}")).collect();
        if let Ok(g) = ec2.describe_security_groups().filters(f.clone()).send().await {
            out.extend(
                g.security_groups().iter().map(|g| format!("security group {}", g.group_id().unwrap_or_default())),
            );
        }
        if let Ok(v) = ec2.describe_volumes().filters(f).send().await {
            out.extend(
                v.volumes()
                    .iter()
                    .filter(|v| v.state().is_none_or(|s| s.as_str() != "deleted"))
                    .map(|v| format!("volume {}", v.volume_id().unwrap_or_default())),
            );
        }
        if let Some(h) = hostname {
            out.extend(self.records(h).await.into_iter().map(|(t, _)| format!("{t} record {h}")));
        }
        out
    }

    /// DNS records at `name` in the workspace zone: (type, values).
    pub async fn records(&self, name: &str) -> Vec<(String, Vec<String>)> {
        let r53 = self.env.route53_direct().await;
        let fq = format!("{}.", name.trim_end_matches('.'));
        let out = r53
            .list_resource_record_sets()
            .hosted_zone_id(self.env.var("WORKSPACE_HOSTED_ZONE_ID"))
            .start_record_name(name)
            .send()
            .await;
        out.map(|o| {
            o.resource_record_sets()
                .iter()
                .filter(|r| r.name() == fq)
                .map(|r| {
                    (
                        r.r#type().as_str().to_owned(),
                        r.resource_records().iter().map(|v| v.value().to_owned()).collect(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// The operator's /metrics, as `name{labels} value` lines summed by a label filter.
    pub async fn metric_sum(&self, name: &str, must_contain: &[&str]) -> f64 {
        let url = format!("http://{}/metrics", self.metrics_addr);
        let Ok((_, body)) = crate::harness::http_text("GET", &url).await else { return 0.0 };
        body.lines()
            .filter(|l| l.starts_with(name) && must_contain.iter().all(|m| l.contains(m)))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }

    /// The recent mutating calls the fault proxy captured (`GET /requests`, a bounded ring), oldest
    /// first: (call, e.g. `ec2.RunInstances`; body).
    pub async fn captured(&self) -> Result<Vec<(String, String)>, HarnessError> {
        let url = format!("{}/requests", self.env.var("TESTENV_FAULTS_URL"));
        let (_, v) = crate::harness::http_json("GET", &url, None, None).await?;
        let text = |r: &Value, k: &str| r[k].as_str().unwrap_or_default().to_owned();
        Ok(v.as_array().into_iter().flatten().map(|r| (text(r, "call"), text(r, "body"))).collect())
    }

    /// The body of the last captured `call` (e.g. `ec2.RunInstances`) containing `needle`.
    pub async fn sent(&self, call: &str, needle: &str) -> String {
        let all = self.captured().await.unwrap_or_default();
        all.into_iter().rev().find(|(c, b)| c == call && b.contains(needle)).map(|(_, b)| b).unwrap_or_default()
    }

    /// The ClientToken of every captured RunInstances for owner `uid` (the token carries it),
    /// oldest first.
    pub async fn run_tokens(&self, uid: &str) -> Result<Vec<String>, HarnessError> {
        Ok(self
            .captured()
            .await?
            .into_iter()
            .filter(|(call, _)| call == "ec2.RunInstances")
            .filter_map(|(_, b)| b.split('&').find_map(|kv| kv.strip_prefix("ClientToken=")).map(str::to_owned))
            .filter(|t| t.contains(uid))
            .collect())
    }

    /// Events about the Workspace `name`: (type, reason, note).
    pub async fn events(&self, name: &str) -> Vec<(String, String, String)> {
        self.events_in(&self.ns, name).await
    }

    /// Events about the object `name` in namespace `ns`: (type, reason, note).
    pub async fn events_in(&self, ns: &str, name: &str) -> Vec<(String, String, String)> {
        let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(self.kube.clone(), ns);
        let list = api.list(&kube::api::ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        list.into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }
}

/// How long the end-of-scenario check waits for one more orphan scan (a loaded machine: scans of
/// 30 s were seen with every test binary's operators at work).
const LAST_SCAN_WAIT: Duration = Duration::from_mins(1);

impl Drop for Scenario {
    /// A delete finishes once: the operator's log shows no second finish ([`finished_again`]).
    /// Zero false positives: unless the test planted real orphans, one more orphan scan runs after
    /// the scenario's last step, and no scan of this scenario's operator may have reported
    /// anything. (Skipped when the test already failed, or its operator is not running.)
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let Some(op) = self.operator.as_mut() else { return };
        if !op.is_running() {
            return;
        }
        let again = finished_again(&op.log());
        assert!(again.is_empty(), "scenario {}: a delete finished more than once:\n{}", self.id, again.join("\n"));
        if self.orphans_expected {
            return;
        }
        let scans = |log: &str| log.matches("orphan scan finished").count();
        let before = scans(&op.log());
        let until = std::time::Instant::now() + LAST_SCAN_WAIT;
        while scans(&op.log()) <= before && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = op.log();
        assert!(scans(&log) > before, "scenario {}: no orphan scan ran after the last step\n{log}", self.id);
        let found: Vec<&str> = log.lines().filter(|l| l.contains("orphan found")).collect();
        assert!(
            found.is_empty(),
            "scenario {}: the orphan scan reported live resources:\n{}",
            self.id,
            found.join("\n")
        );
    }
}

/// The lines of an operator's log that show a delete finishing again: a second "workspace
/// deleted" or "tenant erasure completed" for one uid (the cleanup ran again from a copy of the
/// object older than its finalizer's removal), or a finalizer removal answered NotFound.
pub fn finished_again(log: &str) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    log.lines()
        .filter(|l| {
            if l.contains("failed to remove finalizer") {
                return true;
            }
            if !(l.contains("workspace deleted") || l.contains("tenant erasure completed")) {
                return false;
            }
            let uid = l.split_whitespace().find(|w| w.starts_with("uid=")).unwrap_or_default();
            !seen.insert(uid.to_owned())
        })
        .map(str::to_owned)
        .collect()
}

/// A condition's (status, reason, message).
pub fn condition(w: &Workspace, t: &str) -> Option<(String, String, String)> {
    let c = w.status.as_ref()?.conditions.iter().find(|c| c.type_ == t)?;
    let status = serde_json::to_value(c.status).ok()?.as_str()?.to_owned();
    Some((status, c.reason.clone(), c.message.clone()))
}

/// A Tenant condition's (status, reason, message).
pub fn tenant_condition(t: &Tenant, ty: &str) -> Option<(String, String, String)> {
    let c = t.status.as_ref()?.conditions.iter().find(|c| c.type_ == ty)?;
    let status = serde_json::to_value(c.status).ok()?.as_str()?.to_owned();
    Some((status, c.reason.clone(), c.message.clone()))
}

/// Reads a Tenant sample from config/samples and rebinds it to the name `id`: its namespaces
/// become `id` (for the one named like the sample) and `id-<rest>` (for `<sample name>-<rest>`,
/// or any other).
pub fn tenant_sample(file: &str, id: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join("config/samples").join(file)).unwrap_or_default();
    let mut v: Value = serde_yaml_ng::from_str(&text).unwrap_or(Value::Null);
    let old = v["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    v["metadata"]["name"] = json!(id);
    if let Some(list) = v["spec"]["namespaces"].as_array_mut() {
        for n in list.iter_mut() {
            let cur = n.as_str().unwrap_or_default().to_owned();
            *n = json!(if cur == old {
                id.to_owned()
            } else {
                format!("{id}-{}", cur.strip_prefix(&format!("{old}-")).unwrap_or(&cur))
            });
        }
    }
    v
}

/// The uid of a Workspace.
pub fn uid(w: &Workspace) -> String {
    w.metadata.uid.clone().unwrap_or_default()
}

/// Tags of an SDK instance as a map.
pub fn tags(i: &aws_sdk_ec2::types::Instance) -> BTreeMap<String, String> {
    i.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_second_finish_of_one_uid_and_a_not_found_removal_are_reported() {
        let log = "\
I workspace deleted: instance, security group, volumes and records confirmed gone workspace=n/a uid=1
I workspace deleted: instance, security group, volumes and records confirmed gone workspace=n/b uid=2
I tenant erasure completed tenant=t uid=3 resources=4
I workspace deleted: instance, security group, volumes and records confirmed gone workspace=n/a uid=1
W reconcile failed error=finalizer: failed to remove finalizer: ApiError: NotFound";
        let again = super::finished_again(log);
        assert_eq!(again.len(), 2, "{again:?}");
        assert!(again[0].contains("uid=1") && again[1].contains("NotFound"));
        assert!(super::finished_again(&log.lines().take(3).collect::<Vec<_>>().join("\n")).is_empty());
    }
}
