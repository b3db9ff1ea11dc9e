//! The resinOS 1.x → 2.x plan, from what was read: the 1.x disk (partitions found by
//! label), the profile, the probed 2.x image, config.json, the application data's size and
//! the migration kernel/initramfs sizes. Pure: reads nothing, changes nothing.
//!
//! The migration stages on the spare root `resin-updt`. The 2.x image is written over the
//! disk from sector 0, so `resin-updt` must lie wholly inside the image's `resin-rootB`
//! (the inactive 2.x root, written last: `layout.written_last`) or wholly past the image's
//! end; anything else would be overwritten while the migration still runs from it.

use super::app_data::AppData;
use super::boot_counter::BootCounter;
use super::boot_files::MigrationBoot;
use super::pi_trial::{self, PiBootSet};
use super::refusal::Refusal1x;
use super::source_disk::{self, Matched, SourceDisk1x};
use super::uboot_trial::{self, ORIGINAL_UENV, UENV};
use crate::stage::config_json::ConfigJsonFacts;
use crate::stage::image_probe::ImageFacts;
use crate::stage::ubuntu::planning::{self, ENTRY_ID, ENTRY_TITLE, STAGING_DIR};
use board_profiles::{BootMode, Bootloader, Profile};
use plan::{
    BackupItem, BackupSet, BackupVolume, Bytes, ConfigJson, DiskId, Extent, FailurePolicy,
    FileChange, FileChangeKind, FsPartition, FsType, GrubChanges, GrubRoute, ModuleLoad,
    NetworkSources, PartitionIdentity, PartitionRole, PiTrialBoot, Plan, SectorSize, Sectors,
    Sha256Hex, SourceDisk, Staging, TableKind, TargetImage, TargetLayout, TargetPartition,
    UbootTrialBoot, WatchdogFeed, FORMAT_VERSION,
};

/// Where resinOS 1.x mounts its boot partition (balenahup `upgrade-1.x-to-2.x.sh` reads
/// config.json from `/mnt/boot`; the profiles' `config_json_locations`).
pub const BOOT_MOUNT: &str = "/mnt/boot";
/// Fixed part of the spare root's margin (journal, log, plan, ext4 metadata beyond 5 %).
pub const STAGING_MARGIN_1X: Bytes = Bytes(8 * 1024 * 1024);
/// The migration environment's files, relative to a partition's root.
pub const KERNEL_FILE: &str = "swapover/vmlinuz";
pub const INITRAMFS_FILE: &str = "swapover/initramfs.img";
pub const CMDLINE_FILE: &str = "swapover/cmdline.txt";

/// A bootloader file on the 1.x boot partition, as read before planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFile {
    /// Path relative to the boot partition's root, as the profile lists it.
    pub name: String,
    /// Its bytes, `None` when the file does not exist.
    pub bytes: Option<Vec<u8>>,
}

/// Everything read before planning.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub profile: &'a Profile,
    pub disk: &'a SourceDisk1x,
    pub image: &'a ImageFacts,
    pub config: &'a ConfigJsonFacts,
    pub app_data: &'a AppData,
    /// The migration kernel and initramfs, as they will be staged.
    pub kernel: Bytes,
    pub initramfs: Bytes,
    /// The profile's bootloader files, read from the 1.x boot partition.
    pub boot_files: &'a [BootFile],
    /// Free space on the 1.x boot partition (Raspberry Pi: kernel and initramfs go there).
    pub boot_free: Option<Bytes>,
    pub allow_unknown_device_type: bool,
    /// U-Boot's boot counter, read when the profile arms a U-Boot trial (`uboot_trial`).
    pub boot_counter: Option<BootCounter>,
    /// Raspberry Pi (profile `pi_trial`): the trial set read from resin-boot.
    pub pi_boot: Option<&'a PiBootSet>,
}

/// How often the migrator feeds the board's watchdog (BeagleBone: a 60 s timeout, contract B11).
pub const WATCHDOG_INTERVAL_SECS: u32 = 10;

/// What staging must hold, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget1x {
    pub kernel: Bytes,
    pub initramfs: Bytes,
    /// Compressed image + config.json.
    pub image: Bytes,
    pub backup: Bytes,
    pub margin: Bytes,
    pub needed: Bytes,
    pub have: Bytes,
    /// Kernel and initramfs are on the boot partition, not on resin-updt (UEFI, U-Boot).
    pub kernel_on_boot: bool,
    /// Raspberry Pi: the trial boot set (firmware, kernel, dtbs, overlays) on the spare.
    pub trial_set: Bytes,
}

/// One bootloader file change, with the bytes to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEdit {
    pub name: String,
    pub original: Option<Vec<u8>>,
    pub edited: Vec<u8>,
}

/// The plan and what executing it needs besides.
#[derive(Debug, Clone)]
pub struct Plan1x {
    pub plan: Plan,
    pub budget: Budget1x,
    pub boot: MigrationBoot,
    pub boot_edits: Vec<BootEdit>,
    pub notes: Vec<String>,
}

fn identity(disk: &SourceDisk1x, m: &Matched) -> Result<PartitionIdentity, Refusal1x> {
    PartitionIdentity::mbr(
        disk.signature,
        m.found.number,
        m.found.start,
        m.found.size,
        SectorSize::S512,
    )
    .map_err(|e| Refusal1x::Disk {
        disk: disk.path.display().to_string(),
        problem: format!("partition {}: {e}", m.found.number),
    })
}

fn bytes_of(sectors: Sectors) -> Bytes {
    Bytes(sectors.get().saturating_mul(512))
}

fn units(e: impl std::fmt::Display) -> Refusal1x {
    Refusal1x::Stage(crate::stage::Refusal::HostFact(e.to_string()))
}

/// The 2.x partitions as the image places them, named and typed by the profile.
fn target_partitions(image: &ImageFacts, profile: &Profile) -> Vec<TargetPartition> {
    let mut expected = profile.target.partitions.clone();
    expected.sort_by_key(|p| p.order);
    image
        .data_partitions()
        .iter()
        .zip(expected.iter())
        .map(|(found, wanted)| TargetPartition {
            name: wanted.name.clone(),
            role: wanted.role,
            fs: wanted.fs,
            image_start: Sectors(found.start.0),
            size: Sectors(found.size.0),
            // Written at disk offset 0 on a 512-byte-sector disk: disk sectors = image sectors.
            disk_start: Sectors(found.start.0),
        })
        .collect()
}

/// Refuses a staging partition that flashing would reach before the migration is done.
pub fn check_staging_safe(
    staging: &Matched,
    partitions: &[TargetPartition],
    image: &ImageFacts,
) -> Result<(), Refusal1x> {
    let span = Extent::new(staging.found.start, staging.found.size);
    let image_end = Sectors(image.table.end().0);
    if span.start >= image_end {
        return Ok(());
    }
    let root_b = partitions.iter().find(|p| p.role == PartitionRole::RootB);
    let inside_root_b =
        root_b.map(|p| Extent::new(p.disk_start, p.size).contains(&span)).unwrap_or(false);
    if inside_root_b {
        // EBRs of the image's logical partitions are written with the table; none may lie there.
        if let Some(ebr) = image
            .table
            .logicals
            .iter()
            .filter_map(|l| l.ebr)
            .find(|e| span.contains(&Extent::new(Sectors(e.0), Sectors(1))))
        {
            return Err(overlap(
                staging,
                &span,
                "extended boot record",
                Extent::new(Sectors(ebr.0), Sectors(1)),
            ));
        }
        return Ok(());
    }
    let hit = partitions
        .iter()
        .filter(|p| p.role != PartitionRole::RootB)
        .map(|p| (p.name.as_str(), Extent::new(p.disk_start, p.size)))
        .find(|(_, e)| e.overlaps(&span));
    let (name, extent) = match hit {
        Some(hit) => hit,
        None => ("image (past resin-rootB, before its end)", Extent::new(Sectors::ZERO, image_end)),
    };
    Err(overlap(staging, &span, name, extent))
}

fn overlap(staging: &Matched, span: &Extent, what: &str, part: Extent) -> Refusal1x {
    Refusal1x::StagingOverlap {
        label: staging.expected.name.clone(),
        start: span.start.get(),
        end: span.start.get() + span.len.get(),
        overlaps: what.to_string(),
        part_start: part.start.get(),
        part_end: part.start.get() + part.len.get(),
    }
}

/// The migration environment's files and kernel arguments for this board.
pub fn migration_boot(profile: &Profile) -> MigrationBoot {
    let console: &[&str] = match profile.bootloader {
        Bootloader::RaspberrypiFirmware => &["console=serial0,115200", "console=tty1"],
        Bootloader::UBoot => &["console=${console}"],
        Bootloader::Grub2 => &["console=tty0", "console=ttyS0,115200"],
    };
    let mut args: Vec<String> = console.iter().map(|s| s.to_string()).collect();
    args.extend(["panic=10".to_string(), "swapover.migrate=1".to_string()]);
    let on_staging = |file: &str| match profile.bootloader {
        // The GPU firmware reads only the FAT boot partition.
        Bootloader::RaspberrypiFirmware => file.to_string(),
        _ if profile.boot_mode == BootMode::Uefi => file.to_string(),
        _ => format!("/{file}"),
    };
    if profile.boot_mode == BootMode::Uefi {
        // The kernel's EFI stub loads the initramfs named by `initrd=` from the volume it
        // was loaded from (the boot partition), with a backslash path.
        args.push(format!("initrd={}", uefi_path(INITRAMFS_FILE)));
    }
    if let Some(trial) = &profile.pi_trial {
        // The trial's own files and text (pi_trial): the firmware loads them from the spare.
        return MigrationBoot {
            kernel: trial.kernel.clone(),
            initramfs: pi_trial::INITRAMFS.into(),
            cmdline_file: pi_trial::CMDLINE.into(),
            args: Vec::new(),
        };
    }
    if profile.uboot_trial.is_some() {
        // The trial's own files and text (uboot_env): U-Boot loads them from resin-boot.
        return MigrationBoot {
            kernel: uboot_env::TRIAL_KERNEL.into(),
            initramfs: uboot_env::TRIAL_INITRAMFS.into(),
            cmdline_file: String::new(),
            args: Vec::new(),
        };
    }
    MigrationBoot {
        kernel: on_staging(KERNEL_FILE),
        initramfs: on_staging(INITRAMFS_FILE),
        cmdline_file: CMDLINE_FILE.to_string(),
        args,
    }
}

/// A file on the boot partition as UEFI device paths and the EFI stub name it: `\\a\\b`.
pub fn uefi_path(file: &str) -> String {
    format!("\\{}", file.trim_start_matches('/').replace('/', "\\"))
}

/// Whether the firmware, not a bootloader file, arms the migration environment: on UEFI
/// boards a `Boot####` option for the kernel's EFI stub, set as `BootNext` (one boot; the
/// firmware clears it before booting it). The board's GRUB is left alone, so no GRUB build
/// (poky's grub-efi of the 1.x era has neither `loadenv` nor `test`) can get in the way.
pub fn armed_by_firmware(profile: &Profile) -> bool {
    profile.boot_mode == BootMode::Uefi
}

fn sha256(bytes: &[u8]) -> Sha256Hex {
    Sha256Hex::from_digest(&sha2::Digest::finalize(
        <sha2::Sha256 as sha2::Digest>::new_with_prefix(bytes),
    ))
}

/// The application data's size; refused over the path's backup limit, never truncated.
fn backup_within_limit(
    app_data: &super::app_data::AppData,
    profile: &Profile,
) -> Result<(Bytes, Option<Bytes>), Refusal1x> {
    let limit = profile.backup_limit().map_err(units)?;
    let backup = app_data.size.unwrap_or(Bytes(0));
    if let Some(limit) = limit {
        if backup > limit {
            return Err(Refusal1x::BackupOverLimit {
                measured: backup,
                limit,
                dir: app_data.source.clone(),
                profile: profile.name.clone(),
            });
        }
    }
    Ok((backup, limit))
}

/// resin-updt's own ext file system and its free space: where staging goes.
fn spare_root_fs(
    updt: &source_disk::Matched,
) -> Result<(super::fs_probe::FsFacts, Bytes), Refusal1x> {
    match &updt.found.fs {
        Some(fs) if matches!(fs.fs, FsType::Ext2 | FsType::Ext3 | FsType::Ext4) => {
            Ok((fs.clone(), fs.free.unwrap_or(Bytes(0))))
        }
        found => Err(Refusal1x::SpareRootNoFs {
            device: format!("{} (partition {})", updt.expected.name, updt.found.number),
            found: found
                .as_ref()
                .map(|f| f.fs.to_string())
                .unwrap_or_else(|| "no known file system".into()),
        }),
    }
}

/// What resin-updt must hold (the image, config.json, the backup, a margin, the Raspberry
/// Pi's trial set, and the kernel and initramfs unless they go on the boot partition) of
/// `have`, refused when it is more.
fn staging_budget(
    i: &Inputs<'_>,
    updt: &Matched,
    have: Bytes,
    backup: Bytes,
    kernel_on_boot: bool,
    trial_set: Bytes,
) -> Result<Budget1x, Refusal1x> {
    let margin = Bytes(STAGING_MARGIN_1X.get() + have.get() / 20);
    let image_bytes = Bytes(i.image.compressed_size.get() + i.config.bytes.len() as u64);
    let on_updt = if kernel_on_boot {
        vec![trial_set, image_bytes, backup, margin]
    } else {
        vec![trial_set, i.kernel, i.initramfs, image_bytes, backup, margin]
    };
    let needed = Bytes::checked_sum(on_updt).map_err(units)?;
    if needed > have {
        return Err(Refusal1x::SpareRootTooSmall {
            device: format!("{} (partition {})", updt.expected.name, updt.found.number),
            trial_set,
            have,
            needed,
            kernel: if kernel_on_boot { Bytes(0) } else { i.kernel },
            initramfs: if kernel_on_boot { Bytes(0) } else { i.initramfs },
            image: image_bytes,
            backup,
            margin,
        });
    }
    Ok(Budget1x {
        kernel: i.kernel,
        initramfs: i.initramfs,
        image: image_bytes,
        backup,
        margin,
        needed,
        have,
        kernel_on_boot,
        trial_set,
    })
}

/// The Raspberry Pi trial's staging (contract §2.2 phase A): the spare becomes a new FAT32
/// (its ext3, an old root copy 1.x does not need, is given up: contract R1) that holds
/// the trial boot set, the initramfs and the staging; resin-boot must have room for the
/// kernel and initramfs that the migrator's commit copies there later.
fn pi_trial_staging(
    i: &Inputs<'_>,
    trial: &board_profiles::PiTrialProfile,
    updt: &Matched,
    boot: &Matched,
    backup: Bytes,
    notes: &mut Vec<String>,
) -> Result<(Budget1x, String, PiTrialBoot), Refusal1x> {
    let device = format!("{} (partition {})", updt.expected.name, updt.found.number);
    let set = i.pi_boot.ok_or_else(|| {
        units(format!(
            "profile {} boots a firmware trial, but resin-boot was not read",
            i.profile.name
        ))
    })?;
    if !set.missing.is_empty() {
        return Err(Refusal1x::PiTrial(format!(
            "resin-boot has no {}, which the GPU firmware needs to boot the trial (profile {}); this is not the board's resinOS 1.x boot partition, or it is damaged",
            set.missing.join(", "),
            i.profile.name
        )));
    }
    if i.image.compressed_size > pi_trial::FAT32_MAX_FILE {
        return Err(Refusal1x::PiTrial(format!(
            "the image is {:#}, but the staging FAT32 holds files below 4 GiB only; use the compressed image (.img.xz)",
            i.image.compressed_size
        )));
    }
    let size = bytes_of(updt.found.size);
    let geometry = pi_trial::fat32_geometry(size).ok_or_else(|| {
        Refusal1x::PiTrial(format!(
            "the spare {device} is {size:#}, too small for a FAT32 (at least {} clusters of 512 bytes) that the GPU firmware can boot the trial from",
            pi_trial::FAT32_MIN_CLUSTERS
        ))
    })?;
    let small = Bytes(64 * 1024);
    let trial_set = Bytes::checked_sum([set.bytes(), small]).map_err(units)?;
    let spare_inputs = Inputs { kernel: Bytes(0), ..i.clone() };
    let budget =
        staging_budget(&spare_inputs, updt, geometry.data_bytes(), backup, false, trial_set)?;
    let kernel =
        set.files.iter().find(|f| f.name == trial.kernel).map(|f| f.size).unwrap_or_default();
    boot_room(&Inputs { kernel, ..i.clone() }, boot, notes)?;
    let id =
        pi_trial::volume_id(i.disk.signature, updt.found.start.get(), &i.image.compressed_sha256.0);
    notes.push(format!(
        "the spare {device} is formatted as a new FAT32 labelled {} (volume id {}, {}-byte clusters): its ext3, a copy of an old root that resinOS 1.x does not need, is given up and does not come back on abort (contract R1)",
        pi_trial::LABEL,
        pi_trial::volume_id_text(id),
        geometry.bytes_per_cluster
    ));
    let pi = PiTrialBoot {
        trial_partition: updt.found.number,
        kernel: trial.kernel.clone(),
        blobs_last: trial.blobs_last.clone(),
    };
    Ok((budget, pi_trial::volume_id_text(id), pi))
}

/// The boot partition's room for the kernel and initramfs (when they go there), refused
/// when it is measured too small; a note when it could not be measured.
fn boot_room(i: &Inputs<'_>, boot: &Matched, notes: &mut Vec<String>) -> Result<(), Refusal1x> {
    let on_boot = Bytes::checked_sum([i.kernel, i.initramfs, Bytes(64 * 1024)]).map_err(units)?;
    match i.boot_free {
        Some(free) if free < on_boot => Err(Refusal1x::BootPartitionFull {
            device: format!("{} (partition {})", boot.expected.name, boot.found.number),
            free,
            needed: on_boot,
            kernel: i.kernel,
            initramfs: i.initramfs,
        }),
        Some(_) => Ok(()),
        None => {
            notes.push(format!(
                "free space on {} not measured; kernel and initramfs ({}) go there",
                boot.expected.name, on_boot
            ));
            Ok(())
        }
    }
}

/// The U-Boot trial's changes on the boot partition: `uEnv.txt` replaced by the armed text
/// (its 1.x bytes kept at [`ORIGINAL_UENV`]), the trial's kernel, dtb and initramfs created.
fn uboot_trial_changes(
    i: &Inputs<'_>,
    trial: &board_profiles::UbootTrialProfile,
    notes: &mut Vec<String>,
) -> Result<(Vec<BootEdit>, Vec<FileChange>, UbootTrialBoot), Refusal1x> {
    let counter = i.boot_counter.ok_or_else(|| {
        units(format!(
            "profile {} arms its trial through U-Boot's boot counter, which was not read",
            i.profile.name
        ))
    })?;
    let original = i
        .boot_files
        .iter()
        .find(|f| f.name == UENV)
        .and_then(|f| f.bytes.clone())
        .ok_or_else(|| {
            Refusal1x::Uenv("there is none on the boot partition, so the storage the trial boots from is unknown; restore the board's original uEnv.txt (mmcdev=1, bootpart=1:2 on the eMMC)".into())
        })?;
    let armed = uboot_trial::trial_uenv(trial, &original, &counter)?;
    notes.push(counter.describe(&trial.bootcount));
    let mut files = vec![FileChange {
        path: format!("{BOOT_MOUNT}/{UENV}"),
        change: FileChangeKind::Modified {
            backup: format!("{BOOT_MOUNT}/{ORIGINAL_UENV}"),
            original_sha256: sha256(&original),
        },
    }];
    for name in [uboot_env::TRIAL_KERNEL, uboot_env::TRIAL_DTB, uboot_env::TRIAL_INITRAMFS] {
        files.push(FileChange {
            path: format!("{BOOT_MOUNT}/{name}"),
            change: FileChangeKind::Created,
        });
    }
    let boot = UbootTrialBoot {
        interface: trial.interface,
        original_uenv: ORIGINAL_UENV.into(),
        trial_count: counter.trial.value(),
    };
    let edit = BootEdit { name: UENV.into(), original: Some(original), edited: armed };
    Ok((vec![edit], files, boot))
}

/// The files created on the boot partition that start the migration environment once
/// when the UEFI firmware arms it (no bootloader file is changed); a note when nothing here
/// can arm this board.
fn boot_changes(
    i: &Inputs<'_>,
    boot: &Matched,
    kernel_on_boot: bool,
    notes: &mut Vec<String>,
) -> Vec<FileChange> {
    if !armed_by_firmware(i.profile) {
        notes.push(format!(
            "profile {} names no way to arm the migration environment for one boot (UEFI, U-Boot trial or Raspberry Pi trial)",
            i.profile.name
        ));
        return Vec::new();
    }
    let kept: Vec<&str> = i.boot_files.iter().map(|f| f.name.as_str()).collect();
    notes.push(format!(
        "armed by the UEFI firmware (a Boot#### option for {} on {}, set as BootNext for one boot); {} not changed",
        uefi_path(KERNEL_FILE),
        boot.expected.name,
        if kept.is_empty() { "no bootloader file is".to_string() } else { format!("{} is", kept.join(", ")) }
    ));
    let names: &[&str] = if kernel_on_boot { &[KERNEL_FILE, INITRAMFS_FILE] } else { &[] };
    names
        .iter()
        .map(|name| FileChange {
            path: format!("{BOOT_MOUNT}/{name}"),
            change: FileChangeKind::Created,
        })
        .collect()
}

/// The one backup volume: 1.x's application data, restored under the application's id;
/// none (and a note) when there is no application data.
fn backup_volumes(i: &Inputs<'_>, app_id: &str, notes: &mut Vec<String>) -> Vec<BackupVolume> {
    let profile = i.profile;
    match i.app_data.size {
        None => {
            notes.push(format!(
                "{} does not exist: no application data to carry",
                i.app_data.source
            ));
            Vec::new()
        }
        Some(size) => vec![BackupVolume {
            name: "resin-data".into(),
            restore_to: profile.restore.data.to_restore_location(app_id),
            // `.`: the contents of 1.x's /mnt/data/resin-data go straight into 2.x's /resin-data.
            items: vec![BackupItem {
                source: i.app_data.source.clone(),
                target: ".".into(),
                filters: Vec::new(),
                excludes: i.app_data.excludes.clone(),
                estimated_size: size,
            }],
        }],
    }
}

pub fn make_plan(i: &Inputs<'_>) -> Result<Plan1x, Refusal1x> {
    let profile = i.profile;
    let matched = source_disk::match_profile(i.disk, profile)?;
    let specifics = profile
        .resinos1x
        .as_ref()
        .ok_or_else(|| units(format!("profile {} has no [resinos1x] table", profile.name)))?;
    i.config.require_device_type(&profile.device_type).map_err(crate::stage::Refusal::from)?;
    let mut notes = planning::check_image(i.image, profile, i.allow_unknown_device_type)?;

    let find = |role: PartitionRole| {
        source_disk::role(&matched, role).ok_or_else(|| Refusal1x::NotA1xDisk {
            disk: i.disk.path.display().to_string(),
            why: format!("profile {} has no source partition with role {role}", profile.name),
            suggestions: source_disk::profile_names(plan::SourceKind::UbuntuGrubHost),
        })
    };
    let (root, updt, boot) =
        (find(PartitionRole::RootA)?, find(PartitionRole::RootB)?, find(PartitionRole::Boot)?);
    let data = find(PartitionRole::Data)?;

    // The image over the disk.
    let image_end = Sectors(i.image.table.end().0);
    if image_end > i.disk.size {
        return Err(Refusal1x::ImageLargerThanDisk {
            image_end_mib: bytes_of(image_end).get() / (1024 * 1024),
            disk_mib: bytes_of(i.disk.size).get() / (1024 * 1024),
        });
    }
    let partitions = target_partitions(i.image, profile);
    let root_b = partitions.iter().find(|p| p.role == PartitionRole::RootB).ok_or_else(|| {
        Refusal1x::ImageMissingPartition {
            role: PartitionRole::RootB.to_string(),
            name: profile
                .target_partition(PartitionRole::RootB)
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            profile: profile.name.clone(),
        }
    })?;
    check_staging_safe(updt, &partitions, i.image)?;

    let (backup, limit) = backup_within_limit(i.app_data, profile)?;

    // What resin-updt (and resin-boot) must hold.
    // The UEFI firmware reads only the FAT boot partition. So does U-Boot for the trial: it
    // loads the trial's files from resin-boot (contract §2.3). The Raspberry Pi's firmware
    // boots the trial from the spare itself, made a FAT32 (contract §2.2).
    let kernel_on_boot = armed_by_firmware(profile) || profile.uboot_trial.is_some();
    let mboot = migration_boot(profile);
    let by_firmware = armed_by_firmware(profile);
    let (staging_fs, budget, pi) = match &profile.pi_trial {
        Some(trial) => {
            let (budget, volume_id, pi) =
                pi_trial_staging(i, trial, updt, boot, backup, &mut notes)?;
            let fs = super::fs_probe::FsFacts {
                fs: FsType::Vfat,
                label: pi_trial::LABEL.into(),
                uuid: volume_id,
                free: None,
            };
            (fs, budget, Some(pi))
        }
        None => {
            let (staging_fs, have) = spare_root_fs(updt)?;
            let budget = staging_budget(i, updt, have, backup, kernel_on_boot, Bytes(0))?;
            if kernel_on_boot {
                boot_room(i, boot, &mut notes)?;
            }
            (staging_fs, budget, None)
        }
    };

    // The bootloader files, edited to start the migration environment once.
    let (boot_edits, files, uboot) = match (&profile.uboot_trial, &pi) {
        (Some(trial), _) => {
            let (edits, files, uboot) = uboot_trial_changes(i, trial, &mut notes)?;
            (edits, files, Some(uboot))
        }
        // resin-boot is not changed in phase A.
        (None, Some(_)) => (Vec::new(), Vec::new(), None),
        (None, None) => (Vec::new(), boot_changes(i, boot, kernel_on_boot, &mut notes), None),
    };
    let route = match (&uboot, &pi, by_firmware) {
        (Some(_), _, _) => GrubRoute::UbootTrial,
        (None, Some(_), _) => GrubRoute::PiFirmwareTrial,
        (None, None, true) => GrubRoute::UefiBootNext,
        (None, None, false) => GrubRoute::BootFiles,
    };
    let watchdog = profile
        .uboot_trial
        .as_ref()
        .and_then(|t| t.watchdog.clone())
        .map(|device| WatchdogFeed { device, interval_secs: WATCHDOG_INTERVAL_SECS });

    let app_id = i.config.application_id.clone().unwrap_or_else(|| "unassigned".to_string());
    let volumes = backup_volumes(i, &app_id, &mut notes);
    let wifi_connect = format!(
        "{}/{}",
        super::app_data::DATA_MOUNT,
        specifics
            .wifi_connect_config
            .replace(board_profiles::APP_ID_PLACEHOLDER, &app_id)
            .trim_start_matches('/')
    );
    let image_file = match i.image.compression {
        plan::Compression::Xz => "resinos.img.xz",
        _ => "resinos.img",
    };
    let disk_id = DiskId::Mbr { signature: i.disk.signature };
    let old_root = identity(i.disk, root)?;
    let plan = Plan {
        format_version: FORMAT_VERSION,
        stager_version: env!("CARGO_PKG_VERSION").to_string(),
        profile: profile.profile_ref(),
        source_disk: SourceDisk {
            id: disk_id,
            table: TableKind::Mbr,
            size: i.disk.size,
            sector_size: SectorSize::S512,
        },
        old_root: FsPartition {
            partition: old_root,
            fs_uuid: root.found.fs.as_ref().map(|f| f.uuid.clone()).unwrap_or_default(),
            fs_type: root.found.fs.as_ref().map(|f| f.fs).unwrap_or(FsType::Ext3),
        },
        source_data: Some(FsPartition {
            partition: identity(i.disk, data)?,
            fs_uuid: data.found.fs.as_ref().map(|f| f.uuid.clone()).unwrap_or_default(),
            fs_type: data.found.fs.as_ref().map(|f| f.fs).unwrap_or(FsType::Btrfs),
        }),
        staging: Staging {
            partition: identity(i.disk, updt)?,
            fs_uuid: staging_fs.uuid.clone(),
            fs_type: staging_fs.fs,
            dir: STAGING_DIR.into(),
            original_swap_uuid: None,
        },
        image: TargetImage {
            file: image_file.into(),
            compression: i.image.compression,
            compressed_size: i.image.compressed_size,
            raw_size: i.image.raw_size,
            compressed_sha256: i.image.compressed_sha256.clone(),
            raw_sha256: i.image.raw_sha256.clone(),
        },
        layout: TargetLayout {
            table: TableKind::Mbr,
            image_sector_size: SectorSize::S512,
            region: Extent::new(Sectors::ZERO, image_end),
            written_last: vec![root_b.name.clone()],
            partitions,
        },
        backup: BackupSet { volumes, limit },
        network: NetworkSources {
            connman: vec![specifics.connman_dir.clone(), wifi_connect],
            config_json_network: true,
            ..NetworkSources::default()
        },
        config_json: ConfigJson {
            staged_at: format!("{STAGING_DIR}/config.json"),
            restore_to: profile.restore.config_json.to_restore_location(&app_id),
        },
        hostname: i.config.hostname.clone(),
        modules: ModuleLoad {
            order_file: format!("/{}", initramfs::MODULE_LOAD_LIST_PATH),
            modules: planning::wanted_modules(profile),
        },
        grub: GrubChanges {
            entry_id: ENTRY_ID.into(),
            entry_title: ENTRY_TITLE.into(),
            route,
            files,
            env: Vec::new(),
            uboot,
            pi,
        },
        finalize: profile.finalize_policy(),
        failure: FailurePolicy {
            step_retries: 3,
            retry_delay_secs: 5,
            disk_wait_secs: 30,
            watchdog,
        },
    };
    plan.validate()?;
    Ok(Plan1x { plan, budget, boot: mboot, boot_edits, notes })
}

/// The dry-run text: the plan, the staging budget and the boot file edits.
pub fn render(p: &Plan1x) -> String {
    let mut out = p.plan.render_text();
    let b = &p.budget;
    let staging = &p.plan.staging.partition;
    let where_ = if p.plan.grub.pi.is_some() {
        format!(
            "in a new {} file system labelled {} (volume id {}; its ext3 is given up)",
            p.plan.staging.fs_type,
            pi_trial::LABEL,
            p.plan.staging.fs_uuid
        )
    } else {
        format!(
            "in its {} file system (UUID {}, contents kept)",
            p.plan.staging.fs_type, p.plan.staging.fs_uuid
        )
    };
    out.push_str(&format!(
        "\nStaging on the spare root (partition {}, sectors {}..{}), {where_}: {} needed ({}{}image+config {}, backup {}, margin {}) of {} {}.\n",
        staging.number,
        staging.start.get(),
        staging.start.get() + staging.size.get(),
        b.needed,
        if b.trial_set.get() > 0 { format!("trial boot set {}, ", b.trial_set) } else { String::new() },
        if b.kernel_on_boot { String::new() } else { format!("kernel {}, initramfs {}, ", b.kernel, b.initramfs) },
        b.image,
        b.backup,
        b.margin,
        b.have,
        if p.plan.grub.pi.is_some() { "the new FAT32 holds" } else { "free" }
    ));
    if b.kernel_on_boot {
        out.push_str(&format!("Kernel {} and initramfs {} go on the boot partition (the board firmware reads only it).\n", b.kernel, b.initramfs));
    }
    for edit in &p.boot_edits {
        out.push_str(&format!(
            "\n{BOOT_MOUNT}/{} becomes:\n{}",
            edit.name,
            String::from_utf8_lossy(&edit.edited)
        ));
    }
    for note in &p.notes {
        out.push_str(&format!("Note: {note}\n"));
    }
    out
}
