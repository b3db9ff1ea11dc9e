//! `stager plan-image`: plan a resinOS 1.x → 2.x migration against a 1.x disk or disk image
//! and print the plan (`--json`: the plan's JSON). Reads only.

use super::Global;
use crate::cli::{Plan1xInputs, PlanImageArgs};
use crate::host::HostRoot;
use crate::output::{print_error, EXIT_FAILED, EXIT_OK, EXIT_REFUSED};
use crate::stage::resinos1x::plan_image::{self, PlanImageRequest};
use crate::stage::resinos1x::{planner, source_disk};
use std::path::PathBuf;

pub fn run(args: &PlanImageArgs, global: &Global) -> i32 {
    let json = global.json;
    let request = match request(&args.inputs, args.initramfs.clone(), global, &HostRoot::default())
    {
        Ok(request) => request,
        Err(e) => return print_error(&e, json, EXIT_REFUSED),
    };
    match plan_image::plan(&request) {
        Ok(p) => {
            if json {
                match p.plan.to_json_pretty() {
                    Ok(text) => println!("{text}"),
                    Err(e) => return print_error(&e.to_string(), false, EXIT_FAILED),
                }
            } else {
                print!("{}", planner::render(&p));
                println!("Dry run (planning only): nothing was changed.");
            }
            EXIT_OK
        }
        Err(e) => print_error(&format!("refused: {e}; nothing was changed"), json, EXIT_REFUSED),
    }
}

/// The planning request of `plan-image` and `stage-1x`: the profile resolved, and the disk
/// found by the profile's boot partition label when `--disk` is not given.
pub(super) fn request(
    inputs: &Plan1xInputs,
    initramfs: PathBuf,
    global: &Global,
    root: &HostRoot,
) -> Result<PlanImageRequest, String> {
    let profile = global.catalog.resolve(&inputs.profile).map_err(|e| e.to_string())?;
    let disk = match (&inputs.disk, profile.source_partition(plan::PartitionRole::Boot)) {
        (Some(disk), _) => disk.clone(),
        (None, Some(boot)) => {
            let disk = source_disk::find_by_partition_label(root, &boot.name)
                .map_err(|e| format!("refused: {e}; nothing was changed"))?;
            log::info!(
                "the resinOS 1.x disk is {} (it holds the partition labelled {})",
                disk.display(),
                boot.name
            );
            disk
        }
        (None, None) => {
            return Err(format!(
                "profile {} names no boot partition to find the disk by; pass --disk",
                profile.name
            ))
        }
    };
    let kernel = match (&inputs.kernel, &profile.uboot_trial) {
        (Some(kernel), _) => kernel.clone(),
        // The trial boots the board's own, proven 1.x kernel (docs/arm-1x-contract.md §2.3).
        (None, Some(trial)) => root.path(&trial.kernel),
        // The Raspberry Pi's trial boots resin-boot's own kernel, copied to the spare.
        (None, None) if profile.pi_trial.is_some() => {
            let trial = profile.pi_trial.as_ref().map(|t| t.kernel.as_str()).unwrap_or_default();
            root.path(format!("{}/{trial}", crate::stage::resinos1x::planner::BOOT_MOUNT))
        }
        (None, None) => {
            return Err(format!(
                "profile {} needs the migration environment's kernel: pass --kernel FILE",
                profile.name
            ))
        }
    };
    Ok(PlanImageRequest {
        profile,
        disk,
        image: inputs.image.clone(),
        config: inputs.config.clone(),
        data_root: inputs.data_root.clone(),
        kernel,
        initramfs,
        allow_unknown_device_type: inputs.allow_unknown_device_type,
        phys_mem: root.path(&inputs.phys_mem),
    })
}
