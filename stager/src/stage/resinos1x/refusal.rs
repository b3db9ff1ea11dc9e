//! Why a resinOS 1.x device will not be staged: one line each, naming the problem, the
//! sizes involved and the fix. Reached before anything is changed.

use plan::Bytes;

#[derive(Debug, thiserror::Error)]
pub enum Refusal1x {
    #[error("profile {profile} migrates a {kind} device, not a resinOS 1.x one; use a resinos1x-* profile ({suggestions}) for a resinOS 1.x device")]
    NotA1xProfile { profile: String, kind: String, suggestions: String },
    #[error("the disk {disk} is not a resinOS 1.x disk: {why}; for an Ubuntu/GRUB host use `stager stage --profile {suggestions}`")]
    NotA1xDisk { disk: String, why: String, suggestions: String },
    #[error("the disk {disk} already runs resinOS 2.x (it has a partition labelled {label}); there is nothing to migrate")]
    Already2x { disk: String, label: String },
    #[error(
        "the disk {disk} cannot be read: {problem}; check the path (run as root for a device)"
    )]
    Disk { disk: String, problem: String },
    #[error("partition {number} ({label}) of {disk} is {found}, profile {profile} expects {expected}; this is not the profile's board layout, pick the profile of this board")]
    WrongFs {
        disk: String,
        number: u32,
        label: String,
        found: String,
        expected: String,
        profile: String,
    },
    #[error("the 1.x data partition's {dir} cannot be measured: {problem}; mount resin-data and pass its mount point with --data-root")]
    AppData { dir: String, problem: String },
    #[error("the data to carry over measures {measured:#} (uncompressed, {dir}), over the {limit:#} limit of the resinOS 1.x -> 2.x path (profile {profile}, backup_limit_compressed_mb); data is never truncated: remove application data under {dir} until it is below the limit")]
    BackupOverLimit { measured: Bytes, limit: Bytes, dir: String, profile: String },
    #[error("the spare root {device} holds {found}, not the ext2/3/4 file system resinOS 1.x makes there; staging goes into that file system (its contents are kept), so this is not a resinOS 1.x layout the stager knows")]
    SpareRootNoFs { device: String, found: String },
    #[error("the spare root {device} has {have:#} free but staging needs {needed:#} (trial boot set {trial_set} + kernel {kernel} + initramfs {initramfs} + image {image} + backup {backup} + margin {margin}); carry less application data or use a smaller (or better compressed) image")]
    SpareRootTooSmall {
        device: String,
        trial_set: Bytes,
        have: Bytes,
        needed: Bytes,
        kernel: Bytes,
        initramfs: Bytes,
        image: Bytes,
        backup: Bytes,
        margin: Bytes,
    },
    #[error("the boot partition {device} has {free:#} free but the migration kernel {kernel} + initramfs {initramfs} need {needed:#} there (the board firmware loads them only from it); remove unused files from it or use a smaller initramfs")]
    BootPartitionFull {
        device: String,
        free: Bytes,
        needed: Bytes,
        kernel: Bytes,
        initramfs: Bytes,
    },
    #[error("the staging partition {label} (sectors {start}..{end}) overlaps the 2.x image's {overlaps} (sectors {part_start}..{part_end}), which is written before the migration is done; only resin-rootB (written last) or space past the image may hold it — this device's 1.x layout cannot be migrated in place with this image")]
    StagingOverlap {
        label: String,
        start: u64,
        end: u64,
        overlaps: String,
        part_start: u64,
        part_end: u64,
    },
    #[error("the 2.x image ({image_end_mib} MiB) is larger than the disk ({disk_mib} MiB); use the image for this board")]
    ImageLargerThanDisk { image_end_mib: u64, disk_mib: u64 },
    #[error("the image has no {role} partition where profile {profile} expects {name}; download the right image for the profile")]
    ImageMissingPartition { role: String, name: String, profile: String },
    #[error("the migration kernel {0}, and pass such a kernel with --kernel")]
    KernelNotEfi(efivars::UefiError),
    /// The supervisor-update mark cannot be decided (API, image, version); names the fix.
    #[error("supervisor update: {0}")]
    SupervisorMark(String),
    /// R5 (docs/arm-1x-contract.md §5.2): without the counter the trial's boot cannot be told
    /// from any other.
    #[error("cannot read U-Boot's boot counter at {address:#x} through {path}: {problem}; the trial cannot be armed safely without it (run as root on the board's own resinOS 1.x kernel, whose /dev/mem reaches the RTC registers)")]
    BootCounterUnreadable { address: u64, path: String, problem: String },
    #[error("{0}")]
    BootCounterAtLimit(uboot_env::TrialError),
    /// The board's `uEnv.txt` cannot be the base of the trial.
    #[error("the boot partition's uEnv.txt: {0}")]
    Uenv(String),
    /// The device is not ready to be staged (boot partition, efivarfs, an earlier run's files).
    #[error("{0}")]
    NotReady(String),
    /// The Raspberry Pi trial cannot be planned on this device (one line, with the fix).
    #[error("{0}")]
    PiTrial(String),
    #[error("{0}")]
    Stage(#[from] crate::stage::Refusal),
    #[error("the plan is inconsistent: {0}")]
    Plan(#[from] plan::PlanError),
}
