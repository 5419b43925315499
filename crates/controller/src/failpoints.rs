//! Failpoints: named places right after a side effect where a test can freeze the operator and
//! kill it with SIGKILL, to prove the crash-safe protocols. Armed with `MOLECULE_FAILPOINTS`
//! (comma-separated names) and only honoured when `MOLECULE_ENV=dev`.

use std::collections::BTreeSet;

/// Every failpoint, in the order a launch and a delete pass them.
pub const ALL: &[&str] = &[
    "workspace.sg.after-create",
    "workspace.volume.after-create",
    "workspace.launch.after-record",
    "workspace.launch.after-run",
    "workspace.dns.after-upsert",
    "workspace.delete.after-terminate",
    "workspace.delete.after-sg",
    "workspace.delete.after-volume",
    "workspace.delete.after-dns",
    "tenant.sg.after-create",
    "tenant.launch.after-record",
    "tenant.launch.after-run",
    "tenant.erase.after-progress",
];

/// The armed failpoints.
#[derive(Clone, Debug, Default)]
pub struct Failpoints(BTreeSet<String>);

/// Why failpoints could not be armed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FailpointError {
    /// Armed outside dev.
    #[error("MOLECULE_FAILPOINTS is only honoured with MOLECULE_ENV=dev (it is {0})")]
    NotDev(String),
    /// A name that is not in [`ALL`].
    #[error("unknown failpoint {0:?}; known: {known}", known = ALL.join(", "))]
    Unknown(String),
}

impl Failpoints {
    /// Parses `spec` (comma-separated names) for environment `env`.
    pub fn parse(spec: Option<&str>, env: &str) -> Result<Self, FailpointError> {
        let names: BTreeSet<String> =
            spec.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if names.is_empty() {
            return Ok(Self::default());
        }
        if env != "dev" {
            return Err(FailpointError::NotDev(env.to_owned()));
        }
        if let Some(bad) = names.iter().find(|n| !ALL.contains(&n.as_str())) {
            return Err(FailpointError::Unknown(bad.clone()));
        }
        Ok(Self(names))
    }

    /// If `name` is armed, logs it and never returns (the test kills the process here).
    pub async fn hit(&self, name: &'static str) {
        if self.0.contains(name) {
            tracing::error!(failpoint = name, "failpoint reached: frozen until killed");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armed_only_in_dev_and_only_known_names() {
        assert!(Failpoints::parse(None, "prod").is_ok());
        assert_eq!(
            Failpoints::parse(Some("workspace.launch.after-run"), "prod").unwrap_err(),
            FailpointError::NotDev("prod".into())
        );
        assert!(matches!(Failpoints::parse(Some("nope"), "dev"), Err(FailpointError::Unknown(_))));
        assert_eq!(Failpoints::parse(Some(" workspace.launch.after-run ,"), "dev").unwrap().0.len(), 1);
    }
}
