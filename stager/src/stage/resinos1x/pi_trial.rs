//! The Raspberry Pi's one-shot trial through the GPU firmware (docs/arm-1x-contract.md
//! §2.2 phase A), the stager's side: the spare partition becomes a FAT32 labelled
//! `resin-updt` holding a boot set copied from resin-boot (firmware, kernel, dtbs, overlays)
//! plus the staging directory, and the firmware is told to boot it once (`reboot_part`,
//! then `reboot(RESTART2, "N")`). resin-boot (p1) is not changed.
//!
//! The FAT is written through the `fatfs` crate on the raw partition, never through a
//! mount: the 1.x root may have no `mkfs.vfat`, and nothing of it needs the kernel's vfat.
//! Every file is written under a temporary name, flushed, renamed and read back against its
//! sha256 through a freshly opened file system, and the partition is fsynced.

use super::fat_dirs;
use super::refusal::Refusal1x;
use crate::stage::host_extras::Region;
use crate::stage::prepare::boot_fat::{FileRegion, ReadOnly};
use plan::Bytes;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;

/// The spare's new FAT's label (the same name as its old ext3: the contract's).
pub const LABEL: &str = "resin-updt";
/// The trial's firmware reads these from the spare's root, relative to it.
pub use pi_firmware::{CMDLINE, CONFIG_TXT, INITRAMFS};
pub const CMDLINE_TXT: &str = "cmdline.txt";
/// The MBR partition type of a FAT32 (LBA) partition, which the firmware boots from.
pub const FAT32_LBA: u8 = 0x0c;
/// FAT32's smallest cluster count (Microsoft FAT specification: fewer makes it FAT16).
pub const FAT32_MIN_CLUSTERS: u64 = 65_525;
const FAT32_MAX_CLUSTERS: u64 = 0x0FFF_FFF4;
/// FAT32's largest file: 4 GiB less one byte (the size field is 32 bits).
pub const FAT32_MAX_FILE: Bytes = Bytes(4 * 1024 * 1024 * 1024 - 1);
/// A kernel without `reboot_part` takes the partition through RESTART2 from this version
/// (raspberrypi/linux 4.9's bcm2835 watchdog, contract P8).
pub const RESTART2_FROM: (u32, u32) = (4, 9);

/// One file of resin-boot's trial set: its path relative to the partition's root and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSetFile {
    pub name: String,
    pub size: Bytes,
}

/// What the trial takes from resin-boot, read from its FAT before planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiBootSet {
    /// Firmware, kernel, `*.dtb` of the root and `overlays/` (recursive), in copy order.
    pub files: Vec<BootSetFile>,
    /// Required files that are not there (`firmware_files`, the kernel).
    pub missing: Vec<String>,
    pub config_txt: Vec<u8>,
    pub cmdline_txt: Vec<u8>,
}

impl PiBootSet {
    pub fn bytes(&self) -> Bytes {
        Bytes(self.files.iter().map(|f| f.size.get()).sum())
    }
}

/// Reads the trial set's names and sizes from resin-boot's FAT (`fs`).
pub fn read_boot_set<T: Read + Write + std::io::Seek>(
    fs: &fatfs::FileSystem<T>,
    trial: &board_profiles::PiTrialProfile,
) -> std::io::Result<PiBootSet> {
    let root = fs.root_dir();
    let size_of = |name: &str| -> Option<Bytes> {
        root.open_file(name).ok().map(|mut f| {
            let len = std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0)).unwrap_or(0);
            Bytes(len)
        })
    };
    let mut set = PiBootSet {
        files: Vec::new(),
        missing: Vec::new(),
        config_txt: read_all(&root, CONFIG_TXT).unwrap_or_default(),
        cmdline_txt: read_all(&root, CMDLINE_TXT).unwrap_or_default(),
    };
    let required = trial.firmware_files.iter().chain(std::iter::once(&trial.kernel));
    for name in required {
        match size_of(name) {
            Some(size) => set.files.push(BootSetFile { name: name.clone(), size }),
            None => set.missing.push(name.clone()),
        }
    }
    for name in &trial.optional_firmware_files {
        if let Some(size) = size_of(name) {
            set.files.push(BootSetFile { name: name.clone(), size });
        }
    }
    let mut dtbs = Vec::new();
    for entry in root.iter() {
        let entry = entry?;
        let name = entry.file_name();
        if entry.is_file() && name.to_ascii_lowercase().ends_with(".dtb") {
            dtbs.push(BootSetFile { name, size: Bytes(entry.len()) });
        }
    }
    dtbs.sort_by(|a, b| a.name.cmp(&b.name));
    set.files.extend(dtbs);
    if let Ok(overlays) = root.open_dir("overlays") {
        walk(&overlays, "overlays", &mut set.files)?;
    }
    Ok(set)
}

fn walk<T: Read + Write + std::io::Seek>(
    dir: &fatfs::Dir<'_, T>,
    prefix: &str,
    out: &mut Vec<BootSetFile>,
) -> std::io::Result<()> {
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name();
        if name == "." || name == ".." {
            continue;
        }
        let path = format!("{prefix}/{name}");
        if entry.is_dir() {
            walk(&entry.to_dir(), &path, out)?;
        } else {
            out.push(BootSetFile { name: path, size: Bytes(entry.len()) });
        }
    }
    Ok(())
}

fn read_all<T: Read + Write + std::io::Seek>(
    dir: &fatfs::Dir<'_, T>,
    name: &str,
) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    dir.open_file(name)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The FAT32 the spare becomes: cluster size and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fat32Geometry {
    pub bytes_per_cluster: u32,
    pub clusters: u64,
}

impl Fat32Geometry {
    /// What files can fill.
    pub fn data_bytes(&self) -> Bytes {
        Bytes(self.clusters.saturating_mul(u64::from(self.bytes_per_cluster)))
    }
}

/// The largest cluster (512 B .. 32 KiB) that still gives `size` at least
/// [`FAT32_MIN_CLUSTERS`], by fatfs's own FAT32 sizing (8 reserved sectors, 2 FATs);
/// `None` when even 512-byte clusters are too few.
pub fn fat32_geometry(size: Bytes) -> Option<Fat32Geometry> {
    let total = size.get() / 512;
    (0..=6).rev().map(|shift| 1u64 << shift).find_map(|spc| {
        // fatfs boot_sector.rs determine_sectors_per_fat, for FAT32 (28-bit entries in 32).
        let t0 = total.checked_sub(8)?;
        let t1 = t0 + 2 * spc;
        let t2 = spc * 512 * 8 / 32 + 2;
        let per_fat = t1.div_ceil(t2);
        let clusters = t0.checked_sub(2 * per_fat)? / spc;
        (FAT32_MIN_CLUSTERS..=FAT32_MAX_CLUSTERS)
            .contains(&clusters)
            .then_some(Fat32Geometry { bytes_per_cluster: (spc * 512) as u32, clusters })
    })
}

/// The volume id as blkid shows it: `XXXX-XXXX`.
pub fn volume_id_text(id: u32) -> String {
    format!("{:04X}-{:04X}", id >> 16, id & 0xffff)
}

/// A volume id from the plan's inputs (the disk, the spare's start, the image), so planning
/// the same staging twice gives the same id.
pub fn volume_id(signature: u32, spare_start: u64, image_sha256: &str) -> u32 {
    let digest = Sha256::new()
        .chain_update(signature.to_le_bytes())
        .chain_update(spare_start.to_le_bytes())
        .chain_update(image_sha256.as_bytes())
        .finalize();
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}

fn label_bytes() -> [u8; 11] {
    let mut label = [b' '; 11];
    // As resinOS labels its FAT partitions (mkfs.vfat -n resin-boot): lower case.
    label[..LABEL.len()].copy_from_slice(LABEL.as_bytes());
    label
}

/// How much of the spare's start is zeroed before formatting.
const WIPE_BYTES: u64 = 1024 * 1024;

fn open_rw(region: &Region) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&region.file)
        .map_err(|e| format!("open {}: {e}", region.host_path))
}

/// Formats `region` as an empty FAT32 labelled [`LABEL`] with `volume_id`, and checks that
/// it opens as FAT32 with that id.
/// The partition's first MiB is zeroed first: no other file system's signature (the ext3
/// superblock at 1 KiB) stays beside the FAT's for blkid to find (mkfs.vfat wipes them too).
pub fn format(region: &Region, volume_id: u32, geometry: Fat32Geometry) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    let file = open_rw(region)?;
    let wipe = vec![0u8; region.size.get().min(WIPE_BYTES) as usize];
    file.write_all_at(&wipe, region.offset.get())
        .map_err(|e| format!("wipe the start of {}: {e}", region.host_path))?;
    let options = fatfs::FormatVolumeOptions::new()
        .fat_type(fatfs::FatType::Fat32)
        .bytes_per_cluster(geometry.bytes_per_cluster)
        .volume_id(volume_id)
        .volume_label(label_bytes());
    fatfs::format_volume(FileRegion::new(&file, region.offset.get(), region.size.get()), options)
        .map_err(|e| format!("format {} as FAT32: {e}", region.host_path))?;
    file.sync_all().map_err(|e| format!("fsync {}: {e}", region.host_path))?;
    let fs = fatfs::FileSystem::new(
        ReadOnly(FileRegion::new(&file, region.offset.get(), region.size.get())),
        fatfs::FsOptions::new(),
    )
    .map_err(|e| format!("{} does not open as the FAT just made: {e}", region.host_path))?;
    if fs.fat_type() != fatfs::FatType::Fat32 || fs.volume_id() != volume_id {
        return Err(format!(
            "{} reads back as {:?} with id {}, not the FAT32 {} just made",
            region.host_path,
            fs.fat_type(),
            volume_id_text(fs.volume_id()),
            volume_id_text(volume_id)
        ));
    }
    drop(fs);
    fat_dirs::pregrow_root(&file, region.offset.get(), region.size.get())
        .map_err(|e| format!("grow the root directory of {}: {e}", region.host_path))
}

/// Formats the spare empty again (undo): the same label and `volume_id` (`XXXX-XXXX`).
pub fn format_again(
    region: &Region,
    volume_id: &str,
    bytes_per_cluster: u32,
) -> Result<(), String> {
    let id = u32::from_str_radix(&volume_id.replace('-', ""), 16)
        .map_err(|e| format!("volume id {volume_id} in the journal: {e}"))?;
    let geometry = Fat32Geometry { bytes_per_cluster, clusters: 0 };
    format(region, id, geometry)
}

/// Where a file written to the spare comes from.
pub enum Source<'a> {
    /// A file of resin-boot's FAT (the same path there).
    Boot,
    /// A file of the running system.
    Path(&'a Path),
    Bytes(&'a [u8]),
}

/// Writes `files` (path on the spare, source) into the spare's FAT: each through a
/// temporary name, renamed into place, then all read back by sha256 through a fresh open.
/// Returns each file's path with the sha256 written.
pub fn write_files(
    spare: &Region,
    boot: &Region,
    files: &[(String, Source<'_>)],
) -> Result<Vec<(String, String)>, String> {
    let file = open_rw(spare)?;
    let boot_file =
        std::fs::File::open(&boot.file).map_err(|e| format!("open {}: {e}", boot.host_path))?;
    let boot_fs = fatfs::FileSystem::new(
        ReadOnly(FileRegion::new(&boot_file, boot.offset.get(), boot.size.get())),
        fatfs::FsOptions::new(),
    )
    .map_err(|e| format!("resin-boot {}: {e}", boot.host_path))?;
    let mut written = Vec::new();
    {
        let fs = fatfs::FileSystem::new(
            FileRegion::new(&file, spare.offset.get(), spare.size.get()),
            fatfs::FsOptions::new(),
        )
        .map_err(|e| format!("{} as FAT: {e}", spare.host_path))?;
        let root = fs.root_dir();
        let fail = |what: &str, name: &str, e: std::io::Error| format!("{what} {name}: {e}");
        for (name, source) in files {
            let mut parent = String::new();
            for part in name.split('/').rev().skip(1).collect::<Vec<_>>().into_iter().rev() {
                parent =
                    if parent.is_empty() { part.to_string() } else { format!("{parent}/{part}") };
                if root.open_dir(&parent).is_err() {
                    root.create_dir(&parent).map_err(|e| fail("create", &parent, e))?;
                }
            }
            let temp = format!("{name}.swapover-new");
            let mut out = root.create_file(&temp).map_err(|e| fail("create", &temp, e))?;
            out.truncate().map_err(|e| fail("truncate", &temp, e))?;
            let mut hasher = Sha256::new();
            let mut copy = |reader: &mut dyn Read| -> Result<(), String> {
                let mut buf = vec![0u8; 1024 * 1024];
                loop {
                    let n = match reader.read(&mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(format!("read the source of {name}: {e}")),
                    };
                    hasher.update(&buf[..n]);
                    out.write_all(&buf[..n]).map_err(|e| fail("write", &temp, e))?;
                }
            };
            match source {
                Source::Boot => {
                    let mut from = boot_fs
                        .root_dir()
                        .open_file(name)
                        .map_err(|e| format!("resin-boot's {name}: {e}"))?;
                    copy(&mut from)?;
                }
                Source::Path(path) => {
                    let mut from = std::fs::File::open(path)
                        .map_err(|e| format!("open {}: {e}", path.display()))?;
                    copy(&mut from)?;
                }
                Source::Bytes(bytes) => copy(&mut &bytes[..])?,
            }
            out.flush().map_err(|e| fail("flush", &temp, e))?;
            drop(out);
            if root.open_file(name).is_ok() {
                root.remove(name).map_err(|e| fail("remove", name, e))?;
            }
            root.rename(&temp, &root, name).map_err(|e| fail("rename", &temp, e))?;
            written.push((name.clone(), hex::encode(hasher.finalize())));
        }
        drop(root);
        fs.unmount().map_err(|e| format!("close the FAT on {}: {e}", spare.host_path))?;
    }
    let mut region = FileRegion::new(&file, spare.offset.get(), spare.size.get());
    fat_dirs::fix_dot_entries(&mut region)
        .map_err(|e| format!("directories of the FAT on {}: {e}", spare.host_path))?;
    file.sync_all().map_err(|e| format!("fsync {}: {e}", spare.host_path))?;
    let fs = fatfs::FileSystem::new(
        ReadOnly(FileRegion::new(&file, spare.offset.get(), spare.size.get())),
        fatfs::FsOptions::new(),
    )
    .map_err(|e| format!("{} as FAT: {e}", spare.host_path))?;
    for (name, sha) in &written {
        let mut from =
            fs.root_dir().open_file(name).map_err(|e| format!("read back {name}: {e}"))?;
        let back = sha256_of(&mut from).map_err(|e| format!("read back {name}: {e}"))?;
        if back != *sha {
            return Err(format!(
                "{name} reads back from {} with sha256 {back}, but {sha} was written; the card may be failing",
                spare.host_path
            ));
        }
    }
    Ok(written)
}

fn sha256_of(reader: &mut dyn Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(hex::encode(hasher.finalize())),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

const MBR_ENTRIES: u64 = 0x1be;

fn type_offset(number: u32) -> Result<u64, String> {
    if !(1..=4).contains(&number) {
        return Err(format!("partition {number} is not a primary MBR partition"));
    }
    Ok(MBR_ENTRIES + 16 * u64::from(number - 1) + 4)
}

/// The MBR type byte of primary partition `number` of `disk`.
pub fn partition_type(disk: &Path, number: u32) -> Result<u8, String> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(disk).map_err(|e| format!("open {}: {e}", disk.display()))?;
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, type_offset(number)?)
        .map_err(|e| format!("read the MBR of {}: {e}", disk.display()))?;
    Ok(byte[0])
}

/// Sets the MBR type byte of primary partition `number` of `disk` and fsyncs the disk.
pub fn set_partition_type(disk: &Path, number: u32, byte: u8) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(disk)
        .map_err(|e| format!("open {}: {e}", disk.display()))?;
    file.write_all_at(&[byte], type_offset(number)?)
        .map_err(|e| format!("write the MBR of {}: {e}", disk.display()))?;
    file.sync_all().map_err(|e| format!("fsync {}: {e}", disk.display()))
}

/// Writes `value` to the kernel's `reboot_part` parameter at `path`, when it exists.
pub fn write_reboot_part(path: &Path, value: u32) -> Result<bool, String> {
    if !path.exists() {
        return Ok(false);
    }
    std::fs::write(path, format!("{value}\n"))
        .map(|()| true)
        .map_err(|e| format!("write {value} to {}: {e}", path.display()))
}

/// The running kernel's (major, minor) from an `osrelease` text like `4.1.23-resin`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Refuses when the partition cannot be named to the firmware: no `reboot_part` parameter
/// and a kernel older than [`RESTART2_FROM`] (or one whose version cannot be read).
pub fn check_arming(reboot_part: &Path, release: Option<&str>) -> Result<(), Refusal1x> {
    if reboot_part.exists() {
        return Ok(());
    }
    match release.and_then(kernel_version) {
        Some(version) if version >= RESTART2_FROM => Ok(()),
        _ => Err(Refusal1x::NotReady(format!(
            "{} does not exist and the running kernel ({}) is older than {}.{}, so nothing tells the GPU firmware to boot the trial partition once; update resinOS 1.x to a release whose kernel has that parameter",
            reboot_part.display(),
            release.map(str::trim).unwrap_or("version unknown"),
            RESTART2_FROM.0,
            RESTART2_FROM.1
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_gives_fat32_or_nothing() {
        assert_eq!(fat32_geometry(Bytes(20 * 1024 * 1024)), None);
        let g = fat32_geometry(Bytes(40 * 1024 * 1024)).unwrap();
        assert_eq!(g.bytes_per_cluster, 512);
        assert!(g.clusters >= FAT32_MIN_CLUSTERS);
        assert_eq!(fat32_geometry(Bytes(312 * 1024 * 1024)).unwrap().bytes_per_cluster, 4096);
    }

    #[test]
    fn versions_and_ids() {
        assert_eq!(kernel_version("4.1.23-resin\n"), Some((4, 1)));
        assert_eq!(kernel_version("6.1.0-13-armmp"), Some((6, 1)));
        assert_eq!(volume_id_text(0x1234_abcd), "1234-ABCD");
    }
}
