//! The molecule-operator library: configuration, the HTTP endpoints and (in later releases) the
//! Tenant and Workspace reconcilers. `main.rs` only parses flags and calls [`run`].

pub mod cli;
pub mod http;
pub mod telemetry;

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

/// Runs the operator until SIGINT or SIGTERM.
///
/// This release checks its configuration and CRDs and serves /healthz, /readyz and /metrics; the
/// reconcilers land with the Workspace and Tenant issues (see CHANGELOG.md).
pub async fn run(args: cli::RunArgs) -> Result<(), Error> {
    let (catalog, images) = load_catalogs(&args)?;
    let client = Client::try_default().await.map_err(Error::Client)?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in ["tenants.moleculesai.app", "workspaces.moleculesai.app"] {
        crds.get(name).await.map_err(|source| Error::Crd { name: name.into(), source })?;
    }
    tracing::info!(
        operator_id = %args.operator_id,
        env = %args.env,
        region = %args.aws_region,
        instance_types = catalog.iter().count(),
        images = images.iter().count(),
        "molecule-operator started"
    );
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .map_err(|source| Error::Http { addr: args.metrics_addr, source })?;
    let server = axum::serve(listener, http::router());
    tokio::select! {
        r = server => r.map_err(|source| Error::Http { addr: args.metrics_addr, source })?,
        () = shutdown_signal() => tracing::info!("shutting down"),
    }
    Ok(())
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
