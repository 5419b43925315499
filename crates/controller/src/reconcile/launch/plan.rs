//! The pure middle of the Workspace reconcile: from the observed instances, volume and status to
//! the next steps of the launch protocol. No I/O, no clock.
//!
//! Invariants (proved by the tests below and by the crash scenarios of the e2e suite):
//! - a launch is always preceded by a recorded launch attempt (the token is in status first);
//! - at most one instance per attempt survives (duplicates are terminated, keeping the one in
//!   status or the oldest);
//! - an instance that was running and vanished is relaunched with the next attempt, never with
//!   the old token;
//! - a replacement terminates its predecessor only once the new instance runs and holds the data
//!   volume.

use crate::cloud::{Instance, InstanceState, Volume};

/// Why a new launch attempt is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaunchReason {
    /// The first launch.
    First,
    /// The instance was terminated or lost outside the operator.
    Lost,
    /// A spot Workspace is started again after a stop (spot instances cannot stop).
    Restart,
    /// `spec.compute` changed and the policy allows replacing.
    Replace,
    /// AWS answered `IdempotentInstanceTerminated`: the attempt's instance was terminated and
    /// purged, its token can launch nothing any more.
    TokenSpent,
    /// AWS answered `IdempotentParameterMismatch`: the attempt's token was used by a launch
    /// with other parameters (the spec changed after a launch whose answer was lost).
    TokenMismatch,
}

/// Why instances are terminated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TerminateWhy {
    /// A second instance of the same attempt.
    Duplicate,
    /// The instance a replacement replaces.
    Predecessor,
    /// A spot instance asked to stop.
    SpotStop,
}

/// One step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write `status.launch` for `attempt`, then launch it (the executor does both, in order).
    Record { attempt: u32, reason: LaunchReason },
    /// RunInstances with the recorded token of `attempt`.
    Launch { attempt: u32 },
    /// TerminateInstances.
    Terminate { ids: Vec<String>, why: TerminateWhy },
    /// StopInstances.
    Stop { id: String },
    /// StartInstances.
    Start { id: String },
    /// Detach the data volume from an instance that is gone or going.
    Detach { volume: String, from: String },
    /// Attach the data volume.
    Attach { volume: String, to: String },
}

/// What the plan sees.
#[derive(Clone, Debug)]
#[expect(clippy::struct_excessive_bools, reason = "independent observations, not the states of one machine")]
pub struct Inputs<'a> {
    /// Every instance with the owner's uid tag, terminated ones included.
    pub instances: &'a [Instance],
    /// `status.instanceId`.
    pub status_instance: Option<&'a str>,
    /// `status.launch.attempt` and its spec hash.
    pub recorded: Option<(u32, &'a str)>,
    /// Hash of the resolved compute the spec asks for now.
    pub spec_hash: &'a str,
    /// `spec.state` is Running.
    pub want_running: bool,
    /// Drift may be applied now (Recreate, or recreate-at after the last launch).
    pub replace_allowed: bool,
    /// The data volume, when the Workspace has one.
    pub data_volume: Option<&'a Volume>,
    /// The current attempt was launched so recently that a listing may not show it yet
    /// (DescribeInstances is eventually consistent): missing is not lost yet.
    pub just_launched: bool,
    /// The recorded attempt was launched (`status.launch.launchedAt` is set): its token is spent.
    pub launched: bool,
}

/// The outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The instance of the current attempt, if alive.
    pub current: Option<Instance>,
    /// The current attempt (0 before the first record).
    pub attempt: u32,
    /// Steps, in order.
    pub steps: Vec<Step>,
    /// Older instances still alive (a replacement in progress).
    pub predecessors: Vec<String>,
    /// The current instance runs a different spec than asked.
    pub drifted: bool,
    /// The instance in status lives under another identity (set by `launch::plan_for`, which
    /// then plans no step).
    pub mismatch: Option<super::verify::Mismatch>,
}

/// The tag that records the spec hash an instance was launched from.
pub const SPEC_HASH_TAG: &str = "moleculesai.app/spec-hash";

fn oldest_first(a: &Instance, b: &Instance) -> std::cmp::Ordering {
    (a.launch_time.as_deref(), a.id.as_str()).cmp(&(b.launch_time.as_deref(), b.id.as_str()))
}

/// Plans the next steps. See the module docs for the invariants.
pub fn plan(i: &Inputs<'_>) -> Plan {
    let alive: Vec<&Instance> = i.instances.iter().filter(|x| x.state.is_alive()).collect();
    let recorded_attempt = i.recorded.map_or(0, |r| r.0);
    let attempt = i.instances.iter().map(Instance::attempt).chain([recorded_attempt]).max().unwrap_or(0);
    let mut out = Plan { attempt, ..Plan::default() };

    let mut mine: Vec<&Instance> = alive.iter().copied().filter(|x| x.attempt() == attempt && attempt > 0).collect();
    mine.sort_by(|a, b| oldest_first(a, b));
    let keep = mine.iter().position(|x| Some(x.id.as_str()) == i.status_instance).unwrap_or(0);
    let current = if mine.is_empty() { None } else { Some(mine.remove(keep)) };
    if !mine.is_empty() {
        out.steps
            .push(Step::Terminate { ids: mine.iter().map(|x| x.id.clone()).collect(), why: TerminateWhy::Duplicate });
    }
    let preds: Vec<&Instance> = alive.iter().copied().filter(|x| x.attempt() < attempt || attempt == 0).collect();
    out.predecessors = preds.iter().map(|x| x.id.clone()).collect();

    let Some(c) = current else {
        if i.want_running {
            out.steps.extend(next_launch(i, attempt));
        } else if !preds.is_empty() {
            out.steps.push(Step::Terminate { ids: out.predecessors.clone(), why: TerminateWhy::Predecessor });
        }
        return out;
    };
    out.current = Some(c.clone());
    out.drifted = c.tag(SPEC_HASH_TAG).is_some_and(|h| h != i.spec_hash)
        || (c.tag(SPEC_HASH_TAG).is_none() && i.recorded.is_some_and(|r| r.0 == attempt && r.1 != i.spec_hash));

    if out.drifted && i.replace_allowed && i.want_running && preds.is_empty() {
        out.steps.push(Step::Record { attempt: attempt + 1, reason: LaunchReason::Replace });
        return out;
    }
    match (c.state, i.want_running) {
        (InstanceState::Running, false) if c.spot => {
            out.steps.push(Step::Terminate { ids: vec![c.id.clone()], why: TerminateWhy::SpotStop });
        }
        (InstanceState::Running, false) => out.steps.push(Step::Stop { id: c.id.clone() }),
        (InstanceState::Stopped, true) => out.steps.push(Step::Start { id: c.id.clone() }),
        _ => {}
    }
    let runs = c.state == InstanceState::Running && i.want_running;
    if runs && let Some(v) = i.data_volume {
        out.steps.extend(volume_step(v, c, &alive));
    }
    if !preds.is_empty() && (runs || !i.want_running) {
        out.steps.push(Step::Terminate { ids: out.predecessors.clone(), why: TerminateWhy::Predecessor });
    }
    out
}

/// The data volume's step once the current instance runs: attach it, or detach it from a holder
/// that is dead or unknown (a live predecessor is terminated by the plan instead).
fn volume_step(v: &Volume, current: &Instance, alive: &[&Instance]) -> Option<Step> {
    match v.attached_to.as_deref() {
        Some(to) if to == current.id => None,
        Some(other) if !alive.iter().any(|x| x.id == other) => {
            Some(Step::Detach { volume: v.id.clone(), from: other.to_owned() })
        }
        None if v.state == "available" => Some(Step::Attach { volume: v.id.clone(), to: current.id.clone() }),
        Some(_) | None => None,
    }
}

/// The launch step when no instance of the current attempt is alive.
/// `None`: wait (a just-launched instance may not be listed yet).
fn next_launch(i: &Inputs<'_>, attempt: u32) -> Option<Step> {
    if attempt == 0 {
        return Some(Step::Record { attempt: 1, reason: LaunchReason::First });
    }
    // The instance status last reported: dead in this attempt, or vanished from the listing
    // altogether (once it is old enough to be listed), means it was lost behind our back.
    if let Some(id) = i.status_instance {
        match i.instances.iter().find(|x| x.id == id) {
            Some(x) if !x.state.is_alive() && x.attempt() == attempt => {
                return Some(Step::Record { attempt: attempt + 1, reason: LaunchReason::Lost });
            }
            None if i.just_launched => return None,
            None => return Some(Step::Record { attempt: attempt + 1, reason: LaunchReason::Lost }),
            Some(_) => {}
        }
    }
    // Dead without being the one in status: we terminated it (a spot stop).
    if i.instances.iter().any(|x| !x.state.is_alive() && x.attempt() == attempt) {
        return Some(Step::Record { attempt: attempt + 1, reason: LaunchReason::Restart });
    }
    Some(match i.recorded {
        // Launched, and listed neither alive nor dead once it could be: gone (a spot instance
        // stopped and purged by AWS). Its token would answer IdempotentInstanceTerminated.
        Some((a, _)) if a == attempt && i.launched && !i.just_launched => {
            let reason = if i.status_instance.is_some() { LaunchReason::Lost } else { LaunchReason::Restart };
            Step::Record { attempt: attempt + 1, reason }
        }
        // Recorded, never seen launched: launch that attempt (its token makes a repeat harmless
        // on AWS), after re-recording if the spec changed meanwhile.
        Some((a, h)) if a == attempt && h == i.spec_hash => Step::Launch { attempt },
        Some((a, _)) if a == attempt => Step::Record { attempt, reason: LaunchReason::First },
        _ => Step::Record { attempt: attempt + 1, reason: LaunchReason::Lost },
    })
}

#[cfg(test)]
mod tests;
