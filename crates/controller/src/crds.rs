//! The operator's CRDs at start: optionally applied (server-side, `INSTALL_CRDS`), then checked
//! against the ones this binary was built with.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use molecule_crds::crd::{all, schema_hash};

use crate::Error;

/// Field manager of the CRDs the operator applies.
const MANAGER: &str = "molecule-operator";
/// How long an applied CRD may take to become Established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Applies the CRDs when `install`, then fails unless every installed CRD carries this binary's
/// schema digest.
pub async fn ensure(client: &Client, install: bool) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for want in all() {
        let name = want.metadata.name.clone().unwrap_or_default();
        if install {
            api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&want))
                .await
                .map_err(|source| Error::CrdInstall { name: name.clone(), source })?;
            established(&api, &name).await?;
            tracing::info!(crd = %name, "applied this binary's CRD");
        }
        check(&api, &want).await?;
    }
    Ok(())
}

/// Fails unless the installed CRD named like `want` carries `want`'s schema digest.
pub async fn check(api: &Api<CustomResourceDefinition>, want: &CustomResourceDefinition) -> Result<(), Error> {
    let name = want.metadata.name.clone().unwrap_or_default();
    let got = api.get(&name).await.map_err(|source| Error::Crd { name: name.clone(), source })?;
    let built = schema_hash(want).unwrap_or_default();
    if schema_hash(&got) == Some(built) {
        return Ok(());
    }
    Err(Error::CrdMismatch {
        name,
        version: env!("CARGO_PKG_VERSION"),
        installed: schema_hash(&got).unwrap_or("none").to_owned(),
        built: built.to_owned(),
    })
}

/// Waits until the CRD `name` is Established (served), bounded.
async fn established(api: &Api<CustomResourceDefinition>, name: &str) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + ESTABLISH_TIMEOUT;
    loop {
        let crd = api.get(name).await.map_err(|source| Error::Crd { name: name.to_owned(), source })?;
        let ok = crd
            .status
            .and_then(|s| s.conditions)
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
        if ok {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(crd = %name, "the applied CRD is not Established yet; its objects may not be served");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
