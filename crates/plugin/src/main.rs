//! kubectl-molecule: see docs/plugin.md. Every error is one line on stderr and exit code 1.

use std::process::ExitCode;

use molecule_plugin::cli::Cli;
use molecule_plugin::commands;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // kubectl's plugin completion protocol (kubectl_complete-molecule calls `__complete`).
    if args.get(1).map(String::as_str) == Some("__complete") {
        print!("{}", molecule_plugin::complete::cobra(args.get(2..).unwrap_or_default()));
        return ExitCode::SUCCESS;
    }
    let cli = Cli::parse_args();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
