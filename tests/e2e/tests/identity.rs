//! Issue 13 acceptance, "everything is found only by tag": the operator restarted with another
//! `MOLECULE_OPERATOR_ID` no longer lists the Workspace's instance (the fleet cache filters by
//! the managed-by tag). It must not relaunch it (a duplicate fleet), must say so in a condition
//! (IdentityMismatch), and a delete must not finish while the instance lives; with the id
//! restored, the delete finishes and nothing is left.
//!
//! The bound: before the fix the relaunch came at the first reconcile after `launchedAt` plus the
//! listing lag (`launch::LISTING_LAG`, 2 minutes), the only timer between "not listed" and "lost";
//! reconciles run every 2 s here (CLOUD_REFRESH_SECONDS=1). Watching until `launchedAt` + 2 min +
//! 30 s covers that decision with margin, where the 5 minutes would only add idle time.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, clippy::many_single_char_names)]

use std::time::Duration;

use molecule_e2e::scenario::{Scenario, condition, uid};
use serde_json::json;

const T: Duration = Duration::from_mins(2);
/// `launch::LISTING_LAG` plus margin for the reconcile and listing that would act on it.
const WATCH_PAST_LAUNCH: Duration = Duration::from_secs(150);
/// The restored operator's first listing, then terminate, wait, delete (slack for a busy world).
const GONE: Duration = Duration::from_mins(4);

fn reason(w: &molecule_crds::v1alpha1::Workspace) -> (String, String) {
    condition(w, "Ready").map(|c| (c.1, c.2)).unwrap_or_default()
}

#[tokio::test]
async fn another_operator_id_neither_relaunches_nor_finishes_a_delete() {
    let mut s = Scenario::new("ident", 4, json!({})).await.unwrap();
    s.start_operator(&[]).unwrap();
    // No data volume: its fixed ClientToken would have hidden the relaunch (issue 13).
    s.apply(&s.workspace("w", json!({"runtime": "codex"}))).unwrap();
    let w = s.wait_ready("w", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let (id, u) = (w.status.as_ref().unwrap().instance_id.clone().unwrap(), uid(&w));
    let launched: jiff::Timestamp =
        w.status.as_ref().unwrap().launch.as_ref().unwrap().launched_at.as_deref().unwrap().parse().unwrap();

    // Restart under another operator id: the instance carries the old managed-by tag.
    s.kill_operator();
    let ours = s.operator_id.clone();
    s.operator_id = format!("{ours}-moved");
    s.start_operator(&[]).unwrap();
    let w = match s.wait_ws("w", "Ready=False IdentityMismatch", T, |w| reason(w).0 == "IdentityMismatch").await {
        Ok(w) => w,
        Err(e) => {
            let all: Vec<_> =
                s.instances(&u).await.into_iter().filter_map(|i| i.instance_id().map(str::to_owned)).collect();
            panic!("{e}; instances of the Workspace: {all:?}\n{}", s.log())
        }
    };
    let (_, msg) = reason(&w);
    assert!(msg.contains(&id) && msg.contains(&ours), "the condition names the instance and the other id: {msg}");
    let stalled = condition(&w, "Stalled").unwrap();
    assert_eq!((stalled.0.as_str(), stalled.1.as_str()), ("True", "IdentityMismatch"));

    // No new instance past the moment the old code declared the instance lost.
    let until = launched + jiff::SignedDuration::try_from(WATCH_PAST_LAUNCH).unwrap();
    let mut polls = 0;
    while jiff::Timestamp::now() < until {
        let all = s.instances(&u).await;
        assert_eq!(all.len(), 1, "no second instance launched ({polls} polls): {all:?}\n{}", s.log());
        assert_eq!(s.alive(&u).await, vec![id.clone()]);
        polls += 1;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let w = s.get("w").await.unwrap();
    assert_eq!(reason(&w).0, "IdentityMismatch", "still said after the listing lag");

    // A delete does not finish while the instance lives, and the moved operator does not
    // terminate what is not its own.
    s.delete("w").await.unwrap();
    let w = s
        .wait_ws("w", "delete blocked by the mismatch", T, |w| {
            let (r, m) = reason(w);
            r == "IdentityMismatch" && m.starts_with("delete blocked")
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert!(w.metadata.deletion_timestamp.is_some());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(s.get("w").await.is_some(), "the finalizer stays while the instance lives");
    assert_eq!(s.alive(&u).await, vec![id.clone()], "not terminated by an operator it does not belong to");

    // The id restored: the delete finishes and nothing is left.
    s.kill_operator();
    s.operator_id = ours;
    s.start_operator(&[]).unwrap();
    s.wait_gone("w", GONE).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert!(s.alive(&u).await.is_empty());
    let left = s.leftovers(&u, w.status.as_ref().unwrap().hostname.as_deref()).await;
    assert!(left.is_empty(), "left behind {left:?}");
}
