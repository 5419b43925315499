//! The Workspace as the launch protocol's [`Subject`]: its machine, user-data and status.

use async_trait::async_trait;
use kube::Resource;
use molecule_crds::resolve::Resolved;
use molecule_crds::v1alpha1::{LaunchRecord, Market, Workspace, WorkspaceStatus};

use super::scope::apply_status;
use crate::bootstrap::{self, Display, WorkspaceBoot};
use crate::cloud::tags::Owner;
use crate::cloud::{LaunchRequest, Volume};
use crate::context::Context;
use crate::reconcile::launch::Subject;
use crate::reconcile::{Error, publish};

/// What a Workspace launches.
pub struct Machine<'a> {
    /// Context.
    pub ctx: &'a Context,
    /// The Workspace.
    pub ws: &'a Workspace,
    /// Its owner tags.
    pub owner: &'a Owner,
    /// What it resolved to.
    pub resolved: &'a Resolved,
    /// Hash of `resolved`.
    pub spec_hash: &'a str,
    /// Its security group.
    pub sg_id: &'a str,
    /// Its data volume.
    pub data_volume: Option<&'a Volume>,
    /// ARN of the Workspace's own secret (never the tenant's bundle).
    pub secret_arn: &'a str,
    /// The tenant platform's hostname, once the Tenant has one (not a secret).
    pub tenant_hostname: Option<&'a str>,
    /// The tenant's Workspace instance profile (status.identity.workspace of the Tenant).
    pub instance_profile: Option<&'a str>,
    /// Its hostname.
    pub hostname: &'a str,
}

#[async_trait]
impl Subject for Machine<'_> {
    type Status = WorkspaceStatus;

    fn owner(&self) -> &Owner {
        self.owner
    }

    fn noun(&self) -> &'static str {
        "instance"
    }

    fn spec_hash(&self) -> &str {
        self.spec_hash
    }

    fn request(&self) -> Result<LaunchRequest, Error> {
        let c = &self.resolved.compute;
        let display = c.display_mode.is_enabled().then(|| {
            let d = self.ws.spec.compute.display.clone().unwrap_or_default();
            Display { mode: c.display_mode, protocol: d.protocol, width: d.width, height: d.height }
        });
        let user_data = bootstrap::workspace(&WorkspaceBoot {
            hostname: self.hostname,
            region: &self.ctx.main.region,
            secret_arn: self.secret_arn,
            tenant_hostname: self.tenant_hostname,
            runtime: &self.ws.spec.runtime,
            env: &self.ws.spec.env,
            data_volume_id: self.data_volume.map(|v| v.id.as_str()),
            display,
            gpu: c.gpu.is_some(),
        })?;
        Ok(LaunchRequest {
            client_token: String::new(),
            instance_type: c.instance_type.clone(),
            image_id: c.ami_id.clone(),
            subnet_id: self.ctx.main.subnet_id.clone(),
            security_group_ids: vec![self.sg_id.to_owned()],
            instance_profile: self.instance_profile.map(str::to_owned),
            root_gb: c.root_gb,
            iops: c.iops,
            throughput_mi_bps: c.throughput_mi_bps,
            spot: c.market == Market::Spot,
            user_data,
            tags: std::collections::BTreeMap::new(),
        })
    }

    fn data_volume(&self) -> Option<&Volume> {
        self.data_volume
    }

    fn record<'s>(&self, st: &'s mut WorkspaceStatus) -> &'s mut Option<LaunchRecord> {
        &mut st.launch
    }

    fn instance_id<'s>(&self, st: &'s mut WorkspaceStatus) -> &'s mut Option<String> {
        &mut st.instance_id
    }

    async fn persist(&self, st: &WorkspaceStatus) -> Result<(), Error> {
        apply_status(self.ctx, self.ws, st).await
    }

    async fn event(&self, warning: bool, reason: &'static str, note: String) {
        publish(self.ctx, &self.ws.object_ref(&()), warning, reason, note).await;
    }
}
