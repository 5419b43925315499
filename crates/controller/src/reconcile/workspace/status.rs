//! Phase, conditions and the desktop status of a Workspace, from what the reconcile saw. Pure.

use molecule_crds::catalog::Usd;
use molecule_crds::conditions;
use molecule_crds::v1alpha1::{
    Condition, ConditionStatus, DisplayMode, DisplayStatusSpec, WorkspacePhase, WorkspaceStatus,
};

use crate::cloud::tags::{BOOT, DISPLAY};
use crate::cloud::{Instance, InstanceState};
use crate::reconcile::launch::{LaunchReason, Step};

/// The DNS record's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsState {
    /// Written and owned.
    Ready,
    /// No zone configured.
    Disabled,
    /// Not written yet (no IP yet, or not reached yet).
    Pending,
    /// A record exists that is not ours; we never touch it.
    NotOwned(String),
    /// No pending or running instance: the record and its TXT are removed (or were never ours).
    Removed,
    /// The write failed.
    Failed(String),
}

/// Everything the status is computed from.
#[derive(Clone, Debug)]
pub struct View<'a> {
    /// None when admitted, else (reason, message).
    pub rejection: Option<(&'a str, &'a str)>,
    /// spec.state is Running.
    pub want_running: bool,
    /// The instance of the current attempt.
    pub current: Option<&'a Instance>,
    /// Older instances still alive.
    pub replacing: bool,
    /// The DNS record.
    pub dns: DnsState,
    /// Desktop mode.
    pub display_mode: DisplayMode,
    /// Drifted message, when drifted.
    pub drift: Option<String>,
    /// The last step's failure, for the Ready message.
    pub error: Option<String>,
    /// The data volume, as it stands after the reconcile's steps.
    pub volume: VolumeState,
    /// The instance in status lives under another identity (`launch::verify`): said in
    /// InstanceReady and Ready with reason IdentityMismatch.
    pub mismatch: Option<String>,
}

/// The data volume as the status tells it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum VolumeState {
    /// The Workspace has no data volume.
    #[default]
    None,
    /// Attached to the current instance: its size and the size the spec asks (0: unknown).
    Attached {
        /// Volume ID.
        id: String,
        /// Its size in GiB.
        size_gb: u32,
        /// `dataGb`.
        want_gb: u32,
    },
    /// Not attached to the current instance (yet): held by another instance, or free.
    Moving {
        /// Volume ID.
        id: String,
        /// The instance that still holds it.
        holder: Option<String>,
    },
    /// In another zone than the subnet: no instance there can attach it (what to do).
    ZoneMismatch(String),
}

/// The reason that says a data volume is in another availability zone (Stalled).
pub const ZONE_MISMATCH_REASON: &str = "VolumeZoneMismatch";

/// DataVolumeReady: (ok, reason, message); `ok` is whether Ready may be True.
fn volume_condition(v: &View<'_>) -> (bool, bool, &'static str, String) {
    let current = v.current.map_or("the next instance", |c| c.id.as_str());
    match &v.volume {
        VolumeState::None => (true, true, "NoDataVolume", "spec.compute.volume.dataGb is not set".to_owned()),
        VolumeState::Attached { id, size_gb, want_gb } if size_gb != want_gb && *size_gb > 0 && *want_gb > 0 => (
            false,
            true,
            "SizeNotApplied",
            format!(
                "data volume {id} has {size_gb} GB and stays so: spec.compute.volume.dataGb asks {want_gb}, but the \
                 operator does not resize data volumes (see docs/api.md, Data volume)"
            ),
        ),
        VolumeState::Attached { id, .. } => {
            (true, true, "Attached", format!("data volume {id} is attached to {current}"))
        }
        VolumeState::Moving { id, .. } if !v.want_running => {
            (false, true, "Stopped", format!("the workspace is stopped: data volume {id} is kept"))
        }
        VolumeState::Moving { id, holder: Some(h) } if h != current => (
            false,
            false,
            "VolumeMoving",
            format!("data volume {id} is still attached to {h}: it moves to {current} once {h} releases it"),
        ),
        VolumeState::Moving { id, .. } => {
            (false, false, "VolumeAttaching", format!("data volume {id} is being attached to {current}"))
        }
        VolumeState::ZoneMismatch(m) => (false, false, ZONE_MISMATCH_REASON, m.clone()),
    }
}

fn boot(i: &Instance) -> Option<&str> {
    i.tag(BOOT)
}

/// The lifecycle phase.
pub fn phase(v: &View<'_>) -> WorkspacePhase {
    if v.rejection.is_some() {
        return WorkspacePhase::Pending;
    }
    if v.replacing {
        return WorkspacePhase::Replacing;
    }
    if v.mismatch.is_some() {
        return WorkspacePhase::Failed;
    }
    let Some(c) = v.current else {
        return if v.want_running { WorkspacePhase::Provisioning } else { WorkspacePhase::Stopped };
    };
    match (c.state, v.want_running) {
        (InstanceState::Running, true) => match boot(c) {
            // Running once the data volume is on it too (a replacement moves it after the boot).
            Some("ready") if matches!(v.volume, VolumeState::None | VolumeState::Attached { .. }) => {
                WorkspacePhase::Running
            }
            Some("failed") => WorkspacePhase::Failed,
            _ => WorkspacePhase::Provisioning,
        },
        (InstanceState::Running, false) | (InstanceState::Stopping, _) => WorkspacePhase::Stopping,
        (InstanceState::Stopped, false) => WorkspacePhase::Stopped,
        _ => WorkspacePhase::Provisioning,
    }
}

/// `status.estimatedHourlyUsd`: the instance list price plus gp3 storage, except that a Stopped
/// Workspace pays only its volumes (AWS does not bill a stopped instance).
pub fn hourly_usd(total: Usd, instance: Usd, phase: WorkspacePhase) -> String {
    let billed = if phase == WorkspacePhase::Stopped {
        Usd::from_nanos(total.nanos().saturating_sub(instance.nanos()))
    } else {
        total
    };
    billed.to_decimal_4()
}

/// The desktop status word.
pub fn display_status(v: &View<'_>) -> DisplayStatusSpec {
    match v.current {
        None if v.want_running => DisplayStatusSpec::Provisioning,
        None => DisplayStatusSpec::Unavailable,
        Some(c) => match c.state {
            InstanceState::Pending => DisplayStatusSpec::Provisioning,
            InstanceState::Running if !v.want_running => DisplayStatusSpec::Unavailable,
            InstanceState::Running => match (boot(c), c.tag(DISPLAY)) {
                (_, Some("ready")) => DisplayStatusSpec::Ready,
                (_, Some("offline")) => DisplayStatusSpec::Offline,
                (Some("ready"), _) => DisplayStatusSpec::Starting,
                _ => DisplayStatusSpec::Provisioning,
            },
            _ => DisplayStatusSpec::Unavailable,
        },
    }
}

/// Sets `types` (and Ready) False with `reason` and `message`: a failed reconcile or a blocked
/// delete says so in status. Transition times move only if a status changes.
pub fn set_failed(
    st: &mut WorkspaceStatus,
    types: &[&str],
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &str,
) {
    for t in types.iter().chain(["Ready"].iter()) {
        conditions::set(&mut st.conditions, cond(t, false, reason, message, generation, now));
    }
}

fn cond(t: &str, ok: bool, reason: &str, message: impl Into<String>, generation: Option<i64>, now: &str) -> Condition {
    conditions::new(t, ok, reason, message, generation, now)
}

/// Before steps that launch: the launch writes the status mid-protocol (the attempt before
/// RunInstances, the new instance ID after), and that write must not carry the old instance's
/// `Ready=True` and phase next to the new generation or instance ID (issue 13: a Recreate showed
/// the new instance Ready while the data volume was still on the old one).
pub fn before_steps(st: &mut WorkspaceStatus, steps: &[Step], generation: Option<i64>, now: &str) {
    let reason = steps.iter().find_map(|s| match s {
        Step::Record { reason, .. } => Some(*reason),
        Step::Launch { .. } => Some(LaunchReason::First),
        _ => None,
    });
    let Some(reason) = reason else { return };
    let (why, message, phase) = match reason {
        LaunchReason::Replace => ("Replacing", "a new instance is replacing the old one", WorkspacePhase::Replacing),
        LaunchReason::Lost => ("Relaunching", "launching the next attempt", WorkspacePhase::Provisioning),
        LaunchReason::Restart => ("Starting", "launching the next attempt", WorkspacePhase::Provisioning),
        _ => ("Launching", "the instance is being launched", WorkspacePhase::Provisioning),
    };
    for t in ["InstanceReady", "Ready"] {
        conditions::set(&mut st.conditions, cond(t, false, why, message, generation, now));
    }
    st.phase = Some(phase);
}

/// `Admitted=True`: resolution, quotas and binding passed.
pub fn admitted(st: &mut WorkspaceStatus, generation: Option<i64>, now: &str) {
    conditions::set(&mut st.conditions, cond("Admitted", true, "Admitted", ADMITTED, generation, now));
}

const ADMITTED: &str = "resolution, quotas and tenant binding passed";

/// DnsReady: (ok, reason, message).
fn dns_condition(dns: &DnsState) -> (bool, &'static str, String) {
    match dns {
        DnsState::Ready => (true, "RecordWritten", "A record and its ownership TXT record are written".to_owned()),
        DnsState::Disabled => {
            (true, "DnsDisabled", "WORKSPACE_HOSTED_ZONE_ID is not set: no record is written".to_owned())
        }
        DnsState::Pending => (false, "RecordPending", "waiting for the instance's private IP".to_owned()),
        DnsState::Removed => (
            true,
            "RecordRemoved",
            "no running instance: its A record and ownership TXT record are removed (written again when it runs)"
                .to_owned(),
        ),
        DnsState::NotOwned(m) => (false, "RecordNotOwned", m.clone()),
        DnsState::Failed(m) => (false, "RecordFailed", m.clone()),
    }
}

/// DisplayReady: (ok, reason, message).
fn display_condition(v: &View<'_>) -> (bool, &'static str, &'static str) {
    if !v.display_mode.is_enabled() {
        return (true, "NoDisplay", "display mode none");
    }
    match display_status(v) {
        DisplayStatusSpec::Ready => (true, "DisplayReady", "the desktop answers on the instance"),
        DisplayStatusSpec::Offline => (false, "DisplayOffline", "the desktop stack reported it is down"),
        DisplayStatusSpec::Starting => (false, "DisplayStarting", "the desktop stack is starting"),
        DisplayStatusSpec::Provisioning => (false, "Provisioning", "the instance is being launched"),
        DisplayStatusSpec::Unavailable => (false, "Stopped", "the instance is not running"),
    }
}

/// Writes every condition into `st` (transition times move only on status changes).
pub fn set_conditions(st: &mut WorkspaceStatus, v: &View<'_>, generation: Option<i64>, now: &str) {
    let mut put = |c: Condition| {
        conditions::set(&mut st.conditions, c);
    };
    if let Some((reason, message)) = v.rejection {
        put(cond("Admitted", false, reason, message, generation, now));
        put(cond("Ready", false, "NotAdmitted", message, generation, now));
        return;
    }
    put(cond("Admitted", true, "Admitted", ADMITTED, generation, now));
    // A group that could not be converged never gets here: the reconcile stops before the plan
    // and sets NetworkReady False (set_failed).
    put(cond("NetworkReady", true, "SecurityGroupReady", "security group rules converged", generation, now));
    let (inst_ok, inst_reason, inst_msg) = instance_condition(v);
    put(cond("InstanceReady", inst_ok, inst_reason, inst_msg.clone(), generation, now));
    let (dns_ok, dns_reason, dns_msg) = dns_condition(&v.dns);
    put(cond("DnsReady", dns_ok, dns_reason, dns_msg.clone(), generation, now));
    let (disp_ok, disp_reason, disp_msg) = display_condition(v);
    put(cond("DisplayReady", disp_ok, disp_reason, disp_msg, generation, now));
    // Ready needs the data volume on the current instance: during a replacement it is still on
    // the predecessor (or between the two) after the new instance boots.
    let (vol_cond, vol_ok, vol_reason, vol_msg) = volume_condition(v);
    put(cond("DataVolumeReady", vol_cond, vol_reason, vol_msg.clone(), generation, now));
    put(match &v.drift {
        Some(m) => cond("Drifted", true, "SpecChanged", m.clone(), generation, now),
        None => cond("Drifted", false, "InSync", "the instance matches spec.compute", generation, now),
    });
    let ready = !v.replacing && inst_ok && dns_ok && disp_ok && vol_ok;
    put(if ready {
        cond("Ready", true, "Ready", "the workspace is running and reachable", generation, now)
    } else if let Some(m) = &v.mismatch {
        cond("Ready", false, crate::reconcile::launch::verify::REASON, m.clone(), generation, now)
    } else if !v.want_running {
        cond("Ready", false, "Stopped", "spec.state is Stopped", generation, now)
    } else if let Some(e) = &v.error {
        cond("Ready", false, "ReconcileError", e.clone(), generation, now)
    } else {
        let (reason, msg) = if v.replacing {
            ("Replacing", "a new instance is replacing the old one".to_owned())
        } else if matches!(v.volume, VolumeState::ZoneMismatch(_)) {
            (vol_reason, vol_msg)
        } else if !inst_ok {
            (inst_reason, inst_msg)
        } else if !vol_ok {
            (vol_reason, vol_msg)
        } else if !dns_ok {
            (dns_reason, dns_msg)
        } else {
            (disp_reason, disp_msg.to_owned())
        };
        cond("Ready", false, reason, msg, generation, now)
    });
}

fn instance_condition(v: &View<'_>) -> (bool, &'static str, String) {
    if let Some(m) = &v.mismatch {
        return (false, crate::reconcile::launch::verify::REASON, m.clone());
    }
    let Some(c) = v.current else {
        return if v.want_running {
            (false, "Launching", "no instance yet".into())
        } else {
            (false, "Stopped", "no instance while stopped".into())
        };
    };
    match c.state {
        InstanceState::Running => match boot(c) {
            Some("ready") => (true, "BootReady", format!("instance {} runs and its bootstrap reported ready", c.id)),
            Some("failed") => (
                false,
                "BootFailed",
                format!("the bootstrap of instance {} failed; see /var/log/molecule-bootstrap.log", c.id),
            ),
            _ => (false, "Booting", format!("instance {} runs; waiting for its bootstrap", c.id)),
        },
        InstanceState::Pending => (false, "Launching", format!("instance {} is pending", c.id)),
        s => (false, "Stopped", format!("instance {} is {s}", c.id)),
    }
}

/// Events for the transitions between two statuses: (warning, reason, note).
pub fn transitions(old: &WorkspaceStatus, new: &WorkspaceStatus) -> Vec<(bool, String, String)> {
    let mut out = Vec::new();
    if old.phase != new.phase
        && let Some(p) = new.phase
    {
        let from = old.phase.map_or("none".to_owned(), |o| format!("{o:?}"));
        out.push((p == WorkspacePhase::Failed, format!("{p:?}"), format!("phase {from} → {p:?}")));
    }
    for t in ["Admitted", "Drifted", "Ready", "DnsReady"] {
        let (a, b) = (conditions::get(&old.conditions, t), conditions::get(&new.conditions, t));
        let Some(b) = b else { continue };
        let changed = a.is_none_or(|a| a.status != b.status || a.reason != b.reason);
        let bad = match t {
            "Drifted" => b.status == ConditionStatus::True,
            _ => b.status == ConditionStatus::False,
        };
        // Only the news worth a line in `kubectl describe`: refusals, drift, DNS trouble, ready.
        let noteworthy = match t {
            "Ready" => !bad,
            "DnsReady" => bad && b.reason != "RecordPending",
            _ => bad,
        };
        if changed && noteworthy {
            out.push((bad, b.reason.clone(), b.message.clone()));
        }
    }
    out
}

/// The machine that runs is what status shows; a pending drift shows in Drifted. A new catalog
/// image is not drift: the AMI shown is the one the instance really runs. A Stopped Workspace
/// costs only its volumes.
pub fn show_machine(
    st: &mut WorkspaceStatus,
    resolved: &molecule_crds::resolve::Resolved,
    current: Option<&crate::cloud::Instance>,
    drifted: bool,
    phase: WorkspacePhase,
    catalog: &molecule_crds::catalog::Catalog,
) {
    if drifted && st.resolved.is_some() {
        return;
    }
    let mut shown = resolved.compute.clone();
    if let Some(c) = current.filter(|c| !c.image_id.is_empty()) {
        shown.ami_id.clone_from(&c.image_id);
    }
    st.resolved = Some(shown);
    let instance = catalog.get(&resolved.compute.instance_type).map(|t| t.hourly).unwrap_or_default();
    st.estimated_hourly_usd = Some(hourly_usd(resolved.hourly, instance, phase));
}

#[cfg(test)]
mod tests;
