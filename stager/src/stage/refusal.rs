//! Why `stager stage` will not stage: each refusal is one line naming the problem and the fix.
//! A refusal is always reached before anything on the host changed.

use super::backup_estimate::EstimateError;
use super::config_json::ConfigJsonError;
use super::host_extras::HostExtraError;
use super::image_probe::ProbeError;
use crate::checks::Check;
use plan::Bytes;

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("a migration is already staged ({path} exists); run `stager status` to see it, or `stager abort` to undo it first")]
    AlreadyStaged { path: String },
    #[error("check {id} failed: {found}: {reason}; fix: {fix}")]
    Check { id: String, found: String, reason: String, fix: String },
    #[error("profile {profile} migrates a {kind} device; `stager stage` only stages Ubuntu/Debian GRUB hosts; plan a resinOS 1.x device with `stager plan-image --profile {profile}` (stage a UEFI one with `stager stage-1x`), or pick an x86 Ubuntu profile for an Ubuntu host")]
    NotAGrubHostProfile { profile: String, kind: String },
    #[error("this device runs {found}, not Ubuntu/Debian; profile {profile} is for Ubuntu/GRUB hosts; plan a resinOS 1.x device with `stager plan-image --profile {suggestions}` (stage a UEFI one with `stager stage-1x`)")]
    ResinosHost { found: String, profile: String, suggestions: String },
    #[error("the disk {disk} has a GPT partition table but profile {profile} expects MBR; this device cannot be migrated with this profile")]
    HostGpt { disk: String, profile: String },
    #[error("profile {profile} expects {expected} boot but this device booted in {found} mode; choose a profile for {found} devices")]
    BootMode { profile: String, expected: String, found: String },
    #[error("host fact missing: {0}; run `stager check` for details")]
    HostFact(String),
    #[error("grub.cfg cannot be inspected: {0}; check /boot/grub/grub.cfg")]
    GrubCfg(String),
    #[error("grub.cfg does not honour a one-shot next_entry ({0}); regenerate it with `update-grub` from Ubuntu's /etc/grub.d scripts")]
    GrubNoNextEntry(String),
    #[error("grub.cfg does not source /boot/grub/custom.cfg ({0}); regenerate it with `update-grub` so that 41_custom is included")]
    GrubNoCustomCfg(String),
    #[error("{0}")]
    Config(#[from] ConfigJsonError),
    #[error("config.json has no applicationId but backups were asked for (they are restored under the application's data); download config.json from the application's dashboard")]
    NoApplicationId,
    #[error("{0}")]
    Image(#[from] ProbeError),
    #[error("the image is for device type {found}, the profile is for {expected}; download the {expected} image")]
    ImageDeviceType { found: String, expected: String },
    #[error("the image's device type cannot be read ({0}); pass --allow-unknown-device-type only if you are sure the image is for this board")]
    ImageDeviceTypeUnknown(String),
    #[error("the image has {found} partitions but profile {profile} expects {expected} ({names}); download the right image for the profile")]
    ImageLayout { found: usize, expected: usize, profile: String, names: String },
    #[error("the image does not fit the old root's space: {0}")]
    ImageTooLarge(String),
    #[error("the swap partition {device} is {have} but staging needs {needed} (kernel {kernel} + initramfs {initramfs} + image {image} + backup {backup} + margin {margin}); grow the swap partition or use a smaller image")]
    SwapTooSmall {
        device: String,
        have: Bytes,
        needed: Bytes,
        kernel: Bytes,
        initramfs: Bytes,
        image: Bytes,
        backup: Bytes,
        margin: Bytes,
    },
    #[error("the backup set ({paths}) is {backup} but the staging space has {room} left for it (swap partition {device} is {have}; kernel {kernel} + initramfs {initramfs} + image {image} + margin {margin} come first); back up less or grow the swap partition")]
    BackupTooLarge {
        paths: String,
        backup: Bytes,
        room: Bytes,
        device: String,
        have: Bytes,
        kernel: Bytes,
        initramfs: Bytes,
        image: Bytes,
        margin: Bytes,
    },
    #[error("{0}")]
    Backup(#[from] EstimateError),
    #[error("{0}")]
    Kernel(#[from] HostExtraError),
    #[error("the initramfs cannot be built: {0}; check /lib/modules of the running kernel")]
    Initramfs(String),
    #[error("{0}")]
    Prepare(#[from] super::prepare::PrepareError),
    #[error("the image's {name} partition ({number}) holds {found}, where the migration {usage} {expected}: this is not a bootable resinOS image (a flasher's data partitions are empty); give the resinOS download for this device type (the .zip as downloaded)")]
    ImageFilesystem {
        name: String,
        number: u32,
        found: String,
        usage: &'static str,
        expected: String,
    },
    #[error("the plan is inconsistent: {0}")]
    Plan(#[from] plan::PlanError),
}

impl Refusal {
    pub fn from_check(check: &Check) -> Refusal {
        Refusal::Check {
            id: check.id.to_string(),
            found: check.found.clone(),
            reason: check.reason.clone(),
            fix: check.fix.clone().unwrap_or_default(),
        }
    }
}
