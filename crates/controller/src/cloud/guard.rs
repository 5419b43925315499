//! Launches whose outcome is unknown, per account: after a 5xx, a throttle or a lost answer from
//! RunInstances the instance may exist, so the owner gets no new launch, and no delete decision,
//! until the account's fleet cache holds a listing that started later. Pure memory: the launch
//! protocol (`reconcile::launch`) decides, this only remembers.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;

/// Owner uid -> when its last uncertain launch failed.
#[derive(Debug, Default)]
pub struct LaunchGuard(Mutex<HashMap<String, Timestamp>>);

impl LaunchGuard {
    /// When `uid`'s last uncertain launch failed, if one is pending.
    pub fn since(&self, uid: &str) -> Option<Timestamp> {
        self.0.lock().ok().and_then(|m| m.get(uid).copied())
    }

    /// Remembers that a launch for `uid` failed at `at` with an unknown outcome.
    pub fn mark(&self, uid: &str, at: Timestamp) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(uid.to_owned(), at);
        }
    }

    /// Forgets `uid`'s uncertain launch (a listing newer than it has been seen).
    pub fn clear(&self, uid: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(uid);
        }
    }

    /// Keeps the entries whose uid passes `keep`; returns how many were dropped.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) -> usize {
        self.0.lock().map_or(0, |mut m| {
            let before = m.len();
            m.retain(|k, _| keep(k));
            before - m.len()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_clears_and_prunes() {
        let g = LaunchGuard::default();
        assert_eq!(g.since("a"), None);
        let t = Timestamp::UNIX_EPOCH;
        g.mark("a", t);
        g.mark("b", t);
        assert_eq!(g.since("a"), Some(t));
        g.clear("a");
        assert_eq!(g.since("a"), None);
        assert_eq!(g.retain(|k| k != "b"), 1);
        assert_eq!(g.since("b"), None);
    }
}
