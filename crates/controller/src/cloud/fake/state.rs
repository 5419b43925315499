//! The fake's state and its clock-driven transitions.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::Timestamp;

use super::FakeConfig;
use super::faults::{Call, Fault};
use crate::cloud::commands::CommandState;
use crate::cloud::secrets::SecretRef;
use crate::cloud::tags::OWNER_UID;
use crate::cloud::{CfRecord, Instance, InstanceState, LaunchRequest, SecurityGroup, Tunnel, Volume, VolumeRequest};

/// An instance and what EC2 knows about it beyond [`Instance`].
#[derive(Clone, Debug)]
pub(super) struct FInstance {
    pub inst: Instance,
    pub groups: Vec<String>,
    /// Listed from this virtual time on.
    pub visible_from: Duration,
    /// When the current state was entered.
    pub since: Duration,
}

#[derive(Clone, Debug)]
pub(super) struct FGroup {
    pub group: SecurityGroup,
    pub name: String,
    pub visible_from: Duration,
}

#[derive(Clone, Debug)]
pub(super) struct FVolume {
    pub vol: Volume,
    pub visible_from: Duration,
    pub created: Duration,
    /// Deleted with its instance.
    pub root: bool,
}

#[derive(Clone, Debug)]
pub(super) struct FTunnel {
    pub tunnel: Tunnel,
    pub token: String,
    /// (hostname, service) of the last configuration.
    pub ingress: Option<(String, String)>,
}

#[derive(Clone, Debug)]
pub(super) struct FSecret {
    pub secret: SecretRef,
    pub value: String,
    /// Listed from this virtual time on (listing lag).
    pub visible_from: Duration,
}

/// A Run Command invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentCommand {
    /// Command ID.
    pub id: String,
    /// Instance it runs on.
    pub instance: String,
    /// Comment.
    pub comment: String,
    /// Shell commands.
    pub commands: Vec<String>,
    /// Where it stands.
    pub state: CommandState,
    /// Virtual time it was sent.
    pub sent: Duration,
    /// What it ends as ([`CommandState::Succeeded`] unless set).
    pub outcome: CommandState,
}

/// Wall-clock origin of the virtual clock (launch times are `origin + now`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Origin(pub Timestamp);

impl Default for Origin {
    fn default() -> Self {
        Self(Timestamp::now())
    }
}

/// Everything the fake cloud holds.
#[derive(Debug, Default)]
pub(super) struct State {
    pub config: FakeConfig,
    pub now: Duration,
    pub origin: Origin,
    pub next_id: u64,
    pub instances: BTreeMap<String, FInstance>,
    pub groups: BTreeMap<String, FGroup>,
    pub volumes: BTreeMap<String, FVolume>,
    /// RunInstances ClientToken: the request (its user-data as a digest) and the instance it made.
    pub launch_tokens: HashMap<String, (LaunchRequest, String)>,
    /// CreateVolume ClientToken.
    pub volume_tokens: HashMap<String, (VolumeRequest, String)>,
    /// Route 53: (name, type) to (TTL, values as stored, TXT quoted).
    pub records: BTreeMap<(String, String), (i64, Vec<String>)>,
    pub tunnels: BTreeMap<String, FTunnel>,
    pub cf_records: BTreeMap<String, CfRecord>,
    pub secrets: BTreeMap<String, FSecret>,
    /// IAM roles and instance profiles.
    pub iam: super::iam::IamState,
    /// Outcome of commands sent from now on, by instance (default success).
    pub command_outcomes: HashMap<String, CommandState>,
    pub commands: Vec<SentCommand>,
    pub faults: Vec<Fault>,
    pub log: Vec<Call>,
}

impl State {
    /// A fresh ID: `prefix-` and 17 hex digits, unique for the fake's lifetime.
    pub fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{:017x}", 0x0f00_0000_0000_0000_u64 + self.next_id)
    }

    /// A fresh UUID-shaped ID (tunnels, commands).
    pub fn new_uuid(&mut self) -> String {
        self.next_id += 1;
        format!("{:08x}-fa4e-4000-8000-{:012x}", self.next_id, self.next_id)
    }

    /// The wall-clock time of the virtual now, RFC 3339.
    pub fn wall(&self) -> String {
        let at = self.origin.0 + jiff::SignedDuration::try_from(self.now).unwrap_or(jiff::SignedDuration::ZERO);
        at.to_string()
    }

    /// The owner uid in the tags of resource `id` (instance, group, volume, secret ARN).
    pub fn owner_of(&self, id: &str) -> Option<String> {
        let tags = self
            .instances
            .get(id)
            .map(|i| &i.inst.tags)
            .or_else(|| self.groups.get(id).map(|g| &g.group.tags))
            .or_else(|| self.volumes.get(id).map(|v| &v.vol.tags))
            .or_else(|| self.secrets.get(id).map(|s| &s.secret.tags))?;
        tags.get(OWNER_UID).cloned()
    }

    /// Puts instance `id` in `state` now.
    pub fn set_state(&mut self, id: &str, state: InstanceState) {
        let now = self.now;
        if let Some(f) = self.instances.get_mut(id) {
            f.inst.state = state;
            f.since = now;
        }
    }

    /// Applies every transition that came due by now.
    pub fn settle(&mut self) {
        let (now, c) = (self.now, self.config.clone());
        let mut ended = Vec::new();
        for (id, f) in &mut self.instances {
            loop {
                let (after, next) = match f.inst.state {
                    InstanceState::Pending => (c.boot_time, InstanceState::Running),
                    InstanceState::Stopping => (c.stop_time, InstanceState::Stopped),
                    InstanceState::ShuttingDown => (c.terminate_time, InstanceState::Terminated),
                    _ => break,
                };
                if now < f.since + after {
                    break;
                }
                f.since += after;
                f.inst.state = next;
                if next == InstanceState::Terminated {
                    ended.push(id.clone());
                }
            }
        }
        for id in ended {
            self.release(&id);
        }
        self.instances.retain(|_, f| f.inst.state != InstanceState::Terminated || now < f.since + c.purge_after);
        for v in self.volumes.values_mut().filter(|v| v.vol.state == "creating") {
            if now >= v.created + c.volume_create_time {
                v.vol.state = "available".into();
            }
        }
        for cmd in self.commands.iter_mut().filter(|x| x.state == CommandState::Running) {
            if now >= cmd.sent + c.command_time {
                cmd.state = cmd.outcome.clone();
            }
        }
    }

    /// What a terminated instance lets go of: its root volume is deleted, data volumes detach.
    pub fn release(&mut self, instance: &str) {
        self.volumes.retain(|_, v| !(v.root && v.vol.attached_to.as_deref() == Some(instance)));
        for v in self.volumes.values_mut().filter(|v| v.vol.attached_to.as_deref() == Some(instance)) {
            v.vol.attached_to = None;
            v.vol.state = "available".into();
        }
    }

    /// Whether `tags` carries every pair of `filters`.
    pub fn matches(tags: &BTreeMap<String, String>, filters: &BTreeMap<String, String>) -> bool {
        filters.iter().all(|(k, v)| tags.get(k) == Some(v))
    }
}
