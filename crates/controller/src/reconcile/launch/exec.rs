//! Executes a plan's steps for a [`Subject`]. Each create carries its tags; each side effect is
//! written through to the account's fleet cache at once; the launch token reaches status before
//! RunInstances is called.

use jiff::Timestamp;
use molecule_crds::v1alpha1::LaunchRecord;

use super::{DATA_DEVICE, Env, LaunchReason, SPEC_HASH_TAG, Step, Subject, TerminateWhy, token, uncertain_since};
use crate::cloud::tags::LAUNCH_ATTEMPT;
use crate::cloud::{CloudError, ErrorKind, Instance, InstanceState};
use crate::metrics::KindReason;
use crate::reconcile::Error;

/// Runs `steps` in order; returns the instance of the current attempt afterwards.
pub async fn run<S: Subject>(
    env: &Env<'_>,
    s: &S,
    st: &mut S::Status,
    steps: Vec<Step>,
    mut current: Option<Instance>,
) -> Result<Option<Instance>, Error> {
    for step in steps {
        match step {
            Step::Record { attempt, reason } => {
                unguarded(env, s, st)?;
                record(env, s, st, attempt, reason).await?;
                current = Some(launch_attempt(env, s, st, attempt).await?);
            }
            Step::Launch { attempt } => {
                unguarded(env, s, st)?;
                current = Some(launch_attempt(env, s, st, attempt).await?);
            }
            Step::Terminate { ids, why } => {
                terminate(env, s, &ids, why).await?;
                if why == TerminateWhy::SpotStop {
                    *s.instance_id(st) = None;
                    current = None;
                }
            }
            Step::Stop { id } => power(env, s, &id, false, current.as_mut()).await?,
            Step::Start { id } => power(env, s, &id, true, current.as_mut()).await?,
            Step::Detach { volume, from } => env.account.volumes.detach(&volume, &from).await?,
            Step::Attach { volume, to } => {
                env.account.volumes.attach(&volume, &to, DATA_DEVICE).await?;
                s.event(false, "VolumeAttached", format!("data volume {volume} attached to {to}")).await;
            }
        }
    }
    Ok(current)
}

fn kind_reason(s: &impl Subject, reason: &'static str) -> KindReason {
    KindReason { kind: s.owner().kind, reason }
}

/// Failpoint names by owner kind (failpoints are static names a test arms).
fn failpoint(kind: &str, after_run: bool) -> &'static str {
    match (kind, after_run) {
        ("Tenant", false) => "tenant.launch.after-record",
        ("Tenant", true) => "tenant.launch.after-run",
        (_, false) => "workspace.launch.after-record",
        (_, true) => "workspace.launch.after-run",
    }
}

/// Records the attempt in status (written before RunInstances) and says why in an Event.
async fn record<S: Subject>(
    env: &Env<'_>,
    s: &S,
    st: &mut S::Status,
    attempt: u32,
    reason: LaunchReason,
) -> Result<(), Error> {
    let old = s.instance_id(st).clone().unwrap_or_default();
    let token = token(s.owner(), attempt);
    *s.record(st) = Some(LaunchRecord {
        token,
        attempt,
        spec_hash: s.spec_hash().to_owned(),
        launched_at: None,
        uncertain_since: None,
    });
    s.persist(st).await?;
    let noun = s.noun();
    let (warn, why, note) = match reason {
        LaunchReason::First => (false, "Launching", format!("launching attempt {attempt}")),
        LaunchReason::Lost => {
            env.metrics.relaunches.get_or_create(&kind_reason(s, "Lost")).inc();
            let note = format!("{noun} {old} was terminated or lost outside the operator; launching attempt {attempt}");
            (true, "Relaunching", note)
        }
        LaunchReason::Restart => (
            false,
            "Starting",
            format!("spot {} started again: launching attempt {attempt}", s.owner().kind.to_ascii_lowercase()),
        ),
        LaunchReason::Replace => {
            (false, "Replacing", format!("spec.compute changed: launching replacement attempt {attempt}"))
        }
        LaunchReason::TokenSpent => {
            env.metrics.relaunches.get_or_create(&kind_reason(s, "TokenSpent")).inc();
            let prev = attempt - 1;
            let note = format!(
                "the {noun} of attempt {prev} was terminated and purged, its launch token is spent \
                 (IdempotentInstanceTerminated); launching attempt {attempt}"
            );
            (true, "Relaunching", note)
        }
        LaunchReason::TokenMismatch => {
            let prev = attempt - 1;
            let note = format!(
                "the launch token of attempt {prev} was used with other parameters \
                 (IdempotentParameterMismatch: the spec changed after a launch whose answer was lost); \
                 attempt {attempt} is launched once an instance listing shows what that launch made"
            );
            (true, "LaunchTokenMismatch", note)
        }
    };
    s.event(warn, why, note).await;
    env.failpoints.hit(failpoint(s.owner().kind, false)).await;
    Ok(())
}

/// TerminateInstances, said in an Event (and a metric for duplicates).
async fn terminate<S: Subject>(env: &Env<'_>, s: &S, ids: &[String], why: TerminateWhy) -> Result<(), Error> {
    env.account.instances.terminate(ids).await?;
    let (list, noun) = (ids.join(", "), s.noun());
    match why {
        TerminateWhy::Duplicate => {
            let n = ids.len() as u64;
            env.metrics.duplicates_terminated.get_or_create(&kind_reason(s, "Duplicate")).inc_by(n);
            s.event(true, "DuplicateTerminated", format!("terminated duplicate {noun}(s) {list}")).await;
        }
        TerminateWhy::Predecessor => {
            s.event(false, "Replaced", format!("terminated replaced {noun}(s) {list}")).await;
        }
        TerminateWhy::SpotStop => {
            let note =
                format!("spot {noun} {list} terminated to stop (spot cannot stop); volumes and records are kept");
            s.event(false, "Stopping", note).await;
        }
    }
    Ok(())
}

/// StartInstances or StopInstances, written through to the cache and the current instance.
async fn power<S: Subject>(
    env: &Env<'_>,
    s: &S,
    id: &str,
    start: bool,
    current: Option<&mut Instance>,
) -> Result<(), Error> {
    let a = env.account;
    let (state, reason) = if start {
        a.instances.start(id).await?;
        (InstanceState::Pending, "Starting")
    } else {
        a.instances.stop(id).await?;
        (InstanceState::Stopping, "Stopping")
    };
    if let Some(c) = current {
        c.state = state;
    }
    let verb = if start { "starting" } else { "stopping" };
    s.event(false, reason, format!("{verb} {} {id}", s.noun())).await;
    Ok(())
}

/// EC2's answer to a ClientToken whose instance was terminated and purged.
pub const TOKEN_TERMINATED: &str = "IdempotentInstanceTerminated";
/// EC2's answer to a ClientToken used before with other parameters.
pub const TOKEN_MISMATCH: &str = "IdempotentParameterMismatch";

/// No launch while an earlier launch's outcome is unknown: the plan was made before a listing
/// that could show its instance (`plan_for` clears the guard when it plans from one).
fn unguarded<S: Subject>(env: &Env<'_>, s: &S, st: &mut S::Status) -> Result<(), Error> {
    if uncertain_since(env, s, st).is_none() {
        return Ok(());
    }
    env.account.cache.request_refresh();
    let what = "an earlier launch's outcome is unknown; waiting for a fresh instance listing";
    Err(Error::waiting_for(what, std::time::Duration::from_secs(1)))
}

/// Remembers that a launch's outcome is unknown, in the account's guard and in status (written
/// now, so a restarted or new leader keeps waiting; best effort: memory still holds).
async fn mark_uncertain<S: Subject>(env: &Env<'_>, s: &S, st: &mut S::Status) {
    let now = Timestamp::now();
    env.account.guard.mark(&s.owner().uid, now);
    if let Some(r) = s.record(st).as_mut() {
        r.uncertain_since = Some(now.to_string());
    }
    if let Err(e) = s.persist(st).await {
        tracing::warn!(uid = %s.owner().uid, error = %e, "could not record the uncertain launch in status");
    }
}

/// RunInstances for the recorded `attempt`; a token EC2 says is spent is never repeated: its
/// instance purged, the next attempt is recorded and launched, once; used with other parameters,
/// the next attempt is recorded and waits for a listing, and the error says why.
async fn launch_attempt<S: Subject>(env: &Env<'_>, s: &S, st: &mut S::Status, attempt: u32) -> Result<Instance, Error> {
    match launch(env, s, st, attempt).await {
        Err(Error::Cloud(e)) if e.code == TOKEN_TERMINATED => {
            record(env, s, st, attempt + 1, LaunchReason::TokenSpent).await?;
            launch(env, s, st, attempt + 1).await
        }
        Err(Error::Cloud(e)) if e.code == TOKEN_MISMATCH => {
            record(env, s, st, attempt + 1, LaunchReason::TokenMismatch).await?;
            mark_uncertain(env, s, st).await;
            let message = format!(
                "launch token {} was already used with other parameters; launch attempt {} is recorded and \
                 waits for an instance listing",
                e.target,
                attempt + 1
            );
            Err(Error::Cloud(CloudError { kind: ErrorKind::Rejected, message, ..e }))
        }
        r => r,
    }
}

/// RunInstances for the recorded `attempt`, then the instance in status.
async fn launch<S: Subject>(env: &Env<'_>, s: &S, st: &mut S::Status, attempt: u32) -> Result<Instance, Error> {
    let owner = s.owner();
    let mut req = s.request()?;
    // The recorded token when it is this attempt's: the token in status is the one to repeat.
    let recorded = s.record(st).as_ref().filter(|r| r.attempt == attempt).map(|r| r.token.clone());
    req.client_token = recorded.unwrap_or_else(|| token(owner, attempt));
    req.tags = env.identity.tags(owner);
    req.tags.insert(LAUNCH_ATTEMPT.into(), attempt.to_string());
    req.tags.insert(SPEC_HASH_TAG.into(), s.spec_hash().to_owned());
    let inst = match env.account.instances.launch(&req).await {
        Ok(inst) => inst,
        Err(e) => {
            // After a 5xx, a throttle, a timeout or a lost answer the instance may exist.
            if matches!(e.kind, ErrorKind::Transient | ErrorKind::Throttled) {
                mark_uncertain(env, s, st).await;
            }
            return Err(e.into());
        }
    };
    env.failpoints.hit(failpoint(owner.kind, true)).await;
    env.account.guard.clear(&owner.uid);
    if let Some(l) = s.record(st).as_mut() {
        l.launched_at = Some(Timestamp::now().to_string());
        l.uncertain_since = None;
    }
    *s.instance_id(st) = Some(inst.id.clone());
    s.launched(st, &inst);
    s.persist(st).await?;
    let note = format!("launched {} {} ({}) attempt {attempt}", s.noun(), inst.id, req.instance_type);
    s.event(false, "Launched", note).await;
    Ok(inst)
}
