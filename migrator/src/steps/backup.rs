//! The `backup` step: the old root's volumes, network settings and hostname onto staging
//! (the work itself is [`super::backup_data`]).

use super::backup_data;
use super::context::{Context, StepError};

/// Back up the old root (mounted read-only) onto staging.
pub fn step_backup(ctx: &mut Context<'_>) -> Result<(), StepError> {
    let old_root = ctx.fs.open_old_root()?;
    let result = backup_data::backup_all(ctx.plan, &old_root, &ctx.staging_dir());
    ctx.fs.close_old_root()?;
    let report = result?;
    log::info!(
        "backup: {} volume(s), {} keyfile(s), hostname {:?}",
        report.volumes.len(),
        report.keyfiles.len(),
        report.hostname
    );
    Ok(())
}
