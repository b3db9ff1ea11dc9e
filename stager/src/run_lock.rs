//! One `stage` or `abort` at a time on a host: an exclusive `flock` on [`LOCK_FILE`], taken
//! before anything is read or changed and held until the process ends. The kernel lets go of
//! it when the process dies, however it dies (SIGKILL, a crash), so a killed run never leaves
//! the host locked; the file keeps only the holder's pid and command, for the refusal line.

use crate::host::HostRoot;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

pub const LOCK_FILE: &str = "/var/lib/swapover/lock";

/// Held while it lives (and by the kernel until the process ends).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("refused: another stager run ({holder}) is staging or aborting on this host; wait for it to end (`stager status` shows what it did); nothing was changed")]
    Busy { holder: String },
    #[error("cannot lock {path}: {source}; check that /var/lib is writable", path = .path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

fn try_flock(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock(2) on a descriptor this File owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(error)
    }
}

fn open(root: &HostRoot) -> Result<File, LockError> {
    let path = root.path(LOCK_FILE);
    let io = |source| LockError::Io { path: root.path(LOCK_FILE), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)
}

fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    match text.trim() {
        "" => "one that has just started".to_string(),
        holder => holder.to_string(),
    }
}

/// Takes the lock for `command`, or says in one line who holds it.
pub fn acquire(root: &HostRoot, command: &str) -> Result<RunLock, LockError> {
    let mut file = open(root)?;
    let io = |source| LockError::Io { path: root.path(LOCK_FILE), source };
    if !try_flock(&file).map_err(io)? {
        return Err(LockError::Busy { holder: holder(&mut file) });
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    file.write_all(format!("pid {} ({command})\n", std::process::id()).as_bytes()).map_err(io)?;
    Ok(RunLock { _file: file })
}

/// Who holds the lock now, if a run does (for `stager status`; takes and drops it when free).
pub fn holder_now(root: &HostRoot) -> Option<String> {
    let path = root.path(LOCK_FILE);
    let mut file = OpenOptions::new().read(true).open(path).ok()?;
    match try_flock(&file) {
        Ok(false) => Some(holder(&mut file)),
        _ => None,
    }
}
