//! The Tenant side of a [`Scenario`]: its Tenant, its erasure and receipt, its credentials, its
//! instances and secrets in AWS, and what a Tenant leaves behind.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use molecule_crds::v1alpha1::Tenant;
use serde_json::{Value, json};

use crate::harness::{HarnessError, wait_for};
use crate::scenario::{ERASURE_ANNOTATION, Scenario, tenant_condition};

impl Scenario {
    /// The Tenants API (cluster-scoped).
    pub fn tenants(&self) -> Api<Tenant> {
        Api::all(self.kube.clone())
    }

    /// The scenario's Tenant, if it exists.
    pub async fn get_tenant(&self) -> Option<Tenant> {
        self.tenants().get_opt(&self.tenant).await.ok().flatten()
    }

    /// The scenario's Tenant as the API server holds it, every field included (also those the
    /// typed struct does not know).
    pub async fn tenant_json(&self) -> Option<Value> {
        let ar = ApiResource::erase::<Tenant>(&());
        let api: Api<DynamicObject> = Api::all_with(self.kube.clone(), &ar);
        let obj = api.get_opt(&self.tenant).await.ok().flatten()?;
        serde_json::to_value(obj).ok()
    }

    /// Waits until `check` holds for the Tenant; returns it.
    pub async fn wait_tenant(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Tenant) -> bool,
    ) -> Result<Tenant, HarnessError> {
        wait_for(&format!("tenant {}: {what}", self.tenant), timeout, || async {
            self.get_tenant().await.filter(|t| check(t))
        })
        .await
    }

    /// Waits for the Tenant's Ready condition.
    pub async fn wait_tenant_ready(&self, timeout: Duration) -> Result<Tenant, HarnessError> {
        self.wait_tenant("Ready", timeout, |t| tenant_condition(t, "Ready").is_some_and(|c| c.0 == "True")).await
    }

    /// Waits until the Tenant object is gone.
    pub async fn wait_tenant_gone(&self, timeout: Duration) -> Result<(), HarnessError> {
        wait_for(&format!("tenant {} to be gone", self.tenant), timeout, || async {
            matches!(self.tenants().get_opt(&self.tenant).await, Ok(None)).then_some(())
        })
        .await
    }

    /// Annotates the Tenant `moleculesai.app/erasure: confirmed`, the confirmation the chart's
    /// ValidatingAdmissionPolicy (applied by the test world) requires before a Tenant DELETE.
    pub async fn confirm_erasure(&self) -> Result<(), HarnessError> {
        let patch = json!({ "metadata": { "annotations": { ERASURE_ANNOTATION: "confirmed" } } });
        self.tenants()
            .patch(&self.tenant, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
            .map_err(|e| HarnessError::Kube(e.to_string()))
    }

    /// Confirms the erasure, then deletes the Tenant (does not wait).
    pub async fn delete_tenant(&self) -> Result<(), HarnessError> {
        self.confirm_erasure().await?;
        self.tenants()
            .delete(&self.tenant, &kube::api::DeleteParams::default())
            .await
            .map(|_| ())
            .map_err(|e| HarnessError::Kube(e.to_string()))
    }

    /// The tenant hostname, `<slug>.<TENANT_BASE_DOMAIN>`.
    pub fn tenant_hostname(&self) -> String {
        format!("{}.{}", self.tenant, self.env.var("TENANT_BASE_DOMAIN"))
    }

    /// The tenant's Cloudflare tunnel name, `<operator id>.<env>.<slug>`.
    pub fn tunnel_name(&self) -> String {
        format!("{}.{}.{}", self.operator_id, self.env.var("MOLECULE_ENV"), self.tenant)
    }

    /// Events about the Tenant, from every namespace (the Recorder puts the Events of a
    /// cluster-scoped object in `default`): (type, reason, note).
    pub async fn tenant_events(&self) -> Vec<(String, String, String)> {
        let api: Api<k8s_openapi::api::events::v1::Event> = Api::all(self.kube.clone());
        let list = api.list(&kube::api::ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        list.into_iter()
            .filter(|e| {
                e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some("Tenant") && r.name.as_deref() == Some(self.tenant.as_str())
                })
            })
            .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    /// Every Event in the cluster (core/v1 and events.k8s.io/v1, all namespaces), as JSON text.
    pub async fn all_events_text(&self) -> String {
        let core: Api<k8s_openapi::api::core::v1::Event> = Api::all(self.kube.clone());
        let new: Api<k8s_openapi::api::events::v1::Event> = Api::all(self.kube.clone());
        let mut out = String::new();
        if let Ok(l) = core.list(&kube::api::ListParams::default()).await {
            out.push_str(&serde_json::to_string(&l.items).unwrap_or_default());
        }
        if let Ok(l) = new.list(&kube::api::ListParams::default()).await {
            out.push_str(&serde_json::to_string(&l.items).unwrap_or_default());
        }
        out
    }

    /// The name of the tenant's credentials Secret, `tenant-<slug>-credentials`.
    pub fn credentials_name(&self) -> String {
        format!("tenant-{}-credentials", self.tenant)
    }

    /// The tenant's credentials Secret in OPERATOR_NAMESPACE, if it exists.
    pub async fn credentials_secret(&self) -> Option<Secret> {
        let api: Api<Secret> = Api::namespaced(self.kube.clone(), self.env.var("OPERATOR_NAMESPACE"));
        api.get_opt(&self.credentials_name()).await.ok().flatten()
    }

    /// The decoded data of the tenant's credentials Secret (empty when it does not exist).
    pub async fn credentials(&self) -> BTreeMap<String, String> {
        self.credentials_secret()
            .await
            .and_then(|s| s.data)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect()
    }

    /// The name of the erasure receipt ConfigMap: `erasure-<slug>-<first 8 characters of uid>`.
    pub fn receipt_name(&self, tenant_uid: &str) -> String {
        format!("erasure-{}-{}", self.tenant, tenant_uid.get(..8).unwrap_or(tenant_uid))
    }

    /// The erasure receipt ConfigMap in OPERATOR_NAMESPACE, if it exists.
    pub async fn receipt_configmap(&self, tenant_uid: &str) -> Option<ConfigMap> {
        let api: Api<ConfigMap> = Api::namespaced(self.kube.clone(), self.env.var("OPERATOR_NAMESPACE"));
        api.get_opt(&self.receipt_name(tenant_uid)).await.ok().flatten()
    }

    /// The parsed `receipt.json` of the erasure receipt, if the ConfigMap exists and parses, with
    /// the resources of the further parts its index names appended (`parts` removed).
    pub async fn receipt(&self, tenant_uid: &str) -> Option<Value> {
        let cm = self.receipt_configmap(tenant_uid).await?;
        let text = cm.data?.get("receipt.json")?.clone();
        let mut r: Value = serde_json::from_str(&text).ok()?;
        let Some(parts) = r.as_object_mut().and_then(|o| o.remove("parts")) else { return Some(r) };
        let api: Api<ConfigMap> = Api::namespaced(self.kube.clone(), self.env.var("OPERATOR_NAMESPACE"));
        for p in parts.as_array().into_iter().flatten().filter_map(Value::as_str) {
            let cm = api.get_opt(p).await.ok().flatten()?;
            let part: Value = serde_json::from_str(cm.data?.get("receipt.json")?).ok()?;
            let more = part["resources"].as_array().cloned().unwrap_or_default();
            r["resources"].as_array_mut()?.extend(more);
        }
        Some(r)
    }

    /// Every instance (any state) tagged `moleculesai.app/tenant=<slug>` in one account.
    pub async fn tenant_instances(&self, ec2: &aws_sdk_ec2::Client) -> Vec<aws_sdk_ec2::types::Instance> {
        let f = Filter::builder().name("tag:moleculesai.app/tenant").values(&self.tenant).build();
        let mut pages = ec2.describe_instances().filters(f).into_paginator().send();
        let mut out = Vec::new();
        while let Some(Ok(page)) = pages.next().await {
            out.extend(page.reservations().iter().flat_map(|r| r.instances().to_vec()));
        }
        out
    }

    /// The user-data of an instance, decoded (empty when it has none).
    pub async fn user_data(&self, ec2: &aws_sdk_ec2::Client, instance_id: &str) -> String {
        let out = ec2
            .describe_instance_attribute()
            .instance_id(instance_id)
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
            .send()
            .await;
        let b64 = out.ok().and_then(|o| o.user_data().and_then(|v| v.value()).map(str::to_owned)).unwrap_or_default();
        aws_smithy_types::base64::decode(b64).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// Secrets Manager secrets (ARN, tags) whose tags say they belong to the tenant (tenant slug or
    /// the tenant's owner uid).
    pub async fn tenant_secrets(
        &self,
        sm: &aws_sdk_secretsmanager::Client,
        tenant_uid: &str,
    ) -> Vec<(String, BTreeMap<String, String>)> {
        let mut pages = sm.list_secrets().into_paginator().send();
        let mut out = Vec::new();
        while let Some(Ok(page)) = pages.next().await {
            for sec in page.secret_list() {
                let tags: BTreeMap<String, String> =
                    sec.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect();
                let ours = tags.get("moleculesai.app/owner-uid").map(String::as_str) == Some(tenant_uid)
                    || tags.get("moleculesai.app/tenant") == Some(&self.tenant);
                if ours {
                    out.push((sec.arn().unwrap_or_default().to_owned(), tags));
                }
            }
        }
        out
    }

    /// Everything of the tenant still somewhere, in both accounts: live instances, security groups
    /// and non-deleted volumes tagged with the tenant, Secrets Manager secrets of the tenant, the
    /// Cloudflare CNAME/TXT at the hostname and a live tunnel of the tenant's name, Route 53 records
    /// at `ws_hostnames`, and the credentials Secret.
    pub async fn tenant_leftovers(&self, tenant_uid: &str, ws_hostnames: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        let tag = Filter::builder().name("tag:moleculesai.app/tenant").values(&self.tenant).build();
        let mut accounts = vec![("main", self.env.ec2_direct().await, self.env.secretsmanager_direct().await)];
        if let (Ok(ec2), Ok(sm)) = (self.env.ec2_canary_direct().await, self.env.secretsmanager_canary_direct().await) {
            accounts.push(("canary", ec2, sm));
        } else {
            out.push("canary account unreachable (cannot check it)".to_owned());
        }
        for (account, ec2, sm) in &accounts {
            for i in self.tenant_instances(ec2).await {
                if i.state().and_then(|s| s.name()).is_none_or(|n| n.as_str() != "terminated") {
                    out.push(format!("{account}: instance {}", i.instance_id().unwrap_or_default()));
                }
            }
            match ec2.describe_security_groups().filters(tag.clone()).send().await {
                Ok(g) => out.extend(
                    g.security_groups()
                        .iter()
                        .map(|g| format!("{account}: security group {}", g.group_id().unwrap_or_default())),
                ),
                Err(e) => out.push(format!("{account}: DescribeSecurityGroups failed: {e:?}")),
            }
            match ec2.describe_volumes().filters(tag.clone()).send().await {
                Ok(v) => out.extend(
                    v.volumes()
                        .iter()
                        .filter(|v| v.state().is_none_or(|s| s.as_str() != "deleted"))
                        .map(|v| format!("{account}: volume {}", v.volume_id().unwrap_or_default())),
                ),
                Err(e) => out.push(format!("{account}: DescribeVolumes failed: {e:?}")),
            }
            for (arn, _) in self.tenant_secrets(sm, tenant_uid).await {
                out.push(format!("{account}: secret {arn}"));
            }
        }
        let host = self.tenant_hostname();
        let owner = format!("_molecule-owner.{host}");
        match self.env.cloudflare_state().await {
            Ok(cf) => {
                let (Some(records), Some(tunnels)) = (cf["records"].as_array(), cf["tunnels"].as_array()) else {
                    out.push(format!("cloudflare state has no records or tunnels list: {cf}"));
                    return out;
                };
                for r in records {
                    let name = r["name"].as_str().unwrap_or_default();
                    if name == host || name == owner {
                        out.push(format!("cloudflare: {} record {name}", r["type"].as_str().unwrap_or_default()));
                    }
                }
                for t in tunnels {
                    if t["name"].as_str() == Some(self.tunnel_name().as_str()) && t["deleted_at"].is_null() {
                        out.push(format!("cloudflare: tunnel {}", t["id"].as_str().unwrap_or_default()));
                    }
                }
            }
            Err(e) => out.push(format!("cloudflare state unreadable: {e}")),
        }
        for h in ws_hostnames {
            out.extend(self.records(h).await.into_iter().map(|(t, _)| format!("route53: {t} record {h}")));
        }
        if self.credentials_secret().await.is_some() {
            out.push(format!("kubernetes secret {}", self.credentials_name()));
        }
        out
    }
}
