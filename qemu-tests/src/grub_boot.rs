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

/// The legacy BIOS GRUB core of a resinOS 2.x x86 image, built the way balena-intel's
/// `grub_%.bbappend` (`v2.12.7+rev1`) deploys it: `grub-mkimage -c config -p /grub` with
/// `biosdisk part_msdos fat search linux` built in, where `config` is
/// `set root=hd0,msdos1` + `set prefix=($root)/grub` (`recipes-bsp/grub/files/config`):
/// resin-boot must be partition 1 of the first BIOS disk. The same core serves the flasher's
/// own MBR and, copied by `resin-init-flasher-board`, the internal disk's.
pub fn build_resin_core_img(out: &Path, work: &Path) -> Result<()> {
    let config = work.join("grub-core-config");
    std::fs::write(&config, "set root=hd0,msdos1\nset prefix=($root)/grub\n")?;
    grub::bootcode::build_core_img_with_config(
        "/grub",
        &["biosdisk", "part_msdos", "fat", "search", "linux"],
        &config,
        out,
    )
    .context("grub-mkimage (resinOS legacy core.img)")?;
    Ok(())
}

/// Installs [`build_resin_core_img`]'s core with GRUB's boot.img as `disk`'s BIOS boot code.
pub fn install_resin_core(disk: &Path, work: &Path) -> Result<()> {
    let core = work.join("core.img");
    build_resin_core_img(&core, work)?;
    grub::bootcode::install_files(disk, &boot_img_path(), &core)
        .with_context(|| format!("installing GRUB boot code on {}", disk.display()))?;
    Ok(())
}
