//! The workspace's A record and the TXT ownership record beside it. A record whose TXT is not
//! ours is never changed or deleted.

use crate::cloud::marks::DnsMark;
use crate::cloud::tags::Owner;
use crate::cloud::{Dns, OwnedRecord, RecordSet};
use crate::context::Context;
use crate::reconcile::Error;

use molecule_crds::conditions;
use molecule_crds::v1alpha1::WorkspaceStatus;

use super::status::DnsState;

/// `<name>.<tenant>.<domain>`, or `<name>.<namespace>.<tenant>.<domain>` when the Workspace lives
/// in a namespace other than the tenant's own (two namespaces may hold the same name).
pub fn hostname(name: &str, namespace: &str, tenant: &str, domain: &str) -> String {
    crate::cloud::marks::workspace_hostname(name, namespace, tenant, domain)
}

/// Whether `current` may be written over or deleted by `mark`'s owner: empty, or marked as ours.
pub fn may_touch(current: &RecordSet, mark: &DnsMark) -> bool {
    (current.values.is_empty() && current.txt.is_empty()) || current.txt.iter().any(|t| mark.matches(t))
}

/// Writes the A record for `ip` unless status says it is already there.
pub async fn ensure(ctx: &Context, owner: &Owner, host: &str, ip: &str, already: bool) -> Result<DnsState, Error> {
    let Some(dns) = ctx.dns.as_deref() else { return Ok(DnsState::Disabled) };
    if already {
        return Ok(DnsState::Ready);
    }
    let mark = ctx.identity.dns_mark(owner);
    let current = dns.get(host, "A").await?;
    if !may_touch(&current, &mark) {
        return Ok(DnsState::NotOwned(format!(
            "{host} already has a record whose ownership record is not this Workspace's; it is left untouched"
        )));
    }
    if current.values == [ip.to_owned()] && matches!(current.txt.as_slice(), [t] if mark.matches(t)) {
        return Ok(DnsState::Ready);
    }
    let record =
        OwnedRecord { name: host.to_owned(), record_type: "A", value: ip.to_owned(), owner_mark: mark.render() };
    dns.upsert(&record).await?;
    ctx.failpoints.hit("workspace.dns.after-upsert").await;
    Ok(DnsState::Ready)
}

/// How soon a delete whose change waits for its batch looks again.
const DELETE_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Deletes the record and its TXT if they are ours. Returns whether a record of someone else's
/// was left in place. With `wait`, returns once the change went (a stop: its status says the
/// record is gone); without, `Err(Waiting)` while the delete waits for its batch, so that a
/// finalizer does not hold a reconcile slot meanwhile ([`Dns::delete_soon`]).
pub async fn remove(dns: &dyn Dns, mark: &DnsMark, host: &str, wait: bool) -> Result<bool, Error> {
    let current = dns.get(host, "A").await?;
    if current.values.is_empty() && current.txt.is_empty() {
        return Ok(false);
    }
    if !may_touch(&current, mark) {
        return Ok(true);
    }
    if wait {
        dns.delete(host, "A", &current).await?;
    } else if !dns.delete_soon(host, "A", &current).await? {
        return Err(Error::waiting_for(format!("DNS record {host} to be deleted"), DELETE_POLL));
    }
    Ok(false)
}

/// What the record should be: an address to publish, unknown (an error or no address yet:
/// left as it is), or absent (no pending or running instance: the address is released and may
/// go to another tenant's instance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want<'a> {
    /// Publish this private IP.
    Address(&'a str),
    /// Leave the record as it is.
    Unknown,
    /// Remove the record and its ownership TXT.
    Absent,
}

/// The DNS record as `want` says, skipped when the last status already shows it written (or
/// removed).
pub async fn step(ctx: &Context, owner: &Owner, host: &str, want: Want<'_>, old: &WorkspaceStatus) -> DnsState {
    let Some(dns) = ctx.dns.as_deref() else { return DnsState::Disabled };
    let last = conditions::get(&old.conditions, "DnsReady")
        .filter(|c| c.status == molecule_crds::v1alpha1::ConditionStatus::True && old.hostname.as_deref() == Some(host))
        .map(|c| c.reason.as_str());
    match want {
        Want::Unknown => DnsState::Pending,
        // Only a record we wrote counts (DnsDisabled is True as well, and a zone configured later
        // must still get its records).
        Want::Address(ip) => {
            let already = old.private_ip.as_deref() == Some(ip) && last == Some("RecordWritten");
            ensure(ctx, owner, host, ip, already).await.unwrap_or_else(|e| DnsState::Failed(e.to_string()))
        }
        Want::Absent if last == Some("RecordRemoved") => DnsState::Removed,
        Want::Absent => match remove(dns, &ctx.identity.dns_mark(owner), host, true).await {
            Ok(_) => DnsState::Removed,
            Err(e) => DnsState::Failed(e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert_eq!(hostname("agent", "acme", "acme", "ws.internal"), "agent.acme.ws.internal");
        assert_eq!(hostname("agent", "research", "globex", "ws.internal"), "agent.research.globex.ws.internal");
    }

    #[test]
    fn only_our_records_are_touched() {
        let mark = |uid: &str| DnsMark {
            operator_id: "molecule-operator".into(),
            env: "dev".into(),
            owner_kind: "Workspace".into(),
            owner_uid: uid.into(),
        };
        let mine = mark("u1");
        assert!(may_touch(&RecordSet::default(), &mine));
        let ours = RecordSet { values: vec!["10.0.0.1".into()], txt: vec![mine.render()], ..RecordSet::default() };
        assert!(may_touch(&ours, &mine));
        let theirs = RecordSet { values: vec!["10.0.0.1".into()], ..RecordSet::default() };
        assert!(!may_touch(&theirs, &mine));
        let other =
            RecordSet { values: vec!["10.0.0.1".into()], txt: vec!["heritage=x".into()], ..RecordSet::default() };
        assert!(!may_touch(&other, &mine));
        let sibling =
            RecordSet { values: vec!["10.0.0.1".into()], txt: vec![mark("u2").render()], ..RecordSet::default() };
        assert!(!may_touch(&sibling, &mine), "another Workspace's mark");
    }
}
