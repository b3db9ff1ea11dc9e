//! `stager stage-1x`: stage a resinOS 1.x UEFI device (the 1.x Intel NUC) and arm its
//! migration environment for ONE boot through the firmware; or a resinOS 1.x BeagleBone
//! Black, armed for ONE trial boot through U-Boot's boot counter (see the end of this text).
//!
//! Every refusal comes before the first change. Then, each change recorded in the undo
//! journal before it is made and undone in reverse on any failure (or by `stager abort`):
//! attach resin-updt → mount it → write `swapover/` (plan, config.json, the image, its
//! sha256 checked as it is copied) into resin-updt's own file system → unmount → write
//! `swapover/vmlinuz` and `swapover/initramfs.img` (migrator as /init, modules, plan) on the
//! mounted resin-boot → a `Boot####` option for that kernel's EFI stub + `BootNext` → sync →
//! reboot (unless `--no-reboot`). The firmware deletes BootNext before it boots the option,
//! so the boot after that is the 1.x system's again whatever the migration environment does.
//! No file the 1.x system had is changed.
//!
//! On a U-Boot board (profile `uboot_trial`, docs/arm-1x-contract.md §2.3) the boot counter
//! is read before planning (the plan carries the trial's count), the board's kernel and dtb
//! are checked to be on the running root and its `u-boot.img` to have the boot counter; the
//! steps after the spare root's are: write `swapover/zImage`, `board.dtb` and `initramfs.img`
//! on the mounted resin-boot (each by temporary name, fsync, rename, read back against its
//! sha256) → copy `uEnv.txt` to `swapover/uEnv.txt.1x` and rename the trial's `uEnv.txt`
//! over it → sync → reboot. Only `uEnv.txt` of the 1.x files changes, and undo renames the
//! copy back.
//!
//! Run from the command line it is a session like `stage` ([`crate::run_session`]): the
//! host's run lock, the run log, and a signal after the first change rolls back (a signal
//! after the last step began leaves the device staged and armed, without the reboot).

use super::pi_trial;
use super::plan_image::{self, PlanImageRequest};
use super::planner::{self, Plan1x, INITRAMFS_FILE, KERNEL_FILE};
use super::refusal::Refusal1x;
use super::source_disk;
use super::supervisor_mark::{self, Api, MarkPlan};
use super::supervisor_version::SupervisorVersion;
use super::target_supervisor;
use super::uboot_trial;
use crate::host::locate;
use crate::host::HostRoot;
use crate::stage::engine::execute::{ExecuteError, ExecuteOptions, Run, StepFailure};
use crate::stage::engine::system::System;
use crate::stage::host_extras::Region;
use crate::stage::ubuntu::planning::{self, STAGING_DIR};
use crate::stage::ubuntu::staging_files::{self, PLAN_IN_INITRAMFS};
use crate::stage::Refusal;
use crate::state::{self, Change, StageState, StateStore, STATE_FORMAT};
use board_profiles::UbootTrialProfile;
use efivars::{EfiVars, HardDrive, LoadOption, PartitionSignature, UefiOneShot};
use plan::{Bytes, PartitionIdentity, PartitionRole, SectorSize};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Room left for the plan's own bytes in the initramfs measured before planning.
const INITRAMFS_SLACK: Bytes = Bytes(64 * 1024);
/// The firmware's name for the boot option.
pub const BOOT_OPTION_DESCRIPTION: &str = "swapover migration to resinOS 2.x";
/// The directory made on the boot partition for the kernel and initramfs.
const BOOT_DIR: &str = "swapover";

/// What `stage-1x` was given.
#[derive(Debug, Clone)]
pub struct Stage1xRequest {
    /// Disk, image, config.json, data root, kernel (its `initramfs` is not used: built here).
    pub plan: PlanImageRequest,
    pub root: HostRoot,
    /// The migration kernel's modules (`/lib/modules/<release>` of the 1.x root).
    pub modules: PathBuf,
    /// Where resin-boot is mounted, read-write (resinOS 1.x: `/mnt/boot`).
    pub boot_mount: PathBuf,
    /// The efivarfs mount (`/sys/firmware/efi/efivars`).
    pub efivars: PathBuf,
    pub migrator: Vec<u8>,
    pub dry_run: bool,
    pub execute: ExecuteOptions,
    pub supervisor: SupervisorRequest,
}

/// Whether and how the device is marked for a supervisor update in the resin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupervisorRequest {
    /// `--no-supervisor-update`.
    Skip,
    /// Mark it when the target's supervisor is newer: `version` given (`--supervisor-version`)
    /// or read from the image; `ca_cert` trusted for the API besides the public roots.
    Mark { version: Option<SupervisorVersion>, ca_cert: Option<PathBuf> },
}

#[derive(Debug, thiserror::Error)]
pub enum Stage1xError {
    #[error("refused: {0}; nothing was changed")]
    Refused(Box<Refusal1x>),
    #[error(transparent)]
    Execute(#[from] ExecuteError),
}

impl From<Refusal1x> for Stage1xError {
    fn from(r: Refusal1x) -> Self {
        Stage1xError::Refused(Box::new(r))
    }
}

impl From<Refusal> for Stage1xError {
    fn from(r: Refusal) -> Self {
        Refusal1x::Stage(r).into()
    }
}

#[derive(Debug)]
pub enum Outcome1x {
    DryRun(String),
    Staged { rebooting: bool, armed: Armed },
}

/// How the one boot of the migration environment was armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Armed {
    /// UEFI: `Boot####` set as `BootNext`.
    BootNext(u16),
    /// U-Boot: the trial runs at the boot whose `${bootcount}` is this.
    UbootTrial { trial_count: u32 },
    /// Raspberry Pi: the GPU firmware boots this partition once.
    PiTrial { partition: u32 },
}

impl Armed {
    pub fn describe(&self) -> String {
        match self {
            Armed::BootNext(number) => format!("Boot{number:04X} as BootNext"),
            Armed::UbootTrial { trial_count } => {
                format!("a U-Boot trial in uEnv.txt at bootcount {trial_count}")
            }
            Armed::PiTrial { partition } => {
                format!("the GPU firmware boots partition {partition} once")
            }
        }
    }
}

/// The boot partition as the firmware's device path names it, and its identity.
struct BootPartition {
    identity: PartitionIdentity,
    drive: HardDrive,
}

fn boot_partition(req: &PlanImageRequest) -> Result<BootPartition, Refusal1x> {
    let disk = source_disk::read(&req.disk)?;
    let matched = source_disk::match_profile(&disk, &req.profile)?;
    let boot = source_disk::role(&matched, PartitionRole::Boot).ok_or_else(|| Refusal1x::Disk {
        disk: req.disk.display().to_string(),
        problem: format!("profile {} names no boot partition", req.profile.name),
    })?;
    let identity = PartitionIdentity::mbr(
        disk.signature,
        boot.found.number,
        boot.found.start,
        boot.found.size,
        SectorSize::S512,
    )
    .map_err(|e| Refusal1x::Disk {
        disk: req.disk.display().to_string(),
        problem: e.to_string(),
    })?;
    let drive = HardDrive {
        number: boot.found.number,
        start_lba: boot.found.start.get(),
        size_lba: boot.found.size.get(),
        signature: PartitionSignature::Mbr(disk.signature),
    };
    Ok(BootPartition { identity, drive })
}

fn build_initramfs(req: &Stage1xRequest, plan_json: &str) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::new();
    initramfs::InitramfsBuilder::new()
        .init(req.migrator.clone())
        .modules(&req.modules, planning::wanted_modules(&req.plan.profile))
        .data_file(PLAN_IN_INITRAMFS, plan_json.as_bytes().to_vec())
        .compression(initramfs::Compression::Gzip)
        .write_to(&mut out)
        .map_err(|e| Refusal::Initramfs(format!("{e} (modules from {})", req.modules.display())))?;
    Ok(out)
}

/// How the one boot is armed, with what arming needs.
enum Arming {
    Uefi { vars: EfiVars },
    UbootTrial(TrialFiles),
    PiTrial(PiArming),
}

/// The Linux partition type of resinOS 1.x's spare root.
const EXT_PARTITION_TYPE: u8 = 0x83;
/// The running kernel's release.
const OSRELEASE: &str = "/proc/sys/kernel/osrelease";

/// The Raspberry Pi trial: the spare's new FAT and what goes on it.
struct PiArming {
    partition: u32,
    /// The kernel's `reboot_part` parameter (root-relative), when it has one.
    reboot_part: Option<String>,
    volume_id: u32,
    geometry: pi_trial::Fat32Geometry,
    /// resin-boot, read for the trial set.
    boot: Region,
    /// The trial set's files, relative to resin-boot's root.
    names: Vec<String>,
    config_txt: String,
    cmdline: String,
}

/// The U-Boot trial's files: the board's kernel and dtb (the initramfs is built), and the
/// 1.x `uEnv.txt` with its armed replacement (the plan's `uEnv.txt` edit).
struct TrialFiles {
    kernel: PathBuf,
    dtb: PathBuf,
    uenv_original: Vec<u8>,
    uenv_armed: Vec<u8>,
    trial_count: u32,
}

/// Everything checked and built before the first change.
struct Ready {
    p: Plan1x,
    plan_json: String,
    initramfs: Vec<u8>,
    boot: BootPartition,
    staging: Region,
    arming: Arming,
    boot_dir: PathBuf,
    supervisor: MarkPlan,
    api: Option<Api>,
}

/// What the board's `u-boot.img` must contain for the trial's text to work there
/// (contract R7: the TI fork is checked on the device's own binary, not assumed mainline).
const UBOOT_NEEDS: [&str; 3] = ["bootcount", "uenvcmd", "bootz"];
/// The board's U-Boot on the boot partition (MLO loads it from there).
const UBOOT_IMG: &str = "u-boot.img";
/// Larger than any am335x u-boot.img (about 400 KiB), small enough to read whole.
const UBOOT_IMG_MAX: u64 = 4 * 1024 * 1024;

/// The U-Boot trial's checks before the first change: the running board's kernel and dtb
/// (those of the profile's board), its U-Boot's counter support, and the planned uEnv.txt.
fn trial_files(
    req: &Stage1xRequest,
    p: &Plan1x,
    trial: &UbootTrialProfile,
) -> Result<TrialFiles, Refusal1x> {
    let root = &req.root;
    let on_root = |file: &str, what: &str| {
        let path = root.path(file);
        if path.is_file() {
            Ok(path)
        } else {
            Err(refuse_boot(format!(
                "{file} ({what}) is not on the running root, so this is not the board profile {} names (or not its resinOS 1.x); pick this board's profile",
                req.plan.profile.name
            )))
        }
    };
    on_root(&trial.kernel, "the board's 1.x kernel")?;
    let dtb = on_root(&trial.dtb, "the board's device tree")?;
    let uboot = root.path(&req.boot_mount).join(UBOOT_IMG);
    let bytes = std::fs::File::open(&uboot)
        .and_then(|f| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(f, UBOOT_IMG_MAX), &mut bytes)
                .map(|_| bytes)
        })
        .map_err(|e| {
            refuse_boot(format!(
                "cannot read the board's U-Boot {}: {e}; the trial needs U-Boot's boot counter, which is read from its strings",
                uboot.display()
            ))
        })?;
    let missing: Vec<&str> = UBOOT_NEEDS
        .iter()
        .copied()
        .filter(|needle| !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .collect();
    if !missing.is_empty() {
        return Err(refuse_boot(format!(
            "the board's U-Boot {} has no {} in its strings, so the trial's uEnv.txt (contract §2.3) would not run as planned there; this U-Boot is not the resinOS 1.x one the profile expects",
            uboot.display(),
            missing.join(", ")
        )));
    }
    let edit = p.boot_edits.iter().find(|e| e.name == uboot_trial::UENV);
    let (Some(edit), Some(uboot)) = (edit, &p.plan.grub.uboot) else {
        return Err(refuse_boot("the plan has no armed uEnv.txt for the U-Boot trial".into()));
    };
    // Planned from the disk's FAT; armed through the mount: both must be the same file.
    let mounted = root.path(&req.boot_mount).join(uboot_trial::UENV);
    if std::fs::read(&mounted).ok() != edit.original {
        return Err(refuse_boot(format!(
            "{} is not the uEnv.txt read from the disk's boot partition; mount the disk's resin-boot there (and sync) and run the stager again",
            mounted.display()
        )));
    }
    Ok(TrialFiles {
        kernel: req.plan.kernel.clone(),
        dtb,
        uenv_original: edit.original.clone().unwrap_or_default(),
        uenv_armed: edit.edited.clone(),
        trial_count: uboot.trial_count,
    })
}

fn refuse_boot(what: String) -> Refusal1x {
    Refusal1x::NotReady(what)
}

fn prepare(req: &Stage1xRequest) -> Result<Ready, Stage1xError> {
    let root = &req.root;
    if StateStore::new(root).exists() {
        return Err(Refusal::AlreadyStaged { path: state::STATE_FILE.into() }.into());
    }
    let profile = &req.plan.profile;
    if !planner::armed_by_firmware(profile)
        && profile.uboot_trial.is_none()
        && profile.pi_trial.is_none()
    {
        return Err(refuse_boot(format!(
            "profile {} arms the migration by editing {} on the boot partition, which its firmware cannot undo by itself after one boot; \
             stage-1x stages UEFI boards (armed with BootNext), U-Boot boards with a boot counter trial and Raspberry Pi boards with a firmware trial only; see `stager plan-image` for this board's plan",
            profile.name,
            profile.bootloader_config_files.join(", ")
        ))
        .into());
    }
    // The initramfs is measured with an empty plan, planned with room for the real one.
    let measured = build_initramfs(req, "{}")?;
    let estimate = Bytes(measured.len() as u64 + INITRAMFS_SLACK.get());
    let p = plan_image::plan_with_initramfs(&req.plan, estimate)?;
    let plan_json = p.plan.to_json_pretty().map_err(|e| Refusal::HostFact(e.to_string()))?;
    let initramfs = build_initramfs(req, &plan_json)?;
    if initramfs.len() as u64 > estimate.get() {
        return Err(Refusal::Initramfs(format!(
            "it came to {} bytes, more than the {estimate} planned",
            initramfs.len()
        ))
        .into());
    }

    let arming = match (&profile.uboot_trial, &profile.pi_trial) {
        (Some(trial), _) => Some(Arming::UbootTrial(trial_files(req, &p, trial)?)),
        // Once the spare is found, below.
        (None, Some(_)) => None,
        (None, None) => {
            let vars = EfiVars::at(root.path(&req.efivars));
            vars.check_available().map_err(|e| refuse_boot(e.to_string()))?;
            Some(Arming::Uefi { vars })
        }
    };

    let boot = boot_partition(&req.plan)?;
    let boot_device = locate::find_partition(root, &boot.identity)
        .map_err(|e| refuse_boot(format!("the boot partition: {e}")))?;
    let boot_mount = root.path(&req.boot_mount);
    let boot_dir = boot_mount.join(BOOT_DIR);
    if arming.is_some() {
        boot_mount_ready(req, &boot_device, &boot_dir)?;
    }
    let staging_device = locate::find_partition(root, &p.plan.staging.partition)
        .map_err(|e| refuse_boot(format!("the spare root: {e}")))?;
    let staging = Region::of_partition(root, &staging_device);
    let arming = match arming {
        Some(arming) => arming,
        None => Arming::PiTrial(pi_ready(req, &p, &boot_device, &staging_device, &staging)?),
    };
    let (supervisor, api) = supervisor_check(req, &p)?;
    Ok(Ready { p, plan_json, initramfs, boot, staging, arming, boot_dir, supervisor, api })
}

/// The Raspberry Pi trial's checks before the first change (contract §2.2 phase A): the
/// spare not mounted and still the 1.x ext3's partition type (else an earlier run's
/// leftovers), a way to name the trial partition to the firmware, and the trial's files.
fn pi_ready(
    req: &Stage1xRequest,
    p: &Plan1x,
    boot_device: &crate::host::block::BlockDevice,
    staging_device: &crate::host::block::BlockDevice,
    staging: &Region,
) -> Result<PiArming, Refusal1x> {
    let root = &req.root;
    let Some(trial) = &req.plan.profile.pi_trial else {
        return Err(refuse_boot("the profile has no pi_trial".into()));
    };
    let Some(pi) = &p.plan.grub.pi else {
        return Err(refuse_boot("the plan has no grub.pi for the firmware trial".into()));
    };
    let mounts = crate::host::mountinfo::read(root).map_err(|e| refuse_boot(e.to_string()))?;
    if let Some(m) = mounts.iter().find(|m| m.device == staging_device.device) {
        return Err(refuse_boot(format!(
            "the spare {} is mounted at {}; unmount it (`umount {}`): it is formatted for the trial",
            staging.host_path, m.mount_point, m.mount_point
        )));
    }
    let number = pi.trial_partition;
    let old = pi_trial::partition_type(&req.plan.disk, number).map_err(refuse_boot)?;
    if old != EXT_PARTITION_TYPE {
        return Err(refuse_boot(format!(
            "partition {number} of {} has type {old:#04x}, not the Linux type 0x83 of resinOS 1.x's spare root (left by an earlier run?); run `stager abort`, or set it back with sfdisk if no migration is staged",
            req.plan.disk.display()
        )));
    }
    let reboot_part = root.path(&trial.reboot_part);
    let release = std::fs::read_to_string(root.path(OSRELEASE)).ok();
    pi_trial::check_arming(&reboot_part, release.as_deref())?;
    let volume_id = u32::from_str_radix(&p.plan.staging.fs_uuid.replace('-', ""), 16)
        .map_err(|e| refuse_boot(format!("the plan's staging.fs_uuid: {e}")))?;
    let geometry = pi_trial::fat32_geometry(staging.size).ok_or_else(|| {
        refuse_boot(format!("the spare {} is too small for a FAT32", staging.host_path))
    })?;
    let disk = source_disk::read(&req.plan.disk)?;
    let set = plan_image::read_boot_files(&disk, &req.plan.profile)?
        .pi
        .ok_or_else(|| refuse_boot("resin-boot's trial set was not read".into()))?;
    Ok(PiArming {
        partition: number,
        reboot_part: reboot_part.exists().then(|| trial.reboot_part.clone()),
        volume_id,
        geometry,
        boot: Region::of_partition(root, boot_device),
        names: set.files.iter().map(|f| f.name.clone()).collect(),
        config_txt: pi_firmware::boot_config(
            &String::from_utf8_lossy(&set.config_txt),
            &trial.kernel,
        ),
        cmdline: pi_firmware::trial_cmdline(&String::from_utf8_lossy(&set.cmdline_txt)),
    })
}

/// The boot partition mounted read-write at the boot mount, without our directory yet.
fn boot_mount_ready(
    req: &Stage1xRequest,
    boot_device: &crate::host::block::BlockDevice,
    boot_dir: &Path,
) -> Result<(), Stage1xError> {
    let boot_mount = req.root.path(&req.boot_mount);
    let mounted = std::fs::metadata(&boot_mount).map(|m| m.dev()).ok();
    let wanted = nix::sys::stat::makedev(
        u64::from(boot_device.device.major),
        u64::from(boot_device.device.minor),
    );
    if mounted != Some(wanted) {
        return Err(refuse_boot(format!(
            "{} is not where the boot partition {} is mounted; mount it read-write there (`mount /dev/{} {}`)",
            req.boot_mount.display(),
            boot_device.name,
            boot_device.name,
            req.boot_mount.display()
        ))
        .into());
    }
    let read_only = nix::sys::statvfs::statvfs(&boot_mount)
        .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    if read_only.unwrap_or(true) {
        return Err(refuse_boot(format!(
            "the boot partition is mounted read-only at {}; remount it read-write (`mount -o remount,rw {}`)",
            req.boot_mount.display(),
            req.boot_mount.display()
        ))
        .into());
    }
    if boot_dir.exists() {
        return Err(refuse_boot(format!(
            "{} exists already (left by an earlier run); run `stager abort`, or remove it if no migration is staged",
            boot_dir.display()
        ))
        .into());
    }
    Ok(())
}

/// The supervisor the 2.x image ships: `--supervisor-version`, or read from its resin-rootA.
fn target_supervisor(
    req: &Stage1xRequest,
    p: &Plan1x,
    given: Option<SupervisorVersion>,
) -> Result<SupervisorVersion, Refusal1x> {
    if let Some(version) = given {
        return Ok(version);
    }
    let layout = &p.plan.layout;
    let root_a = layout.partitions.iter().find(|t| t.role == PartitionRole::RootA).ok_or_else(|| {
        Refusal1x::SupervisorMark(
            "the image has no resin-rootA to read its supervisor version from; pass --supervisor-version vX.Y.Z (or --no-supervisor-update)".into(),
        )
    })?;
    let sector = layout.image_sector_size.bytes_per_sector();
    let start = Bytes(root_a.image_start.get().saturating_mul(sector));
    let len = Bytes(root_a.size.get().saturating_mul(sector));
    let tag = target_supervisor::read_supervisor_tag(
        &req.plan.image,
        p.plan.image.compression,
        start,
        len,
    )
    .map_err(|e| Refusal1x::SupervisorMark(e.to_string()))?;
    SupervisorVersion::parse(&tag).map_err(|e| {
        Refusal1x::SupervisorMark(format!(
            "the image's SUPERVISOR_TAG: {e}; pass --supervisor-version vX.Y.Z (or --no-supervisor-update)"
        ))
    })
}

/// Whether the device is to be marked for a supervisor update: asks the API (reads only).
fn supervisor_check(
    req: &Stage1xRequest,
    p: &Plan1x,
) -> Result<(MarkPlan, Option<Api>), Refusal1x> {
    let (given, ca_cert) = match &req.supervisor {
        SupervisorRequest::Skip => {
            return Ok((MarkPlan::Skip { reason: "--no-supervisor-update".into() }, None))
        }
        SupervisorRequest::Mark { version, ca_cert } => (*version, ca_cert.clone()),
    };
    let access = match supervisor_mark::api_access_from_file(&req.plan.config) {
        Ok(access) => access,
        Err(supervisor_mark::MarkError::Config { detail, .. }) => {
            return Ok((MarkPlan::Skip { reason: detail }, None))
        }
        Err(e) => return Err(Refusal1x::SupervisorMark(e.to_string())),
    };
    let target = target_supervisor(req, p, given)?;
    let api = Api::new(access, ca_cert.as_deref())
        .map_err(|e| Refusal1x::SupervisorMark(e.to_string()))?;
    let decided = supervisor_mark::decide(&api, target)
        .map_err(|e| Refusal1x::SupervisorMark(e.to_string()))?;
    log::info!("{}", decided.describe());
    Ok((decided, Some(api)))
}

/// The steps `stage-1x` would execute, for `--dry-run`.
fn steps_text(req: &Stage1xRequest, ready: &Ready) -> String {
    let staging = &ready.staging.host_path;
    let steps: Vec<String> = match &ready.arming {
        Arming::PiTrial(pi) => pi_steps_text(req, ready, pi),
        _ => other_steps_text(req, ready, staging),
    };
    let mut out = String::from("\nSteps (each recorded in /var/lib/swapover/state.json before it is done, undone in reverse on failure):\n");
    for (i, step) in steps.iter().enumerate() {
        out.push_str(&format!("  {:>2}. {step}\n", i + 1));
    }
    out
}

fn supervisor_text(ready: &Ready) -> String {
    match &ready.supervisor {
        MarkPlan::Mark(_) => format!("{} (in the API)", ready.supervisor.describe()),
        other => other.describe(),
    }
}

fn reboot_text(req: &Stage1xRequest, restart2: Option<u32>) -> String {
    match (req.execute.no_reboot, restart2) {
        (true, _) => "do not reboot (--no-reboot): the migration starts at the next reboot".into(),
        (false, Some(n)) => format!("reboot(RESTART2, \"{n}\")"),
        (false, None) => "reboot".into(),
    }
}

/// The Raspberry Pi's steps, for `--dry-run`.
fn pi_steps_text(req: &Stage1xRequest, ready: &Ready, pi: &PiArming) -> Vec<String> {
    let spare = &ready.staging.host_path;
    vec![
        format!("set partition {}'s type byte in the MBR of {} from 0x83 to {:#04x} (FAT32 LBA)", pi.partition, req.plan.disk.display(), pi_trial::FAT32_LBA),
        format!(
            "format {spare} as FAT32 labelled {} (volume id {}, {}-byte clusters): its ext3 is given up and does not come back (contract R1)",
            pi_trial::LABEL,
            pi_trial::volume_id_text(pi.volume_id),
            pi.geometry.bytes_per_cluster
        ),
        format!(
            "write there, each by temporary name, renamed and read back against its sha256: {} from resin-boot; {STAGING_DIR}/: plan.json, config.json, {} ({}); {} ({} bytes: migrator as /init, modules, plan); {}; config.txt",
            pi.names.join(", "),
            ready.p.plan.image.file,
            ready.p.plan.image.compressed_size,
            pi_trial::INITRAMFS,
            ready.initramfs.len(),
            pi_trial::CMDLINE
        ),
        supervisor_text(ready),
        match &pi.reboot_part {
            Some(path) => format!("write {} to {path}", pi.partition),
            None => "(no reboot_part parameter: the partition goes to RESTART2 only)".to_string(),
        },
        "sync".to_string(),
        reboot_text(req, Some(pi.partition)),
    ]
}

fn other_steps_text(req: &Stage1xRequest, ready: &Ready, staging: &str) -> Vec<String> {
    vec![
        format!("mount {staging} (resin-updt, its {} file system kept as it is) at {}", ready.p.plan.staging.fs_type, state::MOUNT_POINT),
        format!("write {STAGING_DIR}/ there: plan.json, config.json, {} ({}, sha256 checked as copied)", ready.p.plan.image.file, ready.p.plan.image.compressed_size),
        format!("unmount {staging}"),
        match &ready.arming {
            Arming::Uefi { .. } => format!(
                "write {}/: vmlinuz ({}), initramfs.img ({} bytes: migrator as /init, modules, plan)",
                ready.boot_dir.display(),
                ready.p.budget.kernel,
                ready.initramfs.len()
            ),
            // Listed by pi_steps_text.
            Arming::PiTrial(_) => String::new(),
            Arming::UbootTrial(t) => format!(
                "write {}/: zImage ({}, from {}), board.dtb (from {}), initramfs.img ({} bytes: migrator as /init, modules, plan), each renamed into place and read back against its sha256",
                ready.boot_dir.display(),
                ready.p.budget.kernel,
                t.kernel.display(),
                t.dtb.display(),
                ready.initramfs.len()
            ),
        },
        supervisor_text(ready),
        match &ready.arming {
            Arming::Uefi { .. } => format!(
                "add the firmware boot option '{BOOT_OPTION_DESCRIPTION}' ({} on partition {}) and set BootNext to it (one boot)",
                planner::uefi_path(KERNEL_FILE),
                ready.boot.drive.number
            ),
            Arming::PiTrial(_) => String::new(),
            Arming::UbootTrial(t) => format!(
                "copy {m}/{u} to {m}/{o}, then rename the trial's uEnv.txt over {m}/{u} (the trial runs at the boot whose bootcount is {c}, once)",
                m = req.boot_mount.display(),
                u = uboot_trial::UENV,
                o = uboot_trial::ORIGINAL_UENV,
                c = t.trial_count
            ),
        },
        "sync".to_string(),
        reboot_text(req, None),
    ]
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut file =
        std::fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    file.write_all(bytes).map_err(|e| format!("write {}: {e}", path.display()))?;
    file.sync_all().map_err(|e| format!("fsync {}: {e}", path.display()))
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("fsync {}: {e}", dir.display()))
}

fn all_steps(run: &mut Run<'_>, req: &Stage1xRequest, ready: &Ready) -> Result<Armed, StepFailure> {
    if let Arming::PiTrial(pi) = &ready.arming {
        return pi_steps(run, req, ready, pi);
    }
    let region = ready.staging.clone();
    let device = run.attach_staging(&region)?;
    let mount_point = run.mount_staging(&device)?;
    // Checked before the step is recorded: its undo removes the directory.
    let staged = mount_point.join(STAGING_DIR.trim_start_matches('/'));
    if staged.exists() {
        return Err(StepFailure::new(
            "write-staging-dir",
            format!(
                "{} already holds {STAGING_DIR} (an earlier run's); run `stager abort` first",
                region.host_path
            ),
        ));
    }
    run.step(Change::WriteStagingDir { dir: STAGING_DIR.into() }, |_| {
        std::fs::create_dir(&staged).map_err(|e| format!("create {}: {e}", staged.display()))?;
        write_file(&staged.join("plan.json"), ready.plan_json.as_bytes())?;
        let config = std::fs::read(&req.plan.config).map_err(|e| format!("read {}: {e}", req.plan.config.display()))?;
        write_file(&staged.join("config.json"), &config)?;
        let image = staged.join(&ready.p.plan.image.file);
        let copied = staging_files::copy_file(&req.plan.image, &image).map_err(|e| e.to_string())?;
        if copied != ready.p.plan.image.compressed_sha256.0 {
            return Err(format!("the image changed while it was copied (sha256 {copied}, planned {}); run the stager again", ready.p.plan.image.compressed_sha256.0));
        }
        sync_dir(&staged)?;
        sync_dir(&mount_point)?;
        Ok(((), None))
    })?;
    run.unmount_staging(&mount_point)?;
    let boot_dir_recorded = req.boot_mount.join(BOOT_DIR).display().to_string();
    run.step(Change::WriteBootDir { dir: boot_dir_recorded }, |_| {
        std::fs::create_dir(&ready.boot_dir)
            .map_err(|e| format!("create {}: {e}", ready.boot_dir.display()))?;
        match &ready.arming {
            Arming::Uefi { .. } => {
                let kernel = ready.boot_dir.join(file_name(KERNEL_FILE));
                staging_files::copy_file(&req.plan.kernel, &kernel).map_err(|e| e.to_string())?;
                write_file(&ready.boot_dir.join(file_name(INITRAMFS_FILE)), &ready.initramfs)?;
            }
            Arming::UbootTrial(t) => {
                let boot = req.root.path(&req.boot_mount);
                uboot_trial::copy_verified(&t.kernel, &boot.join(uboot_env::TRIAL_KERNEL))?;
                uboot_trial::copy_verified(&t.dtb, &boot.join(uboot_env::TRIAL_DTB))?;
                uboot_trial::write_verified(
                    &ready.initramfs,
                    &boot.join(uboot_env::TRIAL_INITRAMFS),
                )?;
            }
            Arming::PiTrial(_) => {
                return Err("the Raspberry Pi trial writes no boot directory".into())
            }
        }
        sync_dir(&ready.boot_dir)?;
        if let Some(parent) = ready.boot_dir.parent() {
            sync_dir(parent)?;
        }
        Ok(((), None))
    })?;
    mark_supervisor(run, req, ready)?;
    match &ready.arming {
        Arming::Uefi { vars } => {
            let option = LoadOption {
                description: BOOT_OPTION_DESCRIPTION.into(),
                partition: ready.boot.drive,
                file: planner::uefi_path(KERNEL_FILE),
                args: ready.p.boot.args.join(" "),
            };
            let efivars = req.efivars.display().to_string();
            run.step(Change::ArmUefiBootNext { efivars: efivars.clone(), undo: None }, |_| {
                let undo = UefiOneShot::arm(vars, &option).map_err(|e| e.to_string())?;
                let number = undo.boot_number;
                Ok((
                    Armed::BootNext(number),
                    Some(Change::ArmUefiBootNext { efivars, undo: Some(undo) }),
                ))
            })
        }
        Arming::PiTrial(pi) => pi_steps(run, req, ready, pi),
        Arming::UbootTrial(t) => {
            let boot_mount = req.boot_mount.display().to_string();
            let trial_count = t.trial_count;
            run.step(Change::ArmUbootTrial { boot_mount, trial_count }, |_| {
                let boot = req.root.path(&req.boot_mount);
                uboot_trial::arm(&boot, &t.uenv_original, &t.uenv_armed)?;
                Ok((Armed::UbootTrial { trial_count: t.trial_count }, None))
            })
        }
    }
}

/// The Raspberry Pi's steps (contract §2.2 phase A): the spare's type byte, its new FAT32,
/// the trial set and staging written into it, the supervisor mark, `reboot_part`.
fn pi_steps(
    run: &mut Run<'_>,
    req: &Stage1xRequest,
    ready: &Ready,
    pi: &PiArming,
) -> Result<Armed, StepFailure> {
    let disk = req.plan.disk.display().to_string();
    let number = pi.partition;
    let spare = &ready.staging;
    run.step(
        Change::SetPartitionType { disk: disk.clone(), number, old: EXT_PARTITION_TYPE },
        |_| {
            pi_trial::set_partition_type(&req.plan.disk, number, pi_trial::FAT32_LBA)?;
            Ok(((), None))
        },
    )?;
    let volume_id = pi_trial::volume_id_text(pi.volume_id);
    let bytes_per_cluster = pi.geometry.bytes_per_cluster;
    run.step(Change::FormatSpare { volume_id, bytes_per_cluster }, |_| {
        pi_trial::format(spare, pi.volume_id, pi.geometry)?;
        Ok(((), None))
    })?;
    run.step(Change::WritePiTrial, |r| {
        use pi_trial::Source;
        // resin-boot is mounted and read here through its block device: its file system's
        // dirty pages reach the device first.
        r.system.sync();
        let staged = STAGING_DIR.trim_start_matches('/');
        let image = format!("{staged}/{}", ready.p.plan.image.file);
        let mut files: Vec<(String, Source<'_>)> =
            pi.names.iter().map(|name| (name.clone(), Source::Boot)).collect();
        files.extend([
            (format!("{staged}/plan.json"), Source::Bytes(ready.plan_json.as_bytes())),
            (format!("{staged}/config.json"), Source::Path(&req.plan.config)),
            (image.clone(), Source::Path(&req.plan.image)),
            (pi_trial::INITRAMFS.to_string(), Source::Bytes(&ready.initramfs)),
            (pi_trial::CMDLINE.to_string(), Source::Bytes(pi.cmdline.as_bytes())),
            // Last: without it the firmware boots no trial from here.
            (pi_trial::CONFIG_TXT.to_string(), Source::Bytes(pi.config_txt.as_bytes())),
        ]);
        let written = pi_trial::write_files(spare, &pi.boot, &files)?;
        let copied = written.iter().find(|(name, _)| *name == image).map(|(_, sha)| sha.as_str());
        if copied != Some(ready.p.plan.image.compressed_sha256.0.as_str()) {
            return Err(format!(
                "the image changed while it was copied (sha256 {}, planned {}); run the stager again",
                copied.unwrap_or("none"),
                ready.p.plan.image.compressed_sha256.0
            ));
        }
        Ok(((), None))
    })?;
    mark_supervisor(run, req, ready)?;
    let reboot_part = pi.reboot_part.clone();
    run.step(Change::ArmPiTrial { reboot_part: reboot_part.clone(), partition: number }, |r| {
        if let Some(path) = &reboot_part {
            pi_trial::write_reboot_part(&r.root.path(path), number)?;
        }
        Ok((Armed::PiTrial { partition: number }, None))
    })
}

/// Marks the device for a supervisor update in the API when that was decided.
fn mark_supervisor(
    run: &mut Run<'_>,
    req: &Stage1xRequest,
    ready: &Ready,
) -> Result<(), StepFailure> {
    if let (MarkPlan::Mark(mark), Some(api)) = (&ready.supervisor, &ready.api) {
        let change = Change::MarkSupervisorUpdate {
            config: req.plan.config.display().to_string(),
            ca_cert: match &req.supervisor {
                SupervisorRequest::Mark { ca_cert, .. } => {
                    ca_cert.as_ref().map(|c| c.display().to_string())
                }
                SupervisorRequest::Skip => None,
            },
            mark: mark.clone(),
        };
        run.step(change, |_| {
            api.set_release(Some(mark.release_id)).map_err(|e| e.to_string())?;
            log::info!(
                "device {} marked for supervisor {} in {}",
                mark.device_id,
                mark.target,
                mark.endpoint
            );
            Ok(((), None))
        })?;
    }
    Ok(())
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The whole command: refuse, or print the plan (`--dry-run`), or stage, arm and reboot.
pub fn run(req: &Stage1xRequest, system: &mut dyn System) -> Result<Outcome1x, Stage1xError> {
    let ready = prepare(req)?;
    if req.dry_run {
        return Ok(Outcome1x::DryRun(format!(
            "{}{}",
            planner::render(&ready.p),
            steps_text(req, &ready)
        )));
    }
    let root = &req.root;
    let store = StateStore::new(root);
    let state = StageState {
        format: STATE_FORMAT,
        stager_version: env!("CARGO_PKG_VERSION").to_string(),
        staging: ready.staging.clone(),
        staging_partition: Some(ready.p.plan.staging.partition.clone()),
        staging_fs_uuid: ready.p.plan.staging.fs_uuid.clone(),
        swap_uuid: String::new(),
        armed: false,
        entries: Vec::new(),
    };
    // From the first change on, SIGINT/SIGTERM/SIGHUP are noted and turned into a rollback
    // (checked before each step and inside the copies), as in `stage`.
    crate::interrupt::enter_critical();
    store.save(&state).map_err(ExecuteError::from)?;
    let restart_arg = match &ready.arming {
        Arming::PiTrial(pi) => Some(pi.partition.to_string()),
        _ => None,
    };
    let mut run =
        Run { root, store, state, system, fail_after: req.execute.fail_after.clone(), restart_arg };
    let steps = all_steps(&mut run, req, &ready);
    let (armed, rebooting) = run.finish(steps, req.execute.no_reboot, |armed| match armed {
        Armed::BootNext(number) => {
            format!("Boot{number:04X} is BootNext, the next boot starts the migration")
        }
        Armed::UbootTrial { trial_count } => format!(
            "uEnv.txt runs the migration at the boot that counts {trial_count} (the next warm reboot), 1.x at any other"
        ),
        Armed::PiTrial { partition } => format!(
            "the GPU firmware boots partition {partition} once at the next reboot, 1.x from partition 1 at any other"
        ),
    })?;
    Ok(Outcome1x::Staged { rebooting, armed })
}
