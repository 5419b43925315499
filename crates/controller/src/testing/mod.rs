//! Test support for the apply layer: a [`Context`] whose accounts, DNS zone and tunnels are one
//! in-process [`FakeCloud`], and whose Kubernetes client talks to [`ApiStub`], a loopback server
//! that lists no objects and answers 404 to everything else (Events are dropped, deletes find
//! nothing). The protocols run exactly as in the operator, against the fake's AWS semantics.

#![allow(clippy::missing_panics_doc)]

pub mod api;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::accounts::{Place, Slot, fake_cloud};
use crate::cloud::fake::{FakeCloud, FakeConfig};
use crate::cloud::tags::{Identity, Owner};
use crate::context::{Account, Context, Settings, TenantSettings};
use crate::metrics::Metrics;

pub use api::ApiStub;

/// The operator identity of every test.
pub fn identity() -> Identity {
    Identity { operator_id: "molecule-test".into(), env: "test".into() }
}

/// A Workspace owner.
pub fn workspace_owner(uid: &str) -> Owner {
    Owner {
        kind: "Workspace",
        uid: uid.into(),
        namespace: Some("acme".into()),
        name: format!("ws-{uid}"),
        tenant: "acme".into(),
    }
}

/// A Tenant owner.
pub fn tenant_owner(uid: &str, slug: &str) -> Owner {
    Owner { kind: "Tenant", uid: uid.into(), namespace: None, name: slug.into(), tenant: slug.into() }
}

/// A fake cloud with instant transitions (tests advance the clock where timing matters).
pub fn cloud() -> FakeCloud {
    FakeCloud::with_config(FakeConfig::instant())
}

/// An account on `fake`, its clients written through to its cache, the cache filled once.
pub async fn account(fake: &FakeCloud, name: &'static str, metrics: &Metrics) -> Arc<Account> {
    let place = Place {
        name,
        region: "eu-west-1".into(),
        vpc_id: "vpc-1".into(),
        subnet_id: "subnet-1".into(),
        eic_sg: Some("sg-eic".into()),
        ami: Some("ami-tenant".into()),
    };
    fake_cloud::account(fake, place, "eu-west-1a", &identity(), metrics).await.expect("first listing of the fake")
}

/// A Context on `fake` (main account only, DNS and Cloudflare on the fake) and the API stub.
pub async fn context(fake: &FakeCloud) -> (Arc<Context>, ApiStub) {
    let stub = ApiStub::start().await;
    let metrics = Metrics::new();
    let main = account(fake, "main", &metrics).await;
    let client = stub.client();
    let (tenants, _writer) = kube::runtime::reflector::store();
    let ctx = Context {
        recorder: crate::recorder::Recorder::new(client.clone(), "molecule-test"),
        client,
        settings: Settings {
            workspace_domain: "ws.example.test".into(),
            deprovision_deadline: Duration::from_mins(10),
            boot_deadline: Duration::from_mins(15),
            erasure_listing_allowance: Duration::ZERO,
            refresh_interval: Duration::from_secs(1),
            concurrency: 4,
            workspace_selector: None,
        },
        identity: identity(),
        catalog: molecule_crds::catalog::Catalog::builtin(),
        images: molecule_crds::images::ImageCatalog::with_default(Some("ami-default")),
        dns: Some(fake.dns()),
        metrics,
        failpoints: crate::failpoints::Failpoints::default(),
        backoff: crate::backoff::Backoff::default(),
        tenants,
        main,
        canary: Arc::new(Slot::not_configured("canary", "not configured in tests")),
        tunnels: Some(fake.tunnels()),
        tenant: TenantSettings {
            base_domain: "example.test".into(),
            instance_type: "t3.small".into(),
            image: Some("ghcr.io/molecule/platform:1".into()),
            canary_image: None,
            ghcr_pull_token: None,
            backup_prefix: None,
            cp_base_url: None,
            operator_namespace: "molecule-system".into(),
            iam: crate::cloud::identities::IamSettings::default(),
        },
    };
    (Arc::new(ctx), stub)
}

/// The owner tags of `owner` with the test identity.
pub fn tags(owner: &Owner) -> BTreeMap<String, String> {
    identity().tags(owner)
}
