//! Secrets Manager and SSM Run Command.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::state::{FSecret, SentCommand, State};
use super::{FakeCloud, aws_error, ops};
use crate::cloud::commands::{CommandState, Commands};
use crate::cloud::secrets::{SecretRef, Secrets};
use crate::cloud::tags::OWNER_UID;
use crate::cloud::{CloudResult, InstanceState};

/// [`Secrets`] of a [`FakeCloud`].
#[derive(Debug)]
pub(super) struct FakeSecrets(pub FakeCloud);

/// [`Commands`] of a [`FakeCloud`].
#[derive(Debug)]
pub(super) struct FakeCommands(pub FakeCloud);

impl State {
    /// The ARN of the secret named by `id` (an ARN or a name, as Secrets Manager accepts both).
    pub(super) fn secret_arn(&self, id: &str) -> Option<String> {
        self.secrets.values().find(|s| s.secret.arn == id || s.secret.name == id).map(|s| s.secret.arn.clone())
    }

    pub(super) fn create_secret(
        &mut self,
        name: &str,
        value: &str,
        tags: &BTreeMap<String, String>,
        lag: bool,
    ) -> CloudResult<SecretRef> {
        if self.secret_arn(name).is_some() {
            let msg = format!("The operation failed because the secret {name} already exists.");
            return Err(aws_error("create secret", name, "ResourceExistsException", &msg));
        }
        self.next_id += 1;
        let arn = format!("arn:aws:secretsmanager:us-east-1:000000000000:secret:{name}-{:06x}", self.next_id);
        let secret = SecretRef { arn: arn.clone(), name: name.to_owned(), tags: tags.clone() };
        // ListSecrets is eventually consistent like Describe*: a new secret lists after the lag.
        let visible_from = if lag { self.now + self.config.listing_lag } else { self.now };
        self.secrets.insert(arn, FSecret { secret: secret.clone(), value: value.to_owned(), visible_from });
        Ok(secret)
    }

    fn send_command(&mut self, instance: &str, comment: &str, commands: &[String]) -> CloudResult<String> {
        if self.instances.get(instance).is_none_or(|f| f.inst.state != InstanceState::Running) {
            let msg = "Instances not in a valid state for account";
            return Err(aws_error("send command to", instance, "InvalidInstanceId", msg));
        }
        let id = self.new_uuid();
        let outcome = self.command_outcomes.get(instance).cloned().unwrap_or(CommandState::Succeeded);
        self.commands.push(SentCommand {
            id: id.clone(),
            instance: instance.to_owned(),
            comment: comment.to_owned(),
            commands: commands.to_vec(),
            state: CommandState::Running,
            sent: self.now,
            outcome,
        });
        Ok(id)
    }
}

#[async_trait]
impl Secrets for FakeSecrets {
    async fn list(&self, filters: &BTreeMap<String, String>) -> CloudResult<Vec<SecretRef>> {
        let owner = filters.get(OWNER_UID).map(String::as_str);
        self.0.call(ops::LIST_SECRETS, "list secrets", "", owner, |s| {
            Ok(s.secrets
                .values()
                .filter(|x| x.visible_from <= s.now && State::matches(&x.secret.tags, filters))
                .map(|x| x.secret.clone())
                .collect())
        })
    }

    async fn create(&self, name: &str, value: &str, tags: &BTreeMap<String, String>) -> CloudResult<SecretRef> {
        let owner = tags.get(OWNER_UID).map(String::as_str);
        self.0.call(ops::CREATE_SECRET, "create secret", name, owner, |s| s.create_secret(name, value, tags, true))
    }

    async fn put(&self, arn: &str, value: &str) -> CloudResult<()> {
        self.0.call(ops::PUT_SECRET_VALUE, "write secret", arn, None, |s| {
            let key = s.secret_arn(arn).ok_or_else(|| {
                aws_error(
                    "write secret",
                    arn,
                    "ResourceNotFoundException",
                    "Secrets Manager can't find the specified secret.",
                )
            })?;
            if let Some(x) = s.secrets.get_mut(&key) {
                value.clone_into(&mut x.value);
            }
            Ok(())
        })
    }

    async fn delete(&self, arn: &str) -> CloudResult<()> {
        self.0.call(ops::DELETE_SECRET, "delete secret", arn, None, |s| {
            if let Some(key) = s.secret_arn(arn) {
                s.secrets.remove(&key);
            }
            Ok(())
        })
    }

    async fn describe(&self, id: &str) -> CloudResult<Option<SecretRef>> {
        self.0.call(ops::DESCRIBE_SECRET, "describe secret", id, None, |s| {
            Ok(s.secret_arn(id).and_then(|k| s.secrets.get(&k)).map(|x| x.secret.clone()))
        })
    }

    async fn tag(&self, arn: &str, tags: &BTreeMap<String, String>) -> CloudResult<()> {
        self.0.call(ops::TAG_SECRET, "tag secret", arn, None, |s| {
            let key = s.secret_arn(arn).ok_or_else(|| {
                aws_error(
                    "tag secret",
                    arn,
                    "ResourceNotFoundException",
                    "Secrets Manager can't find the specified secret.",
                )
            })?;
            if let Some(x) = s.secrets.get_mut(&key) {
                x.secret.tags.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            Ok(())
        })
    }
}

#[async_trait]
impl Commands for FakeCommands {
    async fn send(&self, instance: &str, comment: &str, commands: &[String]) -> CloudResult<String> {
        self.0
            .call(ops::SEND_COMMAND, "send command to", instance, None, |s| s.send_command(instance, comment, commands))
    }

    async fn find(&self, instance: &str, comment: &str) -> CloudResult<Option<String>> {
        self.0.call(ops::LIST_COMMANDS, "list commands on", instance, None, |s| {
            Ok(s.commands.iter().rev().find(|c| c.instance == instance && c.comment == comment).map(|c| c.id.clone()))
        })
    }

    async fn state(&self, id: &str, instance: &str) -> CloudResult<CommandState> {
        self.0.call_about(ops::GET_COMMAND_INVOCATION, "read command", id, Err(instance), |s| {
            // Unknown invocation: the real implementation reads InvocationDoesNotExist as running.
            Ok(s.commands
                .iter()
                .find(|c| c.id == id && c.instance == instance)
                .map_or(CommandState::Running, |c| c.state.clone()))
        })
    }
}
