//! Errors of the host readers: each names the file and what to do about it.

use std::path::PathBuf;

/// A pure parser's complaint about its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct ParseError {
    pub line: usize,
    pub problem: String,
}

impl ParseError {
    pub fn new(line: usize, problem: impl Into<String>) -> Self {
        ParseError { line, problem: problem.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {path}: {source} (run the stager as root on the device itself)")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source} (the file is not in the format this Linux is expected to write)")]
    Parse { path: PathBuf, source: ParseError },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

/// The sysfs reader's errors keep the stager's wording: what could not be read (with the
/// advice to run as root), or which file holds what.
impl From<disk_layout::sysfs::SysfsError> for HostError {
    fn from(e: disk_layout::sysfs::SysfsError) -> Self {
        use disk_layout::sysfs::SysfsError;
        match e {
            SysfsError::Read { path, source } => HostError::Read { path, source },
            SysfsError::Invalid { path, problem } => {
                HostError::Invalid { path, problem: problem.to_string() }
            }
        }
    }
}
