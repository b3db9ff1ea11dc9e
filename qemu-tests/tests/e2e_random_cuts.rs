//! The CI subset of the power-cut campaign: one migration with three power cuts at random
//! (seeded) moments. The seed is printed; rerun a failure with SWAPOVER_CUT_SEED=<seed>.
//! CI uses a fixed seed so that its runs are comparable; new seeds are the campaign
//! binary's job (`power-cut-campaign`, a fresh seed each run unless `--seed` is given).

use qemu_tests::e2e;

const CI_SEED: u64 = 20_261_126;

#[test]
fn migration_with_random_power_cuts_ends_in_resinos_with_every_file() -> anyhow::Result<()> {
    let seed =
        std::env::var("SWAPOVER_CUT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(CI_SEED);
    eprintln!("[campaign] seed {seed} (rerun with SWAPOVER_CUT_SEED={seed})");
    let run = e2e::random_cuts_run("e2e_random_cuts", seed, 3, false)?;
    eprintln!(
        "[campaign] {} cuts, completed={}, files lost={}",
        run.cuts, run.completed, run.files_lost
    );
    let outcome = run.outcome.ok_or_else(|| {
        anyhow::anyhow!("seed {seed}: the device came back to the old OS instead of resinOS")
    })?;
    assert!(outcome.data_differences.is_empty(), "seed {seed}: {:?}", outcome.data_differences);
    assert!(run.completed, "seed {seed}: {:?}", outcome.verdict.summary);
    Ok(())
}
