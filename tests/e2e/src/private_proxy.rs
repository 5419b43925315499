//! A fault proxy of the test's own (see [`PrivateProxy`]).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::harness::{HarnessError, TestEnv, expect_ok, http_json};

/// A fault proxy of the test's own, in front of moto, served by the test process: its rules,
/// counts and captured requests concern only the operators pointed at it
/// (`AWS_ENDPOINT_URL` = [`PrivateProxy::endpoint`]), so a latency rule hangs only them and their
/// calls are attributed exactly.
#[derive(Clone, Debug)]
pub struct PrivateProxy {
    /// The AWS endpoint URL to give an operator.
    pub endpoint: String,
}

impl PrivateProxy {
    /// Starts one on a free loopback port (needs a Tokio runtime that keeps running: a
    /// multi-threaded test runtime).
    pub async fn start(env: &TestEnv) -> Result<Self, HarnessError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| HarnessError::Spawn { cmd: "bind a private fault proxy".into(), source })?;
        let addr = listener.local_addr().map_err(|source| HarnessError::Spawn { cmd: "local_addr".into(), source })?;
        let upstream = env.var("TESTENV_MOTO_URL").to_owned();
        tokio::spawn(crate::faults::serve(listener, upstream, crate::faults::Proxy::default()));
        Ok(Self { endpoint: format!("http://{addr}") })
    }

    /// Adds fault rules (see crate::faults::Rule).
    pub async fn add_faults(&self, rules: Value) -> Result<(), HarnessError> {
        let url = format!("{}/__faults/rules", self.endpoint);
        expect_ok(http_json("POST", &url, Some(rules), None).await?, &url)
    }

    /// Removes every fault rule.
    pub async fn clear_faults(&self) -> Result<(), HarnessError> {
        let url = format!("{}/__faults/rules", self.endpoint);
        expect_ok(http_json("DELETE", &url, None, None).await?, &url)
    }

    /// Calls seen so far that change something (not Describe, List or Get, not STS), by
    /// `service.Operation`.
    pub async fn mutating_calls(&self) -> Result<BTreeMap<String, u64>, HarnessError> {
        let url = format!("{}/__faults/counts", self.endpoint);
        let (_, v) = http_json("GET", &url, None, None).await?;
        let total = v["total"].as_object().cloned().unwrap_or_default();
        Ok(total
            .into_iter()
            .filter(|(k, _)| {
                let (service, op) = k.split_once('.').unwrap_or(("", k.as_str()));
                service != "sts" && !["Describe", "List", "Get"].iter().any(|p| op.starts_with(p))
            })
            .map(|(k, n)| (k, n.as_u64().unwrap_or(0)))
            .collect())
    }
}
