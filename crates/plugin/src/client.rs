//! The user's kubeconfig: the client, the default namespace and the user's name.

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::Error;

/// Where the commands run.
#[derive(Clone)]
pub struct Cluster {
    /// Client with the user's credentials (their RBAC applies).
    pub client: kube::Client,
    /// The context's namespace (or `default`).
    pub namespace: String,
    /// The kubeconfig context's user entry name (the lock identity's fallback, see [`whoami`]).
    pub user: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("namespace", &self.namespace).field("user", &self.user).finish_non_exhaustive()
    }
}

fn config_err(e: impl std::fmt::Display) -> Error {
    Error::Call {
        action: "load".into(),
        object: "the kubeconfig".into(),
        message: crate::error::one_line(&e.to_string()),
    }
}

/// Loads the kubeconfig (KUBECONFIG or ~/.kube/config, or the in-cluster config), with an
/// optional `--context`.
pub async fn connect(context: Option<&str>) -> Result<Cluster, Error> {
    let opts = KubeConfigOptions { context: context.map(str::to_owned), ..KubeConfigOptions::default() };
    let (config, user) = match Kubeconfig::read() {
        Ok(kc) => {
            let name = context.map(str::to_owned).or_else(|| kc.current_context.clone()).unwrap_or_default();
            let user = kc
                .contexts
                .iter()
                .find(|c| c.name == name)
                .and_then(|c| c.context.as_ref())
                .and_then(|c| c.user.clone())
                .unwrap_or_default();
            (kube::Config::from_custom_kubeconfig(kc, &opts).await.map_err(config_err)?, user)
        }
        Err(_) => (kube::Config::infer().await.map_err(config_err)?, String::new()),
    };
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(config_err)?;
    Ok(Cluster { client, namespace, user })
}

/// The name the API server authenticates this client as (a SelfSubjectReview, what `kubectl auth
/// whoami` shows), else the kubeconfig context's user entry name (API servers before 1.28). The
/// entry name is only a fallback: on EKS every user's entry is named after the cluster's ARN.
pub async fn whoami(k: &Cluster) -> String {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let api: kube::Api<SelfSubjectReview> = kube::Api::all(k.client.clone());
    let review = api.create(&kube::api::PostParams::default(), &SelfSubjectReview::default()).await;
    review.ok().and_then(|r| r.status?.user_info?.username).filter(|u| !u.is_empty()).unwrap_or_else(|| k.user.clone())
}
