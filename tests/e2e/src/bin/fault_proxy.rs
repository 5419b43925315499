//! `fault-proxy --listen 127.0.0.1:PORT --upstream http://127.0.0.1:MOTO`: see molecule_e2e::faults.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let (Some(listen), Some(upstream)) = (flag("--listen"), flag("--upstream")) else {
        eprintln!("usage: fault-proxy --listen 127.0.0.1:PORT --upstream http://127.0.0.1:PORT");
        return ExitCode::from(2);
    };
    if !listen.starts_with("127.") {
        eprintln!("fault-proxy: refusing to listen on {listen}: loopback only");
        return ExitCode::from(2);
    }
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fault-proxy: failed to listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("fault-proxy: {listen} -> {upstream}");
    match molecule_e2e::faults::serve(listener, upstream, molecule_e2e::faults::Proxy::default()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fault-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
