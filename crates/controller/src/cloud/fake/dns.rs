//! Route 53 (one hosted zone) and Cloudflare (tunnels and the zone's records).

use async_trait::async_trait;

use std::sync::Arc;

use super::state::{FTunnel, State};
use super::{FakeCloud, aws_error, error, ops};
use crate::cloud::dns::{Action, MAX_CHARS, MAX_RECORDS, RecordChange, Zone, ZoneRecord, is_under};
use crate::cloud::{CfRecord, CloudResult, Dns, ErrorKind, OwnedRecord, RecordSet, Tunnel, Tunnels};

/// TTL the real implementation writes.
pub(super) const TTL: i64 = 60;

/// [`Dns`] of a [`FakeCloud`].
#[derive(Debug)]
pub(super) struct FakeDns(pub FakeCloud);

/// [`Zone`] of a [`FakeCloud`]: the same hosted zone as [`FakeDns`].
#[derive(Debug)]
pub(super) struct FakeZone(pub FakeCloud);

impl FakeCloud {
    /// The hosted zone as the change batcher uses it (listings and atomic change batches, with
    /// AWS's refusals: CREATE of an existing set, DELETE of a missing or different one, more than
    /// 1,000 records or 32,000 characters in one request).
    pub fn zone(&self) -> Arc<dyn Zone> {
        Arc::new(FakeZone(self.clone()))
    }
}

/// [`Tunnels`] of a [`FakeCloud`].
#[derive(Debug)]
pub(super) struct FakeTunnels(pub FakeCloud);

/// Route 53 names compare without the trailing dot and case-insensitively.
pub(super) fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl State {
    pub(super) fn record_set(&self, name: &str, record_type: &str) -> RecordSet {
        let name = norm(name);
        let main = self.records.get(&(name.clone(), record_type.to_owned()));
        let txt = self.records.get(&(name, "TXT".to_owned()));
        RecordSet {
            values: main.map(|m| m.1.clone()).unwrap_or_default(),
            ttl: main.map(|m| m.0),
            txt: txt.map(|t| t.1.clone()).unwrap_or_default(),
            txt_ttl: txt.map(|t| t.0),
        }
    }

    /// One atomic change batch deleting what `current` names: every set must match exactly.
    fn delete_records(&mut self, name: &str, record_type: &str, current: &RecordSet) -> CloudResult<()> {
        let mut keys = Vec::new();
        for (t, values, ttl) in [(record_type, &current.values, current.ttl), ("TXT", &current.txt, current.txt_ttl)] {
            if values.is_empty() {
                continue;
            }
            let key = (norm(name), t.to_owned());
            if self.records.get(&key) != Some(&(ttl.unwrap_or(TTL), values.clone())) {
                let msg = format!(
                    "Tried to delete resource record set [name='{name}.', type='{t}'] but it was not found or its values did not match"
                );
                return Err(aws_error("change records of", name, "InvalidChangeBatch", &msg));
            }
            keys.push(key);
        }
        for k in keys {
            self.records.remove(&k);
        }
        Ok(())
    }

    fn zone_records(&self, keep: impl Fn(&str) -> bool) -> Vec<ZoneRecord> {
        self.records
            .iter()
            .filter(|((n, _), _)| keep(n))
            .map(|((n, t), (ttl, v))| ZoneRecord {
                name: n.clone(),
                record_type: t.clone(),
                ttl: *ttl,
                values: v.clone(),
            })
            .collect()
    }

    /// One ChangeResourceRecordSets: every change applies, in order, or none (InvalidChangeBatch
    /// naming each refused set as AWS does).
    fn change_batch(&mut self, changes: &[RecordChange]) -> CloudResult<()> {
        let target = changes.first().map_or(String::new(), |c| c.record.name.clone());
        let (records, chars) = changes.iter().map(RecordChange::weight).fold((0, 0), |a, w| (a.0 + w.0, a.1 + w.1));
        if records > MAX_RECORDS {
            return Err(aws_error(
                "change records of",
                &target,
                "InvalidChangeBatch",
                "Number of records limit of 1000 exceeded.",
            ));
        }
        if chars > MAX_CHARS {
            let msg = "Number of characters in value elements of the request exceeded the limit of 32000.";
            return Err(aws_error("change records of", &target, "InvalidChangeBatch", msg));
        }
        let mut next = self.records.clone();
        let mut refused = Vec::new();
        for c in changes {
            let (name, t) = (norm(&c.record.name), c.record.record_type.clone());
            let key = (name.clone(), t.clone());
            let want = (c.record.ttl, c.record.values.clone());
            match c.action {
                Action::Create if next.contains_key(&key) => refused
                    .push(format!("Tried to create resource record set [name='{name}.', type='{t}'] but it already exists")),
                Action::Create | Action::Upsert => drop(next.insert(key, want)),
                Action::Delete if next.get(&key) == Some(&want) => drop(next.remove(&key)),
                Action::Delete => refused.push(format!(
                    "Tried to delete resource record set [name='{name}.', type='{t}'] but it was not found or its values did not match"
                )),
            }
        }
        if !refused.is_empty() {
            return Err(aws_error(
                "change records of",
                &target,
                "InvalidChangeBatch",
                &format!("[{}]", refused.join(", ")),
            ));
        }
        self.records = next;
        Ok(())
    }

    pub(super) fn create_tunnel(&mut self, name: &str) -> CloudResult<Tunnel> {
        if self.tunnels.values().any(|t| t.tunnel.name == name) {
            let msg = "You already have a tunnel with this name";
            return Err(error(ErrorKind::Rejected, "create tunnel", name, "409/1013", msg));
        }
        let id = self.new_uuid();
        let tunnel = Tunnel { id: id.clone(), name: name.to_owned() };
        let token = format!("fake-tunnel-token-{id}");
        self.tunnels.insert(id, FTunnel { tunnel: tunnel.clone(), token, ingress: None });
        Ok(tunnel)
    }

    pub(super) fn create_cf_record(&mut self, record_type: &str, name: &str, content: &str) -> CloudResult<CfRecord> {
        let action = "create record";
        let exclusive = |t: &str| matches!(t, "A" | "AAAA" | "CNAME");
        let same_name = || self.cf_records.values().filter(|r| r.name == name);
        if exclusive(record_type)
            && same_name().any(|r| exclusive(&r.record_type) && (record_type == "CNAME" || r.record_type == "CNAME"))
        {
            let msg = "An A, AAAA, or CNAME record with that host already exists.";
            return Err(error(ErrorKind::Rejected, action, name, "400/81053", msg));
        }
        if same_name().any(|r| r.record_type == record_type && r.content == content) {
            return Err(error(ErrorKind::Rejected, action, name, "400/81058", "An identical record already exists."));
        }
        self.next_id += 1;
        let id = format!("{:032x}", 0xc0de_0000_u128 + u128::from(self.next_id));
        let r = CfRecord {
            id: id.clone(),
            record_type: record_type.to_owned(),
            name: name.to_owned(),
            content: content.to_owned(),
        };
        self.cf_records.insert(id, r.clone());
        Ok(r)
    }

    fn tunnel_mut(&mut self, id: &str, action: &'static str) -> CloudResult<&mut FTunnel> {
        self.tunnels.get_mut(id).ok_or_else(|| error(ErrorKind::NotFound, action, id, "404/1003", "tunnel not found"))
    }
}

#[async_trait]
impl Dns for FakeDns {
    async fn get(&self, name: &str, record_type: &'static str) -> CloudResult<RecordSet> {
        self.0.call(ops::LIST_RECORDS, "list records of", name, None, |s| Ok(s.record_set(name, record_type)))
    }

    async fn upsert(&self, record: &OwnedRecord) -> CloudResult<()> {
        self.0.call(ops::CHANGE_RECORDS, "change records of", &record.name, None, |s| {
            let name = norm(&record.name);
            s.records.insert((name.clone(), "TXT".into()), (TTL, vec![record.owner_mark.clone()]));
            s.records.insert((name, record.record_type.to_owned()), (TTL, vec![record.value.clone()]));
            Ok(())
        })
    }

    async fn delete(&self, name: &str, record_type: &'static str, current: &RecordSet) -> CloudResult<()> {
        if current.values.is_empty() && current.txt.is_empty() {
            return Ok(());
        }
        self.0.call(ops::CHANGE_RECORDS, "change records of", name, None, |s| {
            s.delete_records(name, record_type, current)
        })
    }

    async fn txt_under(&self, suffix: &str) -> CloudResult<Vec<(String, Vec<String>)>> {
        let tail = format!(".{}", norm(suffix.trim_start_matches('.')));
        self.0.call(ops::LIST_RECORDS, "list records under", suffix, None, |s| {
            Ok(s.records
                .iter()
                .filter(|((n, t), _)| t == "TXT" && n.ends_with(&tail))
                .map(|((n, _), (_, v))| (n.clone(), v.clone()))
                .collect())
        })
    }
}

#[async_trait]
impl Zone for FakeZone {
    async fn list_under(&self, suffix: &str) -> CloudResult<Vec<ZoneRecord>> {
        let suffix = norm(suffix);
        self.0.call(ops::LIST_RECORDS, "list records under", &suffix, None, |s| {
            Ok(s.zone_records(|n| is_under(n, &suffix)))
        })
    }

    async fn read(&self, name: &str) -> CloudResult<Vec<ZoneRecord>> {
        let name = norm(name);
        self.0.call(ops::LIST_RECORDS, "list records of", &name, None, |s| Ok(s.zone_records(|n| n == name)))
    }

    async fn change(&self, changes: &[RecordChange]) -> CloudResult<()> {
        let target = changes.first().map_or(String::new(), |c| c.record.name.clone());
        self.0.call(ops::CHANGE_RECORDS, "change records of", &target, None, |s| s.change_batch(changes))
    }
}

#[async_trait]
impl Tunnels for FakeTunnels {
    async fn find(&self, name: &str) -> CloudResult<Option<Tunnel>> {
        self.0.call(ops::LIST_TUNNELS, "list tunnels named", name, None, |s| {
            Ok(s.tunnels.values().find(|t| t.tunnel.name == name).map(|t| t.tunnel.clone()))
        })
    }

    async fn create(&self, name: &str) -> CloudResult<Tunnel> {
        self.0.call(ops::CREATE_TUNNEL, "create tunnel", name, None, |s| s.create_tunnel(name))
    }

    async fn token(&self, id: &str) -> CloudResult<String> {
        self.0.call(ops::GET_TUNNEL_TOKEN, "read the token of tunnel", id, None, |s| {
            Ok(s.tunnel_mut(id, "read the token of tunnel")?.token.clone())
        })
    }

    async fn configure(&self, id: &str, hostname: &str, service: &str) -> CloudResult<()> {
        self.0.call(ops::CONFIGURE_TUNNEL, "configure tunnel", id, None, |s| {
            s.tunnel_mut(id, "configure tunnel")?.ingress = Some((hostname.to_owned(), service.to_owned()));
            Ok(())
        })
    }

    async fn delete(&self, id: &str) -> CloudResult<()> {
        self.0.call(ops::DELETE_TUNNEL, "delete tunnel", id, None, |s| {
            s.tunnels.remove(id);
            Ok(())
        })
    }

    async fn records(&self, record_type: &str, name: &str) -> CloudResult<Vec<CfRecord>> {
        self.0.call(ops::LIST_DNS_RECORDS, "list records at", name, None, |s| {
            Ok(s.cf_records.values().filter(|r| r.record_type == record_type && r.name == name).cloned().collect())
        })
    }

    async fn create_record(&self, record_type: &str, name: &str, content: &str) -> CloudResult<CfRecord> {
        self.0.call(ops::CREATE_DNS_RECORD, "create record", name, None, |s| {
            s.create_cf_record(record_type, name, content)
        })
    }

    async fn delete_record(&self, id: &str) -> CloudResult<()> {
        self.0.call(ops::DELETE_DNS_RECORD, "delete record", id, None, |s| {
            s.cf_records.remove(id);
            Ok(())
        })
    }

    async fn list_all(&self) -> CloudResult<Vec<Tunnel>> {
        self.0.call(ops::LIST_TUNNELS, "list tunnels of", "", None, |s| {
            Ok(s.tunnels.values().map(|t| t.tunnel.clone()).collect())
        })
    }

    async fn all_records(&self, record_type: &str) -> CloudResult<Vec<CfRecord>> {
        self.0.call(ops::LIST_DNS_RECORDS, "list records of", "", None, |s| {
            Ok(s.cf_records.values().filter(|r| r.record_type == record_type).cloned().collect())
        })
    }
}
