//! Phase C's boot partition on the U-Boot route (`grub.route = uboot-trial`,
//! docs/arm-1x-contract.md §2.5): the flash holds resin-boot back, because U-Boot loads the
//! migrator from its `swapover/` through the committed `uEnv.txt`. Restore then brings the
//! mounted partition to the image's files (plus config.json and the keyfiles) file by file,
//! so that at every instant a reset either resumes the migrator or (after the switch) boots
//! a complete resinOS 2.x:
//!
//! 1. every file that differs is written as `X.swapover-new` and fsynced (nothing the boot
//!    reads changes);
//! 2. the renames over `X`, the boot blobs last (`u-boot.img`, then `MLO`), each followed by
//!    a directory fsync so that the states follow one another in this order. This is the one
//!    window where a cut can leave a MLO/u-boot.img pair of two versions: one or two
//!    directory-entry writes (milliseconds), not provable in QEMU (contract R10);
//! 3. files of the old partition that the image does not have are removed (`uEnv.txt` and
//!    `swapover/` stay: they still boot the migrator);
//! 4. the image's `uEnv.txt` waits as `uEnv.txt.swapover-new`
//!    ([`super::uboot_resume::prepare_switch`]); finalize renames it in
//!    ([`super::uboot_resume::switch_to_new_system`]).
//!
//! A repeated restore finds the renamed files identical and redoes only what is missing.
//! Chosen over building the whole partition and writing it raw (the UEFI route's
//! [`super::boot_image`]): that write's window is the whole 40 MiB, during which a cut
//! leaves a FAT that neither boots the migrator nor 2.x.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use super::uboot_resume::{self, UbootResumeError, BOOT_DIR, NEW_SUFFIX, UENV};
use crate::fatboot::FatFile;

/// The boot blobs, renamed last and in this order (the ROM loads MLO, MLO loads
/// u-boot.img: the contract's order keeps an old MLO with a new u-boot.img for the shortest
/// time that leaves a new MLO with an old u-boot.img never).
pub const BLOBS_LAST: [&str; 2] = ["u-boot.img", "MLO"];

fn blob_rank(path: &str) -> usize {
    BLOBS_LAST.iter().position(|b| b.eq_ignore_ascii_case(path)).map_or(0, |i| i + 1)
}

fn is_uenv(path: &str) -> bool {
    path.eq_ignore_ascii_case(UENV)
}

/// Bring the boot partition mounted at `boot` to `files` (see the module text). Returns the
/// number of files renamed in.
pub fn update(boot: &Path, files: &[FatFile]) -> Result<usize, UbootResumeError> {
    let mut pending: Vec<&FatFile> = Vec::new();
    for file in files.iter().filter(|f| !is_uenv(&f.path)) {
        let target = boot.join(&file.path);
        if std::fs::read(&target).is_ok_and(|now| now == file.contents) {
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|source| UbootResumeError::Io {
                action: "create",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        uboot_resume::write_synced(&with_suffix(&target), &file.contents)?;
        pending.push(file);
    }
    pending.sort_by_key(|f| blob_rank(&f.path));
    let started = Instant::now();
    let mut window_started = None;
    for file in &pending {
        if blob_rank(&file.path) > 0 && window_started.is_none() {
            window_started = Some(Instant::now());
        }
        let target = boot.join(&file.path);
        uboot_resume::rename_synced(&with_suffix(&target), &target)?;
    }
    if let Some(window) = window_started {
        log::info!(
            "restore: boot blobs renamed in {:.1} ms (the window where a cut leaves a mixed MLO/u-boot.img)",
            window.elapsed().as_secs_f64() * 1000.0
        );
    }
    log::info!(
        "restore: {} boot file(s) renamed in ({:.1} ms)",
        pending.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    let removed = remove_others(boot, files)?;
    if removed > 0 {
        log::info!("restore: {removed} file(s) of the old boot partition removed");
    }
    let image_uenv = files.iter().find(|f| is_uenv(&f.path)).map(|f| f.contents.as_slice());
    uboot_resume::prepare_switch(boot, image_uenv)?;
    Ok(pending.len())
}

fn with_suffix(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(NEW_SUFFIX);
    name.into()
}

/// Remove every file and directory under `boot` that `files` does not name, besides
/// `uEnv.txt*` and `swapover/` at the root. FAT names compare without case.
fn remove_others(boot: &Path, files: &[FatFile]) -> Result<usize, UbootResumeError> {
    let keep: BTreeSet<String> = files.iter().map(|f| f.path.to_ascii_lowercase()).collect();
    let keep_dirs: BTreeSet<String> = files
        .iter()
        .flat_map(|f| {
            let path = f.path.to_ascii_lowercase();
            let mut dirs = Vec::new();
            let mut at = path.as_str();
            while let Some((dir, _)) = at.rsplit_once('/') {
                dirs.push(dir.to_string());
                at = dir;
            }
            dirs
        })
        .collect();
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| UbootResumeError::Io { action, path, source }
    };
    let mut removed = 0;
    let mut pending = vec![(String::new(), boot.to_path_buf())];
    while let Some((prefix, dir)) = pending.pop() {
        let mut changed = false;
        for entry in std::fs::read_dir(&dir).map_err(io("list", &dir))? {
            let entry = entry.map_err(io("list", &dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            let lower = rel.to_ascii_lowercase();
            if prefix.is_empty()
                && (lower.starts_with(&UENV.to_ascii_lowercase())
                    || lower == BOOT_DIR.to_ascii_lowercase())
            {
                continue;
            }
            let path = entry.path();
            let is_dir = entry.file_type().map_err(io("inspect", &path))?.is_dir();
            if is_dir && keep_dirs.contains(&lower) {
                pending.push((rel, path));
            } else if is_dir {
                std::fs::remove_dir_all(&path).map_err(io("remove", &path))?;
                removed += 1;
                changed = true;
            } else if !keep.contains(&lower) {
                std::fs::remove_file(&path).map_err(io("remove", &path))?;
                removed += 1;
                changed = true;
            }
        }
        if changed {
            uboot_resume::sync_dir(&dir)?;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, contents: &[u8]) -> FatFile {
        FatFile { path: path.into(), contents: contents.to_vec() }
    }

    fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(d) = pending.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    pending.push(p);
                } else {
                    let rel = p.strip_prefix(dir).unwrap().to_string_lossy().to_string();
                    out.push((rel, std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_update_renames_blobs_last_keeps_the_migrators_boot_and_repeats_to_the_same_tree() {
        let dir = tempfile::tempdir().unwrap();
        let boot = dir.path();
        std::fs::write(boot.join("MLO"), b"old mlo").unwrap();
        std::fs::write(boot.join("u-boot.img"), b"old u-boot").unwrap();
        std::fs::write(boot.join("uEnv.txt"), b"swapover_boot=x\nuenvcmd=run swapover_boot\n")
            .unwrap();
        std::fs::write(boot.join("old-only"), b"1.x").unwrap();
        std::fs::create_dir_all(boot.join("swapover")).unwrap();
        std::fs::write(boot.join("swapover/zImage"), b"kernel").unwrap();
        let files = [
            file("MLO", b"new mlo"),
            file("u-boot.img", b"new u-boot"),
            file("uEnv.txt", b"2.x env\n"),
            file("splash/resin-logo.png", b"png"),
            file("config.json", b"{}"),
        ];
        assert_eq!(update(boot, &files).unwrap(), 4);
        let after = tree(boot);
        assert_eq!(std::fs::read(boot.join("MLO")).unwrap(), b"new mlo");
        assert!(!boot.join("old-only").exists(), "1.x-only files go");
        assert_eq!(
            std::fs::read(boot.join("uEnv.txt")).unwrap(),
            b"swapover_boot=x\nuenvcmd=run swapover_boot\n",
            "uEnv.txt still boots the migrator"
        );
        assert_eq!(std::fs::read(boot.join("uEnv.txt.swapover-new")).unwrap(), b"2.x env\n");
        assert!(boot.join("swapover/zImage").exists());
        // A cut after the first rename: the blob written again, the rest as it was.
        std::fs::write(boot.join("MLO"), b"old mlo").unwrap();
        assert_eq!(update(boot, &files).unwrap(), 1, "only MLO again");
        assert_eq!(tree(boot), after);
        uboot_resume::switch_to_new_system(boot).unwrap();
        uboot_resume::switch_to_new_system(boot).unwrap();
        assert_eq!(std::fs::read(boot.join("uEnv.txt")).unwrap(), b"2.x env\n");
        assert!(!boot.join("swapover").exists());
        let expected: Vec<(String, Vec<u8>)> = {
            let mut v: Vec<_> =
                files.iter().map(|f| (f.path.clone(), f.contents.clone())).collect();
            v.sort();
            v
        };
        assert_eq!(tree(boot), expected, "exactly the image's files");
    }

    #[test]
    fn an_image_without_uenv_txt_leaves_none_after_the_switch() {
        let dir = tempfile::tempdir().unwrap();
        let boot = dir.path();
        std::fs::write(boot.join("uEnv.txt"), b"swapover_boot=x\nuenvcmd=run swapover_boot\n")
            .unwrap();
        std::fs::write(boot.join("uEnv.txt.swapover-new"), b"stale").unwrap();
        update(boot, &[file("MLO", b"m")]).unwrap();
        assert!(!boot.join("uEnv.txt.swapover-new").exists());
        uboot_resume::switch_to_new_system(boot).unwrap();
        assert!(!boot.join("uEnv.txt").exists());
        assert_eq!(tree(boot), vec![("MLO".to_string(), b"m".to_vec())]);
    }
}
