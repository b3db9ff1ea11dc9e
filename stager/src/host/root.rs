//! The directory that stands for `/`: the real root on a device, a fixture tree in tests.

use super::error::HostError;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot {
    root: PathBuf,
}

impl Default for HostRoot {
    fn default() -> Self {
        HostRoot { root: PathBuf::from("/") }
    }
}

impl HostRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HostRoot { root: root.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Where the host's absolute path `host_path` lives under this root.
    pub fn path(&self, host_path: impl AsRef<Path>) -> PathBuf {
        let host_path = host_path.as_ref();
        let relative = host_path.strip_prefix("/").unwrap_or(host_path);
        self.root.join(relative)
    }

    pub fn exists(&self, host_path: impl AsRef<Path>) -> bool {
        self.path(host_path).exists()
    }

    pub fn read_to_string(&self, host_path: impl AsRef<Path>) -> Result<String, HostError> {
        let path = self.path(host_path);
        std::fs::read_to_string(&path).map_err(|source| HostError::Read { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_host_paths_land_under_the_root() {
        let root = HostRoot::new("/tmp/fixture");
        assert_eq!(root.path("/etc/os-release"), PathBuf::from("/tmp/fixture/etc/os-release"));
        assert_eq!(HostRoot::default().path("/proc/swaps"), PathBuf::from("/proc/swaps"));
    }
}
