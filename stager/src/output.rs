//! What the stager hands back to whoever ran it: the exit codes, the versions of the `--json`
//! documents, and the one-line error every command prints the same way.

/// The command succeeded (`check`: staging may proceed; warnings do not block).
pub const EXIT_OK: i32 = 0;
/// Refused before anything changed: a check failed, a refusal, an unknown profile.
pub const EXIT_REFUSED: i32 = 1;
/// The command could not run, or failed (a failed `stage` was rolled back).
pub const EXIT_FAILED: i32 = 2;
/// The backup hook said "not now" (nothing changed; retry later): the hook's own code.
pub const EXIT_NOT_NOW: i32 = crate::stage::hook::NOT_NOW;

/// Versions of the `--json` documents of `check`, `stage` and `status` (each document's
/// `"schema"` field; docs/fleet-interface.md describes them). A field may be added within a
/// version; one removed, renamed or changed in meaning bumps the number.
pub const CHECK_SCHEMA: &str = "swapover.check/1";
pub const STAGE_SCHEMA: &str = "swapover.stage/1";
pub const STATUS_SCHEMA: &str = "swapover.status/1";

/// One line on stdout (and the run log, when a run has one).
pub fn print_line(text: &str) {
    crate::console_log::out(&format!("{text}\n"));
}

/// Prints a one-line error (and, with --json, `{"error": ...}` on stdout); returns `code`.
pub fn print_error(message: &str, json: bool, code: i32) -> i32 {
    if json {
        print_line(&serde_json::json!({ "error": message }).to_string());
    }
    crate::console_log::err(&format!("error: {message}\n"));
    code
}
