//! PID 1's whole life: early mounts, logging, modules, the disk, the staging
//! file system, the journal, the steps; then reboot or halt. Never returns.

use std::fmt::Display;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use plan::Plan;

use crate::disk::{BlockRoots, DiskError, FoundDisk};
use crate::logging;
use crate::mounts::{self, KernelMounts, MountError};
use crate::pid1::{self, RebootTarget};
use crate::steps::written_last::PlanRefusal;
use crate::steps::{self, Context, Exit};
use migration_journal::Journal;

/// The plan inside the initramfs.
pub const PLAN_PATH: &str = "/etc/swapover/plan.json";
/// Where the staging file system is mounted.
pub const STAGING_MOUNT: &str = "/mnt/staging";
/// Counts the migrator's starts for this staging file system (for the START marker).
pub const STARTS_FILE: &str = "starts";
/// Used when the plan cannot be read.
const FALLBACK_RETRY_DELAY: Duration = Duration::from_secs(10);

/// The migrator as `/init`.
pub fn pid1_main() -> ! {
    logging::init(log::LevelFilter::Info);
    pid1::install_panic_hook();
    if let Err(e) = pid1::mount_early() {
        log::error!("{e}");
    }
    // Reopen the console and kmsg now that devtmpfs is there.
    logging::init(log::LevelFilter::Info);
    log::info!("swapover migrator {} starting", env!("CARGO_PKG_VERSION"));
    let (plan, plan_id) = match read_plan(Path::new(PLAN_PATH)) {
        Ok(found) => found,
        Err(e) => early_failure(&e, FALLBACK_RETRY_DELAY),
    };
    let watchdog = start_watchdog(&plan);
    let retry_delay = Duration::from_secs(u64::from(plan.failure.retry_delay_secs));
    let started = Instant::now();
    crate::modules_load::load_all(Path::new("/"));
    log::info!("modules took {:.1} s", started.elapsed().as_secs_f64());
    let roots = BlockRoots::default();
    let disk_size = match plan.source_disk.size_bytes() {
        Ok(size) => size,
        Err(e) => early_failure(&format!("the plan's disk size: {e}"), retry_delay),
    };
    let disk = match roots.wait_for_disk(
        &plan.source_disk.id,
        disk_size,
        Duration::from_secs(u64::from(plan.failure.disk_wait_secs)),
    ) {
        Ok(disk) => disk,
        Err(e) => early_failure(&e, retry_delay),
    };
    pid1::mount_efivarfs();
    let staging_root = PathBuf::from(STAGING_MOUNT);
    if let Err(e) = mount_staging(&roots, &disk, &plan, &staging_root) {
        if plan.layout.written_last.is_empty() {
            early_failure(&e, retry_delay);
        }
        // Staging lies inside the partition written last: gone means that write began.
        log::warn!("{e}");
        let disk_node = disk.node.clone();
        let mut fs = KernelMounts::new(roots, disk, plan.clone());
        let found = match steps::relay::look_up(&mut fs, &plan_id) {
            Ok(found) => found,
            Err(e) => early_failure(&e, retry_delay),
        };
        logging::marker("SWAPOVER-MIGRATOR-START relay");
        logging::marker("SWAPOVER-STEP relay begin");
        let switch = steps::boot_switch::BootSwitch::for_plan(&plan);
        finish(
            match steps::finish_from_relay(
                &disk_node,
                &mut fs,
                &efivars::EfiVars::system(),
                found,
                switch.as_ref(),
            ) {
                Ok(()) => {
                    logging::marker("SWAPOVER-STEP relay done");
                    Exit::Reboot(RebootTarget::Resinos)
                }
                Err(e) => Exit::Halt(format!("finishing from the relay failed: {e}")),
            },
        );
    }
    let staging_dir = staging_root.join(plan.staging.dir.trim_start_matches('/'));
    if let Err(e) = logging::attach_file(&staging_dir.join("migration.log")) {
        log::error!("cannot log to {}: {e}; logging to the console only", staging_dir.display());
    }
    let attempt = count_start(&staging_dir);
    logging::marker(&format!("SWAPOVER-MIGRATOR-START attempt={attempt}"));
    log::info!("plan {plan_id} (profile {}, stager {})", plan.profile.name, plan.stager_version);
    let mut journal = match Journal::open(&staging_dir) {
        Ok(journal) => journal,
        Err(e) => finish(Exit::Halt(format!("cannot open the journal: {e}"))),
    };
    log::info!("journal: {:?}, state {:?}", journal.load_report(), journal.state().step);
    let disk_node = disk.node.clone();
    let mut fs = KernelMounts::new(roots, disk, plan.clone());
    let mut ctx = Context::new(&plan, plan_id, staging_root, disk_node, &mut fs);
    let exit = steps::run(&mut ctx, &mut journal);
    let exit = no_halt_before_pi_commit(&plan, exit, &journal.state().step);
    if let (Exit::Halt(_), Some(dog)) = (&exit, &watchdog) {
        // Before the commit a reset boots the old OS (the trial's counter test fails): the
        // hardware does it instead of the halt's retry 15 min later.
        dog.on_halt(committed(&journal.state().step));
    }
    finish(exit)
}

/// Feed the plan's watchdog from now on (`None` on plans without one: nothing is opened).
/// A device that cannot be opened is logged, not fatal: the hardware then resets the board,
/// which before the commit boots the old OS and after it resumes here.
fn start_watchdog(plan: &Plan) -> Option<crate::watchdog::Watchdog> {
    let feed = plan.failure.watchdog.as_ref()?;
    match crate::watchdog::Watchdog::start(feed) {
        Ok(dog) => Some(dog),
        Err(e) => {
            log::error!("{e}");
            None
        }
    }
}

/// Whether every boot from now on re-enters the migrator: the resume entry is armed (on the
/// U-Boot route: `uEnv.txt` committed).
fn committed(step: &migration_journal::Step) -> bool {
    step.rank() >= migration_journal::Step::ResumeArmed.rank()
}

/// On the Raspberry Pi nothing restarts a halted board (no watchdog runs, contract R3) and,
/// before the commit, a restart boots p1, i.e. 1.x (`reboot_part` is 0 in this kernel): a
/// halt there becomes that restart at once instead of one after the halt's wait.
fn no_halt_before_pi_commit(plan: &Plan, exit: Exit, step: &migration_journal::Step) -> Exit {
    match exit {
        Exit::Halt(reason) if steps::pi_resume::applies(plan) && !committed(step) => {
            log::error!("{reason}");
            log::error!("nothing was destroyed and p1 still boots 1.x: restarting into it");
            Exit::Reboot(RebootTarget::OldOs)
        }
        other => other,
    }
}

/// Why the plan in the initramfs cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ReadPlanError {
    #[error("cannot read the plan {}: {source}; rebuild the initramfs with the stager", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("the plan {} is not UTF-8; re-stage", .path.display())]
    NotUtf8 { path: PathBuf },
    #[error("the plan {} is unusable: {source}", .path.display())]
    Unusable { path: PathBuf, source: plan::PlanError },
    #[error("the plan {} is refused: {source}", .path.display())]
    Refused { path: PathBuf, source: PlanRefusal },
}

/// The plan and its identity (sha256 of the file).
pub fn read_plan(path: &Path) -> Result<(Plan, String), ReadPlanError> {
    let path_buf = || path.to_path_buf();
    let bytes =
        std::fs::read(path).map_err(|source| ReadPlanError::Read { path: path_buf(), source })?;
    let text = String::from_utf8(bytes).map_err(|_| ReadPlanError::NotUtf8 { path: path_buf() })?;
    let plan = Plan::from_json(&text)
        .map_err(|source| ReadPlanError::Unusable { path: path_buf(), source })?;
    crate::steps::written_last::check_plan(&plan)
        .map_err(|source| ReadPlanError::Refused { path: path_buf(), source })?;
    let id: String = Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    Ok((plan, id))
}

/// Why staging could not be mounted.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error(transparent)]
    Partition(#[from] DiskError),
    #[error("staging {}: {source}", .node.display())]
    Uuid { node: PathBuf, source: FsIdError },
    #[error("staging {} holds file system {found}, not the staged {staged}: {written_last} was written over it", .node.display())]
    WrittenOver { node: PathBuf, found: String, staged: String, written_last: String },
    #[error(transparent)]
    Mount(#[from] MountError),
}

/// Mount staging. A plan whose staging lies inside the partition written last also needs
/// the file system there to be the staged one (its UUID): after that write began, the
/// partition holds resinOS's file system, whose contents are not ours.
fn mount_staging(
    roots: &BlockRoots,
    disk: &FoundDisk,
    plan: &Plan,
    at: &Path,
) -> Result<(), StagingError> {
    let node = roots.partition_node(disk, &plan.staging.partition)?;
    if !plan.layout.written_last.is_empty() {
        let found = fs_id(&node, plan.staging.fs_type)
            .map_err(|source| StagingError::Uuid { node: node.clone(), source })?;
        if !found.eq_ignore_ascii_case(&plan.staging.fs_uuid) {
            return Err(StagingError::WrittenOver {
                node,
                found,
                staged: plan.staging.fs_uuid.clone(),
                written_last: plan.layout.written_last.join(", "),
            });
        }
    }
    mounts::mount_fs(&node, at, &plan.staging.fs_type.to_string(), false)?;
    log::info!("staging: {} mounted at {}", node.display(), at.display());
    Ok(())
}

/// Why no file system id could be read from a device.
#[derive(Debug, thiserror::Error)]
pub enum FsIdError {
    #[error("cannot open: {0}")]
    Open(#[source] io::Error),
    #[error("cannot read the superblock: {0}")]
    Read(#[source] io::Error),
    #[error("no {0} file system")]
    Not(plan::FsType),
}

/// The id blkid prints for the `fs` file system on `node`, from its first bytes: the UUID of
/// an ext2/3/4 (its superblock), the volume serial `XXXX-XXXX` of a FAT (its boot sector; the
/// Raspberry Pi's staging is a FAT32, contract §2.2).
pub fn fs_id(node: &Path, fs: plan::FsType) -> Result<String, FsIdError> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(node).map_err(FsIdError::Open)?;
    let mut head = [0u8; resin_image::EXT_UUID_BYTES];
    file.read_exact_at(&mut head, 0).map_err(FsIdError::Read)?;
    let id = match fs {
        plan::FsType::Vfat => resin_image::fat_volume_id(&head),
        _ => resin_image::ext_uuid(&head),
    };
    id.ok_or(FsIdError::Not(fs))
}

/// Increment and return the start counter kept on staging (1 on the first start).
pub fn count_start(staging_dir: &Path) -> u32 {
    let path = staging_dir.join(STARTS_FILE);
    let previous: u32 =
        std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
    let now = previous.saturating_add(1);
    if let Err(e) = crate::durable::write_durably(&path, now.to_string().as_bytes()) {
        log::warn!("cannot record the start count: {e}");
    }
    now
}

/// A failure before the journal could be read: nothing was done in this boot, so
/// reboot (into the old OS unless an earlier boot armed the resume entry).
fn early_failure(message: &dyn Display, delay: Duration) -> ! {
    log::error!("{message}");
    log::error!("rebooting in {} s", delay.as_secs());
    std::thread::sleep(delay);
    pid1::reboot_into(RebootTarget::OldOs)
}

fn finish(exit: Exit) -> ! {
    logging::flush();
    match exit {
        // The staging file system stays mounted: reboot_into syncs everything first.
        Exit::Reboot(target) => pid1::reboot_into(target),
        Exit::Halt(reason) => pid1::halt(&reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_read_validated_and_identified_by_its_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let text = Plan::stem_example().to_json_pretty().unwrap();
        std::fs::write(&path, &text).unwrap();
        let (plan, id) = read_plan(&path).unwrap();
        assert_eq!(plan, Plan::stem_example());
        let expected: String =
            Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(id, expected);
        std::fs::write(&path, text.replace("\"format_version\": 1", "\"format_version\": 7"))
            .unwrap();
        let refused = read_plan(&path).unwrap_err();
        assert!(matches!(refused, ReadPlanError::Unusable { .. }), "{refused:?}");
        assert!(refused.to_string().contains("format 7"), "names the version");
        assert!(read_plan(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string()
            .starts_with("cannot read the plan"));
    }

    #[test]
    fn on_the_pi_a_halt_before_the_commit_restarts_into_1x_and_after_it_stays_a_halt() {
        use migration_journal::Step;
        let mut pi = Plan::stem_example();
        pi.grub.route = plan::GrubRoute::PiFirmwareTrial;
        let halt = || Exit::Halt("stuck".into());
        assert_eq!(
            no_halt_before_pi_commit(&pi, halt(), &Step::BackupDone),
            Exit::Halt("stuck".into()),
            "BackupDone comes after ResumeArmed: committed"
        );
        assert_eq!(
            no_halt_before_pi_commit(&pi, halt(), &Step::Started),
            Exit::Reboot(RebootTarget::OldOs)
        );
        let other = Plan::stem_example();
        assert_eq!(no_halt_before_pi_commit(&other, halt(), &Step::Started), halt());
    }

    #[test]
    fn the_staging_id_is_read_for_its_file_system_kind() {
        let dir = tempfile::tempdir().unwrap();
        let fat = dir.path().join("spare.vfat");
        std::fs::File::create(&fat).unwrap().set_len(40 << 20).unwrap();
        let made = std::process::Command::new("mkfs.vfat")
            .args(["-F", "32", "-s", "1", "-i", "5a0e3b02", "-n", "RESIN-UPDT"])
            .arg(&fat)
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        assert_eq!(fs_id(&fat, plan::FsType::Vfat).unwrap(), "5A0E-3B02");
        let not_ext = fs_id(&fat, plan::FsType::Ext4).unwrap_err();
        assert!(matches!(not_ext, FsIdError::Not(plan::FsType::Ext4)), "{not_ext}");
    }

    #[test]
    fn starts_are_counted_durably() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(count_start(dir.path()), 1);
        assert_eq!(count_start(dir.path()), 2);
        assert_eq!(std::fs::read_to_string(dir.path().join(STARTS_FILE)).unwrap(), "2");
    }
}
