//! The conditions GitOps tools read, derived from the ones the reconcilers set: `Reconciling`,
//! `Stalled` and `Paused`. Pure, and the same for both kinds.
//!
//! kstatus (what Flux and kpt use) reads, in order: a deletion timestamp (Terminating), an
//! `observedGeneration` behind `metadata.generation` (InProgress), `Reconciling=True`
//! (InProgress), `Stalled=True` (Failed), `Ready` not True (InProgress), else Current. Argo CD's
//! Lua checks shipped in the chart read the same conditions. So:
//!
//! - `Stalled=True` only when waiting cannot help: a spec change or an operator action must
//!   (not admitted, boot failed, a record that is not ours, a delete or erasure blocked past its
//!   deadline, a setting the operator lacks). Its reason is the blocking reason.
//! - `Reconciling=True` while the operator is still converging (Ready is not True, nothing is
//!   stalled, the object is not paused and not settled in a state that is not Ready by design).
//! - `Paused=True` while the annotation `moleculesai.app/paused` is `"true"`.

use crate::conditions;
use crate::v1alpha1::{Condition, ConditionStatus};

/// Annotation that pauses an object: no cloud call is made for it while it is `"true"`.
pub const PAUSED_ANNOTATION: &str = "moleculesai.app/paused";

/// `Ready=False` reasons that waiting cannot fix: only a spec change or an operator action can.
pub const STALLED_REASONS: &[&str] = &[
    "VolumeZoneMismatch",
    "NotAdmitted",
    "TenantStalled",
    "BootFailed",
    "BootTimedOut",
    "DeletionBlocked",
    "ErasureBlocked",
    "RecordNotOwned",
    "RecordNotOurs",
    "CanaryTenant",
    "CanaryNotConfigured",
    "AccountDenied",
    "CloudflareNotConfigured",
    "NoPlatformImage",
    "NoImage",
    "IdentityMismatch",
    "IamRoleNotOurs",
];

/// What the derivation needs besides the conditions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inputs<'a> {
    /// The object carries `moleculesai.app/paused: "true"`.
    pub paused: bool,
    /// The object rests in a state its spec asks for that is not Ready by design (stopped).
    pub settled: bool,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Now, RFC 3339.
    pub now: &'a str,
}

/// Whether `value` of the paused annotation pauses the object.
pub fn is_paused(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Why the object is stalled, from its other conditions: (reason, message).
pub fn stalled(conds: &[Condition]) -> Option<(String, String)> {
    if let Some(a) = conditions::get(conds, "Admitted").filter(|c| c.status == ConditionStatus::False) {
        return Some((a.reason.clone(), a.message.clone()));
    }
    conditions::get(conds, "Ready")
        .filter(|c| c.status != ConditionStatus::True && STALLED_REASONS.contains(&c.reason.as_str()))
        .map(|c| (c.reason.clone(), c.message.clone()))
}

/// Sets `Reconciling`, `Stalled` and `Paused` from the other conditions and `i`.
pub fn derive(conds: &mut Vec<Condition>, i: Inputs<'_>) {
    let (paused, stalled_c, reconciling) = if i.paused {
        (
            (
                true,
                "Paused".to_owned(),
                "the annotation moleculesai.app/paused is \"true\": no cloud call is made".to_owned(),
            ),
            (false, "Paused".to_owned(), "paused: nothing is checked until the annotation is removed".to_owned()),
            (false, "Paused".to_owned(), "paused: nothing is converged until the annotation is removed".to_owned()),
        )
    } else {
        let stall = stalled(conds);
        let reconciling = if let Some((reason, msg)) = &stall {
            (false, reason.clone(), format!("stalled: {msg}"))
        } else if conditions::is_true(conds, "Ready") {
            (false, "Ready".to_owned(), "converged".to_owned())
        } else if i.settled {
            (false, "Settled".to_owned(), "at rest in the state the spec asks for".to_owned())
        } else {
            // Ready's reason and message say what the operator waits for: kstatus shows this one.
            conditions::get(conds, "Ready").map_or_else(
                || (true, "Pending".to_owned(), "converging toward the spec".to_owned()),
                |c| (true, c.reason.clone(), c.message.clone()),
            )
        };
        let stalled_c = match stall {
            Some((reason, msg)) => (true, reason, msg),
            None => (false, "NotStalled".to_owned(), "nothing blocks convergence".to_owned()),
        };
        ((false, "NotPaused".to_owned(), "not paused".to_owned()), stalled_c, reconciling)
    };
    for (t, (ok, reason, message)) in [("Paused", paused), ("Stalled", stalled_c), ("Reconciling", reconciling)] {
        conditions::set(conds, conditions::new(t, ok, &reason, message, i.generation, i.now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, bool, &str)]) -> Vec<Condition> {
        pairs.iter().map(|(t, ok, r)| conditions::new(t, *ok, r, format!("{r} message"), Some(1), "t0")).collect()
    }

    fn run(mut c: Vec<Condition>, paused: bool, settled: bool) -> Vec<Condition> {
        derive(&mut c, Inputs { paused, settled, generation: Some(2), now: "t1" });
        c
    }

    fn status(c: &[Condition], t: &str) -> (bool, String) {
        let c = conditions::get(c, t).expect("condition set");
        (c.status == ConditionStatus::True, c.reason.clone())
    }

    #[test]
    fn ready_is_neither_reconciling_nor_stalled() {
        let c = run(with(&[("Admitted", true, "Admitted"), ("Ready", true, "Ready")]), false, false);
        assert_eq!(status(&c, "Reconciling"), (false, "Ready".into()));
        assert_eq!(status(&c, "Stalled"), (false, "NotStalled".into()));
        assert_eq!(status(&c, "Paused"), (false, "NotPaused".into()));
    }

    #[test]
    fn converging_reconciles_with_readys_reason() {
        let c = run(with(&[("Admitted", true, "Admitted"), ("Ready", false, "Booting")]), false, false);
        assert_eq!(status(&c, "Reconciling"), (true, "Booting".into()));
        assert_eq!(conditions::get(&c, "Reconciling").map(|r| r.message.as_str()), Some("Booting message"));
        assert_eq!(status(&c, "Stalled"), (false, "NotStalled".into()));
        let c = run(Vec::new(), false, false);
        assert_eq!(status(&c, "Reconciling"), (true, "Pending".into()));
    }

    #[test]
    fn not_admitted_stalls_with_the_admission_reason() {
        let c = run(with(&[("Admitted", false, "GpuMismatch"), ("Ready", false, "NotAdmitted")]), false, false);
        assert_eq!(status(&c, "Stalled"), (true, "GpuMismatch".into()));
        assert_eq!(status(&c, "Reconciling"), (false, "GpuMismatch".into()));
        let s = conditions::get(&c, "Stalled").expect("set");
        assert_eq!(s.message, "GpuMismatch message");
        assert_eq!(s.observed_generation, Some(2));
    }

    #[test]
    fn every_stalled_reason_stalls_and_a_transient_one_does_not() {
        for r in STALLED_REASONS {
            let c = run(with(&[("Ready", false, r)]), false, false);
            assert_eq!(status(&c, "Stalled"), (true, (*r).into()), "{r}");
        }
        for r in ["ReconcileError", "Launching", "WaitingForTenant", "Replacing", "Erasing"] {
            let c = run(with(&[("Ready", false, r)]), false, false);
            assert!(!status(&c, "Stalled").0, "{r}");
            assert!(status(&c, "Reconciling").0, "{r}");
        }
    }

    #[test]
    fn settled_stop_is_not_reconciling() {
        let c = run(with(&[("Ready", false, "Stopped")]), false, true);
        assert_eq!(status(&c, "Reconciling"), (false, "Settled".into()));
        let c = run(with(&[("Ready", false, "Stopped")]), false, false);
        assert_eq!(status(&c, "Reconciling"), (true, "Stopped".into()));
    }

    #[test]
    fn paused_wins_over_everything() {
        let c = run(with(&[("Admitted", false, "QuotaExceeded")]), true, false);
        assert_eq!(status(&c, "Paused"), (true, "Paused".into()));
        assert_eq!(status(&c, "Stalled"), (false, "Paused".into()));
        assert_eq!(status(&c, "Reconciling"), (false, "Paused".into()));
    }

    #[test]
    fn paused_annotation_values() {
        assert!(is_paused(Some("true")));
        assert!(is_paused(Some("True")));
        assert!(!is_paused(Some("false")));
        assert!(!is_paused(Some("")));
        assert!(!is_paused(None));
    }
}
