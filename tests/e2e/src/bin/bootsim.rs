//! `bootsim --endpoint http://127.0.0.1:MOTO`: see molecule_e2e::bootsim.

use std::process::ExitCode;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(endpoint) = args.iter().position(|a| a == "--endpoint").and_then(|i| args.get(i + 1)).cloned() else {
        eprintln!("usage: bootsim --endpoint http://127.0.0.1:PORT");
        return ExitCode::from(2);
    };
    if !endpoint.starts_with("http://127.") {
        eprintln!("bootsim: refusing a non-loopback endpoint {endpoint}");
        return ExitCode::from(2);
    }
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(&endpoint).load().await;
    eprintln!("bootsim: tagging booted instances at {endpoint}");
    let (ec2, sts) = (aws_sdk_ec2::Client::new(&conf), aws_sdk_sts::Client::new(&conf));
    molecule_e2e::bootsim::run(ec2, sts, &endpoint, Duration::from_secs(1)).await;
    ExitCode::SUCCESS
}
