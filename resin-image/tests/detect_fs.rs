//! `detect_fs` on what the real mkfs tools write (ext4, ext3, ext2, vfat, btrfs when
//! mkfs.btrfs is installed, swap by mkswap) and on zeros.

mod support;

use resin_image::{detect_fs, FsType, FS_PROBE_BYTES};
use std::io::Read;
use std::path::Path;
use std::process::Command;
use support::*;

/// The first [`FS_PROBE_BYTES`] of a file.
fn head(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    std::fs::File::open(path).unwrap().take(FS_PROBE_BYTES as u64).read_to_end(&mut bytes).unwrap();
    bytes
}

/// `tool args… file` on a fresh sparse file of `mib` MiB; its head.
fn made_by(dir: &Path, mib: u64, tool: &str, args: &[&str]) -> Vec<u8> {
    let file = dir.join(format!("{tool}-{}", args.join("_").replace('/', "")));
    sparse_file(&file, mib * MIB);
    run(Command::new(tool).args(args).arg(&file));
    head(&file)
}

#[test]
fn tells_what_real_mkfs_tools_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(detect_fs(&made_by(d, 8, "mkfs.ext4", &["-q", "-F"])), Some(FsType::Ext4));
    assert_eq!(
        detect_fs(&made_by(d, 8, "mke2fs", &["-q", "-F", "-t", "ext3"])),
        Some(FsType::Ext3)
    );
    assert_eq!(
        detect_fs(&made_by(d, 8, "mke2fs", &["-q", "-F", "-t", "ext2"])),
        Some(FsType::Ext2)
    );
    // An ext4 without a journal is still ext4 (extents, flex_bg).
    assert_eq!(
        detect_fs(&made_by(d, 8, "mkfs.ext4", &["-q", "-F", "-O", "^has_journal"])),
        Some(FsType::Ext4)
    );
    assert_eq!(detect_fs(&made_by(d, 8, "mkfs.vfat", &["-n", "resin-boot"])), Some(FsType::Vfat));
    assert_eq!(detect_fs(&made_by(d, 40, "mkfs.vfat", &["-F", "32"])), Some(FsType::Vfat));
    assert_eq!(detect_fs(&made_by(d, 4, "mkswap", &[])), Some(FsType::Swap));
    if have("mkfs.btrfs") {
        assert_eq!(detect_fs(&made_by(d, 128, "mkfs.btrfs", &["-q", "-f"])), Some(FsType::Btrfs));
    } else {
        eprintln!("mkfs.btrfs is not installed: btrfs not checked");
    }
}

#[test]
fn zeros_and_short_input_are_nothing() {
    assert_eq!(detect_fs(&vec![0u8; FS_PROBE_BYTES]), None);
    let dir = tempfile::tempdir().unwrap();
    let ext4 = made_by(dir.path(), 8, "mkfs.ext4", &["-q", "-F"]);
    // The superblock cut short is not guessed at.
    assert_eq!(detect_fs(&ext4[..1100]), None);
    assert_eq!(detect_fs(&ext4[..2048]), Some(FsType::Ext4));
}
