//! The local test world of molecule-operator: the Cloudflare fake, the fault proxy, the bootstrap
//! simulator, and the
//! harness the end-to-end scenarios use (see tests/e2e/README.md).

pub mod aws_world;
pub mod bootsim;
pub mod cf_faults;
pub mod cloudflare;
pub mod faults;
pub mod harness;
pub mod ids;
pub mod private_proxy;
pub mod scenario;
mod scenario_tenant;
pub mod tenant;
