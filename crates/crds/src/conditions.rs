//! Condition helpers with the Kubernetes conventions: a transition time that moves only when
//! the status changes.

use crate::v1alpha1::{Condition, ConditionStatus};

/// Sets `new` in `conditions`, keeping the old `lastTransitionTime` when the status is unchanged.
/// Returns whether anything but the observed generation changed.
pub fn set(conditions: &mut Vec<Condition>, mut new: Condition) -> bool {
    let Some(old) = conditions.iter_mut().find(|c| c.type_ == new.type_) else {
        conditions.push(new);
        return true;
    };
    if old.status == new.status {
        new.last_transition_time.clone_from(&old.last_transition_time);
    }
    let changed = old.status != new.status || old.reason != new.reason || old.message != new.message;
    *old = new;
    changed
}

/// A condition of `type_`, True when `ok`, observed at `generation`, stamped `now` (RFC 3339).
pub fn new(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: &str,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: ConditionStatus::from_bool(ok),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: now.into(),
        observed_generation: generation,
    }
}

/// Finds the condition of type `type_`.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of type `type_` is True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(status: ConditionStatus, reason: &str, at: &str) -> Condition {
        Condition {
            type_: "Ready".into(),
            status,
            reason: reason.into(),
            message: String::new(),
            last_transition_time: at.into(),
            observed_generation: Some(1),
        }
    }

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let mut cs = vec![cond(ConditionStatus::False, "Launching", "t1")];
        assert!(set(&mut cs, cond(ConditionStatus::False, "Booting", "t2")));
        assert_eq!(cs[0].last_transition_time, "t1");
        assert!(set(&mut cs, cond(ConditionStatus::True, "Ready", "t3")));
        assert_eq!(cs[0].last_transition_time, "t3");
        assert!(!set(&mut cs, cond(ConditionStatus::True, "Ready", "t4")));
        assert_eq!(cs.len(), 1);
        assert!(is_true(&cs, "Ready"));
    }
}
