//! Commands run on an instance without a reboot (SSM Run Command): the tenant platform redeploy.

use async_trait::async_trait;

use super::CloudResult;

/// Where a command stands on its instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandState {
    /// Queued or running.
    Running,
    /// Finished with exit code 0.
    Succeeded,
    /// Failed, timed out or was cancelled; the provider's detail.
    Failed(String),
}

/// Run Command of one account and region.
#[async_trait]
pub trait Commands: Send + Sync {
    /// Runs shell `commands` on `instance`; returns the command ID.
    async fn send(&self, instance: &str, comment: &str, commands: &[String]) -> CloudResult<String>;
    /// The state of command `id` on `instance`.
    async fn state(&self, id: &str, instance: &str) -> CloudResult<CommandState>;
    /// The ID of a command sent to `instance` whose comment is exactly `comment` (ListCommands,
    /// all pages), the newest if several: a send whose answer was lost is found by the marker
    /// its comment carries. `None` when there is none.
    async fn find(&self, instance: &str, comment: &str) -> CloudResult<Option<String>>;
}
