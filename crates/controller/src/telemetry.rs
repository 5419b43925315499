//! Logging: text for humans, JSON for log pipelines; `RUST_LOG` filters.
//!
//! The SDK and HTTP crates log request and response bodies, headers and signing material at
//! debug and trace (a CreateSecret body is a secret value), so they are pinned to `warn` whatever
//! `RUST_LOG` says: see [`PINNED`].

use tracing::Level;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Crates (first segment of a log target) whose debug and trace output is never shown. The AWS
/// SDK crates (`aws_smithy_*`, `aws_sdk_*`) are matched by prefix.
pub const PINNED: [&str; 14] = [
    "aws_config",
    "aws_credential_types",
    "aws_runtime",
    "aws_sigv4",
    "aws_types",
    "hyper",
    "hyper_util",
    "hyper_rustls",
    "reqwest",
    "rustls",
    "h2",
    "tower",
    "tower_http",
    "kube_client",
];

/// Whether an event or span of `target` at `level` may be shown at all.
pub fn allowed(target: &str, level: Level) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    let pinned = PINNED.contains(&krate) || krate.starts_with("aws_smithy_") || krate.starts_with("aws_sdk_");
    !pinned || level <= Level::WARN
}

/// Installs the global subscriber. Safe to call once per process.
pub fn init(format: &str) {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn,aws=warn"));
    let filter = env.and(filter_fn(|m| allowed(m.target(), *m.level())));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let layer = if format == "json" { fmt.json().boxed() } else { fmt.compact().boxed() };
    if tracing_subscriber::registry().with(layer.with_filter(filter)).try_init().is_err() {
        eprintln!("molecule-operator: a log subscriber was already installed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_and_http_crates_never_log_below_warn() {
        for t in ["aws_smithy_runtime::client::orchestrator", "aws_sdk_secretsmanager", "hyper_util::client", "rustls"]
        {
            assert!(!allowed(t, Level::TRACE) && !allowed(t, Level::DEBUG) && !allowed(t, Level::INFO), "{t}");
            assert!(allowed(t, Level::WARN) && allowed(t, Level::ERROR), "{t}");
        }
        assert!(allowed("molecule_operator::reconcile", Level::TRACE));
        assert!(allowed("hyperion", Level::TRACE), "a crate merely starting with a pinned name");
    }
}
