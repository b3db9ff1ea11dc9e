//! The `restore` step: config.json, hostname and keyfiles onto resin-boot (through
//! [`crate::fatboot`], or the whole partition built by [`super::boot_image`] on the UEFI
//! route, or file by file by [`super::boot_update`] on the U-Boot and Pi routes); the backups, log and plan onto resin-data ([`super::restore_data`]).

use std::fs::File;
use std::path::Path;

use plan::{PartitionRole, Plan};

use super::backup_data::{self, BACKUP_DIR, CONNECTIONS_DIR, HOSTNAME_FILE};
use super::boot_switch::BootSwitch;
use super::context::{io_err, Context, StepError};
use super::{boot_image, boot_update, written_last};
use crate::fatboot::{self, FatFile, PartitionSlice};

/// config.json, hostname, keyfiles onto resin-boot; backups, log and plan onto resin-data.
pub fn step_restore(ctx: &mut Context<'_>) -> Result<(), StepError> {
    let plan = ctx.plan;
    let staging_dir = ctx.staging_dir();
    let boot_files = boot_files(plan, &ctx.staging_root, &staging_dir)?;
    let boot_role = plan.config_json.restore_to.partition;
    let boot = plan.layout.by_role(boot_role).ok_or_else(|| {
        StepError::Plan(format!("the layout has no {boot_role} partition for config.json"))
    })?;
    let units = |e: plan::UnitError| StepError::Plan(e.to_string());
    let start = boot.disk_offset(plan.source_disk.sector_size).map_err(units)?;
    let len = boot.size_bytes(&plan.layout).map_err(units)?;
    let disk = ctx.open_disk()?;
    match written_last::boot_range(plan)? {
        // The flash held resin-boot back: it is written whole, carrying the migration kernel on.
        Some((range, _)) if BootSwitch::for_plan(plan).is_some() => {
            let switch = BootSwitch::for_plan(plan)
                .ok_or_else(|| StepError::Plan("no boot switch on this route".into()))?;
            let files = image_boot_files(&ctx.image_path(), range, &boot_files)?;
            let boot_dir = ctx.fs.open_boot()?;
            let updated = boot_update::update(&boot_dir, &files, &switch);
            ctx.fs.close_boot()?;
            updated?;
        }
        Some((range, name)) => {
            let built = boot_image::build(
                &ctx.image_path(),
                range,
                &disk,
                (start, len),
                &boot_files,
                &staging_dir,
            )?;
            boot_image::write(&disk, range, &built, &name)?;
        }
        None => {
            restore_or_save_boot(&disk, start, len, &staging_dir)?;
            fatboot::write_files(PartitionSlice::new(&disk, start, len), &boot_files)
                .map_err(io_err("write resin-boot files on", &ctx.disk_path))?;
            disk.sync_data().map_err(io_err("sync", &ctx.disk_path))?;
        }
    }
    log::info!(
        "restore: {} file(s) written to {}: {}",
        boot_files.len(),
        boot.name,
        boot_files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>().join(", ")
    );
    let data = ctx.fs.open_data()?;
    let restored = super::restore_data::restore_data(plan, &staging_dir, &data);
    let closed = ctx.fs.close_data();
    let count = restored?;
    closed?;
    log::info!("restore: {count} archive entries restored");
    Ok(())
}

/// The new resin-boot files on the routes that update it file by file: the image's, with `added` (config.json, keyfiles)
/// in place of the image's file of the same path.
fn image_boot_files(
    image: &Path,
    range: crate::flash::HeldRange,
    added: &[FatFile],
) -> Result<Vec<FatFile>, StepError> {
    let bytes = boot_image::image_bytes(image, range)?;
    let mut files = boot_image::all_files(std::io::Cursor::new(bytes))
        .map_err(io_err("read the image's boot partition in", image))?;
    files.retain(|f| !added.iter().any(|a| a.path.eq_ignore_ascii_case(&f.path)));
    files.extend(added.iter().cloned());
    Ok(files)
}

/// The flashed resin-boot, kept on staging before the first FAT write.
pub const BOOT_SNAPSHOT_FILE: &str = "resin-boot.orig";

/// Before the first FAT write, save the flashed (verified) resin-boot to staging;
/// before every later attempt, put it back, so a write torn by a power cut never
/// leaves fatfs a damaged file system to work on.
fn restore_or_save_boot(
    disk: &File,
    start: plan::Bytes,
    len: plan::Bytes,
    staging_dir: &Path,
) -> Result<(), StepError> {
    use std::os::unix::fs::FileExt;
    let path = staging_dir.join(BOOT_SNAPSHOT_FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == len.get()) {
        let saved = std::fs::read(&path).map_err(io_err("read", &path))?;
        disk.write_all_at(&saved, start.get())
            .map_err(io_err("put back resin-boot from", &path))?;
        disk.sync_data().map_err(io_err("sync", &path))?;
        log::info!("restore: resin-boot put back as flashed before writing it again");
        return Ok(());
    }
    let size = usize::try_from(len.get())
        .map_err(|_| StepError::Plan(format!("resin-boot of {len} is too large")))?;
    let mut flashed = vec![0u8; size];
    disk.read_exact_at(&mut flashed, start.get()).map_err(io_err("read resin-boot for", &path))?;
    crate::durable::write_durably(&path, &flashed).map_err(backup_data::BackupError::from)?;
    Ok(())
}

/// The files resin-boot receives: config.json (with the hostname when it has none)
/// and the converted NetworkManager keyfiles.
pub fn boot_files(
    plan: &Plan,
    staging_root: &Path,
    staging_dir: &Path,
) -> Result<Vec<FatFile>, StepError> {
    if plan.config_json.restore_to.partition != PartitionRole::Boot {
        return Err(StepError::Plan(format!(
            "config.json onto {} is not supported; only resin-boot",
            plan.config_json.restore_to.partition
        )));
    }
    let staged = staging_root.join(plan.config_json.staged_at.trim_start_matches('/'));
    let text = std::fs::read_to_string(&staged).map_err(io_err("read", &staged))?;
    let backup_dir = staging_dir.join(BACKUP_DIR);
    let saved_hostname = std::fs::read_to_string(backup_dir.join(HOSTNAME_FILE))
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    let hostname = plan.hostname.clone().or(saved_hostname);
    let config = fatboot::config_with_hostname(&text, hostname.as_deref())?;
    let mut files = vec![FatFile {
        path: plan.config_json.restore_to.path.trim_start_matches('/').to_string(),
        contents: config.into_bytes(),
    }];
    let connections = backup_dir.join(CONNECTIONS_DIR);
    if let Ok(dir) = std::fs::read_dir(&connections) {
        let mut names: Vec<_> = dir.filter_map(Result::ok).map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            let path = connections.join(&name);
            let contents = std::fs::read(&path).map_err(io_err("read", &path))?;
            files.push(FatFile {
                path: format!("{CONNECTIONS_DIR}/{}", name.to_string_lossy()),
                contents,
            });
        }
    }
    Ok(files)
}
