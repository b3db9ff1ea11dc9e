//! `stager status`: what is staged or armed, and why a past attempt stopped.

use super::Global;
use crate::cli::RootArgs;
use crate::host::HostRoot;
use crate::output::{print_error, print_line, EXIT_FAILED, EXIT_OK, STATUS_SCHEMA};

pub fn run(args: &RootArgs, global: &Global) -> i32 {
    let root = HostRoot::new(&args.root);
    let mut system = crate::stage::engine::system::for_root(&root);
    match crate::status::status(&root, system.as_mut()) {
        Ok(status) => {
            if global.json {
                print_line(
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
                crate::console_log::out(&crate::status::render_text(&status));
            }
            EXIT_OK
        }
        Err(e) => print_error(&e.to_string(), global.json, EXIT_FAILED),
    }
}
