//! `stager stage` / `status` / `abort` as the command line runs them: arguments in, text
//! (or JSON) out, an exit code back.

use super::execute::ExecuteOptions;
use super::hook::Hook;
use super::system::{RealSystem, System};
use super::{host_extras, StageError, StageOutcome, StageRequest, EXIT_FAILED, EXIT_NOT_NOW};
use crate::host::{self, HostRoot};
use std::path::PathBuf;
use std::time::Duration;

/// Environment variable naming a step after which staging fails on purpose (tests of rollback).
pub const FAIL_AFTER_ENV: &str = "SWAPOVER_FAIL_AFTER";

/// The `stage` arguments, as the CLI parsed them.
#[derive(Debug, Clone)]
pub struct StageCommand {
    pub root: PathBuf,
    pub profile: String,
    pub profile_file: Option<PathBuf>,
    pub image: String,
    pub sha256: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub config: PathBuf,
    pub backups: Vec<PathBuf>,
    pub backup_hook: Option<PathBuf>,
    pub backup_hook_args: Vec<String>,
    pub backup_hook_timeout: Duration,
    pub dry_run: bool,
    pub no_reboot: bool,
    pub migrator: Option<PathBuf>,
    pub kernel_release: Option<String>,
    pub allow_unknown_device_type: bool,
}

fn load_profile(cmd: &StageCommand) -> Result<board_profiles::Profile, String> {
    match &cmd.profile_file {
        Some(path) => board_profiles::Profile::from_file(path).map_err(|e| e.to_string()),
        None => board_profiles::Profile::builtin(&cmd.profile).map_err(|e| e.to_string()),
    }
}

fn print_error(message: &str, json: bool) {
    if json {
        println!("{}", serde_json::json!({ "error": message }));
    }
    eprintln!("error: {message}");
}

/// Runs `stage` against the real system (or, with a fixture `--root`, real mounts but
/// recorded swap/reboot: see [`super::system::FixtureSystem`]).
pub fn run(cmd: &StageCommand, json: bool) -> i32 {
    let root = HostRoot::new(&cmd.root);
    if root.dir() == std::path::Path::new("/") {
        run_with(cmd, json, &mut RealSystem)
    } else {
        run_with(cmd, json, &mut super::system::FixtureSystem::default())
    }
}

pub fn run_with(cmd: &StageCommand, json: bool, system: &mut dyn System) -> i32 {
    let profile = match load_profile(cmd) {
        Ok(profile) => profile,
        Err(e) => {
            print_error(&e, json);
            return super::EXIT_REFUSED;
        }
    };
    let migrator = match crate::migrator_payload::load(cmd.migrator.as_deref()) {
        Ok(bytes) => bytes,
        Err(e) => {
            print_error(&e.to_string(), json);
            return EXIT_FAILED;
        }
    };
    let root = HostRoot::new(&cmd.root);
    let request = StageRequest {
        facts: host::gather(&root),
        root,
        profile,
        image: cmd.image.clone(),
        sha256: cmd.sha256.clone(),
        ca_certs: cmd.ca_cert.iter().cloned().collect(),
        config: cmd.config.clone(),
        backups: cmd.backups.clone(),
        hook: cmd.backup_hook.as_ref().map(|program| Hook {
            program: program.clone(),
            args: cmd.backup_hook_args.clone(),
            timeout: cmd.backup_hook_timeout,
        }),
        dry_run: cmd.dry_run,
        kernel_release: cmd
            .kernel_release
            .clone()
            .unwrap_or_else(host_extras::running_kernel_release),
        migrator,
        allow_unknown_device_type: cmd.allow_unknown_device_type,
        execute: ExecuteOptions {
            no_reboot: cmd.no_reboot,
            fail_after: std::env::var(FAIL_AFTER_ENV).ok(),
        },
    };
    match super::run_stage(&request, system) {
        Ok(StageOutcome::DryRun { text, plan }) => {
            if json {
                match plan.plan.to_json_pretty() {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        print_error(&e.to_string(), json);
                        return EXIT_FAILED;
                    }
                }
            } else {
                print!("{text}");
                println!("Dry run: nothing was changed.");
            }
            0
        }
        Ok(StageOutcome::NotNow) => {
            let message = "the backup hook asked to retry later (exit 3); nothing was changed";
            if json {
                println!("{}", serde_json::json!({ "not_now": message }));
            }
            eprintln!("{message}");
            EXIT_NOT_NOW
        }
        Ok(StageOutcome::Staged { report, plan }) => {
            let message = if report.rebooting {
                "staged and armed; rebooting into the migration environment".to_string()
            } else {
                "staged and armed; the migration starts at the next reboot (`stager abort` undoes it)".to_string()
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "staged": report.staged, "rebooting": report.rebooting, "staging_fs_uuid": plan.plan.staging.fs_uuid })
                );
            } else {
                println!("{message}");
            }
            0
        }
        Err(error) => {
            print_error(&error.to_string(), json);
            if let StageError::Refused(_) = error {
                log::info!("refused before any change");
            }
            error.exit_code()
        }
    }
}

fn system_for(root: &HostRoot) -> Box<dyn System> {
    if root.dir() == std::path::Path::new("/") {
        Box::new(RealSystem)
    } else {
        Box::new(super::system::FixtureSystem::default())
    }
}

pub fn run_status(root: PathBuf, json: bool) -> i32 {
    let root = HostRoot::new(root);
    let mut system = system_for(&root);
    match crate::status::status(&root, system.as_mut()) {
        Ok(status) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "staged": status.state.is_some(),
                        "armed": format!("{:?}", status.armed),
                        "changes": status.state.as_ref().map(|s| s.entries.iter().map(|e| format!("{} {:?}", e.change.name(), e.progress)).collect::<Vec<_>>()),
                        "journal_step": status.journal_step,
                        "log_tail": status.log_tail,
                        "staging_problem": status.staging_problem,
                    })
                );
            } else {
                print!("{}", crate::status::render_text(&status));
            }
            0
        }
        Err(e) => {
            print_error(&e.to_string(), json);
            EXIT_FAILED
        }
    }
}

pub fn run_abort(root: PathBuf, json: bool) -> i32 {
    let root = HostRoot::new(root);
    let mut system = system_for(&root);
    match crate::abort::abort(&root, system.as_mut()) {
        Ok(crate::abort::AbortOutcome::NothingStaged) => {
            let message = "nothing is staged; nothing to undo";
            if json {
                println!("{}", serde_json::json!({ "aborted": false, "message": message }));
            } else {
                println!("{message}");
            }
            0
        }
        Ok(crate::abort::AbortOutcome::Restored(report)) => {
            if json {
                println!("{}", serde_json::json!({ "aborted": true, "undone": report.undone }));
            } else {
                println!("aborted: {}", super::execute::describe(&report));
            }
            0
        }
        Err(e) => {
            print_error(&e.to_string(), json);
            EXIT_FAILED
        }
    }
}
