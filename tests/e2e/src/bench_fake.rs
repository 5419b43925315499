//! `bench --fake-cloud N`: the operator at a scale moto cannot hold (issue 16). The operator runs
//! with `MOLECULE_FAKE_CLOUD=1` (a build with the `fake` feature: the in-process fake cloud answers
//! for AWS, instant transitions, a task in it stands in for the bootstrap simulator) against the
//! real API server of the test world. Measures: apply to all Running, operator CPU per minute at
//! rest, CPU per converged reconcile (every Workspace annotated once, so each is reconciled once
//! with nothing to do), peak RSS, then a restart's time to ready and to N reconciles. The fake's
//! state lives in the process, so the restarted operator finds an empty cloud and relaunches
//! every Workspace: its pass is a bound from above for the pass over a converged fleet. Then
//! deletes everything. Progress goes to stderr.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use molecule_e2e::harness::{OperatorProcess, http_text, wait_for};
use molecule_e2e::scenario::Scenario;
use serde_json::json;

use super::usage;

async fn start(s: &mut Scenario) -> Result<(u32, Duration), String> {
    let t0 = Instant::now();
    s.start_operator(&[
        ("MOLECULE_FAKE_CLOUD", "1"),
        ("RUST_LOG", "info"),
        ("CLOUD_REFRESH_SECONDS", "15"),
        ("ORPHAN_SCAN_INTERVAL_SECONDS", "1800"),
        // The client-side AWS budgets off: at the default mutate rate (5 a second, two mutating
        // EC2 calls per create) 10,000 creates take 4,000 s whatever the operator does; the
        // subject here is the operator's own cost. docs/benchmarks.md gives the budget floor.
        ("AWS_DESCRIBE_RATE", "0"),
        ("AWS_MUTATE_RATE", "0"),
        ("AWS_LAUNCH_RATE", "0"),
        ("AWS_TERMINATE_RATE", "0"),
        ("AWS_ROUTE53_RATE", "0"),
        ("AWS_SECRETS_RATE", "0"),
    ])
    .map_err(|e| e.to_string())?;
    let pid = s.operator.as_ref().map_or(0, OperatorProcess::pid);
    let addr = s.metrics_addr.clone();
    wait_for("operator ready", Duration::from_mins(5), || async {
        http_text("GET", &format!("http://{addr}/readyz")).await.ok().filter(|(c, _)| *c == 200)
    })
    .await
    .map_err(|e| e.to_string())?;
    Ok((pid, t0.elapsed()))
}

/// Waits until the sum of metric `name` over the lines with every `label` reaches `goal`, printing
/// progress; the time that took, or `Err` after `limit`.
async fn until(
    s: &Scenario,
    what: &str,
    limit: Duration,
    name: &str,
    labels: &[&str],
    goal: f64,
) -> Result<Duration, String> {
    let t0 = Instant::now();
    let mut said = Instant::now();
    loop {
        let v = s.metric_sum(name, labels).await;
        if v >= goal {
            return Ok(t0.elapsed());
        }
        if said.elapsed() > Duration::from_secs(30) {
            eprintln!("bench --fake-cloud: {what}: {v} of {goal} after {:.0} s", t0.elapsed().as_secs_f64());
            said = Instant::now();
        }
        if t0.elapsed() > limit {
            return Err(format!("{what}: {v} of {goal} after {limit:?}"));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Annotates every Workspace of the scenario once (a watch event each, so the operator reconciles
/// each converged Workspace once); the reconciles counted and the operator CPU they took.
async fn touch_pass(s: &Scenario, pid: u32, n: f64, limit: Duration) -> Result<(f64, f64, Duration), String> {
    let ws = ["kind=\"Workspace\""];
    let r0 = s.metric_sum("molecule_reconciles_total", &ws).await;
    let (c0, _) = usage(pid);
    let t0 = Instant::now();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let stamp = format!("bench.moleculesai.app/touched={}", now.as_millis());
    let out = s.env.kubectl(&["annotate", "workspaces", "--all", "-n", &s.ns, "--overwrite", &stamp], None);
    out.map_err(|e| e.to_string())?;
    until(s, "touch pass", limit, "molecule_reconciles_total", &ws, r0 + n).await?;
    // Let the tail of the pass finish: reconciles counted when they end.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (c1, _) = usage(pid);
    let done = s.metric_sum("molecule_reconciles_total", &ws).await - r0;
    Ok((c1 - c0, done, t0.elapsed()))
}

/// One run at `n` Workspaces; the Markdown section of its figures.
pub async fn run(n: usize) -> Result<String, String> {
    let mut s = Scenario::new("benchf", 4, json!({})).await.map_err(|e| e.to_string())?;
    let (pid, _) = start(&mut s).await?;
    let (cpu0, _) = usage(pid);
    let tenant = ["kind=\"Tenant\""];
    let tenant0 = s.metric_sum("molecule_reconciles_total", &tenant).await;
    let items: Vec<_> = (0..n)
        .map(|i| s.workspace(&format!("f{i:05}"), json!({"runtime": "codex", "compute": {"instanceType": "t3.micro"}})))
        .collect();
    let started = Instant::now();
    for chunk in items.chunks(500) {
        s.apply_all(chunk).map_err(|e| e.to_string())?;
    }
    let applied = started.elapsed();
    eprintln!("bench --fake-cloud: kubectl apply of all {n}: {:.1} s", applied.as_secs_f64());
    #[allow(clippy::cast_precision_loss)] // n is at most tens of thousands
    let goal = n as f64;
    let limit = Duration::from_secs(300 + u64::try_from(n).unwrap_or(0) / 5);
    let running = ["kind=\"Workspace\"", "phase=\"Running\""];
    until(&s, "Running", limit, "molecule_objects", &running, goal).await?;
    let to_running = started.elapsed();
    let (cpu1, rss0) = usage(pid);
    let tenant_passes = s.metric_sum("molecule_reconciles_total", &tenant).await - tenant0;
    eprintln!(
        "bench --fake-cloud: all {n} Running {:.1} s after apply; CPU {:.1} s; RSS peak {rss0:.0} MiB; {tenant_passes:.0} Tenant reconciles",
        to_running.as_secs_f64(),
        cpu1 - cpu0
    );
    tokio::time::sleep(super::STEADY).await;
    let (cpu2, _) = usage(pid);
    let idle_per_s = (cpu2 - cpu1) / super::STEADY.as_secs_f64();
    let (pass_cpu, pass_n, pass_took) = touch_pass(&s, pid, goal, limit).await?;
    let (_, rss1) = usage(pid);
    eprintln!(
        "bench --fake-cloud: at rest {:.2} s CPU per minute; touch pass {pass_cpu:.1} s CPU for {pass_n:.0} reconciles in {:.1} s; RSS peak {rss1:.0} MiB",
        idle_per_s * 60.0,
        pass_took.as_secs_f64()
    );
    // Restart: time to ready and to N reconciles (on an empty fake: relaunches, see the docs).
    s.kill_operator();
    let (_, to_ready) = start(&mut s).await?;
    let ws = ["kind=\"Workspace\""];
    let pass = until(&s, "first pass", limit, "molecule_reconciles_total", &ws, goal).await?;
    eprintln!(
        "bench --fake-cloud: restart: ready {:.1} s, {n} reconciles {:.1} s later",
        to_ready.as_secs_f64(),
        pass.as_secs_f64()
    );
    let to_gone = super::delete_all(&s, limit).await?;
    s.kill_operator();
    let mut md = format!("### {n} Workspaces on the fake cloud (`MOLECULE_FAKE_CLOUD=1`)\n\n");
    let _ = write!(
        md,
        "- kubectl apply of all {n}: {:.1} s; apply to all Running: {:.1} s; delete to all gone: {:.1} s\n\
         - operator CPU: {:.1} s to create, {:.2} s per minute at rest; peak RSS {rss1:.0} MiB (after the touch pass); {tenant_passes:.0} reconciles of the one Tenant during the create\n\
         - CPU per converged reconcile: {:.2} ms ({pass_cpu:.1} s CPU for {pass_n:.0} reconciles in {:.1} s, watch events of the annotations included); less the CPU at rest over the pass: {:.2} ms\n\
         - restart: ready after {:.1} s, {n} Workspace reconciles {:.1} s later (an empty fake cloud: relaunches, an upper bound for a converged pass)\n",
        applied.as_secs_f64(),
        to_running.as_secs_f64(),
        to_gone.as_secs_f64(),
        cpu1 - cpu0,
        idle_per_s * 60.0,
        pass_cpu * 1000.0 / pass_n.max(1.0),
        pass_took.as_secs_f64(),
        (pass_cpu - idle_per_s * pass_took.as_secs_f64()).max(0.0) * 1000.0 / pass_n.max(1.0),
        to_ready.as_secs_f64(),
        pass.as_secs_f64(),
    );
    Ok(md)
}
