//! Logging: text for humans, JSON for log pipelines; `RUST_LOG` filters.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call once per process.
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn,aws=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let result = if format == "json" { builder.json().try_init() } else { builder.compact().try_init() };
    if result.is_err() {
        eprintln!("molecule-operator: a log subscriber was already installed");
    }
}
