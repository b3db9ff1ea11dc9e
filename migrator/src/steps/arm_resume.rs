//! The `arm-resume` step: check the staged image, then arm the way back into the migrator
//! after a power cut ([`super::uefi_resume`] on the UEFI route, [`super::uboot_resume`] on
//! the U-Boot route and [`super::pi_resume`] on the Raspberry Pi route (the commit of phase
//! B), [`super::bios_resume`] otherwise). Nothing before it is destructive.

use super::context::{flush_block_buffers, Context, StepError};
use super::{
    bios_resume, boot_image, flash_plan, pi_resume, staged_fs, uboot_resume, uefi_resume,
    written_last,
};

/// Check the staged image (its sha256, then the file systems restore and finalize will
/// open in it), then arm the way back into the migrator after a power cut: on
/// the UEFI route the firmware option this boot came from goes first in `BootOrder`;
/// otherwise the boot area is saved and the resume boot code installed.
pub fn step_arm_resume(ctx: &mut Context<'_>) -> Result<(), StepError> {
    flash_plan::check_staged_image(ctx.plan, &ctx.image_path())?;
    staged_fs::check(ctx.plan, &ctx.image_path())?;
    if uefi_resume::applies(ctx.plan) {
        if let Some((range, _)) = written_last::boot_range(ctx.plan)? {
            boot_image::check_old_boot(&ctx.open_disk()?, range)?;
        }
        uefi_resume::arm(&ctx.efivars, &ctx.staging_dir())?;
        return Ok(());
    }
    if uboot_resume::applies(ctx.plan) {
        // Phase B (contract §2.3): the trial's uEnv.txt becomes the committed one.
        let boot = ctx.fs.open_boot()?;
        let committed = uboot_resume::commit(&boot, ctx.plan);
        ctx.fs.close_boot()?;
        committed?;
        return Ok(());
    }
    if pi_resume::applies(ctx.plan) {
        // Phase B (contract §2.2, §2.4): p1's config.txt boots the migrator from now on.
        let boot = ctx.fs.open_boot()?;
        let committed = pi_resume::commit(&boot, &ctx.staging_root, ctx.plan);
        ctx.fs.close_boot()?;
        committed?;
        return Ok(());
    }
    let mut disk = ctx.open_disk()?;
    bios_resume::arm(&mut disk, &ctx.staging_dir())?;
    flush_block_buffers(&disk);
    Ok(())
}
