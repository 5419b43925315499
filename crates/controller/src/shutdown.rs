//! Stopping: SIGINT or SIGTERM start a graceful shutdown, and the shutdown is bounded: reconciles
//! in flight get [`GRACE`], then the leader Lease is released ([`crate::leader::release`]: the
//! fence closes, the holder is cleared) so the next replica leads at once.

use std::time::Duration;

/// How long reconciles in flight may run on after SIGTERM (well inside Kubernetes' default 30 s
/// termination grace period).
pub const GRACE: Duration = Duration::from_secs(10);

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Runs `controllers` until they finish after `shutdown`, or until [`GRACE`] after it, then
/// releases the leader Lease if this process holds it.
///
/// Caveat: kube-runtime's controller waits for its store before it runs, and a store still filling
/// when SIGTERM came (the shared Tenant store) held the process forever. A reconcile cut short is
/// safe: every protocol is built to survive kill -9.
pub async fn bounded(controllers: impl Future<Output = ()>, shutdown: impl Future<Output = ()>) {
    let grace = async {
        shutdown.await;
        tokio::time::sleep(GRACE).await;
    };
    tokio::select! {
        () = controllers => tracing::info!("shutting down"),
        () = grace => tracing::warn!(grace = ?GRACE, "shutting down: reconciles still running after the grace period were cut short"),
    }
    crate::leader::release().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_controller_that_never_finishes_is_cut_short_after_the_grace() {
        let started = tokio::time::Instant::now();
        bounded(std::future::pending::<()>(), std::future::ready(())).await;
        assert_eq!(started.elapsed(), GRACE);
    }

    #[tokio::test(start_paused = true)]
    async fn controllers_that_finish_return_at_once() {
        let started = tokio::time::Instant::now();
        bounded(std::future::ready(()), std::future::pending::<()>()).await;
        assert!(started.elapsed() < Duration::from_millis(1));
    }
}
