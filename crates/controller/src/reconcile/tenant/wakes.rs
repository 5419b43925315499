//! Which Workspace events wake a Tenant. Of its Workspaces a Tenant reads only their usage
//! ([`status::usage_of`]) and, while it is erased, whether they are gone. The one Workspace watch
//! delivers every change of every Workspace (a status write at each step of a launch): a wake per
//! change reconciled the Tenant 7,105 times during a 10,000-Workspace create, each pass summing
//! every Workspace. So a Workspace wakes its Tenant when it is first seen, when its usage or its
//! Tenant changes, when its delete starts, and when it is gone (the reflector's shared streams do
//! not carry deletes: lib.rs sends them from the watch itself). During a create of many
//! Workspaces each one still changes its Tenant's usage, so these wakes are also [`throttle`]d:
//! at most one per Tenant per [`WAKE_EVERY`], the last one never dropped.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use molecule_crds::v1alpha1::{Tenant, Workspace};

use super::status;

/// The shortest gap between two wakes of one Tenant by its Workspaces.
pub const WAKE_EVERY: Duration = Duration::from_secs(1);

/// A Workspace that left this operator's watch (deleted, or no longer selected): its uid and
/// its Tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gone {
    /// The Workspace's uid.
    pub uid: String,
    /// Its `spec.tenant`.
    pub tenant: String,
}

/// What each Workspace last showed its Tenant, by uid (see the module docs).
#[derive(Debug)]
pub struct UsageWakes {
    seen: Mutex<HashMap<String, u64>>,
    workspaces: Store<Workspace>,
}

fn fingerprint(w: &Workspace) -> u64 {
    let mut h = DefaultHasher::new();
    w.spec.tenant.hash(&mut h);
    w.metadata.deletion_timestamp.is_some().hash(&mut h);
    status::usage_of(w).map(|u| (u.workspaces, u.vcpus, u.gpus, u.root_gb_total, u.data_gb_total)).hash(&mut h);
    h.finish()
}

impl UsageWakes {
    /// Memory over the Workspaces of `workspaces` (the watch's store: entries of Workspaces it
    /// no longer holds are dropped once they outnumber it).
    pub fn new(workspaces: Store<Workspace>) -> Self {
        Self { seen: Mutex::new(HashMap::new()), workspaces }
    }

    /// The Tenant to wake for this change of `w`, if what it shows the Tenant changed. A
    /// Workspace that moves to another Tenant wakes the new one; the old one learns on its next
    /// pass.
    pub fn on_change(&self, w: &Workspace) -> Option<ObjectRef<Tenant>> {
        let uid = w.uid()?;
        let f = fingerprint(w);
        let Ok(mut seen) = self.seen.lock() else { return Some(ObjectRef::new(&w.spec.tenant)) };
        if seen.insert(uid, f) == Some(f) {
            return None;
        }
        let held = self.workspaces.len();
        if seen.len() > 2 * held + 1024 {
            let live: std::collections::HashSet<String> =
                self.workspaces.state().iter().filter_map(|w| w.uid()).collect();
            seen.retain(|u, _| live.contains(u));
        }
        Some(ObjectRef::new(&w.spec.tenant))
    }

    /// The Tenant to wake because `g` is gone; its memory is dropped.
    pub fn on_gone(&self, g: &Gone) -> ObjectRef<Tenant> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(&g.uid);
        }
        ObjectRef::new(&g.tenant)
    }

    /// Workspaces remembered (tests).
    pub fn remembered(&self) -> usize {
        self.seen.lock().map_or(0, |s| s.len())
    }
}

/// Passes a Tenant's first wake at once; while that Tenant was woken less than `every` ago, its
/// later wakes are held as one, sent when `every` has passed since. Runs as a task (the input is
/// a shared watch stream and must be read whatever the controller does) until `input` ends.
pub fn throttle(
    input: impl Stream<Item = ObjectRef<Tenant>> + Send + 'static,
    every: Duration,
) -> impl Stream<Item = ObjectRef<Tenant>> {
    let (tx, rx) = futures::channel::mpsc::unbounded();
    tokio::spawn(async move {
        let mut input = std::pin::pin!(input);
        let mut last: HashMap<ObjectRef<Tenant>, tokio::time::Instant> = HashMap::new();
        let mut held: HashMap<ObjectRef<Tenant>, tokio::time::Instant> = HashMap::new();
        loop {
            let due = held.values().min().copied();
            let woken = tokio::select! {
                next = input.next() => match next {
                    None => return,
                    Some(t) => {
                        let now = tokio::time::Instant::now();
                        match last.get(&t) {
                            Some(at) if now < *at + every => {
                                held.entry(t).or_insert(*at + every);
                                Vec::new()
                            }
                            _ => vec![t],
                        }
                    }
                },
                () = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                    let now = tokio::time::Instant::now();
                    held.extract_if(|_, d| *d <= now).map(|(t, _)| t).collect()
                }
            };
            let now = tokio::time::Instant::now();
            for t in woken {
                last.insert(t.clone(), now);
                if tx.unbounded_send(t).is_err() {
                    return;
                }
            }
            if last.len() > 1024 {
                last.retain(|_, at| now < *at + every);
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;
    use molecule_crds::v1alpha1::{Arch, DisplayMode, Market, OsFamily, ResolvedCompute, Tenant, Workspace};
    use serde_json::json;

    use super::{Gone, UsageWakes};

    fn ws(uid: &str, tenant: &str, status: &serde_json::Value) -> Workspace {
        serde_json::from_value(json!({
            "apiVersion": "moleculesai.app/v1alpha1", "kind": "Workspace",
            "metadata": {"name": uid, "namespace": "team", "uid": uid},
            "spec": {"tenant": tenant, "runtime": "codex"},
            "status": status,
        }))
        .unwrap()
    }

    fn admitted(vcpus: u32) -> serde_json::Value {
        let resolved = ResolvedCompute {
            instance_type: "t3.large".into(),
            vcpus,
            memory_mib: 8192,
            arch: Arch::X86_64,
            os_family: OsFamily::Ubuntu,
            os_version: "24.04".into(),
            ami_id: "ami-1".into(),
            root_gb: 32,
            iops: 3000,
            throughput_mi_bps: 125,
            data_gb: None,
            gpu: None,
            market: Market::OnDemand,
            display_mode: DisplayMode::None,
        };
        json!({
            "conditions": [{"type": "Admitted", "status": "True", "reason": "Admitted", "message": "",
                            "lastTransitionTime": "2026-11-29T00:00:00Z"}],
            "resolved": resolved,
        })
    }

    fn woke(w: &UsageWakes, ws: &Workspace) -> Option<String> {
        w.on_change(ws).map(|r| r.name)
    }

    #[test]
    fn a_workspace_wakes_its_tenant_only_when_what_the_tenant_reads_changes() {
        let (reader, _writer) = store::<Workspace>();
        let w = UsageWakes::new(reader);
        assert_eq!(woke(&w, &ws("u1", "acme", &json!({}))).as_deref(), Some("acme"), "first seen");
        assert_eq!(
            woke(&w, &ws("u1", "acme", &json!({"phase": "Pending"}))),
            None,
            "a status step that counts nothing"
        );
        assert_eq!(woke(&w, &ws("u1", "acme", &admitted(2))).as_deref(), Some("acme"), "admitted: it counts now");
        let mut launched = admitted(2);
        launched["instanceId"] = json!("i-1");
        assert_eq!(woke(&w, &ws("u1", "acme", &launched)), None, "launched, same usage");
        assert_eq!(woke(&w, &ws("u1", "acme", &admitted(4))).as_deref(), Some("acme"), "a resize changes the usage");
        let mut deleting = ws("u1", "acme", &admitted(4));
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()));
        assert_eq!(woke(&w, &deleting).as_deref(), Some("acme"), "its delete starts");
        assert_eq!(woke(&w, &deleting), None, "the delete's own status writes");
        assert_eq!(woke(&w, &ws("u1", "other", &admitted(4))).as_deref(), Some("other"), "moved to another tenant");
        assert_eq!(w.remembered(), 1);
        assert_eq!(w.on_gone(&Gone { uid: "u1".into(), tenant: "other".into() }).name, "other");
        assert_eq!(w.remembered(), 0, "a gone Workspace is forgotten");
        assert_eq!(woke(&w, &ws("u1", "other", &admitted(4))).as_deref(), Some("other"), "seen again: first seen");
    }

    async fn next(
        out: &mut (impl futures::Stream<Item = kube::runtime::reflector::ObjectRef<Tenant>> + Unpin),
    ) -> Option<kube::runtime::reflector::ObjectRef<Tenant>> {
        use futures::StreamExt;
        tokio::time::timeout(std::time::Duration::from_secs(5), out.next()).await.ok().flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn wakes_of_one_tenant_are_at_most_one_a_second_and_the_last_is_kept() {
        use std::time::Duration;

        use kube::runtime::reflector::ObjectRef;

        let (tx, rx) = futures::channel::mpsc::unbounded();
        let mut out = Box::pin(super::throttle(rx, super::WAKE_EVERY));
        let t = |n: &str| ObjectRef::<Tenant>::new(n);
        let start = tokio::time::Instant::now();
        // A storm: 100 wakes of acme over 0.5 s, one of other.
        for i in 0..100 {
            tx.unbounded_send(t("acme")).unwrap();
            if i == 50 {
                tx.unbounded_send(t("other")).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut got = Vec::new();
        while let Some(r) = next(&mut out).await {
            got.push((r.name, (tokio::time::Instant::now() - start).as_millis()));
        }
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["acme", "other", "acme"], "the first at once, the rest of the storm as one: {got:?}");
        assert!(got[2].1 >= 1000, "the held wake goes a second after the first: {got:?}");
        // Quiet for longer than the gap: the next wake passes at once.
        tx.unbounded_send(t("acme")).unwrap();
        let before = tokio::time::Instant::now();
        assert_eq!(next(&mut out).await.map(|r| r.name).as_deref(), Some("acme"));
        assert!(tokio::time::Instant::now() - before < Duration::from_millis(10));
        drop(tx);
        assert!(next(&mut out).await.is_none(), "ends with its input");
    }

    #[test]
    fn memory_of_workspaces_the_watch_no_longer_holds_is_dropped() {
        let (reader, mut writer) = store::<Workspace>();
        writer.apply_watcher_event(&Event::Apply(ws("kept", "acme", &json!({}))));
        let w = UsageWakes::new(reader);
        // Gone without a delete event (a watch restart misses it): 2 x 1 held + 1024 are allowed.
        for i in 0..1026 {
            w.on_change(&ws(&format!("gone-{i}"), "acme", &json!({})));
        }
        w.on_change(&ws("kept", "acme", &json!({})));
        assert_eq!(w.remembered(), 1, "only the Workspace the store still holds");
    }
}
