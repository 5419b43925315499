//! Command line: every setting is a flag and an environment variable. Names of the old control
//! plane (AWS_REGION, EC2_VPC_ID, ...) are kept so its operators recognise them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// molecule-operator: agent workspaces and tenants on EC2, driven by Kubernetes objects.
#[derive(Debug, Parser)]
#[command(name = "molecule-operator", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Print the version.
    Version,
}

/// Settings of `molecule-operator run` (docs/operations.md lists them all). Its `Debug` is safe
/// to log: tokens are [`Secret`]s.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Operator id: the value of the moleculesai.app/managed-by tag on everything it creates.
    #[arg(long, env = "MOLECULE_OPERATOR_ID", default_value = "molecule-operator")]
    pub operator_id: String,
    /// Environment (dev, staging, prod): the moleculesai.app/env tag.
    #[arg(long, env = "MOLECULE_ENV", value_parser = ["dev", "staging", "prod"])]
    pub env: String,
    /// Namespace the operator runs in; tenant credentials and erasure receipts live there.
    #[arg(long, env = "OPERATOR_NAMESPACE", default_value = "molecule-system")]
    pub operator_namespace: String,
    /// AWS region of the main account.
    #[arg(long, env = "AWS_REGION")]
    pub aws_region: String,
    /// VPC of workspaces and tenant VMs.
    #[arg(long, env = "EC2_VPC_ID")]
    pub vpc_id: String,
    /// Subnet instances are launched in.
    #[arg(long, env = "EC2_SUBNET_ID")]
    pub subnet_id: String,
    /// Default AMI: (ubuntu, 24.04, x86_64, no GPU) unless the image catalog names one.
    #[arg(long, env = "EC2_AMI")]
    pub default_ami: Option<String>,
    /// Security group of the EC2 Instance Connect endpoint (SSH ingress source). Optional.
    #[arg(long, env = "EIC_ENDPOINT_SG_ID")]
    pub eic_endpoint_sg_id: Option<String>,
    /// Tenant VM instance type when a Tenant does not set one.
    #[arg(long, env = "EC2_INSTANCE_TYPE", default_value = "t3.small")]
    pub tenant_instance_type: String,
    /// IAM path of the per-tenant roles and instance profiles the operator creates (`/` first
    /// and last); the operator's own IAM policy is scoped to it.
    #[arg(long, env = "TENANT_IAM_PATH", default_value = "/molecule/", value_parser = iam_path)]
    pub tenant_iam_path: String,
    /// Permissions boundary (policy ARN) set on every per-tenant role, if any.
    #[arg(long, env = "TENANT_IAM_PERMISSIONS_BOUNDARY")]
    pub tenant_iam_permissions_boundary: Option<String>,
    /// Route 53 hosted zone of workspace hostnames.
    #[arg(long, env = "WORKSPACE_HOSTED_ZONE_ID")]
    pub workspace_zone_id: Option<String>,
    /// Domain of workspace hostnames (`<ws>.<tenant>.<domain>`).
    #[arg(long, env = "WORKSPACE_DOMAIN", default_value = "ws.internal")]
    pub workspace_domain: String,
    /// Base domain of tenant hostnames (`<slug>.<domain>`).
    #[arg(long, env = "TENANT_BASE_DOMAIN", default_value = "moleculesai.app")]
    pub tenant_base_domain: String,
    /// Tenant platform image.
    #[arg(long, env = "TENANT_IMAGE")]
    pub tenant_image: Option<String>,
    /// Tenant platform image for canary tenants.
    #[arg(long, env = "CANARY_TENANT_IMAGE")]
    pub canary_tenant_image: Option<String>,
    /// Role assumed to reach the canary account.
    #[arg(long, env = "CANARY_ROLE_ARN")]
    pub canary_role_arn: Option<String>,
    /// Region of canary tenants.
    #[arg(long, env = "CANARY_REGION")]
    pub canary_region: Option<String>,
    /// AMI of canary tenant VMs (the canary account has its own images).
    #[arg(long, env = "CANARY_EC2_AMI")]
    pub canary_ami: Option<String>,
    /// VPC of canary tenants.
    #[arg(long, env = "CANARY_VPC_ID")]
    pub canary_vpc_id: Option<String>,
    /// Subnet of canary tenants.
    #[arg(long, env = "CANARY_SUBNET_ID")]
    pub canary_subnet_id: Option<String>,
    /// S3 prefix for tenant backups (written into the bootstrap bundle).
    #[arg(long, env = "TENANT_BACKUP_S3_PREFIX")]
    pub tenant_backup_s3_prefix: Option<String>,
    /// Registry pull token for tenant images (written into the bootstrap bundle, never logged):
    /// from `GHCR_PULL_TOKEN` or `--ghcr-pull-token-file`, never from argv.
    #[arg(skip = Secret::from_env("GHCR_PULL_TOKEN"))]
    pub ghcr_pull_token: Option<Secret>,
    /// File holding the GHCR pull token (a mounted Secret); wins over GHCR_PULL_TOKEN.
    #[arg(long, env = "GHCR_PULL_TOKEN_FILE")]
    pub ghcr_pull_token_file: Option<PathBuf>,
    /// Refused: a token on the command line is visible in /proc/*/cmdline.
    #[arg(long = "ghcr-pull-token", hide = true, value_parser = RefuseToken { var: "GHCR_PULL_TOKEN", file_flag: "--ghcr-pull-token-file" })]
    pub ghcr_pull_token_flag: Option<String>,
    /// Control-plane URL tenants call home to.
    #[arg(long, env = "CP_BASE_URL")]
    pub cp_base_url: Option<String>,
    /// Cloudflare API base URL.
    #[arg(long, env = "CLOUDFLARE_API_URL", default_value = "https://api.cloudflare.com/client/v4")]
    pub cloudflare_api_url: String,
    /// Allow an `http://` CLOUDFLARE_API_URL (the API token then travels in clear). For a local
    /// test fake only; without it such a URL stops the operator at start.
    #[arg(long, env = "CLOUDFLARE_ALLOW_HTTP", default_value_t = false)]
    pub cloudflare_allow_http: bool,
    /// Cloudflare API token (never logged): from `CLOUDFLARE_API_TOKEN` or
    /// `--cloudflare-api-token-file`, never from argv.
    #[arg(skip = Secret::from_env("CLOUDFLARE_API_TOKEN"))]
    pub cloudflare_api_token: Option<Secret>,
    /// File holding the Cloudflare API token (a mounted Secret); wins over CLOUDFLARE_API_TOKEN.
    #[arg(long, env = "CLOUDFLARE_API_TOKEN_FILE")]
    pub cloudflare_api_token_file: Option<PathBuf>,
    /// Refused: a token on the command line is visible in /proc/*/cmdline.
    #[arg(long = "cloudflare-api-token", hide = true, value_parser = RefuseToken { var: "CLOUDFLARE_API_TOKEN", file_flag: "--cloudflare-api-token-file" })]
    pub cloudflare_api_token_flag: Option<String>,
    /// Cloudflare account of tenant tunnels.
    #[arg(long, env = "CLOUDFLARE_ACCOUNT_ID")]
    pub cloudflare_account_id: Option<String>,
    /// Cloudflare zone of tenant hostnames.
    #[arg(long, env = "CLOUDFLARE_ZONE_ID")]
    pub cloudflare_zone_id: Option<String>,
    /// Instance type catalog file (YAML); default: the built-in catalog.
    #[arg(long, env = "INSTANCE_TYPE_CATALOG_FILE")]
    pub instance_type_catalog_file: Option<PathBuf>,
    /// Image catalog file (YAML); default: only EC2_AMI.
    #[arg(long, env = "IMAGE_CATALOG_FILE")]
    pub image_catalog_file: Option<PathBuf>,
    /// Seconds between orphan scans.
    #[arg(long, env = "ORPHAN_SCAN_INTERVAL_SECONDS", default_value_t = 1800)]
    pub orphan_scan_interval_seconds: u64,
    /// What to do with orphans: report or reap.
    #[arg(long, env = "ORPHAN_POLICY", default_value = "report", value_parser = ["report", "reap"])]
    pub orphan_policy: String,
    /// Seconds an orphan must be old before `reap` deletes it.
    #[arg(long, env = "ORPHAN_GRACE_SECONDS", default_value_t = 3600)]
    pub orphan_grace_seconds: u64,
    /// Seconds a second live instance of a live owner must be old before the orphan scan reports
    /// it (a launch whose instance ID has not reached status yet is not a duplicate).
    #[arg(long, env = "ORPHAN_DUPLICATE_AGE_SECONDS", default_value_t = 300)]
    pub orphan_duplicate_age_seconds: u64,
    /// Seconds a delete may wait for AWS before a condition names the blocking resource.
    #[arg(long, env = "DEPROVISION_DEADLINE_SECONDS", default_value_t = 600)]
    pub deprovision_deadline_seconds: u64,
    /// Seconds after an erasure began (or a Workspace's launch, for its delete) that the listing
    /// confirming its instances gone must have started: EC2 listings lag new instances (2 min).
    #[arg(long, env = "ERASURE_LISTING_ALLOWANCE_SECONDS", default_value_t = 120)]
    pub erasure_listing_allowance_seconds: u64,
    /// Seconds a running instance may go without its bootstrap reporting (the
    /// `moleculesai.app/boot` tag) before it is BootTimedOut: relaunched once, then kept, failed.
    #[arg(long, env = "BOOT_DEADLINE_SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(10..))]
    pub boot_deadline_seconds: u64,
    /// Objects reconciled at once, per kind (at least 1).
    #[arg(long, env = "RECONCILE_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:8080")]
    pub metrics_addr: SocketAddr,
    /// Label selector of the Workspaces this operator reconciles (default: all). Shards a fleet
    /// across operators; each shard needs its own MOLECULE_OPERATOR_ID.
    #[arg(long, env = "WORKSPACE_SELECTOR")]
    pub workspace_selector: Option<String>,
    /// Label selector of the Tenants this operator reconciles and admits Workspaces against
    /// (default: all). Shard by tenant: the same split for Tenants and Workspaces.
    #[arg(long, env = "TENANT_SELECTOR")]
    pub tenant_selector: Option<String>,
    /// Seconds between full refreshes of the fleet cache (one paginated describe each of
    /// instances, security groups and volumes). Boot and display progress is seen this often.
    #[arg(long, env = "CLOUD_REFRESH_SECONDS", default_value_t = 15)]
    pub cloud_refresh_seconds: u64,
    /// SQS queue an EventBridge rule fills with the main account's EC2 state-change (and tag
    /// change) notifications: the fleet cache then lists only every CLOUD_RESYNC_SECONDS.
    #[arg(long, env = "EC2_EVENTS_QUEUE_URL")]
    pub ec2_events_queue_url: Option<String>,
    /// The same queue of the canary account.
    #[arg(long, env = "CANARY_EC2_EVENTS_QUEUE_URL")]
    pub canary_ec2_events_queue_url: Option<String>,
    /// Seconds between safety listings of an account whose EC2 notifications come from a queue
    /// (a lost notification is seen at the latest this long after).
    #[arg(long, env = "CLOUD_RESYNC_SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub cloud_resync_seconds: u64,
    /// Client-side limit of EC2 Describe calls per second (0: none).
    #[arg(long, env = "AWS_DESCRIBE_RATE", default_value_t = 20.0)]
    pub aws_describe_rate: f64,
    /// Client-side limit of mutating EC2 calls per second (0: none).
    #[arg(long, env = "AWS_MUTATE_RATE", default_value_t = 5.0)]
    pub aws_mutate_rate: f64,
    /// Client-side limit of RunInstances calls per second (0: none).
    #[arg(long, env = "AWS_LAUNCH_RATE", default_value_t = 2.0)]
    pub aws_launch_rate: f64,
    /// Client-side limit of TerminateInstances calls per second (0: none).
    #[arg(long, env = "AWS_TERMINATE_RATE", default_value_t = 20.0)]
    pub aws_terminate_rate: f64,
    /// Client-side limit of Route 53 calls per second (0: none).
    #[arg(long, env = "AWS_ROUTE53_RATE", default_value_t = 5.0)]
    pub aws_route53_rate: f64,
    /// Client-side limit of Secrets Manager calls per second (0: none).
    #[arg(long, env = "AWS_SECRETS_RATE", default_value_t = 20.0)]
    pub aws_secrets_rate: f64,
    /// Seconds to open a TCP/TLS connection to AWS or Cloudflare before the call fails as
    /// transient with code TimedOut.
    #[arg(long, env = "CLOUD_CONNECT_TIMEOUT_SECONDS", default_value_t = 5.0)]
    pub cloud_connect_timeout_seconds: f64,
    /// Seconds to wait for the first byte of an answer (per attempt).
    #[arg(long, env = "CLOUD_READ_TIMEOUT_SECONDS", default_value_t = 20.0)]
    pub cloud_read_timeout_seconds: f64,
    /// Seconds one cloud call may take in all, SDK retries included (the operation deadline).
    #[arg(long, env = "CLOUD_OPERATION_TIMEOUT_SECONDS", default_value_t = 30.0)]
    pub cloud_operation_timeout_seconds: f64,
    /// Test-only failpoints (comma-separated); honoured only with MOLECULE_ENV=dev.
    #[arg(long, env = "MOLECULE_FAILPOINTS", hide = true)]
    pub failpoints: Option<String>,
    /// Server-side-apply this binary's own CRDs at start (needs RBAC to create and patch them),
    /// so an upgrade of the operator upgrades its CRDs. Either way the installed CRDs must match
    /// this binary, or the operator stops with the command that fixes it.
    #[arg(long, env = "INSTALL_CRDS", default_value_t = false)]
    pub install_crds: bool,
    /// Take part in leader election (one active replica).
    #[arg(long, env = "LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,
    /// Log format: text or json.
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// A token: its `Debug` and `Display` print `<redacted>`, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The variable's value, if set and not empty.
    pub fn from_env(var: &str) -> Option<Self> {
        std::env::var(var).ok().filter(|v| !v.is_empty()).map(Self)
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A value parser that refuses any value without echoing it: the flag form of a token.
#[derive(Clone, Copy, Debug)]
struct RefuseToken {
    var: &'static str,
    file_flag: &'static str,
}

impl clap::builder::TypedValueParser for RefuseToken {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        _value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        let msg = format!(
            "tokens are not accepted on the command line (visible to every user in /proc/*/cmdline): set {} or {}\n",
            self.var, self.file_flag
        );
        Err(clap::Error::raw(clap::error::ErrorKind::ValueValidation, msg).with_cmd(cmd))
    }
}

/// An IAM path: `/` first and last, IAM's characters only (`/molecule/`, `/molecule/prod/`).
fn iam_path(text: &str) -> Result<String, String> {
    let ok = text.starts_with('/')
        && text.ends_with('/')
        && text.len() <= 512
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"/+=,.@_-".contains(&b));
    if ok { Ok(text.to_owned()) } else { Err(format!("{text:?} is not an IAM path: it starts and ends with '/'")) }
}

/// Reads a token file: its content without the trailing newline; empty is an error.
fn read_token(path: &std::path::Path, flag: &str) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(format!("{flag} {}: the file is empty", path.display()));
    }
    Ok(Secret::new(value))
}

impl RunArgs {
    /// Reads the token files (`--*-token-file`), which win over the environment variables.
    pub fn resolve_secrets(&mut self) -> Result<(), String> {
        if let Some(p) = &self.cloudflare_api_token_file {
            self.cloudflare_api_token = Some(read_token(p, "--cloudflare-api-token-file")?);
        }
        if let Some(p) = &self.ghcr_pull_token_file {
            self.ghcr_pull_token = Some(read_token(p, "--ghcr-pull-token-file")?);
        }
        Ok(())
    }

    /// The cloud call deadlines.
    pub fn deadlines(&self) -> crate::cloud::aws::Deadlines {
        let secs = |s: f64| std::time::Duration::from_secs_f64(s.max(0.1));
        crate::cloud::aws::Deadlines {
            connect: secs(self.cloud_connect_timeout_seconds),
            read: secs(self.cloud_read_timeout_seconds),
            operation: secs(self.cloud_operation_timeout_seconds),
        }
    }

    /// Checks the settings clap's types cannot: the first bad one, as one line naming it.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("CLOUD_CONNECT_TIMEOUT_SECONDS", self.cloud_connect_timeout_seconds),
            ("CLOUD_READ_TIMEOUT_SECONDS", self.cloud_read_timeout_seconds),
            ("CLOUD_OPERATION_TIMEOUT_SECONDS", self.cloud_operation_timeout_seconds),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name} must be a positive number of seconds, not {v}"));
            }
        }
        if self.concurrency == 0 {
            // kube's controller reads 0 as "no limit": never what a 0 in a config file meant.
            return Err("RECONCILE_CONCURRENCY (--concurrency) must be at least 1, not 0".into());
        }
        let url = self.cloudflare_api_url.to_ascii_lowercase();
        let http = url.starts_with("http://");
        if self.cloudflare_api_token.is_some() && !url.starts_with("https://") && !(http && self.cloudflare_allow_http)
        {
            let why = if http { "; CLOUDFLARE_ALLOW_HTTP=true allows http for a local test fake only" } else { "" };
            return Err(format!(
                "CLOUDFLARE_API_URL (--cloudflare-api-url) must be an https:// URL: the API token would travel in clear to {}{why}",
                self.cloudflare_api_url
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command, RunArgs, Secret};

    fn args(extra: &[&str]) -> RunArgs {
        let base =
            ["molecule-operator", "run", "--env", "dev", "--aws-region", "r", "--vpc-id", "v", "--subnet-id", "s"];
        let cli = Cli::try_parse_from(base.iter().chain(extra)).unwrap_or_else(|e| panic!("{e}"));
        match cli.command {
            Command::Run(a) => {
                // Settings the environment may carry (a sourced test world): not this test's.
                let mut a = *a;
                a.cloudflare_api_token = None;
                a.ghcr_pull_token = None;
                if !extra.contains(&"--cloudflare-allow-http") {
                    a.cloudflare_allow_http = false;
                }
                if !extra.contains(&"--cloudflare-api-url") {
                    "https://api.cloudflare.com/client/v4".clone_into(&mut a.cloudflare_api_url);
                }
                a
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn iam_paths_are_checked() {
        assert_eq!(super::iam_path("/molecule/"), Ok("/molecule/".to_owned()));
        assert_eq!(super::iam_path("/molecule/prod/"), Ok("/molecule/prod/".to_owned()));
        for bad in ["molecule/", "/molecule", "", "/a b/", "/a*/"] {
            assert!(super::iam_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn zero_concurrency_is_refused_naming_the_setting() {
        let e = args(&["--concurrency", "0"]).validate().unwrap_err();
        assert!(e.contains("RECONCILE_CONCURRENCY") && !e.contains('\n'), "{e}");
        assert_eq!(args(&["--concurrency", "1"]).validate(), Ok(()));
    }

    fn with_token(extra: &[&str], token: &str) -> RunArgs {
        let mut a = args(extra);
        a.cloudflare_api_token = Some(Secret::new(token));
        a
    }

    #[test]
    fn cloudflare_over_http_needs_the_test_flag() {
        let http = ["--cloudflare-api-url", "http://127.0.0.1:9/client/v4"];
        let e = with_token(&http, "t0ken").validate().unwrap_err();
        assert!(e.contains("CLOUDFLARE_API_URL") && e.contains("CLOUDFLARE_ALLOW_HTTP") && !e.contains("t0ken"), "{e}");
        let allowed: Vec<&str> = http.iter().copied().chain(["--cloudflare-allow-http"]).collect();
        assert_eq!(with_token(&allowed, "t").validate(), Ok(()));
        let ftp = ["--cloudflare-api-url", "ftp://x", "--cloudflare-allow-http"];
        assert!(with_token(&ftp, "t").validate().is_err());
        // The default URL, and no token (nothing to leak), pass.
        assert_eq!(with_token(&[], "t").validate(), Ok(()));
        assert_eq!(args(&["--cloudflare-api-url", "http://x"]).validate(), Ok(()));
    }

    #[test]
    fn debug_of_the_settings_shows_no_token() {
        let dir = std::env::temp_dir().join(format!("molecule-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ghcr = dir.join("ghcr");
        std::fs::write(&ghcr, "ghp_file_secret_4711\n").unwrap();
        let ghcr_arg = ghcr.display().to_string();
        let mut a = with_token(&["--ghcr-pull-token-file", &ghcr_arg], "cf_secret_0815");
        a.resolve_secrets().unwrap();
        assert_eq!(a.ghcr_pull_token.as_ref().map(Secret::expose), Some("ghp_file_secret_4711"));
        assert_eq!(a.cloudflare_api_token.as_ref().map(Secret::expose), Some("cf_secret_0815"));
        for text in [format!("{a:?}"), format!("{a:#?}"), format!("{:?}", Command::Run(Box::new(a.clone())))] {
            assert!(!text.contains("cf_secret_0815") && !text.contains("ghp_file_secret_4711"), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
        std::fs::write(&ghcr, "\n").unwrap();
        let e = args(&["--ghcr-pull-token-file", &ghcr_arg]).resolve_secrets().unwrap_err();
        assert!(e.contains("empty"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tokens_on_the_command_line_are_refused_naming_the_way_that_works() {
        let base =
            ["molecule-operator", "run", "--env", "dev", "--aws-region", "r", "--vpc-id", "v", "--subnet-id", "s"];
        for (flag, var) in
            [("--cloudflare-api-token", "CLOUDFLARE_API_TOKEN"), ("--ghcr-pull-token", "GHCR_PULL_TOKEN")]
        {
            let e = Cli::try_parse_from(base.iter().copied().chain([flag, "s3cr3t"])).unwrap_err().to_string();
            assert!(e.contains(var) && e.contains("-file") && !e.contains("s3cr3t"), "{e}");
        }
    }

    #[test]
    fn deadlines_must_be_positive() {
        let e = args(&["--cloud-operation-timeout-seconds", "0"]).validate().unwrap_err();
        assert!(e.contains("CLOUD_OPERATION_TIMEOUT_SECONDS"), "{e}");
        let d = args(&["--cloud-read-timeout-seconds", "2.5"]).deadlines();
        assert_eq!(d.read, std::time::Duration::from_millis(2500));
        assert_eq!(d.connect, std::time::Duration::from_secs(5));
    }

    #[test]
    fn the_events_queue_and_its_resync_are_settings() {
        let url = "https://sqs.us-east-1.amazonaws.com/123456789012/molecule-ec2-events";
        let a = args(&["--ec2-events-queue-url", url, "--cloud-resync-seconds", "900"]);
        assert_eq!((a.ec2_events_queue_url.as_deref(), a.cloud_resync_seconds), (Some(url), 900));
        let base =
            ["molecule-operator", "run", "--env", "dev", "--aws-region", "r", "--vpc-id", "v", "--subnet-id", "s"];
        let zero = Cli::try_parse_from(base.iter().chain(&["--cloud-resync-seconds", "0"]));
        assert!(zero.is_err_and(|e| e.to_string().contains("cloud-resync-seconds")));
    }
}
