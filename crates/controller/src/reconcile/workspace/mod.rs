//! The Workspace reconciler: [`controller`] (watches and wiring), [`apply`] (admission, security
//! group, data volume, the launch protocol of [`crate::reconcile::launch`], DNS, the display
//! Lease), [`status`] (conditions computed from a pure view), [`scope`] (the one status write),
//! and the delete protocol behind the finalizer.

pub mod admit;
mod apply;
pub mod controller;
pub(crate) mod delete;
pub mod display;
pub mod dns;
pub mod drift;
pub mod network;
pub mod scope;
pub mod secret;
pub mod status;
mod subject;
pub mod volume;
pub mod wakes;

use kube::ResourceExt;
use molecule_crds::v1alpha1::Workspace;

use crate::cloud::tags::Owner;

pub use self::controller::run;

/// The finalizer that holds a Workspace until its cloud resources are confirmed gone.
pub const FINALIZER: &str = "moleculesai.app/workspace-cleanup";
/// Annotation that applies a pending drift under `updatePolicy: Manual`.
pub const RECREATE_AT: &str = "moleculesai.app/recreate-at";

/// Owner tags of a Workspace.
pub fn owner_of(ws: &Workspace) -> Owner {
    Owner {
        kind: "Workspace",
        uid: ws.uid().unwrap_or_default(),
        namespace: ws.namespace(),
        name: ws.name_any(),
        tenant: ws.spec.tenant.clone(),
    }
}
