//! Real GRUB 2 (BIOS) on the harness's images, without grub-install: a core image from
//! `grub-mkimage`, written into the MBR and embedding area by swapover's own `grub` crate,
//! and GRUB's modules copied next to the configuration.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Debian's grub-pc-bin files.
pub const GRUB_I386_PC: &str = "/usr/lib/grub/i386-pc";

pub fn boot_img_path() -> PathBuf {
    Path::new(GRUB_I386_PC).join("boot.img")
}

/// Builds a core image with `prefix` and `modules` and installs it as the disk's BIOS boot code.
pub fn install(disk: &Path, prefix: &str, modules: &[&str], work: &Path) -> Result<()> {
    let core = work.join("core.img");
    grub::bootcode::build_core_img(prefix, modules, &core).context("grub-mkimage")?;
    grub::bootcode::install_files(disk, &boot_img_path(), &core)
        .with_context(|| format!("installing GRUB boot code on {}", disk.display()))?;
    Ok(())
}

/// Copies GRUB's i386-pc modules (`*.mod`, `*.lst`) to `dst` as grub-install does.
pub fn copy_modules(dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(GRUB_I386_PC).with_context(|| format!("reading {GRUB_I386_PC}"))? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".mod") || name.ends_with(".lst") {
            std::fs::copy(entry.path(), dst.join(&*name))?;
        }
    }
    Ok(())
}
