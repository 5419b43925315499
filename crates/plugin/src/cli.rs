//! The command line (clap), shared by the binary and the completion generator.

use clap::{Args, Parser, Subcommand};

use crate::out::Format;

/// kubectl molecule: reach, watch and hand over molecule Workspaces.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-molecule",
    bin_name = "kubectl molecule",
    version,
    about = "Reach, watch and hand over molecule Workspaces (docs/plugin.md)"
)]
pub struct Cli {
    /// Namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Kubeconfig context to use (default: the current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments; help and usage say `kubectl molecule`, as users type it.
    /// Like kubectl, a usage error is one line on stderr and exit code 1 (help and version print
    /// as clap prints them).
    pub fn parse_args() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let exit = |e: clap::Error| -> ! {
            let Some(line) = usage_line(&e) else { e.exit() };
            eprintln!("error: {line}");
            std::process::exit(1)
        };
        let matches = Self::command().bin_name("kubectl molecule").try_get_matches().unwrap_or_else(|e| exit(e));
        Self::from_arg_matches(&matches).unwrap_or_else(|e| exit(e))
    }
}

/// A clap error on one line, with clap's tips and the command whose --help explains it; `None`
/// for help and version, which are not errors.
pub fn usage_line(e: &clap::Error) -> Option<String> {
    use clap::error::ErrorKind;
    let not_errors =
        [ErrorKind::DisplayHelp, ErrorKind::DisplayVersion, ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand];
    if not_errors.contains(&e.kind()) {
        return None;
    }
    let text = e.render().to_string();
    let mut parts = Vec::new();
    let mut help = "kubectl molecule".to_owned();
    for p in text.trim().split("\n\n") {
        if let Some(usage) = p.strip_prefix("Usage: ") {
            let words = usage.split_whitespace().take_while(|w| !w.starts_with(['[', '<', '-']));
            help = words.collect::<Vec<_>>().join(" ");
        } else if !p.starts_with("For more information") {
            parts.push(crate::error::one_line(p.strip_prefix("error: ").unwrap_or(p)));
        }
    }
    Some(format!("{} (see {help} --help)", parts.join("; ")))
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The desktop of a Workspace and its control lock.
    #[command(subcommand)]
    Display(DisplayCmd),
    /// Serial console output of a Workspace's instance (EC2 GetConsoleOutput, your AWS credentials).
    Console(Aws),
    /// SSH into a Workspace's instance through the EC2 Instance Connect endpoint.
    Ssh(Ssh),
    /// Hourly cost per Workspace (status.estimatedHourlyUsd) and summed per Tenant.
    Cost(Cost),
    /// A Tenant's erasure receipt: every resource with when its deletion was asked and confirmed.
    Receipt(ReceiptArgs),
    /// Orphan findings (cloud resources tagged as a Tenant's with no live owner).
    Orphans(OrphansArgs),
    /// Shell completion script: `source <(kubectl molecule completion bash)`.
    Completion {
        /// bash or zsh.
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// Shells with completion.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Shell {
    /// bash.
    Bash,
    /// zsh.
    Zsh,
}

/// `display ...`.
#[derive(Debug, Subcommand)]
pub enum DisplayCmd {
    /// Mode, status, resolution, protocol, controller, holder and expiry.
    Status {
        /// Workspace name.
        workspace: String,
    },
    /// Take the control lock (refused while someone else holds it, unless --force).
    Take(Take),
    /// Give the control lock back (only its holder, or --force).
    Release(Release),
    /// Take the lock, tunnel to the desktop through EC2 Instance Connect, release on exit.
    Open(Open),
}

/// Who is taking.
#[derive(Debug, Args)]
pub struct Who {
    /// Lock identity: user:<name>, agent:<id> or a bare name (= user:<name>). Default: user:<you>, the
    /// name the API server knows you by (kubectl auth whoami). This names the holder; it is not
    /// kubectl's impersonation.
    #[arg(long = "as")]
    pub as_: Option<String>,
}

/// `display take`.
#[derive(Debug, Args)]
pub struct Take {
    /// Workspace name.
    pub workspace: String,
    /// How long the hold lasts unless renewed (30m, 1h, 90s, 1h30m; at most 24h).
    #[arg(long = "for", default_value = "30m")]
    pub for_: String,
    /// Take it over from its holder (who is told through an Event). An agent never takes it from a user.
    #[arg(long)]
    pub force: bool,
    /// Keep renewing until Ctrl-C, then release.
    #[arg(long)]
    pub wait: bool,
    /// Identity.
    #[command(flatten)]
    pub who: Who,
}

/// `display release`.
#[derive(Debug, Args)]
pub struct Release {
    /// Workspace name.
    pub workspace: String,
    /// Release it even if someone else holds it (they are told through an Event).
    #[arg(long)]
    pub force: bool,
    /// Identity.
    #[command(flatten)]
    pub who: Who,
}

/// `display open`.
#[derive(Debug, Args)]
pub struct Open {
    /// Workspace name.
    pub workspace: String,
    /// Local port of the tunnel (default: the display's port, 6080 noVNC or 8443 DCV).
    #[arg(long)]
    pub local_port: Option<u16>,
    /// Take the lock over from its holder.
    #[arg(long)]
    pub force: bool,
    /// How long each hold lasts (at most 24h); it is renewed while the tunnel is open.
    #[arg(long = "for", default_value = "5m")]
    pub for_: String,
    /// Identity.
    #[command(flatten)]
    pub who: Who,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsOpts,
}

/// AWS options.
#[derive(Debug, Args)]
pub struct AwsOpts {
    /// AWS region (default: the Tenant's status.region, else your AWS configuration's).
    #[arg(long)]
    pub region: Option<String>,
    /// OS user to log in as (default: ubuntu, admin on Debian).
    #[arg(long)]
    pub os_user: Option<String>,
}

/// A command on one Workspace's instance.
#[derive(Debug, Args)]
pub struct Aws {
    /// Workspace name.
    pub workspace: String,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsOpts,
}

/// `ssh`.
#[derive(Debug, Args)]
pub struct Ssh {
    /// Workspace name.
    pub workspace: String,
    /// Only print the command.
    #[arg(long)]
    pub print: bool,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsOpts,
}

/// `cost`.
#[derive(Debug, Args)]
pub struct Cost {
    /// All namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only this Tenant's Workspaces (all namespaces unless -n).
    #[arg(long)]
    pub tenant: Option<String>,
}

/// `receipt`.
#[derive(Debug, Args)]
pub struct ReceiptArgs {
    /// Tenant slug.
    pub tenant: String,
    /// The operator's namespace, where receipts live.
    #[arg(long, env = "MOLECULE_OPERATOR_NAMESPACE", default_value = "molecule-system")]
    pub operator_namespace: String,
}

/// `orphans`.
#[derive(Debug, Args)]
pub struct OrphansArgs {
    /// Only this Tenant.
    #[arg(long)]
    pub tenant: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn line(args: &[&str]) -> Option<String> {
        let e = Cli::command().bin_name("kubectl molecule").try_get_matches_from(args).err()?;
        usage_line(&e)
    }

    #[test]
    fn usage_errors_are_one_line() {
        assert_eq!(
            line(&["kubectl-molecule", "display", "take"]).as_deref(),
            Some(
                "the following required arguments were not provided: <WORKSPACE> (see kubectl molecule display take --help)"
            )
        );
        let typo = line(&["kubectl-molecule", "displya"]).unwrap_or_default();
        assert!(
            typo.starts_with("unrecognized subcommand 'displya'; tip: a similar subcommand exists: 'display'"),
            "{typo}"
        );
        let bad = line(&["kubectl-molecule", "cost", "-o", "wide"]).unwrap_or_default();
        assert!(
            bad.contains("'wide'")
                && bad.contains("table, json, yaml")
                && bad.ends_with("(see kubectl molecule --help)"),
            "{bad}"
        );
        assert_eq!(line(&["kubectl-molecule", "--help"]), None, "help is no error");
        assert_eq!(line(&["kubectl-molecule"]), None, "no command: clap prints the help");
    }
}
