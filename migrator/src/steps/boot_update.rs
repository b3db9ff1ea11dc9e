//! Phase C's boot partition when the firmware boots the migrator from resin-boot through
//! one text file (the U-Boot route's `uEnv.txt`, the Raspberry Pi route's `config.txt`;
//! docs/arm-1x-contract.md §2.5): the flash holds resin-boot back, and restore brings the
//! mounted partition to the image's files (plus config.json and the keyfiles) file by file,
//! so that at every instant a reset either resumes the migrator or (after the switch) boots
//! a complete resinOS 2.x:
//!
//! 1. every file that differs is written as `X.swapover-new` and fsynced (nothing the boot
//!    reads changes);
//! 2. the renames over `X`, each followed by a directory fsync, except the boot blobs (the
//!    route's [`BootSwitch::blobs_last`]: BBB `u-boot.img`, `MLO`; Pi `bootcode.bin`,
//!    `start*.elf`, `fixup*.dat`, the dtbs, `overlays/*`, the kernel): they wait as
//!    `X.swapover-new` until the switch, which renames them after the 2.x head is written
//!    ([`BootSwitch::rename_blobs`]). That is the one window where a cut can leave blobs of
//!    two versions: directory-entry writes (milliseconds), not provable in QEMU (contract
//!    R10). Done last so that a cut after it, under a 2.x bootloader that does not read the
//!    switch file (contract R12), finds 2.x complete;
//! 3. files of the old partition that the image does not have are removed (the switch file
//!    and `swapover/` stay: they still boot the migrator), except old blobs (a Pi's 1.x
//!    dtbs and overlays the migrator's boot still loads): their list waits in
//!    [`BootSwitch::OBSOLETE_LIST`] and the switch removes them after the blob renames;
//! 4. the image's switch file waits as `X.swapover-new` ([`BootSwitch::prepare`]); finalize
//!    renames it in ([`BootSwitch::switch_to_new_system`]).
//!
//! A repeated restore finds the renamed files identical and redoes only what is missing.
//! Chosen over building the whole partition and writing it raw (the UEFI route's
//! [`super::boot_image`]): that write's window is the whole 40 MiB, during which a cut
//! leaves a FAT that neither boots the migrator nor 2.x.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use super::boot_switch::{BootSwitch, BOOT_DIR};
use super::fat_replace::{self, with_suffix, FatReplaceError};
use crate::fatboot::FatFile;

/// Bring the boot partition mounted at `boot` to `files` (see the module text). Returns the
/// number of files written (renamed in or waiting for the switch).
pub fn update(
    boot: &Path,
    files: &[FatFile],
    switch: &BootSwitch,
) -> Result<usize, FatReplaceError> {
    let mut pending: Vec<&FatFile> = Vec::new();
    for file in files.iter().filter(|f| !switch.is_switch_file(&f.path)) {
        let target = boot.join(&file.path);
        if std::fs::read(&target).is_ok_and(|now| now == file.contents) {
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(fat_replace::io_err("create", parent))?;
        }
        fat_replace::write_synced(&with_suffix(&target), &file.contents)?;
        pending.push(file);
    }
    // The blobs wait as `X.swapover-new` until the switch (after the 2.x head is written):
    // a bootloader that ignores the switch file then never meets a half-written disk.
    let started = Instant::now();
    let renamed: Vec<&&FatFile> =
        pending.iter().filter(|f| switch.blob_rank(&f.path).is_none()).collect();
    for file in &renamed {
        let target = boot.join(&file.path);
        fat_replace::rename_synced(&with_suffix(&target), &target)?;
    }
    log::info!(
        "restore: {} boot file(s) renamed in ({:.1} ms), {} boot blob(s) wait for the switch",
        renamed.len(),
        started.elapsed().as_secs_f64() * 1000.0,
        pending.len() - renamed.len()
    );
    let (removed, obsolete) = remove_others(boot, files, switch)?;
    if removed > 0 {
        log::info!("restore: {removed} file(s) of the old boot partition removed");
    }
    switch.prepare_obsolete(boot, &obsolete)?;
    let image_file =
        files.iter().find(|f| switch.is_switch_file(&f.path)).map(|f| f.contents.as_slice());
    switch.prepare(boot, image_file)?;
    Ok(pending.len())
}

/// Remove every file and directory under `boot` that `files` does not name, besides the
/// switch file (and its `.swapover-new`) and `swapover/` at the root, the blobs waiting for
/// the switch, and old blobs, which are returned (paths from `boot`) for the switch to
/// remove. FAT names compare without case. Returns the number removed and the old blobs.
fn remove_others(
    boot: &Path,
    files: &[FatFile],
    switch: &BootSwitch,
) -> Result<(usize, Vec<String>), FatReplaceError> {
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
    let switch_file = switch.file.to_ascii_lowercase();
    let mut removed = 0;
    let mut obsolete = Vec::new();
    let mut pending = vec![(String::new(), boot.to_path_buf())];
    while let Some((prefix, dir)) = pending.pop() {
        let mut changed = false;
        for entry in std::fs::read_dir(&dir).map_err(fat_replace::io_err("list", &dir))? {
            let entry = entry.map_err(fat_replace::io_err("list", &dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            let lower = rel.to_ascii_lowercase();
            if (prefix.is_empty()
                && (lower.starts_with(&switch_file) || lower == BOOT_DIR.to_ascii_lowercase()))
                || switch.is_waiting_blob(&lower)
            {
                continue;
            }
            let path = entry.path();
            let is_dir = entry.file_type().map_err(fat_replace::io_err("inspect", &path))?.is_dir();
            if is_dir && (keep_dirs.contains(&lower) || holds_blobs(switch, &lower)) {
                pending.push((rel, path));
            } else if is_dir {
                std::fs::remove_dir_all(&path).map_err(fat_replace::io_err("remove", &path))?;
                removed += 1;
                changed = true;
            } else if !keep.contains(&lower) && switch.blob_rank(&lower).is_some() {
                obsolete.push(rel);
            } else if !keep.contains(&lower) {
                std::fs::remove_file(&path).map_err(fat_replace::io_err("remove", &path))?;
                removed += 1;
                changed = true;
            }
        }
        if changed {
            fat_replace::sync_dir(&dir)?;
        }
    }
    obsolete.sort();
    Ok((removed, obsolete))
}

/// Whether a blob pattern reaches into directory `dir` (`overlays/*` into `overlays`).
fn holds_blobs(switch: &BootSwitch, dir: &str) -> bool {
    let depth = dir.split('/').count();
    switch.blobs_last.iter().any(|pattern| {
        let parts: Vec<&str> = pattern.split('/').collect();
        parts.len() > depth && super::boot_switch::pattern_matches(&parts[..depth].join("/"), dir)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bbb() -> BootSwitch {
        let mut plan = plan::Plan::stem_example();
        plan.grub.route = plan::GrubRoute::UbootTrial;
        BootSwitch::for_plan(&plan).unwrap()
    }

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
    fn the_update_leaves_blobs_to_the_switch_and_repeats_to_the_same_tree() {
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
        assert_eq!(update(boot, &files, &bbb()).unwrap(), 4);
        let after = tree(boot);
        assert_eq!(std::fs::read(boot.join("MLO")).unwrap(), b"old mlo", "blobs wait");
        assert_eq!(std::fs::read(boot.join("u-boot.img")).unwrap(), b"old u-boot");
        assert_eq!(std::fs::read(boot.join("MLO.swapover-new")).unwrap(), b"new mlo");
        assert_eq!(std::fs::read(boot.join("config.json")).unwrap(), b"{}");
        assert!(!boot.join("old-only").exists(), "1.x-only files go");
        assert_eq!(
            std::fs::read(boot.join("uEnv.txt")).unwrap(),
            b"swapover_boot=x\nuenvcmd=run swapover_boot\n",
            "uEnv.txt still boots the migrator"
        );
        assert_eq!(std::fs::read(boot.join("uEnv.txt.swapover-new")).unwrap(), b"2.x env\n");
        assert!(boot.join("swapover/zImage").exists());
        // A repeated update (a cut before the journal said so) changes nothing.
        assert_eq!(update(boot, &files, &bbb()).unwrap(), 2, "only the waiting blobs again");
        assert_eq!(tree(boot), after);
        // A cut inside the window: u-boot.img renamed in, MLO still waiting.
        std::fs::rename(boot.join("u-boot.img.swapover-new"), boot.join("u-boot.img")).unwrap();
        bbb().switch_to_new_system(boot).unwrap();
        bbb().switch_to_new_system(boot).unwrap();
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
        update(boot, &[file("MLO", b"m")], &bbb()).unwrap();
        assert!(!boot.join("uEnv.txt.swapover-new").exists());
        bbb().switch_to_new_system(boot).unwrap();
        assert!(!boot.join("uEnv.txt").exists());
        assert_eq!(tree(boot), vec![("MLO".to_string(), b"m".to_vec())]);
    }

    #[test]
    fn old_blobs_the_image_lacks_stay_until_the_switch_removes_them_and_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let boot = dir.path();
        std::fs::create_dir_all(boot.join("overlays")).unwrap();
        std::fs::create_dir_all(boot.join("swapover")).unwrap();
        std::fs::write(boot.join("overlays/w1-gpio-overlay.dtb"), b"4.1 overlay").unwrap();
        std::fs::write(boot.join("bcm2708-rpi-b.dtb"), b"old dtb").unwrap();
        std::fs::write(boot.join("old-only.txt"), b"not a blob").unwrap();
        std::fs::write(boot.join("config.txt"), b"cmdline=swapover/cmdline.txt\n").unwrap();
        let mut plan = plan::Plan::stem_example();
        plan.grub.route = plan::GrubRoute::PiFirmwareTrial;
        plan.grub.pi = Some(plan::PiTrialBoot {
            trial_partition: 3,
            kernel: "kernel7.img".into(),
            blobs_last: vec!["*.dtb".into(), "overlays/*".into()],
        });
        let pi = BootSwitch::for_plan(&plan).unwrap();
        let files = [file("config.txt", b"2.x\n"), file("bcm2710-rpi-3-b.dtb", b"new dtb")];
        update(boot, &files, &pi).unwrap();
        assert!(!boot.join("old-only.txt").exists(), "other 1.x-only files go at once");
        assert!(boot.join("overlays/w1-gpio-overlay.dtb").exists(), "old blobs stay");
        assert!(boot.join("bcm2708-rpi-b.dtb").exists());
        assert_eq!(
            std::fs::read_to_string(boot.join(BootSwitch::OBSOLETE_LIST)).unwrap(),
            "bcm2708-rpi-b.dtb\noverlays/w1-gpio-overlay.dtb\n"
        );
        pi.switch_to_new_system(boot).unwrap();
        pi.switch_to_new_system(boot).unwrap();
        assert_eq!(
            tree(boot),
            vec![
                ("bcm2710-rpi-3-b.dtb".to_string(), b"new dtb".to_vec()),
                ("config.txt".to_string(), b"2.x\n".to_vec()),
            ]
        );
        assert!(!boot.join("overlays").exists(), "the emptied directory goes too");
    }
}
