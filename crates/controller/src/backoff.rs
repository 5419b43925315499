//! Per-object exponential requeue. kube-runtime's `error_policy` has no memory, so the failure
//! count per object lives here and resets on the first success.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

/// First retry delay.
const BASE: Duration = Duration::from_secs(1);
/// Longest delay: a stuck object is still retried every five minutes.
const CAP: Duration = Duration::from_mins(5);

/// Failure counts by object key.
#[derive(Debug, Default)]
pub struct Backoff(Mutex<HashMap<String, u32>>);

impl Backoff {
    /// Records a failure of `key` and returns how long to wait: 1 s doubling to 5 min, with up to
    /// 25% deterministic jitter per key so a fleet that failed together does not retry together.
    pub fn failed(&self, key: &str) -> Duration {
        let n = self.0.lock().map_or(1, |mut m| {
            let c = m.entry(key.to_owned()).or_insert(0);
            *c = c.saturating_add(1);
            *c
        });
        delay(key, n)
    }

    /// Keeps the failure counts of the keys that pass `keep` (the objects that still exist);
    /// returns how many were dropped.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) -> usize {
        crate::bounded::retain(&self.0, keep)
    }

    /// Forgets the failures of `key`.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(key);
        }
    }
}

fn delay(key: &str, failures: u32) -> Duration {
    let exp = BASE.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let capped = exp.min(CAP);
    let mut h = DefaultHasher::new();
    (key, failures).hash(&mut h);
    let jitter = capped.mul_f64(f64::from(u32::try_from(h.finish() % 250).unwrap_or(0)) / 1000.0);
    capped + jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let b = Backoff::default();
        let d: Vec<Duration> = (0..12).map(|_| b.failed("ns/a")).collect();
        assert!(d[0] >= Duration::from_secs(1) && d[0] < Duration::from_millis(1250));
        assert!(d[1] >= Duration::from_secs(2) && d[1] < Duration::from_millis(2500));
        assert!(d[11] >= CAP && d[11] <= CAP.mul_f64(1.25));
        b.succeeded("ns/a");
        assert!(b.failed("ns/a") < Duration::from_millis(1250));
    }

    #[test]
    fn keys_of_gone_objects_are_dropped() {
        let b = Backoff::default();
        b.failed("ns/a");
        b.failed("ns/gone");
        assert_eq!(b.retain(|k| k == "ns/a"), 1);
        assert!(b.failed("ns/a") >= Duration::from_secs(2), "the live key kept its count");
        assert!(b.failed("ns/gone") < Duration::from_millis(1250), "the gone key starts over");
    }
}
