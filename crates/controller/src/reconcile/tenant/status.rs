//! Conditions, phase, usage and the Events of a Tenant's status. Pure.

use molecule_crds::conditions;
use molecule_crds::quota;
use molecule_crds::v1alpha1::{Condition, ConditionStatus, TenantPhase, TenantStatus, TenantUsage, Workspace};

use crate::cloud::tags::BOOT;
use crate::cloud::{Instance, InstanceState};

/// The condition types every Tenant reports besides Ready.
pub const PARTS: [&str; 5] = ["InstanceReady", "NetworkReady", "SecretReady", "TunnelReady", "DnsReady"];

/// Sets one condition (the transition time moves only when its status changes).
pub fn set(
    st: &mut TenantStatus,
    t: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: &str,
) {
    conditions::set(&mut st.conditions, conditions::new(t, ok, reason, message, generation, now));
}

/// A Tenant that cannot be provisioned as configured: `concerns` and Ready False, phase Failed.
pub fn blocked(
    st: &mut TenantStatus,
    concerns: &[&str],
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &str,
) {
    for t in concerns.iter().chain(["Ready"].iter()) {
        set(st, t, false, reason, message, generation, now);
    }
    st.phase = Some(TenantPhase::Failed);
}

/// Ready from the parts; the phase from Ready, the wanted state and the VM's state.
pub fn conclude(st: &mut TenantStatus, want_running: bool, vm_stopped: bool, generation: Option<i64>, now: &str) {
    let failing: Vec<&Condition> = PARTS
        .iter()
        .filter_map(|t| conditions::get(&st.conditions, t))
        .filter(|c| c.status != ConditionStatus::True)
        .collect();
    let missing = PARTS.iter().any(|t| conditions::get(&st.conditions, t).is_none());
    if !want_running && vm_stopped {
        set(st, "Ready", false, "Stopped", "spec.state is Stopped: the tenant VM is stopped", generation, now);
        st.phase = Some(TenantPhase::Stopped);
    } else if failing.is_empty() && !missing {
        set(
            st,
            "Ready",
            true,
            "Ready",
            "the tenant VM runs and its hostname is served through the tunnel",
            generation,
            now,
        );
        st.phase = Some(TenantPhase::Ready);
    } else {
        let (reason, message) = failing.first().map_or(("Provisioning".to_owned(), String::new()), |c| {
            (c.reason.clone(), format!("{}: {}", c.type_, c.message))
        });
        set(st, "Ready", false, &reason, message, generation, now);
        st.phase = Some(TenantPhase::Provisioning);
    }
}

/// InstanceReady (and Drifted) from the VM the reconcile ended with.
pub fn instance(
    st: &mut TenantStatus,
    current: Option<&Instance>,
    want_running: bool,
    drifted: bool,
    generation: Option<i64>,
    now: &str,
) {
    if let Some(c) = current {
        st.instance_id = Some(c.id.clone());
        st.private_ip.clone_from(&c.private_ip);
    }
    match current {
        Some(c) if c.state == InstanceState::Running && c.tag(BOOT) == Some("failed") => {
            let msg = format!("the bootstrap of tenant VM {} failed; see /var/log/molecule-bootstrap.log", c.id);
            set(st, "InstanceReady", false, "BootFailed", msg, generation, now);
        }
        Some(c) if c.state == InstanceState::Running => {
            set(st, "InstanceReady", true, "Running", format!("tenant VM {} runs", c.id), generation, now);
        }
        Some(c) => {
            let reason = if want_running { "Pending" } else { "Stopped" };
            set(st, "InstanceReady", false, reason, format!("tenant VM {} is {}", c.id, c.state), generation, now);
        }
        None => set(st, "InstanceReady", false, "Launching", "no tenant VM yet", generation, now),
    }
    if drifted {
        let msg = "spec.instanceType (or the tenant AMI) changed since launch; the VM is not replaced automatically";
        set(st, "Drifted", true, "SpecChanged", msg, generation, now);
    } else if conditions::get(&st.conditions, "Drifted").is_some() {
        set(st, "Drifted", false, "InSync", "the VM matches spec.instanceType", generation, now);
    }
}

/// InstanceReady after the boot deadline's verdict: `BootTimedOut` (Stalled) once the relaunched
/// VM missed it too, `Relaunching` while the first one goes.
pub fn boot(st: &mut TenantStatus, v: &crate::reconcile::boot::Verdict, generation: Option<i64>, now: &str) {
    use crate::reconcile::boot::Verdict;
    match v {
        Verdict::Failed(m) => set(st, "InstanceReady", false, "BootTimedOut", m.clone(), generation, now),
        Verdict::Relaunch(m) => set(st, "InstanceReady", false, "Relaunching", m.clone(), generation, now),
        Verdict::Fine => {}
    }
}

/// What the tenant's admitted Workspaces use: those that passed admission or run an instance.
pub fn usage<'a>(slug: &str, workspaces: impl Iterator<Item = &'a Workspace>) -> TenantUsage {
    workspaces.filter(|w| w.spec.tenant == slug).filter_map(usage_of).fold(TenantUsage::default(), quota::add)
}

/// What one Workspace adds to its Tenant's usage: nothing unless it passed admission or runs an
/// instance.
pub fn usage_of(w: &Workspace) -> Option<TenantUsage> {
    let s = w.status.as_ref()?;
    let counts = conditions::is_true(&s.conditions, "Admitted") || s.launch.is_some();
    s.resolved.as_ref().filter(|_| counts).map(quota::usage_of_compute)
}

/// Events for the transitions between two statuses: (warning, reason, note).
pub fn transitions(old: &TenantStatus, new: &TenantStatus) -> Vec<(bool, String, String)> {
    let mut out = Vec::new();
    if old.phase != new.phase
        && let Some(p) = new.phase
    {
        let from = old.phase.map_or("none".to_owned(), |o| format!("{o:?}"));
        out.push((p == TenantPhase::Failed, format!("{p:?}"), format!("phase {from} → {p:?}")));
    }
    for t in PARTS.iter().chain(["Ready"].iter()) {
        let (a, b) = (conditions::get(&old.conditions, t), conditions::get(&new.conditions, t));
        let Some(b) = b else { continue };
        let changed = a.is_none_or(|a| a.status != b.status || a.reason != b.reason);
        // Only what is worth a line in `kubectl describe`: failures of a part, and Ready.
        let bad = b.status != ConditionStatus::True;
        let pending =
            ["Provisioning", "Launching", "Pending", "Booting", "Stopped", "Erasing"].contains(&b.reason.as_str());
        if changed && ((bad && !pending) || (*t == "Ready" && !bad)) {
            out.push((bad, b.reason.clone(), format!("{t}: {}", b.message)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_parts(st: &mut TenantStatus, ok: bool) {
        for t in PARTS {
            set(st, t, ok, if ok { "Ok" } else { "Broken" }, "m", Some(1), "t");
        }
    }

    #[test]
    fn ready_needs_every_part() {
        let mut st = TenantStatus::default();
        conclude(&mut st, true, false, Some(1), "t");
        assert_eq!(st.phase, Some(TenantPhase::Provisioning), "no part reported yet");
        all_parts(&mut st, true);
        conclude(&mut st, true, false, Some(1), "t");
        assert_eq!(st.phase, Some(TenantPhase::Ready));
        assert!(conditions::is_true(&st.conditions, "Ready"));
        set(&mut st, "TunnelReady", false, "CloudflareNotConfigured", "no token", Some(1), "t");
        conclude(&mut st, true, false, Some(1), "t");
        assert_eq!(st.phase, Some(TenantPhase::Provisioning));
        let ready = conditions::get(&st.conditions, "Ready").map(|c| c.reason.clone());
        assert_eq!(ready.as_deref(), Some("CloudflareNotConfigured"), "Ready names the failing part");
    }

    #[test]
    fn stopped_is_its_own_phase() {
        let mut st = TenantStatus::default();
        all_parts(&mut st, true);
        conclude(&mut st, false, true, Some(1), "t");
        assert_eq!(st.phase, Some(TenantPhase::Stopped));
    }

    #[test]
    fn blocked_fails_the_concerned_parts_and_ready() {
        let mut st = TenantStatus::default();
        blocked(&mut st, &["InstanceReady"], "IamRoleNotOurs", "set it", Some(1), "t");
        assert_eq!(st.phase, Some(TenantPhase::Failed));
        assert_eq!(st.conditions.len(), 2);
        let ev = transitions(&TenantStatus::default(), &st);
        assert!(ev.iter().any(|(w, r, _)| *w && r == "IamRoleNotOurs"), "{ev:?}");
    }
}
