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

/// Settings of `molecule-operator run` (docs/operations.md lists them all).
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
    /// Instance profile of tenant VMs; without it no tenant is provisioned.
    #[arg(long, env = "EC2_TENANT_IAM_PROFILE")]
    pub tenant_instance_profile: Option<String>,
    /// Instance profile of workspace instances.
    #[arg(long, env = "EC2_WORKSPACE_IAM_PROFILE")]
    pub workspace_instance_profile: Option<String>,
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
    /// Instance profile of canary tenant VMs (default: EC2_TENANT_IAM_PROFILE's name).
    #[arg(long, env = "CANARY_TENANT_IAM_PROFILE")]
    pub canary_tenant_instance_profile: Option<String>,
    /// VPC of canary tenants.
    #[arg(long, env = "CANARY_VPC_ID")]
    pub canary_vpc_id: Option<String>,
    /// Subnet of canary tenants.
    #[arg(long, env = "CANARY_SUBNET_ID")]
    pub canary_subnet_id: Option<String>,
    /// S3 prefix for tenant backups (written into the bootstrap bundle).
    #[arg(long, env = "TENANT_BACKUP_S3_PREFIX")]
    pub tenant_backup_s3_prefix: Option<String>,
    /// Registry pull token for tenant images (written into the bootstrap bundle, never logged).
    #[arg(long, env = "GHCR_PULL_TOKEN", hide_env_values = true)]
    pub ghcr_pull_token: Option<String>,
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
    /// Cloudflare API token (never logged).
    #[arg(long, env = "CLOUDFLARE_API_TOKEN", hide_env_values = true)]
    pub cloudflare_api_token: Option<String>,
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

impl RunArgs {
    /// Checks the settings clap's types cannot: the first bad one, as one line naming it.
    pub fn validate(&self) -> Result<(), String> {
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

    use super::{Cli, Command, RunArgs};

    fn args(extra: &[&str]) -> RunArgs {
        let base =
            ["molecule-operator", "run", "--env", "dev", "--aws-region", "r", "--vpc-id", "v", "--subnet-id", "s"];
        let cli = Cli::try_parse_from(base.iter().chain(extra)).unwrap_or_else(|e| panic!("{e}"));
        match cli.command {
            Command::Run(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn zero_concurrency_is_refused_naming_the_setting() {
        let e = args(&["--concurrency", "0"]).validate().unwrap_err();
        assert!(e.contains("RECONCILE_CONCURRENCY") && !e.contains('\n'), "{e}");
        assert_eq!(args(&["--concurrency", "1"]).validate(), Ok(()));
    }

    #[test]
    fn cloudflare_over_http_needs_the_test_flag() {
        let http = ["--cloudflare-api-url", "http://127.0.0.1:9/client/v4", "--cloudflare-api-token", "t0ken"];
        let e = args(&http).validate().unwrap_err();
        assert!(e.contains("CLOUDFLARE_API_URL") && e.contains("CLOUDFLARE_ALLOW_HTTP") && !e.contains("t0ken"), "{e}");
        let allowed: Vec<&str> = http.iter().copied().chain(["--cloudflare-allow-http"]).collect();
        assert_eq!(args(&allowed).validate(), Ok(()));
        let ftp = ["--cloudflare-api-url", "ftp://x", "--cloudflare-api-token", "t", "--cloudflare-allow-http"];
        assert!(args(&ftp).validate().is_err());
        // The default URL, and no token (nothing to leak), pass.
        assert_eq!(args(&["--cloudflare-api-token", "t"]).validate(), Ok(()));
        assert_eq!(args(&["--cloudflare-api-url", "http://x"]).validate(), Ok(()));
    }
}
