//! Where the staging partition is on this boot. `stager stage` records it by identity
//! (disk identifier + start + size); status, abort and rollback resolve that to the
//! current device node through sysfs, because `/dev/sdX` names follow the kernel's probe
//! order and can differ from the boot that staged (a second disk probed first).

use crate::host::locate::{self, LocateError};
use crate::host::{swap_header, HostRoot};
use crate::stage::host_extras::Region;
use crate::state::StageState;

/// The staging partition as found now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentStaging {
    pub region: Region,
    /// False for a state file from before identities were recorded: the region is the
    /// recorded path, which may name another partition after a reboot (see [`holds_ours`]).
    pub by_identity: bool,
}

/// Resolves the recorded identity to today's device; a state file without one falls back
/// to its recorded path (with a warning), so that older stagings can still be undone.
pub fn locate(root: &HostRoot, state: &StageState) -> Result<CurrentStaging, LocateError> {
    let Some(identity) = &state.staging_partition else {
        log::warn!(
            "{} records the staging partition by path only ({}); using that path as recorded",
            crate::state::STATE_FILE,
            state.staging.host_path
        );
        return Ok(CurrentStaging { region: state.staging.clone(), by_identity: false });
    };
    let device = locate::find_partition(root, identity)?;
    let region = Region::of_partition(root, &device);
    if region.host_path != state.staging.host_path {
        log::info!(
            "the staging partition ({identity}) is {} on this boot (it was {} when staged)",
            region.host_path,
            state.staging.host_path
        );
    }
    Ok(CurrentStaging { region, by_identity: true })
}

/// Whether `region` visibly holds this staging: the staging ext4 (its UUID), the original
/// swap (its UUID), or exactly the saved swap page. Guards writes through a path-only
/// record, which after a reboot may name some other partition.
pub fn holds_ours(region: &Region, state: &StageState, saved_page: &[u8]) -> bool {
    if region.read_at(plan::Bytes(0), saved_page.len()).is_ok_and(|page| page == saved_page) {
        return true;
    }
    if crate::stage::host_extras::ext_fs_uuid(region)
        .is_ok_and(|uuid| uuid == state.staging_fs_uuid)
    {
        return true;
    }
    holds_swap(region, state)
}

/// Whether `region` starts with the original swap header (its UUID).
pub fn holds_swap(region: &Region, state: &StageState) -> bool {
    region
        .read_at(plan::Bytes(0), swap_header::X86_PAGE_SIZE.get() as usize)
        .ok()
        .and_then(|page| swap_header::parse(&page).ok())
        .is_some_and(|header| header.uuid == state.swap_uuid)
}
