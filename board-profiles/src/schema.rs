//! The profile schema: what one board profile TOML file holds.
//!
//! Every table refuses unknown keys, so a typo is an error rather than a
//! silently ignored setting. Shared kinds (table, file system, role, source
//! kind) come from the `plan` crate so that profile and plan speak one language.

use plan::{Bytes, FsType, PartitionRole, SourceKind, TableKind, UbootInterface, UnitError};
use serde::{Deserialize, Serialize};

/// One supported board and source layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile name: the file's stem (`intel-nuc`, `resinos1x-raspberrypi3`). Not in the file.
    #[serde(skip)]
    pub name: String,
    /// Where the profile came from, for error messages (`profiles/intel-nuc.toml (built-in)`).
    #[serde(skip)]
    pub origin: String,
    /// One line for `stager profiles`.
    pub description: String,
    /// resin device-type slug the target image must be built for.
    pub device_type: String,
    pub architecture: Architecture,
    pub boot_mode: BootMode,
    pub bootloader: Bootloader,
    /// Bootloader configuration files on the boot partition that the migration
    /// keeps or edits (paths relative to the boot partition's root).
    pub bootloader_config_files: Vec<String>,
    pub source: Source,
    pub target: Target,
    pub requirements: Requirements,
    pub initramfs: Initramfs,
    pub restore: Restore,
    pub finalize: Finalize,
    /// Present exactly when `source.kind = "resinos-1x"`.
    pub resinos1x: Option<Resinos1x>,
    /// How a resinOS 1.x U-Boot board is armed for one trial boot (docs/arm-1x-contract.md
    /// §2.3). Present exactly when `bootloader = "u-boot"` and the source is resinOS 1.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uboot_trial: Option<UbootTrialProfile>,
    /// How a resinOS 1.x Raspberry Pi is armed for one trial boot from its spare partition
    /// (docs/arm-1x-contract.md §2.2). Present exactly when `bootloader =
    /// "raspberrypi-firmware"` and the source is resinOS 1.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pi_trial: Option<PiTrialProfile>,
}

/// The Raspberry Pi trial's board facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiTrialProfile {
    /// The kernel file the GPU firmware loads on this board, relative to the boot
    /// partition's root (`kernel7.img` on Pi 2/3, `kernel.img` on Pi 1).
    pub kernel: String,
    /// The 1.x kernel's module parameter that picks the partition the next restart boots
    /// (absolute sysfs path; `bcm2709` on Pi 2/3, `bcm2708` on Pi 1, contract P8). Newer
    /// kernels lack it and take the number through `reboot(RESTART2, "N")` instead.
    pub reboot_part: String,
    /// Firmware files copied from resin-boot to the trial set; each must exist.
    pub firmware_files: Vec<String>,
    /// Firmware files copied when present (the `start_x`/`start_cd`/`fixup_*` variants).
    #[serde(default)]
    pub optional_firmware_files: Vec<String>,
    /// Boot partition files (names or `*` patterns) replaced only at the very end of the
    /// migration, after the new system is complete (contract §2.5).
    pub blobs_last: Vec<String>,
}

/// The U-Boot trial's board facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UbootTrialProfile {
    /// U-Boot's name of the block interface holding the boot partition (`mmc`; `virtio`
    /// in the QEMU harness's test profile).
    pub interface: UbootInterface,
    /// Where U-Boot keeps its boot counter, read through `/dev/mem` before arming.
    pub bootcount: BootcountRegister,
    /// The running 1.x kernel, on the root file system (absolute path).
    pub kernel: String,
    /// The device tree U-Boot's `findfdt` picks for this board, on the root file system.
    pub dtb: String,
    /// A watchdog U-Boot started that keeps running into Linux; the migrator feeds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog: Option<String>,
}

/// A 32-bit boot-counter word in physical memory (`0xB001` in the upper half, the count in
/// the lower, as U-Boot's `bootcount_store` writes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootcountRegister {
    /// Physical address of the word.
    pub address: u64,
    pub byte_order: ByteOrder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ByteOrder {
    BigEndian,
    LittleEndian,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Architecture {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "armv6")]
    Armv6,
    #[serde(rename = "armv7")]
    Armv7,
    #[serde(rename = "aarch64")]
    Aarch64,
}

impl Architecture {
    /// True when `uname -m` on the device reports a machine of this architecture.
    pub fn matches_uname_machine(self, machine: &str) -> bool {
        match self {
            Architecture::X86_64 => machine == "x86_64",
            Architecture::Armv6 => machine == "armv6l",
            Architecture::Armv7 => machine == "armv7l",
            Architecture::Aarch64 => machine == "aarch64",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootMode {
    /// PC BIOS (legacy boot; no `/sys/firmware/efi`).
    Bios,
    /// UEFI (`/sys/firmware/efi` present).
    Uefi,
    /// An ARM board's own boot ROM/firmware (Raspberry Pi GPU firmware, BeagleBone ROM + u-boot).
    BoardFirmware,
}

impl BootMode {
    /// The mode a host's firmware shows (`/sys/firmware/efi` present or not): BIOS or UEFI.
    /// `None` for board firmware, which the host cannot tell apart from BIOS.
    pub fn host_detectable(self) -> Option<BootMode> {
        match self {
            BootMode::Bios | BootMode::Uefi => Some(self),
            BootMode::BoardFirmware => None,
        }
    }
}

impl std::fmt::Display for BootMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BootMode::Bios => "BIOS",
            BootMode::Uefi => "UEFI",
            BootMode::BoardFirmware => "board firmware",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bootloader {
    Grub2,
    UBoot,
    RaspberrypiFirmware,
}

/// Where the staging area comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StagingSource {
    /// The host's swap partition (Ubuntu/Debian hosts).
    SwapPartition,
    /// The spare (inactive) root partition (resinOS 1.x `resin-updt`).
    SpareRootPartition,
}

/// What the device runs before the migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub kind: SourceKind,
    pub staging: StagingSource,
    /// The source's partition table kind, when the profile knows it (resinOS 1.x).
    pub partition_table: Option<TableKind>,
    /// The source's known partitions (resinOS 1.x); empty when discovered on the host.
    #[serde(default)]
    pub partitions: Vec<ExpectedPartition>,
}

/// The resinOS image that is installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub partition_table: TableKind,
    /// Partition alignment used by the image builder, in KiB.
    pub alignment_kib: u64,
    pub partitions: Vec<ExpectedPartition>,
}

/// A partition a layout is expected to have. Sizes are typical values for
/// display and pre-checks; the real ones are read from the image's or disk's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedPartition {
    pub name: String,
    pub role: PartitionRole,
    pub fs: FsType,
    /// Position among the layout's partitions, 1-based, in table order (an MBR
    /// extended container is not counted).
    pub order: u32,
    pub typical_size_mib: u64,
    /// The partition takes the rest of the disk on a flashed device (resin-data).
    #[serde(default)]
    pub fills_rest: bool,
}

impl ExpectedPartition {
    pub fn typical_size(&self) -> Result<Bytes, UnitError> {
        Bytes::from_mib(self.typical_size_mib)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    pub min_ram_mib: u64,
    pub min_disk_mib: u64,
}

impl Requirements {
    pub fn min_ram(&self) -> Result<Bytes, UnitError> {
        Bytes::from_mib(self.min_ram_mib)
    }

    pub fn min_disk(&self) -> Result<Bytes, UnitError> {
        Bytes::from_mib(self.min_disk_mib)
    }
}

/// Kernel modules the migration initramfs should load, in this order.
/// Names as `modprobe` takes them; ones built into the kernel are skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Initramfs {
    pub modules: Vec<String>,
}

/// A place in the new system: a partition (by role) and an absolute path on it.
/// The path may contain `{app_id}`, replaced by config.json's `applicationId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub partition: PartitionRole,
    pub path: String,
}

impl Location {
    /// The path with `{app_id}` replaced.
    pub fn resolve_path(&self, app_id: &str) -> String {
        self.path.replace(APP_ID_PLACEHOLDER, app_id)
    }
}

pub const APP_ID_PLACEHOLDER: &str = "{app_id}";

/// Where restored things go in the new system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restore {
    /// Where backed-up data goes.
    pub data: Location,
    pub config_json: Location,
    /// Directory for NetworkManager keyfiles (resinOS 2.x: boot partition, `/system-connections`).
    pub network_connections: Location,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finalize {
    /// The partition that may grow at finalize.
    pub grow_partition: PartitionRole,
    /// Whether it grows over the staging area once staging is no longer needed.
    pub grow_over_staging: bool,
    /// Why (or why not), in a sentence; copied into the plan.
    pub reason: String,
}

/// resinOS 1.x specifics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resinos1x {
    /// Where 1.x keeps config.json, tried in order (host paths).
    pub config_json_locations: Vec<String>,
    /// Directory, on the 1.x data partition, holding each application's `/data`.
    pub app_data_dir: String,
    /// Entries of `app_data_dir` (relative globs) not carried over, with everything under them.
    #[serde(default)]
    pub app_data_excludes: Vec<String>,
    /// WiFi Connect's connman settings, relative to the data partition (may use `{app_id}`).
    pub wifi_connect_config: String,
    /// connman's state directory on the 1.x root.
    pub connman_dir: String,
    /// Backups beyond this (compressed, decimal megabytes) are refused: they
    /// must fit on the spare root partition.
    pub backup_limit_compressed_mb: u64,
    /// Oldest 1.x release the path supports (semver text, e.g. `1.8.0`).
    pub min_source_version: String,
    /// Oldest 2.x release that may be installed (e.g. `2.2.0+rev1`).
    pub min_target_version: String,
}

impl Resinos1x {
    pub fn backup_limit(&self) -> Result<Bytes, UnitError> {
        Bytes(self.backup_limit_compressed_mb).checked_mul(1_000_000)
    }
}

impl Profile {
    /// The target partition with this role, if the profile expects one.
    pub fn target_partition(&self, role: PartitionRole) -> Option<&ExpectedPartition> {
        self.target.partitions.iter().find(|p| p.role == role)
    }

    /// The source partition with this role (resinOS 1.x profiles).
    pub fn source_partition(&self, role: PartitionRole) -> Option<&ExpectedPartition> {
        self.source.partitions.iter().find(|p| p.role == role)
    }

    /// The backup limit for this migration path, if it has one.
    pub fn backup_limit(&self) -> Result<Option<Bytes>, UnitError> {
        self.resinos1x.as_ref().map(Resinos1x::backup_limit).transpose()
    }
}
