//! The display control lock, pure: who holds it at a time, and whether a taker may take it. The
//! reading rule is the operator's (`reconcile/workspace/display.rs`): an empty, unparsable or
//! expired hold reads as none.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;

/// A live hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    /// `agent:<id>` or `user:<name>`.
    pub identity: String,
    /// When it lapses unless renewed.
    pub until: Timestamp,
}

impl Hold {
    /// `agent` or `user`.
    pub fn kind(&self) -> &str {
        self.identity.split_once(':').map_or("", |(k, _)| k)
    }
}

/// The live hold of `lease` at `now`, if any.
pub fn hold(lease: Option<&Lease>, now: Timestamp) -> Option<Hold> {
    let spec = lease?.spec.as_ref()?;
    let id = spec.holder_identity.as_deref().filter(|s| !s.is_empty())?;
    // The operator's rule: only the kind is checked (a name may hold spaces or colons, or be empty).
    id.split_once(':').filter(|(k, _)| *k == "agent" || *k == "user")?;
    let since = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let until =
        since.checked_add(SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)))).ok()?;
    (until > now).then(|| Hold { identity: id.to_owned(), until })
}

/// Checks an identity: `agent:<id>` or `user:<name>`; a bare name means `user:<name>`.
pub fn parse_identity(s: &str) -> Result<String, String> {
    let full = if s.contains(':') { s.to_owned() } else { format!("user:{s}") };
    match full.split_once(':') {
        Some(("agent" | "user", who)) if !who.is_empty() && !who.contains(char::is_whitespace) => Ok(full),
        _ => Err(format!("identity {s:?} must be agent:<id> or user:<name>")),
    }
}

/// What a take does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Take {
    /// Nobody holds it: take it.
    Free,
    /// The taker already holds it: renew.
    Renew,
    /// Someone else holds it and the taker forces: take it and tell them.
    TakeOver(Hold),
}

/// Why a take is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Someone else holds it; `--force` would take it.
    Held(Hold),
    /// A user holds it and the taker is an agent: agents never take the desktop from a person.
    UserHolds(Hold),
}

/// Decides a take by `me` (with or without force) against the current hold.
pub fn decide(current: Option<&Hold>, me: &str, force: bool) -> Result<Take, Refusal> {
    let Some(h) = current else { return Ok(Take::Free) };
    if h.identity == me {
        return Ok(Take::Renew);
    }
    if h.kind() == "user" && me.starts_with("agent:") {
        return Err(Refusal::UserHolds(h.clone()));
    }
    if force { Ok(Take::TakeOver(h.clone())) } else { Err(Refusal::Held(h.clone())) }
}

/// Decides a release by `me` of the current hold: its holder may, anyone else only with `force`,
/// and an agent never (that would take the desktop from a user in two steps).
pub fn decide_release(current: &Hold, me: &str, force: bool) -> Result<(), Refusal> {
    if current.identity == me {
        Ok(())
    } else if current.kind() == "user" && me.starts_with("agent:") {
        Err(Refusal::UserHolds(current.clone()))
    } else if force {
        Ok(())
    } else {
        Err(Refusal::Held(current.clone()))
    }
}

/// A time as kubectl shows it: RFC 3339, whole seconds, UTC.
pub fn show_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The longest single hold `--for` accepts (24h): a forgotten hold blocks agents, which never take
/// the desktop from a user. `--wait` keeps a hold for longer by renewing it.
pub const MAX_HOLD_SECS: i32 = 24 * 3600;

/// Parses `30m`, `1h`, `90s`, `1h30m` (or plain seconds) into seconds, at most [`MAX_HOLD_SECS`].
pub fn parse_duration(s: &str) -> Result<i32, String> {
    let bad = || format!("duration {s:?} must look like 30m, 1h, 90s or 1h30m");
    let mut total: i64 = 0;
    let mut num = String::new();
    // A trailing number without a unit counts as seconds.
    for c in s.chars().chain(std::iter::once('s').filter(|_| s.ends_with(|c: char| c.is_ascii_digit()))) {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit: i64 = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: i64 = num.parse().map_err(|_| bad())?;
        // Checked: a huge number must be refused, not overflow (a panic, or a wrapped value).
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        if total > i64::from(MAX_HOLD_SECS) {
            return Err(format!("duration {s:?} is longer than a hold may be (at most 24h; --wait renews it)"));
        }
        num.clear();
    }
    match i32::try_from(total) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    use super::*;

    fn lease(holder: &str, renewed: Timestamp, secs: i32) -> Lease {
        Lease {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(secs),
                ..LeaseSpec::default()
            }),
        }
    }

    fn now() -> Timestamp {
        "2026-11-23T10:00:00Z".parse().unwrap_or_default()
    }

    #[test]
    fn reads_like_the_operator() {
        let h = hold(Some(&lease("user:alice", now(), 60)), now());
        assert_eq!(h.as_ref().map(|h| (h.kind(), h.until.to_string())), Some(("user", "2026-11-23T10:01:00Z".into())));
        let later: Timestamp = "2026-11-23T10:01:00Z".parse().unwrap_or_default();
        assert_eq!(hold(Some(&lease("user:alice", now(), 60)), later), None, "expired reads as none");
        assert_eq!(hold(Some(&lease("robot:x", now(), 60)), now()), None);
        assert_eq!(hold(Some(&lease("", now(), 60)), now()), None);
        assert_eq!(hold(None, now()), None);
        // Any name after agent:/user: is a hold, as the operator reads it (status shows it held).
        for id in ["user:Jane Doe", "user:", "user:system:serviceaccount:a:b"] {
            assert_eq!(hold(Some(&lease(id, now(), 60)), now()).map(|h| h.identity), Some(id.to_owned()), "{id}");
        }
    }

    #[test]
    fn takes_and_refusals() {
        let user = Hold { identity: "user:alice".into(), until: now() };
        let agent = Hold { identity: "agent:bot".into(), until: now() };
        assert_eq!(decide(None, "user:bob", false), Ok(Take::Free));
        assert_eq!(decide(Some(&user), "user:alice", false), Ok(Take::Renew));
        assert_eq!(decide(Some(&agent), "user:bob", false), Err(Refusal::Held(agent.clone())));
        assert_eq!(decide(Some(&agent), "user:bob", true), Ok(Take::TakeOver(agent.clone())));
        assert_eq!(decide(Some(&user), "user:bob", true), Ok(Take::TakeOver(user.clone())));
        assert_eq!(
            decide(Some(&user), "agent:bot", true),
            Err(Refusal::UserHolds(user.clone())),
            "never from a person"
        );
        assert_eq!(decide(Some(&agent), "agent:other", false), Err(Refusal::Held(agent.clone())));
    }

    #[test]
    fn releases() {
        let user = Hold { identity: "user:alice".into(), until: now() };
        let agent = Hold { identity: "agent:bot".into(), until: now() };
        assert_eq!(decide_release(&user, "user:alice", false), Ok(()));
        assert_eq!(decide_release(&user, "user:bob", false), Err(Refusal::Held(user.clone())));
        assert_eq!(decide_release(&user, "user:bob", true), Ok(()));
        assert_eq!(decide_release(&agent, "user:bob", true), Ok(()));
        assert_eq!(decide_release(&agent, "agent:other", true), Ok(()));
        assert_eq!(decide_release(&user, "agent:bot", true), Err(Refusal::UserHolds(user)), "never from a person");
    }

    #[test]
    fn identities_and_durations() {
        assert_eq!(parse_identity("bob").as_deref(), Ok("user:bob"));
        assert_eq!(parse_identity("agent:a-7").as_deref(), Ok("agent:a-7"));
        assert!(parse_identity("robot:x").is_err());
        assert!(parse_identity("user:").is_err());
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("90"), Ok(90));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
    }

    #[test]
    fn durations_are_bounded() {
        assert_eq!(parse_duration("24h"), Ok(MAX_HOLD_SECS));
        assert!(parse_duration("24h1s").is_err_and(|e| e.contains("at most 24h")), "a day at most");
        assert!(parse_duration("500000h").is_err(), "fits an i32 but is 57 years");
        assert!(parse_duration("9223372036854775807h").is_err(), "overflows i64 when multiplied");
        assert!(parse_duration("99999999999999999999").is_err(), "does not parse as i64");
    }
}
