//! kube-runtime's finalizer helper, run so that a delete finishes once.
//!
//! When a cleanup returns Ok, the helper removes the finalizer and the API server deletes the
//! object. The watch delivers that delete a moment later; a reconcile queued meanwhile (by the
//! status write of the last cleanup pass) starts from the cached copy, which still carries the
//! finalizer, so the helper ran the whole cleanup again: the AWS confirmations, the secret
//! lookups, a second `Deleted` Event, a Tenant's erasure pass and receipt write, then a WARN
//! "failed to remove finalizer: NotFound" and a requeue. A [`RecentUids`] remembers, for a while,
//! the uids whose finalizer this process removed; [`run`] skips the cleanup of those, and takes
//! the removal's NotFound (the object is already gone) as the success it is. The delete path
//! keeps another for what it confirmed gone and need not look up again.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Error as HelperError, Event, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;

/// How long a uid is remembered: far longer than the watch takes to deliver a delete, and a uid
/// is never reused, so remembering longer is only memory.
const REMEMBER: Duration = Duration::from_mins(10);

/// Uids this process marked (a finalizer it removed, a step it confirmed done), each with when,
/// for [`REMEMBER`].
#[derive(Debug, Default)]
pub struct RecentUids {
    done: Mutex<HashMap<String, Instant>>,
}

impl RecentUids {
    /// Remembers `uid` (and forgets what is older than [`REMEMBER`]).
    pub fn mark(&self, uid: &str) {
        self.mark_at(uid, Instant::now());
    }

    fn mark_at(&self, uid: &str, now: Instant) {
        let mut done = self.done.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        done.retain(|_, at| now.saturating_duration_since(*at) < REMEMBER);
        done.insert(uid.to_owned(), now);
    }

    /// Whether `uid` was marked within [`REMEMBER`].
    pub fn seen(&self, uid: &str) -> bool {
        self.seen_at(uid, Instant::now())
    }

    fn seen_at(&self, uid: &str, now: Instant) -> bool {
        let done = self.done.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        done.get(uid).is_some_and(|at| now.saturating_duration_since(*at) < REMEMBER)
    }

    /// How many uids are remembered (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.done.lock().map(|d| d.len()).unwrap_or_default()
    }
}

/// What the helper will do with `obj`, judged as it judges: a cleanup when the object is being
/// deleted and still carries `name`.
fn is_cleanup<K: Resource>(obj: &K, name: &str) -> bool {
    obj.meta().deletion_timestamp.is_some() && obj.finalizers().iter().any(|f| f == name)
}

/// kube-runtime's [`finalizer`] for `obj`, except that a deleting object whose finalizer this
/// process already removed (marked in `done`) is left alone (its copy is older than the
/// removal), and a removal answered NotFound is success.
///
/// # Errors
/// The helper's, as [`Error::Finalizer`].
pub async fn run<K, F, Fut>(
    api: &Api<K>,
    name: &str,
    obj: Arc<K>,
    done: &RecentUids,
    reconcile: F,
) -> Result<Action, Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
    F: FnOnce(Event<K>) -> Fut,
    Fut: Future<Output = Result<Action, Error>>,
{
    let uid = obj.uid().unwrap_or_default();
    let cleanup = is_cleanup(obj.as_ref(), name);
    if cleanup && done.seen(&uid) {
        tracing::debug!(object = %obj.name_any(), uid = %uid, "finalizer already removed; the copy is older than its delete");
        return Ok(Action::await_change());
    }
    match finalizer(api, name, obj, reconcile).await {
        Ok(action) => {
            if cleanup {
                done.mark(&uid);
            }
            Ok(action)
        }
        Err(HelperError::RemoveFinalizer(kube::Error::Api(e))) if e.code == 404 => {
            done.mark(&uid);
            Ok(Action::await_change())
        }
        Err(e) => Err(Error::Finalizer(Box::new(e))),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use molecule_crds::v1alpha1::Workspace;

    use super::*;

    #[test]
    fn a_removed_finalizer_is_remembered_for_a_while_then_forgotten() {
        let f = RecentUids::default();
        let t0 = Instant::now();
        assert!(!f.seen_at("a", t0));
        f.mark_at("a", t0);
        assert!(f.seen_at("a", t0 + Duration::from_secs(30)));
        assert!(!f.seen_at("b", t0), "only the uid marked");
        assert!(!f.seen_at("a", t0 + REMEMBER), "forgotten after REMEMBER");
        // Marking prunes what is past REMEMBER: memory stays bounded by the recent deletes.
        f.mark_at("b", t0 + REMEMBER + Duration::from_secs(1));
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn only_a_deleting_object_that_still_carries_the_finalizer_is_a_cleanup() {
        let mut w: Workspace = serde_json::from_value(serde_json::json!({
            "apiVersion": "moleculesai.app/v1alpha1", "kind": "Workspace",
            "metadata": {"name": "w", "namespace": "acme", "uid": "u"},
            "spec": {"tenant": "acme", "runtime": "claude-code"}
        }))
        .unwrap();
        assert!(!is_cleanup(&w, "x/f"), "not deleting");
        w.metadata.finalizers = Some(vec!["x/f".into()]);
        assert!(!is_cleanup(&w, "x/f"), "carries it, not deleting");
        w.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        assert!(is_cleanup(&w, "x/f"));
        assert!(!is_cleanup(&w, "y/g"), "another finalizer");
    }
}
