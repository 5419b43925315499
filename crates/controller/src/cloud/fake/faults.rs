//! Fault injection by operation, and the call log.

use std::collections::BTreeMap;
use std::time::Duration;

use super::FakeCloud;
use super::state::State;
use crate::cloud::{CloudError, ErrorKind};

/// One logged call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Operation ([`super::ops`]).
    pub op: &'static str,
    /// What it was about: an ID, IDs joined by `,`, a name, a client token, or `""` for listings.
    pub target: String,
    /// The owner uid it concerned, when known (request tags, tags of the target, list filter).
    pub owner: Option<String>,
    /// Virtual time of the call.
    pub at: Duration,
}

/// A fault rule: the next `times` calls of `op` (matching `target` and `owner` when set) fail.
///
/// ```ignore
/// cloud.inject(Fault::throttle(ops::RUN_INSTANCES).times(2));
/// cloud.inject(Fault::lost(ops::RUN_INSTANCES).owner(uid)); // launches, then answers Transient
/// cloud.inject(Fault::code(ops::DELETE_SECURITY_GROUP, "DependencyViolation").always());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    op: String,
    kind: ErrorKind,
    code: String,
    message: String,
    target: Option<String>,
    owner: Option<String>,
    /// Calls left to fail; `None`: every call.
    times: Option<u32>,
    /// The call takes effect before failing (the lost answer).
    pub(super) effect: bool,
}

impl Fault {
    /// Fails `op` once with `code`, its kind as the real implementation classifies it.
    pub fn code(op: &str, code: &str) -> Self {
        Self::kind(op, crate::cloud::aws::classify(code, 400), code)
    }

    /// Fails `op` once with `code` and an explicit `kind`.
    pub fn kind(op: &str, kind: ErrorKind, code: &str) -> Self {
        Self {
            op: op.to_owned(),
            kind,
            code: code.to_owned(),
            message: "injected fault".to_owned(),
            target: None,
            owner: None,
            times: Some(1),
            effect: false,
        }
    }

    /// RequestLimitExceeded ([`ErrorKind::Throttled`]), without effect.
    pub fn throttle(op: &str) -> Self {
        Self::kind(op, ErrorKind::Throttled, "RequestLimitExceeded")
    }

    /// A 5xx ([`ErrorKind::Transient`], InternalError), without effect.
    pub fn server_error(op: &str) -> Self {
        Self::kind(op, ErrorKind::Transient, "InternalError")
    }

    /// The unknown outcome: the call takes effect, then answers [`ErrorKind::Transient`]
    /// (`Transport`, as a lost connection reads in the real implementation).
    pub fn lost(op: &str) -> Self {
        Self { effect: true, ..Self::kind(op, ErrorKind::Transient, "Transport") }
    }

    /// Only calls about `target` (an ID among the call's IDs, a name, a client token).
    #[must_use]
    pub fn target(mut self, target: &str) -> Self {
        self.target = Some(target.to_owned());
        self
    }

    /// Only calls concerning owner uid `uid` (from the request's tags, a listing's filter, or the
    /// tags of the resource the call names; for a call on several IDs, the first one's).
    #[must_use]
    pub fn owner(mut self, uid: &str) -> Self {
        self.owner = Some(uid.to_owned());
        self
    }

    /// The next `n` matching calls fail (default 1).
    #[must_use]
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Every matching call fails until [`FakeCloud::clear_faults`] or reset.
    #[must_use]
    pub fn always(mut self) -> Self {
        self.times = None;
        self
    }

    /// The provider's message.
    #[must_use]
    pub fn message(mut self, message: &str) -> Self {
        message.clone_into(&mut self.message);
        self
    }

    fn matches(&self, op: &str, target: &str, owner: Option<&str>) -> bool {
        self.op == op
            && self.times != Some(0)
            && self.target.as_deref().is_none_or(|t| t == target || target.split(',').any(|x| x == t))
            && self.owner.as_deref().is_none_or(|o| owner == Some(o))
    }

    pub(super) fn error(&self, action: &'static str, target: &str) -> CloudError {
        super::error(self.kind, action, target, &self.code, &self.message)
    }
}

impl State {
    /// The first rule matching this call, its count spent.
    pub(super) fn take_fault(&mut self, op: &str, target: &str, owner: Option<&str>) -> Option<Fault> {
        let rule = self.faults.iter_mut().find(|f| f.matches(op, target, owner))?;
        if let Some(n) = rule.times.as_mut() {
            *n -= 1;
        }
        let fired = rule.clone();
        self.faults.retain(|f| f.times != Some(0));
        Some(fired)
    }
}

impl FakeCloud {
    /// Adds a fault rule (rules are tried in the order they were added).
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Shorthand: the next `times` calls of `op` fail with `code` (kind as classified by the
    /// real implementation).
    pub fn fail(&self, op: &str, code: &str, times: u32) {
        self.inject(Fault::code(op, code).times(times));
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Rules still armed (a rule is dropped once it has fired its count).
    pub fn pending_faults(&self) -> usize {
        self.lock().faults.len()
    }

    /// Every call so far, oldest first (failed ones included).
    pub fn calls(&self) -> Vec<Call> {
        self.lock().log.clone()
    }

    /// How many calls of `op` were made.
    pub fn count(&self, op: &str) -> usize {
        self.lock().log.iter().filter(|c| c.op == op).count()
    }

    /// Calls by operation.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for c in &self.lock().log {
            *m.entry(c.op).or_default() += 1;
        }
        m
    }

    /// Forgets the logged calls (the state and the rules stay).
    pub fn clear_calls(&self) {
        self.lock().log.clear();
    }
}
