//! Route 53 off the critical path: 20 Workspaces through a fault proxy of this test's own (so
//! its counts are this operator's calls only). The zone cache answers every "is my record
//! there", the batcher puts many Workspaces' changes into one ChangeResourceRecordSets: create
//! and delete each cost a small fraction of a Route 53 call per Workspace (it was 2.2 per
//! Workspace on create: a listing and a change each).
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use molecule_e2e::harness::{PrivateProxy, http_json};
use molecule_e2e::scenario::{Scenario, uid};
use serde_json::json;

const N: usize = 20;
const T: Duration = Duration::from_mins(3);

async fn route53_calls(proxy: &PrivateProxy) -> BTreeMap<String, u64> {
    let (_, v) = http_json("GET", &format!("{}/__faults/counts", proxy.endpoint), None, None).await.unwrap();
    v["total"]
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k.starts_with("route53."))
        .map(|(k, n)| (k, n.as_u64().unwrap_or(0)))
        .collect()
}

/// What the zone cache and the batcher allow: listings only as the cache ages (one per
/// CLOUD_REFRESH_SECONDS of activity, plus the first), changes for a few Workspaces each.
fn check(what: &str, calls: &BTreeMap<String, u64>, took: Duration, log: &str) {
    let lists = calls.get("route53.ListResourceRecordSets").copied().unwrap_or(0);
    let changes = calls.get("route53.ChangeResourceRecordSets").copied().unwrap_or(0);
    eprintln!("{what}: {calls:?} in {took:?} ({:.2} per Workspace)", per_workspace(calls));
    assert!(lists <= 2 + took.as_secs() / 15, "{what}: a listing per Workspace: {calls:?} in {took:?}\n{log}");
    // Unbatched is one change per Workspace (N); batches of several Workspaces stay well under
    // half of that even when instances get their addresses over several seconds (listing lag).
    assert!((1..=N as u64 / 2).contains(&changes), "{what}: changes not batched: {calls:?}\n{log}");
}

fn per_workspace(calls: &BTreeMap<String, u64>) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let per = calls.values().sum::<u64>() as f64 / N as f64;
    per
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_workspaces_share_a_few_route53_calls() {
    let mut s = Scenario::new("dnsb", 4, json!({})).await.unwrap();
    let proxy = PrivateProxy::start(&s.env).await.unwrap();
    // The default refresh (as in `make bench`). The orphan scan (every 2 s in scenarios) reads
    // the zone cache too: it adds no listing while the cache is fresh.
    s.start_operator(&[("AWS_ENDPOINT_URL", proxy.endpoint.as_str()), ("CLOUD_REFRESH_SECONDS", "15")]).unwrap();
    let start = std::time::Instant::now();
    let names: Vec<String> = (0..N).map(|i| format!("w{i}")).collect();
    // One apply, as a GitOps sync makes: twenty `kubectl apply` processes one after another
    // spread the Workspaces over seconds on a loaded machine (CI: 12 changes for 20, each
    // launch alone in its 100 ms window), which measures kubectl, not the batcher.
    let items: Vec<_> = names.iter().map(|n| s.workspace(n, json!({"runtime": "codex"}))).collect();
    s.apply_all(&items).unwrap();
    let mut hosts = Vec::new();
    for n in &names {
        let w = s.wait_ready(n, T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
        let st = w.status.clone().unwrap();
        let host = st.hostname.clone().expect("hostname");
        let records = s.records(&host).await;
        let a = records.iter().find(|(t, _)| t == "A").map(|(_, v)| v.clone());
        assert_eq!(a, Some(vec![st.private_ip.clone().unwrap()]), "{n}: A record");
        let txt = records.iter().find(|(t, _)| t == "TXT").map(|(_, v)| v.join(" ")).unwrap_or_default();
        assert!(txt.contains(&uid(&w)), "{n}: ownership TXT names the Workspace: {txt}");
        hosts.push((uid(&w), host));
    }
    let create = route53_calls(&proxy).await;
    check("create", &create, start.elapsed(), &s.log());
    let start = std::time::Instant::now();

    for n in &names {
        s.delete(n).await.unwrap();
    }
    for n in &names {
        s.wait_gone(n, T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    }
    let mut delete = route53_calls(&proxy).await;
    for (k, v) in &mut delete {
        *v -= create.get(k).copied().unwrap_or(0);
    }
    check("delete", &delete, start.elapsed(), &s.log());
    for (u, h) in &hosts {
        assert!(s.leftovers(u, Some(h)).await.is_empty(), "{h}: left behind");
    }
}
