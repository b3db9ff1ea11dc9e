//! The Ubuntu route's steps, each journalled by the undo engine (`engine::execute::Run`).
//!
//! Order: swapoff → save the swap header page → comment out fstab's swap line → attach the
//! partition as a block device → mkfs.ext4 → mount → write kernel, initramfs, plan, image,
//! config.json, GRUB files (each fsynced) → unmount → custom.cfg → arm next_entry → sync →
//! reboot (unless `--no-reboot`). The image was fetched and verified before the first step.
//! Arming grubenv is the last step: until it is done the next boot is the old OS, whatever
//! stopped the run (a power cut, SIGKILL), and the journal says what to undo.

use super::fstab_edit;
use super::planning::{StagePlan, CUSTOM_CFG, CUSTOM_CFG_BACKUP, ENTRY_ID, GRUBENV, STAGING_LABEL};
use super::staging_files;
use crate::host::swap_header;
use crate::host::HostRoot;
use crate::stage::engine::execute::{
    ExecuteError, ExecuteOptions, ExecuteReport, Run, StepFailure,
};
use crate::stage::engine::system::System;
use crate::state::{self, Change, StageState, StateStore, STATE_FORMAT};
use std::process::Command;

pub(crate) fn tool_exists(name: &str) -> bool {
    crate::host::grub::find_tool(&HostRoot::default(), name, std::env::var("PATH").ok().as_deref())
        .is_some()
}

fn mkfs(device: &str, uuid: &str) -> Result<(), String> {
    let output = Command::new("mkfs.ext4")
        .args(["-F", "-q", "-L", STAGING_LABEL, "-U", uuid])
        .arg(device)
        .output()
        .map_err(|e| format!("cannot run mkfs.ext4: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("mkfs.ext4 failed: {}", String::from_utf8_lossy(&output.stderr).trim()))
    }
}

fn all_steps(
    run: &mut Run<'_>,
    sp: &StagePlan,
    migrator: &[u8],
) -> Result<Vec<String>, StepFailure> {
    let root = run.root;
    let region = sp.staging.clone();
    let swap_path = root.path(&region.host_path);
    run.step(Change::SwapOff { device: region.host_path.clone() }, |r| {
        r.system.swap_off(&swap_path).map_err(|e| format!("swapoff {}: {e}", region.host_path))?;
        Ok(((), None))
    })?;

    run.step(Change::SaveSwapHeader { backup: state::SWAP_HEADER_BACKUP.into() }, |_| {
        let page = region
            .read_at(plan::Bytes(0), swap_header::X86_PAGE_SIZE.get() as usize)
            .map_err(|e| format!("read the swap header of {}: {e}", region.host_path))?;
        let header = swap_header::parse(&page).map_err(|e| format!("{}: {e}", region.host_path))?;
        if Some(&header.uuid) != sp.plan.staging.original_swap_uuid.as_ref() {
            return Err(format!(
                "the swap UUID of {} changed to {} since planning; run the stager again",
                region.host_path, header.uuid
            ));
        }
        state::write_durably(&root.path(state::SWAP_HEADER_BACKUP), &page)
            .map_err(|e| e.to_string())?;
        Ok(((), None))
    })?;

    let fstab_path = crate::host::fstab::PATH;
    run.step(
        Change::CommentFstab { fstab: fstab_path.into(), backup: state::FSTAB_BACKUP.into() },
        |_| {
            let original = std::fs::read(root.path(fstab_path))
                .map_err(|e| format!("read {fstab_path}: {e}"))?;
            state::write_durably(&root.path(state::FSTAB_BACKUP), &original)
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&original);
            let (edited, count) = fstab_edit::comment_out_swap(&text, &sp.swap_names);
            if count > 0 {
                state::write_durably(&root.path(fstab_path), edited.as_bytes())
                    .map_err(|e| format!("{fstab_path}: {e}"))?;
            }
            Ok(((), None))
        },
    )?;

    let device = run.attach_staging(&region)?;

    let uuid = sp.plan.staging.fs_uuid.clone();
    run.step(Change::Mkfs { uuid: uuid.clone() }, |_| {
        if !tool_exists("mkfs.ext4") {
            return Err("mkfs.ext4 is not installed; install e2fsprogs".into());
        }
        mkfs(&device, &uuid)?;
        Ok(((), None))
    })?;

    let mount_point = run.mount_staging(&device)?;

    let staged = run.step(Change::WriteStaging, |_| {
        let staged = staging_files::write_all(&mount_point, sp, root, migrator)
            .map_err(|e| e.to_string())?;
        Ok((staged, None))
    })?;

    run.unmount_staging(&mount_point)?;

    let custom_cfg = root.path(CUSTOM_CFG);
    let existed = custom_cfg.exists();
    let backup = existed.then(|| CUSTOM_CFG_BACKUP.to_string());
    run.step(Change::WriteCustomCfg { path: CUSTOM_CFG.into(), backup }, |_| {
        if existed {
            let original =
                std::fs::read(&custom_cfg).map_err(|e| format!("read {CUSTOM_CFG}: {e}"))?;
            state::write_durably(&root.path(CUSTOM_CFG_BACKUP), &original)
                .map_err(|e| e.to_string())?;
        }
        state::write_durably(&custom_cfg, sp.custom_cfg.as_bytes())
            .map_err(|e| format!("{CUSTOM_CFG}: {e}"))?;
        Ok(((), None))
    })?;

    let grubenv = root.path(GRUBENV);
    let original = std::fs::read(&grubenv).ok();
    let before = grub::UndoRecord { path: grubenv.clone(), original, written: Vec::new() };
    run.step(Change::ArmGrubenv { undo: Some(before) }, |_| {
        let record = grub::OneShot::arm(&grubenv, ENTRY_ID).map_err(|e| e.to_string())?;
        Ok(((), Some(Change::ArmGrubenv { undo: Some(record) })))
    })?;
    Ok(staged)
}

/// Runs every step of `sp`. On failure everything is rolled back before returning.
pub fn execute(
    root: &HostRoot,
    sp: &StagePlan,
    migrator: &[u8],
    system: &mut dyn System,
    options: &ExecuteOptions,
) -> Result<ExecuteReport, ExecuteError> {
    let store = StateStore::new(root);
    let state = StageState {
        format: STATE_FORMAT,
        stager_version: env!("CARGO_PKG_VERSION").to_string(),
        staging: sp.staging.clone(),
        staging_partition: Some(sp.plan.staging.partition.clone()),
        staging_fs_uuid: sp.plan.staging.fs_uuid.clone(),
        swap_uuid: sp.plan.staging.original_swap_uuid.clone().unwrap_or_default(),
        armed: false,
        entries: Vec::new(),
    };
    crate::interrupt::enter_critical();
    store.save(&state)?;
    let mut run = Run {
        root,
        store,
        state,
        system,
        fail_after: options.fail_after.clone(),
        restart_arg: None,
    };
    let steps = all_steps(&mut run, sp, migrator);
    let (staged, rebooting) =
        run.finish(steps, options.no_reboot, |_| "the next boot starts the migration".to_string())?;
    Ok(ExecuteReport { staged, rebooting })
}
