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

fn per_workspace(calls: &BTreeMap<String, u64>) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let per = calls.values().sum::<u64>() as f64 / N as f64;
    per
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_workspaces_share_a_few_route53_calls() {
    let mut s = Scenario::new("dnsb", 4, json!({})).await.unwrap();
    let proxy = PrivateProxy::start(&s.env).await.unwrap();
    // The default refresh (as in `make bench`), and an orphan scan that does not list the zone
    // in the middle of the measurement.
    s.start_operator(&[
        ("AWS_ENDPOINT_URL", proxy.endpoint.as_str()),
        ("CLOUD_REFRESH_SECONDS", "15"),
        ("ORPHAN_SCAN_INTERVAL_SECONDS", "300"),
    ])
    .unwrap();
    let names: Vec<String> = (0..N).map(|i| format!("w{i}")).collect();
    for n in &names {
        s.apply(&s.workspace(n, json!({"runtime": "codex"}))).unwrap();
    }
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
    eprintln!("create: {create:?} ({:.2} per Workspace)", per_workspace(&create));
    assert!(per_workspace(&create) <= 0.25, "create: {create:?}\n{}", s.log());
    assert!(create.get("route53.ChangeResourceRecordSets").copied().unwrap_or(0) >= 1, "{create:?}");

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
    eprintln!("delete: {delete:?} ({:.2} per Workspace)", per_workspace(&delete));
    assert!(per_workspace(&delete) <= 0.25, "delete: {delete:?}\n{}", s.log());
    for (u, h) in &hosts {
        assert!(s.leftovers(u, Some(h)).await.is_empty(), "{h}: left behind");
    }
}
