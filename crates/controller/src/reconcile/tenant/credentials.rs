//! The tenant's credentials: generated once into a Kubernetes Secret owned by the Tenant, in the
//! operator's namespace. The values never leave it except into the bootstrap bundle.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Resource, ResourceExt};
use molecule_crds::v1alpha1::Tenant;

use crate::context::Context;
use crate::reconcile::{Error, kube_err};

/// Keys of the credentials Secret.
pub const KEYS: [&str; 3] = ["admin-token", "provision-shared-secret", "display-signing-secret"];
/// Random bytes per value (64 hex characters).
const BYTES: usize = 32;

/// The generated values (never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials(pub BTreeMap<String, String>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Credentials {
    /// A value by key (empty when missing).
    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("", String::as_str)
    }
}

/// Name of the credentials Secret of `slug`.
pub fn secret_name(slug: &str) -> String {
    format!("tenant-{slug}-credentials")
}

fn random_hex() -> Result<String, Error> {
    let mut b = [0u8; BYTES];
    getrandom::fill(&mut b).map_err(|e| Error::Kube {
        action: "read the OS random source for tenant credentials",
        source: kube::Error::Service(Box::new(std::io::Error::other(e.to_string()))),
    })?;
    Ok(hex::encode(b))
}

fn values(s: &Secret) -> BTreeMap<String, String> {
    s.data
        .iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?)))
        .filter(|(k, v)| KEYS.contains(&k.as_str()) && !v.is_empty())
        .collect()
}

/// The Tenant's credentials: read from its Secret, or generated and stored once.
///
/// Guarantees: an existing value is never replaced; two reconciles racing to create the Secret
/// end with one (the loser reads the winner's).
pub async fn ensure(ctx: &Context, t: &Tenant) -> Result<Credentials, Error> {
    let ns = &ctx.tenant.operator_namespace;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = secret_name(&t.name_any());
    if let Some(s) = api.get_opt(&name).await.map_err(kube_err("read the tenant credentials Secret"))? {
        let mut have = values(&s);
        if KEYS.iter().all(|k| have.contains_key(*k)) {
            return Ok(Credentials(have));
        }
        // A key someone removed is generated again; the others are kept.
        for k in KEYS {
            if !have.contains_key(k) {
                have.insert(k.to_owned(), random_hex()?);
            }
        }
        let data: BTreeMap<String, ByteString> =
            have.iter().map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes()))).collect();
        let patch = serde_json::json!({ "data": data });
        api.patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
            .await
            .map_err(kube_err("complete the tenant credentials Secret"))?;
        return Ok(Credentials(have));
    }
    let mut generated = BTreeMap::new();
    for k in KEYS {
        generated.insert(k.to_owned(), random_hex()?);
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(BTreeMap::from([
                ("moleculesai.app/tenant".to_owned(), t.name_any()),
                ("app.kubernetes.io/managed-by".to_owned(), ctx.identity.operator_id.clone()),
            ])),
            owner_references: t.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(generated.iter().map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes()))).collect()),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(Credentials(generated)),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let s = api.get(&name).await.map_err(kube_err("read the tenant credentials Secret"))?;
            Ok(Credentials(values(&s)))
        }
        Err(e) => Err(kube_err("create the tenant credentials Secret")(e)),
    }
}

/// Deletes the credentials Secret; `true` once it is gone.
pub async fn delete(ctx: &Context, slug: &str) -> Result<bool, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.tenant.operator_namespace);
    let name = secret_name(slug);
    match api.delete(&name, &kube::api::DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(true),
        Err(e) => return Err(kube_err("delete the tenant credentials Secret")(e)),
    }
    Ok(api.get_opt(&name).await.map_err(kube_err("read the tenant credentials Secret"))?.is_none())
}
