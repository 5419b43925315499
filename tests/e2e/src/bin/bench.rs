//! `bench [N ...]`: the Workspace benchmark against the running test world (see
//! docs/benchmarks.md). For each N: apply N Workspaces, time until all are Ready, count AWS calls
//! per Workspace by operation (from the operator's own metric), count steady-state calls per
//! minute, read the operator's CPU time and peak memory, then delete all and count again.
//! Prints one Markdown section per N. Loops are bounded by N and by timeouts. `bench --fake-cloud
//! N` runs the operator on the in-process fake cloud instead (`bench_fake.rs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use molecule_e2e::harness::wait_for;
use molecule_e2e::scenario::{Scenario, condition};
use serde_json::json;

#[path = "../bench_fake.rs"]
mod bench_fake;

/// Steady-state observation window.
const STEADY: Duration = Duration::from_mins(1);

type Calls = BTreeMap<String, f64>;

async fn calls(s: &Scenario) -> Calls {
    let url = format!("http://{}/metrics", s.metrics_addr);
    let Ok((_, body)) = molecule_e2e::harness::http_text("GET", &url).await else { return Calls::new() };
    let mut out = Calls::new();
    for l in body.lines().filter(|l| l.starts_with("molecule_aws_calls_total{")) {
        let op = l.split("operation=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("?");
        let v: f64 = l.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        *out.entry(op.to_owned()).or_default() += v;
    }
    out
}

fn diff(after: &Calls, before: &Calls) -> Calls {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// (CPU seconds, peak RSS MiB) of a process, from /proc.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    (ticks / 100.0, hwm_kb / 1024.0)
}

fn table(title: &str, c: &Calls, per: f64) -> String {
    let total: f64 = c.values().sum();
    let mut out = format!(
        "{title}: {:.2} calls per Workspace ({total} in all)\n\n| operation | per Workspace |\n|---|---|\n",
        total / per
    );
    for (op, v) in c {
        let _ = writeln!(out, "| {op} | {:.2} |", v / per);
    }
    out
}

/// (Workspaces Ready, Workspaces with `status.instanceId`).
async fn ready_count(s: &Scenario) -> (usize, usize) {
    let list = s.api().list(&kube::api::ListParams::default()).await.map(|l| l.items).unwrap_or_default();
    let ids = list.iter().filter(|w| w.status.as_ref().is_some_and(|st| st.instance_id.is_some())).count();
    (list.iter().filter(|w| condition(w, "Ready").is_some_and(|c| c.0 == "True")).count(), ids)
}

async fn bench(n: usize) -> Result<String, String> {
    let mut s = Scenario::new("bench", 4, json!({})).await.map_err(|e| e.to_string())?;
    // The orphan scan at its production interval: a scenario's (every 2 s) made most of the
    // steady-state calls (ListSecrets and IAM listings) of the first 1,000 run.
    let env = [("RUST_LOG", "info"), ("CLOUD_REFRESH_SECONDS", "15"), ("ORPHAN_SCAN_INTERVAL_SECONDS", "1800")];
    s.start_operator(&env).map_err(|e| e.to_string())?;
    let pid = s.operator.as_ref().map_or(0, molecule_e2e::harness::OperatorProcess::pid);
    molecule_e2e::harness::wait_for("operator ready", Duration::from_mins(1), || async {
        molecule_e2e::harness::http_text("GET", &format!("http://{}/readyz", s.metrics_addr))
            .await
            .ok()
            .filter(|(c, _)| *c == 200)
    })
    .await
    .map_err(|e| e.to_string())?;
    let before = calls(&s).await;
    let (cpu0, _) = usage(pid);
    let items: Vec<_> = (0..n)
        .map(|i| {
            s.workspace(
                &format!("b{i:05}"),
                json!({"runtime": "codex", "compute": {"instanceType": "t3.micro", "volume": {"rootGb": 32}}}),
            )
        })
        .collect();
    let started = Instant::now();
    for chunk in items.chunks(200) {
        s.apply_all(chunk).map_err(|e| e.to_string())?;
    }
    let limit = Duration::from_secs(120 + 2 * u64::try_from(n).unwrap_or(0));
    let mut to_ids = None;
    loop {
        let (ready, ids) = ready_count(&s).await;
        if ids == n && to_ids.is_none() {
            to_ids = Some(started.elapsed());
        }
        if ready == n {
            break;
        }
        if started.elapsed() > limit {
            return Err(format!("not all {n} Ready after {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let to_ready = started.elapsed();
    let to_ids = to_ids.unwrap_or(to_ready);
    let (cpu1, _) = usage(pid);
    let created = calls(&s).await;
    tokio::time::sleep(STEADY).await;
    let steady = calls(&s).await;
    let (cpu2, _) = usage(pid);
    let to_gone = delete_all(&s, limit).await?;
    let deleted = calls(&s).await;
    let (cpu3, rss) = usage(pid);
    #[allow(clippy::cast_precision_loss)] // n is at most tens of thousands
    let per = n as f64;
    let steady_calls: f64 = diff(&steady, &created).values().sum();
    let mut md = format!("### {n} Workspaces\n\n");
    let _ = write!(
        md,
        "- apply to all instance IDs in status: {:.1} s; to all Ready: {:.1} s; delete to all gone: {:.1} s\n- steady state: {:.1} AWS calls per minute in all ({:.3} per Workspace per minute), operator CPU {:.2} s per minute\n- operator CPU: {:.1} s to create, {:.1} s to delete; peak RSS {:.0} MiB\n\n",
        to_ids.as_secs_f64(),
        to_ready.as_secs_f64(),
        to_gone.as_secs_f64(),
        steady_calls * 60.0 / STEADY.as_secs_f64(),
        steady_calls * 60.0 / STEADY.as_secs_f64() / per,
        (cpu2 - cpu1) * 60.0 / STEADY.as_secs_f64(),
        cpu1 - cpu0,
        cpu3 - cpu2,
        rss
    );
    md.push_str(&table("Create", &diff(&created, &before), per));
    md.push('\n');
    md.push_str(&table("Steady state, 60 s", &diff(&steady, &created), per));
    md.push('\n');
    md.push_str(&table("Delete", &diff(&deleted, &steady), per));
    s.kill_operator();
    Ok(md)
}

/// Deletes every Workspace of the scenario and waits until none is left; the time that took.
async fn delete_all(s: &Scenario, limit: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let args = ["delete", "workspaces", "--all", "-n", &s.ns, "--wait=false"];
    let out = s.env.kubectl(&args, None).map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let one = kube::api::ListParams::default().limit(1);
    wait_for("all Workspaces gone", limit, || async { s.api().list(&one).await.ok().filter(|l| l.items.is_empty()) })
        .await
        .map_err(|e| e.to_string())?;
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> ExitCode {
    // `--fake-cloud`: the operator on the in-process fake cloud (a build with the `fake` feature).
    let fake = std::env::args().any(|a| a == "--fake-cloud");
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![50, 100] } else { sizes };
    for n in sizes {
        let run = if fake { bench_fake::run(n).await } else { bench(n).await };
        match run {
            Ok(md) => println!("{md}"),
            Err(e) => {
                eprintln!("bench {n}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
