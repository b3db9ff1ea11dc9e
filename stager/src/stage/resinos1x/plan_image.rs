//! `stager plan-image`: plans a resinOS 1.x → 2.x migration against a 1.x disk or disk
//! image and prints the plan (`--json`: the plan's JSON). Reads only.

use super::app_data;
use super::boot_counter;
use super::pi_trial::{self, PiBootSet};
use super::planner::{self, BootFile, Inputs, Plan1x};
use super::refusal::Refusal1x;
use super::source_disk::{self, SourceDisk1x};
use crate::stage::{config_json, image_probe};
use board_profiles::Profile;
use plan::{Bytes, PartitionRole};
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The boot partition is read into memory up to this size.
const MAX_BOOT_BYTES: u64 = 256 * 1024 * 1024;

/// What `plan-image` was given.
#[derive(Debug, Clone)]
pub struct PlanImageRequest {
    pub profile: Profile,
    /// The 1.x disk: a block device or an image of it.
    pub disk: PathBuf,
    /// The resinOS 2.x image (.img or .img.xz).
    pub image: PathBuf,
    pub config: PathBuf,
    /// Where the 1.x data partition is mounted (its `resin-data` directory is measured).
    pub data_root: PathBuf,
    /// The migration kernel and initramfs files (their sizes count).
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub allow_unknown_device_type: bool,
    /// Physical memory (`/dev/mem`), where U-Boot's boot counter is read on boards whose
    /// profile arms a U-Boot trial.
    pub phys_mem: PathBuf,
}

fn file_size(path: &Path, what: &str) -> Result<Bytes, Refusal1x> {
    std::fs::metadata(path).map(|m| Bytes(m.len())).map_err(|e| Refusal1x::Disk {
        disk: path.display().to_string(),
        problem: format!("the {what} cannot be read: {e}"),
    })
}

/// What was read from the 1.x boot partition's FAT.
#[derive(Debug, Clone, Default)]
pub struct BootRead {
    /// The profile's bootloader files.
    pub files: Vec<BootFile>,
    pub free: Option<Bytes>,
    /// Raspberry Pi (profile `pi_trial`): the trial set's files.
    pub pi: Option<PiBootSet>,
}

/// The profile's bootloader files, the free space of the 1.x boot partition and, on a
/// Raspberry Pi, the trial set it holds.
pub fn read_boot_files(disk: &SourceDisk1x, profile: &Profile) -> Result<BootRead, Refusal1x> {
    let shown = disk.path.display().to_string();
    let fail = |problem: String| Refusal1x::Disk { disk: shown.clone(), problem };
    let matched = source_disk::match_profile(disk, profile)?;
    let Some(boot) = source_disk::role(&matched, PartitionRole::Boot) else {
        return Ok(BootRead::default());
    };
    let len = boot.found.size.get().saturating_mul(512);
    if len > MAX_BOOT_BYTES {
        return Err(fail(format!("the boot partition is larger than {}", Bytes(MAX_BOOT_BYTES))));
    }
    let mut file = std::fs::File::open(&disk.path).map_err(|e| fail(e.to_string()))?;
    file.seek(SeekFrom::Start(boot.found.start.get() * 512)).map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(len).read_to_end(&mut bytes).map_err(|e| fail(e.to_string()))?;
    let fs = fatfs::FileSystem::new(Cursor::new(bytes), fatfs::FsOptions::new())
        .map_err(|e| fail(format!("{} is not a FAT file system: {e}", boot.expected.name)))?;
    let mut files = Vec::new();
    for name in &profile.bootloader_config_files {
        let bytes = match fs.root_dir().open_file(name) {
            Ok(mut f) => {
                let mut content = Vec::new();
                f.read_to_end(&mut content).map_err(|e| fail(format!("{name}: {e}")))?;
                Some(content)
            }
            Err(_) => None,
        };
        files.push(BootFile { name: name.clone(), bytes });
    }
    let free =
        fs.stats().ok().map(|s| Bytes(u64::from(s.free_clusters()) * u64::from(s.cluster_size())));
    let pi = match &profile.pi_trial {
        Some(trial) => Some(
            pi_trial::read_boot_set(&fs, trial)
                .map_err(|e| fail(format!("{}: {e}", boot.expected.name)))?,
        ),
        None => None,
    };
    Ok(BootRead { files, free, pi })
}

/// Reads everything and plans.
pub fn plan(req: &PlanImageRequest) -> Result<Plan1x, Refusal1x> {
    let initramfs = file_size(&req.initramfs, "initramfs")?;
    plan_with_initramfs(req, initramfs)
}

/// Plans with the initramfs's size given (`stage-1x` builds it; `req.initramfs` is unused).
pub fn plan_with_initramfs(req: &PlanImageRequest, initramfs: Bytes) -> Result<Plan1x, Refusal1x> {
    let disk = source_disk::read(&req.disk)?;
    source_disk::match_profile(&disk, &req.profile)?;
    let config = config_json::read(&req.config).map_err(crate::stage::Refusal::from)?;
    let app_data = app_data::measure(&req.data_root, &req.profile)?;
    let kernel = file_size(&req.kernel, "kernel")?;
    if planner::armed_by_firmware(&req.profile) {
        efivars::check_efi_stub(&req.kernel).map_err(Refusal1x::KernelNotEfi)?;
    }
    let boot = read_boot_files(&disk, &req.profile)?;
    let image = image_probe::probe(&req.image).map_err(crate::stage::Refusal::from)?;
    let boot_counter = match &req.profile.uboot_trial {
        Some(trial) => Some(boot_counter::read(&req.phys_mem, &trial.bootcount)?),
        None => None,
    };
    planner::make_plan(&Inputs {
        profile: &req.profile,
        disk: &disk,
        image: &image,
        config: &config,
        app_data: &app_data,
        kernel,
        initramfs,
        boot_files: &boot.files,
        boot_free: boot.free,
        pi_boot: boot.pi.as_ref(),
        allow_unknown_device_type: req.allow_unknown_device_type,
        boot_counter,
    })
}
