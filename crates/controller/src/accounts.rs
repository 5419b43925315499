//! The AWS accounts the operator works in, each opened the same way (network facts, clients
//! written through to the account's fleet cache, a first full listing) and each with its own
//! readiness: the main account must open before anything is decided; the canary account opens in
//! the background and is retried with backoff, so a broken canary role degrades only the canary
//! Tenants (their condition names the account) while everything else converges.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::cloud::aws::Aws;
use crate::cloud::cache::FleetCache;
use crate::cloud::cached::CachedClients;
use crate::cloud::events::Consumer;
use crate::cloud::guard::LaunchGuard;
use crate::cloud::tags::Identity;
use crate::cloud::{self, CloudResult, ErrorKind};
use crate::context::Account;
use crate::metrics::Metrics;
use crate::watchdog;

/// First and longest wait between two attempts to open an account (or to retry a call at start).
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Longest wait between two attempts to open an account that refused us (a denied role is
/// usually fixed by a human, not by retrying every second).
const REOPEN_MAX: Duration = Duration::from_mins(5);

/// Where an account's resources live, from the configuration.
#[derive(Clone, Debug)]
pub struct Place {
    /// `main` or `canary`.
    pub name: &'static str,
    /// Region.
    pub region: String,
    /// VPC.
    pub vpc_id: String,
    /// Subnet instances are launched in.
    pub subnet_id: String,
    /// EC2 Instance Connect endpoint group, if any.
    pub eic_sg: Option<String>,
    /// AMI of tenant VMs.
    pub ami: Option<String>,
}

/// How an account's fleet cache learns of changes: listing every `refresh`, or, with a queue of
/// EC2 notifications, from the queue with a listing every `resync` (and on request, and while an
/// instance settles).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Polling {
    /// Seconds between listings without a queue (and while an instance settles with one).
    pub refresh: Duration,
    /// The SQS queue EventBridge writes the account's EC2 notifications to.
    pub queue_url: Option<String>,
    /// The safety resync with a queue.
    pub resync: Duration,
}

impl Polling {
    /// Listing every `refresh`, no queue.
    pub fn every(refresh: Duration) -> Self {
        Self { refresh, queue_url: None, resync: refresh }
    }
}

/// The next wait of a capped exponential backoff.
fn next(delay: Duration, max: Duration) -> Duration {
    (delay * 2).min(max)
}

/// Runs `op` until it succeeds or fails with something other than throttling or a transient
/// error (a timeout, a 5xx, a broken connection); says each retry in the log.
pub async fn retry_transient<T, F, Fut>(what: &str, mut op: F) -> CloudResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = CloudResult<T>>,
{
    let mut delay = RETRY_FIRST;
    loop {
        match op().await {
            Err(e) if matches!(e.kind, ErrorKind::Throttled | ErrorKind::Transient) => {
                tracing::warn!(error = %e, retry_in = ?delay, "{what} failed");
                tokio::time::sleep(delay).await;
                delay = next(delay, RETRY_MAX);
            }
            other => return other,
        }
    }
}

/// Opens an account: its network facts (waiting out throttling and 5xx), its clients written
/// through to its fleet cache, and a first full listing (nothing is decided before it: a launch
/// protocol that trusted an empty cache after a restart would launch twice). The cache then
/// refreshes as `polling` says (with a queue, its consumer starts too). A `patient` open waits out throttling and transient errors (the main
/// account, without which nothing runs); an impatient one returns them (the caller retries).
pub async fn open(
    aws: Aws,
    place: Place,
    identity: &Identity,
    metrics: &Metrics,
    polling: &Polling,
    patient: bool,
) -> CloudResult<Arc<Account>> {
    let facts = format!("reading the VPC and subnet of the {} account", place.name);
    let read = || aws.network_facts(&place.vpc_id, &place.subnet_id);
    let (vpc_cidr, zone) = if patient { retry_transient(&facts, read).await? } else { read().await? };
    let instances: Arc<dyn cloud::Instances> = Arc::new(cloud::aws::ec2::Ec2Instances::new(aws.clone()));
    let network: Arc<dyn cloud::Network> =
        Arc::new(cloud::aws::network::Ec2Network::new(aws.clone(), place.vpc_id.clone()));
    let volumes: Arc<dyn cloud::Volumes> = Arc::new(cloud::aws::volumes::Ec2Volumes(aws.clone()));
    let cache =
        Arc::new(FleetCache::new(place.name, identity.filter(), instances.clone(), network, volumes, metrics.clone()));
    let listing = format!("the first fleet listing of the {} account", place.name);
    let fill = || async {
        let r = cache.refresh().await;
        if let Err(e) = &r {
            watchdog::global().set_account(place.name, Err(format!("first fleet listing failed: {e}")));
        }
        r
    };
    if patient {
        retry_transient(&listing, fill).await?;
    } else {
        fill().await?;
    }
    watchdog::global().set_account(place.name, Ok(()));
    if let Some(url) = &polling.queue_url {
        cache.feed_events(polling.resync);
        let queue = Arc::new(cloud::aws::sqs::SqsQueue::new(aws.clone(), url.clone()));
        let consumer = Consumer::new(place.name, queue, instances, cache.clone(), metrics.clone());
        tracing::info!(account = place.name, resync = ?polling.resync, "EC2 notifications feed the fleet cache");
        tokio::spawn(consumer.run());
    }
    tokio::spawn(cache.clone().run(polling.refresh));
    let clients = CachedClients::of(&cache);
    Ok(Arc::new(Account {
        name: place.name,
        region: place.region,
        subnet_id: place.subnet_id,
        zone,
        vpc_cidr,
        eic_sg: place.eic_sg,
        ami: place.ami,
        instances: clients.instances,
        network: clients.network,
        volumes: clients.volumes,
        secrets: Arc::new(cloud::aws::secrets::SecretsManager(aws.clone())),
        identities: Arc::new(cloud::aws::iam::Iam(aws.clone())),
        commands: Arc::new(cloud::aws::ssm::Ssm(aws)),
        cache,
        guard: LaunchGuard::default(),
    }))
}

/// Why an account is not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Its settings are missing, or name something that does not exist (a subnet, a VPC): only
    /// a configuration change helps.
    NotConfigured,
    /// AWS refused the operator (AccessDenied on AssumeRole or a call): an IAM change helps.
    Denied,
    /// Being connected, or unreachable (timeouts, 5xx, throttling): retried.
    Unreachable,
}

impl Problem {
    /// The condition reason objects that need the account show (`Stalled` for the first two).
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotConfigured => "CanaryNotConfigured",
            Self::Denied => "AccountDenied",
            Self::Unreachable => "AccountUnavailable",
        }
    }

    fn of(e: &cloud::CloudError) -> Self {
        match e.kind {
            ErrorKind::Denied => Self::Denied,
            ErrorKind::NotFound | ErrorKind::Rejected => Self::NotConfigured,
            ErrorKind::Throttled | ErrorKind::Transient | ErrorKind::InUse => Self::Unreachable,
        }
    }
}

/// An account that may not be usable (yet): the account, or why not. Readers take a snapshot.
#[derive(Debug)]
pub struct Slot {
    name: &'static str,
    state: RwLock<Result<Arc<Account>, (Problem, String)>>,
    opened: tokio::sync::watch::Sender<bool>,
}

impl Slot {
    /// A slot that will never be usable: the configuration does not name the account.
    pub fn not_configured(name: &'static str, why: impl Into<String>) -> Self {
        Self { name, state: RwLock::new(Err((Problem::NotConfigured, why.into()))), opened: watch_channel() }
    }

    /// A configured account, not usable until [`keep_opening`] opens it.
    pub fn opening(name: &'static str) -> Self {
        let why = format!("the {name} account is being connected");
        Self { name, state: RwLock::new(Err((Problem::Unreachable, why))), opened: watch_channel() }
    }

    /// The account's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The account, or why it is not usable.
    pub fn get(&self) -> Result<Arc<Account>, String> {
        self.status().map_err(|(_, why)| why)
    }

    /// The account, or what kind of problem keeps it unusable and why.
    pub fn status(&self) -> Result<Arc<Account>, (Problem, String)> {
        self.state.read().map_or_else(
            |_| Err((Problem::Unreachable, format!("the {} account is unavailable", self.name))),
            |s| s.clone(),
        )
    }

    /// Whether the account is usable now.
    pub fn is_ready(&self) -> bool {
        self.get().is_ok()
    }

    fn set(&self, state: Result<Arc<Account>, (Problem, String)>) {
        let ok = state.is_ok();
        if let Ok(mut s) = self.state.write() {
            *s = state;
        }
        self.opened.send_replace(ok);
    }

    /// The account once it is usable (at once when it is already): the objects that waited for
    /// it are reconciled then, without a restart.
    pub async fn usable(&self) -> Arc<Account> {
        let mut rx = self.opened.subscribe();
        loop {
            if let Ok(a) = self.get() {
                return a;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

fn watch_channel() -> tokio::sync::watch::Sender<bool> {
    tokio::sync::watch::channel(false).0
}

/// Opens the account behind `slot` until it is usable: `connect` makes a fresh client each
/// attempt (an assumed role's credentials are fetched anew). Each failure is said in the slot (the
/// objects that need the account show it), the log and `molecule_account_ready`; attempts back
/// off up to five minutes, and a refusal (AccessDenied, `CloudDenied`) is retried too, since a
/// human fixes it. `molecule_account_ready{account}` says which account is not usable.
pub async fn keep_opening<C, CF>(
    slot: Arc<Slot>,
    connect: C,
    place: Place,
    identity: Identity,
    metrics: Metrics,
    polling: Polling,
) where
    C: Fn() -> CF,
    CF: Future<Output = Aws>,
{
    watchdog::global().set_account(place.name, Err(format!("the {} account is being connected", place.name)));
    let mut delay = RETRY_FIRST;
    loop {
        match open(connect().await, place.clone(), &identity, &metrics, &polling, false).await {
            Ok(acct) => {
                tracing::info!(account = place.name, region = %place.region, "account usable");
                slot.set(Ok(acct));
                return;
            }
            Err(e) => {
                let why = match e.kind {
                    ErrorKind::Denied => format!("the {} account refused the operator: {e}", place.name),
                    _ => format!("the {} account is not usable: {e}", place.name),
                };
                tracing::error!(account = place.name, error = %e, retry_in = ?delay, "account not usable; the objects that need it say why");
                watchdog::global().set_account(place.name, Err(why.clone()));
                slot.set(Err((Problem::of(&e), why)));
                tokio::time::sleep(delay).await;
                delay = next(delay, REOPEN_MAX);
            }
        }
    }
}

/// Benchmark only (issue 16): `MOLECULE_FAKE_CLOUD=1` runs the operator with its main account,
/// Route 53 zone, secrets, IAM and Run Command answered by the in-process fake cloud
/// ([`crate::cloud::fake`], instant transitions) instead of AWS, against the real API server: the
/// 10,000-Workspace benchmark measures the operator where moto cannot hold the fleet. Refused
/// unless the binary was built with the `fake` feature; never for production.
pub mod fake_cloud {
    /// The environment variable that asks for the fake cloud.
    pub const ENV: &str = "MOLECULE_FAKE_CLOUD";

    /// Whether the environment asks for the fake cloud.
    pub fn requested() -> bool {
        std::env::var(ENV).is_ok_and(|v| v == "1")
    }

    /// The main account and DNS zone of the fake cloud.
    pub type Opened = (std::sync::Arc<super::Account>, std::sync::Arc<dyn super::cloud::Dns>);

    /// The main account and DNS zone on a fresh fake cloud with instant transitions, or why not
    /// (a build without the `fake` feature). A task stands in for the bootstrap simulator: every
    /// second it tags running instances `moleculesai.app/boot=ready` (straight on the fake, so
    /// the fleet cache learns it at its next listing, as from AWS) and forgets the fake's call
    /// log (which would grow without end).
    #[cfg_attr(not(feature = "fake"), allow(clippy::unused_async))]
    pub async fn open(
        place: super::Place,
        identity: &super::Identity,
        metrics: &super::Metrics,
        refresh: std::time::Duration,
    ) -> Result<Opened, String> {
        #[cfg(not(feature = "fake"))]
        {
            let _ = (place, identity, metrics, refresh);
            Err(format!("{ENV}=1 needs a build with the `fake` feature (benchmarks only)"))
        }
        #[cfg(feature = "fake")]
        {
            use super::cloud::fake::{FakeCloud, FakeConfig};
            let fake = FakeCloud::with_config(FakeConfig::instant());
            let name = place.name;
            // The configured EIC endpoint group lives in the real account, not in the fake.
            let place = super::Place { eic_sg: None, ami: place.ami.or_else(|| Some("ami-fake".into())), ..place };
            let account = account(&fake, place, "fake-1a", identity, metrics).await.map_err(|e| e.to_string())?;
            super::watchdog::global().set_account(name, Ok(()));
            tokio::spawn(account.cache.clone().run(refresh));
            tokio::spawn(boot_reporter(fake.clone()));
            tracing::warn!(account = name, "{ENV}=1: the in-process fake cloud answers for AWS (benchmark only)");
            Ok((account, fake.dns()))
        }
    }

    /// An account at `place` (availability zone `zone`) on `fake`: its clients written through
    /// to its fleet cache, the cache filled once (the fake-cloud benchmark and the tests).
    #[cfg(any(test, feature = "fake"))]
    pub async fn account(
        fake: &super::cloud::fake::FakeCloud,
        place: super::Place,
        zone: &str,
        identity: &super::Identity,
        metrics: &super::Metrics,
    ) -> super::CloudResult<std::sync::Arc<super::Account>> {
        use std::sync::Arc;
        let cache = Arc::new(super::FleetCache::new(
            place.name,
            identity.filter(),
            fake.instances(),
            fake.network(),
            fake.volumes(),
            metrics.clone(),
        ));
        cache.refresh().await?;
        let clients = super::CachedClients::of(&cache);
        Ok(Arc::new(super::Account {
            name: place.name,
            region: place.region,
            subnet_id: place.subnet_id,
            zone: zone.into(),
            vpc_cidr: "10.0.0.0/16".into(),
            eic_sg: place.eic_sg,
            ami: place.ami,
            instances: clients.instances,
            network: clients.network,
            volumes: clients.volumes,
            secrets: fake.secrets(),
            identities: fake.identities(),
            commands: fake.commands(),
            cache,
            guard: super::LaunchGuard::default(),
        }))
    }

    #[cfg(feature = "fake")]
    async fn boot_reporter(fake: super::cloud::fake::FakeCloud) {
        use super::cloud::InstanceState;
        let ready: std::collections::BTreeMap<String, String> =
            [(super::cloud::tags::BOOT.to_owned(), "ready".to_owned())].into();
        let instances = fake.instances();
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let booting: Vec<String> = fake
                .all_instances()
                .into_iter()
                .filter(|i| i.state == InstanceState::Running && i.tag(super::cloud::tags::BOOT) != Some("ready"))
                .map(|i| i.id)
                .collect();
            for ids in booting.chunks(1000) {
                if let Err(e) = instances.tag(ids, &ready).await {
                    tracing::warn!(error = %e, "the fake cloud's boot reporter could not tag");
                }
            }
            fake.clear_calls();
        }
    }
}
