//! The test kernel: Debian's generic amd64 kernel, downloaded and unpacked (not installed)
//! into `.cache/kernel/` by `scripts/setup.sh`. Like on the real hosts, ext4, libata and the
//! SCSI disk driver are modules, so every image carries an initramfs that loads them.

use crate::paths;
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Modules a guest needs to see its IDE/SATA disk (and loop devices).
pub const DISK_MODULES: &[&str] = &["ata_piix", "ahci", "sd_mod", "loop"];
/// Modules a guest needs to mount ext4 and FAT (with its code pages), on any architecture.
pub const FS_MODULES: &[&str] =
    &["crc32c_generic", "ext4", "vfat", "nls_cp437", "nls_iso8859-1", "nls_ascii", "nls_utf8"];

#[derive(Debug, Clone)]
pub struct TestKernel {
    /// `uname -r` of the kernel, e.g. `6.1.0-56-amd64`.
    pub version: String,
    /// The unpacked package root (holds `boot/` and `lib/modules/`).
    pub root: PathBuf,
}

impl TestKernel {
    pub fn locate() -> Result<TestKernel> {
        let dir = paths::cache_dir().join("kernel");
        let version = std::fs::read_to_string(dir.join("VERSION"))
            .with_context(|| {
                format!("no test kernel in {}: run scripts/setup.sh first", dir.display())
            })?
            .trim()
            .to_string();
        Ok(TestKernel { version, root: dir.join("root") })
    }

    pub fn vmlinuz(&self) -> PathBuf {
        self.root.join("boot").join(format!("vmlinuz-{}", self.version))
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("boot").join(format!("config-{}", self.version))
    }

    pub fn module_tree(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.version)
    }
}
