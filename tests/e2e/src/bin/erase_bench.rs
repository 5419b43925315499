//! `erase_bench [N ...]`: the erasure benchmark against the running test world (docs/benchmarks.md,
//! "Erasure at scale"). For each N: a Tenant with N Workspaces (all Ready), then the Tenant is
//! deleted and timed until it is gone; reports the AWS calls of the erasure by operation (the
//! operator's metric), the API server's requests by verb and resource (kube-apiserver's
//! `apiserver_request_total`: run it in a world of its own, other scenarios count there too), and
//! the receipt's size (its ConfigMaps and entries). Loops are bounded by N and by timeouts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;
use molecule_e2e::harness::{http_text, wait_for};
use molecule_e2e::scenario::{Scenario, condition};
use serde_json::json;

type Counts = BTreeMap<String, f64>;

/// Sums the samples of `metric` in a Prometheus text body by the values of `labels`.
fn sum_by(body: &str, metric: &str, labels: &[&str]) -> Counts {
    let mut out = Counts::new();
    for l in body.lines().filter(|l| l.starts_with(&format!("{metric}{{"))) {
        let key: Vec<&str> = labels
            .iter()
            .map(|k| l.split(&format!("{k}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap_or("-"))
            .collect();
        let v: f64 = l.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        *out.entry(key.join(" ")).or_default() += v;
    }
    out
}

async fn aws_calls(s: &Scenario) -> Counts {
    let url = format!("http://{}/metrics", s.metrics_addr);
    let body = http_text("GET", &url).await.map(|(_, b)| b).unwrap_or_default();
    sum_by(&body, "molecule_aws_calls_total", &["operation"])
}

fn api_requests(s: &Scenario) -> Counts {
    let out = s.env.kubectl(&["get", "--raw", "/metrics"], None).map(|o| o.stdout).unwrap_or_default();
    sum_by(&String::from_utf8_lossy(&out), "apiserver_request_total", &["verb", "resource"])
}

fn diff(after: &Counts, before: &Counts) -> Counts {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

fn table(title: &str, c: &Counts) -> String {
    let total: f64 = c.values().sum();
    let mut out = format!("{title} ({total} in all)\n\n| what | count |\n|---|---|\n");
    for (k, v) in c {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    out
}

async fn all_ready(s: &Scenario, n: usize, limit: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        let list = s.api().list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        if list.iter().filter(|w| condition(w, "Ready").is_some_and(|c| c.0 == "True")).count() == n {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            return Err(format!("not all {n} Ready after {limit:?}"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// (ConfigMaps, bytes of their data, entries) of the receipt of `uid`, parts included.
async fn receipt_size(s: &Scenario, uid: &str) -> (usize, usize, usize) {
    let api: Api<ConfigMap> = Api::namespaced(s.kube.clone(), s.env.var("OPERATOR_NAMESPACE"));
    let name = s.receipt_name(uid);
    let lp = ListParams::default().labels(&format!("moleculesai.app/erasure-receipt-part={name}"));
    let mut cms: Vec<ConfigMap> = api.list(&lp).await.map(|l| l.items).unwrap_or_default();
    cms.extend(api.get_opt(&name).await.ok().flatten());
    let bytes = cms.iter().flat_map(|c| c.data.iter().flatten()).map(|(k, v)| k.len() + v.len()).sum();
    let entries = s.receipt(uid).await.and_then(|r| r["resources"].as_array().map(Vec::len)).unwrap_or(0);
    (cms.len(), bytes, entries)
}

async fn bench(n: usize, allowance: &str) -> Result<String, String> {
    let mut s = Scenario::new("erabench", 4, json!({})).await.map_err(|e| e.to_string())?;
    // The orphan scan at its production interval: every 2 s (a scenario's) it paged through every
    // secret and spent a quarter of the Secrets Manager budget the erasure needs.
    let vars = [
        ("RUST_LOG", "info"),
        ("CLOUD_REFRESH_SECONDS", "15"),
        ("ERASURE_LISTING_ALLOWANCE_SECONDS", allowance),
        ("ORPHAN_SCAN_INTERVAL_SECONDS", "1800"),
    ];
    s.start_operator(&vars).map_err(|e| e.to_string())?;
    s.expect_orphans();
    let items: Vec<_> = (0..n)
        .map(|i| s.workspace(&format!("e{i:05}"), json!({"runtime": "codex", "compute": {"instanceType": "t3.micro"}})))
        .collect();
    for chunk in items.chunks(200) {
        s.apply_all(chunk).map_err(|e| e.to_string())?;
    }
    let limit = Duration::from_secs(180 + 2 * u64::try_from(n).unwrap_or(0));
    let to_ready = all_ready(&s, n, limit).await?;
    let t = s.wait_tenant_ready(Duration::from_mins(3)).await.map_err(|e| e.to_string())?;
    let uid = t.metadata.uid.clone().unwrap_or_default();
    let (aws0, api0) = (aws_calls(&s).await, api_requests(&s));
    let started = Instant::now();
    s.delete_tenant().await.map_err(|e| e.to_string())?;
    wait_for("tenant gone", limit, || async { s.get_tenant().await.is_none().then_some(()) })
        .await
        .map_err(|e| e.to_string())?;
    let took = started.elapsed();
    let (aws1, api1) = (aws_calls(&s).await, api_requests(&s));
    let (cms, bytes, entries) = receipt_size(&s, &uid).await;
    let mut md = format!("### Erasure of a Tenant with {n} Workspaces\n\n");
    let _ = write!(
        md,
        "- apply to all Ready: {:.1} s (not the erasure)\n- delete to Tenant gone (erasure complete): {:.1} s, ERASURE_LISTING_ALLOWANCE_SECONDS={allowance}\n- receipt: {entries} entries in {cms} ConfigMap(s), {bytes} bytes of data\n\n",
        to_ready.as_secs_f64(),
        took.as_secs_f64(),
    );
    md.push_str(&table("AWS calls of the erasure, by operation", &diff(&aws1, &aws0)));
    md.push('\n');
    md.push_str(&table(
        "API server requests during the erasure (verb resource; every client of this world)",
        &diff(&api1, &api0),
    ));
    s.kill_operator();
    Ok(md)
}

#[tokio::main]
async fn main() -> ExitCode {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![100] } else { sizes };
    let allowance = std::env::var("ERASURE_LISTING_ALLOWANCE_SECONDS").unwrap_or_else(|_| "15".into());
    for n in sizes {
        match bench(n, &allowance).await {
            Ok(md) => println!("{md}"),
            Err(e) => {
                eprintln!("erase_bench {n}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
