//! Where the harness finds its inputs and keeps its outputs.
//!
//! Inputs downloaded by `scripts/setup.sh` live in `.cache/` (git-ignored); everything the
//! harness builds, and every console log, lives under `target/qemu-tests/` so that a test
//! failure leaves its artifacts next to the build.

use std::path::{Path, PathBuf};

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// Downloaded inputs (the Debian kernel), filled by `scripts/setup.sh`.
pub fn cache_dir() -> PathBuf {
    workspace_root().join(".cache")
}

/// Built images, stamps and console logs.
pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    dir.join("qemu-tests")
}

/// Where console logs of VM runs are kept (one file per run).
pub fn logs_dir() -> PathBuf {
    artifacts_dir().join("logs")
}

/// Where built disk images are kept (rebuilt only when their inputs change).
pub fn images_dir() -> PathBuf {
    artifacts_dir().join("images")
}
