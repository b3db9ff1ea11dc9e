//! Where each `stage` and `abort` run leaves its trace on the host: every log line in
//! [`LOG_FILE`] (appended; the previous file kept as `.1` once it passes [`ROTATE_AT`]) and a
//! one-line outcome in [`LAST_RUN`], written when the run starts ("started, not finished")
//! and replaced when it ends, so that after a power cut or a SIGKILL `stager status` can say
//! that the last run never finished.

use crate::host::HostRoot;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;

pub const LOG_FILE: &str = "/var/lib/swapover/stager.log";
pub const LAST_RUN: &str = "/var/lib/swapover/last-run";
/// Size past which the log file is moved to `stager.log.1` when a run starts.
pub const ROTATE_AT: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {path}: {source}; check that /var/lib is writable", path = .path.display())]
pub struct RunLogError {
    action: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

fn seconds_since_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Opens the log file for appending (rotating a large one) and writes the run's header line.
pub fn open(root: &HostRoot, command: &str) -> Result<(File, PathBuf), RunLogError> {
    let path = root.path(LOG_FILE);
    let io = |action| move |source| RunLogError { action, path: root.path(LOG_FILE), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create the directory of"))?;
    }
    if std::fs::metadata(&path).is_ok_and(|m| m.len() > ROTATE_AT) {
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        std::fs::rename(&path, old).map_err(io("rotate"))?;
    }
    let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(io("open"))?;
    let header = format!(
        "=== stager {command} (version {}, pid {}) started at {} s since the epoch ===\n",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        seconds_since_epoch()
    );
    std::io::Write::write_all(&mut file, header.as_bytes()).map_err(io("write"))?;
    Ok((file, path))
}

/// Records the outcome of the run (one line) for `stager status`; a failure is only logged.
pub fn record(root: &HostRoot, outcome: &str) {
    let line = format!("{} {outcome}\n", seconds_since_epoch());
    if let Err(e) = crate::state::write_durably(&root.path(LAST_RUN), line.as_bytes()) {
        log::warn!("cannot record the outcome in {LAST_RUN}: {e}");
    }
}

/// Records that a run started; replaced by [`record`] when it ends.
pub fn record_start(root: &HostRoot, command: &str) {
    record(
        root,
        &format!(
            "stager {command} (pid {}) started and did not finish: it was killed or the power was cut",
            std::process::id()
        ),
    );
}

/// The last run's outcome line (without its time stamp), if one was recorded.
pub fn last(root: &HostRoot) -> Option<String> {
    let text = std::fs::read_to_string(root.path(LAST_RUN)).ok()?;
    let line = text.lines().next()?;
    Some(line.split_once(' ').map_or(line, |(_, rest)| rest).to_string())
}
