//! An in-process, state-based fake of every cloud trait (EC2 instances, security groups and
//! volumes, Route 53, Cloudflare tunnels and records, Secrets Manager, SSM Run Command, IAM roles
//! and instance profiles), for
//! tests of the effectful layer without the e2e world.
//!
//! It models AWS, not moto: a virtual clock ([`FakeCloud::advance`]) drives instance and volume
//! lifecycles, ClientToken idempotency on RunInstances and CreateVolume, listing lag for new
//! resources, purge of terminated instances, DependencyViolation and VolumeInUse, and the error
//! codes and [`ErrorKind`]s of the real implementations in [`super::aws`] and
//! [`super::cloudflare`] (what a caller of the trait sees, after their own tolerances). Faults are
//! injected per operation ([`Fault`]), every call is logged ([`Call`]), and [`FakeCloud::reset`]
//! clears everything. One [`FakeCloud`] hands out `Arc<dyn Trait>` views of one shared state.
//!
//! Not modelled: pagination, throttling by rate (inject it), availability zones, IAM policy
//! evaluation and propagation delay (RunInstances does not check the profile), rule
//! limits, Cloudflare tunnel connections, secret versions, SSM command output.

mod dns;
mod ec2;
mod faults;
mod iam;
mod network;
mod platform;
pub mod queue;
mod seed;
mod state;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cached;
#[cfg(test)]
mod tests_edge;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::commands::Commands;
use super::secrets::Secrets;
use super::{CloudError, CloudResult, Dns, ErrorKind, Instances, Network, Tunnels, Volumes};

pub use faults::{Call, Fault};
pub use iam::{FRole, IamState};
pub use seed::InstanceSeed;
pub use state::SentCommand;
use state::State;

/// AWS API operation names, as the call log and [`Fault::on`] spell them (Cloudflare's are ours).
pub mod ops {
    #![allow(missing_docs)]
    pub const DESCRIBE_INSTANCES: &str = "DescribeInstances";
    pub const RUN_INSTANCES: &str = "RunInstances";
    pub const TERMINATE_INSTANCES: &str = "TerminateInstances";
    pub const STOP_INSTANCES: &str = "StopInstances";
    pub const START_INSTANCES: &str = "StartInstances";
    pub const CREATE_TAGS: &str = "CreateTags";
    pub const DESCRIBE_SECURITY_GROUPS: &str = "DescribeSecurityGroups";
    pub const CREATE_SECURITY_GROUP: &str = "CreateSecurityGroup";
    pub const AUTHORIZE_INGRESS: &str = "AuthorizeSecurityGroupIngress";
    pub const REVOKE_INGRESS: &str = "RevokeSecurityGroupIngress";
    pub const AUTHORIZE_EGRESS: &str = "AuthorizeSecurityGroupEgress";
    pub const REVOKE_EGRESS: &str = "RevokeSecurityGroupEgress";
    pub const DELETE_SECURITY_GROUP: &str = "DeleteSecurityGroup";
    pub const DESCRIBE_VOLUMES: &str = "DescribeVolumes";
    pub const CREATE_VOLUME: &str = "CreateVolume";
    pub const ATTACH_VOLUME: &str = "AttachVolume";
    pub const DETACH_VOLUME: &str = "DetachVolume";
    pub const DELETE_VOLUME: &str = "DeleteVolume";
    pub const LIST_RECORDS: &str = "ListResourceRecordSets";
    pub const CHANGE_RECORDS: &str = "ChangeResourceRecordSets";
    pub const LIST_TUNNELS: &str = "ListTunnels";
    pub const CREATE_TUNNEL: &str = "CreateTunnel";
    pub const GET_TUNNEL_TOKEN: &str = "GetTunnelToken";
    pub const CONFIGURE_TUNNEL: &str = "ConfigureTunnel";
    pub const DELETE_TUNNEL: &str = "DeleteTunnel";
    pub const LIST_DNS_RECORDS: &str = "ListDnsRecords";
    pub const CREATE_DNS_RECORD: &str = "CreateDnsRecord";
    pub const DELETE_DNS_RECORD: &str = "DeleteDnsRecord";
    pub const LIST_SECRETS: &str = "ListSecrets";
    pub const CREATE_SECRET: &str = "CreateSecret";
    pub const PUT_SECRET_VALUE: &str = "PutSecretValue";
    pub const DELETE_SECRET: &str = "DeleteSecret";
    pub const DESCRIBE_SECRET: &str = "DescribeSecret";
    /// Secrets Manager TagResource.
    pub const TAG_SECRET: &str = "TagResource";
    pub const SEND_COMMAND: &str = "SendCommand";
    pub const GET_COMMAND_INVOCATION: &str = "GetCommandInvocation";
    pub const GET_ROLE: &str = "GetRole";
    pub const CREATE_ROLE: &str = "CreateRole";
    pub const GET_ROLE_POLICY: &str = "GetRolePolicy";
    pub const PUT_ROLE_POLICY: &str = "PutRolePolicy";
    pub const LIST_ATTACHED_ROLE_POLICIES: &str = "ListAttachedRolePolicies";
    pub const GET_INSTANCE_PROFILE: &str = "GetInstanceProfile";
    pub const CREATE_INSTANCE_PROFILE: &str = "CreateInstanceProfile";
    pub const ADD_ROLE_TO_INSTANCE_PROFILE: &str = "AddRoleToInstanceProfile";
    pub const DELETE_INSTANCE_PROFILE: &str = "DeleteInstanceProfile";
    pub const DELETE_ROLE: &str = "DeleteRole";
    /// Roles and instance profiles under a path (ListRoles and ListInstanceProfiles).
    pub const LIST_ROLES: &str = "ListRoles";
    pub const LIST_COMMANDS: &str = "ListCommands";
}

/// Timings of the fake's AWS. [`FakeConfig::default`] is AWS-like; [`FakeConfig::instant`] makes
/// every transition immediate and nothing lag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeConfig {
    /// A new instance, group, volume or secret is missing from `list()` for this long (eventual
    /// consistency of Describe* and ListSecrets). Lookups and seeds are not affected.
    pub listing_lag: Duration,
    /// Pending to running. Zero: launch answers running.
    pub boot_time: Duration,
    /// Shutting-down to terminated. Zero: terminated at once.
    pub terminate_time: Duration,
    /// Stopping to stopped.
    pub stop_time: Duration,
    /// Terminated instances vanish from listings (and their token answers
    /// IdempotentInstanceTerminated) this long after they terminated.
    pub purge_after: Duration,
    /// Creating to available for a new volume.
    pub volume_create_time: Duration,
    /// A Run Command finishes this long after it was sent.
    pub command_time: Duration,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            listing_lag: Duration::ZERO,
            boot_time: Duration::from_secs(30),
            terminate_time: Duration::from_mins(1),
            stop_time: Duration::from_secs(30),
            purge_after: Duration::from_hours(1),
            volume_create_time: Duration::ZERO,
            command_time: Duration::from_secs(20),
        }
    }
}

impl FakeConfig {
    /// Everything immediate: launch answers running, terminate leaves terminated, no lag; purge
    /// after an hour still (set it to zero to purge at once).
    pub fn instant() -> Self {
        Self {
            listing_lag: Duration::ZERO,
            boot_time: Duration::ZERO,
            terminate_time: Duration::ZERO,
            stop_time: Duration::ZERO,
            purge_after: Duration::from_hours(1),
            volume_create_time: Duration::ZERO,
            command_time: Duration::ZERO,
        }
    }
}

/// See the module docs. Cheap to clone: every clone and view shares one state.
#[derive(Clone, Debug, Default)]
pub struct FakeCloud {
    state: Arc<Mutex<State>>,
}

impl FakeCloud {
    /// An empty cloud with AWS-like timings ([`FakeConfig::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cloud with `config`.
    pub fn with_config(config: FakeConfig) -> Self {
        let cloud = Self::default();
        cloud.lock().config = config;
        cloud
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the timings from now on.
    pub fn configure(&self, f: impl FnOnce(&mut FakeConfig)) {
        let mut s = self.lock();
        f(&mut s.config);
        s.settle();
    }

    /// The timings.
    pub fn config(&self) -> FakeConfig {
        self.lock().config.clone()
    }

    /// Moves the virtual clock forward and applies every transition that came due.
    pub fn advance(&self, by: Duration) {
        let mut s = self.lock();
        s.now += by;
        s.settle();
    }

    /// Virtual time since the cloud was created (or reset).
    pub fn now(&self) -> Duration {
        self.lock().now
    }

    /// Forgets every resource, token, fault rule and logged call, and sets the clock back to
    /// zero. The timings are kept; IDs keep counting (an old ID never names a new resource).
    pub fn reset(&self) {
        let mut s = self.lock();
        let (config, next_id) = (s.config.clone(), s.next_id);
        *s = State::default();
        s.config = config;
        s.next_id = next_id;
    }

    /// EC2 instances.
    pub fn instances(&self) -> Arc<dyn Instances> {
        Arc::new(ec2::FakeInstances(self.clone()))
    }

    /// Security groups.
    pub fn network(&self) -> Arc<dyn Network> {
        Arc::new(network::FakeNetwork(self.clone()))
    }

    /// EBS volumes.
    pub fn volumes(&self) -> Arc<dyn Volumes> {
        Arc::new(network::FakeVolumes(self.clone()))
    }

    /// One Route 53 hosted zone.
    pub fn dns(&self) -> Arc<dyn Dns> {
        Arc::new(dns::FakeDns(self.clone()))
    }

    /// Cloudflare tunnels and the zone's records.
    pub fn tunnels(&self) -> Arc<dyn Tunnels> {
        Arc::new(dns::FakeTunnels(self.clone()))
    }

    /// Secrets Manager.
    pub fn secrets(&self) -> Arc<dyn Secrets> {
        Arc::new(platform::FakeSecrets(self.clone()))
    }

    /// SSM Run Command.
    pub fn commands(&self) -> Arc<dyn Commands> {
        Arc::new(platform::FakeCommands(self.clone()))
    }

    /// Runs one operation: settles the clock, logs the call, applies a matching fault, runs `f`
    /// on the state, settles again. `owner` is the owner uid the call concerns (from request
    /// tags); when `None` it is read from the tags of the resource named by `target`.
    fn call<T>(
        &self,
        op: &'static str,
        action: &'static str,
        target: &str,
        owner: Option<&str>,
        f: impl FnOnce(&mut State) -> CloudResult<T>,
    ) -> CloudResult<T> {
        let resource = target.split(',').next().unwrap_or_default();
        self.call_about(op, action, target, owner.ok_or(resource), f)
    }

    /// [`FakeCloud::call`] with the owner given (`Ok`) or read from the tags of a resource
    /// (`Err(id)`).
    fn call_about<T>(
        &self,
        op: &'static str,
        action: &'static str,
        target: &str,
        owner: Result<&str, &str>,
        f: impl FnOnce(&mut State) -> CloudResult<T>,
    ) -> CloudResult<T> {
        let mut s = self.lock();
        s.settle();
        let owner = match owner {
            Ok(uid) => Some(uid.to_owned()),
            Err(id) => s.owner_of(id),
        };
        let at = s.now;
        s.log.push(Call { op, target: target.to_owned(), owner: owner.clone(), at });
        let fault = s.take_fault(op, target, owner.as_deref());
        let result = match fault {
            Some(f) if !f.effect => return Err(f.error(action, target)),
            Some(fault) => {
                // The call took effect; its answer was lost on the way back.
                let _ = f(&mut s);
                Err(fault.error(action, target))
            }
            None => f(&mut s),
        };
        s.settle();
        result
    }
}

/// A provider error with the real implementations' classification of `code`.
pub(crate) fn aws_error(action: &'static str, target: &str, code: &str, message: &str) -> CloudError {
    CloudError {
        kind: super::aws::classify(code, 400),
        action,
        target: target.to_owned(),
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

/// A provider error of an explicit kind (Cloudflare's `status/code` errors, SSM's).
pub(crate) fn error(kind: ErrorKind, action: &'static str, target: &str, code: &str, message: &str) -> CloudError {
    CloudError { kind, action, target: target.to_owned(), code: code.to_owned(), message: message.to_owned() }
}
