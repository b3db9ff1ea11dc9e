//! Disk images built from scratch without mounting: a sparse file, a partition table
//! written by the real `sfdisk`, file systems made by the real mkfs tools and copied into
//! place, and read back afterwards with `sfdisk --json`, `debugfs` and `mtools`.

use crate::tools::{run, run_with_input};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Logical sector size of every image the harness builds.
pub const SECTOR_BYTES: u64 = 512;

/// A partition as the table describes it, in sectors (LBA), with byte helpers that say so.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TablePartition {
    /// Device-like name sfdisk prints (`disk.img1`, `disk.img5`).
    pub node: String,
    /// First sector.
    pub start: u64,
    /// Length in sectors.
    pub size: u64,
    /// MBR type as hex text (`83`, `82`, `5`, `c`).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub bootable: bool,
}

impl TablePartition {
    pub fn offset_bytes(&self) -> u64 {
        self.start * SECTOR_BYTES
    }
    pub fn len_bytes(&self) -> u64 {
        self.size * SECTOR_BYTES
    }
    /// Partition number as Linux counts it (1..4 primary, 5.. logical).
    pub fn number(&self) -> Result<u32> {
        let digits: String = self
            .node
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        digits.parse().with_context(|| format!("no partition number in {}", self.node))
    }
}

/// The partition table of an image, as `sfdisk --json` reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct PartitionTable {
    pub label: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub partitions: Vec<TablePartition>,
}

impl PartitionTable {
    pub fn read(image: &Path) -> Result<Self> {
        #[derive(Deserialize)]
        struct Wrapper {
            partitiontable: PartitionTable,
        }
        let out = run("sfdisk", [std::ffi::OsStr::new("--json"), image.as_os_str()])?;
        let parsed: Wrapper = serde_json::from_slice(&out)
            .with_context(|| format!("parsing sfdisk --json of {}", image.display()))?;
        Ok(parsed.partitiontable)
    }

    /// The partition with this Linux number.
    pub fn number(&self, n: u32) -> Result<&TablePartition> {
        for p in &self.partitions {
            if p.number()? == n {
                return Ok(p);
            }
        }
        bail!("no partition {n} in table {:?}", self.partitions)
    }
}

/// Creates (or truncates) a sparse file of `bytes` length.
pub fn create_sparse(path: &Path, bytes: u64) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.set_len(bytes)?;
    Ok(())
}

/// Writes a partition table with the real `sfdisk` from its script language.
pub fn write_table(image: &Path, sfdisk_script: &str) -> Result<()> {
    run_with_input(
        "sfdisk",
        [std::ffi::OsStr::new("--quiet"), std::ffi::OsStr::new("--no-reread"), image.as_os_str()],
        Some(sfdisk_script.as_bytes()),
    )?;
    Ok(())
}

/// Copies `src` (a file system image) into `disk` at `offset_bytes`, leaving holes where
/// the source reads as zero. Only for freshly created sparse disks: skipping zero runs is
/// safe here because the destination region is known to read as zero.
pub fn place_into_fresh_sparse(disk: &Path, offset_bytes: u64, src: &Path) -> Result<()> {
    let mut input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let mut out = OpenOptions::new().write(true).open(disk)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = offset_bytes;
    loop {
        let n = read_full(&mut input, &mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            out.seek(SeekFrom::Start(pos))?;
            out.write_all(&buf[..n])?;
        }
        pos += n as u64;
    }
    out.sync_all()?;
    Ok(())
}

/// Overwrites `bytes` at `offset` (used for boot code and for test-made corruption).
pub fn write_at(disk: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
    let mut out = OpenOptions::new().write(true).open(disk)?;
    out.seek(SeekFrom::Start(offset))?;
    out.write_all(bytes)?;
    out.sync_all()?;
    Ok(())
}

/// Reads `len` bytes at `offset`.
pub fn read_at(disk: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut f = File::open(disk)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf)?;
    Ok(buf)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = r.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Makes an ext4 file system of `bytes` from the contents of `dir` in a separate file.
pub fn mkfs_ext4(
    out: &Path,
    bytes: u64,
    label: &str,
    uuid: &str,
    dir: &Path,
    features: &str,
) -> Result<()> {
    create_sparse(out, bytes)?;
    let mut args: Vec<std::ffi::OsString> =
        vec!["-q".into(), "-F".into(), "-L".into(), label.into(), "-U".into(), uuid.into()];
    if !features.is_empty() {
        args.push("-O".into());
        args.push(features.into());
    }
    // Deterministic metadata so images are stable across rebuilds.
    args.push("-E".into());
    args.push(format!("hash_seed={uuid},root_owner=0:0").into());
    args.push("-d".into());
    args.push(dir.into());
    args.push(out.into());
    run("mkfs.ext4", args)?;
    Ok(())
}

/// Makes a FAT file system of `bytes` with `label`, volume id, and copies `dir` into it with mtools.
pub fn mkfs_vfat(out: &Path, bytes: u64, label: &str, volume_id: &str, dir: &Path) -> Result<()> {
    create_sparse(out, bytes)?;
    run(
        "mkfs.vfat",
        [
            std::ffi::OsStr::new("-n"),
            label.as_ref(),
            "-i".as_ref(),
            volume_id.as_ref(),
            out.as_os_str(),
        ],
    )?;
    let entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<Vec<_>>>()?;
    if entries.is_empty() {
        return Ok(());
    }
    let mut args: Vec<std::ffi::OsString> =
        vec!["-i".into(), out.into(), "-s".into(), "-p".into(), "-Q".into()];
    for e in entries {
        args.push(e.path().into());
    }
    args.push("::/".into());
    run("mcopy", args)?;
    Ok(())
}

/// Reads one file out of the ext4 file system of partition `part` of `disk` (no mount).
pub fn read_ext4_file(disk: &Path, part: &TablePartition, path: &str) -> Result<Vec<u8>> {
    let spec = format!("{}?offset={}", disk.display(), part.offset_bytes());
    let out = run("debugfs", ["-R".to_string(), format!("cat \"{path}\""), spec])?;
    Ok(out)
}

/// Lists a directory of the ext4 file system of partition `part` of `disk` (no mount).
pub fn list_ext4_dir(disk: &Path, part: &TablePartition, path: &str) -> Result<Vec<String>> {
    let spec = format!("{}?offset={}", disk.display(), part.offset_bytes());
    let out = run("debugfs", ["-R".to_string(), format!("ls -p \"{path}\""), spec])?;
    // ls -p prints /inode/mode/uid/gid/name/size/ per entry.
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.split('/').nth(5).map(str::to_string))
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .collect())
}

/// Reads one file out of the FAT file system of partition `part` of `disk` (no mount).
pub fn read_fat_file(disk: &Path, part: &TablePartition, path: &str) -> Result<Vec<u8>> {
    let spec = format!("{}@@{}", disk.display(), part.offset_bytes());
    run("mcopy", ["-n".to_string(), "-i".to_string(), spec, format!("::{path}"), "-".to_string()])
}

/// Writes `data` as file `path` into the ext4 file system of partition `part` of `disk`
/// (no mount), replacing an existing file. Parent directories must exist.
pub fn write_ext4_file(disk: &Path, part: &TablePartition, path: &str, data: &[u8]) -> Result<()> {
    let spec = format!("{}?offset={}", disk.display(), part.offset_bytes());
    let local = std::env::temp_dir().join(format!(
        "swapover-debugfs-{}-{}",
        std::process::id(),
        data.len()
    ));
    std::fs::write(&local, data)?;
    // `rm` fails harmlessly when the file does not exist; debugfs reports but continues.
    let script = format!("rm \"{path}\"\nwrite {} \"{path}\"\n", local.display());
    let result = run_with_input(
        "debugfs",
        [
            std::ffi::OsStr::new("-w"),
            std::ffi::OsStr::new("-f"),
            std::ffi::OsStr::new("-"),
            std::ffi::OsStr::new(&spec),
        ],
        Some(script.as_bytes()),
    );
    let _ = std::fs::remove_file(&local);
    result?;
    let back = read_ext4_file(disk, part, path)?;
    if back != data {
        bail!("debugfs did not write {path} into {}", disk.display());
    }
    Ok(())
}

/// Makes directory `path` (its parent must exist) in the ext4 file system of partition `part`
/// of `disk` (no mount).
pub fn mkdir_ext4(disk: &Path, part: &TablePartition, path: &str) -> Result<()> {
    let spec = format!("{}?offset={}", disk.display(), part.offset_bytes());
    run("debugfs", ["-w".to_string(), "-R".to_string(), format!("mkdir \"{path}\""), spec])?;
    if !list_ext4_dir(disk, part, path).is_ok_and(|entries| entries.is_empty()) {
        bail!("debugfs did not make {path} in {}", disk.display());
    }
    Ok(())
}

/// Copies `data` as `path` into the FAT file system of partition `part` of `disk` (no mount).
pub fn write_fat_file(disk: &Path, part: &TablePartition, path: &str, data: &[u8]) -> Result<()> {
    let spec = format!("{}@@{}", disk.display(), part.offset_bytes());
    let local =
        std::env::temp_dir().join(format!("swapover-mtools-{}-{}", std::process::id(), data.len()));
    std::fs::write(&local, data)?;
    let result = run(
        "mcopy",
        [
            "-o".to_string(),
            "-i".to_string(),
            spec,
            local.display().to_string(),
            format!("::{path}"),
        ],
    );
    let _ = std::fs::remove_file(&local);
    result.map(|_| ())
}

/// Makes a directory in the FAT file system of partition `part` of `disk` (no mount).
pub fn mkdir_fat(disk: &Path, part: &TablePartition, path: &str) -> Result<()> {
    let spec = format!("{}@@{}", disk.display(), part.offset_bytes());
    run("mmd", ["-i".to_string(), spec, format!("::{path}")]).map(|_| ())
}

/// Deletes file `path` from the FAT file system of partition `part` of `disk` (no mount).
pub fn delete_fat_file(disk: &Path, part: &TablePartition, path: &str) -> Result<()> {
    let spec = format!("{}@@{}", disk.display(), part.offset_bytes());
    run("mdel", ["-i".to_string(), spec, format!("::{path}")]).map(|_| ())
}
