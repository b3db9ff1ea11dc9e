//! The power-cut campaign (issue 8): migrations with power cuts at random moments, seeded and
//! reproducible. Each run cuts the VM `--cuts-per-run` times (the first cut may land in the
//! stager's staging, the rest in the migrator), restarts it on the same disks, and must end
//! in resinOS with every file intact, or back in the old OS.
//!
//!   cargo run --release -p qemu-tests --bin power-cut-campaign -- [--seed S] [--cuts N] [--cuts-per-run K]

use qemu_tests::e2e;
use std::process::ExitCode;

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let seed = arg(
        &args,
        "--seed",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs()),
    );
    let total_cuts = arg(&args, "--cuts", 20) as usize;
    let per_run = arg(&args, "--cuts-per-run", 5).max(1) as usize;
    println!("power-cut campaign: seed {seed}, {total_cuts} cuts, up to {per_run} per run (rerun with --seed {seed})");
    let (mut cuts, mut completed, mut old_os, mut bricked, mut lost) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut run = 0u64;
    while cuts < total_cuts {
        let run_seed = seed.wrapping_add(run);
        let want = per_run.min(total_cuts - cuts);
        // Every third run also cuts during the stager's staging.
        match e2e::random_cuts_run(&format!("campaign-{seed}-{run}"), run_seed, want, run % 3 == 2)
        {
            Ok(r) => {
                cuts += r.cuts.max(1);
                lost += r.files_lost;
                if r.completed {
                    completed += 1;
                } else if r.outcome.is_none() && r.restored_old_os {
                    old_os += 1;
                } else {
                    bricked += 1;
                }
                println!(
                    "run {run} (seed {run_seed}): {} cuts, completed={}, files lost={}",
                    r.cuts, r.completed, r.files_lost
                );
            }
            Err(e) => {
                bricked += 1;
                cuts += want;
                println!("run {run} (seed {run_seed}): NO OUTCOME (counted as bricked): {e:#}");
            }
        }
        run += 1;
    }
    println!("{cuts} cuts, {completed} completed, {old_os} back in the old OS and aborted to original, {bricked} bricked, {lost} files lost (seed {seed})");
    if bricked == 0 && lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
