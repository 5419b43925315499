//! The watchdog: long-running loops (fleet-cache refreshes, the orphan scan, the leader's
//! renewals) report their progress here, each with a bound; `/healthz` fails naming a loop that
//! has made no progress for longer than its bound, and `/readyz` fails while an account the
//! operator cannot do without (the main account) is marked unusable.
//!
//! One registry per process ([`global`]), like the metrics: loops register where they start.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The account whose health `/readyz` reports.
pub const MAIN_ACCOUNT: &str = "main";

#[derive(Debug)]
struct Entry {
    bound: Duration,
    last: Instant,
    /// Counts for `/healthz` (a loop whose stall a restart may cure); others only for the metric.
    liveness: bool,
}

#[derive(Debug, Default)]
struct Inner {
    loops: BTreeMap<String, Entry>,
    /// Accounts marked usable (`Ok`) or not (`Err(why)`).
    accounts: BTreeMap<String, Result<(), String>>,
}

/// See the module docs.
#[derive(Clone, Debug, Default)]
pub struct Watchdog(Arc<Mutex<Inner>>);

/// A registered loop's handle: call [`Beat::progress`] whenever it completes a pass.
#[derive(Clone, Debug)]
pub struct Beat {
    dog: Watchdog,
    name: String,
}

impl Beat {
    /// The loop made progress now.
    pub fn progress(&self) {
        if let Some(e) = self.dog.lock().loops.get_mut(&self.name) {
            e.last = Instant::now();
        }
    }
}

/// The process's watchdog.
pub fn global() -> &'static Watchdog {
    static DOG: OnceLock<Watchdog> = OnceLock::new();
    DOG.get_or_init(Watchdog::default)
}

/// The bound of a loop that waits `interval` between passes of `calls` cloud calls in a row,
/// each within the operation deadline: two intervals, every call's deadline, and a second.
pub fn bound_for(interval: Duration, calls: u32) -> Duration {
    interval * 2 + crate::cloud::aws::deadlines().operation * calls + Duration::from_secs(1)
}

impl Watchdog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers (or re-registers) loop `name`, counted as making progress now. `liveness`:
    /// whether its stall fails `/healthz` (else only `molecule_watchdog_stalled` says so).
    pub fn register(&self, name: &str, bound: Duration, liveness: bool) -> Beat {
        self.lock().loops.insert(name.to_owned(), Entry { bound, last: Instant::now(), liveness });
        Beat { dog: self.clone(), name: name.to_owned() }
    }

    /// Marks `account` usable (`Ok`) or not (`Err(why)`).
    pub fn set_account(&self, account: &str, health: Result<(), String>) {
        self.lock().accounts.insert(account.to_owned(), health);
    }

    /// Loops past their bound at `now`: (name, silent for, bound, liveness).
    fn stalled_at(&self, now: Instant) -> Vec<(String, Duration, Duration, bool)> {
        let inner = self.lock();
        inner
            .loops
            .iter()
            .map(|(n, e)| (n.clone(), now.saturating_duration_since(e.last), e.bound, e.liveness))
            .filter(|(_, silent, bound, _)| silent > bound)
            .collect()
    }

    /// `Err(body)` naming every liveness loop stuck past its bound.
    pub fn health(&self) -> Result<(), String> {
        let stuck: Vec<String> = self
            .stalled_at(Instant::now())
            .into_iter()
            .filter(|s| s.3)
            .map(|(n, silent, bound, _)| {
                format!("loop {n} made no progress for {}s (bound {}s)", silent.as_secs(), bound.as_secs())
            })
            .collect();
        if stuck.is_empty() { Ok(()) } else { Err(stuck.join("\n")) }
    }

    /// `Err(body)` while the main account is marked unusable.
    pub fn readiness(&self) -> Result<(), String> {
        match self.lock().accounts.get(MAIN_ACCOUNT) {
            Some(Err(why)) => Err(format!("account {MAIN_ACCOUNT} is not usable: {why}")),
            _ => Ok(()),
        }
    }

    /// `molecule_watchdog_stalled{loop}` and `molecule_account_ready{account}` in OpenMetrics text.
    pub fn encode(&self) -> String {
        let stalled: Vec<String> = self.stalled_at(Instant::now()).into_iter().map(|s| s.0).collect();
        let inner = self.lock();
        let mut out = String::from(
            "# HELP molecule_watchdog_stalled 1 while the loop has made no progress for longer than its bound.\n# TYPE molecule_watchdog_stalled gauge\n",
        );
        for name in inner.loops.keys() {
            let _ = writeln!(out, "molecule_watchdog_stalled{{loop=\"{name}\"}} {}", u8::from(stalled.contains(name)));
        }
        out.push_str("# HELP molecule_account_ready 1 while the account is usable, 0 while it is marked unusable.\n# TYPE molecule_account_ready gauge\n");
        for (name, health) in &inner.accounts {
            let _ = writeln!(out, "molecule_account_ready{{account=\"{name}\"}} {}", u8::from(health.is_ok()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_past_its_bound_fails_health_naming_it() {
        let dog = Watchdog::default();
        let beat = dog.register("fleet-cache/main", Duration::from_secs(10), true);
        dog.register("fleet-cache/canary", Duration::from_secs(10), false);
        assert_eq!(dog.health(), Ok(()));
        let later = Instant::now() + Duration::from_secs(11);
        let stalled = dog.stalled_at(later);
        assert_eq!(stalled.len(), 2);
        {
            let mut inner = dog.lock();
            for e in inner.loops.values_mut() {
                e.last = Instant::now().checked_sub(Duration::from_secs(11)).unwrap_or(e.last);
            }
        }
        let body = dog.health().unwrap_err();
        assert!(body.contains("fleet-cache/main") && !body.contains("canary"), "{body}");
        assert!(dog.encode().contains("molecule_watchdog_stalled{loop=\"fleet-cache/canary\"} 1"));
        beat.progress();
        assert_eq!(dog.health(), Ok(()));
        assert!(dog.encode().contains("molecule_watchdog_stalled{loop=\"fleet-cache/main\"} 0"));
    }

    #[test]
    fn readiness_follows_the_main_account_only() {
        let dog = Watchdog::default();
        assert_eq!(dog.readiness(), Ok(()));
        dog.set_account("canary", Err("AccessDenied".into()));
        assert_eq!(dog.readiness(), Ok(()), "a canary outage leaves the operator ready");
        dog.set_account(MAIN_ACCOUNT, Err("first listing failed: TimedOut".into()));
        assert!(dog.readiness().unwrap_err().contains("TimedOut"));
        dog.set_account(MAIN_ACCOUNT, Ok(()));
        assert_eq!(dog.readiness(), Ok(()));
        let text = dog.encode();
        assert!(text.contains("molecule_account_ready{account=\"canary\"} 0"), "{text}");
        assert!(text.contains("molecule_account_ready{account=\"main\"} 1"), "{text}");
    }
}
