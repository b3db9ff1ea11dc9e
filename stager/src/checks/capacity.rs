//! Checks that compare sizes: staging space, memory, the room for the new layout.

use super::{Check, CheckId};
use crate::host::HostFacts;
use plan::Bytes;

pub fn swap_size(facts: &HostFacts, needed: Option<Bytes>) -> Check {
    let id = CheckId::SwapSize;
    let device = match &facts.swap_device {
        Ok(device) => device,
        Err(error) => {
            return Check::fail(
                id,
                error.clone(),
                "there is no swap partition to stage on",
                "see swap-partition",
            )
        }
    };
    let size = device.size.bytes();
    let found = format!("{} is {}", device.dev_path(), size.rounded());
    match needed {
        None => Check::not_evaluated(
            id,
            found,
            "the staging size",
            "pass --profile and --image (or --swap-needed)",
        ),
        Some(needed) if size >= needed => {
            Check::pass(id, found, format!("staging needs {}", needed.rounded()))
        }
        Some(needed) => Check::fail(
            id,
            found,
            format!(
                "staging needs {} (kernel, initramfs, image, backup and margin)",
                needed.rounded()
            ),
            format!(
                "grow the swap partition by {}, or back up less",
                needed.saturating_sub(size).rounded()
            ),
        ),
    }
}

pub fn memory_without_swap(facts: &HostFacts, min: Option<Bytes>) -> Check {
    let id = CheckId::MemoryWithoutSwap;
    let memory = match &facts.memory {
        Ok(memory) => memory,
        Err(error) => {
            return Check::fail(
                id,
                error.clone(),
                "memory use cannot be read",
                "run with /proc mounted",
            )
        }
    };
    let left = memory.available_without_swap();
    let found = format!(
        "{} available{} - {} swap in use = {}",
        memory.available.rounded(),
        if memory.available_is_estimate { " (estimated, no MemAvailable)" } else { "" },
        memory.swap_used().rounded(),
        left.rounded()
    );
    match min {
        None => Check::not_evaluated(
            id,
            found,
            "the profile's memory minimum",
            "pass --profile (or --min-memory)",
        ),
        Some(min) if left >= min => Check::pass(
            id,
            found,
            format!("at least {} stays free once swap is off", min.rounded()),
        ),
        Some(min) => Check::fail(
            id,
            found,
            format!("turning swap off would leave less than the {} needed", min.rounded()),
            "stop services or reboot to empty swap, then check again",
        ),
    }
}

/// The host's MemTotal against the profile's `requirements.min_ram_mib`: the board the
/// profile describes needs that much RAM to run resinOS, whatever is free right now.
pub fn profile_memory(facts: &HostFacts, profile: &str, min_ram_mib: u64) -> Check {
    let id = CheckId::ProfileMemory;
    let min = Bytes(min_ram_mib.saturating_mul(1024 * 1024));
    let total = match &facts.memory {
        Ok(memory) => memory.total,
        Err(error) => {
            return Check::fail(
                id,
                error.clone(),
                "the host's memory size cannot be read",
                "run with /proc mounted",
            )
        }
    };
    let found = format!("MemTotal is {} ({} kB)", total.rounded(), total.get() / 1024);
    if total >= min {
        return Check::pass(
            id,
            found,
            format!("profile {profile} requires at least {}", min.rounded()),
        );
    }
    Check::fail(
        id,
        found,
        format!(
            "profile {profile} requires at least {} of RAM (requirements.min_ram_mib = {min_ram_mib})",
            min.rounded()
        ),
        format!(
            "migrate a device with at least {} of RAM, or use the profile made for this board",
            min.rounded()
        ),
    )
}

pub fn root_space(facts: &HostFacts, target: Option<Bytes>) -> Check {
    let id = CheckId::RootSpace;
    let (device, disk) = match (&facts.root_device, &facts.root_disk) {
        (Ok(device), Ok(disk)) => (device, disk),
        (Err(error), _) | (_, Err(error)) => {
            return Check::fail(
                id,
                error.clone(),
                "the root partition must be found first",
                "see root-partition",
            )
        }
    };
    let start = device.start.map(|s| s.bytes()).unwrap_or_default();
    let Some(entry) = disk.table.find_by_start(start) else {
        return Check::fail(
            id,
            format!("{} has no entry at byte {}", disk.path, start.get()),
            "the root partition must be in the disk's table",
            "see root-partition",
        );
    };
    let space = entry.end();
    let found = format!(
        "{} from the start of {} to the end of {}",
        space.rounded(),
        disk.path,
        device.dev_path()
    );
    match target {
        None => Check::not_evaluated(
            id,
            found,
            "the target layout size",
            "pass --profile and --image (or --target-size)",
        ),
        Some(target) if space >= target => {
            Check::pass(id, found, format!("the new layout needs {}", target.rounded()))
        }
        Some(target) => Check::fail(
            id,
            found,
            format!(
                "the new layout needs {}, {} more than there is",
                target.rounded(),
                target.saturating_sub(space).rounded()
            ),
            "use a device whose root partition is larger, or an image with a smaller layout",
        ),
    }
}
