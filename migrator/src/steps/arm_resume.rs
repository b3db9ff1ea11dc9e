//! The `arm-resume` step: check the staged image, then arm the way back into the migrator
//! after a power cut ([`super::uefi_resume`] on the UEFI route, [`super::bios_resume`]
//! otherwise). Nothing before it is destructive.

use super::context::{flush_block_buffers, Context, StepError};
use super::{bios_resume, boot_image, flash_plan, staged_fs, uefi_resume, written_last};

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
    let mut disk = ctx.open_disk()?;
    bios_resume::arm(&mut disk, &ctx.staging_dir())?;
    flush_block_buffers(&disk);
    Ok(())
}
