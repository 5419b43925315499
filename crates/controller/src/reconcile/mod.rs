//! Reconcilers, one folder per kind: observe -> plan (pure) -> apply -> status.

pub mod boot;
pub mod finalized;
pub mod groups;
pub mod launch;
pub mod paused;
pub mod teardown;
pub mod tenant;
#[cfg(test)]
mod tests;
pub mod workspace;

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;

use crate::bootstrap::RenderError;
use crate::cloud::{CloudError, ErrorKind};
use crate::context::Context;

/// Field manager of every write the operator makes (status with server-side apply).
pub const MANAGER: &str = "molecule-operator";

/// A broadcast receiver as a stream; a lagging receiver skips (periodic requeues catch up).
pub fn broadcast_stream<T: Clone + Send + 'static>(
    rx: tokio::sync::broadcast::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(v) => return Some((v, rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

/// A failed reconcile with the condition it concerns (`None`: the status already says it), for
/// the one status write at the end of the reconcile.
#[derive(Debug)]
pub struct Failure {
    /// The condition type the failure is reported in, besides Ready.
    pub concern: Option<&'static str>,
    /// The error.
    pub error: Error,
}

/// `map_err` helper: a failure reported in condition `concern`.
pub fn failed_in<E: Into<Error>>(concern: &'static str) -> impl FnOnce(E) -> Failure {
    move |e| Failure { concern: Some(concern), error: e.into() }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self { concern: None, error }
    }
}

/// Why a reconcile did not finish, in a bounded category.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A cloud call failed.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// A Kubernetes call failed.
    #[error("failed to {action}: {source}")]
    Kube {
        /// What we tried.
        action: &'static str,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// User-data could not be rendered from the spec.
    #[error("failed to render user-data: {0}")]
    Render(#[from] RenderError),
    /// The protocol waits for the cloud (an instance still terminating, a group still in use).
    /// Not a failure: requeued after `retry`, without backoff.
    #[error("waiting: {what}")]
    Waiting {
        /// What we wait for, naming the resource.
        what: String,
        /// The cloud resource that blocks, when one does (a delete's condition and Event name it).
        on: Option<teardown::Blocker>,
        /// When to look again.
        retry: Duration,
    },
    /// The finalizer helper failed (adding or removing the finalizer, or a wrapped error).
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// Bounded category: metric label, Event reason, requeue policy.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Cloud(e) => e.kind.as_str(),
            Self::Kube { .. } => "Kube",
            Self::Render(_) => "Invalid",
            Self::Waiting { .. } => "Waiting",
            Self::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => {
                    e.category()
                }
                _ => "Kube",
            },
        }
    }

    /// A wait for `what`, looked at again after `retry`.
    pub fn waiting_for(what: impl Into<String>, retry: Duration) -> Self {
        Self::Waiting { what: what.into(), on: None, retry }
    }

    /// The cloud resource a wait is blocked on, if any.
    pub fn blocker(&self) -> Option<&teardown::Blocker> {
        match self {
            Self::Waiting { on, .. } => on.as_ref(),
            Self::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::CleanupFailed(e) => e.blocker(),
                _ => None,
            },
            _ => None,
        }
    }

    /// The wait, if this is one.
    pub fn waiting(&self) -> Option<Duration> {
        match self {
            Self::Waiting { retry, .. } => Some(*retry),
            Self::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => {
                    e.waiting()
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether this is the cloud throttling us.
    pub fn is_throttled(&self) -> bool {
        self.category() == ErrorKind::Throttled.as_str()
    }
}

/// Waits until a watch store holds its first full list.
///
/// `Store::wait_until_ready` wakes only the most recent of several tasks waiting at once (its
/// one-shot channel keeps one waker), so a task that waits beside another may never wake. Waiting
/// in short slices re-registers each time; once any waiter has seen the store ready, every later
/// call returns at once.
pub async fn store_ready<K: kube::runtime::reflector::Lookup + Clone + 'static>(
    store: &kube::runtime::reflector::Store<K>,
) where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    while tokio::time::timeout(Duration::from_millis(250), store.wait_until_ready()).await.is_err() {}
}

/// Counts a finished reconcile by kind and outcome, with its duration, and resets the object's
/// backoff when it succeeded.
pub fn record(
    ctx: &Context,
    kind: &'static str,
    key: &str,
    started: std::time::Instant,
    res: &Result<kube::runtime::controller::Action, Error>,
) {
    let outcome = match res {
        Ok(_) => {
            ctx.backoff.succeeded(key);
            "ok"
        }
        Err(e) => e.category(),
    };
    let labels = crate::metrics::ReconcileLabels { kind, outcome };
    ctx.metrics.reconciles.get_or_create(&labels).inc();
    ctx.metrics.reconcile_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
}

/// The requeue after a failed reconcile: a wait on the cloud keeps its own delay, an error backs
/// off per object (and is logged).
pub fn requeue_after(ctx: &Context, kind: &'static str, key: &str, e: &Error) -> kube::runtime::controller::Action {
    if let Some(retry) = e.waiting() {
        tracing::debug!(kind, object = %key, wait = %e, "waiting");
        return kube::runtime::controller::Action::requeue(retry);
    }
    let delay = ctx.backoff.failed(key);
    tracing::warn!(kind, object = %key, category = e.category(), error = %e, retry_in = ?delay, "reconcile failed");
    kube::runtime::controller::Action::requeue(delay)
}

/// Wraps a Kubernetes error with what we tried.
pub fn kube_err(action: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube { action, source }
}

/// Publishes an Event; a failure to publish is logged, never fails the reconcile.
pub async fn publish(ctx: &Context, regarding: &ObjectReference, warning: bool, reason: &str, note: String) {
    publish_about(ctx, regarding, None, warning, reason, note).await;
}

/// Publishes an Event about `regarding` that names a `related` object (a cloud resource). The
/// recorder folds Events with the same type, reason, note, regarding and related object into one
/// series, so Events about different resources stay separate when each names its own.
pub async fn publish_about(
    ctx: &Context,
    regarding: &ObjectReference,
    related: Option<ObjectReference>,
    warning: bool,
    reason: &str,
    note: String,
) {
    let ev = crate::recorder::Note { warning, action: "Reconcile", reason, note, regarding, related: related.as_ref() };
    if let Err(e) = ctx.recorder.publish(&ev).await {
        tracing::warn!(error = %e, reason, "failed to publish event");
    }
}

/// Whether `obj` carries `moleculesai.app/paused: "true"`: no cloud call is made for it.
pub fn is_paused(obj: &impl kube::ResourceExt) -> bool {
    molecule_crds::kstatus::is_paused(
        obj.annotations().get(molecule_crds::kstatus::PAUSED_ANNOTATION).map(String::as_str),
    )
}

/// Derives `Reconciling`, `Stalled` and `Paused` into `conds` for `obj` (see
/// [`molecule_crds::kstatus`]); `settled` is true when the object rests in a state its spec asks
/// for that is not Ready by design (stopped).
pub fn derive_kstatus(
    conds: &mut Vec<molecule_crds::v1alpha1::Condition>,
    obj: &impl kube::ResourceExt,
    settled: bool,
) {
    let now = jiff::Timestamp::now().to_string();
    let i = molecule_crds::kstatus::Inputs {
        paused: is_paused(obj),
        settled,
        generation: obj.meta().generation,
        now: &now,
    };
    molecule_crds::kstatus::derive(conds, i);
}
