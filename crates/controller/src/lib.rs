//! The molecule-operator library: configuration, the cloud layer, the reconcilers and the HTTP
//! endpoints. `main.rs` only parses flags and calls [`run`].

pub mod accounts;
pub mod backoff;
pub mod bootstrap;
pub mod bounded;
pub mod cli;
pub mod cloud;
pub mod context;
pub mod crds;
pub mod failpoints;
pub mod gauges;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod orphans;
pub mod reconcile;
pub mod recorder;
pub mod shutdown;
pub mod telemetry;
#[cfg(test)]
pub mod testing;
pub mod watchdog;

use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use kube::runtime::WatchStreamExt;
use molecule_crds::v1alpha1::{Tenant, Workspace};

use kube::{Api, Client};

/// Why the operator cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable kubeconfig or in-cluster config.
    #[error("failed to create the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// A CRD is missing or the API server is unreachable.
    #[error(
        "failed to find CRD {name}: {source} (install the CRDs: `kubectl apply --server-side --force-conflicts -f charts/molecule-operator/crds/`, or `molecule-operator crds | kubectl apply --server-side --force-conflicts -f -`, or run with INSTALL_CRDS=true)"
    )]
    Crd {
        /// CRD name.
        name: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// An installed CRD is not the one this binary was built with.
    #[error(
        "CRD {name} does not match this operator {version} (installed schema {installed}, built with {built}): upgrade the CRDs first with `kubectl apply --server-side --force-conflicts -f charts/molecule-operator/crds/` (or `molecule-operator crds | kubectl apply --server-side --force-conflicts -f -`), or run with INSTALL_CRDS=true"
    )]
    CrdMismatch {
        /// CRD name.
        name: String,
        /// This binary's version.
        version: &'static str,
        /// The installed CRD's schema digest (`none` without one).
        installed: String,
        /// This binary's schema digest.
        built: String,
    },
    /// Applying the CRDs (INSTALL_CRDS) failed.
    #[error("failed to install CRD {name}: {source}")]
    CrdInstall {
        /// CRD name.
        name: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// A catalog file cannot be read or parsed.
    #[error("failed to load {what} from {path}: {message}")]
    Catalog {
        /// Which catalog.
        what: &'static str,
        /// File.
        path: String,
        /// Cause.
        message: String,
    },
    /// A setting is invalid or names something that does not exist.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The HTTP endpoint could not start.
    #[error("failed to serve metrics on {addr}: {source}")]
    Http {
        /// Address.
        addr: std::net::SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Loads the catalogs named in `args`, failing on a bad file rather than running without it.
pub fn load_catalogs(
    args: &cli::RunArgs,
) -> Result<(molecule_crds::catalog::Catalog, molecule_crds::images::ImageCatalog), Error> {
    use molecule_crds::catalog::Catalog;
    use molecule_crds::images::ImageCatalog;
    let read = |what, path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|e| Error::Catalog {
            what,
            path: path.display().to_string(),
            message: e.to_string(),
        })
    };
    let catalog = match &args.instance_type_catalog_file {
        Some(p) => Catalog::from_yaml(&read("instance type catalog", p)?).map_err(|e| Error::Catalog {
            what: "instance type catalog",
            path: p.display().to_string(),
            message: e.to_string(),
        })?,
        None => Catalog::builtin(),
    };
    let images = match &args.image_catalog_file {
        Some(p) => ImageCatalog::from_yaml(&read("image catalog", p)?, args.default_ami.as_deref()).map_err(|e| {
            Error::Catalog { what: "image catalog", path: p.display().to_string(), message: e.to_string() }
        })?,
        None => ImageCatalog::with_default(args.default_ami.as_deref()),
    };
    Ok((catalog, images))
}

/// Tenant changes kept for a slow listener; one that lags catches up on its periodic requeue.
const TENANT_CHANGE_BUFFER: usize = 1024;
/// Workspace events buffered for each of the two controllers that share the one Workspace watch.
const WORKSPACE_SHARE_BUFFER: usize = 1024;

/// Runs the operator until SIGINT or SIGTERM: loads and checks its configuration, fills the
/// fleet cache, then runs the Workspace controller and serves /healthz, /readyz and /metrics.
pub async fn run(mut args: cli::RunArgs) -> Result<(), Error> {
    args.resolve_secrets().map_err(Error::Config)?;
    args.validate().map_err(Error::Config)?;
    cloud::aws::set_deadlines(args.deadlines());
    let (catalog, images) = load_catalogs(&args)?;
    let failpoints = failpoints::Failpoints::parse(args.failpoints.as_deref(), &args.env)
        .map_err(|e| Error::Config(e.to_string()))?;
    let client = Client::try_default().await.map_err(Error::Client)?;
    crds::ensure(&client, args.install_crds).await?;
    let metrics = metrics::Metrics::new();
    let shutdown = shutdown::signal().shared();
    serve_http(args.metrics_addr, &metrics, shutdown.clone()).await?;
    if args.leader_election && !lead(&client, &args, shutdown.clone()).await {
        tracing::info!("shutting down before leading");
        return Ok(());
    }
    metrics.leader.set(1);

    // The main account's first listing waits out AWS errors; a SIGTERM meanwhile still stops the
    // process. The canary account opens in the background (its Tenants say why until it does).
    let identity = cloud::tags::Identity { operator_id: args.operator_id.clone(), env: args.env.clone() };
    let aws = cloud::aws::Aws::new(&args.aws_region, rates(&args), &metrics).await;
    let refresh = std::time::Duration::from_secs(args.cloud_refresh_seconds.max(1));
    let main_place = accounts::Place {
        name: "main",
        region: args.aws_region.clone(),
        vpc_id: args.vpc_id.clone(),
        subnet_id: args.subnet_id.clone(),
        eic_sg: args.eic_endpoint_sg_id.clone(),
        ami: images.lookup(&molecule_crds::images::ImageCatalog::default_key()).map(str::to_owned),
    };
    let Some((main, dns)) =
        main_account(&args, main_place, &identity, &aws, &metrics, refresh, shutdown.clone()).await?
    else {
        tracing::info!("shutting down before the first fleet listing");
        // A rollout during a slow first listing: the next replica leads at once, not after the
        // Lease expires.
        leader::release().await;
        return Ok(());
    };
    let canary = open_canary(&args, &identity, &metrics, polling(&args, true));
    let (tenants, tenant_events, tenant_rx) = watch_tenants(client.clone(), args.tenant_selector.as_deref())?;

    let settings = context::Settings {
        workspace_domain: args.workspace_domain.clone(),
        deprovision_deadline: std::time::Duration::from_secs(args.deprovision_deadline_seconds),
        boot_deadline: std::time::Duration::from_secs(args.boot_deadline_seconds),
        erasure_listing_allowance: std::time::Duration::from_secs(args.erasure_listing_allowance_seconds),
        refresh_interval: refresh,
        concurrency: args.concurrency,
        workspace_selector: args.workspace_selector.clone(),
    };
    let tunnels = build_tunnels(&args, &metrics)?;
    let recorder = recorder::Recorder::new(client.clone(), "molecule-operator");
    let ctx = Arc::new(context::Context {
        client: client.clone(),
        recorder,
        settings: settings.clone(),
        identity,
        catalog,
        images,
        dns,
        metrics,
        failpoints,
        backoff: backoff::Backoff::default(),
        tenants,
        main,
        canary,
        tunnels,
        tenant: tenant_settings(&args),
    });
    let tenant_memory = Arc::new(reconcile::tenant::Memory::default());
    log_start(&args, &ctx);
    let (workspaces, [ws_for_workspaces, ws_for_tenants], gone) =
        watch_workspaces(client.clone(), settings.workspace_selector.as_deref())?;
    let forget: Vec<Arc<dyn bounded::Prune>> = vec![tenant_memory.clone()];
    tokio::spawn(orphans::run(ctx.clone(), workspaces.clone(), orphans::Settings::from_args(&args), forget));
    tokio::spawn(gauges::run(ctx.clone(), workspaces.clone()));
    shutdown::bounded(
        async {
            tokio::join!(
                reconcile::workspace::run(
                    ctx.clone(),
                    ws_for_workspaces,
                    workspaces.clone(),
                    tenant_rx,
                    shutdown.clone()
                ),
                reconcile::tenant::run(
                    ctx,
                    tenant_events,
                    (ws_for_tenants, gone),
                    workspaces,
                    tenant_memory,
                    shutdown.clone()
                ),
            );
        },
        shutdown.clone(),
    )
    .await;
    Ok(())
}

/// The main account and the workspace DNS zone (Route 53 behind the zone record cache and the
/// change batcher, cloud/dns): AWS's, or, for benchmarks only (`MOLECULE_FAKE_CLOUD=1`), the
/// in-process fake cloud's. The first listing waits out AWS errors; `None` when shutdown came
/// first.
async fn main_account(
    args: &cli::RunArgs,
    place: accounts::Place,
    identity: &cloud::tags::Identity,
    aws: &cloud::aws::Aws,
    metrics: &metrics::Metrics,
    refresh: std::time::Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<Option<(Arc<context::Account>, Option<Arc<dyn cloud::Dns>>)>, Error> {
    if accounts::fake_cloud::requested() {
        let (account, zone) =
            accounts::fake_cloud::open(place, identity, metrics, refresh).await.map_err(Error::Config)?;
        return Ok(Some((account, Some(zone))));
    }
    let polling = polling(args, false);
    let account = tokio::select! {
        // A VPC or subnet that does not exist is fatal; throttling and 5xx are waited out.
        opened = accounts::open(aws.clone(), place, identity, metrics, &polling, true) => {
            opened.map_err(|e| Error::Config(e.to_string()))?
        }
        () = shutdown => return Ok(None),
    };
    let dns = args.workspace_zone_id.clone().map(|z| {
        let raw = Arc::new(cloud::aws::dns::Route53Dns::new(aws.clone(), z));
        let config = cloud::dns::BatchConfig::new(refresh);
        Arc::new(cloud::dns::BatchedDns::new(raw.clone(), raw, &args.workspace_domain, config, metrics))
            as Arc<dyn cloud::Dns>
    });
    Ok(Some((account, dns)))
}

/// Serves /healthz, /readyz and /metrics until shutdown.
async fn serve_http(
    addr: std::net::SocketAddr,
    metrics: &metrics::Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Http { addr, source })?;
    let server = axum::serve(listener, http::router(metrics.clone())).with_graceful_shutdown(shutdown);
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, %addr, "the metrics and health endpoint stopped");
        }
    });
    Ok(())
}

/// Waits until this replica leads; `false` when shutdown came first.
async fn lead(client: &Client, args: &cli::RunArgs, shutdown: impl Future<Output = ()>) -> bool {
    let me = std::env::var("POD_NAME").or_else(|_| std::env::var("HOSTNAME")).map_or_else(
        |_| format!("molecule-operator-{}", std::process::id()),
        |n| format!("{n}-{}", std::process::id()),
    );
    let lease = format!("{}-leader", args.operator_id);
    tokio::select! {
        () = leader::acquire(client.clone(), &args.operator_namespace, &lease, me) => true,
        () = shutdown => false,
    }
}

fn log_start(args: &cli::RunArgs, ctx: &context::Context) {
    tracing::info!(
        operator_id = %args.operator_id,
        env = %args.env,
        region = %args.aws_region,
        canary = ctx.canary.is_ready(),
        cloudflare = ctx.tunnels.is_some(),
        instance_types = ctx.catalog.iter().count(),
        images = ctx.images.iter().count(),
        "molecule-operator started"
    );
}

fn tenant_settings(args: &cli::RunArgs) -> context::TenantSettings {
    context::TenantSettings {
        base_domain: args.tenant_base_domain.clone(),
        instance_type: args.tenant_instance_type.clone(),
        image: args.tenant_image.clone(),
        canary_image: args.canary_tenant_image.clone(),
        ghcr_pull_token: args.ghcr_pull_token.as_ref().map(|t| t.expose().to_owned()),
        backup_prefix: args.tenant_backup_s3_prefix.clone(),
        cp_base_url: args.cp_base_url.clone(),
        operator_namespace: args.operator_namespace.clone(),
        iam: cloud::identities::IamSettings {
            path: args.tenant_iam_path.clone(),
            boundary: args.tenant_iam_permissions_boundary.clone().filter(|b| !b.is_empty()),
        },
    }
}

fn rates(args: &cli::RunArgs) -> cloud::aws::limiter::Rates {
    cloud::aws::limiter::Rates {
        describe: args.aws_describe_rate,
        mutate: args.aws_mutate_rate,
        launch: args.aws_launch_rate,
        terminate: args.aws_terminate_rate,
        dns: args.aws_route53_rate,
        secrets: args.aws_secrets_rate,
    }
}

/// The canary account's slot, opened in the background through STS AssumeRole and retried with
/// backoff until usable; not configured, it says which settings are missing (a condition on the
/// canary Tenants, not a reason to stop the operator).
fn open_canary(
    args: &cli::RunArgs,
    identity: &cloud::tags::Identity,
    metrics: &metrics::Metrics,
    polling: accounts::Polling,
) -> Arc<accounts::Slot> {
    // An empty value is unset (an environment that blanks a setting out).
    let set = |o: &Option<String>| o.clone().filter(|s| !s.is_empty());
    let (Some(role), Some(region), Some(vpc), Some(subnet)) =
        (set(&args.canary_role_arn), set(&args.canary_region), set(&args.canary_vpc_id), set(&args.canary_subnet_id))
    else {
        let why = "CANARY_ROLE_ARN, CANARY_REGION, CANARY_VPC_ID and CANARY_SUBNET_ID must all be set";
        return Arc::new(accounts::Slot::not_configured("canary", why));
    };
    let slot = Arc::new(accounts::Slot::opening("canary"));
    let place = accounts::Place {
        name: "canary",
        region: region.clone(),
        vpc_id: vpc,
        subnet_id: subnet,
        eic_sg: None,
        ami: args.canary_ami.clone(),
    };
    let (rates, m) = (rates(args), metrics.clone());
    let connect = move || {
        let (role, region, m) = (role.clone(), region.clone(), m.clone());
        async move { cloud::aws::Aws::assume(&role, &region, rates, &m).await }
    };
    tokio::spawn(accounts::keep_opening(slot.clone(), connect, place, identity.clone(), metrics.clone(), polling));
    slot
}

/// How the main (or canary) account's fleet cache learns of changes (its queue, if any).
fn polling(args: &cli::RunArgs, canary: bool) -> accounts::Polling {
    let queue = if canary { &args.canary_ec2_events_queue_url } else { &args.ec2_events_queue_url };
    accounts::Polling {
        refresh: std::time::Duration::from_secs(args.cloud_refresh_seconds.max(1)),
        queue_url: queue.clone().filter(|q| !q.is_empty()),
        resync: std::time::Duration::from_secs(args.cloud_resync_seconds),
    }
}

/// The Cloudflare client, when its settings are complete (else Tenants say so in TunnelReady).
fn build_tunnels(args: &cli::RunArgs, metrics: &metrics::Metrics) -> Result<Option<Arc<dyn cloud::Tunnels>>, Error> {
    let (Some(token), Some(account), Some(zone)) =
        (&args.cloudflare_api_token, &args.cloudflare_account_id, &args.cloudflare_zone_id)
    else {
        tracing::warn!("Cloudflare settings incomplete: tenants get no tunnel (TunnelReady=False)");
        return Ok(None);
    };
    let cf = cloud::cloudflare::Cloudflare::new(&args.cloudflare_api_url, token.expose(), account, zone)
        .map_err(|e| Error::Config(e.to_string()))?
        .with_metrics(metrics.clone());
    Ok(Some(Arc::new(cf)))
}

/// The one Workspace watch, shared by the Workspace and Tenant controllers: its store, one event
/// stream for each, and the Workspaces that left the watch (the shared streams carry no deletes;
/// the Tenant's usage must learn of them).
fn watch_workspaces(client: Client, selector: Option<&str>) -> Result<WorkspaceWatch, Error> {
    let (store, writer) = kube::runtime::reflector::store_shared::<Workspace>(WORKSPACE_SHARE_BUFFER);
    let unshared = || Error::Config("the Workspace watch is not shared".into());
    let subs = [writer.subscribe().ok_or_else(unshared)?, writer.subscribe().ok_or_else(unshared)?];
    let mut wc = kube::runtime::watcher::Config::default();
    if let Some(sel) = selector {
        wc = wc.labels(sel);
    }
    let (gone_tx, gone) = futures::channel::mpsc::unbounded();
    let watch = kube::runtime::watcher(Api::<Workspace>::all(client), wc)
        .default_backoff()
        .modify(bounded::slim)
        .reflect_shared(writer)
        .for_each(move |ev| {
            if let Ok(kube::runtime::watcher::Event::Delete(w)) = ev {
                let uid = w.metadata.uid.unwrap_or_default();
                let _ = gone_tx.unbounded_send(reconcile::tenant::wakes::Gone { uid, tenant: w.spec.tenant });
            }
            futures::future::ready(())
        });
    tokio::spawn(watch);
    Ok((store, subs, gone))
}

/// See [`watch_workspaces`].
type WorkspaceWatch = (
    kube::runtime::reflector::Store<Workspace>,
    [kube::runtime::reflector::ReflectHandle<Workspace>; 2],
    futures::channel::mpsc::UnboundedReceiver<reconcile::tenant::wakes::Gone>,
);

/// The one Tenant watch: its store serves admission and the Tenant controller (which gets every
/// event), and the names of Tenants whose Workspace-facing parts changed wake their Workspaces.
/// The Tenant store, the Tenant controller's event stream, and the names of changed Tenants.
type TenantWatch = (
    kube::runtime::reflector::Store<Tenant>,
    kube::runtime::reflector::ReflectHandle<Tenant>,
    tokio::sync::broadcast::Receiver<String>,
);

fn watch_tenants(client: Client, selector: Option<&str>) -> Result<TenantWatch, Error> {
    let (tenants, tenant_writer) = kube::runtime::reflector::store_shared::<Tenant>(TENANT_CHANGE_BUFFER);
    let for_controller =
        tenant_writer.subscribe().ok_or_else(|| Error::Config("the Tenant watch is not shared".into()))?;
    let (tenant_tx, tenant_rx) = tokio::sync::broadcast::channel::<String>(TENANT_CHANGE_BUFFER);
    let mut wc = kube::runtime::watcher::Config::default();
    if let Some(sel) = selector {
        wc = wc.labels(sel);
    }
    // Workspaces care about a Tenant's spec, its deletion and the parts of its status they read
    // (group, bundle, account); usage and orphan updates must not wake every Workspace.
    let mut wakes = bounded::TenantWakes::default();
    let tenant_watch = kube::runtime::watcher(Api::<Tenant>::all(client), wc)
        .default_backoff()
        .modify(bounded::slim)
        .reflect_shared(tenant_writer)
        .for_each(move |ev| {
            if let Some(name) = ev.ok().and_then(|ev| wakes.on_event(&ev)) {
                // Nobody listening yet (or a lagging listener) is fine: reconciles read the store.
                let _ = tenant_tx.send(name);
            }
            futures::future::ready(())
        });
    tokio::spawn(tenant_watch);
    Ok((tenants, for_controller, tenant_rx))
}
