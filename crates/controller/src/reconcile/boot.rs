//! The boot deadline (issue 14): an instance that runs but whose bootstrap never reports (the
//! `moleculesai.app/boot` tag) fails visibly instead of booting forever. The first instance of
//! an object that misses the deadline is terminated and relaunched once as the next attempt
//! (the launch protocol sees it gone and records attempt + 1); the next one that misses it is
//! kept for inspection and the object is failed: `BootTimedOut`, which is Stalled. Pure but for
//! [`enforce`], which terminates.

use std::time::Duration;

use jiff::Timestamp;

use crate::cloud::tags::BOOT;
use crate::cloud::{Instance, InstanceState, Instances};
use crate::reconcile::Error;

/// What the deadline says about the current instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Reported, not running, or still within the deadline.
    Fine,
    /// Past the deadline, the first time: terminate it, the launch protocol relaunches.
    Relaunch(String),
    /// Past the deadline after a relaunch: keep it, failed. The message for status.
    Failed(String),
}

/// Whether `i` runs without a boot report for longer than `deadline` at `now` (EC2's launch
/// time is the last start, so a stopped and started instance gets the whole deadline again).
pub fn overdue(i: &Instance, now: Timestamp, deadline: Duration) -> bool {
    let Some(launched) = i.launch_time.as_deref().and_then(|t| t.parse::<Timestamp>().ok()) else { return false };
    let Ok(deadline) = jiff::SignedDuration::try_from(deadline) else { return false };
    i.state == InstanceState::Running && i.tag(BOOT).is_none() && now.duration_since(launched) > deadline
}

/// The verdict for `current` given the instance terminated for a timeout before, if any.
pub fn verdict(
    current: Option<&Instance>,
    timed_out: Option<&str>,
    now: Timestamp,
    deadline: Duration,
    noun: &str,
) -> Verdict {
    let Some(c) = current.filter(|c| overdue(c, now, deadline)) else { return Verdict::Fine };
    let secs = deadline.as_secs();
    match timed_out.filter(|t| *t != c.id) {
        None => Verdict::Relaunch(format!(
            "the bootstrap of {noun} {} did not report within {secs} s (BOOT_DEADLINE_SECONDS): it is terminated and \
             relaunched once as the next attempt",
            c.id
        )),
        Some(first) => Verdict::Failed(format!(
            "the bootstrap of {noun} {} did not report within {secs} s (BOOT_DEADLINE_SECONDS), after {first} timed out \
             and was relaunched: it is kept for inspection (see /var/log/molecule-bootstrap.log); a spec change or \
             the recreate-at annotation launches a new one",
            c.id
        )),
    }
}

/// Applies the verdict: records the instance in `timed_out`, terminates it for a relaunch and
/// shows `current` shutting down; clears `timed_out` once an instance reported. Returns the
/// verdict (the caller says it in status and an Event).
pub async fn enforce(
    instances: &dyn Instances,
    current: Option<&mut Instance>,
    timed_out: &mut Option<String>,
    (deadline, now): (Duration, Timestamp),
    noun: &str,
) -> Result<Verdict, Error> {
    if current.as_ref().is_some_and(|c| c.tag(BOOT).is_some()) {
        *timed_out = None;
    }
    let v = verdict(current.as_deref(), timed_out.as_deref(), now, deadline, noun);
    if let (Verdict::Relaunch(_), Some(c)) = (&v, current) {
        *timed_out = Some(c.id.clone());
        instances.terminate(std::slice::from_ref(&c.id)).await?;
        c.state = InstanceState::ShuttingDown;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn running(id: &str, launched: Timestamp, boot: Option<&str>) -> Instance {
        let mut tags = BTreeMap::new();
        if let Some(b) = boot {
            tags.insert(BOOT.to_owned(), b.to_owned());
        }
        Instance {
            id: id.into(),
            state: InstanceState::Running,
            image_id: String::new(),
            private_ip: None,
            launch_time: Some(launched.to_string()),
            tags,
            spot: false,
        }
    }

    #[test]
    fn only_a_running_silent_instance_past_the_deadline_is_overdue() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |m: i64| t0 + jiff::SignedDuration::from_mins(m);
        let d = Duration::from_mins(15);
        assert!(!overdue(&running("i-1", t0, None), at(14), d));
        assert!(overdue(&running("i-1", t0, None), at(16), d));
        assert!(!overdue(&running("i-1", t0, Some("ready")), at(16), d));
        assert!(!overdue(&running("i-1", t0, Some("failed")), at(16), d), "a failed boot is BootFailed");
        let mut stopped = running("i-1", t0, None);
        stopped.state = InstanceState::Stopped;
        assert!(!overdue(&stopped, at(16), d));
    }

    #[test]
    fn relaunched_once_then_failed_naming_the_deadline() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let late = t0 + jiff::SignedDuration::from_mins(20);
        let d = Duration::from_mins(15);
        let first = running("i-1", t0, None);
        assert!(
            matches!(verdict(Some(&first), None, late, d, "instance"), Verdict::Relaunch(m) if m.contains("900 s"))
        );
        // Recorded but the terminate did not finish: still the relaunch, never failed.
        assert!(matches!(verdict(Some(&first), Some("i-1"), late, d, "instance"), Verdict::Relaunch(_)));
        let second = running("i-2", t0, None);
        let v = verdict(Some(&second), Some("i-1"), late, d, "instance");
        assert!(
            matches!(&v, Verdict::Failed(m) if m.contains("i-2") && m.contains("900 s") && m.contains("i-1")),
            "{v:?}"
        );
        assert_eq!(verdict(None, Some("i-1"), late, d, "instance"), Verdict::Fine);
    }
}
