//! Write-through wrappers: [`Instances`], [`Network`] and [`Volumes`] that, after each successful
//! mutating call, record its effect in the account's [`FleetCache`], so that the next reconcile
//! sees it before the next listing does and no caller updates the cache by hand.
//!
//! What each success writes (the semantics the reconcilers applied by hand):
//! - launch: the instance, under its owner uid tag ("" when untagged), kept through listings that
//!   do not show it yet for `cache::LISTING_LAG` (so are a created group and volume);
//! - terminate: shutting-down on each listed ID still alive in the cache (never back from
//!   terminated); stop: stopping; start: pending;
//! - tag: the tags on every cached instance, group or volume named;
//! - group create: a group with EC2's default egress (all to 0.0.0.0/0), unless already cached;
//!   rule changes: applied to the cached group; group delete: forgotten;
//! - volume create: the volume; attach: in-use on the instance; detach: available; delete:
//!   forgotten.
//!
//! Failures write nothing (an unknown outcome is the caller's to guard), except a detach whose
//! volume is gone (InvalidVolume.NotFound), which forgets it. A detach answered
//! InvalidAttachment.NotFound (the volume is not attached to that instance: already detached) is
//! a success. Listings and describes by ID pass through (a describe by ID may see what the
//! listing filter hides: it writes nothing).
//! Writes for IDs the cache does not hold are no-ops: the next refresh brings them.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::cache::FleetCache;
use super::tags::OWNER_UID;
use super::{
    CloudResult, Instance, InstanceState, Instances, LaunchRequest, NOT_ATTACHED, Network, Rule, RuleChange,
    SecurityGroup, VOLUME_GONE, Volume, VolumeRequest, Volumes,
};

/// The three cached clients of one account.
#[derive(Clone)]
pub struct CachedClients {
    /// Instances, written through.
    pub instances: Arc<dyn Instances>,
    /// Security groups, written through.
    pub network: Arc<dyn Network>,
    /// Volumes, written through.
    pub volumes: Arc<dyn Volumes>,
}

impl std::fmt::Debug for CachedClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedClients").finish_non_exhaustive()
    }
}

impl CachedClients {
    /// Wraps `instances`, `network` and `volumes` so that they write through to `cache`.
    pub fn wrap(
        cache: &Arc<FleetCache>,
        instances: Arc<dyn Instances>,
        network: Arc<dyn Network>,
        volumes: Arc<dyn Volumes>,
    ) -> Self {
        Self {
            instances: Arc::new(CachedInstances { inner: instances, cache: cache.clone() }),
            network: Arc::new(CachedNetwork { inner: network, cache: cache.clone() }),
            volumes: Arc::new(CachedVolumes { inner: volumes, cache: cache.clone() }),
        }
    }

    /// Wraps the very clients `cache` lists with.
    pub fn of(cache: &Arc<FleetCache>) -> Self {
        let (instances, network, volumes) = cache.clients();
        Self::wrap(cache, instances, network, volumes)
    }
}

fn uid_of(tags: &BTreeMap<String, String>) -> String {
    tags.get(OWNER_UID).cloned().unwrap_or_default()
}

fn set_state(cache: &FleetCache, id: &str, state: InstanceState) {
    cache.modify::<Instance>(id, |i| i.state = state);
}

/// [`Instances`] writing through to a [`FleetCache`].
pub struct CachedInstances {
    inner: Arc<dyn Instances>,
    cache: Arc<FleetCache>,
}

/// [`Network`] writing through to a [`FleetCache`].
pub struct CachedNetwork {
    inner: Arc<dyn Network>,
    cache: Arc<FleetCache>,
}

/// [`Volumes`] writing through to a [`FleetCache`].
pub struct CachedVolumes {
    inner: Arc<dyn Volumes>,
    cache: Arc<FleetCache>,
}

macro_rules! opaque_debug {
    ($($t:ident),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t)).field("cache", &self.cache).finish_non_exhaustive()
            }
        }
    )*};
}
opaque_debug!(CachedInstances, CachedNetwork, CachedVolumes);

#[async_trait]
impl Instances for CachedInstances {
    async fn list(&self, filters: &BTreeMap<String, String>) -> CloudResult<Vec<Instance>> {
        self.inner.list(filters).await
    }

    async fn describe(&self, ids: &[String]) -> CloudResult<Vec<Instance>> {
        self.inner.describe(ids).await
    }

    async fn launch(&self, req: &LaunchRequest) -> CloudResult<Instance> {
        let inst = self.inner.launch(req).await?;
        self.cache.put_created(&uid_of(&inst.tags), inst.clone());
        Ok(inst)
    }

    async fn terminate(&self, ids: &[String]) -> CloudResult<()> {
        self.inner.terminate(ids).await?;
        for id in ids {
            self.cache.modify::<Instance>(id, |i| {
                if i.state.is_alive() {
                    i.state = InstanceState::ShuttingDown;
                }
            });
        }
        Ok(())
    }

    async fn stop(&self, id: &str) -> CloudResult<()> {
        self.inner.stop(id).await?;
        set_state(&self.cache, id, InstanceState::Stopping);
        Ok(())
    }

    async fn start(&self, id: &str) -> CloudResult<()> {
        self.inner.start(id).await?;
        set_state(&self.cache, id, InstanceState::Pending);
        Ok(())
    }

    async fn tag(&self, ids: &[String], tags: &BTreeMap<String, String>) -> CloudResult<()> {
        self.inner.tag(ids, tags).await?;
        let add = |t: &mut BTreeMap<String, String>| t.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        for id in ids {
            let _ = self.cache.modify::<Instance>(id, |i| add(&mut i.tags))
                || self.cache.modify::<SecurityGroup>(id, |g| add(&mut g.tags))
                || self.cache.modify::<Volume>(id, |v| add(&mut v.tags));
        }
        Ok(())
    }
}

#[async_trait]
impl Network for CachedNetwork {
    async fn list(&self, filters: &BTreeMap<String, String>) -> CloudResult<Vec<SecurityGroup>> {
        self.inner.list(filters).await
    }

    async fn describe(&self, ids: &[String]) -> CloudResult<Vec<SecurityGroup>> {
        self.inner.describe(ids).await
    }

    async fn create(&self, name: &str, description: &str, tags: &BTreeMap<String, String>) -> CloudResult<String> {
        let id = self.inner.create(name, description, tags).await?;
        if self.cache.holder::<SecurityGroup>(&id).is_none() {
            // EC2 puts one rule in a new group: all egress to anywhere.
            let g = SecurityGroup {
                id: id.clone(),
                tags: tags.clone(),
                ingress: vec![],
                egress: vec![Rule::all_with("0.0.0.0/0")],
            };
            self.cache.put_created(&uid_of(tags), g);
        }
        Ok(id)
    }

    async fn change_rules(&self, group: &str, rules: &[Rule], change: RuleChange) -> CloudResult<()> {
        self.inner.change_rules(group, rules, change).await?;
        self.cache.modify::<SecurityGroup>(group, |g| {
            let (list, add) = match change {
                RuleChange::AuthorizeIngress => (&mut g.ingress, true),
                RuleChange::RevokeIngress => (&mut g.ingress, false),
                RuleChange::AuthorizeEgress => (&mut g.egress, true),
                RuleChange::RevokeEgress => (&mut g.egress, false),
            };
            if add {
                list.extend(rules.iter().filter(|r| !list.contains(r)).cloned().collect::<Vec<_>>());
            } else {
                list.retain(|r| !rules.contains(r));
            }
            list.sort();
        });
        Ok(())
    }

    async fn delete(&self, group: &str) -> CloudResult<()> {
        self.inner.delete(group).await?;
        self.cache.forget::<SecurityGroup>(group);
        Ok(())
    }
}

#[async_trait]
impl Volumes for CachedVolumes {
    async fn list(&self, filters: &BTreeMap<String, String>) -> CloudResult<Vec<Volume>> {
        self.inner.list(filters).await
    }

    async fn describe(&self, ids: &[String]) -> CloudResult<Vec<Volume>> {
        self.inner.describe(ids).await
    }

    async fn create(&self, req: &VolumeRequest) -> CloudResult<Volume> {
        let v = self.inner.create(req).await?;
        self.cache.put_created(&uid_of(&v.tags), v.clone());
        Ok(v)
    }

    async fn attach(&self, volume: &str, instance: &str, device: &str) -> CloudResult<()> {
        self.inner.attach(volume, instance, device).await?;
        self.cache.modify::<Volume>(volume, |v| {
            v.attached_to = Some(instance.to_owned());
            v.state = "in-use".into();
        });
        Ok(())
    }

    async fn detach(&self, volume: &str, instance: &str) -> CloudResult<()> {
        match self.inner.detach(volume, instance).await {
            Ok(()) => {}
            // Not attached to `instance` (already detached, e.g. by its termination): what the
            // detach wanted. Success, and the cache stops naming `instance` as the holder (a
            // volume attached elsewhere keeps its holder).
            Err(e) if e.code == NOT_ATTACHED => {}
            // The volume itself is gone (a root volume EC2 deleted with its instance): forget it,
            // as Workspace delete did by hand. The error still goes to the caller.
            Err(e) => {
                if e.code == VOLUME_GONE {
                    self.cache.forget::<Volume>(volume);
                }
                return Err(e);
            }
        }
        self.cache.modify::<Volume>(volume, |v| {
            if v.attached_to.as_deref().is_none_or(|i| i == instance) {
                v.attached_to = None;
                v.state = "available".into();
            }
        });
        Ok(())
    }

    async fn delete(&self, volume: &str) -> CloudResult<()> {
        self.inner.delete(volume).await?;
        self.cache.forget::<Volume>(volume);
        Ok(())
    }
}
