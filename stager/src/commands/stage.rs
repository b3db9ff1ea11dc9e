//! `stager stage`: arguments in, text (or JSON) out, an exit code back.

use super::{session_exit_code, Global};
use crate::cli::StageArgs;
use crate::console_log;
use crate::host::{self, HostRoot};
use crate::output::{print_line, EXIT_FAILED, EXIT_NOT_NOW, EXIT_OK, EXIT_REFUSED, STAGE_SCHEMA};
use crate::run_session::RunSession;
use crate::stage::engine::execute::ExecuteOptions;
use crate::stage::engine::system::System;
use crate::stage::hook::Hook;
use crate::stage::refusal::RefusalText;
use crate::stage::{host_extras, StageError, StageOutcome, StageRequest};
use crate::state::StateStore;
use std::time::Duration;

/// What a `stage` exit code means, as the `"result"` of its JSON document.
pub fn stage_result(code: i32) -> &'static str {
    match code {
        EXIT_OK => "staged",
        EXIT_REFUSED => "refused",
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
    stage_error_with(message, None, json, code)
}

/// As [`stage_error`]; a refusal's document also carries its `problem` and `fix` apart.
fn stage_error_with(
    message: &str,
    parts: Option<RefusalText>,
    json: bool,
    code: i32,
) -> (i32, String) {
    if json {
        let mut fields = serde_json::json!({ "error": message });
        if let (Some(parts), Some(map)) = (parts, fields.as_object_mut()) {
            map.insert("problem".into(), parts.problem.into());
            map.insert("fix".into(), parts.fix.into());
        }
        print_line(&stage_document(code, fields));
    }
    console_log::err(&format!("error: {message}\n"));
    (code, format!("error: {message}"))
}

/// Runs `stage` against the real system (or, with a fixture `--root`, real mounts but
/// recorded swap/reboot: see [`crate::stage::engine::system::for_root`]). A real run holds the host's
/// run lock, logs to the run log and turns signals into a rollback ([`RunSession`]).
pub fn run(args: &StageArgs, global: &Global) -> i32 {
    let json = global.json;
    let root = HostRoot::new(&args.root);
    let mut system = crate::stage::engine::system::for_root(&root);
    if args.dry_run {
        return run_with(args, global, &root, system.as_mut()).0;
    }
    let session = match RunSession::start(&root, "stage") {
        Ok(session) => session,
        Err(e) => return stage_error(&e.to_string(), json, session_exit_code(&e)).0,
    };
    let (code, outcome) = match undo_unfinished(&root, system.as_mut()) {
        Ok(()) => run_with(args, global, &root, system.as_mut()),
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
    let report = crate::stage::engine::rollback::rollback(root, &state, system);
    if !report.complete() {
        return Err(format!(
            "cannot undo the unfinished staging a previous run left ({}); fix that, then run `stager abort`",
            report.failed.join("; ")
        ));
    }
    log::info!(
        "the unfinished staging was undone: {}",
        crate::stage::engine::execute::describe(&report)
    );
    if let Some(interrupted) = crate::interrupt::received() {
        return Err(format!(
            "{interrupted} while the unfinished staging was undone; it was undone completely, nothing else was changed; run `stager stage` again"
        ));
    }
    Ok(())
}

/// The profile `--profile` names: a `--profile-file`'s profile is read from its file again,
/// a built-in one by its name.
fn load_profile(args: &StageArgs, global: &Global) -> Result<board_profiles::Profile, String> {
    match global.catalog.file_of(&args.profile) {
        Some(path) => board_profiles::Profile::from_file(path).map_err(|e| e.to_string()),
        None => board_profiles::Profile::builtin(&args.profile).map_err(|e| e.to_string()),
    }
}

/// The request `stage` runs, made once from its arguments.
fn request(args: &StageArgs, global: &Global, root: &HostRoot) -> Result<StageRequest, StageEnd> {
    let profile = load_profile(args, global).map_err(|e| (e, EXIT_REFUSED))?;
    let migrator = crate::migrator_payload::load(args.migrator.as_deref())
        .map_err(|e| (e.to_string(), EXIT_FAILED))?;
    Ok(StageRequest {
        facts: host::gather(root),
        root: root.clone(),
        profile,
        image: args.image.clone(),
        sha256: args.sha256.clone(),
        ca_certs: args.ca_cert.iter().cloned().collect(),
        config: args.config.clone(),
        backups: args.backups.clone(),
        hook: args.backup_hook.as_ref().map(|program| Hook {
            program: program.clone(),
            args: args.backup_hook_args.clone(),
            timeout: Duration::from_secs(args.backup_hook_timeout),
        }),
        dry_run: args.dry_run,
        kernel_release: args
            .kernel_release
            .clone()
            .unwrap_or_else(host_extras::running_kernel_release),
        migrator,
        allow_unknown_device_type: args.allow_unknown_device_type,
        execute: ExecuteOptions::from_env(args.no_reboot),
    })
}

/// Why a `stage` could not even be requested: the message and the exit code.
type StageEnd = (String, i32);

/// Runs `stage`; returns the exit code and the outcome line recorded for `stager status`.
fn run_with(
    args: &StageArgs,
    global: &Global,
    root: &HostRoot,
    system: &mut dyn System,
) -> (i32, String) {
    let json = global.json;
    let request = match request(args, global, root) {
        Ok(request) => request,
        Err((problem, code)) => return stage_error(&problem, json, code),
    };
    match crate::stage::run_stage(&request, system) {
        Ok(StageOutcome::DryRun { text, plan }) => {
            if json {
                match plan.plan.to_json_pretty() {
                    Ok(text) => print_line(&text),
                    Err(e) => return stage_error(&e.to_string(), json, EXIT_FAILED),
                }
            } else {
                console_log::out(&text);
                print_line("Dry run: nothing was changed.");
            }
            (EXIT_OK, "dry run: nothing was changed".to_string())
        }
        Ok(StageOutcome::NotNow) => {
            let message = "the backup hook asked to retry later (exit 3); nothing was changed";
            if json {
                print_line(&stage_document(
                    EXIT_NOT_NOW,
                    serde_json::json!({ "not_now": message }),
                ));
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
                print_line(&stage_document(
                    EXIT_OK,
                    serde_json::json!({ "staged": report.staged, "rebooting": report.rebooting, "staging_fs_uuid": plan.plan.staging.fs_uuid, "interrupted": interrupted.map(|i| i.to_string()) }),
                ));
            } else {
                print_line(&message);
            }
            (EXIT_OK, message)
        }
        Err(error) => {
            let parts = match &error {
                StageError::Refused(refusal) => {
                    log::info!("refused before any change");
                    Some(refusal.text())
                }
                _ => None,
            };
            stage_error_with(&error.to_string(), parts, json, error.exit_code())
        }
    }
}
