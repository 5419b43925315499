//! Security groups and EBS volumes.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::state::{FGroup, FVolume, State};
use super::{FakeCloud, aws_error, ops};
use crate::cloud::tags::OWNER_UID;
use crate::cloud::{
    CloudResult, InstanceState, NOT_ATTACHED, Network, Peer, Rule, RuleChange, SecurityGroup, Volume, VolumeRequest,
    Volumes,
};

/// [`Network`] of a [`FakeCloud`].
#[derive(Debug)]
pub(super) struct FakeNetwork(pub FakeCloud);

/// [`Volumes`] of a [`FakeCloud`].
#[derive(Debug)]
pub(super) struct FakeVolumes(pub FakeCloud);

impl State {
    pub(super) fn create_group(&mut self, name: &str, tags: &BTreeMap<String, String>, lag: bool) -> String {
        if let Some(g) = self.groups.values().find(|g| g.name == name) {
            // Real implementation: InvalidGroup.Duplicate, then the group found by name.
            return g.group.id.clone();
        }
        let id = self.new_id("sg");
        let group = SecurityGroup {
            id: id.clone(),
            tags: tags.clone(),
            ingress: vec![],
            egress: vec![Rule::all_with("0.0.0.0/0")],
        };
        let visible_from = if lag { self.now + self.config.listing_lag } else { self.now };
        self.groups.insert(id.clone(), FGroup { group, name: name.to_owned(), visible_from });
        id
    }

    fn change_group(&mut self, group: &str, rules: &[Rule], change: RuleChange) -> CloudResult<()> {
        let action = match change {
            RuleChange::AuthorizeIngress => "authorize ingress on",
            RuleChange::RevokeIngress => "revoke ingress on",
            RuleChange::AuthorizeEgress => "authorize egress on",
            RuleChange::RevokeEgress => "revoke egress on",
        };
        let missing_peer = rules.iter().find_map(|r| match &r.peer {
            Peer::Group(g) if !self.groups.contains_key(g) => Some(g.clone()),
            _ => None,
        });
        if let Some(g) =
            missing_peer.filter(|_| matches!(change, RuleChange::AuthorizeIngress | RuleChange::AuthorizeEgress))
        {
            return Err(aws_error(action, group, "InvalidGroup.NotFound", &format!("peer group {g} does not exist")));
        }
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| aws_error(action, group, "InvalidGroup.NotFound", "no such group"))?;
        let (list, add) = match change {
            RuleChange::AuthorizeIngress => (&mut g.group.ingress, true),
            RuleChange::RevokeIngress => (&mut g.group.ingress, false),
            RuleChange::AuthorizeEgress => (&mut g.group.egress, true),
            RuleChange::RevokeEgress => (&mut g.group.egress, false),
        };
        for r in rules {
            // A duplicate authorize or a missing revoke is tolerated by the real implementation.
            if add && !list.contains(r) {
                list.push(r.clone());
            } else if !add {
                list.retain(|x| x != r);
            }
        }
        list.sort();
        Ok(())
    }

    fn delete_group(&mut self, group: &str) -> CloudResult<()> {
        if !self.groups.contains_key(group) {
            return Ok(());
        }
        let user = self
            .instances
            .values()
            .find(|f| f.inst.state != InstanceState::Terminated && f.groups.iter().any(|g| g == group))
            .map(|f| f.inst.id.clone())
            .or_else(|| {
                let peer = Peer::Group(group.to_owned());
                self.groups
                    .values()
                    .find(|g| g.group.ingress.iter().chain(&g.group.egress).any(|r| r.peer == peer))
                    .map(|g| g.group.id.clone())
            });
        if let Some(user) = user {
            let msg = format!("resource {group} has a dependent object ({user})");
            return Err(aws_error("delete security group", group, "DependencyViolation", &msg));
        }
        self.groups.remove(group);
        Ok(())
    }

    pub(super) fn create_volume(&mut self, req: &VolumeRequest, lag: bool) -> CloudResult<Volume> {
        if let Some((old, id)) = self.volume_tokens.get(&req.client_token).filter(|_| !req.client_token.is_empty()) {
            if old != req {
                let msg = "the client token was already used with different parameters";
                return Err(aws_error("create volume", &req.client_token, "IdempotentParameterMismatch", msg));
            }
            // AWS answers with the volume the token created, even once it is deleted.
            return Ok(self.volumes.get(id).map_or_else(
                || Volume {
                    id: id.clone(),
                    state: "deleted".into(),
                    attached_to: None,
                    tags: req.tags.clone(),
                    size_gb: req.size_gb,
                    zone: req.zone.clone(),
                },
                |v| v.vol.clone(),
            ));
        }
        let v = self.new_volume(&req.tags, lag, (req.size_gb, &req.zone));
        if !req.client_token.is_empty() {
            self.volume_tokens.insert(req.client_token.clone(), (req.clone(), v.id.clone()));
        }
        Ok(v)
    }

    /// A new volume of `(size, zone)`, creating (available at once when the create time is zero).
    pub(super) fn new_volume(&mut self, tags: &BTreeMap<String, String>, lag: bool, at: (u32, &str)) -> Volume {
        let id = self.new_id("vol");
        let vol = Volume {
            id: id.clone(),
            state: "creating".into(),
            attached_to: None,
            tags: tags.clone(),
            size_gb: at.0,
            zone: at.1.to_owned(),
        };
        let visible_from = if lag { self.now + self.config.listing_lag } else { self.now };
        self.volumes.insert(id.clone(), FVolume { vol: vol.clone(), visible_from, created: self.now, root: false });
        self.settle();
        self.volumes.get(&id).map_or(vol, |v| v.vol.clone())
    }

    fn attach_volume(&mut self, volume: &str, instance: &str) -> CloudResult<()> {
        let action = "attach volume";
        let alive = self.instances.get(instance).map(|f| f.inst.state.is_alive());
        let v = self
            .volumes
            .get_mut(volume)
            .ok_or_else(|| aws_error(action, volume, "InvalidVolume.NotFound", "no such volume"))?;
        match alive {
            None => return Err(aws_error(action, volume, "InvalidInstanceID.NotFound", "no such instance")),
            Some(false) => return Err(aws_error(action, volume, "IncorrectInstanceState", "instance is not alive")),
            Some(true) => {}
        }
        if let Some(other) = &v.vol.attached_to {
            return Err(aws_error(action, volume, "VolumeInUse", &format!("{volume} is attached to {other}")));
        }
        if v.vol.state != "available" {
            return Err(aws_error(action, volume, "IncorrectState", &format!("{volume} is {}", v.vol.state)));
        }
        v.vol.attached_to = Some(instance.to_owned());
        v.vol.state = "in-use".into();
        Ok(())
    }

    fn detach_volume(&mut self, volume: &str, instance: &str) -> CloudResult<()> {
        let action = "detach volume";
        let v = self
            .volumes
            .get_mut(volume)
            .ok_or_else(|| aws_error(action, volume, "InvalidVolume.NotFound", "no such volume"))?;
        match v.vol.attached_to.as_deref() {
            // As EC2 answers a detach that names an instance (moto too).
            None => Err(aws_error(action, volume, NOT_ATTACHED, &format!("{volume} is not attached to {instance}"))),
            Some(i) if i != instance => {
                Err(aws_error(action, volume, NOT_ATTACHED, &format!("{volume} is attached to {i}")))
            }
            Some(_) => {
                v.vol.attached_to = None;
                v.vol.state = "available".into();
                Ok(())
            }
        }
    }

    fn delete_volume(&mut self, volume: &str) -> CloudResult<()> {
        match self.volumes.get(volume) {
            None => Ok(()),
            Some(v) if v.vol.attached_to.is_some() => {
                Err(aws_error("delete volume", volume, "VolumeInUse", &format!("{volume} is attached")))
            }
            Some(_) => {
                self.volumes.remove(volume);
                Ok(())
            }
        }
    }
}

#[async_trait]
impl Network for FakeNetwork {
    async fn list(&self, filters: &BTreeMap<String, String>) -> CloudResult<Vec<SecurityGroup>> {
        let owner = filters.get(OWNER_UID).map(String::as_str);
        self.0.call(ops::DESCRIBE_SECURITY_GROUPS, "describe security groups", "", owner, |s| {
            Ok(s.groups
                .values()
                .filter(|g| s.now >= g.visible_from && State::matches(&g.group.tags, filters))
                .map(|g| g.group.clone())
                .collect())
        })
    }

    async fn describe(&self, ids: &[String]) -> CloudResult<Vec<SecurityGroup>> {
        self.0.call(ops::DESCRIBE_SECURITY_GROUPS, "describe security group", &ids.join(","), None, |s| {
            Ok(ids.iter().filter_map(|id| s.groups.get(id)).map(|g| g.group.clone()).collect())
        })
    }

    async fn create(&self, name: &str, _description: &str, tags: &BTreeMap<String, String>) -> CloudResult<String> {
        let owner = tags.get(OWNER_UID).map(String::as_str);
        self.0.call(ops::CREATE_SECURITY_GROUP, "create security group", name, owner, |s| {
            Ok(s.create_group(name, tags, true))
        })
    }

    async fn change_rules(&self, group: &str, rules: &[Rule], change: RuleChange) -> CloudResult<()> {
        if rules.is_empty() {
            return Ok(());
        }
        let op = match change {
            RuleChange::AuthorizeIngress => ops::AUTHORIZE_INGRESS,
            RuleChange::RevokeIngress => ops::REVOKE_INGRESS,
            RuleChange::AuthorizeEgress => ops::AUTHORIZE_EGRESS,
            RuleChange::RevokeEgress => ops::REVOKE_EGRESS,
        };
        self.0.call(op, "change rules of", group, None, |s| s.change_group(group, rules, change))
    }

    async fn delete(&self, group: &str) -> CloudResult<()> {
        self.0.call(ops::DELETE_SECURITY_GROUP, "delete security group", group, None, |s| s.delete_group(group))
    }
}

#[async_trait]
impl Volumes for FakeVolumes {
    async fn list(&self, filters: &BTreeMap<String, String>) -> CloudResult<Vec<Volume>> {
        let owner = filters.get(OWNER_UID).map(String::as_str);
        self.0.call(ops::DESCRIBE_VOLUMES, "describe volumes", "", owner, |s| {
            Ok(s.volumes
                .values()
                .filter(|v| s.now >= v.visible_from && State::matches(&v.vol.tags, filters))
                .map(|v| v.vol.clone())
                .collect())
        })
    }

    async fn describe(&self, ids: &[String]) -> CloudResult<Vec<Volume>> {
        self.0.call(ops::DESCRIBE_VOLUMES, "describe volume", &ids.join(","), None, |s| {
            Ok(ids.iter().filter_map(|id| s.volumes.get(id)).map(|v| v.vol.clone()).collect())
        })
    }

    async fn create(&self, req: &VolumeRequest) -> CloudResult<Volume> {
        let owner = req.tags.get(OWNER_UID).map(String::as_str);
        self.0.call(ops::CREATE_VOLUME, "create volume", &req.client_token, owner, |s| s.create_volume(req, true))
    }

    async fn attach(&self, volume: &str, instance: &str, _device: &str) -> CloudResult<()> {
        self.0.call(ops::ATTACH_VOLUME, "attach volume", volume, None, |s| s.attach_volume(volume, instance))
    }

    async fn detach(&self, volume: &str, instance: &str) -> CloudResult<()> {
        self.0.call(ops::DETACH_VOLUME, "detach volume", volume, None, |s| s.detach_volume(volume, instance))
    }

    async fn delete(&self, volume: &str) -> CloudResult<()> {
        self.0.call(ops::DELETE_VOLUME, "delete volume", volume, None, |s| s.delete_volume(volume))
    }
}
