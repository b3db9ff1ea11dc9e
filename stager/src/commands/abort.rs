//! `stager abort`: disarm the migration and restore the host exactly as it was.

use super::{session_exit_code, Global};
use crate::abort::AbortOutcome;
use crate::cli::RootArgs;
use crate::host::HostRoot;
use crate::output::{print_error, print_line, EXIT_FAILED, EXIT_OK};
use crate::run_session::RunSession;

/// Under the run lock, logged, and not interrupted by signals (one that arrives is noted in
/// the output; the undo runs to its end).
pub fn run(args: &RootArgs, global: &Global) -> i32 {
    let json = global.json;
    let root = HostRoot::new(&args.root);
    let mut system = crate::stage::engine::system::for_root(&root);
    let session = match RunSession::start(&root, "abort") {
        Ok(session) => session,
        Err(e) => return print_error(&e.to_string(), json, session_exit_code(&e)),
    };
    crate::interrupt::enter_critical();
    let (code, message) = match crate::abort::abort(&root, system.as_mut()) {
        Ok(AbortOutcome::NothingStaged) => {
            let message = "nothing is staged; nothing to undo".to_string();
            if json {
                print_line(
                    &serde_json::json!({ "aborted": false, "message": message }).to_string(),
                );
            } else {
                print_line(&message);
            }
            (EXIT_OK, message)
        }
        Ok(AbortOutcome::Restored(report)) => {
            let message = format!("aborted: {}", crate::stage::engine::execute::describe(&report));
            if json {
                print_line(
                    &serde_json::json!({ "aborted": true, "undone": report.undone }).to_string(),
                );
            } else {
                print_line(&message);
            }
            (EXIT_OK, message)
        }
        Err(e) => (print_error(&e.to_string(), json, EXIT_FAILED), format!("error: {e}")),
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
