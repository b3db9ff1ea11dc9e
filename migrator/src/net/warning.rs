//! What the conversion could not carry over: a leaf every source reader reports into.

use std::fmt;
use std::path::{Path, PathBuf};

/// Something found that could not be carried over (or only partly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub source: PathBuf,
    pub message: String,
}

impl Warning {
    pub(crate) fn new(source: &Path, message: &str) -> Warning {
        Warning { source: source.to_path_buf(), message: message.to_string() }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source.display(), self.message)
    }
}
