//! Tenant checks shared by the Tenant and erasure scenarios: the secret values a Tenant produces
//! and where they must never show up, and what a completed erasure must leave (nothing) and
//! write (the receipt). They return findings instead of panicking, so that a test can print all of
//! them at once.

use std::collections::BTreeSet;

use molecule_crds::v1alpha1::Tenant;
use serde_json::Value;

use crate::scenario::Scenario;

/// What a Tenant owned before its erasure: what its receipt must list and what must be gone.
#[derive(Clone, Debug, Default)]
pub struct TenantInventory {
    /// The Tenant's metadata.uid.
    pub tenant_uid: String,
    /// Instance IDs: Workspace instances, the tenant VM, instances launched out of band.
    pub instances: BTreeSet<String>,
    /// Security group IDs (Workspaces' and the tenant's).
    pub security_groups: BTreeSet<String>,
    /// Volume IDs (data volumes).
    pub volumes: BTreeSet<String>,
    /// ARN of the bootstrap bundle.
    pub secret_arn: String,
    /// Cloudflare tunnel ID.
    pub tunnel_id: String,
    /// Route 53 names of the Workspaces.
    pub ws_hostnames: Vec<String>,
}

impl TenantInventory {
    /// The inventory of a provisioned Tenant (its VM, group, bundle and tunnel from its status).
    pub fn of(t: &Tenant) -> Self {
        let st = t.status.clone().unwrap_or_default();
        let mut inv = Self {
            tenant_uid: t.metadata.uid.clone().unwrap_or_default(),
            secret_arn: st.secret_arn.unwrap_or_default(),
            tunnel_id: st.tunnel_id.unwrap_or_default(),
            ..Self::default()
        };
        inv.instances.extend(st.instance_id);
        inv.security_groups.extend(st.security_group_id);
        inv
    }

    /// Adds what a Ready Workspace has (instance, group, data volume, hostname).
    pub fn add_workspace(&mut self, w: &molecule_crds::v1alpha1::Workspace) {
        let st = w.status.clone().unwrap_or_default();
        self.instances.extend(st.instance_id);
        self.security_groups.extend(st.security_group_id);
        self.volumes.extend(st.data_volume_id);
        self.ws_hostnames.extend(st.hostname);
    }
}

/// `text` followed by every `Bytes([104, 105, ...])` in it decoded as UTF-8: the AWS SDK logs a
/// signed request body as a byte array, which a plain-text scan would miss.
pub fn with_decoded_bytes(text: &str) -> String {
    let mut out = text.to_owned();
    for chunk in text.split("Bytes([").skip(1) {
        let Some((list, _)) = chunk.split_once("])") else { continue };
        let bytes: Option<Vec<u8>> = list.split(',').map(|b| b.trim().parse::<u8>().ok()).collect();
        if let Some(b) = bytes {
            out.push('\n');
            out.push_str(&String::from_utf8_lossy(&b));
        }
    }
    out
}

impl Scenario {
    /// Launches an instance straight into moto with this scenario's operator, env and tenant tags,
    /// owned by the Workspace uid `ghost_uid` (`<ns>/ghost`), which does not exist: what a crashed
    /// operator or a hand launch leaves behind. Returns its ID.
    ///
    /// # Panics
    ///
    /// When moto refuses the launch: the test world is broken.
    pub async fn launch_ghost(&self, ghost_uid: &str, instance_type: aws_sdk_ec2::types::InstanceType) -> String {
        use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
        for (k, v) in [
            ("moleculesai.app/managed-by", self.operator_id.clone()),
            ("moleculesai.app/env", self.env.var("MOLECULE_ENV").to_owned()),
            ("moleculesai.app/tenant", self.tenant.clone()),
            ("moleculesai.app/owner-kind", "Workspace".to_owned()),
            ("moleculesai.app/owner-uid", ghost_uid.to_owned()),
            ("moleculesai.app/owner", format!("{}/ghost", self.ns)),
            ("Role", "workspace".to_owned()),
            ("Name", format!("ws-{}-{}-ghost", self.tenant, self.ns)),
        ] {
            spec = spec.tags(Tag::builder().key(k).value(v).build());
        }
        let out = self
            .env
            .ec2_direct()
            .await
            .run_instances()
            .image_id(self.env.var("EC2_AMI"))
            .instance_type(instance_type)
            .subnet_id(self.env.var("EC2_SUBNET_ID"))
            .min_count(1)
            .max_count(1)
            .tag_specifications(spec.build())
            .send()
            .await;
        #[allow(clippy::expect_used)] // test-world helper: a failed launch is a broken world
        let out = out.expect("out-of-band RunInstances");
        out.instances().first().and_then(|i| i.instance_id()).unwrap_or_default().to_owned()
    }

    /// The secret values of the Tenant, labelled: the three generated credentials (from the
    /// credentials Secret), every secret field of the bootstrap bundle (read back from Secrets
    /// Manager) and the tunnel token (from the Cloudflare fake). Errors name what could not be
    /// read or is malformed.
    pub async fn tenant_secret_values(&self, t: &Tenant) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        let creds = self.credentials().await;
        for key in ["admin-token", "provision-shared-secret", "display-signing-secret"] {
            let v = creds.get(key).ok_or_else(|| format!("credentials Secret has no {key}: {:?}", creds.keys()))?;
            out.push((format!("credentials {key}"), v.clone()));
        }
        let st = t.status.clone().unwrap_or_default();
        let arn = st.secret_arn.ok_or("status.secretArn is not set")?;
        let sm = if st.account.as_deref() == Some("canary") {
            self.env.secretsmanager_canary_direct().await.map_err(|e| e.to_string())?
        } else {
            self.env.secretsmanager_direct().await
        };
        let got = sm.get_secret_value().secret_id(&arn).send().await.map_err(|e| format!("GetSecretValue: {e:?}"))?;
        let bundle: Value = serde_json::from_str(got.secret_string().unwrap_or_default())
            .map_err(|e| format!("bundle is not JSON: {e}"))?;
        for key in ["adminToken", "provisionSharedSecret", "displaySigningSecret", "tunnelToken", "ghcrPullToken"] {
            if let Some(v) = bundle[key].as_str().filter(|v| v.len() >= 16) {
                out.push((format!("bundle {key}"), v.to_owned()));
            }
        }
        let tunnel = st.tunnel_id.ok_or("status.tunnelId is not set")?;
        let account = self.env.var("CLOUDFLARE_ACCOUNT_ID");
        let (code, body) = self
            .env
            .cloudflare("GET", &format!("/accounts/{account}/cfd_tunnel/{tunnel}/token"), None)
            .await
            .map_err(|e| e.to_string())?;
        let token = body["result"].as_str().filter(|_| code == 200).ok_or(format!("tunnel token: {code} {body}"))?;
        out.push(("cloudflare tunnel token".to_owned(), token.to_owned()));
        // The operator's own tokens (from its environment, never argv).
        out.push(("Cloudflare API token".to_owned(), self.env.var("CLOUDFLARE_API_TOKEN").to_owned()));
        Ok(out)
    }

    /// Settings that make the operator's log a fair place to look for secrets: everything at
    /// `RUST_LOG=trace` (the SDK and HTTP crates included, which the operator pins to warn), the
    /// SDK told to log every request body it signs (`LOG_SIGNABLE_BODY`), and a GHCR pull token
    /// of the scenario's own, which reaches the bundle and must reach nothing else.
    pub fn leak_scan_settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("RUST_LOG", "trace".to_owned()),
            ("LOG_SIGNABLE_BODY", "true".to_owned()),
            ("GHCR_PULL_TOKEN", format!("ghp_e2e_{}", self.id.replace('-', "_"))),
        ]
    }

    /// Where any of `values` shows up: the Tenant object (status included), every Event of the
    /// cluster, the whole operator log (run it with [`Scenario::leak_scan_settings`]), its command
    /// line and the user-data of every instance tagged with the tenant (both
    /// accounts). Empty when nothing leaked.
    pub async fn secret_leaks(&self, values: &[(String, String)]) -> Vec<String> {
        let mut places: Vec<(String, String)> = vec![
            ("the Tenant object".to_owned(), self.tenant_json().await.map(|v| v.to_string()).unwrap_or_default()),
            ("the cluster's Events".to_owned(), self.all_events_text().await),
            ("the operator log".to_owned(), with_decoded_bytes(&self.log())),
            ("the operator's command line".to_owned(), self.cmdline()),
        ];
        let mut clients = vec![self.env.ec2_direct().await];
        if let Ok(c) = self.env.ec2_canary_direct().await {
            clients.push(c);
        }
        for ec2 in &clients {
            for i in self.tenant_instances(ec2).await {
                let id = i.instance_id().unwrap_or_default().to_owned();
                places.push((format!("user-data of {id}"), self.user_data(ec2, &id).await));
            }
        }
        let mut out = Vec::new();
        for (label, value) in values {
            for (place, text) in &places {
                if text.contains(value.as_str()) {
                    out.push(format!("{label} appears in {place}"));
                }
            }
        }
        out
    }

    /// Starts the operator with [`Scenario::leak_scan_settings`] plus `extra`.
    ///
    /// # Errors
    ///
    /// When the process cannot start.
    pub fn start_operator_for_leak_scan(&mut self, extra: &[(&str, &str)]) -> Result<(), crate::harness::HarnessError> {
        let settings = self.leak_scan_settings();
        let mut vars: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        vars.extend_from_slice(extra);
        self.start_operator(&vars)
    }

    /// The running operator's argv as the kernel shows it to every user (`/proc/<pid>/cmdline`).
    pub fn cmdline(&self) -> String {
        let pid = self.operator.as_ref().map_or(0, crate::harness::OperatorProcess::pid);
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default()
    }

    /// What is wrong after the erasure of a Tenant that owned `inv`: anything left in AWS (both
    /// accounts), Cloudflare, Route 53 or Kubernetes, and whatever the receipt lacks (the
    /// ConfigMap, its labels and keys, completedAt, an entry with confirmedGoneAt for every
    /// resource of `inv`). Empty when the erasure is complete.
    pub async fn erasure_problems(&self, inv: &TenantInventory) -> Vec<String> {
        let mut out: Vec<String> = self
            .tenant_leftovers(&inv.tenant_uid, &inv.ws_hostnames)
            .await
            .into_iter()
            .map(|l| format!("left: {l}"))
            .collect();
        let Some(cm) = self.receipt_configmap(&inv.tenant_uid).await else {
            out.push(format!("no receipt ConfigMap {}", self.receipt_name(&inv.tenant_uid)));
            return out;
        };
        let labels = cm.metadata.labels.clone().unwrap_or_default();
        if labels.get("moleculesai.app/erasure-receipt").map(String::as_str) != Some("true") {
            out.push(format!("receipt label moleculesai.app/erasure-receipt missing: {labels:?}"));
        }
        if labels.get("moleculesai.app/tenant") != Some(&self.tenant) {
            out.push(format!("receipt label moleculesai.app/tenant missing: {labels:?}"));
        }
        let data = cm.data.clone().unwrap_or_default();
        for key in ["tenant", "tenantUid", "startedAt", "completedAt", "receipt.json"] {
            if data.get(key).is_none_or(String::is_empty) {
                out.push(format!("receipt ConfigMap has no data key {key}"));
            }
        }
        let Some(r) = data.get("receipt.json").and_then(|t| serde_json::from_str::<Value>(t).ok()) else {
            out.push("receipt.json does not parse".to_owned());
            return out;
        };
        if r["tenant"].as_str() != Some(self.tenant.as_str()) {
            out.push(format!("receipt tenant is {}", r["tenant"]));
        }
        if r["tenantUid"].as_str() != Some(inv.tenant_uid.as_str()) {
            out.push(format!("receipt tenantUid is {}", r["tenantUid"]));
        }
        if r["startedAt"].as_str().is_none_or(str::is_empty) || r["completedAt"].as_str().is_none_or(str::is_empty) {
            out.push(format!("receipt startedAt/completedAt: {} / {}", r["startedAt"], r["completedAt"]));
        }
        let resources = r["resources"].as_array().cloned().unwrap_or_default();
        for e in &resources {
            if e["confirmedGoneAt"].as_str().is_none_or(str::is_empty) {
                out.push(format!("receipt entry without confirmedGoneAt: {e}"));
            }
        }
        let want = inv
            .instances
            .iter()
            .map(|i| ("Instance", i.as_str()))
            .chain(inv.security_groups.iter().map(|g| ("SecurityGroup", g.as_str())))
            .chain(inv.volumes.iter().map(|v| ("Volume", v.as_str())))
            .chain([("Secret", inv.secret_arn.as_str()), ("Tunnel", inv.tunnel_id.as_str())]);
        for (kind, id) in want {
            let found = resources.iter().any(|e| e["kind"].as_str() == Some(kind) && e["id"].as_str() == Some(id));
            if !found {
                out.push(format!("receipt lacks {kind} {id}"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn byte_arrays_in_a_log_are_scanned_as_text() {
        let log = "sign request=SignableRequest { body: Bytes([115, 51, 99, 114, 51, 116]) } and Bytes([1, 999])";
        let text = super::with_decoded_bytes(log);
        assert!(text.starts_with(log) && text.contains("\ns3cr3t"), "{text}");
        assert_eq!(text.lines().count(), 2, "a list that is not bytes is skipped: {text}");
    }
}
