//! SIGINT, SIGTERM and SIGHUP during `stage` and `abort` (an operator's Ctrl-C, a shutdown,
//! an SSH session that ends). Before the first change a signal ends the process as it always
//! did: nothing was changed. From the first change on (the critical section) a signal is only
//! noted here; staging checks for it between journal steps and inside long copies and turns
//! it into a rollback, and nothing interrupts a rollback — so a run ends fully staged and
//! armed (the signal came after the last step began) or fully rolled back, never in between.
//!
//! SIGPIPE stays ignored (Rust's runtime already does so): a closed pipe is a write error that
//! the log writers swallow ([`crate::console_log`]), not a death.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Test hook: `<point>=<SIGNAL>[,<point>=<SIGNAL>...]` raises SIGNAL (INT, TERM, HUP or
/// KILL, with or without the SIG prefix) in this process when staging reaches `point`:
/// `before:<step>` (before the step is journalled), `after:<step>` (once it is done),
/// `copy:<file name>` (after the first chunk of a file copied to staging), `rollback` (as a
/// rollback starts), `undo:<step>` (before that step is undone). Like `SWAPOVER_FAIL_AFTER`,
/// it proves what a real signal at that moment does.
pub const RAISE_AT_ENV: &str = "SWAPOVER_TEST_RAISE_AT";

static CRITICAL: AtomicBool = AtomicBool::new(false);
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The signals that end a session: Ctrl-C, a shutdown or `kill`, a hung-up terminal.
const HANDLED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// A signal arrived; staging stops at the next check and rolls back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted by {}", name(*.0))]
pub struct Interrupted(pub i32);

#[derive(Debug, thiserror::Error)]
#[error("cannot install the handler for {signal}: {source}; run the stager again")]
pub struct InstallError {
    signal: &'static str,
    source: std::io::Error,
}

extern "C" fn on_signal(signal: libc::c_int) {
    if CRITICAL.load(Ordering::SeqCst) {
        // The first signal is the one reported; later ones change nothing.
        let _ = RECEIVED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    } else {
        // Nothing was changed yet: end as the default action would.
        // SAFETY: signal(2) and raise(3) are async-signal-safe; the raised signal stays
        // blocked until this handler returns, then the default action ends the process.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
}

/// Installs the handlers (SA_RESTART, so no system call fails with EINTR because of them)
/// and keeps SIGPIPE ignored.
pub fn install() -> Result<(), InstallError> {
    for signal in HANDLED {
        // SAFETY: a zeroed sigaction is valid; the handler only touches atomics and calls
        // async-signal-safe functions.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(InstallError {
                signal: name(signal),
                source: std::io::Error::last_os_error(),
            });
        }
    }
    // SAFETY: setting a disposition to SIG_IGN has no other effect.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    Ok(())
}

/// From now on a signal is noted, not obeyed: the host is about to change.
pub fn enter_critical() {
    CRITICAL.store(true, Ordering::SeqCst);
}

/// Forgets a noted signal and leaves the critical section (tests that stage several times
/// in one process).
pub fn reset() {
    CRITICAL.store(false, Ordering::SeqCst);
    RECEIVED.store(0, Ordering::SeqCst);
}

/// The first signal noted in the critical section, if any.
pub fn received() -> Option<Interrupted> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(Interrupted(signal)),
    }
}

/// Err when a signal was noted: the caller stops and rolls back.
pub fn check() -> Result<(), Interrupted> {
    received().map_or(Ok(()), Err)
}

pub fn name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGKILL => "SIGKILL",
        _ => "a signal",
    }
}

fn parse_signal(text: &str) -> Option<i32> {
    match text.trim_start_matches("SIG") {
        "INT" => Some(libc::SIGINT),
        "TERM" => Some(libc::SIGTERM),
        "HUP" => Some(libc::SIGHUP),
        "KILL" => Some(libc::SIGKILL),
        _ => None,
    }
}

/// The test hook ([`RAISE_AT_ENV`]): raises the named signal when `point` is the one asked for.
pub fn test_point(point: &str) {
    let Ok(wanted) = std::env::var(RAISE_AT_ENV) else {
        return;
    };
    let signal = wanted
        .split(',')
        .filter_map(|spec| spec.split_once('='))
        .find(|(at, _)| *at == point)
        .and_then(|(_, signal)| parse_signal(signal));
    if let Some(signal) = signal {
        log::warn!("test hook {RAISE_AT_ENV}: raising {} at {point}", name(signal));
        // SAFETY: raise(3) delivers the signal to this thread before it returns.
        unsafe { libc::raise(signal) };
    }
}
