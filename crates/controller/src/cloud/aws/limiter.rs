//! Client-side token buckets per EC2 operation class, shaped like AWS's own request budget so the
//! operator never spends it faster than AWS refills it (bursts up to the bucket, then the rate),
//! and adaptive per class: a throttled answer cuts that class's rate by a quarter, each success wins
//! back a twentieth of it (AIMD). Unlike the SDK's adaptive retry mode, which keeps one rate per service
//! and region, throttled describes here never slow down launches or terminations.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// A token bucket: `capacity` tokens, refilled at `rate` per second.
#[derive(Debug)]
pub struct Bucket {
    capacity: f64,
    base: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    at: Instant,
    rate: f64,
}

/// The slowest an adaptive bucket goes, as a share of its configured rate.
const FLOOR: f64 = 0.1;
/// What a throttled answer leaves of the rate. Gentler than halving: under a steady 30% of calls
/// throttled the rate settles near 60% of the configured one instead of 23%.
const DECREASE: f64 = 0.75;

impl Bucket {
    /// A full bucket. A rate of zero or less disables limiting.
    pub fn new(capacity: u32, rate: f64) -> Self {
        let capacity = f64::from(capacity.max(1));
        Self { capacity, base: rate, state: Mutex::new(State { tokens: capacity, at: Instant::now(), rate }) }
    }

    /// A throttled answer: cut the rate (not below the floor) and drop the burst.
    pub async fn throttled(&self) {
        if self.base <= 0.0 {
            return;
        }
        let mut s = self.state.lock().await;
        s.rate = (s.rate * DECREASE).max(self.base * FLOOR);
        s.tokens = s.tokens.min(1.0);
    }

    /// A successful answer: win back a twentieth of the configured rate.
    pub async fn succeeded(&self) {
        if self.base <= 0.0 {
            return;
        }
        let mut s = self.state.lock().await;
        s.rate = (s.rate + self.base / 20.0).min(self.base);
    }

    /// The current rate (for tests and metrics).
    pub async fn rate(&self) -> f64 {
        self.state.lock().await.rate
    }

    /// Waits for one token.
    pub async fn take(&self) {
        if self.base <= 0.0 {
            return;
        }
        loop {
            let wait = {
                let mut s = self.state.lock().await;
                let now = Instant::now();
                let refill = now.duration_since(s.at).as_secs_f64() * s.rate;
                s.tokens = (s.tokens + refill).min(self.capacity);
                s.at = now;
                if s.tokens >= 1.0 {
                    s.tokens -= 1.0;
                    return;
                }
                (1.0 - s.tokens) / s.rate
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
    /// Route 53 (its own account-wide budget of 5 requests per second).
    Dns,
    /// SSM and IAM (redeploys and tenant identities: a few calls per tenant change).
    Platform,
    /// Secrets Manager: a few calls per Workspace create and delete (its own secret), so a
    /// budget of its own; at the mutate rate it paced a 1,000-Workspace erasure.
    Secrets,
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
    /// Route 53 calls per second.
    pub dns: f64,
    /// Secrets Manager calls per second.
    pub secrets: f64,
}

impl Default for Rates {
    /// AWS's published refill rates for an account's EC2 request buckets.
    fn default() -> Self {
        Self { describe: 20.0, mutate: 5.0, launch: 2.0, terminate: 20.0, dns: 5.0, secrets: 20.0 }
    }
}

/// One bucket per class.
#[derive(Debug)]
pub struct Limiter {
    describe: Bucket,
    mutate: Bucket,
    launch: Bucket,
    terminate: Bucket,
    dns: Bucket,
    platform: Bucket,
    secrets: Bucket,
}

impl Limiter {
    /// Buckets sized like AWS's (100 describe, 200 mutate, 1000 launch and terminate tokens, 5
    /// for Route 53).
    pub fn new(r: Rates) -> Self {
        Self {
            describe: Bucket::new(100, r.describe),
            mutate: Bucket::new(200, r.mutate),
            launch: Bucket::new(1000, r.launch),
            terminate: Bucket::new(1000, r.terminate),
            dns: Bucket::new(5, r.dns),
            // Secrets Manager and SSM refill at tens of requests per second per API; the
            // mutate rate is a conservative share of that.
            platform: Bucket::new(50, r.mutate),
            // AWS allows 50 a second for Secrets Manager's writes and more for its reads.
            secrets: Bucket::new(50, r.secrets),
        }
    }

    fn bucket(&self, class: Class) -> &Bucket {
        match class {
            Class::Describe => &self.describe,
            Class::Mutate => &self.mutate,
            Class::Launch => &self.launch,
            Class::Terminate => &self.terminate,
            Class::Dns => &self.dns,
            Class::Platform => &self.platform,
            Class::Secrets => &self.secrets,
        }
    }

    /// Waits for a token of `class`.
    pub async fn take(&self, class: Class) {
        self.bucket(class).take().await;
    }

    /// Feeds an answer back: throttled or not.
    pub async fn feedback(&self, class: Class, throttled: bool) {
        if throttled { self.bucket(class).throttled().await } else { self.bucket(class).succeeded().await }
    }
}

impl Class {
    /// The class of a call: EC2 by operation, Route 53, Secrets Manager, everything else (SSM, IAM).
    pub fn of_call(service: &str, operation: &str) -> Self {
        match service {
            "ec2" => Self::of(operation),
            "route53" => Self::Dns,
            "secretsmanager" => Self::Secrets,
            _ => Self::Platform,
        }
    }

    /// The class of an EC2 operation.
    pub fn of(operation: &str) -> Self {
        match operation {
            "RunInstances" => Self::Launch,
            "TerminateInstances" => Self::Terminate,
            op if op.starts_with("Describe") => Self::Describe,
            _ => Self::Mutate,
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

    /// A Workspace's secret calls never wait behind SSM and IAM (or the other way round).
    #[tokio::test(start_paused = true)]
    async fn secrets_manager_has_a_budget_of_its_own() {
        assert_eq!(Class::of_call("secretsmanager", "DescribeSecret"), Class::Secrets);
        assert_eq!(Class::of_call("ssm", "SendCommand"), Class::Platform);
        let l = Limiter::new(Rates::default());
        for _ in 0..50 {
            l.take(Class::Platform).await;
        }
        let start = Instant::now();
        for _ in 0..50 {
            l.take(Class::Secrets).await;
        }
        assert!(start.elapsed() < Duration::from_millis(10), "the secrets burst is untouched");
        for _ in 0..20 {
            l.take(Class::Secrets).await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(900) && took <= Duration::from_millis(1100), "20 more at 20/s: {took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_cuts_the_rate_and_success_wins_it_back() {
        let b = Bucket::new(10, 20.0);
        b.throttled().await;
        assert!((b.rate().await - 15.0).abs() < 1e-9);
        for _ in 0..30 {
            b.throttled().await;
        }
        assert!((b.rate().await - 2.0).abs() < 1e-9, "floored at 10%");
        for _ in 0..100 {
            b.succeeded().await;
        }
        assert!((b.rate().await - 20.0).abs() < 1e-9, "back to the configured rate, not beyond");
        assert_eq!(Class::of("RunInstances"), Class::Launch);
        assert_eq!(Class::of("DescribeVolumes"), Class::Describe);
        assert_eq!(Class::of("AttachVolume"), Class::Mutate);
    }
}
