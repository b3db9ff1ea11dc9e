//! ARM boot file edits on real FAT images (mkfs.vfat), for every profile whose
//! `bootloader_config_files` name a file the stager edits (config.txt; the BeagleBone's
//! uEnv.txt is replaced whole by its U-Boot trial, see stage_1x_uboot_trial.rs): the file
//! as mtools reads it after the edit, the byte copy of the original, fsck.fat's verdict,
//! and the undo giving back the original bytes exactly.

use board_profiles::Profile;
use stager::stage::resinos1x::boot_files::{self, EditKind, MigrationBoot, BEGIN, END};
use stager::stage::resinos1x::planner;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(command: &mut Command) -> Vec<u8> {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// An 8 MiB FAT image holding `files`.
fn fat_image(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
    let image = dir.join("boot.fat");
    let _ = std::fs::remove_file(&image);
    run(Command::new("mkfs.vfat").args(["-n", "resin-boot", "-C"]).arg(&image).arg("8192"));
    for (name, bytes) in files {
        let local = dir.join("local");
        std::fs::write(&local, bytes).unwrap();
        run(Command::new("mcopy").arg("-i").arg(&image).arg(&local).arg(format!("::{name}")));
    }
    image
}

/// The file's bytes as mtools reads them (`None` when absent).
fn mtype(image: &Path, name: &str) -> Option<Vec<u8>> {
    let out = Command::new("mcopy")
        .arg("-n")
        .arg("-i")
        .arg(image)
        .arg(format!("::{name}"))
        .arg("-")
        .output()
        .unwrap();
    out.status.success().then_some(out.stdout)
}

fn fsck_clean(image: &Path) {
    run(Command::new("fsck.fat").arg("-n").arg(image));
}

fn open_rw(image: &Path) -> std::fs::File {
    OpenOptions::new().read(true).write(true).open(image).unwrap()
}

fn boot_for(profile: &Profile) -> MigrationBoot {
    planner::migration_boot(profile)
}

fn original(kind: EditKind) -> &'static [u8] {
    match kind {
        EditKind::ConfigTxt => b"# Raspberry Pi\r\ngpu_mem=16\r\n[pi3]\r\nkernel=kernel7.img\r\n[all]\r\ndtparam=i2c_arm=on",
        _ => b"",
    }
}

#[test]
fn every_arm_profile_edits_its_boot_files_on_a_fat_image_and_undoes_them_byte_exact() {
    let mut edited_files = 0;
    for name in Profile::list_builtin() {
        let profile = Profile::builtin(name).unwrap();
        let boot = boot_for(&profile);
        for file in &profile.bootloader_config_files {
            let kind = EditKind::of(file);
            if kind != EditKind::ConfigTxt {
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            let before = original(kind);
            let image = fat_image(dir.path(), &[(file, before), ("untouched.txt", b"keep me\n")]);

            let applied = boot_files::apply_on_fat(open_rw(&image), file, &boot).unwrap();
            assert_eq!(applied.original.as_deref(), Some(before));
            let now = mtype(&image, file).unwrap();
            assert_eq!(now, applied.edited, "{name}: {file} as mtools reads it");
            let text = String::from_utf8(now).unwrap();
            assert!(text.contains(BEGIN) && text.contains(END), "{name}: {text}");
            assert!(text.contains("#swapover-disabled# kernel=kernel7.img\r\n"), "{name}: {text}");
            assert!(text.contains("[all]\r\nkernel=swapover/vmlinuz\r\ninitramfs swapover/initramfs.img followkernel\r\ncmdline=swapover/cmdline.txt\r\n"), "{name}: {text}");
            assert_eq!(
                mtype(&image, &boot_files::backup_name(file)).as_deref(),
                Some(before),
                "{name}: byte copy of {file}"
            );
            fsck_clean(&image);

            boot_files::undo_on_fat(open_rw(&image), file).unwrap();
            assert_eq!(mtype(&image, file).as_deref(), Some(before), "{name}: {file} after undo");
            assert_eq!(
                mtype(&image, &boot_files::backup_name(file)),
                None,
                "{name}: the copy is removed"
            );
            assert_eq!(mtype(&image, "untouched.txt").as_deref(), Some(&b"keep me\n"[..]));
            fsck_clean(&image);
            edited_files += 1;
        }
    }
    // config.txt of three Raspberry Pi profiles at least.
    assert!(edited_files >= 3, "{edited_files}");
}

#[test]
fn a_missing_config_txt_is_created_and_its_undo_removes_it() {
    let profile = Profile::builtin("resinos1x-raspberry-pi").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = fat_image(dir.path(), &[("cmdline.txt", b"root=/dev/mmcblk0p2\n")]);
    let applied =
        boot_files::apply_on_fat(open_rw(&image), "config.txt", &boot_for(&profile)).unwrap();
    assert_eq!(applied.original, None);
    assert_eq!(mtype(&image, "config.txt"), Some(applied.edited));
    assert_eq!(mtype(&image, "config.txt.swapover-orig"), None);
    boot_files::undo_on_fat(open_rw(&image), "config.txt").unwrap();
    assert_eq!(mtype(&image, "config.txt"), None);
    assert_eq!(mtype(&image, "cmdline.txt").as_deref(), Some(&b"root=/dev/mmcblk0p2\n"[..]));
    fsck_clean(&image);
}

#[test]
fn an_edited_file_is_not_edited_twice_and_a_plain_file_has_nothing_to_undo() {
    let profile = Profile::builtin("resinos1x-raspberrypi3").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = fat_image(dir.path(), &[("config.txt", b"gpu_mem=16\n")]);
    boot_files::apply_on_fat(open_rw(&image), "config.txt", &boot_for(&profile)).unwrap();
    let edited = mtype(&image, "config.txt").unwrap();
    let err =
        boot_files::apply_on_fat(open_rw(&image), "config.txt", &boot_for(&profile)).unwrap_err();
    assert!(err.to_string().contains("already carries a swapover edit"), "{err}");
    assert_eq!(mtype(&image, "config.txt"), Some(edited), "a refused second edit changes nothing");

    let plain = fat_image(dir.path(), &[("config.txt", b"gpu_mem=16\n")]);
    let err = boot_files::undo_on_fat(open_rw(&plain), "config.txt").unwrap_err();
    assert!(err.to_string().contains("was not edited by swapover"), "{err}");
    assert_eq!(mtype(&plain, "config.txt").as_deref(), Some(&b"gpu_mem=16\n"[..]));
}
