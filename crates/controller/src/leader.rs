//! Leader election: a small loop on a `coordination.k8s.io/v1` Lease `<operator id>-leader` in the
//! operator's namespace (shards with their own operator ids elect their own leaders).
//! One replica holds it and reconciles; the others wait. Admission is serialised in the process
//! that holds it, so two leaders must never overlap.
//!
//! Fencing (timings as client-go's): the Lease lasts [`DURATION`] (15 s) from each renewal, the
//! leader retries every [`RETRY`] (2 s), and [`RENEW_DEADLINE`] (10 s) after the start of its last
//! successful renewal the fence closes: every AWS and Cloudflare call checks [`check_fence`] just
//! before it is sent, and one that finds the fence closed exits the process (non-zero; it
//! restarts as a follower) instead of sending. A process frozen past its Lease (SIGSTOP, a long GC
//! pause of the node) therefore never mutates when it wakes, whatever task runs first. A panic in
//! the renew task exits the process; on SIGTERM [`release`] clears the holder so the next replica
//! takes over at once.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};

/// How long a hold lasts without renewal.
pub const DURATION: Duration = Duration::from_secs(15);
/// How often the leader renews (and a follower tries to take the lease).
pub const RETRY: Duration = Duration::from_secs(2);
/// How long after the start of its last successful renewal a leader may still call the cloud:
/// two thirds of the hold, so it stops before any follower may take the lease, even with 5 s of
/// clock skew between them.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// Why a cloud call was not sent.
#[derive(Clone, Debug, thiserror::Error)]
#[error("fenced: {0}")]
pub struct Fenced(&'static str);

/// No leader election: the fence is always open.
const OPEN: u8 = 0;
/// Leading: open until [`VALID_UNTIL_MS`].
const LEADING: u8 = 1;
/// The Lease was released (shutdown): closed for good.
const RELEASED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(OPEN);
/// Milliseconds after [`EPOCH`] (monotonic: it runs on while the process is stopped).
static VALID_UNTIL_MS: AtomicU64 = AtomicU64::new(0);
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn millis(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(*EPOCH).as_millis()).unwrap_or(u64::MAX)
}

/// The fence after a renewal that started at `attempt`.
fn extend(attempt: Instant) {
    VALID_UNTIL_MS.store(millis(attempt + RENEW_DEADLINE), Ordering::SeqCst);
    let _ = STATE.compare_exchange(OPEN, LEADING, Ordering::SeqCst, Ordering::SeqCst);
}

/// The fence's verdict for `state` at `now_ms`, the fence closing at `until_ms`. Pure.
fn verdict(state: u8, now_ms: u64, until_ms: u64) -> Result<(), Fenced> {
    match state {
        OPEN => Ok(()),
        RELEASED => Err(Fenced("the leader Lease was released at shutdown")),
        _ if now_ms < until_ms => Ok(()),
        _ => Err(Fenced("leadership was not renewed within RENEW_DEADLINE")),
    }
}

/// Whether this process may call the cloud now. A leader whose renew deadline passed exits here
/// (status 1) rather than send anything; after [`release`] calls are refused.
pub fn check_fence() -> Result<(), Fenced> {
    let state = STATE.load(Ordering::SeqCst);
    let result = verdict(state, millis(Instant::now()), VALID_UNTIL_MS.load(Ordering::SeqCst));
    if result.is_err() && state == LEADING {
        tracing::error!("leadership was not renewed within {RENEW_DEADLINE:?}: exiting before any cloud call");
        std::process::exit(1);
    }
    result
}

/// What [`release`] needs.
struct Held {
    api: Api<Lease>,
    name: String,
    me: String,
    renewals: tokio::task::AbortHandle,
}

static HELD: Mutex<Option<Held>> = Mutex::new(None);

/// Whether `spec` lets `me` take or keep the lease at `now`. Pure.
pub fn may_hold(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> bool {
    let Some(spec) = spec else { return true };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == me {
        return true;
    }
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    spec.renew_time.as_ref().is_none_or(|t| t.0 + SignedDuration::from_secs(secs) <= now)
}

fn spec_for(me: &str, now: Timestamp, old: Option<&LeaseSpec>) -> LeaseSpec {
    let same = old.and_then(|o| o.holder_identity.as_deref()) == Some(me);
    let transitions = old.and_then(|o| o.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(i32::try_from(DURATION.as_secs()).unwrap_or(15)),
        renew_time: Some(MicroTime(now)),
        acquire_time: if same { old.and_then(|o| o.acquire_time.clone()) } else { Some(MicroTime(now)) },
        lease_transitions: Some(if same { transitions } else { transitions + 1 }),
        ..LeaseSpec::default()
    }
}

/// One attempt to take or renew the lease. `Ok(true)`: we hold it.
async fn try_hold(api: &Api<Lease>, name: &str, me: &str) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    match api.get_opt(name).await? {
        None => {
            let l = Lease {
                metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
                spec: Some(spec_for(me, now, None)),
            };
            match api.create(&PostParams::default(), &l).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut l) => {
            if !may_hold(l.spec.as_ref(), me, now) {
                return Ok(false);
            }
            l.spec = Some(spec_for(me, now, l.spec.as_ref()));
            // replace carries the resourceVersion we read: a concurrent taker makes this a 409.
            match api.replace(name, &PostParams::default(), &l).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.is_conflict() => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Waits until this process holds the lease, then keeps renewing it in the background. Returns
/// once leadership is taken.
pub async fn acquire(client: Client, namespace: &str, lease: &str, me: String) {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let name = lease.to_owned();
    loop {
        let attempt = Instant::now();
        match tokio::time::timeout(RENEW_DEADLINE, try_hold(&api, &name, &me)).await {
            Ok(Ok(true)) => {
                extend(attempt);
                break;
            }
            Ok(Ok(false)) => tracing::debug!(identity = %me, "another replica leads; waiting"),
            Ok(Err(e)) => tracing::warn!(error = %e, "leader election: failed to read or write the lease"),
            Err(_) => tracing::warn!("leader election: the lease call timed out"),
        }
        tokio::time::sleep(RETRY).await;
    }
    tracing::info!(identity = %me, lease = %name, "leading");
    let task = tokio::spawn(renew(api.clone(), name.clone(), me.clone()));
    *HELD.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
        Some(Held { api, name, me, renewals: task.abort_handle() });
    tokio::spawn(async move {
        if let Err(e) = task.await
            && e.is_panic()
        {
            tracing::error!(error = %e, "the leader renew task panicked; exiting");
            std::process::exit(1);
        }
    });
}

/// Renews every [`RETRY`]; exits the process when the lease is lost or the deadline passes.
async fn renew(api: Api<Lease>, name: String, me: String) {
    let beat = crate::watchdog::global().register("leader-renew", RENEW_DEADLINE + RETRY, true);
    loop {
        tokio::time::sleep(RETRY).await;
        // The renew time written is taken before the call: count from here, not from the answer.
        let attempt = Instant::now();
        let left = Duration::from_millis(VALID_UNTIL_MS.load(Ordering::SeqCst).saturating_sub(millis(attempt)));
        if left.is_zero() || STATE.load(Ordering::SeqCst) != LEADING {
            break;
        }
        match tokio::time::timeout(left, try_hold(&api, &name, &me)).await {
            Ok(Ok(true)) => {
                extend(attempt);
                beat.progress();
            }
            Ok(Ok(false)) => {
                tracing::error!(identity = %me, "leadership lost to another replica; exiting");
                std::process::exit(1);
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "leader election: renewal failed"),
            Err(_) => tracing::warn!("leader election: renewal timed out"),
        }
    }
    if STATE.load(Ordering::SeqCst) == LEADING {
        tracing::error!(identity = %me, "could not renew leadership in time; exiting");
        std::process::exit(1);
    }
}

/// Gives the lease up at shutdown: closes the fence (no cloud call after this), stops renewing
/// and clears the holder with a 1 s duration, so a follower takes over on its next try rather
/// than after [`DURATION`]. Does nothing without leader election.
pub async fn release() {
    let Some(held) = HELD.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() else { return };
    STATE.store(RELEASED, Ordering::SeqCst);
    held.renewals.abort();
    let cleared = async {
        let mut l = held.api.get(&held.name).await?;
        let Some(spec) = l.spec.as_mut().filter(|s| s.holder_identity.as_deref() == Some(held.me.as_str())) else {
            return Ok::<bool, kube::Error>(false);
        };
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        held.api.replace(&held.name, &PostParams::default(), &l).await?;
        Ok(true)
    };
    match tokio::time::timeout(RETRY, cleared).await {
        Ok(Ok(true)) => tracing::info!(lease = %held.name, "leader lease released"),
        Ok(Ok(false)) => tracing::warn!(lease = %held.name, "leader lease not ours any more; nothing to release"),
        Ok(Err(e)) => tracing::warn!(error = %e, "failed to release the leader lease; it expires by itself"),
        Err(_) => tracing::warn!("releasing the leader lease timed out; it expires by itself"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_hold_of_another_blocks_an_expired_one_does_not() {
        let now: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let other = spec_for("b", now, None);
        assert!(!may_hold(Some(&other), "a", now));
        assert!(may_hold(Some(&other), "b", now), "the holder renews");
        let later = now + SignedDuration::from_secs(16);
        assert!(may_hold(Some(&other), "a", later), "expired after 15 s");
        assert!(may_hold(None, "a", now));
        let taken = spec_for("a", later, Some(&other));
        assert_eq!(taken.lease_transitions, Some(2));
        assert_eq!(spec_for("a", later, Some(&taken)).acquire_time, taken.acquire_time);
        let released = LeaseSpec { holder_identity: None, lease_duration_seconds: Some(1), ..taken };
        assert!(may_hold(Some(&released), "b", later), "a released lease is free at once");
    }

    #[test]
    fn the_fence_closes_at_the_renew_deadline_well_inside_the_lease() {
        assert!(RENEW_DEADLINE + RETRY < DURATION, "fenced at least one retry before a follower may take over");
        assert!(verdict(OPEN, u64::MAX, 0).is_ok(), "no election: never fenced");
        assert!(verdict(LEADING, 9_999, 10_000).is_ok());
        assert!(verdict(LEADING, 10_000, 10_000).is_err(), "closed at the deadline");
        assert!(verdict(RELEASED, 0, 10_000).is_err(), "closed for good after release");
    }
}
