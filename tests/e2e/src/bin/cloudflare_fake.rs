//! `cloudflare-fake --listen 127.0.0.1:PORT --token T --account A --zone Z --zone-name NAME`:
//! see molecule_e2e::cloudflare.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let (Some(listen), Some(token), Some(account), Some(zone), Some(zone_name)) =
        (flag("--listen"), flag("--token"), flag("--account"), flag("--zone"), flag("--zone-name"))
    else {
        eprintln!("usage: cloudflare-fake --listen 127.0.0.1:PORT --token T --account A --zone Z --zone-name NAME");
        return ExitCode::from(2);
    };
    if !listen.starts_with("127.") {
        eprintln!("cloudflare-fake: refusing to listen on {listen}: loopback only");
        return ExitCode::from(2);
    }
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cloudflare-fake: failed to listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let app =
        molecule_e2e::cloudflare::router(molecule_e2e::cloudflare::FakeConfig { token, account, zone, zone_name });
    eprintln!("cloudflare-fake: listening on {listen}");
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cloudflare-fake: {e}");
            ExitCode::FAILURE
        }
    }
}
