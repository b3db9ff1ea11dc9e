//! `stager stage` / `status` / `abort` as the command line runs them: arguments in, text
//! (or JSON) out, an exit code back.

use super::execute::ExecuteOptions;
use super::hook::Hook;
use super::system::{RealSystem, System};
use super::{host_extras, StageError, StageOutcome, StageRequest, EXIT_FAILED, EXIT_NOT_NOW};
use crate::cli::{STAGE_SCHEMA, STATUS_SCHEMA};
use crate::console_log;
use crate::host::{self, HostRoot};
use crate::run_session::{RunSession, SessionError};
use crate::state::StateStore;
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

/// Prints a one-line error (and, with --json, `{"error": ...}` on stdout); never fails.
fn print_error(message: &str, json: bool) {
    if json {
        console_log::out(&format!("{}\n", serde_json::json!({ "error": message })));
    }
    console_log::err(&format!("error: {message}\n"));
}

fn print_out(text: &str) {
    console_log::out(&format!("{text}\n"));
}

/// What a `stage` exit code means, as the `"result"` of its JSON document.
pub fn stage_result(code: i32) -> &'static str {
    match code {
        0 => "staged",
        super::EXIT_REFUSED => "refused",
        EXIT_NOT_NOW => "not_now",
        _ => "failed",
    }
}

/// The one JSON document `stage --json` prints: `fields` plus the schema, result and exit code.
fn stage_document(code: i32, mut fields: serde_json::Value) -> String {
    if let Some(map) = fields.as_object_mut() {
        map.insert("schema".into(), STAGE_SCHEMA.into());
        map.insert("result".into(), stage_result(code).into());
        map.insert("exit_code".into(), code.into());
    }
    fields.to_string()
}

/// A `stage` that ends with an error: one line on stderr and, with --json, the document.
fn stage_error(message: &str, json: bool, code: i32) -> (i32, String) {
    if json {
        print_out(&stage_document(code, serde_json::json!({ "error": message })));
    }
    console_log::err(&format!("error: {message}\n"));
    (code, format!("error: {message}"))
}

/// Runs `stage` against the real system (or, with a fixture `--root`, real mounts but
/// recorded swap/reboot: see [`super::system::FixtureSystem`]). A real run holds the host's
/// run lock, logs to the run log and turns signals into a rollback ([`RunSession`]).
pub fn run(cmd: &StageCommand, json: bool) -> i32 {
    let root = HostRoot::new(&cmd.root);
    let mut system = system_for(&root);
    if cmd.dry_run {
        return run_with(cmd, json, system.as_mut()).0;
    }
    let session = match RunSession::start(&root, "stage") {
        Ok(session) => session,
        Err(e) => {
            let code = match e {
                SessionError::Lock(crate::run_lock::LockError::Busy { .. }) => super::EXIT_REFUSED,
                _ => EXIT_FAILED,
            };
            return stage_error(&e.to_string(), json, code).0;
        }
    };
    let (code, outcome) = match undo_unfinished(&root, system.as_mut()) {
        Ok(()) => run_with(cmd, json, system.as_mut()),
        Err(problem) => stage_error(&problem, json, EXIT_FAILED),
    };
    session.finish(&outcome);
    code
}

/// A journal left by a run that never finished (a power cut, SIGKILL: nothing rolled it
/// back) and never armed: undo what it records before staging again. An armed staging is left
/// for `stager abort` (planning refuses it, saying so).
fn undo_unfinished(root: &HostRoot, system: &mut dyn System) -> Result<(), String> {
    let store = StateStore::new(root);
    let state = match store.load() {
        Ok(Some(state)) if !state.armed => state,
        Ok(_) => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let last = state.entries.last().map_or("none", |e| e.change.name());
    log::warn!(
        "a previous run stopped at step {last} without finishing or rolling back (killed, or a power cut): undoing the {} changes its journal records, then staging again",
        state.entries.len()
    );
    crate::interrupt::enter_critical();
    let report = super::rollback::rollback(root, &state, system);
    if !report.complete() {
        return Err(format!(
            "cannot undo the unfinished staging a previous run left ({}); fix that, then run `stager abort`",
            report.failed.join("; ")
        ));
    }
    log::info!("the unfinished staging was undone: {}", super::execute::describe(&report));
    if let Some(interrupted) = crate::interrupt::received() {
        return Err(format!(
            "{interrupted} while the unfinished staging was undone; it was undone completely, nothing else was changed; run `stager stage` again"
        ));
    }
    Ok(())
}

/// Runs `stage`; returns the exit code and the outcome line recorded for `stager status`.
pub fn run_with(cmd: &StageCommand, json: bool, system: &mut dyn System) -> (i32, String) {
    let profile = match load_profile(cmd) {
        Ok(profile) => profile,
        Err(e) => return stage_error(&e, json, super::EXIT_REFUSED),
    };
    let migrator = match crate::migrator_payload::load(cmd.migrator.as_deref()) {
        Ok(bytes) => bytes,
        Err(e) => return stage_error(&e.to_string(), json, EXIT_FAILED),
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
                    Ok(text) => print_out(&text),
                    Err(e) => return stage_error(&e.to_string(), json, EXIT_FAILED),
                }
            } else {
                console_log::out(&text);
                print_out("Dry run: nothing was changed.");
            }
            (0, "dry run: nothing was changed".to_string())
        }
        Ok(StageOutcome::NotNow) => {
            let message = "the backup hook asked to retry later (exit 3); nothing was changed";
            if json {
                print_out(&stage_document(EXIT_NOT_NOW, serde_json::json!({ "not_now": message })));
            }
            console_log::err(&format!("{message}\n"));
            (EXIT_NOT_NOW, message.to_string())
        }
        Ok(StageOutcome::Staged { report, plan }) => {
            let interrupted = crate::interrupt::received();
            let mut message = if report.rebooting {
                "staged and armed; rebooting into the migration environment".to_string()
            } else {
                "staged and armed; the migration starts at the next reboot (`stager abort` undoes it)".to_string()
            };
            if let Some(interrupted) = interrupted {
                message = format!("{interrupted} after the last step had begun, so staging was completed: {message}; not rebooting");
            }
            if json {
                print_out(&stage_document(
                    0,
                    serde_json::json!({ "staged": report.staged, "rebooting": report.rebooting, "staging_fs_uuid": plan.plan.staging.fs_uuid, "interrupted": interrupted.map(|i| i.to_string()) }),
                ));
            } else {
                print_out(&message);
            }
            (0, message)
        }
        Err(error) => {
            if let StageError::Refused(_) = error {
                log::info!("refused before any change");
            }
            stage_error(&error.to_string(), json, error.exit_code())
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
                print_out(
                    &serde_json::json!({
                        "schema": STATUS_SCHEMA,
                        "staged": status.state.is_some(),
                        "armed": format!("{:?}", status.armed),
                        "changes": status.state.as_ref().map(|s| s.entries.iter().map(|e| format!("{} {:?}", e.change.name(), e.progress)).collect::<Vec<_>>()),
                        "journal_step": status.journal_step,
                        "log_tail": status.log_tail,
                        "staging_problem": status.staging_problem,
                        "last_run": status.last_run,
                        "running": status.running,
                        "log_file": crate::run_log::LOG_FILE,
                    })
                    .to_string(),
                );
            } else {
                console_log::out(&crate::status::render_text(&status));
            }
            0
        }
        Err(e) => {
            print_error(&e.to_string(), json);
            EXIT_FAILED
        }
    }
}

/// `stager abort`: under the run lock, logged, and not interrupted by signals (one that
/// arrives is noted in the output; the undo runs to its end).
pub fn run_abort(root: PathBuf, json: bool) -> i32 {
    let root = HostRoot::new(root);
    let mut system = system_for(&root);
    let session = match RunSession::start(&root, "abort") {
        Ok(session) => session,
        Err(e) => {
            print_error(&e.to_string(), json);
            return match e {
                SessionError::Lock(crate::run_lock::LockError::Busy { .. }) => super::EXIT_REFUSED,
                _ => EXIT_FAILED,
            };
        }
    };
    crate::interrupt::enter_critical();
    let (code, message) = match crate::abort::abort(&root, system.as_mut()) {
        Ok(crate::abort::AbortOutcome::NothingStaged) => {
            let message = "nothing is staged; nothing to undo".to_string();
            if json {
                print_out(&serde_json::json!({ "aborted": false, "message": message }).to_string());
            } else {
                print_out(&message);
            }
            (0, message)
        }
        Ok(crate::abort::AbortOutcome::Restored(report)) => {
            let message = format!("aborted: {}", super::execute::describe(&report));
            if json {
                print_out(
                    &serde_json::json!({ "aborted": true, "undone": report.undone }).to_string(),
                );
            } else {
                print_out(&message);
            }
            (0, message)
        }
        Err(e) => {
            print_error(&e.to_string(), json);
            (EXIT_FAILED, format!("error: {e}"))
        }
    };
    let message = match crate::interrupt::received() {
        Some(interrupted) => {
            let note = format!(
                "{interrupted} during abort; the abort was not interrupted and ran to its end"
            );
            log::warn!("{note}");
            format!("{message} ({note})")
        }
        None => message,
    };
    session.finish(&message);
    code
}
