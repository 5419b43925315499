//! The Tenant reconciler: [`controller`] (watches and wiring), [`apply`] (credentials, tunnel,
//! bootstrap bundle, security group, the VM through [`crate::reconcile::launch`], CNAME,
//! redeploys and usage), [`status`] (conditions), [`scope`] (the one status write), and the
//! Article 17 erasure behind the finalizer ([`cleanup`], [`erase`]).

mod apply;
pub mod bundle;
mod cleanup;
pub mod cloudflare;
pub mod controller;
pub mod credentials;
mod edge;
pub mod erase;
pub mod erase_lookup;
pub mod identity;
pub mod receipt;
pub mod scope;
pub mod status;
pub mod vm;
pub mod wakes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use molecule_crds::v1alpha1::Tenant;

use crate::bounded::{Keep, Prune, retain};
use crate::cloud::tags::Owner;
use crate::context::{Account, Context};

pub use self::controller::run;
pub use self::scope::apply_status;

/// The finalizer that holds a Tenant until its erasure is complete.
pub const FINALIZER: &str = "moleculesai.app/tenant-erasure";

/// The Tenant reconciler's memory between reconciles (pruned of gone Tenants).
#[derive(Debug, Default)]
pub struct Memory {
    /// Digest of the bundle last written, by Tenant uid: an unchanged bundle costs no call.
    pub bundles: Mutex<HashMap<String, String>>,
    /// Tunnel tokens read, by tunnel ID, with when the tunnel was last found (kept in memory
    /// only, for the bundle).
    pub tunnel_tokens: Mutex<HashMap<String, (String, std::time::Instant)>>,
    /// Digest of the identity inputs last converged, by Tenant uid, with when: an unchanged
    /// identity costs no IAM call until [`identity::RECHECK`] has passed.
    pub identities: Mutex<HashMap<String, (String, std::time::Instant)>>,
}

impl Prune for Memory {
    fn prune(&self, keep: &Keep) -> usize {
        retain(&self.bundles, |k| keep.uids.contains(k))
            + retain(&self.tunnel_tokens, |k| keep.tunnels.contains(k))
            + retain(&self.identities, |k| keep.uids.contains(k))
    }
}

/// Owner tags of a Tenant.
pub fn owner_of(t: &Tenant) -> Owner {
    Owner {
        kind: "Tenant",
        uid: t.uid().unwrap_or_default(),
        namespace: None,
        name: t.name_any(),
        tenant: t.name_any(),
    }
}

/// The tenant hostname.
pub fn hostname(slug: &str, base: &str) -> String {
    format!("{slug}.{base}")
}

/// The account a Tenant lives in, or (reason, message) why it cannot be provisioned now.
pub fn account_for(ctx: &Context, t: &Tenant) -> Result<Arc<Account>, (&'static str, String)> {
    if !t.spec.canary {
        return Ok(ctx.main.clone());
    }
    ctx.canary.status().map_err(|(problem, why)| (problem.reason(), format!("spec.canary: {why}")))
}
