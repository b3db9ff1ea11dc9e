//! The `finalize` step: the final partition table and the image's head committed (the
//! disk boots resinOS from then on); with a partition written last, the relay first
//! ([`super::relay_store`]), then staging sealed and that partition written
//! ([`super::written_last`]).

use super::boot_switch::BootSwitch;
use super::context::{flush_block_buffers, reread_partitions, Context, StepError};
use super::flash_plan::FlashStepError;
use super::{final_table, relay_store, uefi_resume, written_last};
use crate::flash;
use crate::mounts::FileSystems;

/// Commit the image's head with the final table; the disk now boots resinOS. With a
/// partition written last (staging lies inside it), first the relay goes to resin-data,
/// then staging is sealed and the partition written; after the commit the firmware's
/// resume option and the relay are removed.
pub fn step_finalize(ctx: &mut Context<'_>) -> Result<(), StepError> {
    let mut disk = ctx.open_disk()?;
    let head = match ctx.written.take() {
        Some(written) => written.head.bytes().to_vec(),
        None => flash::decoded::read_head(&ctx.image_path()).map_err(FlashStepError::from)?,
    };
    let held = match written_last::held_range(ctx.plan)? {
        Some((range, name)) => {
            Some(written_last::collect(ctx.plan, &ctx.image_path(), range, &name)?)
        }
        None => None,
    };
    let staging_dir = ctx.staging_dir();
    let (_, head) = final_table::final_head(ctx.plan, &mut disk, &head, &staging_dir)?;
    let permanent_boot =
        if uefi_resume::applies(ctx.plan) { uefi_resume::saved(&staging_dir)? } else { None };
    if let Some(held) = &held {
        let data = ctx.fs.open_data()?;
        let written = relay_store::write(&data, &ctx.plan_id, held, &head, permanent_boot.as_ref());
        let closed = ctx.fs.close_data();
        written?;
        closed?;
        final_table::seal_and_write_last(&disk, held, &ctx.staging_root)?;
    }
    final_table::commit_head(&disk, &head)?;
    flush_block_buffers(&disk);
    reread_partitions(&disk);
    if let Some(switch) = BootSwitch::for_plan(ctx.plan) {
        switch_boot(ctx.fs, &switch)?;
    }
    if held.is_some() {
        // Staging is gone; the relay's owner is this run: complete it.
        let data = ctx.fs.open_data()?;
        relay_store::complete(&ctx.efivars, &data, permanent_boot.as_ref());
        ctx.fs.close_data()?;
    }
    Ok(())
}

/// The U-Boot and Pi routes' last write, after the head: the blobs, then `uEnv.txt` /
/// `config.txt` becomes the image's and `swapover/` goes
/// ([`BootSwitch::switch_to_new_system`]). Before it, with the relay still on resin-data, a
/// cut brings the migrator back to finish from the relay.
pub fn switch_boot(fs: &mut dyn FileSystems, switch: &BootSwitch) -> Result<(), StepError> {
    let boot = fs.open_boot()?;
    let switched = switch.switch_to_new_system(&boot);
    fs.close_boot()?;
    Ok(switched?)
}
