//! The BeagleBone's one-shot trial through U-Boot's boot counter (docs/arm-1x-contract.md
//! §2.3), the stager's side: the armed `uEnv.txt` text (from `uboot_env`, on top of the
//! board's own file), the trial's files copied to `resin-boot/swapover/`, and the arming by
//! rename, each undone by [`disarm`] and the boot directory's removal.
//!
//! Everything goes through the mounted boot partition (plain file system calls): every file
//! is written under a temporary name, fsynced, renamed into place, and its directory
//! fsynced, so a power cut leaves either the old or the new file (contract §2.1).

use super::boot_counter::BootCounter;
use super::refusal::Refusal1x;
use crate::state;
use board_profiles::UbootTrialProfile;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
use uboot_env::{ExistingUenv, TrialEnv};

/// The board's U-Boot environment file on the boot partition.
pub const UENV: &str = "uEnv.txt";
/// Its byte copy, relative to the boot partition's root (the plan's `grub.uboot.original_uenv`):
/// `abort` renames it back, the migrator's commit renders from it.
pub const ORIGINAL_UENV: &str = "swapover/uEnv.txt.1x";

/// The armed `uEnv.txt`: the board's `original` with the trial for `counter`'s next boot.
pub fn trial_uenv(
    profile: &UbootTrialProfile,
    original: &[u8],
    counter: &BootCounter,
) -> Result<Vec<u8>, Refusal1x> {
    let existing = ExistingUenv::parse(original).map_err(|e| Refusal1x::Uenv(e.to_string()))?;
    let (mmcdev, bootpart) = existing.storage().map_err(|e| Refusal1x::Uenv(e.to_string()))?;
    let env =
        TrialEnv { interface: profile.interface, mmcdev, bootpart, trial_count: counter.trial };
    env.render(&existing).map(String::into_bytes).map_err(|e| Refusal1x::Uenv(e.to_string()))
}

fn sha256_of_file(path: &Path) -> Result<String, String> {
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read {}: {e}", path.display())),
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

fn temp_name(to: &Path) -> std::path::PathBuf {
    let mut temp = to.as_os_str().to_owned();
    temp.push(".swapover-new");
    temp.into()
}

/// Renames the fsynced `temp` to `to`, fsyncs the directory, and reads `to` back against
/// the sha256 `written`.
fn rename_verified(temp: &Path, to: &Path, written: &str) -> Result<(), String> {
    std::fs::rename(temp, to)
        .map_err(|e| format!("rename {} to {}: {e}", temp.display(), to.display()))?;
    state::sync_dir_of(to).map_err(|e| format!("fsync the directory of {}: {e}", to.display()))?;
    let read_back = sha256_of_file(to)?;
    if read_back != written {
        return Err(format!(
            "{} reads back with sha256 {read_back}, but {written} was written; the boot partition may be failing",
            to.display()
        ));
    }
    Ok(())
}

/// Copies `from` to `to` (temporary name, fsync, rename, directory fsync), then reads `to`
/// back and compares its sha256 with what was read from `from`.
pub fn copy_verified(from: &Path, to: &Path) -> Result<(), String> {
    let temp = temp_name(to);
    let copied =
        crate::stage::ubuntu::staging_files::copy_file(from, &temp).map_err(|e| e.to_string())?;
    rename_verified(&temp, to, &copied)
}

/// Writes `bytes` to `to` as [`copy_verified`] copies a file.
pub fn write_verified(bytes: &[u8], to: &Path) -> Result<(), String> {
    use std::io::Write;
    let temp = temp_name(to);
    let mut file =
        std::fs::File::create(&temp).map_err(|e| format!("create {}: {e}", temp.display()))?;
    file.write_all(bytes).map_err(|e| format!("write {}: {e}", temp.display()))?;
    file.sync_all().map_err(|e| format!("fsync {}: {e}", temp.display()))?;
    rename_verified(&temp, to, &hex::encode(Sha256::digest(bytes)))
}

/// Arms the trial: the board's `uEnv.txt` (checked to be the planned `original`) copied to
/// [`ORIGINAL_UENV`], then `armed` written as `uEnv.txt.swapover-new` and renamed over it,
/// each read back.
pub fn arm(boot_mount: &Path, original: &[u8], armed: &[u8]) -> Result<(), String> {
    let uenv = boot_mount.join(UENV);
    let now = std::fs::read(&uenv).map_err(|e| format!("read {}: {e}", uenv.display()))?;
    if now != original {
        return Err(format!(
            "{} changed since it was planned; run the stager again",
            uenv.display()
        ));
    }
    write_verified(original, &boot_mount.join(ORIGINAL_UENV))?;
    write_verified(armed, &uenv)
}

/// Undoes [`arm`]: the 1.x copy renamed back over `uEnv.txt`. Nothing to do when there is
/// no copy (never made, or already put back).
pub fn disarm(boot_mount: &Path) -> Result<Option<String>, String> {
    let uenv = boot_mount.join(UENV);
    match std::fs::remove_file(temp_name(&uenv)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("remove {}.swapover-new: {e}", uenv.display())),
    }
    let copy = boot_mount.join(ORIGINAL_UENV);
    if !copy.exists() {
        return Ok(None);
    }
    std::fs::rename(&copy, &uenv)
        .map_err(|e| format!("rename {} to {}: {e}", copy.display(), uenv.display()))?;
    state::sync_dir_of(&uenv).map_err(|e| format!("fsync {}: {e}", boot_mount.display()))?;
    Ok(Some(format!("put the 1.x {} back from {ORIGINAL_UENV}", uenv.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use board_profiles::Profile;
    use uboot_env::{BootCount, BootPart, TrialCount};

    fn bbb() -> UbootTrialProfile {
        Profile::builtin("resinos1x-beaglebone-black").unwrap().uboot_trial.unwrap()
    }

    fn counter(now: u16) -> BootCounter {
        let now = BootCount(now);
        BootCounter {
            word: 0xB001_0000 | u32::from(now.0),
            now,
            trial: TrialCount::after(now).unwrap(),
        }
    }

    #[test]
    fn the_armed_text_is_uboot_envs_for_the_boards_file() {
        let original = b"mmcdev=1\nbootpart=1:2\n";
        let text = String::from_utf8(trial_uenv(&bbb(), original, &counter(4)).unwrap()).unwrap();
        let expected = TrialEnv {
            interface: uboot_env::UbootInterface::Mmc,
            mmcdev: 1,
            bootpart: BootPart { device: 1, partition: 2 },
            trial_count: TrialCount::after(BootCount(4)).unwrap(),
        }
        .render(&ExistingUenv::parse(original).unwrap())
        .unwrap();
        assert_eq!(text, expected);
        assert!(text.contains("swapover_trial=5\n"), "{text}");
    }

    #[test]
    fn mmcdev_follows_bootpart_when_the_file_has_none() {
        let text = trial_uenv(&bbb(), b"bootpart=1:2\nfinduuid=x\n", &counter(0)).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.starts_with("mmcdev=1\nbootpart=1:2\nfinduuid=x\nswapover_trial=1\n"),
            "{text}"
        );
    }

    #[test]
    fn a_file_without_bootpart_or_already_steering_the_boot_is_refused() {
        let err = trial_uenv(&bbb(), b"optargs=quiet\n", &counter(0)).unwrap_err().to_string();
        assert!(err.contains("sets no bootpart"), "{err}");
        let err = trial_uenv(&bbb(), b"bootpart=1:2\nuenvcmd=run x\n", &counter(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("already sets uenvcmd"), "{err}");
        let err = trial_uenv(&bbb(), b"bootpart=one:2\n", &counter(0)).unwrap_err().to_string();
        assert!(err.contains("bootpart=one:2 is not DEVICE:PARTITION"), "{err}");
    }

    #[test]
    fn arm_then_disarm_gives_the_file_back() {
        let dir = tempfile::tempdir().unwrap();
        let original = b"bootpart=1:2\n";
        std::fs::write(dir.path().join(UENV), original).unwrap();
        std::fs::create_dir(dir.path().join("swapover")).unwrap();
        assert_eq!(
            arm(dir.path(), b"other", b"armed").unwrap_err(),
            format!(
                "{} changed since it was planned; run the stager again",
                dir.path().join(UENV).display()
            )
        );
        arm(dir.path(), original, b"armed\n").unwrap();
        assert_eq!(std::fs::read(dir.path().join(UENV)).unwrap(), b"armed\n");
        assert_eq!(std::fs::read(dir.path().join(ORIGINAL_UENV)).unwrap(), original);
        assert!(disarm(dir.path()).unwrap().is_some());
        assert_eq!(std::fs::read(dir.path().join(UENV)).unwrap(), original);
        assert!(!dir.path().join(ORIGINAL_UENV).exists());
        assert_eq!(disarm(dir.path()).unwrap(), None, "a second undo finds nothing to do");
        assert_eq!(std::fs::read(dir.path().join(UENV)).unwrap(), original);
    }
}
