//! What a `stage` or `abort` run sets up before it reads or changes anything: the host's run
//! lock ([`crate::run_lock`]), the log file that `stager status` names ([`crate::run_log`]),
//! the "started, not finished" record, and the signal handlers ([`crate::interrupt`]).

use crate::host::HostRoot;
use crate::interrupt::InstallError;
use crate::run_lock::{LockError, RunLock};
use crate::run_log::RunLogError;

/// Lives as long as the run: holds the lock.
#[derive(Debug)]
pub struct RunSession {
    root: HostRoot,
    command: &'static str,
    _lock: RunLock,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Lock(#[from] LockError),
    #[error("{0}; nothing was changed")]
    Log(#[from] RunLogError),
    #[error("{0}; nothing was changed")]
    Signals(#[from] InstallError),
}

impl RunSession {
    pub fn start(root: &HostRoot, command: &'static str) -> Result<RunSession, SessionError> {
        let lock = crate::run_lock::acquire(root, command)?;
        let (file, path) = crate::run_log::open(root, command)?;
        crate::console_log::tee_to(file, &path);
        crate::interrupt::install()?;
        crate::run_log::record_start(root, command);
        Ok(RunSession { root: root.clone(), command, _lock: lock })
    }

    /// Records how the run ended, for `stager status`.
    pub fn finish(&self, outcome: &str) {
        crate::run_log::record(&self.root, &format!("stager {}: {outcome}", self.command));
    }
}
