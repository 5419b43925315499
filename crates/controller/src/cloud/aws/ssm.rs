//! [`Commands`] on SSM Run Command.

use async_trait::async_trait;
use aws_sdk_ssm::types::CommandInvocationStatus;

use super::limiter::Class;
use super::{Aws, cloud_error};
use crate::cloud::commands::{CommandState, Commands};
use crate::cloud::{CloudError, CloudResult, ErrorKind};

/// The SSM document that runs shell commands.
const RUN_SHELL: &str = "AWS-RunShellScript";
/// Seconds a redeploy may run on the instance before SSM calls it failed.
const EXECUTION_TIMEOUT_SECONDS: &str = "900";

/// [`Commands`] of the account and region of an [`Aws`].
#[derive(Clone, Debug)]
pub struct Ssm(pub Aws);

#[async_trait]
impl Commands for Ssm {
    async fn send(&self, instance: &str, comment: &str, commands: &[String]) -> CloudResult<String> {
        self.0.limiter.take(Class::Platform).await;
        let out = self
            .0
            .ssm
            .send_command()
            .instance_ids(instance)
            .document_name(RUN_SHELL)
            .comment(comment)
            .parameters("commands", commands.to_vec())
            .parameters("executionTimeout", vec![EXECUTION_TIMEOUT_SECONDS.to_owned()])
            .send()
            .await
            .map_err(|e| cloud_error(&e, "send command to", instance))?;
        out.command().and_then(|c| c.command_id()).map(str::to_owned).ok_or_else(|| CloudError {
            kind: ErrorKind::Transient,
            action: "send command to",
            target: instance.to_owned(),
            code: "EmptyResponse".into(),
            message: "SendCommand returned no command ID".into(),
        })
    }

    async fn find(&self, instance: &str, comment: &str) -> CloudResult<Option<String>> {
        let mut pages = self.0.ssm.list_commands().instance_id(instance).into_paginator().send();
        let mut found: Option<(Option<aws_sdk_ssm::primitives::DateTime>, String)> = None;
        loop {
            self.0.limiter.take(Class::Platform).await;
            let Some(page) = pages.next().await else { return Ok(found.map(|(_, id)| id)) };
            let page = page.map_err(|e| cloud_error(&e, "list commands on", instance))?;
            for c in page.commands().iter().filter(|c| c.comment() == Some(comment)) {
                let (at, id) = (c.requested_date_time().copied(), c.command_id().unwrap_or_default().to_owned());
                if !id.is_empty() && found.as_ref().is_none_or(|(t, _)| at > *t) {
                    found = Some((at, id));
                }
            }
        }
    }

    async fn state(&self, id: &str, instance: &str) -> CloudResult<CommandState> {
        self.0.limiter.take(Class::Platform).await;
        let out = match self.0.ssm.get_command_invocation().command_id(id).instance_id(instance).send().await {
            Ok(o) => o,
            // Right after SendCommand the invocation may not exist yet.
            Err(e) => {
                let err = cloud_error(&e, "read command", id);
                return if err.code == "InvocationDoesNotExist" { Ok(CommandState::Running) } else { Err(err) };
            }
        };
        Ok(match out.status() {
            Some(CommandInvocationStatus::Success) => CommandState::Succeeded,
            Some(
                s @ (CommandInvocationStatus::Failed
                | CommandInvocationStatus::Cancelled
                | CommandInvocationStatus::TimedOut
                | CommandInvocationStatus::Cancelling),
            ) => CommandState::Failed(format!("{}: {}", s.as_str(), out.status_details().unwrap_or_default())),
            _ => CommandState::Running,
        })
    }
}
