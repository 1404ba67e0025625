//! Waits for the operating system to ask the worker to stop: the only module that touches OS
//! signals.
//!
//! Everything else receives shutdown as a [`CancellationToken`] (or a future) passed in, so tests
//! drive shutdown by cancelling a token instead of sending signals to the test process.
//! Kubernetes sends SIGTERM and waits `terminationGracePeriodSeconds` before SIGKILL; a terminal
//! sends SIGINT on Ctrl-C. Both start the same drain.

use tokio_util::sync::CancellationToken;

/// Completes on the first SIGTERM or SIGINT, logging which.
///
/// If a handler cannot be installed (which only happens when the process is out of resources),
/// the error is logged and that signal is not waited for; the other still is, and SIGKILL from
/// the orchestrator remains the backstop.
pub async fn signal() {
    let name = wait_for_signal().await;
    tracing::info!(signal = name, "shutdown requested: draining");
}

/// A token cancelled on the first SIGTERM or SIGINT.
///
/// Spawns the waiting task on the current Tokio runtime.
///
/// # Panics
///
/// When called outside a Tokio runtime, as `tokio::spawn` does.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        signal().await;
        cancel.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};

    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM; only SIGINT will drain");
                std::future::pending::<()>().await;
            }
        }
    };
    let interrupt = async {
        match signal(SignalKind::interrupt()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGINT; only SIGTERM will drain");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = terminate => "SIGTERM",
        () = interrupt => "SIGINT",
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::error!(%error, "cannot listen for Ctrl-C; the worker will not drain on request");
        std::future::pending::<()>().await;
    }
    "Ctrl-C"
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::signal::unix::SignalKind;

    /// Sends `signal` to this test process until `token` is cancelled: the waiting task may not
    /// have registered its listener when the first one arrives, and a listener only sees signals
    /// delivered after it was created.
    async fn signal_until_cancelled(signal_name: &str, token: &CancellationToken) {
        for _ in 0..100 {
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("kill -{signal_name} {}", std::process::id()))
                .status();
            assert!(
                matches!(status, Ok(s) if s.success()),
                "kill failed: {status:?}"
            );
            if tokio::time::timeout(Duration::from_millis(50), token.cancelled())
                .await
                .is_ok()
            {
                return;
            }
        }
        panic!("token not cancelled after 100 {signal_name} signals");
    }

    // Both signals in one test, and the process's own handlers registered first: once Tokio has
    // a handler for a signal it stays installed, so no later signal can kill the test binary.
    #[tokio::test]
    async fn sigterm_and_sigint_cancel_the_token() {
        let _keep_sigterm = tokio::signal::unix::signal(SignalKind::terminate());
        let _keep_sigint = tokio::signal::unix::signal(SignalKind::interrupt());

        let on_term = on_signal();
        assert!(!on_term.is_cancelled());
        signal_until_cancelled("TERM", &on_term).await;

        let on_int = on_signal();
        signal_until_cancelled("INT", &on_int).await;
    }
}
