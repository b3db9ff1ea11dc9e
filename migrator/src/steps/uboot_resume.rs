//! Resume on U-Boot (`grub.route = uboot-trial`, the resinOS 1.x BeagleBone Black): the
//! stager replaced `uEnv.txt` on the boot partition with a one-shot trial that boots the
//! migration environment from `swapover/` only while U-Boot's `${bootcount}` matches
//! (docs/arm-1x-contract.md §2.3). Phase B, the commit, replaces it with the same file minus
//! the test ([`uboot_env::CommitEnv`]: `uenvcmd=run swapover_boot`, `swapover.stage=resume`),
//! so that every boot from then on resumes the migrator. Giving up before anything is
//! destroyed puts the board's 1.x `uEnv.txt` back (the stager's byte copy,
//! `grub.uboot.original_uenv`). The end of the migration ([`switch_to_new_system`]) makes the
//! image's own `uEnv.txt` (or none) the file and removes `swapover/`.
//!
//! Every change is one rename on the mounted FAT (write `X.swapover-new`, fsync it, rename
//! over `X`, fsync the directory, syncfs): the kernel's vfat writes the directory entry in
//! one sector, so a power cut leaves the old or the new file, never a mix.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use plan::{GrubRoute, Plan, UbootTrialBoot};
use uboot_env::{imported_value, CommitEnv, ExistingUenv, StorageError, UenvError};

/// The file U-Boot imports from the boot partition's root (v2015.07 am335x `loadbootenv`).
pub const UENV: &str = "uEnv.txt";
/// The suffix of a file written next to the one it replaces, before the rename.
pub const NEW_SUFFIX: &str = ".swapover-new";
/// The directory of the trial's files on the boot partition (contract §2.3).
pub const BOOT_DIR: &str = "swapover";

#[derive(Debug, thiserror::Error)]
pub enum UbootResumeError {
    #[error("the plan has route uboot-trial but no grub.uboot section; re-stage")]
    NoTrial,
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("the 1.x uEnv.txt copy {path}: {source}")]
    Original { path: PathBuf, source: UenvError },
    #[error(
        "the boot partition has no {0}: the trial's files were changed since staging, re-stage"
    )]
    NoTrialFile(&'static str),
    #[error("the 1.x uEnv.txt copy {path}: {source}")]
    Storage { path: PathBuf, source: StorageError },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> UbootResumeError {
    let path = path.to_path_buf();
    move |source| UbootResumeError::Io { action, path, source }
}

/// Whether this plan resumes through `uEnv.txt`.
pub fn applies(plan: &Plan) -> bool {
    plan.grub.route == GrubRoute::UbootTrial
}

fn trial(plan: &Plan) -> Result<&UbootTrialBoot, UbootResumeError> {
    plan.grub.uboot.as_ref().ok_or(UbootResumeError::NoTrial)
}

/// Replace `dir/name` with `bytes`: `name.swapover-new` written and fsynced, renamed over
/// `name`, the directory fsynced and the file system synced. An identical file is left alone.
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), UbootResumeError> {
    let path = dir.join(name);
    if std::fs::read(&path).is_ok_and(|now| now == bytes) {
        return Ok(());
    }
    let new = dir.join(format!("{name}{NEW_SUFFIX}"));
    write_synced(&new, bytes)?;
    rename_synced(&new, &path)
}

/// Write `path` and fsync it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), UbootResumeError> {
    use std::io::Write;
    let mut file = File::create(path).map_err(io_err("create", path))?;
    file.write_all(bytes).map_err(io_err("write", path))?;
    file.sync_all().map_err(io_err("fsync", path))
}

/// Rename `from` over `to`, then fsync the directory and sync the file system.
pub fn rename_synced(from: &Path, to: &Path) -> Result<(), UbootResumeError> {
    std::fs::rename(from, to).map_err(io_err("rename", from))?;
    sync_dir(to.parent().unwrap_or(Path::new("/")))
}

/// fsync a directory and sync its file system (on vfat the directory's fsync also writes
/// the FAT; syncfs makes sure of it).
pub fn sync_dir(dir: &Path) -> Result<(), UbootResumeError> {
    let handle = File::open(dir).map_err(io_err("open", dir))?;
    handle.sync_all().map_err(io_err("fsync", dir))?;
    nix::unistd::syncfs(&handle).map_err(|e| UbootResumeError::Io {
        action: "syncfs",
        path: dir.to_path_buf(),
        source: e.into(),
    })
}

/// The 1.x `uEnv.txt` the stager kept, as bytes.
fn original_bytes(boot: &Path, trial: &UbootTrialBoot) -> Result<Vec<u8>, UbootResumeError> {
    let path = boot.join(&trial.original_uenv);
    std::fs::read(&path).map_err(io_err("read", &path))
}

/// The text that makes every boot resume the migrator: [`CommitEnv`] on top of the 1.x copy,
/// booting from where it does (`mmcdev`, `bootpart`: [`ExistingUenv::storage`], as the stager
/// read them when it armed the trial).
pub fn commit_text(boot: &Path, plan: &Plan) -> Result<String, UbootResumeError> {
    let trial = trial(plan)?;
    let bytes = original_bytes(boot, trial)?;
    let path = boot.join(&trial.original_uenv);
    let existing = ExistingUenv::parse(&bytes)
        .map_err(|source| UbootResumeError::Original { path: path.clone(), source })?;
    let (mmcdev, bootpart) = existing
        .storage()
        .map_err(|source| UbootResumeError::Storage { path: path.clone(), source })?;
    CommitEnv { interface: trial.interface, mmcdev, bootpart }
        .render(&existing)
        .map_err(|source| UbootResumeError::Original { path, source })
}

/// Phase B: make `uEnv.txt` boot the migrator on every boot. Idempotent: a repeated commit
/// renders the same text from the same 1.x copy and finds it in place.
pub fn commit(boot: &Path, plan: &Plan) -> Result<(), UbootResumeError> {
    // The committed text boots these on every boot: all must be there before it is.
    for file in [uboot_env::TRIAL_KERNEL, uboot_env::TRIAL_DTB, uboot_env::TRIAL_INITRAMFS] {
        if !boot.join(file).is_file() {
            return Err(UbootResumeError::NoTrialFile(file));
        }
    }
    let text = commit_text(boot, plan)?;
    replace_file(boot, UENV, text.as_bytes())?;
    log::info!("arm-resume: uEnv.txt committed; every boot resumes the migrator from now on");
    Ok(())
}

/// Before anything is destroyed: the board's 1.x `uEnv.txt` back in place (its copy stays
/// for the stager's `abort`), so every boot is 1.x's again.
pub fn put_back(boot: &Path, plan: &Plan) -> Result<(), UbootResumeError> {
    let bytes = original_bytes(boot, trial(plan)?)?;
    replace_file(boot, UENV, &bytes)?;
    log::info!("uEnv.txt is the board's 1.x file again; 1.x boots next");
    Ok(())
}

/// Part of the boot partition's update (before the switch): the image's `uEnv.txt` waits
/// as `uEnv.txt.swapover-new` (fsynced) for [`switch_to_new_system`]; an image without one
/// leaves no such file.
pub fn prepare_switch(boot: &Path, image_uenv: Option<&[u8]>) -> Result<(), UbootResumeError> {
    let new = boot.join(format!("{UENV}{NEW_SUFFIX}"));
    match image_uenv {
        Some(bytes) => write_synced(&new, bytes)?,
        None => match std::fs::remove_file(&new) {
            Ok(()) => sync_dir(boot)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &new)(e)),
        },
    }
    Ok(())
}

/// The boot blobs, renamed last and in this order (the ROM loads MLO, MLO loads
/// u-boot.img: the contract's order keeps an old MLO with a new u-boot.img for the shortest
/// time that leaves a new MLO with an old u-boot.img never).
pub const BLOBS_LAST: [&str; 2] = ["u-boot.img", "MLO"];

/// The window (contract §2.5 step 4, R10): rename the waiting boot blobs over the old ones,
/// `u-boot.img` then `MLO`, each followed by a directory fsync. Idempotent: a blob without
/// its `.swapover-new` is already in. Called by the switch, after the 2.x head is written.
pub fn rename_blobs(boot: &Path) -> Result<(), UbootResumeError> {
    let started = Instant::now();
    let mut renamed = 0;
    for blob in BLOBS_LAST {
        let target = boot.join(blob);
        let waiting = boot.join(format!("{blob}{NEW_SUFFIX}"));
        if waiting.exists() {
            rename_synced(&waiting, &target)?;
            renamed += 1;
        }
    }
    if renamed > 0 {
        log::info!(
            "finalize: {renamed} boot blob(s) renamed in {:.1} ms (the window where a cut leaves a mixed MLO/u-boot.img)",
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

pub fn is_waiting_blob(root_name: &str) -> bool {
    BLOBS_LAST.iter().any(|b| root_name.eq_ignore_ascii_case(&format!("{b}{NEW_SUFFIX}")))
}

/// The last write of the migration: `uEnv.txt` becomes the image's (the file
/// [`prepare_switch`] left, renamed over it) or, when the image has none, is removed; then
/// `swapover/` goes. From the rename on, U-Boot boots resinOS 2.x. Needs nothing from
/// staging (the relay runs it after staging is written over) and is idempotent: with no
/// `uEnv.txt.swapover-new` left, a `uEnv.txt` that still boots the migrator means the image
/// had none. A cut between the rename and the removal leaves `swapover/` behind, unused.
pub fn switch_to_new_system(boot: &Path) -> Result<(), UbootResumeError> {
    rename_blobs(boot)?;
    let path = boot.join(UENV);
    let new = boot.join(format!("{UENV}{NEW_SUFFIX}"));
    if new.exists() {
        rename_synced(&new, &path)?;
    } else if std::fs::read_to_string(&path)
        .is_ok_and(|t| imported_value(&t, "swapover_boot").is_some())
    {
        std::fs::remove_file(&path).map_err(io_err("remove", &path))?;
        sync_dir(boot)?;
    }
    let dir = boot.join(BOOT_DIR);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => sync_dir(boot)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("remove", &dir)(e)),
    }
    log::info!("uEnv.txt is the new system's; {BOOT_DIR}/ removed: resinOS boots from now on");
    Ok(())
}
