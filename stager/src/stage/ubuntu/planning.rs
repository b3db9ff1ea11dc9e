//! Planning: from what was gathered (host facts, profile, grub.cfg, config.json, backup
//! estimates, kernel, the probed image) to a validated [`plan::Plan`] plus what executing
//! it needs — or a [`Refusal`]. Pure: reads nothing, changes nothing.

use crate::checks::{self, CheckInputs, Status};
use crate::host::partition_table::PartitionEntry;
use crate::host::HostFacts;
use crate::stage::config_json::ConfigJsonFacts;
use crate::stage::host_extras::{KernelFacts, Region};
use crate::stage::image_probe::ImageFacts;
use crate::stage::refusal::Refusal;
use board_profiles::Profile;
use disk_layout::{place_image, HostDisk};
use plan::{
    BackupItem, BackupSet, BackupVolume, Bytes, ConfigJson, DiskId, EnvChange, FailurePolicy,
    FileChange, FileChangeKind, FsPartition, FsType, GrubChanges, GrubRoute, ModuleLoad,
    NetworkSources, PartitionIdentity, PartitionRole, Plan, SectorSize, Sectors, Sha256Hex,
    SourceDisk, SourceKind, Staging, TableKind, TargetImage, TargetLayout, TargetPartition,
    FORMAT_VERSION,
};
use std::path::PathBuf;

/// Where everything lives on the staging file system.
pub const STAGING_DIR: &str = "/swapover";
pub const STAGING_LABEL: &str = "swapover-stage";
pub const ENTRY_ID: &str = "swapover-migrate";
pub const ENTRY_TITLE: &str = "swapover: migrate to resinOS";
pub const CUSTOM_CFG: &str = "/boot/grub/custom.cfg";
pub const GRUBENV: &str = "/boot/grub/grubenv";
pub const STATE_DIR: &str = "/var/lib/swapover";
pub const CUSTOM_CFG_BACKUP: &str = "/var/lib/swapover/custom.cfg.orig";
/// The migrator's kernel command line (the contract's).
pub const KERNEL_ARGS: [&str; 4] =
    ["console=tty0", "console=ttyS0,115200", "panic=10", "swapover.migrate=1"];
/// Modules ext4 and Debian's vfat need at mount time, added to the profile's when absent.
pub const EXTRA_MODULES: [&str; 3] = ["crc32c_generic", "nls_ascii", "nls_utf8"];
/// Memory the stager and the reboot need once swap is off.
pub const MIN_MEMORY_WITHOUT_SWAP: Bytes = Bytes(128 * 1024 * 1024);
/// Room for boot.img, core.img and the i386-pc modules on staging.
pub const GRUB_FILES_ALLOWANCE: Bytes = Bytes(4 * 1024 * 1024);
/// Fixed part of the staging margin (journal, log, mbr-gap, plan); 5 % of the partition is added for ext4.
pub const STAGING_MARGIN: Bytes = Bytes(32 * 1024 * 1024);

/// A backup path and its estimated archive size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupPath {
    /// Absolute host path.
    pub path: PathBuf,
    pub estimate: Bytes,
}

/// The initramfs as it will be built: modules in load order and its size before compression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitramfsEstimate {
    /// The module names asked for (profile + [`EXTRA_MODULES`], those the kernel has).
    pub wanted: Vec<String>,
    /// Wanted modules the kernel has neither as module nor built in (skipped, with a note).
    pub unknown: Vec<String>,
    /// Canonical names in load order, dependencies included.
    pub load_order: Vec<String>,
    /// Uncompressed archive size (an upper bound of what lands on staging).
    pub size: Bytes,
}

/// Everything gathered before planning.
#[derive(Debug, Clone)]
pub struct Gathered {
    pub facts: HostFacts,
    pub profile: Profile,
    pub grub: grub::CfgReport,
    /// grubenv's `next_entry` before arming.
    pub next_entry_before: Option<String>,
    /// custom.cfg's bytes before staging, when it exists.
    pub custom_cfg_original: Option<Vec<u8>>,
    pub config: ConfigJsonFacts,
    pub backups: Vec<BackupPath>,
    pub kernel: KernelFacts,
    pub initramfs: InitramfsEstimate,
    pub old_root_fs_uuid: String,
    pub staging_fs_uuid: String,
    pub staging: Region,
    pub network: NetworkSources,
    pub hostname: Option<String>,
    pub allow_unknown_device_type: bool,
    /// The whole disk's size in its logical sectors.
    pub disk_size: Sectors,
}

/// A plan and what executing it needs besides.
#[derive(Debug, Clone)]
pub struct StagePlan {
    pub plan: Plan,
    pub staging: Region,
    pub kernel: KernelFacts,
    pub initramfs: InitramfsEstimate,
    pub image_path: PathBuf,
    pub config_bytes: Vec<u8>,
    /// Text of `/boot/grub/custom.cfg` to write.
    pub custom_cfg: String,
    /// `grub/grub.cfg` on staging.
    pub staging_grub_cfg: String,
    /// core.img's embedded config.
    pub core_img_config: String,
    pub budget: StagingBudget,
    /// How fstab may name the staging partition (its swap line is commented out).
    pub swap_names: super::fstab_edit::SwapNames,
    /// Things a person should know that do not block staging.
    pub notes: Vec<String>,
    /// Which entry or inner image of the download is staged, and what was added to it
    /// (see [`crate::stage::prepare`]); empty for a raw or xz image staged as it is.
    pub origin: Vec<String>,
}

/// What the staging partition must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagingBudget {
    pub kernel: Bytes,
    pub initramfs: Bytes,
    pub image: Bytes,
    pub backup: Bytes,
    pub margin: Bytes,
    pub needed: Bytes,
    pub have: Bytes,
}

fn check_gate(facts: &HostFacts, inputs: &CheckInputs) -> Result<(), Refusal> {
    let report = checks::run_all(facts, inputs);
    match report.checks.iter().find(|c| c.status == Status::Fail) {
        Some(failed) => Err(Refusal::from_check(failed)),
        None => Ok(()),
    }
}

/// The host refusals that need neither the image nor the config: the profile's kind, boot
/// mode, the disk's table, then every host check (root, OS, swap partition, memory...),
/// then the host's RAM against the profile's `requirements.min_ram_mib`.
pub fn precheck_host(facts: &HostFacts, profile: &Profile) -> Result<(), Refusal> {
    if profile.source.kind != SourceKind::UbuntuGrubHost {
        return Err(Refusal::NotAGrubHostProfile {
            profile: profile.name.clone(),
            kind: profile.source.kind.to_string(),
        });
    }
    if let Ok(release) = &facts.os_release {
        if release.is_like("resin-os") || release.is_like("balena-os") {
            return Err(Refusal::ResinosHost {
                found: release.display_name(),
                profile: profile.name.clone(),
                suggestions: resinos1x_profiles_for(&facts.arch),
            });
        }
    }
    let expected = profile.boot_mode.host_detectable();
    if let Some(expected) = expected {
        if expected != facts.boot_mode {
            return Err(Refusal::BootMode {
                profile: profile.name.clone(),
                expected: expected.to_string(),
                found: facts.boot_mode.to_string(),
            });
        }
    }
    if let Ok(disk) = &facts.root_disk {
        if disk.table.is_gpt() && profile.target.partition_table == TableKind::Mbr {
            return Err(Refusal::HostGpt {
                disk: disk.path.clone(),
                profile: profile.name.clone(),
            });
        }
    }
    let inputs = CheckInputs {
        expected_boot_mode: expected,
        min_memory: Some(MIN_MEMORY_WITHOUT_SWAP),
        ..CheckInputs::default()
    };
    // Root on LVM, LUKS or md also fails root-partition (listed earlier); name the storage.
    let storage = checks::run(checks::CheckId::RootStorage, facts, &inputs);
    if storage.status == Status::Fail {
        return Err(Refusal::from_check(&storage));
    }
    check_gate(facts, &inputs)?;
    let memory = checks::profile_memory(facts, &profile.name, profile.requirements.min_ram_mib);
    if memory.status == Status::Fail {
        return Err(Refusal::from_check(&memory));
    }
    Ok(())
}

/// The built-in resinOS 1.x profiles for this machine's architecture (`uname -m`), for messages.
pub fn resinos1x_profiles_for(arch: &str) -> String {
    let names: Vec<&str> = Profile::list_builtin()
        .into_iter()
        .filter(|name| {
            Profile::builtin(name)
                .map(|p| {
                    p.source.kind == SourceKind::Resinos1x
                        && p.architecture.matches_uname_machine(arch)
                })
                .unwrap_or(false)
        })
        .collect();
    if names.is_empty() {
        "resinos1x-<board>".to_string()
    } else {
        names.join(" | ")
    }
}

/// GRUB must honour `next_entry` and source custom.cfg (the route the stager writes).
pub fn grub_route(report: &grub::CfgReport) -> Result<(), Refusal> {
    if !report.next_entry.yes {
        return Err(Refusal::GrubNoNextEntry(report.next_entry.reason.clone()));
    }
    match &report.custom_cfg {
        grub::cfg_inspect::CustomCfgRoute::SourcesCustomCfg { .. } => Ok(()),
        grub::cfg_inspect::CustomCfgRoute::NeedsUpdateGrub { reason }
        | grub::cfg_inspect::CustomCfgRoute::NoRoute { reason } => {
            Err(Refusal::GrubNoCustomCfg(reason.clone()))
        }
    }
}

/// The image is for the profile's board and has the profile's partitions.
pub fn check_image(
    image: &ImageFacts,
    profile: &Profile,
    allow_unknown_device_type: bool,
) -> Result<Vec<String>, Refusal> {
    let mut notes = Vec::new();
    match &image.device_type {
        Ok(found) if *found == profile.device_type => {}
        Ok(found) => {
            return Err(Refusal::ImageDeviceType {
                found: found.clone(),
                expected: profile.device_type.clone(),
            })
        }
        Err(problem) if allow_unknown_device_type => notes.push(format!(
            "image device type not verified ({problem}); --allow-unknown-device-type was given"
        )),
        Err(problem) => return Err(Refusal::ImageDeviceTypeUnknown(problem.clone())),
    }
    let found = image.data_partitions().len();
    if found != profile.target.partitions.len() {
        let names: Vec<&str> = profile.target.partitions.iter().map(|p| p.name.as_str()).collect();
        return Err(Refusal::ImageLayout {
            found,
            expected: profile.target.partitions.len(),
            profile: profile.name.clone(),
            names: names.join(", "),
        });
    }
    Ok(notes)
}

/// What the migrator does with a partition of this role once the image is flashed, when it
/// mounts or edits it: restore writes config.json and keyfiles into resin-boot's FAT (fatfs,
/// migrator/src/fatboot.rs) and mounts resin-data to restore the backups (steps/restore.rs
/// `step_restore`, mounts.rs `open_data_with`, with the profile's file system); finalize
/// mounts resin-data for the relay (`step_finalize`). Nothing else is mounted.
fn migrator_use(role: PartitionRole) -> Option<&'static str> {
    match role {
        PartitionRole::Boot => Some("writes config.json into"),
        PartitionRole::Data => Some("restores data into"),
        _ => None,
    }
}

/// Whether `found` can be mounted as `wanted` (the ext4 driver mounts ext2 and ext3 too).
fn mountable_as(found: FsType, wanted: FsType) -> bool {
    found == wanted || (wanted == FsType::Ext4 && matches!(found, FsType::Ext2 | FsType::Ext3))
}

/// Every partition the migrator's restore and finalize will use holds the file system they
/// expect (issue 15 point 8: a raw flasher's resin-data is empty, and the restore found out
/// only after the old root was gone).
pub fn check_filesystems(image: &ImageFacts, profile: &Profile) -> Result<(), Refusal> {
    let mut expected = profile.target.partitions.clone();
    expected.sort_by_key(|p| p.order);
    for (found, wanted) in image.data_partitions().iter().zip(expected.iter()) {
        let Some(usage) = migrator_use(wanted.role) else { continue };
        let seen = image.filesystems.iter().find(|f| f.number == found.number);
        let problem = match seen {
            None => Some("nothing the stager could read (it lies before the last EBR)".to_string()),
            Some(seen) => match seen.fs {
                None => Some("no file system".to_string()),
                Some(fs) if !mountable_as(fs, wanted.fs) => Some(format!("a {fs} file system")),
                Some(_) => None,
            },
        };
        if let Some(found_text) = problem {
            return Err(Refusal::ImageFilesystem {
                name: wanted.name.clone(),
                number: found.number,
                found: found_text,
                usage,
                expected: wanted.fs.to_string(),
            });
        }
    }
    Ok(())
}

fn disk_sector_size(table_sector: Bytes) -> Result<SectorSize, Refusal> {
    SectorSize::new(table_sector.get()).map_err(|e| Refusal::HostFact(e.to_string()))
}

fn identity(
    signature: u32,
    entry: &PartitionEntry,
    sector: SectorSize,
) -> Result<PartitionIdentity, Refusal> {
    PartitionIdentity::mbr(
        signature,
        entry.number,
        Sectors(entry.start_sector.0),
        Sectors(entry.sector_count.0),
        sector,
    )
    .map_err(|e| Refusal::HostFact(format!("partition {}: {e}", entry.number)))
}

/// Builds and validates the plan from what [`super::gather::gather`] gathered (and checked:
/// the host, GRUB, config.json) and the image's facts.
pub fn make_plan(g: &Gathered, image: &ImageFacts) -> Result<StagePlan, Refusal> {
    let disk_size = g.disk_size;
    let mut notes = check_image(image, &g.profile, g.allow_unknown_device_type)?;
    check_filesystems(image, &g.profile)?;
    if !g.initramfs.unknown.is_empty() {
        notes.push(format!(
            "modules not in this kernel, skipped: {} (built in or not needed here)",
            g.initramfs.unknown.join(", ")
        ));
    }

    let HostPartitions {
        disk,
        signature,
        sector,
        root_entry,
        swap_entry,
        old_root,
        staging_id,
        swap_device,
        swap_header,
    } = host_partitions(g)?;

    // The image is written at disk offset 0 and must end before the staging area.
    let to_layout = |b: Bytes| b.to_sectors_round_down(SectorSize::S512);
    let extended = disk.table.extended_containing(&swap_entry);
    let host_disk = HostDisk {
        old_root: disk_layout::Span {
            start: to_layout(root_entry.start),
            size: to_layout(root_entry.size),
        },
        staging_start: to_layout(swap_entry.start),
        staging_container_start: extended.map(|e| to_layout(e.start)),
        disk_size: to_layout(
            disk_size.to_bytes(sector).map_err(|e| Refusal::HostFact(e.to_string()))?,
        ),
    };
    place_image(&image.table, &host_disk).map_err(Refusal::ImageTooLarge)?;

    let partitions = target_partitions(image, &g.profile, sector)?;

    let budget = staging_budget(g, image, swap_entry.size, &swap_device)?;
    let needed = budget.needed;
    // Every remaining host check, now with the sizes known.
    let image_end = image
        .table
        .end()
        .to_bytes(SectorSize::S512)
        .map_err(|source| Refusal::ImageSizes { partition: None, source })?;
    check_gate(
        &g.facts,
        &CheckInputs {
            expected_boot_mode: g.profile.boot_mode.host_detectable(),
            needed_swap: Some(needed),
            min_memory: Some(MIN_MEMORY_WITHOUT_SWAP),
            target_layout_size: Some(image_end),
        },
    )?;

    let (app_id, volumes) = backup_volumes(g)?;
    let backup_limit = g.profile.backup_limit().map_err(|e| Refusal::HostFact(e.to_string()))?;

    let image_file = match image.compression {
        plan::Compression::Xz => "resinos.img.xz",
        _ => "resinos.img",
    };
    let custom_change = custom_cfg_change(g);
    let root_fs_type = root_fs_type(g);
    let plan = Plan {
        format_version: FORMAT_VERSION,
        stager_version: env!("CARGO_PKG_VERSION").to_string(),
        profile: g.profile.profile_ref(),
        source_disk: SourceDisk {
            id: DiskId::Mbr { signature },
            table: TableKind::Mbr,
            size: disk_size,
            sector_size: sector,
        },
        old_root: FsPartition {
            partition: old_root.clone(),
            fs_uuid: g.old_root_fs_uuid.clone(),
            fs_type: root_fs_type,
        },
        source_data: None,
        staging: Staging {
            partition: staging_id,
            fs_uuid: g.staging_fs_uuid.clone(),
            fs_type: FsType::Ext4,
            dir: STAGING_DIR.into(),
            original_swap_uuid: Some(swap_header.uuid.clone()),
        },
        image: TargetImage {
            file: image_file.into(),
            compression: image.compression,
            compressed_size: image.compressed_size,
            raw_size: image.raw_size,
            compressed_sha256: image.compressed_sha256.clone(),
            raw_sha256: image.raw_sha256.clone(),
        },
        layout: TargetLayout {
            table: TableKind::Mbr,
            image_sector_size: SectorSize::S512,
            region: old_root.extent(),
            partitions,
            written_last: Vec::new(),
        },
        backup: BackupSet { volumes, limit: backup_limit },
        network: g.network.clone(),
        config_json: ConfigJson {
            staged_at: format!("{STAGING_DIR}/config.json"),
            restore_to: g.profile.restore.config_json.to_restore_location(&app_id),
        },
        hostname: g.hostname.clone(),
        modules: ModuleLoad {
            order_file: format!("/{}", initramfs::MODULE_LOAD_LIST_PATH),
            modules: g.initramfs.load_order.clone(),
        },
        grub: GrubChanges {
            entry_id: ENTRY_ID.into(),
            entry_title: ENTRY_TITLE.into(),
            route: GrubRoute::CustomCfg,
            files: vec![FileChange { path: CUSTOM_CFG.into(), change: custom_change }],
            env: vec![EnvChange {
                file: GRUBENV.into(),
                key: "next_entry".into(),
                previous: g.next_entry_before.clone(),
                value: ENTRY_ID.into(),
            }],
            uboot: None,
            pi: None,
        },
        finalize: g.profile.finalize_policy(),
        failure: FailurePolicy {
            step_retries: 3,
            retry_delay_secs: 5,
            disk_wait_secs: 30,
            watchdog: None,
        },
    };
    plan.validate()?;

    let (custom_cfg, staging_grub_cfg, core_img_config) = grub_texts(&g.grub, &g.staging_fs_uuid)?;
    Ok(StagePlan {
        plan,
        staging: g.staging.clone(),
        kernel: g.kernel.clone(),
        initramfs: g.initramfs.clone(),
        image_path: image.path.clone(),
        config_bytes: g.config.bytes.clone(),
        custom_cfg,
        staging_grub_cfg,
        core_img_config,
        budget,
        origin: image.origin.clone(),
        swap_names: super::fstab_edit::SwapNames {
            uuid: swap_header.uuid.clone(),
            label: swap_header.label.clone(),
            dev_path: swap_device.dev_path(),
            partuuid: swap_entry.partuuid.clone(),
        },
        notes,
    })
}

/// The host's disk and its root and swap partitions, as the plan names them.
struct HostPartitions {
    disk: crate::host::facts::DiskFacts,
    signature: u32,
    sector: SectorSize,
    root_entry: PartitionEntry,
    swap_entry: PartitionEntry,
    old_root: PartitionIdentity,
    staging_id: PartitionIdentity,
    swap_device: crate::host::block::BlockDevice,
    swap_header: crate::host::swap_header::SwapHeader,
}

/// Finds the root and swap partitions in the disk's (MBR) table.
fn host_partitions(g: &Gathered) -> Result<HostPartitions, Refusal> {
    let disk = g.facts.root_disk.clone().map_err(Refusal::HostFact)?;
    let root_device = g.facts.root_device.clone().map_err(Refusal::HostFact)?;
    let swap_device = g.facts.swap_device.clone().map_err(Refusal::HostFact)?;
    let swap_header = g.facts.swap_header.clone().map_err(Refusal::HostFact)?;
    let signature = match disk.table.id {
        DiskId::Mbr { signature } => signature,
        DiskId::Gpt { .. } => {
            return Err(Refusal::HostGpt {
                disk: disk.path.clone(),
                profile: g.profile.name.clone(),
            })
        }
    };
    let sector = disk_sector_size(disk.table.sector_size)?;
    let find = |device: &crate::host::block::BlockDevice, what: &str| {
        let start = device.start.map(|s| s.bytes()).unwrap_or_default();
        disk.table.find_by_start(start).cloned().ok_or_else(|| {
            Refusal::HostFact(format!(
                "the {what} partition {} is not in {}'s table",
                device.dev_path(),
                disk.path
            ))
        })
    };
    let root_entry = find(&root_device, "root")?;
    let swap_entry = find(&swap_device, "swap")?;
    let old_root = identity(signature, &root_entry, sector)?;
    let staging_id = identity(signature, &swap_entry, sector)?;

    Ok(HostPartitions {
        disk,
        signature,
        sector,
        root_entry,
        swap_entry,
        old_root,
        staging_id,
        swap_device,
        swap_header,
    })
}

/// The image's data partitions under the profile's names, placed on the host's disk.
fn target_partitions(
    image: &ImageFacts,
    profile: &Profile,
    sector: SectorSize,
) -> Result<Vec<TargetPartition>, Refusal> {
    let mut partitions = Vec::new();
    let expected = {
        let mut p = profile.target.partitions.clone();
        p.sort_by_key(|p| p.order);
        p
    };
    for (found, wanted) in image.data_partitions().iter().zip(expected.iter()) {
        let disk_start =
            found.start.to_bytes(SectorSize::S512).and_then(|b| b.to_sectors(sector)).map_err(
                |source| Refusal::ImageSizes { partition: Some(wanted.name.clone()), source },
            )?;
        partitions.push(TargetPartition {
            name: wanted.name.clone(),
            role: wanted.role,
            fs: wanted.fs,
            image_start: Sectors(found.start.0),
            size: Sectors(found.size.0),
            disk_start,
        });
    }

    Ok(partitions)
}

/// What staging must hold, against the swap partition's size (`have`); refuses when the
/// backup set, or the rest, does not fit.
fn staging_budget(
    g: &Gathered,
    image: &ImageFacts,
    have: Bytes,
    swap_device: &crate::host::block::BlockDevice,
) -> Result<StagingBudget, Refusal> {
    // What staging must hold.
    let backup_estimate = Bytes::checked_sum(g.backups.iter().map(|b| b.estimate))
        .map_err(|e| Refusal::HostFact(e.to_string()))?;
    let margin = STAGING_MARGIN
        .checked_add(Bytes(have.get() / 20))
        .map_err(|e| Refusal::HostFact(e.to_string()))?;
    let image_bytes = Bytes::checked_sum([
        image.compressed_size,
        Bytes(g.config.bytes.len() as u64),
        GRUB_FILES_ALLOWANCE,
    ])
    .map_err(|e| Refusal::HostFact(e.to_string()))?;
    let needed = Bytes::checked_sum([
        g.kernel.vmlinuz_size,
        g.initramfs.size,
        image_bytes,
        backup_estimate,
        margin,
    ])
    .map_err(|e| Refusal::HostFact(e.to_string()))?;
    let budget = StagingBudget {
        kernel: g.kernel.vmlinuz_size,
        initramfs: g.initramfs.size,
        image: image_bytes,
        backup: backup_estimate,
        margin,
        needed,
        have,
    };
    let without_backup =
        needed.checked_sub(backup_estimate).map_err(|e| Refusal::HostFact(e.to_string()))?;
    // Kernel, initramfs and image fit but the backup set does not: say so, with both sizes.
    if let (true, Ok(room)) = (needed > have, have.checked_sub(without_backup)) {
        return Err(Refusal::BackupTooLarge {
            paths: g
                .backups
                .iter()
                .map(|b| format!("{} {}", b.path.display(), b.estimate))
                .collect::<Vec<_>>()
                .join(", "),
            backup: backup_estimate,
            room,
            device: swap_device.dev_path(),
            have,
            kernel: budget.kernel,
            initramfs: budget.initramfs,
            image: budget.image,
            margin: budget.margin,
        });
    }
    if needed > have {
        return Err(Refusal::SwapTooSmall {
            device: swap_device.dev_path(),
            have,
            needed,
            kernel: budget.kernel,
            initramfs: budget.initramfs,
            image: budget.image,
            backup: budget.backup,
            margin: budget.margin,
        });
    }
    Ok(budget)
}

/// The application the backups are restored under, and the backup volumes.
fn backup_volumes(g: &Gathered) -> Result<(String, Vec<BackupVolume>), Refusal> {
    let app_id = match (&g.config.application_id, g.backups.is_empty()) {
        (Some(id), _) => id.clone(),
        (None, true) => "unassigned".to_string(),
        (None, false) => return Err(Refusal::NoApplicationId),
    };
    let volumes = if g.backups.is_empty() {
        Vec::new()
    } else {
        vec![BackupVolume {
            name: "data".into(),
            restore_to: g.profile.restore.data.to_restore_location(&app_id),
            items: g
                .backups
                .iter()
                .map(|b| BackupItem {
                    source: b.path.display().to_string(),
                    target: b.path.display().to_string().trim_start_matches('/').to_string(),
                    filters: Vec::new(),
                    excludes: Vec::new(),
                    estimated_size: b.estimate,
                })
                .collect(),
        }]
    };
    Ok((app_id, volumes))
}

/// How arming changes the host's custom.cfg: created, or modified with its original kept.
fn custom_cfg_change(g: &Gathered) -> FileChangeKind {
    match &g.custom_cfg_original {
        None => FileChangeKind::Created,
        Some(bytes) => FileChangeKind::Modified {
            backup: CUSTOM_CFG_BACKUP.into(),
            original_sha256: Sha256Hex::from_digest(&sha2::Digest::finalize(
                <sha2::Sha256 as sha2::Digest>::new_with_prefix(bytes),
            )),
        },
    }
}

/// The old root's file system type, as mounted (ext4 when unknown).
fn root_fs_type(g: &Gathered) -> FsType {
    match g.facts.root_mount.as_ref().map(|m| m.fs_type.as_str()) {
        Ok("ext2") => FsType::Ext2,
        Ok("ext3") => FsType::Ext3,
        _ => FsType::Ext4,
    }
}

/// custom.cfg for the host, grub.cfg for staging, core.img's embedded config.
fn grub_texts(
    report: &grub::CfgReport,
    staging_uuid: &str,
) -> Result<(String, String, String), Refusal> {
    let staging = grub::cfg_inspect::StagingFs {
        uuid: staging_uuid.to_string(),
        fs: grub::cfg_inspect::StagingFsType::Ext4,
        table: Some(grub::cfg_inspect::PartitionTable::Msdos),
    };
    let needs =
        report.staging_entry_needs(&staging).map_err(|e| Refusal::GrubCfg(e.to_string()))?;
    let entry = grub::MenuEntry {
        title: ENTRY_TITLE.into(),
        id: ENTRY_ID.into(),
        needs,
        kernel: format!("{STAGING_DIR}/vmlinuz"),
        initrd: format!("{STAGING_DIR}/initramfs.img"),
        args: KERNEL_ARGS.iter().map(|a| a.to_string()).collect(),
    };
    let custom = grub::menu_entry::custom_cfg(std::slice::from_ref(&entry))
        .map_err(|e| Refusal::GrubCfg(e.to_string()))?;
    let staging_cfg = format!(
        "# Written by swapover: the migration environment, reached through core.img once the migrator owns the MBR.\n\
         serial --unit=0 --speed=115200\n\
         terminal_input console serial\n\
         terminal_output console serial\n\
         set timeout=0\n\
         set default=0\n\
         menuentry '{ENTRY_TITLE}' --id {ENTRY_ID} {{\n\
         \tlinux {STAGING_DIR}/vmlinuz {args}\n\
         \tinitrd {STAGING_DIR}/initramfs.img\n\
         }}\n",
        args = KERNEL_ARGS.join(" ")
    );
    // Serial and console first, so that a failing search says so where someone can read it.
    // After this config GRUB loads `normal` from the prefix, which reads $prefix/grub.cfg.
    let core = format!(
        "serial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial\n\
         echo 'swapover: resuming the migration environment'\n\
         search --no-floppy --fs-uuid --set=root {staging_uuid}\nset prefix=($root){STAGING_DIR}/grub\n"
    );
    Ok((custom, staging_cfg, core))
}

/// The profile's modules plus [`EXTRA_MODULES`], without duplicates, in order.
pub fn wanted_modules(profile: &Profile) -> Vec<String> {
    let mut wanted: Vec<String> = profile.initramfs.modules.clone();
    for extra in EXTRA_MODULES {
        if !wanted.iter().any(|m| m.replace('-', "_") == extra) {
            wanted.push(extra.to_string());
        }
    }
    wanted
}
