//! `bench --fake-cloud N`: the operator at a scale moto cannot hold (issue 16). The operator runs
//! with `MOLECULE_FAKE_CLOUD=1` (a build with the `fake` feature: the in-process fake cloud answers
//! for AWS, instant transitions, a task in it stands in for the bootstrap simulator) against the
//! real API server of the test world. Measures: apply to all Running, operator CPU per minute at
//! rest, a restart's time to ready and to the first full reconcile pass (reconciles counted from
//! `molecule_reconciles_total`), CPU per reconcile in that pass (every Workspace converged), and
//! peak RSS of both processes; then deletes everything. Progress goes to stderr.

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

/// One run at `n` Workspaces; the Markdown section of its figures.
pub async fn run(n: usize) -> Result<String, String> {
    let mut s = Scenario::new("benchf", 4, json!({})).await.map_err(|e| e.to_string())?;
    let (pid, _) = start(&mut s).await?;
    let (cpu0, _) = usage(pid);
    let items: Vec<_> = (0..n)
        .map(|i| s.workspace(&format!("f{i:05}"), json!({"runtime": "codex", "compute": {"instanceType": "t3.micro"}})))
        .collect();
    let started = Instant::now();
    for chunk in items.chunks(500) {
        s.apply(&json!({"apiVersion": "v1", "kind": "List", "items": chunk})).map_err(|e| e.to_string())?;
    }
    let applied = started.elapsed();
    #[allow(clippy::cast_precision_loss)] // n is at most tens of thousands
    let goal = n as f64;
    let limit = Duration::from_secs(300 + u64::try_from(n).unwrap_or(0) / 5);
    let running = ["kind=\"Workspace\"", "phase=\"Running\""];
    until(&s, "Running", limit, "molecule_objects", &running, goal).await?;
    let to_running = started.elapsed();
    let (cpu1, rss1) = usage(pid);
    tokio::time::sleep(super::STEADY).await;
    let (cpu2, _) = usage(pid);
    // Restart: time to ready and to the first full pass over the converged fleet.
    s.kill_operator();
    let (pid2, to_ready) = start(&mut s).await?;
    // CPU from the process's start: the first listing and watch decode count too (an upper bound).
    let ws = ["kind=\"Workspace\""];
    let pass = until(&s, "first pass", limit, "molecule_reconciles_total", &ws, goal).await?;
    let (cpu_r1, _) = usage(pid2);
    tokio::time::sleep(super::STEADY).await;
    let (cpu_r2, rss2) = usage(pid2);
    let to_gone = super::delete_all(&s, limit).await?;
    s.kill_operator();
    let mut md = format!("### {n} Workspaces on the fake cloud (`MOLECULE_FAKE_CLOUD=1`)\n\n");
    let _ = write!(
        md,
        "- kubectl apply of all {n}: {:.1} s; apply to all Running: {:.1} s; delete to all gone: {:.1} s\n\
         - operator CPU: {:.1} s to create, {:.2} s per minute at rest; peak RSS {rss1:.0} MiB\n\
         - restart: ready (first fleet listing done) after {:.1} s, first full reconcile pass ({n} Workspace reconciles) {:.1} s later\n\
         - CPU per converged reconcile in the first pass, process start included: {:.2} ms ({:.1} s CPU / {n}); then {:.2} s per minute at rest; peak RSS after restart {rss2:.0} MiB\n",
        applied.as_secs_f64(),
        to_running.as_secs_f64(),
        to_gone.as_secs_f64(),
        cpu1 - cpu0,
        (cpu2 - cpu1) * 60.0 / super::STEADY.as_secs_f64(),
        to_ready.as_secs_f64(),
        pass.as_secs_f64(),
        cpu_r1 * 1000.0 / goal,
        cpu_r1,
        (cpu_r2 - cpu_r1) * 60.0 / super::STEADY.as_secs_f64(),
    );
    Ok(md)
}
