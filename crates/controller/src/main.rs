//! molecule-operator: reconciles Tenants and Workspaces onto EC2. Thin: flags, telemetry, run.

use std::process::ExitCode;

use clap::Parser;
use molecule_operator::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("molecule-operator {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Crds => match molecule_crds::crd::rendered() {
            Ok(files) => {
                for (_, text) in files {
                    print!("{text}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("molecule-operator: failed to render CRDs: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => {
            molecule_operator::telemetry::init(&args.log_format);
            match Box::pin(molecule_operator::run(*args)).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "operator stopped");
                    eprintln!("molecule-operator: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
