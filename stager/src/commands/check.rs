//! `stager check`: gather the host's facts, run every check (with the profile, image and
//! config.json when given: see [`crate::input_checks`]), print them.

use super::Global;
use crate::checks::{CheckInputs, CheckReport, Status};
use crate::cli::CheckArgs;
use crate::host::{self, HostRoot};
use crate::input_checks::{self, CheckRequest};
use crate::output::{print_error, CHECK_SCHEMA, EXIT_FAILED, EXIT_OK, EXIT_REFUSED};

/// `stager check`: exit 0 when staging may proceed, 1 when a check failed.
pub fn run(args: &CheckArgs, global: &Global) -> i32 {
    let json = global.json;
    let profile = match args.profile.as_deref().map(|name| global.catalog.resolve(name)).transpose()
    {
        Ok(profile) => profile,
        Err(e) => return print_error(&e.to_string(), json, EXIT_REFUSED),
    };
    let root = HostRoot::new(&args.root);
    let facts = host::gather(&root);
    let inputs = CheckInputs {
        expected_boot_mode: args.expect_boot_mode.map(Into::into),
        needed_swap: args.swap_needed,
        min_memory: args.min_memory,
        target_layout_size: args.target_size,
    };
    let request = CheckRequest {
        profile,
        image: args.image.clone(),
        config: args.config.clone(),
        flags: inputs.clone(),
        kernel_release: args
            .kernel_release
            .clone()
            .unwrap_or_else(crate::stage::host_extras::running_kernel_release),
        migrator: crate::migrator_payload::load(args.migrator.as_deref()),
    };
    let report = input_checks::run(&root, &facts, &request);
    if json {
        let document = serde_json::json!({ "schema": CHECK_SCHEMA, "report": report, "facts": facts, "inputs": inputs });
        match serde_json::to_string_pretty(&document) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                let problem = format!("cannot write the report as JSON: {e}");
                return print_error(&problem, false, EXIT_FAILED);
            }
        }
    } else {
        print!("{}", render_text(&report));
    }
    if report.may_proceed {
        EXIT_OK
    } else {
        EXIT_REFUSED
    }
}

/// The report as a person reads it: one block per check, then a verdict.
pub fn render_text(report: &CheckReport) -> String {
    let mut out = String::new();
    for check in &report.checks {
        out.push_str(&format!("{:<4}  {:<20} {}\n", check.status, check.id.as_str(), check.title));
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
