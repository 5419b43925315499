//! Route 53 off the critical path: a zone record cache and a change batcher behind the
//! [`Dns`](super::Dns) trait.
//!
//! [`BatchedDns`] answers `get` from a [`cache::ZoneCache`] of the zone's records under the
//! workspace domain: one paginated ListResourceRecordSets pass, refreshed at the fleet cache's
//! cadence when it is read (never older than that when it answers), written through by our own
//! changes. A sweep (`txt_under`: the erasure's, the orphan scan's) reads it too. Upserts and deletes go
//! into one ChangeResourceRecordSets per short idle window ([`batch`]), each caller awaiting its
//! own outcome; a change Route 53 refuses (InvalidChangeBatch, or moto's InvalidInput) is taken
//! out and reported to its caller, and the others are sent again without it. The refused name is
//! re-read; a CREATE refused as existing at a name that re-read finds empty (moto refuses a
//! CREATE it journalled before, even after the record was deleted) is sent once more as an UPSERT.
//!
//! Every change is conditional on what the cache holds, so a stale cache can make a change fail
//! but never overwrite what it did not know: a record the cache does not hold is written with
//! CREATE (AWS refuses it if the name holds one), an ownership TXT is replaced with DELETE of the
//! exact cached value then CREATE, and a cached TXT that is not the upsert's own owner mark refuses
//! the upsert before anything is sent.
//!
//! [`Zone`] is the raw client under it: [`super::aws::dns::Route53Dns`] and the fake's.

pub mod batch;
pub mod cache;
mod detached;
#[cfg(test)]
mod tests;

use async_trait::async_trait;

use super::{CloudError, CloudResult};

pub use batch::{BatchConfig, BatchedDns};

/// One record set of the zone. TXT values are unquoted; names are lower case, without the
/// trailing dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneRecord {
    /// Name.
    pub name: String,
    /// A, TXT, CNAME...
    pub record_type: String,
    /// TTL in seconds.
    pub ttl: i64,
    /// Values (TXT unquoted).
    pub values: Vec<String>,
}

/// Route 53's three change actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fails if the record set exists.
    Create,
    /// Creates or replaces.
    Upsert,
    /// Fails unless the record set exists with exactly these values and TTL.
    Delete,
}

/// One change of a change batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordChange {
    /// What to do.
    pub action: Action,
    /// The record set (for a delete: exactly as it is).
    pub record: ZoneRecord,
}

impl RecordChange {
    /// `(ResourceRecord elements, characters of Value elements)` as AWS counts them against a
    /// request's limits: an UPSERT counts twice, TXT values with their quotes.
    pub fn weight(&self) -> (usize, usize) {
        let quotes = if self.record.record_type == "TXT" { 2 } else { 0 };
        let chars: usize = self.record.values.iter().map(|v| v.len() + quotes).sum();
        let times = if self.action == Action::Upsert { 2 } else { 1 };
        (self.record.values.len() * times, chars * times)
    }
}

/// AWS's limit on ResourceRecord elements in one ChangeResourceRecordSets request.
pub const MAX_RECORDS: usize = 1_000;
/// AWS's limit on the characters of all Value elements in one request.
pub const MAX_CHARS: usize = 32_000;

/// A Route 53 hosted zone as the batcher uses it: listings and atomic change batches.
#[async_trait]
pub trait Zone: Send + Sync {
    /// Every record set named `suffix` or under it (all pages).
    async fn list_under(&self, suffix: &str) -> CloudResult<Vec<ZoneRecord>>;
    /// The record sets at exactly `name` (one targeted page).
    async fn read(&self, name: &str) -> CloudResult<Vec<ZoneRecord>>;
    /// One ChangeResourceRecordSets: all of `changes` or none.
    async fn change(&self, changes: &[RecordChange]) -> CloudResult<()>;
}

/// Route 53 names compare without the trailing dot and case-insensitively.
pub fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `name` is `suffix` or under it (both normalized).
pub fn is_under(name: &str, suffix: &str) -> bool {
    name == suffix || name.strip_suffix(suffix).is_some_and(|h| h.ends_with('.'))
}

/// Whether `e` is Route 53 refusing a change of the batch (AWS's InvalidChangeBatch, moto's
/// InvalidInput), as opposed to the request failing as a whole (throttled, denied, no answer).
pub fn is_bad_change(e: &CloudError) -> bool {
    matches!(e.code.as_str(), "InvalidChangeBatch" | "InvalidInput")
}

/// The record names a refusal names: AWS writes `[name='x.example.com.', type='A']`, moto
/// `Change with [Action=DELETE, Name=x.example.com, Type=TXT, ...]`. Normalized.
pub fn named_in(message: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (open, close) in [("name='", '\''), ("Name=", ',')] {
        let mut rest = message;
        while let Some(i) = rest.find(open) {
            rest = &rest[i + open.len()..];
            let end = rest.find(close).unwrap_or(rest.len());
            let n = norm(&rest[..end]);
            if !n.is_empty() && !out.contains(&n) {
                out.push(n);
            }
            rest = &rest[end..];
        }
    }
    out
}
