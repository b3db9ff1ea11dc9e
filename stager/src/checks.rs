//! Host checks: each one says what it found, whether staging may proceed, and the fix.
//!
//! Every check is a pure function of [`HostFacts`] and [`CheckInputs`]; [`run_all`] runs
//! them in the order a person would fix things.

mod capacity;
mod storage;
mod system;

pub use capacity::profile_memory;

use crate::host::HostFacts;
use board_profiles::BootMode;
use plan::Bytes;
use serde::Serialize;

/// What the checks need from the board profile, the image and the plan. `None` means
/// "not known yet": the check is then reported as a warning that it was not evaluated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckInputs {
    /// The profile's boot mode.
    pub expected_boot_mode: Option<BootMode>,
    /// Room the staging area needs: kernel + initramfs + image + backup + margin.
    pub needed_swap: Option<Bytes>,
    /// Memory the stager and the reboot need once swap is off.
    pub min_memory: Option<Bytes>,
    /// Size of the target partition layout, written from the start of the disk.
    pub target_layout_size: Option<Bytes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    RootUser,
    OsRelease,
    Architecture,
    BootMode,
    Grub2,
    GrubNextEntry,
    GrubEntryRoute,
    RootPartition,
    RootStorage,
    BootWritable,
    SwapPartition,
    SameDisk,
    SwapSignature,
    SwapFstab,
    SwapResume,
    SwapSize,
    MemoryWithoutSwap,
    RootSpace,
    // Checks of what the command line gives (profile, image, config.json); see
    // `crate::input_checks`. Not in [`CheckId::ALL`]: they need more than the host's facts.
    Profile,
    ProfileMemory,
    ProfileDisk,
    Image,
    ImageDeviceType,
    ImageLayout,
    ConfigJson,
    StagingPlan,
}

impl CheckId {
    pub const ALL: [CheckId; 18] = [
        CheckId::RootUser,
        CheckId::OsRelease,
        CheckId::Architecture,
        CheckId::BootMode,
        CheckId::Grub2,
        CheckId::GrubNextEntry,
        CheckId::GrubEntryRoute,
        CheckId::RootPartition,
        CheckId::RootStorage,
        CheckId::BootWritable,
        CheckId::SwapPartition,
        CheckId::SameDisk,
        CheckId::SwapSignature,
        CheckId::SwapFstab,
        CheckId::SwapResume,
        CheckId::SwapSize,
        CheckId::MemoryWithoutSwap,
        CheckId::RootSpace,
    ];

    /// The id as printed and as in JSON, e.g. `swap-partition`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckId::RootUser => "root-user",
            CheckId::OsRelease => "os-release",
            CheckId::Architecture => "architecture",
            CheckId::BootMode => "boot-mode",
            CheckId::Grub2 => "grub2",
            CheckId::GrubNextEntry => "grub-next-entry",
            CheckId::GrubEntryRoute => "grub-entry-route",
            CheckId::RootPartition => "root-partition",
            CheckId::RootStorage => "root-storage",
            CheckId::BootWritable => "boot-writable",
            CheckId::SwapPartition => "swap-partition",
            CheckId::SameDisk => "same-disk",
            CheckId::SwapSignature => "swap-signature",
            CheckId::SwapFstab => "swap-fstab",
            CheckId::SwapResume => "swap-resume",
            CheckId::SwapSize => "swap-size",
            CheckId::MemoryWithoutSwap => "memory-without-swap",
            CheckId::RootSpace => "root-space",
            CheckId::Profile => "profile",
            CheckId::ProfileMemory => "profile-memory",
            CheckId::ProfileDisk => "profile-disk",
            CheckId::Image => "image",
            CheckId::ImageDeviceType => "image-device-type",
            CheckId::ImageLayout => "image-layout",
            CheckId::ConfigJson => "config-json",
            CheckId::StagingPlan => "staging-plan",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            CheckId::RootUser => "Running as root",
            CheckId::OsRelease => "Supported operating system",
            CheckId::Architecture => "CPU architecture",
            CheckId::BootMode => "Firmware boot mode matches the profile",
            CheckId::Grub2 => "GRUB 2 boot loader",
            CheckId::GrubNextEntry => "grub.cfg honours a one-shot next_entry",
            CheckId::GrubEntryRoute => "The new GRUB entry can be reached",
            CheckId::RootPartition => "Root filesystem on a disk partition",
            CheckId::RootStorage => "Root not on LVM, LUKS, md RAID or a btrfs subvolume",
            CheckId::BootWritable => "/boot is writable",
            CheckId::SwapPartition => "Swap is a partition (the staging area)",
            CheckId::SameDisk => "Root and swap on the same disk",
            CheckId::SwapSignature => "Swap signature and UUID readable",
            CheckId::SwapFstab => "fstab finds the swap partition again",
            CheckId::SwapResume => "The old OS boots without waiting for the swap (RESUME=)",
            CheckId::SwapSize => "Swap partition large enough for staging",
            CheckId::MemoryWithoutSwap => "Enough memory with swap turned off",
            CheckId::RootSpace => "Old root's space holds the new layout",
            CheckId::Profile => "The profile applies to this host",
            CheckId::ProfileMemory => "Memory meets the profile's minimum",
            CheckId::ProfileDisk => "Disk meets the profile's minimum",
            CheckId::Image => "Image readable, with the table the profile expects",
            CheckId::ImageDeviceType => "Image built for the profile's device type",
            CheckId::ImageLayout => "Image has the profile's partitions",
            CheckId::ConfigJson => "config.json parses and matches the device type",
            CheckId::StagingPlan => "A complete staging plan can be made",
        }
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Staging may proceed, but read the note.
    Warn,
    /// Staging may not proceed until this is fixed.
    Fail,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: CheckId,
    pub title: &'static str,
    pub status: Status,
    /// What was found on the host, in one line.
    pub found: String,
    /// Why that passes or fails, in one line.
    pub reason: String,
    /// What to do about it; `None` when there is nothing to do.
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(id: CheckId, found: impl Into<String>, reason: impl Into<String>) -> Self {
        Check {
            id,
            title: id.title(),
            status: Status::Pass,
            found: found.into(),
            reason: reason.into(),
            fix: None,
        }
    }

    pub fn warn(
        id: CheckId,
        found: impl Into<String>,
        reason: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check { status: Status::Warn, fix: Some(fix.into()), ..Check::pass(id, found, reason) }
    }

    pub fn fail(
        id: CheckId,
        found: impl Into<String>,
        reason: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check { status: Status::Fail, fix: Some(fix.into()), ..Check::pass(id, found, reason) }
    }

    /// Reported when an input the check compares against is not known yet.
    pub fn not_evaluated(id: CheckId, found: impl Into<String>, missing: &str, fix: &str) -> Self {
        Check::warn(id, found, format!("not evaluated: {missing} is not known yet"), fix)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// True when no check failed (warnings do not block).
    pub may_proceed: bool,
    pub checks: Vec<Check>,
}

impl CheckReport {
    pub fn new(checks: Vec<Check>) -> Self {
        CheckReport { may_proceed: checks.iter().all(|c| c.status != Status::Fail), checks }
    }

    pub fn get(&self, id: CheckId) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

/// Runs one check by id.
pub fn run(id: CheckId, facts: &HostFacts, inputs: &CheckInputs) -> Check {
    match id {
        CheckId::RootUser => system::root_user(facts),
        CheckId::OsRelease => system::os_release(facts),
        CheckId::Architecture => system::architecture(facts),
        CheckId::BootMode => system::boot_mode(facts, inputs.expected_boot_mode),
        CheckId::Grub2 => system::grub2(facts),
        CheckId::GrubNextEntry => system::grub_next_entry(facts),
        CheckId::GrubEntryRoute => system::grub_entry_route(facts),
        CheckId::RootPartition => storage::root_partition(facts),
        CheckId::RootStorage => storage::root_storage(facts),
        CheckId::BootWritable => storage::boot_writable(facts),
        CheckId::SwapPartition => storage::swap_partition(facts),
        CheckId::SameDisk => storage::same_disk(facts),
        CheckId::SwapSignature => storage::swap_signature(facts),
        CheckId::SwapFstab => storage::swap_fstab(facts),
        CheckId::SwapResume => system::swap_resume(facts),
        CheckId::SwapSize => capacity::swap_size(facts, inputs.needed_swap),
        CheckId::MemoryWithoutSwap => capacity::memory_without_swap(facts, inputs.min_memory),
        CheckId::RootSpace => capacity::root_space(facts, inputs.target_layout_size),
        CheckId::Profile
        | CheckId::ProfileMemory
        | CheckId::ProfileDisk
        | CheckId::Image
        | CheckId::ImageDeviceType
        | CheckId::ImageLayout
        | CheckId::ConfigJson
        | CheckId::StagingPlan => Check::not_evaluated(
            id,
            "-",
            "the profile, image or config.json it checks",
            "pass --profile, --image and --config to `stager check`",
        ),
    }
}

/// Runs every check, in [`CheckId::ALL`] order.
pub fn run_all(facts: &HostFacts, inputs: &CheckInputs) -> CheckReport {
    CheckReport::new(CheckId::ALL.iter().map(|id| run(*id, facts, inputs)).collect())
}
