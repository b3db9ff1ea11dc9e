//! The plan: everything the migrator needs to know, decided by the stager on
//! the running host and written as JSON onto the staging file system.
//!
//! The stager builds a [`Plan`], calls [`Plan::validate`], writes
//! [`Plan::to_json_pretty`]. The migrator reads it with [`Plan::from_json`],
//! which refuses any other format version and validates again.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::identity::{DiskId, IdentityError, PartitionIdentity};
use crate::kinds::{Compression, FsType, PartitionRole, SourceKind, TableKind};
use crate::units::{Bytes, Extent, SectorSize, Sectors, UnitError};
use crate::RefusalText;

/// The plan format this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Why a plan is refused; [`PlanError::text`] gives the problem and the fix apart, the one
/// line (what the migrator prints) joins them.
#[derive(Debug, Error)]
#[error("{}", self.text())]
pub enum PlanError {
    UnsupportedFormat {
        found: u64,
        supported: u32,
    },
    MissingFormatVersion,
    Json(#[from] serde_json::Error),
    Identity {
        what: &'static str,
        source: IdentityError,
    },
    Units {
        what: String,
        source: UnitError,
    },
    WrongDisk {
        what: &'static str,
        found: String,
        expected: String,
    },
    SectorSizeMismatch {
        what: &'static str,
        found: SectorSize,
        expected: SectorSize,
    },
    OutsideDisk {
        what: String,
        extent: Extent,
        disk_size: Sectors,
    },
    RootOverlapsStaging {
        root: Extent,
        staging: Extent,
    },
    ZeroSize {
        what: String,
    },
    NotAbsolute {
        what: String,
        path: String,
    },
    NotPlainRelative {
        what: String,
        path: String,
    },
    Empty {
        what: String,
    },
    BadSha256 {
        what: &'static str,
        value: String,
    },
    UncompressedSizeMismatch {
        compressed: Bytes,
        raw: Bytes,
    },
    EmptyLayout,
    DuplicateName(String),
    DuplicateRole(PartitionRole),
    OutsideImage {
        name: String,
        start: Bytes,
        end: Bytes,
        image_size: Bytes,
    },
    OutsideRegion {
        name: String,
        extent: Extent,
        region: Extent,
    },
    RegionOutsideOldRoot {
        region: Extent,
        root: Extent,
    },
    RegionOverlapsStaging {
        region: Extent,
        staging: Extent,
    },
    PartitionOverlap {
        a: String,
        b: String,
    },
    MissingRole {
        what: String,
        role: PartitionRole,
    },
    BackupTooLarge {
        estimate: Bytes,
        limit: Bytes,
    },
    EmptyVolume(String),
    UnknownWrittenLast(String),
    WrittenLastForSource(SourceKind),
    SourceDataForSource(SourceKind),
    SourceDataOverlap {
        data: Extent,
        what: &'static str,
        other: Extent,
    },
    /// `grub.uboot` present without `route = uboot-trial`, or missing with it.
    UbootTrialMismatch {
        route: GrubRoute,
        has_uboot: bool,
    },
    /// `grub.pi` present without `route = pi-firmware-trial`, or missing with it.
    PiTrialMismatch {
        route: GrubRoute,
        has_pi: bool,
    },
    /// `grub.pi.trial_partition` is not a primary partition other than the boot partition.
    PiTrialPartition {
        found: u32,
    },
}

impl PlanError {
    /// What is wrong with the plan and, where there is one, what to do about it, kept apart.
    /// A tail that states a rule or a diagnosis ("all partitions must be on one disk", "the
    /// partition table is inconsistent") is part of the problem, not a fix.
    pub fn text(&self) -> RefusalText {
        let new = |problem: String, fix: &str| RefusalText::new(problem, fix.into());
        let problem = RefusalText::problem_only;
        match self {
            PlanError::UnsupportedFormat { found, supported } => new(
                format!("plan format {found} not supported by this migrator (supports {supported})"),
                "re-stage with a matching stager",
            ),
            PlanError::MissingFormatVersion => problem(
                "plan has no numeric format_version field; it was not written by a swapover stager"
                    .into(),
            ),
            PlanError::Json(e) => new(
                format!("plan is not valid JSON or lacks a field: {e}"),
                "re-stage to write a fresh plan",
            ),
            PlanError::Identity { what, source } => source.text().within(what),
            PlanError::Units { what, source } => source.text().within(what),
            PlanError::WrongDisk { what, found, expected } => problem(format!(
                "{what} is on disk {found}, not on the source disk {expected}; all partitions must be on one disk"
            )),
            PlanError::SectorSizeMismatch { what, found, expected } => {
                problem(format!("{what} uses {found}, but the source disk uses {expected}"))
            }
            PlanError::OutsideDisk { what, extent, disk_size } => new(
                format!("{what} ({extent}) reaches past the end of the disk ({disk_size})"),
                "re-read the partition table",
            ),
            PlanError::RootOverlapsStaging { root, staging } => problem(format!(
                "the old root ({root}) and the staging partition ({staging}) overlap; the partition table is inconsistent"
            )),
            PlanError::ZeroSize { what } => problem(format!("{what} must not be zero")),
            PlanError::NotAbsolute { what, path } => {
                problem(format!("{what} '{path}' must be an absolute path"))
            }
            PlanError::NotPlainRelative { what, path } => problem(format!(
                "{what} '{path}' must be a relative path without '..' components"
            )),
            PlanError::Empty { what } => problem(format!("{what} must not be empty")),
            PlanError::BadSha256 { what, value } => {
                problem(format!("{what} '{value}' is not a sha256 (64 hexadecimal digits)"))
            }
            PlanError::UncompressedSizeMismatch { compressed, raw } => problem(format!(
                "image is not compressed but its compressed size ({compressed}) differs from its raw size ({raw})"
            )),
            PlanError::EmptyLayout => new(
                "target layout has no partitions".into(),
                "read the image's partition table again",
            ),
            PlanError::DuplicateName(name) => {
                problem(format!("target layout names partition '{name}' twice"))
            }
            PlanError::DuplicateRole(role) => {
                problem(format!("target layout has two partitions with role {role}"))
            }
            PlanError::OutsideImage { name, start, end, image_size } => problem(format!(
                "target partition '{name}' lies at image bytes {start}..{end}, past the raw image size {image_size}"
            )),
            PlanError::OutsideRegion { name, extent, region } => problem(format!(
                "target partition '{name}' ({extent}) is outside the layout region ({region})"
            )),
            PlanError::RegionOutsideOldRoot { region, root } => problem(format!(
                "layout region ({region}) is not inside the old root partition ({root}); the image must fit in the old root's space"
            )),
            // The fix follows the consequence after a dash; the one line joins the two
            // with "; " as before.
            PlanError::RegionOverlapsStaging { region, staging } => new(
                format!("layout region ({region}) overlaps the staging partition ({staging})"),
                "flashing would destroy the migration environment — use a smaller image or a larger old root",
            ),
            PlanError::UbootTrialMismatch { route, has_uboot: true } => problem(format!(
                "the plan's grub.uboot (a U-Boot trial) does not belong to route {route:?}"
            )),
            PlanError::UbootTrialMismatch { route, has_uboot: false } => problem(format!(
                "the plan's route {route:?} needs grub.uboot (how the U-Boot trial was armed), and it is missing"
            )),
            PlanError::PiTrialMismatch { route, has_pi: true } => problem(format!(
                "the plan's grub.pi (a Raspberry Pi firmware trial) does not belong to route {route:?}"
            )),
            PlanError::PiTrialMismatch { route, has_pi: false } => problem(format!(
                "the plan's route {route:?} needs grub.pi (how the Raspberry Pi trial was armed), and it is missing"
            )),
            PlanError::PiTrialPartition { found } => problem(format!(
                "the plan's grub.pi.trial_partition is {found}; the firmware boots the trial from primary partition 2, 3 or 4"
            )),
            PlanError::PartitionOverlap { a, b } => {
                problem(format!("target partitions '{a}' and '{b}' overlap on disk"))
            }
            PlanError::MissingRole { what, role } => problem(format!(
                "{what} refers to a {role} partition, but the target layout has none"
            )),
            PlanError::BackupTooLarge { estimate, limit } => new(
                format!("backup estimate {estimate} exceeds the limit {limit} for this migration path"),
                "remove paths from the backup set (data is never truncated)",
            ),
            PlanError::EmptyVolume(name) => problem(format!("backup volume '{name}' has no items")),
            PlanError::UnknownWrittenLast(name) => {
                problem(format!("written_last names '{name}', which is not a target partition"))
            }
            PlanError::WrittenLastForSource(kind) => problem(format!(
                "written_last is only for resinOS 1.x sources (staging on the spare root), not {kind}"
            )),
            PlanError::SourceDataForSource(kind) => problem(format!(
                "source_data (a separate data partition) is only for resinOS 1.x sources, not {kind}"
            )),
            PlanError::SourceDataOverlap { data, what, other } => problem(format!(
                "the source data partition ({data}) overlaps the {what} ({other}); the partition table is inconsistent"
            )),
        }
    }
}

/// The migration plan, format version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Always [`FORMAT_VERSION`] when written by this crate.
    pub format_version: u32,
    /// The stager's version, for diagnosis.
    pub stager_version: String,
    pub profile: ProfileRef,
    pub source_disk: SourceDisk,
    pub old_root: FsPartition,
    /// resinOS 1.x: the data partition (btrfs `resin-data`), which the migrator mounts
    /// read-only at `/mnt/data` below the old root, where the backup items read it.
    /// Absent (and not in the JSON) for Ubuntu hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_data: Option<FsPartition>,
    pub staging: Staging,
    pub image: TargetImage,
    pub layout: TargetLayout,
    pub backup: BackupSet,
    pub network: NetworkSources,
    pub config_json: ConfigJson,
    /// The host's hostname, carried into the new system; `None` keeps resinOS's default.
    pub hostname: Option<String>,
    pub modules: ModuleLoad,
    pub grub: GrubChanges,
    pub finalize: FinalizePolicy,
    pub failure: FailurePolicy,
}

/// Which board profile the plan was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileRef {
    /// Profile name, e.g. `intel-nuc` or `resinos1x-raspberrypi3`.
    pub name: String,
    /// resin device-type slug the image must be built for, e.g. `intel-nuc`.
    pub device_type: String,
    pub source_kind: SourceKind,
}

/// The whole disk that holds the old root and the staging partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDisk {
    pub id: DiskId,
    pub table: TableKind,
    /// Disk size in `sector_size` sectors.
    pub size: Sectors,
    pub sector_size: SectorSize,
}

impl SourceDisk {
    pub fn size_bytes(&self) -> Result<Bytes, UnitError> {
        self.size.to_bytes(self.sector_size)
    }
}

/// A partition together with the file system found on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsPartition {
    pub partition: PartitionIdentity,
    /// File system UUID as blkid prints it.
    pub fs_uuid: String,
    pub fs_type: FsType,
}

/// The staging partition (old swap, or the spare root on resinOS 1.x).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Staging {
    pub partition: PartitionIdentity,
    /// UUID of the file system the stager made on it (GRUB finds it by this: `search --fs-uuid`).
    pub fs_uuid: String,
    pub fs_type: FsType,
    /// Absolute directory on the staging file system holding kernel, initramfs,
    /// image, config.json, journal and log, e.g. `/swapover`.
    pub dir: String,
    /// UUID of the swap signature that was there before, so that an abort can
    /// recreate swap with the same UUID (fstab may name it). `None` for a spare root.
    pub original_swap_uuid: Option<String>,
}

/// A sha256 digest in lower-case hexadecimal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sha256Hex(pub String);

impl Sha256Hex {
    /// From a raw 32-byte digest (e.g. `sha2::Sha256::finalize()`).
    pub fn from_digest(digest: &[u8]) -> Sha256Hex {
        Sha256Hex(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// From text (either case, surrounding whitespace ignored), stored lower case.
    pub fn parse(text: &str) -> Result<Sha256Hex, PlanError> {
        let digest = Sha256Hex(text.trim().to_ascii_lowercase());
        if digest.is_well_formed() {
            Ok(digest)
        } else {
            Err(PlanError::BadSha256 { what: "sha256", value: text.to_string() })
        }
    }

    pub fn is_well_formed(&self) -> bool {
        self.0.len() == 64 && self.0.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The resinOS image staged for flashing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetImage {
    /// File name relative to [`Staging::dir`].
    pub file: String,
    pub compression: Compression,
    /// Size of the file as stored.
    pub compressed_size: Bytes,
    /// Size of the decompressed disk image.
    pub raw_size: Bytes,
    /// sha256 of the file as stored (checked before anything is written).
    pub compressed_sha256: Sha256Hex,
    /// sha256 of the decompressed stream (checked while flashing).
    pub raw_sha256: Sha256Hex,
}

/// Where the image's partitions land on the disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetLayout {
    /// Kind of table the image carries (and the final disk table will use).
    pub table: TableKind,
    /// Sector size of the image's own partition table (512 for resinOS images).
    pub image_sector_size: SectorSize,
    /// Disk sectors (in the source disk's sector size) that flashing may write;
    /// never overlaps staging. For an Ubuntu host: the old root partition.
    pub region: Extent,
    /// Partitions in the image's order.
    pub partitions: Vec<TargetPartition>,
    /// Names of partitions flashed last, after backup, restore and every other partition, once
    /// the migration no longer needs the staging area (resinOS 1.x: `resin-rootB`, whose
    /// sectors hold the spare root `resin-updt` that stages the migration). The staging
    /// partition may lie inside the region only when it lies wholly inside one of these.
    /// Empty (and absent from the JSON) for Ubuntu hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub written_last: Vec<String>,
}

/// One partition of the image, as read from the image's partition table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetPartition {
    /// Partition name/label, e.g. `resin-boot`.
    pub name: String,
    pub role: PartitionRole,
    pub fs: FsType,
    /// Start in the image, in image sectors.
    pub image_start: Sectors,
    /// Size, in image sectors.
    pub size: Sectors,
    /// Start on the disk, in disk sectors.
    pub disk_start: Sectors,
}

impl TargetPartition {
    /// Byte offset of the partition inside the raw image.
    pub fn image_offset(&self, layout: &TargetLayout) -> Result<Bytes, UnitError> {
        self.image_start.to_bytes(layout.image_sector_size)
    }

    pub fn size_bytes(&self, layout: &TargetLayout) -> Result<Bytes, UnitError> {
        self.size.to_bytes(layout.image_sector_size)
    }

    /// Byte offset of the partition on the disk.
    pub fn disk_offset(&self, disk_sector_size: SectorSize) -> Result<Bytes, UnitError> {
        self.disk_start.to_bytes(disk_sector_size)
    }

    /// The partition's disk sectors; fails when its size is not a whole number of disk sectors.
    pub fn disk_extent(
        &self,
        layout: &TargetLayout,
        disk_sector_size: SectorSize,
    ) -> Result<Extent, UnitError> {
        let len = self.size_bytes(layout)?.to_sectors(disk_sector_size)?;
        Ok(Extent::new(self.disk_start, len))
    }
}

impl TargetLayout {
    pub fn by_role(&self, role: PartitionRole) -> Option<&TargetPartition> {
        self.partitions.iter().find(|p| p.role == role)
    }

    pub fn by_name(&self, name: &str) -> Option<&TargetPartition> {
        self.partitions.iter().find(|p| p.name == name)
    }
}

/// A place in the new system: a partition (by role) and an absolute path on its file system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreLocation {
    pub partition: PartitionRole,
    pub path: String,
}

/// What is carried over: volumes, each restored to one place, each made of items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSet {
    pub volumes: Vec<BackupVolume>,
    /// Upper bound for the backup on this path (e.g. ~170 MB compressed on
    /// resinOS 1.x, bounded by the spare root). Compared against the
    /// uncompressed estimate, which errs on the side of refusing.
    pub limit: Option<Bytes>,
}

impl BackupSet {
    /// Sum of the items' estimates.
    pub fn estimated_size(&self) -> Result<Bytes, UnitError> {
        Bytes::checked_sum(
            self.volumes.iter().flat_map(|v| v.items.iter().map(|i| i.estimated_size)),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupVolume {
    /// Short name, used for the archive's file name on staging.
    pub name: String,
    /// Where the volume's items are restored.
    pub restore_to: RestoreLocation,
    pub items: Vec<BackupItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupItem {
    /// Absolute path on the old root (file or directory).
    pub source: String,
    /// Path relative to the volume's restore location; empty: the source's own path;
    /// `.`: a directory's contents straight into the restore location.
    pub target: String,
    /// Optional glob filters; empty means everything under `source`.
    pub filters: Vec<String>,
    /// Paths relative to `source` (globs) left out, a directory with everything under it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    pub estimated_size: Bytes,
}

/// Where network settings are read from on the old root (absolute paths).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSources {
    /// NetworkManager connection files or directories (`/etc/NetworkManager/system-connections`).
    pub networkmanager: Vec<String>,
    /// wpa_supplicant configuration files.
    pub wpa_supplicant: Vec<String>,
    /// ifupdown files (`/etc/network/interfaces`, `interfaces.d/*`).
    pub ifupdown: Vec<String>,
    /// connman state/config dirs or files (resinOS 1.x, WiFi Connect's `network.config`).
    pub connman: Vec<String>,
    /// resinOS 1.x: also read the connman `files."network/network.config"` entry of the source config.json.
    pub config_json_network: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigJson {
    /// Absolute path on the staging file system.
    pub staged_at: String,
    /// Where it goes in the new system (resinOS 2.x: boot partition, `/config.json`).
    pub restore_to: RestoreLocation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleLoad {
    /// Absolute path, inside the initramfs, of the file listing module files in load order.
    pub order_file: String,
    /// Module names in load order, as the order file lists them (for display and diagnosis).
    pub modules: Vec<String>,
}

/// How the host's GRUB configuration reaches the migration entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrubRoute {
    /// grub.cfg sources `/boot/grub/custom.cfg` (Ubuntu/Debian `41_custom`).
    CustomCfg,
    /// An entry in `/etc/grub.d/40_custom`, then `update-grub`.
    UpdateGrub,
    /// resinOS 1.x: the bootloader files on the boot partition (`config.txt`, `uEnv.txt`,
    /// `EFI/BOOT/grub.cfg`) are edited to boot the migration environment; `files` lists each
    /// with the byte copy that undoes it, `env` is empty.
    BootFiles,
    /// resinOS 1.x on UEFI: no GRUB file changes. A firmware load option `Boot####` starts
    /// the kernel's EFI stub from the boot partition (its files listed in `files`), armed
    /// for one boot with `BootNext`, which the firmware deletes before it boots it.
    UefiBootNext,
    /// resinOS 1.x on a U-Boot board (BeagleBone Black): `uEnv.txt` on the boot partition
    /// is replaced, by rename, with a text that boots the migration environment from the
    /// boot partition's `swapover/` only while U-Boot's `${bootcount}` equals the value armed
    /// (docs/arm-1x-contract.md §2.3); [`GrubChanges::uboot`] says how.
    UbootTrial,
    /// resinOS 1.x on a Raspberry Pi: the GPU firmware boots the spare root partition,
    /// reformatted as FAT32 and holding the trial's firmware, kernel, `config.txt` and
    /// initramfs, once, chosen through the kernel's `reboot_part` / `reboot(RESTART2, "N")`;
    /// any later reset boots partition 1, i.e. 1.x (docs/arm-1x-contract.md §2.2).
    /// [`GrubChanges::pi`] says how.
    PiFirmwareTrial,
}

/// How the Raspberry Pi trial (`route = pi-firmware-trial`) was armed, for the migrator's
/// commit (contract §2.2 "Migrator, Phase B") and its boot-file update (§2.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiTrialBoot {
    /// The MBR partition number the firmware boots the trial from (the spare root, 2 or 3):
    /// the value written to `reboot_part`.
    pub trial_partition: u32,
    /// The kernel file the firmware loads on this board (`kernel7.img` on Pi 2/3,
    /// `kernel.img` on Pi 1), relative to a boot partition's root. The commit copies the
    /// trial's to `swapover/<kernel>` on resin-boot.
    pub kernel: String,
    /// Boot partition files (names or `*` patterns, relative to its root) that the
    /// migrator replaces only at the end, after the new system is complete (contract §2.5's
    /// window: `bootcode.bin`, `start*.elf`, `fixup*.dat`, the dtbs, `overlays/*`, the kernel).
    pub blobs_last: Vec<String>,
}

/// How the U-Boot trial (`route = uboot-trial`) was armed, for the migrator's commit and for
/// `abort`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UbootTrialBoot {
    /// U-Boot's name of the block interface that holds the boot partition (`mmc` on the
    /// board, `virtio` in the QEMU harness): the commit text loads from it.
    pub interface: uboot_env::UbootInterface,
    /// The 1.x `uEnv.txt`'s byte copy, relative to the boot partition's root
    /// (`swapover/uEnv.txt.1x`): `abort` renames it back, the commit renders from it.
    pub original_uenv: String,
    /// The value of `${bootcount}` at which the trial runs (the counter read at arming, + 1).
    pub trial_count: u32,
}

/// What the stager changed in the host's GRUB setup, so that it can be undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrubChanges {
    /// The menu entry id (`menuentry ... --id`), the value of `next_entry`.
    pub entry_id: String,
    pub entry_title: String,
    pub route: GrubRoute,
    pub files: Vec<FileChange>,
    pub env: Vec<EnvChange>,
    /// Present exactly when `route = uboot-trial`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uboot: Option<UbootTrialBoot>,
    /// Present exactly when `route = pi-firmware-trial`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pi: Option<PiTrialBoot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileChange {
    /// Absolute host path.
    pub path: String,
    pub change: FileChangeKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FileChangeKind {
    /// The file did not exist; undo removes it.
    Created,
    /// The file existed; undo restores `backup` (a byte copy whose sha256 was `original_sha256`).
    Modified { backup: String, original_sha256: Sha256Hex },
}

/// One grubenv variable set by the stager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvChange {
    /// Absolute path of the grubenv file.
    pub file: String,
    pub key: String,
    /// The value before, `None` when unset (undo unsets it).
    pub previous: Option<String>,
    pub value: String,
}

/// What happens to the staging area once the new system is in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalizePolicy {
    /// Grow `partition` over the staging area at finalize.
    pub grow_over_staging: bool,
    /// The partition that grows (resin-data).
    pub partition: PartitionRole,
    /// Why, in a sentence (shown by `--dry-run` and logged).
    pub reason: String,
}

/// Bounds for the migrator's retries after destruction has begun.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailurePolicy {
    /// Attempts per step before stopping with a console message.
    pub step_retries: u32,
    pub retry_delay_secs: u32,
    /// How long to wait for the disk to appear at boot.
    pub disk_wait_secs: u32,
    /// A hardware watchdog the boot firmware started and the migrator must feed from its
    /// first second (BeagleBone Black: U-Boot's 60 s OMAP watchdog, contract B11/R4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog: Option<WatchdogFeed>,
}

/// A watchdog device the migrator keeps fed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogFeed {
    /// Device path (`/dev/watchdog`).
    pub device: String,
    /// Seconds between two feeds; well below the hardware timeout.
    pub interval_secs: u32,
}

impl Plan {
    /// Pretty JSON, as written onto the staging file system.
    pub fn to_json_pretty(&self) -> Result<String, PlanError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Reads a plan: checks the format version first (so that an old or new
    /// plan gets a clear message rather than a missing-field error), then
    /// deserialises and validates.
    pub fn from_json(text: &str) -> Result<Plan, PlanError> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let version = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or(PlanError::MissingFormatVersion)?;
        if version != u64::from(FORMAT_VERSION) {
            return Err(PlanError::UnsupportedFormat { found: version, supported: FORMAT_VERSION });
        }
        let plan: Plan = serde_json::from_value(value)?;
        plan.validate()?;
        Ok(plan)
    }

    /// Checks internal consistency. See [`PlanError`] for what is refused.
    pub fn validate(&self) -> Result<(), PlanError> {
        if self.format_version != FORMAT_VERSION {
            return Err(PlanError::UnsupportedFormat {
                found: u64::from(self.format_version),
                supported: FORMAT_VERSION,
            });
        }
        self.validate_disk_and_partitions()?;
        self.validate_image()?;
        self.validate_layout()?;
        self.validate_backup()?;
        self.validate_paths_and_names()?;
        self.validate_boot_route()?;
        Ok(())
    }

    fn validate_boot_route(&self) -> Result<(), PlanError> {
        let route = self.grub.route;
        let has_uboot = self.grub.uboot.is_some();
        if (route == GrubRoute::UbootTrial) != has_uboot {
            return Err(PlanError::UbootTrialMismatch { route, has_uboot });
        }
        if let Some(uboot) = &self.grub.uboot {
            require_plain_relative("grub.uboot.original_uenv", &uboot.original_uenv)?;
        }
        let has_pi = self.grub.pi.is_some();
        if (route == GrubRoute::PiFirmwareTrial) != has_pi {
            return Err(PlanError::PiTrialMismatch { route, has_pi });
        }
        if let Some(pi) = &self.grub.pi {
            require_plain_relative("grub.pi.kernel", &pi.kernel)?;
            for blob in &pi.blobs_last {
                require_plain_relative("grub.pi.blobs_last", blob)?;
            }
            if !(2..=4).contains(&pi.trial_partition) {
                return Err(PlanError::PiTrialPartition { found: pi.trial_partition });
            }
        }
        Ok(())
    }

    fn validate_disk_and_partitions(&self) -> Result<(), PlanError> {
        let disk = &self.source_disk;
        if disk.size.is_zero() {
            return Err(PlanError::ZeroSize { what: "source disk size".into() });
        }
        let parts = [
            ("old root", &self.old_root.partition),
            ("staging partition", &self.staging.partition),
        ];
        for (what, part) in parts {
            part.validate().map_err(|source| PlanError::Identity { what, source })?;
            if part.disk != disk.id {
                return Err(PlanError::WrongDisk {
                    what,
                    found: part.disk.to_string(),
                    expected: disk.id.to_string(),
                });
            }
            if part.sector_size != disk.sector_size {
                return Err(PlanError::SectorSizeMismatch {
                    what,
                    found: part.sector_size,
                    expected: disk.sector_size,
                });
            }
            self.check_inside_disk(what, part.extent())?;
        }
        let (root, staging) = (self.old_root.partition.extent(), self.staging.partition.extent());
        if root.overlaps(&staging) {
            return Err(PlanError::RootOverlapsStaging { root, staging });
        }
        if let Some(data) = &self.source_data {
            if self.profile.source_kind != SourceKind::Resinos1x {
                return Err(PlanError::SourceDataForSource(self.profile.source_kind));
            }
            let what = "source data partition";
            data.partition.validate().map_err(|source| PlanError::Identity { what, source })?;
            if data.partition.disk != disk.id {
                return Err(PlanError::WrongDisk {
                    what,
                    found: data.partition.disk.to_string(),
                    expected: disk.id.to_string(),
                });
            }
            if data.partition.sector_size != disk.sector_size {
                return Err(PlanError::SectorSizeMismatch {
                    what,
                    found: data.partition.sector_size,
                    expected: disk.sector_size,
                });
            }
            self.check_inside_disk(what, data.partition.extent())?;
            let extent = data.partition.extent();
            for (what, other) in [("old root", root), ("staging partition", staging)] {
                if extent.overlaps(&other) {
                    return Err(PlanError::SourceDataOverlap { data: extent, what, other });
                }
            }
        }
        Ok(())
    }

    fn check_inside_disk(&self, what: &str, extent: Extent) -> Result<(), PlanError> {
        let whole = Extent::new(Sectors::ZERO, self.source_disk.size);
        if !whole.contains(&extent) {
            return Err(PlanError::OutsideDisk {
                what: what.to_string(),
                extent,
                disk_size: self.source_disk.size,
            });
        }
        Ok(())
    }

    fn validate_image(&self) -> Result<(), PlanError> {
        let image = &self.image;
        require_plain_relative("image file", &image.file)?;
        for (what, size) in
            [("image compressed size", image.compressed_size), ("image raw size", image.raw_size)]
        {
            if size.is_zero() {
                return Err(PlanError::ZeroSize { what: what.into() });
            }
        }
        for (what, digest) in [
            ("compressed image sha256", &image.compressed_sha256),
            ("raw image sha256", &image.raw_sha256),
        ] {
            if !digest.is_well_formed() {
                return Err(PlanError::BadSha256 { what, value: digest.0.clone() });
            }
        }
        if image.compression == Compression::None && image.compressed_size != image.raw_size {
            return Err(PlanError::UncompressedSizeMismatch {
                compressed: image.compressed_size,
                raw: image.raw_size,
            });
        }
        Ok(())
    }

    fn validate_layout(&self) -> Result<(), PlanError> {
        let layout = &self.layout;
        let disk_sector = self.source_disk.sector_size;
        if layout.partitions.is_empty() {
            return Err(PlanError::EmptyLayout);
        }
        if layout.region.len.is_zero() {
            return Err(PlanError::ZeroSize { what: "layout region".into() });
        }
        self.check_inside_disk("layout region", layout.region)?;
        let staging = self.staging.partition.extent();
        self.validate_written_last()?;
        if layout.region.overlaps(&staging) && !self.staging_inside_written_last(disk_sector) {
            return Err(PlanError::RegionOverlapsStaging { region: layout.region, staging });
        }
        if self.profile.source_kind == SourceKind::UbuntuGrubHost {
            let root = self.old_root.partition.extent();
            if !root.contains(&layout.region) {
                return Err(PlanError::RegionOutsideOldRoot { region: layout.region, root });
            }
        }

        let mut names = HashSet::new();
        let mut roles = HashSet::new();
        let mut placed: Vec<(&str, Extent)> = Vec::new();
        for part in &layout.partitions {
            if part.name.is_empty() {
                return Err(PlanError::Empty { what: "target partition name".into() });
            }
            if !names.insert(part.name.as_str()) {
                return Err(PlanError::DuplicateName(part.name.clone()));
            }
            if !roles.insert(part.role) {
                return Err(PlanError::DuplicateRole(part.role));
            }
            if part.size.is_zero() {
                return Err(PlanError::ZeroSize {
                    what: format!("target partition '{}' size", part.name),
                });
            }
            let units = |source| PlanError::Units {
                what: format!("target partition '{}'", part.name),
                source,
            };
            let start = part.image_offset(layout).map_err(units)?;
            let end = start.checked_add(part.size_bytes(layout).map_err(units)?).map_err(units)?;
            if end > self.image.raw_size {
                return Err(PlanError::OutsideImage {
                    name: part.name.clone(),
                    start,
                    end,
                    image_size: self.image.raw_size,
                });
            }
            let extent = part.disk_extent(layout, disk_sector).map_err(units)?;
            if !layout.region.contains(&extent) {
                return Err(PlanError::OutsideRegion {
                    name: part.name.clone(),
                    extent,
                    region: layout.region,
                });
            }
            if let Some((other, _)) = placed.iter().find(|(_, e)| e.overlaps(&extent)) {
                return Err(PlanError::PartitionOverlap {
                    a: other.to_string(),
                    b: part.name.clone(),
                });
            }
            placed.push((part.name.as_str(), extent));
        }
        Ok(())
    }

    fn validate_written_last(&self) -> Result<(), PlanError> {
        let layout = &self.layout;
        if !layout.written_last.is_empty() && self.profile.source_kind != SourceKind::Resinos1x {
            return Err(PlanError::WrittenLastForSource(self.profile.source_kind));
        }
        match layout.written_last.iter().find(|name| layout.by_name(name).is_none()) {
            Some(name) => Err(PlanError::UnknownWrittenLast(name.clone())),
            None => Ok(()),
        }
    }

    /// True when the staging partition lies wholly inside a partition flashed last.
    pub fn staging_inside_written_last(&self, disk_sector: SectorSize) -> bool {
        let staging = self.staging.partition.extent();
        self.layout.written_last.iter().filter_map(|name| self.layout.by_name(name)).any(|part| {
            part.disk_extent(&self.layout, disk_sector)
                .map(|e| e.contains(&staging))
                .unwrap_or(false)
        })
    }

    fn require_role(&self, what: String, role: PartitionRole) -> Result<(), PlanError> {
        match self.layout.by_role(role) {
            Some(_) => Ok(()),
            None => Err(PlanError::MissingRole { what, role }),
        }
    }

    fn validate_backup(&self) -> Result<(), PlanError> {
        for volume in &self.backup.volumes {
            if volume.name.is_empty() {
                return Err(PlanError::Empty { what: "backup volume name".into() });
            }
            require_plain_relative("backup volume name", &volume.name)?;
            if volume.items.is_empty() {
                return Err(PlanError::EmptyVolume(volume.name.clone()));
            }
            self.require_role(
                format!("backup volume '{}'", volume.name),
                volume.restore_to.partition,
            )?;
            require_absolute(
                format!("backup volume '{}' restore path", volume.name),
                &volume.restore_to.path,
            )?;
            for item in &volume.items {
                require_absolute(
                    format!("backup source in volume '{}'", volume.name),
                    &item.source,
                )?;
                if !item.target.is_empty() {
                    require_plain_relative(
                        format!("backup target in volume '{}'", volume.name),
                        &item.target,
                    )?;
                }
            }
        }
        let estimate = self
            .backup
            .estimated_size()
            .map_err(|source| PlanError::Units { what: "backup estimate".into(), source })?;
        if let Some(limit) = self.backup.limit {
            if estimate > limit {
                return Err(PlanError::BackupTooLarge { estimate, limit });
            }
        }
        Ok(())
    }

    fn validate_paths_and_names(&self) -> Result<(), PlanError> {
        for (what, text) in [
            ("profile name", &self.profile.name),
            ("device type", &self.profile.device_type),
            ("old root file system UUID", &self.old_root.fs_uuid),
            ("staging file system UUID", &self.staging.fs_uuid),
            ("GRUB entry id", &self.grub.entry_id),
            ("finalize reason", &self.finalize.reason),
        ] {
            if text.trim().is_empty() {
                return Err(PlanError::Empty { what: what.into() });
            }
        }
        require_absolute("staging directory", &self.staging.dir)?;
        require_absolute("staged config.json", &self.config_json.staged_at)?;
        require_absolute("config.json restore path", &self.config_json.restore_to.path)?;
        self.require_role("config.json".into(), self.config_json.restore_to.partition)?;
        require_absolute("module order file", &self.modules.order_file)?;
        self.require_role("finalize policy".into(), self.finalize.partition)?;
        let network = &self.network;
        for path in network
            .networkmanager
            .iter()
            .chain(&network.wpa_supplicant)
            .chain(&network.ifupdown)
            .chain(&network.connman)
        {
            require_absolute("network source", path)?;
        }
        for change in &self.grub.files {
            require_absolute("GRUB file", &change.path)?;
            if let FileChangeKind::Modified { backup, original_sha256 } = &change.change {
                require_absolute("GRUB file backup", backup)?;
                if !original_sha256.is_well_formed() {
                    return Err(PlanError::BadSha256 {
                        what: "GRUB file original sha256",
                        value: original_sha256.0.clone(),
                    });
                }
            }
        }
        for env in &self.grub.env {
            require_absolute("grubenv file", &env.file)?;
            if env.key.is_empty() {
                return Err(PlanError::Empty { what: "grubenv key".into() });
            }
        }
        Ok(())
    }
}

fn require_absolute(what: impl Into<String>, path: &str) -> Result<(), PlanError> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(PlanError::NotAbsolute { what: what.into(), path: path.to_string() })
    }
}

fn require_plain_relative(what: impl Into<String>, path: &str) -> Result<(), PlanError> {
    let plain = !path.is_empty() && !path.starts_with('/') && path.split('/').all(|c| c != "..");
    if plain {
        Ok(())
    } else {
        Err(PlanError::NotPlainRelative { what: what.into(), path: path.to_string() })
    }
}

#[cfg(test)]
mod error_text_tests {
    use super::*;

    #[test]
    fn a_plan_error_gives_its_problem_and_fix_apart_and_prints_them_as_before() {
        let e = PlanError::UnsupportedFormat { found: 2, supported: 1 };
        let text = e.text();
        assert_eq!(text.problem, "plan format 2 not supported by this migrator (supports 1)");
        assert_eq!(text.fix.as_deref(), Some("re-stage with a matching stager"));
        assert_eq!(
            e.to_string(),
            "plan format 2 not supported by this migrator (supports 1); re-stage with a matching stager"
        );
    }

    #[test]
    fn a_nested_identity_error_keeps_its_fix_behind_the_plans_context() {
        let source = IdentityError::PartuuidMismatch {
            number: 2,
            found: "a-02".into(),
            expected: "b-02".into(),
        };
        let e = PlanError::Identity { what: "old root", source };
        let text = e.text();
        assert_eq!(
            text.problem,
            "old root: partition 2 has PARTUUID 'a-02' but its disk identifier gives 'b-02'"
        );
        assert_eq!(text.fix.as_deref(), Some("re-read the partition table"));
        assert_eq!(
            e.to_string(),
            "old root: partition 2 has PARTUUID 'a-02' but its disk identifier gives 'b-02'; re-read the partition table"
        );
        let units = PlanError::Units {
            what: "staging size".into(),
            source: UnitError::Misaligned { bytes: 100, sector_size: 512 },
        };
        assert_eq!(units.text().fix.as_deref(), Some("round up or down explicitly"));
        assert_eq!(
            units.to_string(),
            "staging size: 100 bytes is not a whole number of 512-byte sectors; round up or down explicitly"
        );
    }

    #[test]
    fn a_plan_error_whose_tail_is_a_rule_has_no_fake_fix() {
        // Split at its last "; ", this line would have offered "all partitions must be on
        // one disk" as the fix.
        let e = PlanError::WrongDisk { what: "old root", found: "a".into(), expected: "b".into() };
        assert_eq!(e.text().fix, None);
        assert_eq!(
            e.to_string(),
            "old root is on disk a, not on the source disk b; all partitions must be on one disk"
        );
        assert_eq!(e.text().problem, e.to_string());
        assert_eq!(PlanError::MissingFormatVersion.text().fix, None);
        assert_eq!(
            PlanError::MissingFormatVersion.to_string(),
            "plan has no numeric format_version field; it was not written by a swapover stager"
        );
    }
}

#[cfg(test)]
mod boot_route_tests {
    use super::*;

    fn uboot_trial() -> UbootTrialBoot {
        UbootTrialBoot {
            interface: uboot_env::UbootInterface::Mmc,
            original_uenv: "swapover/uEnv.txt.1x".into(),
            trial_count: 7,
        }
    }

    #[test]
    fn a_uboot_trial_plan_round_trips_through_json() {
        let mut plan = Plan::stem_example();
        plan.grub.route = GrubRoute::UbootTrial;
        plan.grub.uboot = Some(uboot_trial());
        plan.failure.watchdog =
            Some(WatchdogFeed { device: "/dev/watchdog".into(), interval_secs: 10 });
        let json = plan.to_json_pretty().unwrap();
        assert!(json.contains("\"route\": \"uboot-trial\""), "{json}");
        assert!(json.contains("\"interface\": \"mmc\""), "{json}");
        assert_eq!(Plan::from_json(&json).unwrap(), plan);
    }

    #[test]
    fn the_uboot_section_and_the_route_go_together() {
        let mut plan = Plan::stem_example();
        plan.grub.uboot = Some(uboot_trial());
        assert!(matches!(
            plan.validate(),
            Err(PlanError::UbootTrialMismatch { has_uboot: true, .. })
        ));
        plan.grub.uboot = None;
        plan.grub.route = GrubRoute::UbootTrial;
        assert!(matches!(
            plan.validate(),
            Err(PlanError::UbootTrialMismatch { has_uboot: false, .. })
        ));
        plan.grub.uboot =
            Some(UbootTrialBoot { original_uenv: "../uEnv.txt".into(), ..uboot_trial() });
        assert!(matches!(plan.validate(), Err(PlanError::NotPlainRelative { .. })));
    }

    #[test]
    fn an_ubuntu_plan_json_has_no_uboot_or_watchdog_field() {
        let json = Plan::stem_example().to_json_pretty().unwrap();
        assert!(!json.contains("uboot") && !json.contains("watchdog"), "{json}");
    }
}

#[cfg(test)]
mod pi_route_tests {
    use super::*;

    fn pi_trial() -> PiTrialBoot {
        PiTrialBoot {
            trial_partition: 3,
            kernel: "kernel7.img".into(),
            blobs_last: vec!["bootcode.bin".into(), "start*.elf".into(), "kernel7.img".into()],
        }
    }

    #[test]
    fn a_pi_trial_plan_round_trips_through_json() {
        let mut plan = Plan::stem_example();
        plan.grub.route = GrubRoute::PiFirmwareTrial;
        plan.grub.pi = Some(pi_trial());
        let json = plan.to_json_pretty().unwrap();
        assert!(json.contains("\"route\": \"pi-firmware-trial\""), "{json}");
        assert_eq!(Plan::from_json(&json).unwrap(), plan);
    }

    #[test]
    fn the_pi_section_and_the_route_go_together_and_its_paths_are_checked() {
        let mut plan = Plan::stem_example();
        plan.grub.pi = Some(pi_trial());
        assert!(matches!(plan.validate(), Err(PlanError::PiTrialMismatch { has_pi: true, .. })));
        plan.grub.route = GrubRoute::PiFirmwareTrial;
        plan.grub.pi = None;
        assert!(matches!(plan.validate(), Err(PlanError::PiTrialMismatch { has_pi: false, .. })));
        plan.grub.pi = Some(PiTrialBoot { trial_partition: 1, ..pi_trial() });
        assert!(matches!(plan.validate(), Err(PlanError::PiTrialPartition { found: 1 })));
        plan.grub.pi = Some(PiTrialBoot { kernel: "../kernel7.img".into(), ..pi_trial() });
        assert!(plan.validate().is_err());
        plan.grub.pi = Some(PiTrialBoot { blobs_last: vec!["/start.elf".into()], ..pi_trial() });
        assert!(plan.validate().is_err());
        plan.grub.pi = Some(pi_trial());
        assert!(plan.validate().is_ok());
    }
}
