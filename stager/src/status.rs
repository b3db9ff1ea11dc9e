//! `stager status`: what is staged or armed, and — after an attempt that came back to the
//! old OS — what the migration environment logged and how far its journal got (staging is
//! mounted read-only for that, and unmounted again).

use crate::host::HostRoot;
use crate::stage::engine::current_staging;
use crate::stage::engine::system::System;
use crate::stage::host_extras::Region;
use crate::stage::ubuntu::planning::STAGING_DIR;
use crate::state::{Progress, StageState, StateError, StateStore};
use std::path::Path;

/// Lines of migration.log shown.
pub const LOG_TAIL_LINES: usize = 30;
/// Where staging is mounted read-only to read it.
pub const STATUS_MOUNT_POINT: &str = "/var/lib/swapover/status-mnt";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Armed {
    /// grubenv still holds exactly what the stager wrote: the next boot starts the migration.
    Yes,
    /// grubenv changed since: GRUB consumed the one-shot entry (the migration environment
    /// was booted) or someone edited it.
    Consumed,
    /// Staging did not get as far as arming.
    NotArmed,
    /// resinOS 1.x on U-Boot: the trial in uEnv.txt runs at the boot counting `trial_count`;
    /// whether that boot came already cannot be read from the file (it stays armed after a
    /// trial that fell back to 1.x).
    UbootTrial { trial_count: u32 },
    /// Raspberry Pi: the GPU firmware boots `partition` once at the next reboot.
    PiTrial { partition: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: Option<StageState>,
    pub armed: Armed,
    /// Last lines of `migration.log`, when staging could be read.
    pub log_tail: Option<Vec<String>>,
    /// The migrator journal's last step, when staging could be read.
    pub journal_step: Option<String>,
    /// Why staging could not be read, if it could not.
    pub staging_problem: Option<String>,
    /// The staging partition's device name on this boot, when it could be found by its
    /// identity (disk id + start + size); names can change between boots (sda5 ↔ sdb5).
    pub current_path: Option<String>,
    /// The last `stage`/`abort` run's outcome line ([`crate::run_log::LAST_RUN`]).
    pub last_run: Option<String>,
    /// The stager run holding the lock right now, if one does.
    pub running: Option<String>,
}

/// Whether the one-shot the stager armed is still pending: grubenv still holds exactly what
/// the stager wrote, or (resinOS 1.x on UEFI) `BootNext` still names our boot option.
fn armed(root: &HostRoot, state: &StageState) -> Armed {
    if !state.armed {
        return Armed::NotArmed;
    }
    let trial = state.entries.iter().find_map(|e| match (&e.change, e.progress) {
        (crate::state::Change::ArmUbootTrial { trial_count, .. }, Progress::Done) => {
            Some(*trial_count)
        }
        _ => None,
    });
    if let Some(trial_count) = trial {
        return Armed::UbootTrial { trial_count };
    }
    let pi = state.entries.iter().find_map(|e| match (&e.change, e.progress) {
        (crate::state::Change::ArmPiTrial { partition, .. }, Progress::Done) => Some(*partition),
        _ => None,
    });
    if let Some(partition) = pi {
        return Armed::PiTrial { partition };
    }
    let pending = state.entries.iter().filter(|e| e.progress == Progress::Done).find_map(|e| {
        match &e.change {
            crate::state::Change::ArmGrubenv { undo: Some(record) } => {
                Some(record.still_armed().map_err(|e| e.to_string()))
            }
            crate::state::Change::ArmUefiBootNext { efivars, undo: Some(record) } => Some(
                record
                    .is_pending(&efivars::EfiVars::at(root.path(efivars)))
                    .map_err(|e| e.to_string()),
            ),
            _ => None,
        }
    });
    match pending {
        Some(Ok(true)) => Armed::Yes,
        Some(_) => Armed::Consumed,
        None => Armed::NotArmed,
    }
}

fn read_staging(dir: &Path) -> (Option<Vec<String>>, Option<String>) {
    let log = std::fs::read_to_string(dir.join("migration.log")).ok().map(|text| {
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].to_vec()
    });
    let journal =
        migration_journal::Journal::open(dir).ok().map(|j| format!("{:?}", j.state().step));
    (log, journal)
}

/// Reads the log and journal of a staging file system still mounted where `stage` mounts it
/// (a run that was killed, or is running): mounting it a second time fails with EBUSY.
fn read_mounted_staging(root: &HostRoot, status: &mut Status) -> bool {
    let mount_point = root.path(crate::state::MOUNT_POINT);
    let dir = mount_point.join(STAGING_DIR.trim_start_matches('/'));
    if !crate::stage::engine::rollback::is_mount_point(&mount_point) || !dir.is_dir() {
        return false;
    }
    log::info!("staging is still mounted at {}: reading it there", mount_point.display());
    let (log, journal) = read_staging(&dir);
    status.log_tail = log;
    status.journal_step = journal;
    true
}

/// Mounts the staging partition read-only, reads its log and journal, lets go of it.
fn read_current_staging(
    region: &Region,
    mount_point: &Path,
    system: &mut dyn System,
    status: &mut Status,
) {
    match system.attach(region) {
        Ok((device, loop_device)) => {
            match system.mount(&device, mount_point, true) {
                Ok(()) => {
                    let (log, journal) =
                        read_staging(&mount_point.join(STAGING_DIR.trim_start_matches('/')));
                    status.log_tail = log;
                    status.journal_step = journal;
                    if let Err(e) = system.unmount(mount_point) {
                        log::warn!("cannot unmount {}: {e}", mount_point.display());
                    }
                }
                Err(e) => {
                    status.staging_problem =
                        Some(format!("cannot mount {} read-only: {e}", region.host_path))
                }
            }
            if let Some(loop_device) = loop_device {
                let _ = system.detach(&loop_device);
            }
            let _ = std::fs::remove_dir(mount_point);
        }
        Err(e) => status.staging_problem = Some(format!("cannot open {}: {e}", region.host_path)),
    }
}

pub fn status(root: &HostRoot, system: &mut dyn System) -> Result<Status, StateError> {
    let store = StateStore::new(root);
    let last_run = crate::run_log::last(root);
    let running = crate::run_lock::holder_now(root);
    let Some(state) = store.load()? else {
        return Ok(Status {
            state: None,
            armed: Armed::NotArmed,
            log_tail: None,
            journal_step: None,
            staging_problem: None,
            current_path: None,
            last_run,
            running,
        });
    };
    let armed = armed(root, &state);
    let mut status = Status {
        state: Some(state.clone()),
        armed,
        log_tail: None,
        journal_step: None,
        staging_problem: None,
        current_path: None,
        last_run,
        running,
    };
    // Never while a run is staging: it may be in the middle of mkfs.
    let read_log = (matches!(status.armed, Armed::Consumed | Armed::UbootTrial { .. })
        || !state.armed)
        && status.running.is_none();
    match current_staging::locate(root, &state) {
        Ok(current) => {
            status.current_path = current.by_identity.then(|| current.region.host_path.clone());
            if read_log && !read_mounted_staging(root, &mut status) {
                read_current_staging(
                    &current.region,
                    &root.path(STATUS_MOUNT_POINT),
                    system,
                    &mut status,
                );
            }
        }
        Err(e) => status.staging_problem = Some(format!("cannot find the staging partition: {e}")),
    }
    Ok(status)
}

/// The lines about the runs themselves: one running now, the last one's outcome, the log.
fn runs_text(status: &Status) -> String {
    let mut out = String::new();
    if let Some(holder) = &status.running {
        out.push_str(&format!("A stager run is in progress now ({holder}); wait for it to end before staging or aborting.\n"));
    }
    if let Some(last) = &status.last_run {
        out.push_str(&format!("Last run: {last}.\n"));
    }
    if status.last_run.is_some() {
        out.push_str(&format!("Log of the stager's runs: {}\n", crate::run_log::LOG_FILE));
    }
    out
}

/// The journal's last recorded step, as "step (begun|done)".
fn stopped_at(state: &StageState) -> String {
    match state.entries.last() {
        Some(entry) => format!(
            "{} ({})",
            entry.change.name(),
            if entry.progress == Progress::Done { "done" } else { "begun" }
        ),
        None => "before its first step".to_string(),
    }
}

pub fn render_text(status: &Status) -> String {
    let Some(state) = &status.state else {
        return format!(
            "Nothing is staged (no /var/lib/swapover/state.json).\n{}",
            runs_text(status)
        );
    };
    let mut out = String::new();
    let device = match &status.current_path {
        Some(now) if *now != state.staging.host_path => {
            format!("{now} (named {} when staged)", state.staging.host_path)
        }
        Some(now) => now.clone(),
        None => state.staging.host_path.clone(),
    };
    let was = if state.swap_uuid.is_empty() {
        String::new()
    } else {
        format!(", was swap UUID {}", state.swap_uuid)
    };
    out.push_str(&format!(
        "Staged on {device} (staging file system UUID {}{was}).\n",
        state.staging_fs_uuid
    ));
    out.push_str(&match status.armed {
        Armed::Yes => "Armed: the next boot starts the migration environment (one boot only).\n".to_string(),
        Armed::Consumed => "Not armed any more: GRUB used the one-shot entry (or the firmware its BootNext), so the migration environment was booted and the device came back to this OS (or the boot setting was edited). Run `stager abort` to undo the staging, or stage again after reading the log below.\n".to_string(),
        Armed::UbootTrial { trial_count } => format!("Armed through U-Boot's boot counter: the boot that counts {trial_count} (a warm reboot) starts the migration environment, any other boot is this OS. uEnv.txt stays armed after a trial that came back here, so whether it ran is in the log below, if any; run `stager abort` to undo the staging.\n"),
        Armed::PiTrial { partition } => format!("armed: the GPU firmware boots partition {partition} once (at the next reboot; 1.x from partition 1 at any other). Partition {partition} is now a FAT32 labelled resin-updt: `stager abort` empties it and gives the partition its type back, but its ext3 (a copy of an old root) cannot come back.\n"),
        Armed::NotArmed => String::new(),
    });
    if status.armed == Armed::NotArmed {
        if status.running.is_some() {
            out.push_str(&format!(
                "Staging is in progress (last step {}); the next boot is the old OS until it arms the GRUB entry.\n",
                stopped_at(state)
            ));
        } else {
            out.push_str(&format!(
                "Staging did not complete: the run stopped at step {} (killed or a power cut; nothing undid it). The GRUB one-shot entry was not armed, so the device boots the old OS. Run `stager abort` to undo what the journal records, or `stager stage` again, which undoes it first and starts over.\n",
                stopped_at(state)
            ));
        }
    }
    out.push_str("Changes recorded:\n");
    for entry in &state.entries {
        let progress = match entry.progress {
            Progress::Begun => "begun",
            Progress::Done => "done",
        };
        out.push_str(&format!("  {:<18} {progress}\n", entry.change.name()));
    }
    if let Some(step) = &status.journal_step {
        out.push_str(&format!("Migrator journal: last step {step}\n"));
    }
    if let Some(lines) = &status.log_tail {
        out.push_str(&format!("Last {} lines of {STAGING_DIR}/migration.log:\n", lines.len()));
        for line in lines {
            out.push_str(&format!("  {line}\n"));
        }
    } else if status.armed == Armed::Consumed {
        out.push_str("The migration environment left no migration.log: it stopped before it could mount staging (kernel, initramfs or disk not found, or the plan refused); check the serial console.\n");
    }
    if let Some(problem) = &status.staging_problem {
        out.push_str(&format!("Staging could not be read: {problem}\n"));
    }
    out.push_str(&runs_text(status));
    out
}
