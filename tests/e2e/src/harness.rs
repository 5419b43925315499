//! What the end-to-end scenarios share: the test world's settings, clients for the API server,
//! moto, the fault proxy and the Cloudflare fake, waiting with timeouts, and the operator process.
//!
//! Each scenario isolates itself with unique names (see [`unique`]), so scenarios run in any order
//! and in parallel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Harness failures; tests turn them into panics with context.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The test world is not up.
    #[error("the test world is not up ({0}): run `make testenv-up` first")]
    NotUp(String),
    /// A command failed to run.
    #[error("failed to run {cmd}: {source}")]
    Spawn {
        /// The command.
        cmd: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP call failed.
    #[error("failed to call {url}: {message}")]
    Http {
        /// URL.
        url: String,
        /// Cause.
        message: String,
    },
    /// Kubernetes client setup failed.
    #[error("failed to build a Kubernetes client: {0}")]
    Kube(String),
    /// A wait ran out of time.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
}

pub use crate::private_proxy::PrivateProxy;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A unique DNS-label-safe name with `prefix`, for test isolation.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", crate::ids::suffix(8))
}

/// The settings `testenv-up` wrote into tests/e2e/.testenv/env.
#[derive(Clone, Debug)]
pub struct TestEnv {
    vars: BTreeMap<String, String>,
}

impl TestEnv {
    /// Reads the env file (or `$TESTENV_STATE_DIR/env`).
    pub fn load() -> Result<Self, HarnessError> {
        let dir =
            std::env::var_os("TESTENV_STATE_DIR").map_or_else(|| repo_root().join("tests/e2e/.testenv"), PathBuf::from);
        let path = dir.join("env");
        let text =
            std::fs::read_to_string(&path).map_err(|e| HarnessError::NotUp(format!("{}: {e}", path.display())))?;
        Ok(Self { vars: parse_env(&text) })
    }

    /// One setting; empty when the env file lacks it.
    pub fn var(&self, key: &str) -> &str {
        self.vars.get(key).map_or("", String::as_str)
    }

    /// Every setting, for a child process's environment.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// `kubectl` with the admin kubeconfig.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<Output, HarnessError> {
        let mut cmd = Command::new("kubectl");
        cmd.args(args).env("KUBECONFIG", self.var("KUBECONFIG")).env("PATH", self.path());
        run(cmd, stdin)
    }

    /// PATH with the test world's tools first.
    pub fn path(&self) -> String {
        let base = std::env::var("PATH").unwrap_or_default();
        let ours = self.var("PATH").split(':').next().unwrap_or_default().to_owned();
        format!("{ours}:{base}")
    }

    /// An admin Kubernetes client.
    pub async fn kube(&self) -> Result<kube::Client, HarnessError> {
        let kc = kube::config::Kubeconfig::read_from(self.var("KUBECONFIG"))
            .map_err(|e| HarnessError::Kube(e.to_string()))?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| HarnessError::Kube(e.to_string()))?;
        kube::Client::try_from(cfg).map_err(|e| HarnessError::Kube(e.to_string()))
    }

    async fn aws_config(&self, endpoint: &str, max_attempts: u32) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(self.var("AWS_REGION").to_owned()))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("testenv", "testenv", None, None, "testenv"))
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(max_attempts))
            .load()
            .await
    }

    /// EC2 straight to moto: for inspecting state, not counted or faulted by the proxy.
    pub async fn ec2_direct(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.aws_config(self.var("TESTENV_MOTO_URL"), 3).await)
    }

    /// IAM straight at moto (main account): the per-tenant roles and instance profiles.
    pub async fn iam_direct(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.aws_config(self.var("TESTENV_MOTO_URL"), 3).await)
    }

    /// Route 53 straight at moto.
    pub async fn route53_direct(&self) -> aws_sdk_route53::Client {
        aws_sdk_route53::Client::new(&self.aws_config(self.var("TESTENV_MOTO_URL"), 3).await)
    }

    /// Secrets Manager straight at moto (main account).
    pub async fn secretsmanager_direct(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.aws_config(self.var("TESTENV_MOTO_URL"), 3).await)
    }

    /// The canary account, as the operator reaches it: STS AssumeRole on `CANARY_ROLE_ARN`, region
    /// `CANARY_REGION`, straight at moto.
    pub async fn canary_config(&self) -> Result<aws_config::SdkConfig, HarnessError> {
        let moto = self.var("TESTENV_MOTO_URL");
        let err = |message: String| HarnessError::Http { url: format!("{moto} sts:AssumeRole"), message };
        let sts = aws_sdk_sts::Client::new(&self.aws_config(moto, 3).await);
        let out = sts
            .assume_role()
            .role_arn(self.var("CANARY_ROLE_ARN"))
            .role_session_name("molecule-e2e")
            .send()
            .await
            .map_err(|e| err(format!("{e:?}")))?;
        let c = out.credentials().ok_or_else(|| err("no credentials in the answer".into()))?;
        let creds = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            None,
            "testenv-canary",
        );
        Ok(aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(self.var("CANARY_REGION").to_owned()))
            .endpoint_url(moto)
            .credentials_provider(creds)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
            .load()
            .await)
    }

    /// EC2 of the canary account (region `CANARY_REGION`) straight at moto.
    pub async fn ec2_canary_direct(&self) -> Result<aws_sdk_ec2::Client, HarnessError> {
        Ok(aws_sdk_ec2::Client::new(&self.canary_config().await?))
    }

    /// Secrets Manager of the canary account (region `CANARY_REGION`) straight at moto.
    pub async fn secretsmanager_canary_direct(&self) -> Result<aws_sdk_secretsmanager::Client, HarnessError> {
        Ok(aws_sdk_secretsmanager::Client::new(&self.canary_config().await?))
    }

    /// EC2 through the fault proxy, as the operator calls it, with `max_attempts` SDK attempts.
    pub async fn ec2_via_proxy(&self, max_attempts: u32) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.aws_config(self.var("AWS_ENDPOINT_URL"), max_attempts).await)
    }

    /// IDs of the instances (any state but terminated) carrying tag `key=value`.
    pub async fn instances_by_tag(&self, key: &str, value: &str) -> Result<Vec<String>, HarnessError> {
        let filter = |name: &str, values: &[&str]| {
            aws_sdk_ec2::types::Filter::builder()
                .name(name)
                .set_values(Some(values.iter().map(|v| (*v).to_owned()).collect()))
                .build()
        };
        let mut pages = self
            .ec2_direct()
            .await
            .describe_instances()
            .filters(filter(&format!("tag:{key}"), &[value]))
            .filters(filter("instance-state-name", &["pending", "running", "stopping", "stopped", "shutting-down"]))
            .into_paginator()
            .send();
        let mut ids = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| HarnessError::Http { url: "moto DescribeInstances".into(), message: format!("{e:?}") })?;
            for r in page.reservations() {
                ids.extend(r.instances().iter().filter_map(|i| i.instance_id().map(str::to_owned)));
            }
        }
        Ok(ids)
    }

    /// Everything the Cloudflare fake holds.
    pub async fn cloudflare_state(&self) -> Result<Value, HarnessError> {
        let base = self.var("CLOUDFLARE_API_URL").trim_end_matches("/client/v4").to_owned();
        http_json("GET", &format!("{base}/__state"), None, None).await.map(|(_, v)| v)
    }

    /// Calls the Cloudflare API of the fake with the test world's token.
    pub async fn cloudflare(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), HarnessError> {
        let url = format!("{}{path}", self.var("CLOUDFLARE_API_URL"));
        http_json(method, &url, body, Some(self.var("CLOUDFLARE_API_TOKEN"))).await
    }

    /// Adds fault rules (see molecule_e2e::faults::Rule for the fields).
    pub async fn add_faults(&self, rules: Value) -> Result<(), HarnessError> {
        let url = format!("{}/rules", self.var("TESTENV_FAULTS_URL"));
        expect_ok(http_json("POST", &url, Some(rules), None).await?, &url)
    }

    /// Removes every fault rule.
    pub async fn clear_faults(&self) -> Result<(), HarnessError> {
        let url = format!("{}/rules", self.var("TESTENV_FAULTS_URL"));
        expect_ok(http_json("DELETE", &url, None, None).await?, &url)
    }

    /// Calls seen by the proxy: `{"total": {"ec2.RunInstances": n, ...}, "faulted": {...}}`.
    pub async fn fault_counts(&self) -> Result<Value, HarnessError> {
        let url = format!("{}/counts", self.var("TESTENV_FAULTS_URL"));
        http_json("GET", &url, None, None).await.map(|(_, v)| v)
    }

    /// Starts the operator binary with the test world's environment plus `extra`.
    pub fn start_operator(&self, extra: &[(&str, &str)]) -> Result<OperatorProcess, HarnessError> {
        // MOLECULE_OPERATOR_BIN: another build of the binary (make image-smoke runs the image's).
        let bin = std::env::var_os("MOLECULE_OPERATOR_BIN")
            .map_or_else(|| repo_root().join("target/debug/molecule-operator"), PathBuf::from);
        let log_path = std::env::temp_dir().join(format!("{}.log", unique("molecule-operator")));
        let log = std::fs::File::create(&log_path)
            .map_err(|source| HarnessError::Spawn { cmd: log_path.display().to_string(), source })?;
        let log2 = log.try_clone().map_err(|source| HarnessError::Spawn { cmd: "log".into(), source })?;
        let mut cmd = Command::new(&bin);
        cmd.arg("run")
            .envs(self.vars.iter().filter(|(k, _)| k.as_str() != "PATH"))
            .env("KUBECONFIG", self.var("TESTENV_OPERATOR_KUBECONFIG"))
            // The Cloudflare fake speaks plain http on loopback (a test may override this).
            .env("CLOUDFLARE_ALLOW_HTTP", "true")
            // Every operator a test starts (scenarios, standbys, private proxies): no 2-minute
            // listing allowance after a launch or an erasure start (the shared world's listings do
            // not lag; a world whose listings lag passes a longer one in `extra`, as erasure_lag.rs).
            .env("ERASURE_LISTING_ALLOWANCE_SECONDS", "0")
            .envs(extra.iter().copied())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let child = cmd.spawn().map_err(|source| HarnessError::Spawn { cmd: bin.display().to_string(), source })?;
        Ok(OperatorProcess { child, log_path })
    }
}

/// A running operator process.
#[derive(Debug)]
pub struct OperatorProcess {
    child: Child,
    /// Its combined stdout and stderr.
    pub log_path: PathBuf,
}

impl OperatorProcess {
    /// SIGKILL, no goodbye: what a crash looks like.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`) with kill(1).
    pub fn signal(&self, signal: &str) -> Result<(), HarnessError> {
        let mut cmd = Command::new("kill");
        cmd.args([format!("-{signal}"), self.child.id().to_string()]);
        let out = run(cmd, None)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(HarnessError::Spawn {
                cmd: format!("kill -{signal} {}", self.child.id()),
                source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
            })
        }
    }

    /// The exit code once it has exited (`Some(-1)`: killed by a signal).
    pub fn exit_code(&mut self) -> Option<i32> {
        self.child.try_wait().ok().flatten().map(|s| s.code().unwrap_or(-1))
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn run(mut cmd: Command, stdin: Option<&str>) -> Result<Output, HarnessError> {
    use std::io::Write;
    let name = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| HarnessError::Spawn { cmd: name.clone(), source })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(|source| HarnessError::Spawn { cmd: name.clone(), source })?;
    }
    child.wait_with_output().map_err(|source| HarnessError::Spawn { cmd: name, source })
}

pub(crate) fn expect_ok((status, body): (u16, Value), url: &str) -> Result<(), HarnessError> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(HarnessError::Http { url: url.to_owned(), message: format!("HTTP {status}: {body}") })
    }
}

/// One JSON request over plain HTTP (the test world is loopback-only).
pub async fn http_json(
    method: &str,
    url: &str,
    body: Option<Value>,
    bearer: Option<&str>,
) -> Result<(u16, Value), HarnessError> {
    let err = |message: String| HarnessError::Http { url: url.to_owned(), message };
    let client: HttpClient<_, Full<Bytes>> = HttpClient::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder().method(method).uri(url).header("content-type", "application/json");
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let req = req.body(Full::new(Bytes::from(payload))).map_err(|e| err(e.to_string()))?;
    let resp = client.request(req).await.map_err(|e| err(e.to_string()))?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.map_err(|e| err(e.to_string()))?.to_bytes();
    // Plain-text answers (health endpoints) come back as a JSON string.
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Ok((status, v))
}

/// A GET or similar whose answer is text (Prometheus metrics).
pub async fn http_text(method: &str, url: &str) -> Result<(u16, String), HarnessError> {
    let (status, v) = http_json(method, url, None, None).await?;
    Ok((
        status,
        match v {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        },
    ))
}

/// GET `url`: its Content-Type and body.
pub async fn http_get_typed(url: &str) -> Result<(String, String), HarnessError> {
    let err = |message: String| HarnessError::Http { url: url.to_owned(), message };
    let client: HttpClient<_, Full<Bytes>> = HttpClient::builder(TokioExecutor::new()).build_http();
    let req = hyper::Request::builder().uri(url).body(Full::new(Bytes::new())).map_err(|e| err(e.to_string()))?;
    let resp = client.request(req).await.map_err(|e| err(e.to_string()))?;
    let content_type =
        resp.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let bytes = resp.into_body().collect().await.map_err(|e| err(e.to_string()))?.to_bytes();
    Ok((content_type, String::from_utf8_lossy(&bytes).into_owned()))
}

/// Polls `check` every 200 ms until it returns `Some`, or fails after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, HarnessError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            return Err(HarnessError::Timeout(timeout, what.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Parses `export K="V"` / `export K=V K2=V2` lines.
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("export ") else { continue };
        let mut rest = rest.trim();
        while let Some((key, after)) = rest.split_once('=') {
            let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
                quoted.split_once('"').unwrap_or((quoted, ""))
            } else {
                after.split_once(' ').unwrap_or((after, ""))
            };
            out.insert(key.trim().to_owned(), value.to_owned());
            rest = tail.trim();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_env_lines() {
        let m = super::parse_env("# c\nexport A=\"x y\"\nexport B=1 C=2\nexport PATH=\"/p:$PATH\"\n");
        assert_eq!(m.get("A").map(String::as_str), Some("x y"));
        assert_eq!(m.get("C").map(String::as_str), Some("2"));
        assert_eq!(m.get("PATH").map(String::as_str), Some("/p:$PATH"));
    }
}
