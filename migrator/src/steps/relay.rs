//! The `relay` step: a migrator whose staging is gone (written over by the partition
//! written last) finishes from the relay that finalize left on resin-data
//! ([`super::relay_store`]).

use std::fs::OpenOptions;
use std::path::Path;

use super::boot_switch::BootSwitch;
use super::context::{flush_block_buffers, io_err, reread_partitions, StepError};
use super::relay_store::{self, Relay, RelayError};
use super::{final_table, written_last};
use crate::mounts::{FileSystems, KernelMounts, MountError};

/// Why a migrator whose staging is gone has no relay to finish from.
#[derive(Debug, thiserror::Error)]
pub enum RelayLookUpError {
    #[error("staging is not the staged file system and resin-data holds no relay of this plan; nothing to resume")]
    NoRelay,
    #[error("staging is not the staged file system and the relay cannot be read: {0}")]
    Mount(#[from] MountError),
    #[error("staging is not the staged file system and the relay cannot be read: {0}")]
    Relay(#[from] RelayError),
}

/// Staging is gone: the relay this plan left on resin-data, or why there is none to finish
/// from (nothing was written in this boot then).
pub fn look_up(fs: &mut KernelMounts, plan_id: &str) -> Result<Relay, RelayLookUpError> {
    let looked = fs
        .open_data_with(true)
        .map_err(RelayLookUpError::from)
        .and_then(|data| Ok(relay_store::read(&data, plan_id)?));
    if let Err(e) = fs.close_data() {
        log::warn!("relay: {e}");
    }
    looked?.ok_or(RelayLookUpError::NoRelay)
}

/// A migrator whose staging is gone (written over by the partition written last) finishes
/// from the relay on resin-data: that partition again, the head, on the U-Boot and Pi routes
/// (`switch`, [`BootSwitch::for_plan`]) the switch of `uEnv.txt` / `config.txt`, then the boot
/// option and the relay removed. Every part is idempotent.
pub fn finish_from_relay(
    disk_path: &Path,
    fs: &mut dyn FileSystems,
    efivars: &efivars::EfiVars,
    found: Relay,
    switch: Option<&BootSwitch>,
) -> Result<(), StepError> {
    let disk = OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk_path)
        .map_err(io_err("open", disk_path))?;
    log::info!(
        "relay: finishing plan {} from resin-data: {} again, then the head",
        found.manifest.plan_id,
        found.held.name
    );
    written_last::write(&disk, &found.held)?;
    final_table::commit_head(&disk, &found.head)?;
    flush_block_buffers(&disk);
    reread_partitions(&disk);
    if let Some(switch) = switch {
        super::finalize::switch_boot(fs, switch)?;
    }
    let data = fs.open_data()?;
    relay_store::complete(efivars, &data, found.manifest.permanent_boot.as_ref());
    fs.close_data()?;
    Ok(())
}
