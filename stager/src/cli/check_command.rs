//! `stager check`: gather the host's facts, run every check, print them.

use super::{CheckArgs, EXIT_CHECK_FAILED, EXIT_ERROR, EXIT_OK};
use crate::checks::{self, CheckInputs, CheckReport, Status};
use crate::host::{self, HostRoot};

pub fn run(args: &CheckArgs, json: bool) -> i32 {
    if args.profile.is_some() || args.image.is_some() || args.config.is_some() {
        eprintln!(
            "note: --profile, --image and --config are not evaluated by this build yet; \
             give the requirements with --expect-boot-mode, --swap-needed, --min-memory and --target-size"
        );
    }
    let root = HostRoot::new(&args.root);
    let facts = host::gather(&root);
    let inputs = CheckInputs {
        expected_boot_mode: args.expect_boot_mode.map(Into::into),
        needed_swap: args.swap_needed,
        min_memory: args.min_memory,
        target_layout_size: args.target_size,
    };
    let report = checks::run_all(&facts, &inputs);
    if json {
        let document = serde_json::json!({ "report": report, "facts": facts, "inputs": inputs });
        match serde_json::to_string_pretty(&document) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: cannot write the report as JSON: {e}");
                return EXIT_ERROR;
            }
        }
    } else {
        print!("{}", render_text(&report));
    }
    if report.may_proceed {
        EXIT_OK
    } else {
        EXIT_CHECK_FAILED
    }
}

/// The report as a person reads it: one block per check, then a verdict.
pub fn render_text(report: &CheckReport) -> String {
    let mut out = String::new();
    for check in &report.checks {
        out.push_str(&format!(
            "{:<4}  {:<20} {}\n",
            check.status,
            check.id.as_str(),
            check.title
        ));
        out.push_str(&format!("      found:  {}\n", check.found));
        out.push_str(&format!("      reason: {}\n", check.reason));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("      fix:    {fix}\n"));
        }
    }
    let verdict = if report.may_proceed {
        "staging may proceed"
    } else {
        "staging may NOT proceed: fix the failed checks"
    };
    out.push_str(&format!(
        "\n{} passed, {} warnings, {} failed: {verdict}.\n",
        report.count(Status::Pass),
        report.count(Status::Warn),
        report.count(Status::Fail)
    ));
    out
}
