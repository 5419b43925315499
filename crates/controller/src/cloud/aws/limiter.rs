//! Client-side token buckets per EC2 operation class, shaped like AWS's own request budget so the
//! operator never spends it faster than AWS refills it (bursts up to the bucket, then the rate).

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// A token bucket: `capacity` tokens, refilled at `rate` per second.
#[derive(Debug)]
pub struct Bucket {
    capacity: f64,
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    /// A full bucket. A rate of zero or less disables limiting.
    pub fn new(capacity: u32, rate: f64) -> Self {
        let capacity = f64::from(capacity.max(1));
        Self { capacity, rate, state: Mutex::new((capacity, Instant::now())) }
    }

    /// Waits for one token.
    pub async fn take(&self) {
        if self.rate <= 0.0 {
            return;
        }
        loop {
            let wait = {
                let mut s = self.state.lock().await;
                let now = Instant::now();
                let refill = now.duration_since(s.1).as_secs_f64() * self.rate;
                s.0 = (s.0 + refill).min(self.capacity);
                s.1 = now;
                if s.0 >= 1.0 {
                    s.0 -= 1.0;
                    return;
                }
                (1.0 - s.0) / self.rate
            };
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

/// Operation classes with separate budgets (AWS EC2 "request throttling" buckets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Describe* calls.
    Describe,
    /// Create/Delete/Authorize/Attach/Start/Stop and other mutating calls.
    Mutate,
    /// RunInstances.
    Launch,
    /// TerminateInstances.
    Terminate,
}

/// Requests per second per class; zero disables a limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    /// Describe* per second.
    pub describe: f64,
    /// Mutating calls per second.
    pub mutate: f64,
    /// RunInstances per second.
    pub launch: f64,
    /// TerminateInstances per second.
    pub terminate: f64,
}

impl Default for Rates {
    /// AWS's published refill rates for an account's EC2 request buckets.
    fn default() -> Self {
        Self { describe: 20.0, mutate: 5.0, launch: 2.0, terminate: 20.0 }
    }
}

/// One bucket per class.
#[derive(Debug)]
pub struct Limiter {
    describe: Bucket,
    mutate: Bucket,
    launch: Bucket,
    terminate: Bucket,
}

impl Limiter {
    /// Buckets sized like AWS's (100 describe, 200 mutate, 1000 launch and terminate tokens).
    pub fn new(r: Rates) -> Self {
        Self {
            describe: Bucket::new(100, r.describe),
            mutate: Bucket::new(200, r.mutate),
            launch: Bucket::new(1000, r.launch),
            terminate: Bucket::new(1000, r.terminate),
        }
    }

    /// Waits for a token of `class`.
    pub async fn take(&self, class: Class) {
        match class {
            Class::Describe => self.describe.take().await,
            Class::Mutate => self.mutate.take().await,
            Class::Launch => self.launch.take().await,
            Class::Terminate => self.terminate.take().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_bursts_then_paces() {
        let b = Bucket::new(3, 2.0);
        let start = Instant::now();
        for _ in 0..3 {
            b.take().await;
        }
        assert!(start.elapsed() < Duration::from_millis(10), "the burst is free");
        for _ in 0..4 {
            b.take().await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1900) && took <= Duration::from_millis(2100),
            "4 more at 2/s took {took:?}"
        );
    }
}
