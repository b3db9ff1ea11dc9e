//! Undoing what the journal says was done (or begun), in reverse order. Shared by a failed
//! `stage` and by `stager abort`; every undo is idempotent, so running it twice is safe.

use super::host_extras::Region;
use super::system::System;
use crate::host::HostRoot;
use crate::state::{self, Change, StageState, StateStore};
use std::io::{Seek, SeekFrom, Write};

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

/// Loop devices already let go of during this rollback: never detach one twice (its
/// number may by then belong to someone else's device).
#[derive(Default)]
struct Detached(Vec<String>);

impl Detached {
    fn detach(&mut self, system: &mut dyn System, device: &str) -> Option<String> {
        if self.0.iter().any(|d| d == device) {
            return None;
        }
        self.0.push(device.to_string());
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
    change: &Change,
    system: &mut dyn System,
    detached: &mut Detached,
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
                            state::write_durably(&target, &bytes).map_err(|e| format!("{}: {e}", target.display()))?;
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
        Change::Mount { mount_point } => {
            let target = root.path(mount_point);
            match system.unmount(&target) {
                Ok(()) => Ok(Some(format!("unmounted {}", target.display()))),
                // EINVAL: not mounted (already unmounted); ENOENT: no mount point.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => Ok(None),
                Err(e) => Err(format!("unmount {}: {e}", target.display())),
            }
        }
        Change::Mkfs { .. } => {
            if let Some(device) = loop_device(state) {
                // Let go of the loop device first so that no cached block of it is written
                // over the restored page later.
                detached.detach(system, &device);
            }
            let backup = root.path(state::SWAP_HEADER_BACKUP);
            let page = std::fs::read(&backup).map_err(|e| format!("{}: {e}", backup.display()))?;
            write_page(&state.staging, &page).map_err(|e| format!("{}: {e}", state.staging.host_path))?;
            Ok(Some(format!("wrote the saved swap header back to {} (UUID {})", state.staging.host_path, state.swap_uuid)))
        }
        Change::Attach { device: Some(device) } => Ok(detached.detach(system, device)),
        Change::Attach { device: None } => Ok(None),
        Change::CommentFstab { fstab, backup } => {
            let backup_path = root.path(backup);
            match std::fs::read(&backup_path) {
                Ok(bytes) => {
                    state::write_durably(&root.path(fstab), &bytes).map_err(|e| format!("{fstab}: {e}"))?;
                    Ok(Some(format!("restored {fstab}")))
                }
                Err(_) => Ok(None),
            }
        }
        Change::SwapOff { device } => match system.swap_on(&root.path(device)) {
            Ok(()) => Ok(Some(format!("swapon {device}"))),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(None),
            Err(e) => Err(format!("swapon {device}: {e}")),
        },
    }
}

/// Undoes every entry in reverse order; when all succeeded, removes the state file and the
/// saved copies. Keeps going after a failed undo (and reports it) so that as much as
/// possible is restored; the state file then stays for `stager abort` to retry.
pub fn rollback(root: &HostRoot, state: &StageState, system: &mut dyn System) -> RollbackReport {
    let mut report = RollbackReport::default();
    let mut detached = Detached::default();
    for entry in state.entries.iter().rev() {
        match undo_one(root, state, &entry.change, system, &mut detached) {
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
        for saved in [state::SWAP_HEADER_BACKUP, state::FSTAB_BACKUP, super::planning::CUSTOM_CFG_BACKUP] {
            let _ = std::fs::remove_file(root.path(saved));
        }
        let _ = std::fs::remove_dir(root.path(state::MOUNT_POINT));
    }
    report
}
