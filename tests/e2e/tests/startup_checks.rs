//! Settings that would do harm are refused at start, with one line naming the setting, before
//! the operator touches Kubernetes or AWS: `RECONCILE_CONCURRENCY=0` (kube reads 0 as "no
//! limit") and an `http://` `CLOUDFLARE_API_URL` while a token is set (the token would travel in
//! clear) unless `CLOUDFLARE_ALLOW_HTTP=true`, the test world's flag for its loopback fake.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use molecule_e2e::harness::{OperatorProcess, TestEnv, wait_for};

/// Starts the operator with the test world's settings plus `extra` and waits for it to exit.
async fn exits(env: &TestEnv, extra: &[(&str, &str)]) -> String {
    // A free port, should it start after all (the test then fails, without a port clash).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics = format!("127.0.0.1:{port}");
    let mut vars = vec![("METRICS_ADDR", metrics.as_str()), ("MOLECULE_OPERATOR_ID", "e2e-startup-checks")];
    vars.extend_from_slice(extra);
    let mut op: OperatorProcess = env.start_operator(&vars).expect("spawn");
    wait_for("the operator to stop", Duration::from_secs(20), || {
        let running = op.is_running();
        async move { (!running).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: it kept running\n{}", op.log()));
    op.log()
}

fn the_refusal(log: &str, setting: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("molecule-operator: ")).collect();
    assert_eq!(lines.len(), 1, "one line on stderr:\n{log}");
    assert!(lines[0].contains(setting), "{setting} not named: {}", lines[0]);
    assert!(!log.contains("molecule-operator started"), "it started:\n{log}");
    lines[0].to_owned()
}

#[tokio::test]
async fn zero_concurrency_is_refused() {
    let env = TestEnv::load().expect("test world");
    let log = exits(&env, &[("RECONCILE_CONCURRENCY", "0")]).await;
    the_refusal(&log, "RECONCILE_CONCURRENCY");
}

#[tokio::test]
async fn cloudflare_over_http_is_refused_without_the_test_flag() {
    let env = TestEnv::load().expect("test world");
    assert!(env.var("CLOUDFLARE_API_URL").starts_with("http://"), "the fake is plain http");
    let log = exits(&env, &[("CLOUDFLARE_ALLOW_HTTP", "false")]).await;
    let line = the_refusal(&log, "CLOUDFLARE_API_URL");
    assert!(line.contains("CLOUDFLARE_ALLOW_HTTP"), "the way out is named: {line}");
    assert!(!log.contains(env.var("CLOUDFLARE_API_TOKEN")), "the token is never printed");
}
