//! The molecule-operator library: configuration, the cloud layer, the reconcilers and the HTTP
//! endpoints. `main.rs` only parses flags and calls [`run`].

pub mod backoff;
pub mod bootstrap;
pub mod cli;
pub mod cloud;
pub mod context;
pub mod failpoints;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod telemetry;

use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use kube::runtime::WatchStreamExt;
use molecule_crds::v1alpha1::Tenant;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};

/// Why the operator cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable kubeconfig or in-cluster config.
    #[error("failed to create the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// A CRD is missing or the API server is unreachable.
    #[error("failed to find CRD {name}: {source} (install it with `make crds-install` or the Helm chart)")]
    Crd {
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

/// Runs the operator until SIGINT or SIGTERM: loads and checks its configuration, fills the
/// fleet cache, then runs the Workspace controller and serves /healthz, /readyz and /metrics.
pub async fn run(args: cli::RunArgs) -> Result<(), Error> {
    let (catalog, images) = load_catalogs(&args)?;
    let failpoints = failpoints::Failpoints::parse(args.failpoints.as_deref(), &args.env)
        .map_err(|e| Error::Config(e.to_string()))?;
    let client = Client::try_default().await.map_err(Error::Client)?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in ["tenants.moleculesai.app", "workspaces.moleculesai.app"] {
        crds.get(name).await.map_err(|source| Error::Crd { name: name.into(), source })?;
    }
    let metrics = metrics::Metrics::new();
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .map_err(|source| Error::Http { addr: args.metrics_addr, source })?;
    let shutdown = shutdown_signal().shared();
    let server = axum::serve(listener, http::router(metrics.clone())).with_graceful_shutdown(shutdown.clone());
    let addr = args.metrics_addr;
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, %addr, "the metrics and health endpoint stopped");
        }
    });
    if args.leader_election {
        let me = std::env::var("POD_NAME").or_else(|_| std::env::var("HOSTNAME")).map_or_else(
            |_| format!("molecule-operator-{}", std::process::id()),
            |n| format!("{n}-{}", std::process::id()),
        );
        let lease = format!("{}-leader", args.operator_id);
        tokio::select! {
            () = leader::acquire(client.clone(), &args.operator_namespace, &lease, me) => {},
            () = shutdown.clone() => {
                tracing::info!("shutting down before leading");
                return Ok(());
            }
        }
    }
    metrics.leader.set(1);

    let cloud = build_cloud(&args, &metrics).await?;
    let cache = cloud.cache.clone();
    // Nothing is decided before the first full listing: a launch protocol that trusted an empty
    // cache after a restart would launch twice.
    let mut delay = std::time::Duration::from_secs(1);
    while let Err(e) = cache.refresh().await {
        tracing::warn!(error = %e, retry_in = ?delay, "first fleet listing failed");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(30));
    }

    let (tenants, tenant_rx) = watch_tenants(client.clone()).await;

    let settings = context::Settings {
        region: args.aws_region.clone(),
        subnet_id: args.subnet_id.clone(),
        zone: cloud.zone,
        vpc_cidr: cloud.vpc_cidr,
        eic_sg: args.eic_endpoint_sg_id.clone(),
        workspace_profile: args.workspace_instance_profile.clone(),
        workspace_domain: args.workspace_domain.clone(),
        deprovision_deadline: std::time::Duration::from_secs(args.deprovision_deadline_seconds),
        refresh_interval: std::time::Duration::from_secs(args.cloud_refresh_seconds.max(1)),
        concurrency: args.concurrency,
        workspace_selector: args.workspace_selector.clone(),
    };
    let recorder = kube::runtime::events::Recorder::new(client.clone(), "molecule-operator".into());
    let ctx = Arc::new(context::Context {
        client: client.clone(),
        recorder,
        settings: settings.clone(),
        identity: cloud.identity,
        catalog,
        images,
        instances: cloud.instances,
        network: cloud.network,
        volumes: cloud.volumes,
        dns: cloud.dns,
        cache: cache.clone(),
        metrics,
        failpoints,
        backoff: backoff::Backoff::default(),
        tenants,
        admission: reconcile::workspace::admit::Admission::default(),
        uncertain_launches: std::sync::Mutex::default(),
    });
    tokio::spawn(cache.run(settings.refresh_interval));
    tracing::info!(
        operator_id = %args.operator_id,
        env = %args.env,
        region = %args.aws_region,
        instance_types = ctx.catalog.iter().count(),
        images = ctx.images.iter().count(),
        "molecule-operator started"
    );
    reconcile::workspace::run(ctx, tenant_rx, shutdown.clone()).await;
    tracing::info!("shutting down");
    Ok(())
}

/// The cloud layer of the main account.
struct Cloud {
    instances: Arc<dyn cloud::Instances>,
    network: Arc<dyn cloud::Network>,
    volumes: Arc<dyn cloud::Volumes>,
    dns: Option<Arc<dyn cloud::Dns>>,
    cache: Arc<cloud::cache::FleetCache>,
    identity: cloud::tags::Identity,
    vpc_cidr: String,
    zone: String,
}

async fn build_cloud(args: &cli::RunArgs, metrics: &metrics::Metrics) -> Result<Cloud, Error> {
    let rates = cloud::aws::limiter::Rates {
        describe: args.aws_describe_rate,
        mutate: args.aws_mutate_rate,
        launch: args.aws_launch_rate,
        terminate: args.aws_terminate_rate,
        dns: args.aws_route53_rate,
    };
    let aws = cloud::aws::Aws::new(&args.aws_region, rates, metrics).await;
    // Throttling or a 5xx at start is waited out; a VPC or subnet that does not exist is fatal.
    let mut delay = std::time::Duration::from_secs(1);
    let (vpc_cidr, zone) = loop {
        match aws.network_facts(&args.vpc_id, &args.subnet_id).await {
            Ok(facts) => break facts,
            Err(e) if matches!(e.kind, cloud::ErrorKind::Throttled | cloud::ErrorKind::Transient) => {
                tracing::warn!(error = %e, retry_in = ?delay, "reading the VPC and subnet failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(30));
            }
            Err(e) => return Err(Error::Config(e.to_string())),
        }
    };
    let instances: Arc<dyn cloud::Instances> = Arc::new(cloud::aws::ec2::Ec2Instances::new(aws.clone()));
    let network: Arc<dyn cloud::Network> =
        Arc::new(cloud::aws::network::Ec2Network::new(aws.clone(), args.vpc_id.clone()));
    let volumes: Arc<dyn cloud::Volumes> = Arc::new(cloud::aws::volumes::Ec2Volumes(aws.clone()));
    let dns: Option<Arc<dyn cloud::Dns>> = args
        .workspace_zone_id
        .clone()
        .map(|z| Arc::new(cloud::aws::dns::Route53Dns::new(aws.clone(), z)) as Arc<dyn cloud::Dns>);
    let identity = cloud::tags::Identity { operator_id: args.operator_id.clone(), env: args.env.clone() };
    let cache = Arc::new(cloud::cache::FleetCache::new(
        identity.filter(),
        instances.clone(),
        network.clone(),
        volumes.clone(),
        metrics.clone(),
    ));
    Ok(Cloud { instances, network, volumes, dns, cache, identity, vpc_cidr, zone })
}

/// The one Tenant watch: its store serves admission, its events (Tenant names) wake the Tenant's
/// Workspaces. Returns once the store holds the first full list.
async fn watch_tenants(
    client: Client,
) -> (kube::runtime::reflector::Store<Tenant>, tokio::sync::broadcast::Receiver<String>) {
    let (tenants, tenant_writer) = kube::runtime::reflector::store::<Tenant>();
    let (tenant_tx, tenant_rx) = tokio::sync::broadcast::channel::<String>(TENANT_CHANGE_BUFFER);
    let tenant_watch = kube::runtime::watcher(Api::<Tenant>::all(client), kube::runtime::watcher::Config::default())
        .default_backoff()
        .reflect(tenant_writer)
        .touched_objects()
        .for_each(move |t| {
            if let Ok(t) = t {
                // Nobody listening yet (or a lagging listener) is fine: reconciles read the store.
                let _ = tenant_tx.send(kube::ResourceExt::name_any(&t));
            }
            futures::future::ready(())
        });
    tokio::spawn(tenant_watch);
    let _ = tenants.wait_until_ready().await;
    (tenants, tenant_rx)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
