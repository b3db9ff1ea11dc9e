//! The one builder of the harness's resinOS-shaped MBR disks (the 1.x stand-ins for x86 and
//! the BeagleBone, the BeagleBone 2.x stand-in): a sparse file, the table written by the real
//! `sfdisk` from [`mbr_script`], and each partition's file system made by the real mkfs tool
//! from a directory tree in a file of its own, then copied into place.

use crate::disk::{self, SECTOR_BYTES};
use crate::resin_image::{mbr_script, StandInPartition};
use crate::tools::run;
use anyhow::{bail, ensure, Result};
use std::ffi::OsString;
use std::path::Path;

/// A resinOS MBR disk: three primaries, an extended partition, two logicals.
#[derive(Debug, Clone, Copy)]
pub struct StandInDisk<'a> {
    /// The MBR disk identifier (`0x…`).
    pub label_id: &'a str,
    pub partitions: &'a [StandInPartition; 5],
    pub extended_start: u64,
    pub disk_sectors: u64,
    /// ext and btrfs UUIDs are this prefix followed by the partition's index (0–4).
    pub uuid_prefix: &'a str,
    /// FAT volume ids are this prefix followed by the partition's index (0–4).
    pub fat_id_prefix: &'a str,
}

impl<'a> StandInDisk<'a> {
    /// The disk `label_id` with `partitions`, the extended partition from `extended_start` to
    /// the end at `disk_sectors`, and the file systems' ids made from `uuid_prefix` and
    /// `fat_id_prefix`.
    pub const fn new(
        label_id: &'a str,
        partitions: &'a [StandInPartition; 5],
        (extended_start, disk_sectors): (u64, u64),
        (uuid_prefix, fat_id_prefix): (&'a str, &'a str),
    ) -> Self {
        StandInDisk {
            label_id,
            partitions,
            extended_start,
            disk_sectors,
            uuid_prefix,
            fat_id_prefix,
        }
    }

    /// Writes the disk to `out`, each partition's file system filled from the directory
    /// `contents` gives for its label (an empty file system for a label it does not name),
    /// using `work` for the file-system files.
    pub fn build(&self, out: &Path, work: &Path, contents: &[(&str, &Path)]) -> Result<()> {
        let empty = work.join("empty");
        std::fs::create_dir_all(&empty)?;
        disk::create_sparse(out, self.disk_sectors * SECTOR_BYTES)?;
        disk::write_table(
            out,
            &mbr_script(self.label_id, self.partitions, self.extended_start, self.disk_sectors),
        )?;
        for (i, p) in self.partitions.iter().enumerate() {
            let fs_file = work.join(format!("{}.fs", p.label));
            let dir = contents.iter().find(|(l, _)| *l == p.label).map_or(empty.as_path(), |c| c.1);
            let uuid = format!("{}{i}", self.uuid_prefix);
            make_fs(&fs_file, p, &uuid, &format!("{}{i}", self.fat_id_prefix), dir)?;
            disk::place_into_fresh_sparse(out, p.start * SECTOR_BYTES, &fs_file)?;
            std::fs::remove_file(&fs_file)?;
        }
        Ok(())
    }
}

/// Makes partition `p`'s file system (its `fs`: vfat, ext2/3/4 or btrfs) in `out` from `dir`.
fn make_fs(out: &Path, p: &StandInPartition, uuid: &str, fat_id: &str, dir: &Path) -> Result<()> {
    let bytes = p.sectors * SECTOR_BYTES;
    match p.fs {
        "vfat" => disk::mkfs_vfat(out, bytes, p.label, fat_id, dir),
        "ext2" | "ext3" | "ext4" => {
            disk::create_sparse(out, bytes)?;
            let args: Vec<OsString> = vec![
                "-q".into(),
                "-F".into(),
                "-t".into(),
                p.fs.into(),
                "-L".into(),
                p.label.into(),
                "-U".into(),
                uuid.into(),
                "-E".into(),
                "root_owner=0:0".into(),
                "-d".into(),
                dir.into(),
                out.into(),
            ];
            run("mke2fs", args)?;
            Ok(())
        }
        "btrfs" => {
            disk::create_sparse(out, bytes)?;
            let args: Vec<OsString> = vec![
                "-q".into(),
                "-L".into(),
                p.label.into(),
                "-U".into(),
                uuid.into(),
                "--rootdir".into(),
                dir.into(),
                out.into(),
            ];
            run("mkfs.btrfs", args)?;
            let len = std::fs::metadata(out)?.len();
            ensure!(
                len == bytes,
                "mkfs.btrfs --rootdir grew {} to {len} bytes (more than {bytes})",
                p.label
            );
            Ok(())
        }
        other => bail!("no file system builder for {other} ({})", p.label),
    }
}
