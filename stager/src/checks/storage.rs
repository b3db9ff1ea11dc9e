//! Checks of where root, /boot and swap live.

use super::{Check, CheckId};
use crate::host::block::{BlockDevice, BlockKind};
use crate::host::fstab::{self, FsSpec};
use crate::host::HostFacts;

fn describe(device: &BlockDevice) -> String {
    match (&device.parent_disk, device.partition_number) {
        (Some(disk), Some(number)) => {
            format!("{} (partition {number} of /dev/{disk})", device.dev_path())
        }
        _ => format!("{} ({})", device.dev_path(), device.kind),
    }
}

pub fn root_partition(facts: &HostFacts) -> Check {
    let id = CheckId::RootPartition;
    let device = match &facts.root_device {
        Ok(device) => device,
        Err(error) => {
            return Check::fail(
                id,
                error.clone(),
                "the device under / cannot be found",
                "run the stager as root on the device itself, with /proc and /sys mounted",
            )
        }
    };
    if device.kind != BlockKind::Partition {
        return Check::fail(
            id,
            describe(device),
            "/ is not directly on a disk partition (see root-storage)",
            "only hosts whose / is a plain partition can be migrated in place",
        );
    }
    let disk = match &facts.root_disk {
        Ok(disk) => disk,
        Err(error) => {
            return Check::fail(
                id,
                error.clone(),
                "the partition table of the root disk cannot be read",
                "run as root; the disk must carry an MBR or GPT partition table",
            )
        }
    };
    let start = device.start.map(|s| s.bytes()).unwrap_or_default();
    match disk.table.find_by_start(start) {
        Some(entry) => Check::pass(
            id,
            format!(
                "{}, {} at byte {}, partuuid {}",
                describe(device),
                entry.size.rounded(),
                entry.start.get(),
                entry.partuuid
            ),
            "the kernel's partition and the disk's table agree",
        ),
        None => Check::fail(
            id,
            format!(
                "{} starts at byte {} but {} has no such entry",
                describe(device),
                start.get(),
                disk.path
            ),
            "the partition table on disk differs from what the kernel uses",
            "reboot so the kernel rereads the table, then check again",
        ),
    }
}

pub fn root_storage(facts: &HostFacts) -> Check {
    let id = CheckId::RootStorage;
    let mount = match &facts.root_mount {
        Ok(mount) => mount,
        Err(error) => {
            return Check::fail(
                id,
                error.clone(),
                "the mount of / cannot be found",
                "run with /proc mounted",
            )
        }
    };
    let on = format!("{} on {} ({})", mount.fs_type, mount.source, mount.device);
    if let Some(subvolume) = mount.btrfs_subvolume() {
        return Check::fail(
            id,
            format!("{on}, btrfs subvolume {subvolume}"),
            "/ is a btrfs subvolume; its data cannot be backed up and replaced as one partition",
            "this tool does not migrate btrfs-subvolume roots; reinstall with / on a plain partition",
        );
    }
    let device = match &facts.root_device {
        Ok(device) => device,
        Err(error) => {
            return Check::fail(
                id,
                format!("{on}; {error}"),
                "the device under / cannot be found",
                "run as root with /sys mounted",
            )
        }
    };
    let refusal = match device.kind {
        BlockKind::Partition => None,
        BlockKind::Lvm => Some("LVM"),
        BlockKind::DmCrypt => Some("LUKS/dm-crypt"),
        BlockKind::Md => Some("md software RAID"),
        BlockKind::DeviceMapper(_) => Some("device-mapper"),
        BlockKind::Disk | BlockKind::Loop => Some("a device without partitions"),
    };
    match refusal {
        None => Check::pass(id, format!("{on}, {}", describe(device)), "/ is on a plain partition"),
        Some(what) => Check::fail(
            id,
            format!("{on}, {}", describe(device)),
            format!("/ is on {what}, which the migration cannot replace in place"),
            "this tool refuses such hosts; migrate them by reflashing instead",
        ),
    }
}

pub fn boot_writable(facts: &HostFacts) -> Check {
    let id = CheckId::BootWritable;
    match &facts.boot_mount {
        Err(error) => Check::fail(
            id,
            error.clone(),
            "the mount holding /boot cannot be found",
            "run with /proc mounted",
        ),
        Ok(mount) => {
            let found =
                format!("/boot on {} ({} {})", mount.mount_point, mount.fs_type, mount.source);
            if mount.is_read_only() {
                Check::fail(
                    id,
                    format!("{found}, read-only"),
                    "the GRUB entry and grubenv under /boot/grub must be written",
                    format!(
                        "remount it read-write (mount -o remount,rw {}) and fix its fstab options",
                        mount.mount_point
                    ),
                )
            } else {
                Check::pass(id, format!("{found}, read-write"), "GRUB files can be written")
            }
        }
    }
}

pub fn swap_partition(facts: &HostFacts) -> Check {
    let id = CheckId::SwapPartition;
    let device = match &facts.swap_device {
        Ok(device) => device,
        Err(error) => return Check::fail(
            id,
            error.clone(),
            "the migration environment is staged on the swap partition, and there is none",
            "a swap partition on the root disk is needed; enable it with swapon -a if it exists",
        ),
    };
    if device.kind != BlockKind::Partition {
        return Check::fail(
            id,
            describe(device),
            format!("swap is on {}, not on a disk partition GRUB can read", device.kind),
            "a plain swap partition on the root disk is needed",
        );
    }
    Check::pass(
        id,
        format!("{}, {}", describe(device), device.size.bytes().rounded()),
        "the swap partition becomes the staging area",
    )
}

pub fn same_disk(facts: &HostFacts) -> Check {
    let id = CheckId::SameDisk;
    let (root, swap) = match (&facts.root_device, &facts.swap_device) {
        (Ok(root), Ok(swap)) => (root, swap),
        (Err(error), _) | (_, Err(error)) => {
            return Check::fail(
                id,
                error.clone(),
                "root and swap must both be found first",
                "see root-partition and swap-partition",
            )
        }
    };
    match (&root.parent_disk, &swap.parent_disk) {
        (Some(root_disk), Some(swap_disk)) if root_disk == swap_disk => Check::pass(
            id,
            format!("{} and {} on /dev/{root_disk}", root.dev_path(), swap.dev_path()),
            "the staging area is on the disk being migrated",
        ),
        _ => Check::fail(
            id,
            format!("root {}, swap {}", describe(root), describe(swap)),
            "the staging area must be on the disk that is migrated, which the migrator keeps booting from",
            "use a swap partition on the root disk",
        ),
    }
}

pub fn swap_signature(facts: &HostFacts) -> Check {
    let id = CheckId::SwapSignature;
    match &facts.swap_header {
        Ok(header) => Check::pass(
            id,
            format!(
                "UUID {}, label {}",
                header.uuid,
                header.label.as_deref().unwrap_or("(none)")
            ),
            "abort can recreate swap with the same UUID and label",
        ),
        Err(error) => Check::fail(
            id,
            error.clone(),
            "the swap header must be read so that abort can restore it exactly",
            "recreate it: swapoff DEV && mkswap DEV && swapon DEV, then update /etc/fstab to the new UUID",
        ),
    }
}

/// Not blocking: after `abort` (or a refused run) swap comes back by the same UUID and label,
/// so an fstab entry that finds it today finds it again; without one, swap stays off at boot.
pub fn swap_fstab(facts: &HostFacts) -> Check {
    let id = CheckId::SwapFstab;
    let (entries, device) = match (&facts.fstab, &facts.swap_device) {
        (Ok(entries), Ok(device)) => (entries, device),
        (Err(error), _) | (_, Err(error)) => {
            return Check::warn(
                id,
                error.clone(),
                "cannot tell how the host finds its swap at boot",
                "see swap-partition",
            )
        }
    };
    let header = facts.swap_header.as_ref().ok();
    let partuuid = facts.root_disk.as_ref().ok().and_then(|disk| {
        let start = device.start?.bytes();
        (device.parent_disk.as_deref() == Some(disk.name.as_str()))
            .then(|| disk.table.find_by_start(start).map(|e| e.partuuid.clone()))
            .flatten()
    });
    let finds_it = |spec: &FsSpec| match spec {
        FsSpec::Uuid(uuid) => header.is_some_and(|h| &h.uuid == uuid),
        FsSpec::Label(label) => header.is_some_and(|h| h.label.as_ref() == Some(label)),
        FsSpec::PartUuid(p) => partuuid.as_ref() == Some(p),
        FsSpec::Path(path) => *path == device.dev_path(),
        FsSpec::PartLabel(_) => false,
    };
    match fstab::swap_entries(entries).find(|e| finds_it(&e.spec)) {
        Some(entry) => Check::pass(
            id,
            format!("/etc/fstab swap entry {} is {}", entry.spec, device.dev_path()),
            "swap comes back at boot after an abort, with the same UUID and label",
        ),
        None => Check::warn(
            id,
            format!("no /etc/fstab swap entry names {}", device.dev_path()),
            "swap is not turned on at boot today, and will not be after an abort either",
            "add `UUID=<uuid> none swap sw 0 0` to /etc/fstab if swap should be on at boot",
        ),
    }
}
