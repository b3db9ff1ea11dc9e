//! Small busybox initramfs images for the guests the harness builds (the host's own initrd,
//! the resinOS stand-in's verdict init), made with swapover's own `initramfs` crate.

use crate::kernel::{TestKernel, DISK_MODULES, FS_MODULES};
use crate::rootfs::{busybox_applets, BUSYBOX};
use anyhow::{Context, Result};
use initramfs::{Compression, InitramfsBuilder};
use std::path::Path;

/// Writes an initramfs to `out`: busybox, the disk and file-system modules of `kernel`,
/// `init_script` as `/init`. Returns the archive size in bytes.
pub fn build_busybox_initramfs(out: &Path, kernel: &TestKernel, init_script: &[u8]) -> Result<u64> {
    build_busybox_initramfs_with(out, kernel, init_script, &[])
}

/// Like [`build_busybox_initramfs`], with `extra_modules` (and their dependencies) too.
pub fn build_busybox_initramfs_with(
    out: &Path,
    kernel: &TestKernel,
    init_script: &[u8],
    extra_modules: &[&str],
) -> Result<u64> {
    let report = InitramfsBuilder::new()
        .busybox(Path::new(BUSYBOX), busybox_applets()?)
        .modules(
            kernel.module_tree(),
            DISK_MODULES.iter().chain(FS_MODULES).chain(extra_modules).copied(),
        )
        .init(init_script.to_vec())
        .compression(Compression::Gzip)
        .write_to_path(out)
        .with_context(|| format!("building initramfs {}", out.display()))?;
    Ok(report.archive_bytes)
}
