//! Leader election: a small loop on a `coordination.k8s.io/v1` Lease `<operator id>-leader` in the
//! operator's namespace (shards with their own operator ids elect their own leaders).
//! One replica holds it and reconciles; the others wait. Admission is serialised in the process
//! that holds it, so two leaders must never overlap: a leader that cannot renew before its lease
//! runs out stops the process (the Deployment restarts it as a follower) rather than carry on.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};

/// How long a hold lasts without renewal.
pub const DURATION: Duration = Duration::from_secs(15);
/// How often the leader renews (a third of the duration).
pub const RENEW: Duration = Duration::from_secs(5);
/// A leader that has not renewed for this long exits: two thirds of the hold, so it is gone
/// before any follower may take the lease, even with some clock skew between them.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);

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
        match try_hold(&api, &name, &me).await {
            Ok(true) => break,
            Ok(false) => tracing::debug!(identity = %me, "another replica leads; waiting"),
            Err(e) => tracing::warn!(error = %e, "leader election: failed to read or write the lease"),
        }
        tokio::time::sleep(RENEW).await;
    }
    tracing::info!(identity = %me, lease = %name, "leading");
    tokio::spawn(async move {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW).await;
            // The renew time written is taken before the call: count from here, not from the answer.
            let attempt = tokio::time::Instant::now();
            match tokio::time::timeout(RENEW, try_hold(&api, &name, &me)).await {
                Ok(Ok(true)) => last = attempt,
                Ok(Ok(false)) => {
                    tracing::error!(identity = %me, "leadership lost to another replica; exiting");
                    std::process::exit(1);
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "leader election: renewal failed"),
                Err(_) => tracing::warn!("leader election: renewal timed out"),
            }
            // Stop well before the hold runs out, so a follower never leads beside us.
            if last.elapsed() >= RENEW_DEADLINE {
                tracing::error!(identity = %me, "could not renew leadership in time; exiting");
                std::process::exit(1);
            }
        }
    });
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
    }
}
