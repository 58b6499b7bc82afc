//! Cancellation, as a CI system does it: SIGTERM (after SIGINT on some), or
//! Ctrl-C at a terminal. The first signal asks every command that writes or
//! waits to stop: the executor starts no new step and lets the calls in
//! flight finish (each bounded by its retries), waits end at once, and the
//! command records what it must (a release `interrupted`), releases the env
//! lock and exits 130 (SIGINT) or 143 (SIGTERM) with one line saying what
//! to run next. A second signal exits at once, lock or not.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// 0: nothing asked; otherwise the exit code the signal calls for.
static ASKED: AtomicU8 = AtomicU8::new(0);
/// Set once the command holds the env lock and stops cleanly; before that
/// (or in a command that only reads) a signal ends the process at once, as
/// it would without a handler.
static COOPERATIVE: AtomicBool = AtomicBool::new(false);
static NOTIFY: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// SIGINT's exit code (128 + 2).
pub const EXIT_SIGINT: u8 = 130;
/// SIGTERM's exit code (128 + 15).
pub const EXIT_SIGTERM: u8 = 143;

/// Listens for SIGINT and SIGTERM for the rest of the process (inside the
/// runtime). Without a handler a signal would kill scopectl mid-call, its
/// lock held.
pub fn install() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            let (code, name) = tokio::select! {
                _ = int.recv() => (EXIT_SIGINT, "SIGINT"),
                _ = term.recv() => (EXIT_SIGTERM, "SIGTERM"),
            };
            if !COOPERATIVE.load(Ordering::SeqCst) {
                std::process::exit(i32::from(code));
            }
            if ASKED.swap(code, Ordering::SeqCst) != 0 {
                eprintln!("scopectl: {name} again: stopping at once");
                std::process::exit(i32::from(code));
            }
            eprintln!(
                "scopectl: {name}: finishing the calls in flight, then stopping (send it again to stop at once)"
            );
            NOTIFY.notify_waiters();
        }
    });
}

/// From now on a signal asks the command to stop cleanly (it holds the
/// lock, and releases it on the way out).
pub fn cooperate() {
    COOPERATIVE.store(true, Ordering::SeqCst);
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    ASKED.load(Ordering::SeqCst) != 0
}

/// The exit code of the signal that asked (130 when none did).
pub fn code() -> u8 {
    match ASKED.load(Ordering::SeqCst) {
        0 => EXIT_SIGINT,
        c => c,
    }
}

/// The signal's name, for messages.
pub fn signal_name() -> &'static str {
    if code() == EXIT_SIGTERM {
        "SIGTERM"
    } else {
        "SIGINT"
    }
}

/// Resolves once a stop is asked for (at once if it was already).
pub async fn asked() {
    loop {
        let notified = NOTIFY.notified();
        if requested() {
            return;
        }
        notified.await;
    }
}

/// The error a command ends with when stopped: `done` says what was done,
/// `next` what to run.
pub fn interrupted(done: &str, next: &str) -> crate::error::UserError {
    crate::error::UserError {
        message: format!("stopped by {}: {done}", signal_name()),
        hint: Some(next.to_string()),
        code: code(),
    }
}

/// `wait` (a wait that only reads), ended at once by a stop.
pub async fn or_stopped<T>(
    wait: impl std::future::Future<Output = anyhow::Result<T>>,
    done: &str,
    next: &str,
) -> anyhow::Result<T> {
    tokio::select! {
        r = wait => r,
        _ = asked() => Err(interrupted(done, next).into()),
    }
}
