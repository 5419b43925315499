//! Deletes whose callers do not wait for their batch ([`super::BatchedDns`]'s `delete_soon`). A
//! batch of deletes waits seconds for more (see `BatchConfig::delete_idle`); a Workspace delete
//! that awaited it held one of the reconciler's few slots all that time, and at 1,000 deletes
//! the slots, not AWS, set the pace. The caller comes back later and finds the outcome here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::cloud::CloudResult;

/// How long an outcome nobody came back for is kept.
const KEEP: Duration = Duration::from_mins(15);

enum State {
    Sent,
    Done(CloudResult<()>, Instant),
}

/// Where a detached delete stands.
pub(super) enum Poll {
    /// None was on its way: the caller sends it now (marked sent).
    Start,
    /// Sent, not answered yet.
    Waiting,
    /// Answered (taken: the next poll starts again).
    Done(CloudResult<()>),
}

/// The detached deletes by record name.
#[derive(Clone, Default)]
pub(super) struct Detached(Arc<Mutex<HashMap<String, State>>>);

impl Detached {
    /// Where the delete of `name` stands; a [`Poll::Start`] marks it sent.
    pub fn poll(&self, name: &str) -> Poll {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        m.retain(|_, s| !matches!(s, State::Done(_, at) if at.elapsed() > KEEP));
        match m.remove(name) {
            Some(State::Sent) => {
                m.insert(name.to_owned(), State::Sent);
                Poll::Waiting
            }
            Some(State::Done(r, _)) => Poll::Done(r),
            None => {
                m.insert(name.to_owned(), State::Sent);
                Poll::Start
            }
        }
    }

    /// Marks the delete of `name` sent (after a [`Poll::Done`] the caller sends it again).
    pub fn mark_sent(&self, name: &str) {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        m.insert(name.to_owned(), State::Sent);
    }

    /// Records the outcome of the delete of `name`.
    pub fn finish(&self, name: String, outcome: CloudResult<()>) {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        m.insert(name, State::Done(outcome, Instant::now()));
    }
}
