//! Route 53 records with their TXT ownership records.

use async_trait::async_trait;
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};

use super::limiter::Class;
use super::{Aws, cloud_error};
use crate::cloud::dns::cache::{Sets, record_set};
use crate::cloud::dns::{Action, RecordChange, Zone, ZoneRecord, is_under, norm};
use crate::cloud::{CloudError, CloudResult, Dns, ErrorKind, OwnedRecord, RecordSet};

/// TTL of the records we write: short, so a replacement's new IP is seen within a minute.
const TTL: i64 = 60;
/// Pages read by one sweep at most (300 records each).
const MAX_PAGES: usize = 100;

/// [`Dns`] in one Route 53 hosted zone.
#[derive(Clone, Debug)]
pub struct Route53Dns {
    aws: Aws,
    zone_id: String,
}

impl Route53Dns {
    /// Records of `zone_id`.
    pub fn new(aws: Aws, zone_id: String) -> Self {
        Self { aws, zone_id }
    }
}

fn build_err(e: &impl std::fmt::Display, name: &str) -> CloudError {
    CloudError {
        kind: ErrorKind::Rejected,
        action: "build record change",
        target: name.into(),
        code: "Invalid".into(),
        message: e.to_string(),
    }
}

fn rrset(name: &str, t: RrType, ttl: i64, values: &[String]) -> CloudResult<ResourceRecordSet> {
    let mut b = ResourceRecordSet::builder().name(name).r#type(t).ttl(ttl);
    for v in values {
        b = b.resource_records(ResourceRecord::builder().value(v).build().map_err(|e| build_err(&e, name))?);
    }
    b.build().map_err(|e| build_err(&e, name))
}

fn change(action: ChangeAction, set: ResourceRecordSet) -> CloudResult<Change> {
    Change::builder().action(action).resource_record_set(set).build().map_err(|e| build_err(&e, "change"))
}

fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

fn unquote(s: &str) -> String {
    s.trim_matches('"').to_owned()
}

impl Route53Dns {
    async fn submit(&self, name: &str, changes: Vec<Change>) -> CloudResult<()> {
        self.aws.limiter.take(Class::Dns).await;
        let batch = ChangeBatch::builder().set_changes(Some(changes)).build().map_err(|e| build_err(&e, name))?;
        self.aws
            .route53
            .change_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| cloud_error(&e, "change records of", name))?;
        Ok(())
    }
}

#[async_trait]
impl Dns for Route53Dns {
    async fn get(&self, name: &str, record_type: &'static str) -> CloudResult<RecordSet> {
        // The same targeted page as the zone cache's re-read.
        let sets: Sets = self.read(name).await?.into_iter().map(|r| (r.record_type, (r.ttl, r.values))).collect();
        Ok(record_set(&sets, record_type))
    }

    async fn upsert(&self, record: &OwnedRecord) -> CloudResult<()> {
        let t = RrType::from(record.record_type);
        let changes = vec![
            change(ChangeAction::Upsert, rrset(&record.name, RrType::Txt, TTL, &[quote(&record.owner_mark)])?)?,
            change(ChangeAction::Upsert, rrset(&record.name, t, TTL, std::slice::from_ref(&record.value))?)?,
        ];
        self.submit(&record.name, changes).await
    }

    async fn delete(&self, name: &str, record_type: &'static str, current: &RecordSet) -> CloudResult<()> {
        let mut changes = Vec::new();
        if !current.values.is_empty() {
            let set = rrset(name, RrType::from(record_type), current.ttl.unwrap_or(TTL), &current.values)?;
            changes.push(change(ChangeAction::Delete, set)?);
        }
        if !current.txt.is_empty() {
            let quoted: Vec<String> = current.txt.iter().map(|v| quote(v)).collect();
            changes.push(change(
                ChangeAction::Delete,
                rrset(name, RrType::Txt, current.txt_ttl.unwrap_or(TTL), &quoted)?,
            )?);
        }
        if changes.is_empty() {
            return Ok(());
        }
        self.submit(name, changes).await
    }

    async fn txt_under(&self, suffix: &str) -> CloudResult<Vec<(String, Vec<String>)>> {
        let tail = format!(".{}.", suffix.trim_matches('.'));
        let mut out = Vec::new();
        let mut next: Option<(String, RrType)> = None;
        // Bounded: Route 53 zones hold at most 10,000 records by default, 300 per page.
        for _ in 0..MAX_PAGES {
            self.aws.limiter.take(Class::Dns).await;
            let mut call = self.aws.route53.list_resource_record_sets().hosted_zone_id(&self.zone_id);
            if let Some((name, t)) = next.take() {
                call = call.start_record_name(name).start_record_type(t);
            }
            let page = call.send().await.map_err(|e| cloud_error(&e, "list records under", suffix))?;
            for r in page.resource_record_sets().iter().filter(|r| r.r#type() == &RrType::Txt) {
                if r.name().ends_with(&tail) {
                    let values = r.resource_records().iter().map(|v| unquote(v.value())).collect();
                    out.push((r.name().trim_end_matches('.').to_owned(), values));
                }
            }
            match (page.is_truncated(), page.next_record_name(), page.next_record_type()) {
                (true, Some(n), Some(t)) => next = Some((n.to_owned(), t.clone())),
                _ => return Ok(out),
            }
        }
        Ok(out)
    }
}

fn zone_record(r: &ResourceRecordSet) -> ZoneRecord {
    let txt = r.r#type() == &RrType::Txt;
    ZoneRecord {
        name: norm(r.name()),
        record_type: r.r#type().as_str().to_owned(),
        ttl: r.ttl().unwrap_or(TTL),
        values: r
            .resource_records()
            .iter()
            .map(|v| if txt { unquote(v.value()) } else { v.value().to_owned() })
            .collect(),
    }
}

fn sdk_change(c: &RecordChange) -> CloudResult<Change> {
    let r = &c.record;
    let t = RrType::from(r.record_type.as_str());
    let values: Vec<String> =
        if t == RrType::Txt { r.values.iter().map(|v| quote(v)).collect() } else { r.values.clone() };
    let action = match c.action {
        Action::Create => ChangeAction::Create,
        Action::Upsert => ChangeAction::Upsert,
        Action::Delete => ChangeAction::Delete,
    };
    change(action, rrset(&r.name, t, r.ttl, &values)?)
}

#[async_trait]
impl Zone for Route53Dns {
    async fn list_under(&self, suffix: &str) -> CloudResult<Vec<ZoneRecord>> {
        let suffix = norm(suffix);
        let mut out = Vec::new();
        // Route 53 lists in the order of reversed labels: the names under `suffix` follow it.
        let mut next: Option<(String, Option<RrType>)> = Some((format!("{suffix}."), None));
        for _ in 0..MAX_PAGES {
            self.aws.limiter.take(Class::Dns).await;
            let mut call = self.aws.route53.list_resource_record_sets().hosted_zone_id(&self.zone_id).max_items(300);
            if let Some((name, t)) = next.take() {
                call = call.start_record_name(name).set_start_record_type(t);
            }
            let page = call.send().await.map_err(|e| cloud_error(&e, "list records under", &suffix))?;
            out.extend(page.resource_record_sets().iter().map(zone_record).filter(|r| is_under(&r.name, &suffix)));
            match (page.is_truncated(), page.next_record_name(), page.next_record_type()) {
                (true, Some(n), t) => next = Some((n.to_owned(), t.cloned())),
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    async fn read(&self, name: &str) -> CloudResult<Vec<ZoneRecord>> {
        self.aws.limiter.take(Class::Dns).await;
        let out = self
            .aws
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .start_record_name(name)
            .max_items(10)
            .send()
            .await
            .map_err(|e| cloud_error(&e, "list records of", name))?;
        let name = norm(name);
        Ok(out.resource_record_sets().iter().map(zone_record).filter(|r| r.name == name).collect())
    }

    async fn change(&self, changes: &[RecordChange]) -> CloudResult<()> {
        let target = changes.first().map_or("", |c| c.record.name.as_str());
        let sdk: Vec<Change> = changes.iter().map(sdk_change).collect::<CloudResult<_>>()?;
        self.submit(target, sdk).await
    }
}
