//! EC2 instances: RunInstances with ClientToken, lifecycle, CreateTags.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::state::{FInstance, FVolume, State};
use super::{FakeCloud, aws_error, ops};
use crate::cloud::tags::OWNER_UID;
use crate::cloud::{CloudResult, Instance, InstanceState, Instances, LaunchRequest, Volume};

/// [`Instances`] of a [`FakeCloud`].
#[derive(Debug)]
pub(super) struct FakeInstances(pub FakeCloud);

/// The NotFound code EC2 answers for an unknown ID of this shape.
pub(super) fn not_found_code(id: &str) -> &'static str {
    if id.starts_with("sg-") {
        "InvalidGroup.NotFound"
    } else if id.starts_with("vol-") {
        "InvalidVolume.NotFound"
    } else {
        "InvalidInstanceID.NotFound"
    }
}

/// What a client token remembers of its request: all of it, the user-data as a digest (about
/// 15 KB a Workspace, most of the fake's memory at 10,000).
fn token_view(req: &LaunchRequest) -> LaunchRequest {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    req.user_data.hash(&mut h);
    LaunchRequest { user_data: format!("{:016x}/{}", h.finish(), req.user_data.len()), ..req.clone() }
}

impl State {
    fn run_instance(&mut self, req: &LaunchRequest) -> CloudResult<Instance> {
        let action = "launch instance";
        if let Some((old, id)) = self.launch_tokens.get(&req.client_token).filter(|_| !req.client_token.is_empty()) {
            if *old != token_view(req) {
                let msg = "the client token was already used with different parameters";
                return Err(aws_error(action, &req.client_token, "IdempotentParameterMismatch", msg));
            }
            return match self.instances.get(id) {
                Some(f) => Ok(f.inst.clone()),
                None => Err(aws_error(
                    action,
                    &req.client_token,
                    "IdempotentInstanceTerminated",
                    "the instance of this client token was terminated",
                )),
            };
        }
        if let Some(g) = req.security_group_ids.iter().find(|g| !self.groups.contains_key(*g)) {
            return Err(aws_error(
                action,
                &req.client_token,
                "InvalidGroup.NotFound",
                &format!("group {g} does not exist"),
            ));
        }
        let id = self.new_id("i");
        let root = self.new_id("vol");
        let ip = format!("10.0.{}.{}", (self.next_id / 250) % 250, self.next_id % 250 + 4);
        let inst = Instance {
            id: id.clone(),
            state: InstanceState::Pending,
            image_id: req.image_id.clone(),
            private_ip: Some(ip),
            launch_time: Some(self.wall()),
            tags: req.tags.clone(),
            spot: req.spot,
        };
        let (now, visible_from) = (self.now, self.now + self.config.listing_lag);
        let vol = Volume {
            id: root.clone(),
            state: "in-use".into(),
            attached_to: Some(id.clone()),
            tags: req.tags.clone(),
            size_gb: req.root_gb,
            zone: String::new(),
        };
        self.volumes.insert(root, FVolume { vol, visible_from, created: now, root: true });
        let groups = req.security_group_ids.clone();
        self.instances.insert(id.clone(), FInstance { inst, groups, visible_from, since: now });
        if !req.client_token.is_empty() {
            self.launch_tokens.insert(req.client_token.clone(), (token_view(req), id.clone()));
        }
        self.settle();
        Ok(self.instances.get(&id).map_or_else(|| unreachable_instance(&id), |f| f.inst.clone()))
    }

    fn stop_instance(&mut self, id: &str) -> CloudResult<()> {
        let action = "stop instance";
        let f = self.instances.get(id).ok_or_else(|| aws_error(action, id, not_found_code(id), "no such instance"))?;
        if f.inst.spot {
            return Err(aws_error(action, id, "UnsupportedOperation", "a one-time spot instance cannot be stopped"));
        }
        match f.inst.state {
            InstanceState::Running => self.set_state(id, InstanceState::Stopping),
            InstanceState::Stopping | InstanceState::Stopped => {}
            s => return Err(aws_error(action, id, "IncorrectInstanceState", &format!("the instance is {s}"))),
        }
        Ok(())
    }

    fn start_instance(&mut self, id: &str) -> CloudResult<()> {
        let action = "start instance";
        let f = self.instances.get(id).ok_or_else(|| aws_error(action, id, not_found_code(id), "no such instance"))?;
        match f.inst.state {
            InstanceState::Stopped => self.set_state(id, InstanceState::Pending),
            InstanceState::Pending | InstanceState::Running => {}
            s => return Err(aws_error(action, id, "IncorrectInstanceState", &format!("the instance is {s}"))),
        }
        Ok(())
    }

    fn create_tags(&mut self, ids: &[String], tags: &BTreeMap<String, String>) -> CloudResult<()> {
        let known = |s: &Self, id: &String| {
            s.instances.contains_key(id) || s.groups.contains_key(id) || s.volumes.contains_key(id)
        };
        if let Some(id) = ids.iter().find(|id| !known(self, id)) {
            return Err(aws_error(
                "tag resources",
                &ids.join(","),
                not_found_code(id),
                &format!("{id} does not exist"),
            ));
        }
        for id in ids {
            let target = if let Some(f) = self.instances.get_mut(id) {
                &mut f.inst.tags
            } else if let Some(g) = self.groups.get_mut(id) {
                &mut g.group.tags
            } else if let Some(v) = self.volumes.get_mut(id) {
                &mut v.vol.tags
            } else {
                continue;
            };
            target.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(())
    }
}

/// Never reached (the instance was inserted under the lock a moment ago); no panic in library code.
fn unreachable_instance(id: &str) -> Instance {
    Instance {
        id: id.to_owned(),
        state: InstanceState::Pending,
        image_id: String::new(),
        private_ip: None,
        launch_time: None,
        tags: BTreeMap::new(),
        spot: false,
    }
}

#[async_trait]
impl Instances for FakeInstances {
    async fn list(&self, filters: &BTreeMap<String, String>) -> CloudResult<Vec<Instance>> {
        let owner = filters.get(OWNER_UID).map(String::as_str);
        self.0.call(ops::DESCRIBE_INSTANCES, "describe instances", "", owner, |s| {
            Ok(s.instances
                .values()
                .filter(|f| s.now >= f.visible_from && State::matches(&f.inst.tags, filters))
                .map(|f| f.inst.clone())
                .collect())
        })
    }

    async fn describe(&self, ids: &[String]) -> CloudResult<Vec<Instance>> {
        // By ID: no listing lag, any tags; an unknown (or purged) ID is absent.
        self.0.call(ops::DESCRIBE_INSTANCES, "describe instance", &ids.join(","), None, |s| {
            Ok(ids.iter().filter_map(|id| s.instances.get(id)).map(|f| f.inst.clone()).collect())
        })
    }

    async fn launch(&self, req: &LaunchRequest) -> CloudResult<Instance> {
        let owner = req.tags.get(OWNER_UID).map(String::as_str);
        self.0.call(ops::RUN_INSTANCES, "launch instance", &req.client_token, owner, |s| s.run_instance(req))
    }

    async fn terminate(&self, ids: &[String]) -> CloudResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.0.call(ops::TERMINATE_INSTANCES, "terminate instances", &ids.join(","), None, |s| {
            // An unknown ID is what we wanted (the real implementation retries one by one).
            for id in ids {
                if s.instances.get(id).is_some_and(|f| f.inst.state.is_alive()) {
                    s.set_state(id, InstanceState::ShuttingDown);
                }
            }
            Ok(())
        })
    }

    async fn stop(&self, id: &str) -> CloudResult<()> {
        self.0.call(ops::STOP_INSTANCES, "stop instance", id, None, |s| s.stop_instance(id))
    }

    async fn start(&self, id: &str) -> CloudResult<()> {
        self.0.call(ops::START_INSTANCES, "start instance", id, None, |s| s.start_instance(id))
    }

    async fn tag(&self, ids: &[String], tags: &BTreeMap<String, String>) -> CloudResult<()> {
        if ids.is_empty() || tags.is_empty() {
            return Ok(());
        }
        self.0.call(ops::CREATE_TAGS, "tag resources", &ids.join(","), None, |s| s.create_tags(ids, tags))
    }
}
