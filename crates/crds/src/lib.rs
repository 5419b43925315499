//! The `moleculesai.app/v1alpha1` API of molecule-operator and the pure rules that turn a
//! Workspace's `spec.compute` into a machine.
//!
//! This crate has no client and no runtime: it is shared by the operator, the CRD generator and
//! the tests.

pub mod catalog;
pub mod conditions;
pub mod crd;
pub mod images;
pub mod kstatus;
pub mod quota;
pub mod reasons;
pub mod receipt;
pub mod resolve;
pub mod v1alpha1;
