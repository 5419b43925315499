//! Gauges computed from the watch caches and the fleet caches every few seconds: objects by
//! phase, stalled objects by reason, the age of each fleet listing. Reading caches costs no API
//! call.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::reflector::Store;
use molecule_crds::conditions;
use molecule_crds::v1alpha1::{Condition, ConditionStatus, Workspace};

use crate::context::Context;
use crate::metrics::{AccountLabel, KindLabel, KindReason, Metrics, PhaseLabels};

/// How often the gauges are recomputed.
const PERIOD: Duration = Duration::from_secs(10);

/// Recomputes the gauges until the process ends.
pub async fn run(ctx: Arc<Context>, workspaces: Store<Workspace>) {
    loop {
        observe(&ctx, &workspaces);
        tokio::time::sleep(PERIOD).await;
    }
}

fn observe(ctx: &Context, workspaces: &Store<Workspace>) {
    let mut counts = Counts::default();
    for w in workspaces.state() {
        let st = w.status.as_ref();
        counts.add(
            "Workspace",
            st.and_then(|s| s.phase).map(|p| format!("{p:?}")),
            st.map(|s| s.conditions.as_slice()),
        );
    }
    for t in ctx.tenants.state() {
        let st = t.status.as_ref();
        counts.add("Tenant", st.and_then(|s| s.phase).map(|p| format!("{p:?}")), st.map(|s| s.conditions.as_slice()));
    }
    // Counted first, swapped in at once: a scrape meanwhile sees the old or the new numbers.
    let m = &ctx.metrics;
    m.objects.clear();
    m.stalled.clear();
    for (labels, n) in counts.phases {
        m.objects.get_or_create(&labels).set(n);
    }
    for (labels, n) in counts.stalled {
        m.stalled.get_or_create(&labels).set(n);
    }
    let now = Timestamp::now();
    for a in ctx.accounts() {
        // No series before the first listing: an alert on the age must not fire on a start.
        if let Some(t) = a.cache.last_refresh() {
            m.cache_age.get_or_create(&AccountLabel { account: a.name }).set(now.duration_since(t).as_secs());
        }
    }
}

#[derive(Default)]
struct Counts {
    phases: HashMap<PhaseLabels, i64>,
    stalled: HashMap<KindReason, i64>,
}

impl Counts {
    fn add(&mut self, kind: &'static str, phase: Option<String>, conds: Option<&[Condition]>) {
        *self.phases.entry(PhaseLabels { kind, phase: phase.unwrap_or_else(|| "None".into()) }).or_default() += 1;
        let stalled = conds.and_then(|c| conditions::get(c, "Stalled")).filter(|c| c.status == ConditionStatus::True);
        if let Some(c) = stalled {
            *self.stalled.entry(KindReason { kind, reason: bounded_reason(&c.reason) }).or_default() += 1;
        }
    }
}

/// A condition reason as a label value from a fixed set (never free text).
fn bounded_reason(reason: &str) -> &'static str {
    let admission = molecule_crds::reasons::Reason::ALL.iter().map(|r| r.as_str());
    molecule_crds::kstatus::STALLED_REASONS.iter().copied().chain(admission).find(|r| *r == reason).unwrap_or("Other")
}

/// Observes how long an object took to become Ready: from when it started converging
/// (`Reconciling` turned True: a creation, a start, a resume, a loss) to now. A stopped or paused
/// spell before that is not counted.
pub fn observe_ready(m: &Metrics, kind: &'static str, old: &[Condition], new: &[Condition]) {
    let was = conditions::get(old, "Ready");
    if conditions::is_true(new, "Ready") && !was.is_some_and(|c| c.status == ConditionStatus::True) {
        let converging = conditions::get(old, "Reconciling").filter(|c| c.status == ConditionStatus::True);
        let since = converging.or(was).and_then(|c| c.last_transition_time.parse::<Timestamp>().ok());
        if let Some(since) = since {
            let secs = Timestamp::now().duration_since(since).as_secs_f64().max(0.0);
            m.time_to_ready.get_or_create(&KindLabel { kind }).observe(secs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_bounded() {
        assert_eq!(bounded_reason("GpuMismatch"), "GpuMismatch");
        assert_eq!(bounded_reason("BootFailed"), "BootFailed");
        assert_eq!(bounded_reason("anything a user typed"), "Other");
    }

    #[test]
    fn time_to_ready_is_observed_on_the_transition_only() {
        let m = Metrics::new();
        let t0 = Timestamp::now().checked_sub(jiff::SignedDuration::from_secs(30)).unwrap_or_default().to_string();
        let not_ready = vec![conditions::new("Ready", false, "Booting", "", Some(1), &t0)];
        let ready = vec![conditions::new("Ready", true, "Ready", "", Some(1), &t0)];
        observe_ready(&m, "Workspace", &not_ready, &ready);
        observe_ready(&m, "Workspace", &ready, &ready);
        // Stopped for an hour, then started 30 s ago: 30 s, not an hour.
        let hour = Timestamp::now().checked_sub(jiff::SignedDuration::from_hours(1)).unwrap_or_default().to_string();
        let started = vec![
            conditions::new("Ready", false, "Stopped", "", Some(1), &hour),
            conditions::new("Reconciling", true, "Booting", "", Some(1), &t0),
        ];
        observe_ready(&m, "Tenant", &started, &ready);
        let text = m.encode();
        assert!(text.contains("molecule_time_to_ready_seconds_count{kind=\"Workspace\"} 1"), "{text}");
        assert!(text.contains("molecule_time_to_ready_seconds_bucket{le=\"32.0\",kind=\"Tenant\"} 1"), "{text}");
        assert!(text.contains("molecule_time_to_ready_seconds_bucket{le=\"32.0\",kind=\"Workspace\"} 1"), "{text}");
    }
}
