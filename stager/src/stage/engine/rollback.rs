//! Undoing what the journal says was done (or begun), in reverse order. Shared by a failed
//! `stage` and by `stager abort`; every undo is idempotent, so running it twice is safe.
//! Nothing here checks for signals ([`crate::interrupt`]): a rollback always runs to its end.

use super::current_staging::{self, CurrentStaging};
use super::system::System;
use crate::host::HostRoot;
use crate::stage::host_extras::Region;
use crate::state::{self, Change, StageState, StateStore};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What was undone, and what could not be.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RollbackReport {
    pub undone: Vec<String>,
    pub failed: Vec<String>,
}

impl RollbackReport {
    pub fn complete(&self) -> bool {
        self.failed.is_empty()
    }
}

fn write_page(region: &Region, page: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).open(&region.file)?;
    file.seek(SeekFrom::Start(region.offset.get()))?;
    file.write_all(page)?;
    file.sync_all()
}

fn loop_device(state: &StageState) -> Option<String> {
    state.entries.iter().find_map(|e| match &e.change {
        Change::Attach { device } => device.clone(),
        _ => None,
    })
}

/// What a loop device recorded by an earlier run serves now. Loop devices do not survive a
/// reboot, and after one the same number may serve someone else's file.
#[derive(Debug, PartialEq, Eq)]
enum LoopNow {
    /// Not set up (any more): nothing to let go of.
    Gone,
    /// Still over the staging partition's file.
    Ours,
    /// Over some other file: not ours to detach.
    Other(String),
}

/// Reads the kernel's `loop/backing_file` of `loop_device` (loop devices are the running
/// kernel's, whatever the host root) and compares the file it names with `files` by inode.
fn loop_now(loop_device: &str, files: &[&Path]) -> LoopNow {
    let name = loop_device.rsplit('/').next().unwrap_or(loop_device);
    let Some(backing) = disk_layout::sysfs::Sysfs::default().loop_backing_file(name) else {
        return LoopNow::Gone;
    };
    let inode = |path: &Path| std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    match inode(&backing) {
        Some(found) if files.iter().any(|f| inode(f) == Some(found)) => LoopNow::Ours,
        _ => LoopNow::Other(backing.display().to_string()),
    }
}

/// Loop devices already let go of during this rollback: never detach one twice (its
/// number may by then belong to someone else's device), and never one that serves another
/// file now.
struct Detached<'a> {
    done: Vec<String>,
    /// The files a loop device of ours can be over: the recorded and the current region's.
    ours: Vec<&'a Path>,
}

impl Detached<'_> {
    fn detach(&mut self, system: &mut dyn System, device: &str) -> Option<String> {
        if self.done.iter().any(|d| d == device) {
            return None;
        }
        self.done.push(device.to_string());
        match loop_now(device, &self.ours) {
            LoopNow::Gone => {
                log::debug!("{device} is not set up any more (released, or a reboot since): nothing to detach");
                return None;
            }
            LoopNow::Other(file) => {
                log::warn!("{device} now serves {file}, not the staging partition: left alone");
                return None;
            }
            LoopNow::Ours => {}
        }
        match system.detach(device) {
            Ok(()) => Some(format!("detached {device}")),
            Err(e) => {
                log::debug!("detach {device}: {e} (already detached)");
                None
            }
        }
    }
}

fn undo_one(
    root: &HostRoot,
    state: &StageState,
    current: &Result<CurrentStaging, String>,
    change: &Change,
    system: &mut dyn System,
    detached: &mut Detached<'_>,
) -> Result<Option<String>, String> {
    match change {
        Change::ArmGrubenv { undo: Some(record) } => {
            record.restore().map_err(|e| e.to_string())?;
            Ok(Some(format!("restored {}", record.path.display())))
        }
        Change::ArmGrubenv { undo: None } => Ok(None),
        Change::WriteCustomCfg { path, backup } => {
            let target = root.path(path);
            match backup {
                Some(backup) => {
                    let backup = root.path(backup);
                    match std::fs::read(&backup) {
                        Ok(bytes) => {
                            state::write_durably(&target, &bytes)
                                .map_err(|e| format!("{}: {e}", target.display()))?;
                            Ok(Some(format!("restored {path}")))
                        }
                        // The original was saved before the new file was written: no copy, no change.
                        Err(_) => Ok(None),
                    }
                }
                None => match std::fs::remove_file(&target) {
                    Ok(()) => {
                        state::sync_dir_of(&target).map_err(|e| e.to_string())?;
                        Ok(Some(format!("removed {path}")))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(format!("{}: {e}", target.display())),
                },
            }
        }
        Change::Unmount | Change::WriteStaging | Change::SaveSwapHeader { .. } => Ok(None),
        Change::ArmUefiBootNext { efivars, undo: Some(record) } => {
            let vars = efivars::EfiVars::at(root.path(efivars));
            record.undo(&vars).map_err(|e| e.to_string())?;
            Ok(Some(format!(
                "removed Boot{:04X} and put BootNext back as it was",
                record.boot_number
            )))
        }
        Change::ArmUefiBootNext { undo: None, .. } => Ok(None),
        Change::MarkSupervisorUpdate { config, ca_cert, mark } => {
            use crate::stage::resinos1x::supervisor_mark::{api_access_from_file, Api};
            let access = api_access_from_file(Path::new(config)).map_err(|e| e.to_string())?;
            let api =
                Api::new(access, ca_cert.as_deref().map(Path::new)).map_err(|e| e.to_string())?;
            api.set_release(mark.previous_release).map_err(|e| e.to_string())?;
            let previous =
                mark.previous_release.map_or("unset".to_string(), |id| format!("release {id}"));
            Ok(Some(format!(
                "put device {}'s supervisor release back ({previous}) in {}",
                mark.device_id, mark.endpoint
            )))
        }
        Change::ArmPiTrial { reboot_part, .. } => match reboot_part {
            Some(path) => {
                let path = root.path(path);
                let written = crate::stage::resinos1x::pi_trial::write_reboot_part(&path, 0)?;
                Ok(written.then(|| format!("wrote 0 to {}", path.display())))
            }
            None => Ok(None),
        },
        Change::WritePiTrial => Ok(None),
        Change::FormatSpare { volume_id, bytes_per_cluster } => {
            let current = current.as_ref().map_err(Clone::clone)?;
            crate::stage::resinos1x::pi_trial::format_again(
                &current.region,
                volume_id,
                *bytes_per_cluster,
            )?;
            Ok(Some(format!(
                "emptied {}: it stays a FAT32 labelled {} (volume id {volume_id}); its ext3, a copy of an old root, cannot come back (contract R1)",
                current.region.host_path,
                crate::stage::resinos1x::pi_trial::LABEL
            )))
        }
        Change::SetPartitionType { disk, number, old } => {
            // The disk as the stager opened it (`--disk`), not under the host root.
            let disk = Path::new(disk);
            crate::stage::resinos1x::pi_trial::set_partition_type(disk, *number, *old)?;
            Ok(Some(format!(
                "put partition {number}'s type byte back to {old:#04x} in the MBR of {}",
                disk.display()
            )))
        }
        Change::ArmUbootTrial { boot_mount, .. } => {
            let mount = root.path(boot_mount);
            if !is_mount_point(&mount) {
                return Err(format!(
                    "{} is not a mounted file system, so uEnv.txt cannot be put back on the boot partition; mount the boot partition there and run `stager abort` again",
                    mount.display()
                ));
            }
            crate::stage::resinos1x::uboot_trial::disarm(&mount)
        }
        Change::WriteBootDir { dir } => {
            // Only through the mounted boot partition: a missing directory on an unmounted
            // mount point would look undone while our files stay on the partition.
            let target = root.path(dir);
            let mount = target.parent().map(Path::to_path_buf).unwrap_or_else(|| target.clone());
            if !is_mount_point(&mount) {
                return Err(format!(
                    "{} is not a mounted file system, so {dir} cannot be removed from the boot partition; mount the boot partition there and run `stager abort` again",
                    mount.display()
                ));
            }
            remove_dir(&target)
        }
        Change::WriteStagingDir { dir } => {
            let current = current.as_ref().map_err(Clone::clone)?;
            let mount_point = root.path(state::MOUNT_POINT);
            let staged = mount_point.join(dir.trim_start_matches('/'));
            if staged.exists() {
                // Still mounted by this run (a failure before its unmount step).
                return remove_dir(&staged);
            }
            let (device, loop_device) = system
                .attach(&current.region)
                .map_err(|e| format!("{}: {e}", current.region.host_path))?;
            let result = system
                .mount(&device, &mount_point, false)
                .map_err(|e| format!("mount {device}: {e}"))
                .and_then(|()| {
                    let removed = remove_dir(&staged);
                    let unmounted = system
                        .unmount(&mount_point)
                        .map_err(|e| format!("unmount {}: {e}", mount_point.display()));
                    removed.and_then(|done| unmounted.map(|()| done))
                });
            if let Some(loop_device) = loop_device {
                detached.detach(system, &loop_device);
            }
            result
        }
        Change::Mount { mount_point } => {
            let target = root.path(mount_point);
            match system.unmount(&target) {
                Ok(()) => Ok(Some(format!("unmounted {}", target.display()))),
                // EINVAL: not mounted (already unmounted); ENOENT: no mount point.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => {
                    Ok(None)
                }
                Err(e) => Err(format!("unmount {}: {e}", target.display())),
            }
        }
        Change::Mkfs { .. } => {
            let current = current.as_ref().map_err(Clone::clone)?;
            if let Some(device) = loop_device(state) {
                // Let go of the loop device first so that no cached block of it is written
                // over the restored page later.
                detached.detach(system, &device);
            }
            let backup = root.path(state::SWAP_HEADER_BACKUP);
            let page = std::fs::read(&backup).map_err(|e| format!("{}: {e}", backup.display()))?;
            let region = &current.region;
            if !current.by_identity && !current_staging::holds_ours(region, state, &page) {
                return Err(format!(
                    "{} holds neither the staging file system {} nor the swap {}: the disk names changed since staging; \
                     write {} back to the right partition by hand",
                    region.host_path,
                    state.staging_fs_uuid,
                    state.swap_uuid,
                    state::SWAP_HEADER_BACKUP
                ));
            }
            write_page(region, &page).map_err(|e| format!("{}: {e}", region.host_path))?;
            Ok(Some(format!(
                "wrote the saved swap header back to {} (UUID {})",
                region.host_path, state.swap_uuid
            )))
        }
        Change::Attach { device: Some(device) } => Ok(detached.detach(system, device)),
        Change::Attach { device: None } => Ok(None),
        Change::CommentFstab { fstab, backup } => {
            let backup_path = root.path(backup);
            match std::fs::read(&backup_path) {
                Ok(bytes) => {
                    state::write_durably(&root.path(fstab), &bytes)
                        .map_err(|e| format!("{fstab}: {e}"))?;
                    Ok(Some(format!("restored {fstab}")))
                }
                Err(_) => Ok(None),
            }
        }
        Change::SwapOff { .. } => {
            // The swap partition is the staging partition: swap it on under today's name
            // (the recorded one may name another partition after a reboot).
            let current = current.as_ref().map_err(Clone::clone)?;
            let device = current.region.host_path.clone();
            if !current.by_identity && !current_staging::holds_swap(&current.region, state) {
                return Err(format!(
                    "{device} does not hold the swap {} any more: the disk names changed since staging; turn the swap on by hand",
                    state.swap_uuid
                ));
            }
            match system.swap_on(&root.path(&device)) {
                Ok(()) => Ok(Some(format!("swapon {device}"))),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(None),
                Err(e) => Err(format!("swapon {device}: {e}")),
            }
        }
    }
}

/// Whether `dir` is where a file system is mounted (its device differs from its parent's).
pub(crate) fn is_mount_point(dir: &Path) -> bool {
    match (std::fs::metadata(dir), std::fs::metadata(dir.join(".."))) {
        (Ok(own), Ok(parent)) => own.is_dir() && own.dev() != parent.dev(),
        _ => false,
    }
}

/// Removes a directory the stager created (and everything in it); syncs its parent.
fn remove_dir(dir: &Path) -> Result<Option<String>, String> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {
            state::sync_dir_of(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            Ok(Some(format!("removed {}", dir.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("remove {}: {e}", dir.display())),
    }
}

/// Undoes every entry in reverse order; when all succeeded, removes the state file and the
/// saved copies. Keeps going after a failed undo (and reports it) so that as much as
/// possible is restored; the state file then stays for `stager abort` to retry.
pub fn rollback(root: &HostRoot, state: &StageState, system: &mut dyn System) -> RollbackReport {
    crate::interrupt::test_point("rollback");
    let mut report = RollbackReport::default();
    let current = current_staging::locate(root, state)
        .map_err(|e| format!("cannot find the staging partition: {e}"));
    let mut ours = vec![state.staging.file.as_path()];
    if let Ok(current) = &current {
        ours.push(current.region.file.as_path());
    }
    let mut detached = Detached { done: Vec::new(), ours };
    for entry in state.entries.iter().rev() {
        crate::interrupt::test_point(&format!("undo:{}", entry.change.name()));
        match undo_one(root, state, &current, &entry.change, system, &mut detached) {
            Ok(Some(done)) => {
                log::info!("undo {}: {done}", entry.change.name());
                report.undone.push(done);
            }
            Ok(None) => {}
            Err(problem) => {
                log::error!("undo {} failed: {problem}", entry.change.name());
                report.failed.push(format!("{}: {problem}", entry.change.name()));
            }
        }
    }
    system.sync();
    if report.complete() {
        let store = StateStore::new(root);
        if let Err(e) = store.remove() {
            report.failed.push(e.to_string());
            return report;
        }
        for saved in [
            state::SWAP_HEADER_BACKUP,
            state::FSTAB_BACKUP,
            crate::stage::ubuntu::planning::CUSTOM_CFG_BACKUP,
        ] {
            let _ = std::fs::remove_file(root.path(saved));
        }
        let _ = std::fs::remove_dir(root.path(state::MOUNT_POINT));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Entry, Progress, STATE_FORMAT};

    #[test]
    fn boot_files_are_not_reported_removed_when_the_boot_partition_is_not_mounted() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        // `/mnt/boot/swapover` as a plain directory of the root: the boot partition is not
        // mounted there, so removing "it" would remove nothing of the partition's.
        let staged = root.path("/mnt/boot/swapover");
        std::fs::create_dir_all(&staged).unwrap();
        std::fs::write(staged.join("vmlinuz"), b"kernel").unwrap();
        let state = StageState {
            format: STATE_FORMAT,
            stager_version: "test".into(),
            staging: Region {
                file: dir.path().join("disk"),
                offset: plan::Bytes(0),
                size: plan::Bytes(0),
                host_path: "/dev/sda3".into(),
            },
            staging_partition: None,
            staging_fs_uuid: String::new(),
            swap_uuid: String::new(),
            armed: true,
            entries: vec![Entry {
                change: Change::WriteBootDir { dir: "/mnt/boot/swapover".into() },
                progress: Progress::Done,
            }],
        };
        let report =
            rollback(&root, &state, &mut crate::stage::engine::system::FixtureSystem::default());
        assert!(!report.complete(), "{report:?}");
        assert!(report.failed[0].contains("is not a mounted file system"), "{report:?}");
        assert!(staged.join("vmlinuz").exists(), "nothing removed from the root file system");
    }
}
