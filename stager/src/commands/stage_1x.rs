//! `stager stage-1x`: stage a resinOS 1.x UEFI or U-Boot-trial device and arm its migration
//! for one boot.

use super::{plan_image, session_exit_code, Global};
use crate::cli::Stage1xArgs;
use crate::console_log::out;
use crate::host::HostRoot;
use crate::output::{print_error, EXIT_FAILED, EXIT_OK, EXIT_REFUSED};
use crate::run_session::RunSession;
use crate::stage::engine::execute::ExecuteOptions;
use crate::stage::resinos1x::stage_1x::{self, Armed, Outcome1x, Stage1xError, Stage1xRequest};
use std::path::PathBuf;

/// Like `stage`, a real run (not `--dry-run`) holds the host's run lock before it reads
/// anything, logs to the run log that `status` names, records its outcome there, and turns
/// SIGINT/SIGTERM/SIGHUP after the first change into a rollback.
pub fn run(args: &Stage1xArgs, global: &Global) -> i32 {
    let root = HostRoot::new(&args.root);
    if args.dry_run {
        return run_with(args, global, &root).0;
    }
    let session = match RunSession::start(&root, "stage-1x") {
        Ok(session) => session,
        Err(e) => return print_error(&e.to_string(), global.json, session_exit_code(&e)),
    };
    let (code, outcome) = run_with(args, global, &root);
    session.finish(&outcome);
    code
}

/// Runs `stage-1x`; returns the exit code and the outcome line recorded for `stager status`.
fn run_with(args: &Stage1xArgs, global: &Global, root: &HostRoot) -> (i32, String) {
    let json = global.json;
    let failed = |e: String, code: i32| (print_error(&e, json, code), format!("error: {e}"));
    let plan = match plan_image::request(&args.plan, PathBuf::new(), global, root) {
        Ok(plan) => plan,
        Err(e) => return failed(e, EXIT_REFUSED),
    };
    let migrator = match crate::migrator_payload::load(args.migrator.as_deref()) {
        Ok(bytes) => bytes,
        Err(e) => return failed(e.to_string(), EXIT_FAILED),
    };
    let request = Stage1xRequest {
        plan,
        root: root.clone(),
        modules: args.modules.clone(),
        boot_mount: args.boot_mount.clone(),
        efivars: args.efivars.clone(),
        migrator,
        dry_run: args.dry_run,
        execute: ExecuteOptions::from_env(args.no_reboot),
        supervisor: if args.no_supervisor_update {
            stage_1x::SupervisorRequest::Skip
        } else {
            stage_1x::SupervisorRequest::Mark {
                version: args.supervisor_version,
                ca_cert: args.api_ca_cert.clone(),
            }
        },
    };
    let mut system = crate::stage::engine::system::for_root(root);
    match stage_1x::run(&request, system.as_mut()) {
        Ok(Outcome1x::DryRun(text)) => {
            out(&format!("{text}Dry run: nothing was changed.\n"));
            (EXIT_OK, "dry run: nothing was changed".into())
        }
        Ok(Outcome1x::Staged { rebooting, armed }) => {
            let next = if rebooting {
                "rebooting into the migration now"
            } else {
                "the migration starts at the next reboot"
            };
            if json {
                let value = match armed {
                    Armed::BootNext(number) => {
                        serde_json::json!({ "staged": true, "boot_option": format!("Boot{number:04X}"), "rebooting": rebooting })
                    }
                    Armed::UbootTrial { trial_count } => {
                        serde_json::json!({ "staged": true, "uboot_trial_count": trial_count, "rebooting": rebooting })
                    }
                    Armed::PiTrial { partition } => {
                        serde_json::json!({ "staged": true, "pi_trial_partition": partition, "rebooting": rebooting })
                    }
                };
                out(&format!("{value}\n"));
            }
            let line = format!("Staged and armed for one boot ({}); {next}.", armed.describe());
            out(&format!("{line}\n"));
            (EXIT_OK, line)
        }
        Err(e @ Stage1xError::Refused(_)) => failed(e.to_string(), EXIT_REFUSED),
        Err(e) => failed(e.to_string(), EXIT_FAILED),
    }
}
