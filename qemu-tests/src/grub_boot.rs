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
    for entry in
        std::fs::read_dir(GRUB_I386_PC).with_context(|| format!("reading {GRUB_I386_PC}"))?
    {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".mod") || name.ends_with(".lst") {
            std::fs::copy(entry.path(), dst.join(&*name))?;
        }
    }
    Ok(())
}

/// Debian's grub-efi-amd64-bin files.
pub const GRUB_X86_64_EFI: &str = "/usr/lib/grub/x86_64-efi";

/// Builds a standalone GRUB EFI application (`BOOTX64.EFI`) with `modules` built in and the
/// prefix `prefix` on the partition it was loaded from (no module directory needed there).
pub fn build_efi_image(out: &Path, prefix: &str, modules: &[&str]) -> Result<()> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "-d".into(),
        GRUB_X86_64_EFI.into(),
        "-O".into(),
        "x86_64-efi".into(),
        "-p".into(),
        prefix.into(),
        "-o".into(),
        out.into(),
    ];
    args.extend(modules.iter().map(std::ffi::OsString::from));
    crate::tools::run("grub-mkimage", args)
        .context("grub-mkimage -O x86_64-efi (run scripts/setup.sh: package grub-efi-amd64-bin)")?;
    Ok(())
}
