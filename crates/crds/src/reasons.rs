//! Why a Workspace is not admitted: the reasons of API.md, with a message naming the field.

use std::fmt;

/// A bounded set of reasons (they appear as condition reasons, Event reasons and metric labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// `spec.compute.instanceType` (or the default it resolved to) is not in the catalog.
    UnknownInstanceType,
    /// `spec.compute.os.arch` differs from the instance type's architecture.
    ArchMismatch,
    /// The instance type does not carry the requested GPU model or count.
    GpuMismatch,
    /// The image catalog has no AMI for the requested family, version, architecture and GPU.
    NoImage,
    /// A Tenant quota would be exceeded.
    QuotaExceeded,
    /// `spec.tenant` names no existing Tenant.
    TenantNotFound,
    /// The Workspace's namespace is not in the Tenant's `spec.namespaces`.
    NamespaceNotAllowed,
    /// The Tenant is being deleted.
    TenantErasing,
}

impl Reason {
    /// Every reason, for exhaustive tests and metric pre-registration.
    pub const ALL: [Reason; 8] = [
        Self::UnknownInstanceType,
        Self::ArchMismatch,
        Self::GpuMismatch,
        Self::NoImage,
        Self::QuotaExceeded,
        Self::TenantNotFound,
        Self::NamespaceNotAllowed,
        Self::TenantErasing,
    ];

    /// The CamelCase word used in conditions and Events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownInstanceType => "UnknownInstanceType",
            Self::ArchMismatch => "ArchMismatch",
            Self::GpuMismatch => "GpuMismatch",
            Self::NoImage => "NoImage",
            Self::QuotaExceeded => "QuotaExceeded",
            Self::TenantNotFound => "TenantNotFound",
            Self::NamespaceNotAllowed => "NamespaceNotAllowed",
            Self::TenantErasing => "TenantErasing",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Workspace that must not be admitted: the reason and a message that names the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Bounded reason.
    pub reason: Reason,
    /// The field the rejection is about, as a path from the object root (`spec.compute.gpu`).
    pub field: &'static str,
    /// What is wrong, for humans; starts with the field path.
    pub message: String,
}

impl Rejection {
    /// A rejection about `field`; the message is prefixed with the field path.
    pub fn new(reason: Reason, field: &'static str, detail: impl fmt::Display) -> Self {
        Self { reason, field, message: format!("{field}: {detail}") }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.reason)
    }
}

impl std::error::Error for Rejection {}
