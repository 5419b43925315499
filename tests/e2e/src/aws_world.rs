//! A private copy of the test world's AWS side, for testing the AWS model on its own: moto started
//! by tests/e2e/testenv/moto_launcher.py (the same launcher and plugin up.sh uses) and the fault
//! proxy in front of it, in-process. Switching the model here cannot disturb the scenarios that
//! share the real test world.

use std::process::Stdio;
use std::time::Duration;

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use serde_json::Value;

use crate::faults::{Proxy, serve};
use crate::harness::{HarnessError, http_json, repo_root, wait_for};

/// moto with the AWS model loaded, behind a fault proxy, both on free loopback ports.
#[derive(Debug)]
pub struct PrivateAws {
    moto: tokio::process::Child,
    /// The proxy's address, as `AWS_ENDPOINT_URL`.
    pub endpoint: String,
    /// moto itself (ground truth: no listing lag).
    pub moto_url: String,
    /// The proxy's control API (`.../__faults`).
    pub faults_url: String,
    proxy: tokio::task::JoinHandle<()>,
}

/// The Python of the moto venv the test world uses (from tests/e2e/testenv/lib.sh).
fn moto_python() -> Result<String, HarnessError> {
    let lib = repo_root().join("tests/e2e/testenv/lib.sh");
    let script = format!("source '{}' && printf %s \"$MOTO_VENV/bin/python\"", lib.display());
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .map_err(|source| HarnessError::Spawn { cmd: "bash".into(), source })?;
    let python = String::from_utf8_lossy(&out.stdout).into_owned();
    if std::path::Path::new(&python).exists() {
        Ok(python)
    } else {
        Err(HarnessError::NotUp(format!("{python} missing: run tests/e2e/testenv/build-tools.sh (make tools)")))
    }
}

async fn loopback_listener() -> Result<tokio::net::TcpListener, HarnessError> {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|source| HarnessError::Spawn { cmd: "a loopback listener".into(), source })
}

impl PrivateAws {
    /// Starts moto with `MOLECULE_AWS_MODEL` set to `model` (unset when `None`) and the proxy.
    ///
    /// # Errors
    /// When moto's venv is missing or moto does not answer within 60 s.
    pub async fn start(model: Option<&str>) -> Result<Self, HarnessError> {
        let port = loopback_listener()
            .await?
            .local_addr()
            .map_err(|source| HarnessError::Spawn { cmd: "a free port".into(), source })?
            .port();
        let mut cmd = tokio::process::Command::new(moto_python()?);
        cmd.arg(repo_root().join("tests/e2e/testenv/moto_launcher.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env_remove("MOLECULE_AWS_MODEL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(m) = model {
            cmd.env("MOLECULE_AWS_MODEL", m);
        }
        let moto = cmd.spawn().map_err(|source| HarnessError::Spawn { cmd: "moto_launcher.py".into(), source })?;
        let listener = loopback_listener().await?;
        let addr = listener.local_addr().map_err(|source| HarnessError::Spawn { cmd: "proxy".into(), source })?;
        let upstream = format!("http://127.0.0.1:{port}");
        let proxy = tokio::spawn(async move {
            let _ = serve(listener, upstream, Proxy::default()).await;
        });
        let world = Self {
            moto,
            endpoint: format!("http://{addr}"),
            moto_url: format!("http://127.0.0.1:{port}"),
            faults_url: format!("http://{addr}/__faults"),
            proxy,
        };
        let url = format!("{}/model", world.faults_url);
        wait_for("moto with the AWS model", Duration::from_mins(1), || async {
            http_json("GET", &url, None, None).await.ok().filter(|(s, _)| *s == 200)
        })
        .await?;
        Ok(world)
    }

    /// The model's configuration, through the proxy's control API.
    ///
    /// # Errors
    /// When the proxy does not answer.
    pub async fn model(&self) -> Result<Value, HarnessError> {
        Ok(http_json("GET", &format!("{}/model", self.faults_url), None, None).await?.1)
    }

    /// Merges `update` into the model's configuration: the HTTP status and the answer.
    ///
    /// # Errors
    /// When the proxy does not answer.
    pub async fn set_model(&self, update: Value) -> Result<(u16, Value), HarnessError> {
        http_json("POST", &format!("{}/model", self.faults_url), Some(update), None).await
    }

    /// An EC2 client through the proxy: one attempt, and `attempt_timeout` per attempt if given.
    pub fn ec2(&self, attempt_timeout: Option<Duration>) -> aws_sdk_ec2::Client {
        Self::client(&self.endpoint, attempt_timeout)
    }

    /// An EC2 client straight to moto, as the harness inspects the world.
    pub fn ec2_direct(&self) -> aws_sdk_ec2::Client {
        Self::client(&self.moto_url, None)
    }

    fn client(endpoint: &str, attempt_timeout: Option<Duration>) -> aws_sdk_ec2::Client {
        let mut timeouts = aws_sdk_ec2::config::timeout::TimeoutConfig::builder();
        if let Some(t) = attempt_timeout {
            timeouts = timeouts.operation_attempt_timeout(t);
        }
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("testenv", "testenv", None, None, "testenv"))
            .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
            .timeout_config(timeouts.build())
            .build();
        aws_sdk_ec2::Client::from_conf(config)
    }
}

impl Drop for PrivateAws {
    fn drop(&mut self) {
        self.proxy.abort();
        let _ = self.moto.start_kill();
    }
}
