//! What tests arrange and inspect behind the traits' back: out-of-band resources, state changes
//! made by somebody else, lookups by ID. None of these is logged as a call; seeds are listed at
//! once (no listing lag).

use std::collections::BTreeMap;

use super::FakeCloud;
use super::state::{FInstance, SentCommand};
use crate::cloud::commands::CommandState;
use crate::cloud::secrets::SecretRef;
use crate::cloud::{CfRecord, CloudResult, Instance, InstanceState, RecordSet, SecurityGroup, Tunnel, Volume};

/// An instance launched outside the operator (a ghost, a duplicate, somebody else's).
#[derive(Clone, Debug, Default)]
pub struct InstanceSeed {
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// State (running when `None`).
    pub state: Option<InstanceState>,
    /// Security groups it uses (they then cannot be deleted while it lives).
    pub security_groups: Vec<String>,
    /// AMI.
    pub image_id: String,
    /// Spot.
    pub spot: bool,
}

impl FakeCloud {
    /// Plants an instance; returns it.
    pub fn seed_instance(&self, seed: InstanceSeed) -> Instance {
        let mut s = self.lock();
        let id = s.new_id("i");
        let inst = Instance {
            id: id.clone(),
            state: seed.state.unwrap_or(InstanceState::Running),
            image_id: seed.image_id,
            private_ip: Some(format!("10.9.{}.{}", (s.next_id / 250) % 250, s.next_id % 250 + 4)),
            launch_time: Some(s.wall()),
            tags: seed.tags,
            spot: seed.spot,
        };
        let now = s.now;
        let f = FInstance { inst: inst.clone(), groups: seed.security_groups, visible_from: now, since: now };
        s.instances.insert(id, f);
        inst
    }

    /// Plants a security group (found by name by a later create); returns its ID.
    pub fn seed_group(&self, name: &str, tags: &BTreeMap<String, String>) -> String {
        self.lock().create_group(name, tags, false)
    }

    /// Plants an available data volume, attached to `attached_to` when given; returns it.
    pub fn seed_volume(&self, tags: &BTreeMap<String, String>, attached_to: Option<&str>) -> Volume {
        let mut s = self.lock();
        let mut v = s.new_volume(tags, false, (10, "eu-west-1a"));
        if let Some(f) = s.volumes.get_mut(&v.id) {
            f.vol.state = if attached_to.is_some() { "in-use" } else { "available" }.into();
            f.vol.attached_to = attached_to.map(str::to_owned);
            v = f.vol.clone();
        }
        v
    }

    /// Plants a Route 53 record set at `name` (TTL 60); an empty `values` plants none.
    pub fn seed_record(&self, name: &str, record_type: &str, values: &[&str]) {
        if values.is_empty() {
            return;
        }
        let v = values.iter().map(|x| (*x).to_owned()).collect();
        self.lock().records.insert((super::dns::norm(name), record_type.to_owned()), (super::dns::TTL, v));
    }

    /// Plants a Cloudflare tunnel; returns it.
    pub fn seed_tunnel(&self, name: &str) -> CloudResult<Tunnel> {
        self.lock().create_tunnel(name)
    }

    /// Plants a Cloudflare record; returns it.
    pub fn seed_cf_record(&self, record_type: &str, name: &str, content: &str) -> CloudResult<CfRecord> {
        self.lock().create_cf_record(record_type, name, content)
    }

    /// Plants a secret; returns it.
    pub fn seed_secret(&self, name: &str, value: &str, tags: &BTreeMap<String, String>) -> CloudResult<SecretRef> {
        self.lock().create_secret(name, value, tags, false)
    }

    /// Changes an instance's state behind the operator's back (terminated by a user, stopped by a
    /// spot interruption); a terminated instance releases its volumes. Timed transitions go on
    /// from there. False when there is no such instance.
    pub fn set_instance_state(&self, id: &str, state: InstanceState) -> bool {
        let mut s = self.lock();
        if !s.instances.contains_key(id) {
            return false;
        }
        s.set_state(id, state);
        if state == InstanceState::Terminated {
            s.release(id);
        }
        s.settle();
        true
    }

    /// What the next commands sent to `instance` end as (success unless set).
    pub fn set_command_outcome(&self, instance: &str, outcome: CommandState) {
        self.lock().command_outcomes.insert(instance.to_owned(), outcome);
    }

    /// An instance by ID, as EC2 has it now (listing lag ignored; `None` once purged).
    pub fn instance(&self, id: &str) -> Option<Instance> {
        self.lock().instances.get(id).map(|f| f.inst.clone())
    }

    /// Every instance (listing lag ignored), terminated ones included until purged.
    pub fn all_instances(&self) -> Vec<Instance> {
        self.lock().instances.values().map(|f| f.inst.clone()).collect()
    }

    /// A security group by ID.
    pub fn group(&self, id: &str) -> Option<SecurityGroup> {
        self.lock().groups.get(id).map(|g| g.group.clone())
    }

    /// Every security group.
    pub fn all_groups(&self) -> Vec<SecurityGroup> {
        self.lock().groups.values().map(|g| g.group.clone()).collect()
    }

    /// A volume by ID (root volumes included).
    pub fn volume(&self, id: &str) -> Option<Volume> {
        self.lock().volumes.get(id).map(|v| v.vol.clone())
    }

    /// Every volume.
    pub fn all_volumes(&self) -> Vec<Volume> {
        self.lock().volumes.values().map(|v| v.vol.clone()).collect()
    }

    /// What the zone holds at `name` for `record_type` and TXT.
    pub fn record(&self, name: &str, record_type: &str) -> RecordSet {
        self.lock().record_set(name, record_type)
    }

    /// Every live tunnel with its configured (hostname, service).
    pub fn all_tunnels(&self) -> Vec<(Tunnel, Option<(String, String)>)> {
        self.lock().tunnels.values().map(|t| (t.tunnel.clone(), t.ingress.clone())).collect()
    }

    /// Every Cloudflare record.
    pub fn all_cf_records(&self) -> Vec<CfRecord> {
        self.lock().cf_records.values().cloned().collect()
    }

    /// A secret by ARN or name.
    pub fn secret(&self, id: &str) -> Option<SecretRef> {
        let s = self.lock();
        s.secret_arn(id).and_then(|arn| s.secrets.get(&arn)).map(|x| x.secret.clone())
    }

    /// A secret's current value (tests only: the real implementation never returns one).
    pub fn secret_value(&self, id: &str) -> Option<String> {
        let s = self.lock();
        s.secret_arn(id).and_then(|arn| s.secrets.get(&arn)).map(|x| x.value.clone())
    }

    /// Every Run Command sent, oldest first.
    pub fn sent_commands(&self) -> Vec<SentCommand> {
        self.lock().commands.clone()
    }
}
