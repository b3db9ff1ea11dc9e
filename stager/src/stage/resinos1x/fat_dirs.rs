//! A repair after `fatfs` 0.3.6 creates directories: its `Dir::create_dir` writes the `.`
//! and `..` entries each preceded by a long-file-name entry (its `write_entry` makes an LFN
//! for any name that is not a valid 8.3 name, dots included), so `.` is not in the
//! directory's first slot and `..` not in its second, as the FAT specification requires
//! (Microsoft FAT32 File System Specification 1.03, "FAT Directory Structure": the dot
//! entries are the first two of every directory but the root); `fsck.fat -n` reports them.
//! This moves the two short entries into slots 0 and 1 and marks the slots after them
//! deleted, in every directory of a FAT32 whose first slot is an LFN before a `.` entry.
//!
//! [`pregrow_root`] works round a second fatfs 0.3.6 gap: it zeroes a new cluster for a
//! subdirectory but not when the root directory grows (the root has no entry saying it is
//! a directory), so the root's second cluster would hold whatever the partition held there
//! before (the old ext3's blocks, or an earlier trial's files), read as directory entries.
//!
//! It also gives `..` of a directory in the root the cluster 0 the specification requires
//! there (fatfs writes the root's cluster number). Only those first slots are touched.

use std::io::{self, Read, Seek, SeekFrom, Write};

const ENTRY: usize = 32;
const ATTR: usize = 11;
const ATTR_LFN: u8 = 0x0f;
const ATTR_DIR: u8 = 0x10;
const DELETED: u8 = 0xe5;
const DOT: &[u8; 11] = b".          ";
const DOTDOT: &[u8; 11] = b"..         ";
const END_OF_CHAIN: u32 = 0x0fff_fff8;

/// Where a FAT32's parts are, from its boot sector.
pub struct Geometry {
    pub cluster_bytes: u64,
    fat_start: u64,
    /// Cluster 2's offset.
    pub data_start: u64,
    root: u32,
}

fn u16_at(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn geometry<D: Read + Seek>(disk: &mut D) -> io::Result<Geometry> {
    let mut boot = [0u8; 512];
    disk.seek(SeekFrom::Start(0))?;
    disk.read_exact(&mut boot)?;
    let sector = u16_at(&boot, 11);
    let per_cluster = u64::from(boot[13]);
    let reserved = u16_at(&boot, 14);
    let fats = u64::from(boot[16]);
    let per_fat = u64::from(u32_at(&boot, 36));
    if sector == 0 || per_cluster == 0 || per_fat == 0 {
        return Err(io::Error::other("not a FAT32 boot sector"));
    }
    Ok(Geometry {
        cluster_bytes: sector * per_cluster,
        fat_start: reserved * sector,
        data_start: (reserved + fats * per_fat) * sector,
        root: u32_at(&boot, 44),
    })
}

fn cluster_offset(g: &Geometry, cluster: u32) -> u64 {
    g.data_start + u64::from(cluster.saturating_sub(2)) * g.cluster_bytes
}

/// The clusters of the chain starting at `first` (at most `limit`, against loops).
fn chain<D: Read + Seek>(disk: &mut D, g: &Geometry, first: u32) -> io::Result<Vec<u32>> {
    let mut out = Vec::new();
    let mut cluster = first;
    while (2..END_OF_CHAIN).contains(&cluster) && out.len() < 1 << 20 {
        out.push(cluster);
        let mut next = [0u8; 4];
        disk.seek(SeekFrom::Start(g.fat_start + u64::from(cluster) * 4))?;
        disk.read_exact(&mut next)?;
        cluster = u32::from_le_bytes(next) & 0x0fff_ffff;
    }
    Ok(out)
}

/// Repairs every directory below the root (see the module text).
pub fn fix_dot_entries<D: Read + Write + Seek>(disk: &mut D) -> io::Result<()> {
    let g = geometry(disk)?;
    // (first cluster, is the root, its parent is the root)
    let mut pending = vec![(g.root, true, false)];
    let mut seen = 0usize;
    while let Some((first, is_root, in_root)) = pending.pop() {
        seen += 1;
        if seen > 1 << 16 {
            return Err(io::Error::other("too many directories"));
        }
        let clusters = chain(disk, &g, first)?;
        let mut bytes = Vec::new();
        for cluster in &clusters {
            let mut part = vec![0u8; g.cluster_bytes as usize];
            disk.seek(SeekFrom::Start(cluster_offset(&g, *cluster)))?;
            disk.read_exact(&mut part)?;
            bytes.extend(part);
        }
        if !is_root && bytes.len() >= 4 * ENTRY && needs_fix(&bytes) {
            let mut head = [0u8; 4 * ENTRY];
            head[..ENTRY].copy_from_slice(&bytes[ENTRY..2 * ENTRY]);
            head[ENTRY..2 * ENTRY].copy_from_slice(&bytes[3 * ENTRY..4 * ENTRY]);
            head[2 * ENTRY] = DELETED;
            head[3 * ENTRY] = DELETED;
            // The deleted slots must not read as the directory's end (a zero first byte).
            disk.seek(SeekFrom::Start(cluster_offset(&g, first)))?;
            disk.write_all(&head)?;
            bytes[..4 * ENTRY].copy_from_slice(&head);
        }
        let dotdot = ENTRY..2 * ENTRY;
        if in_root && bytes.len() >= 2 * ENTRY && &bytes[dotdot.start..dotdot.start + 11] == DOTDOT
        {
            let entry = &mut bytes[dotdot.clone()];
            if entry[20..22] != [0, 0] || entry[26..28] != [0, 0] {
                entry[20..22].copy_from_slice(&[0, 0]);
                entry[26..28].copy_from_slice(&[0, 0]);
                disk.seek(SeekFrom::Start(cluster_offset(&g, first) + ENTRY as u64))?;
                disk.write_all(entry)?;
            }
        }
        for entry in bytes.chunks_exact(ENTRY) {
            if entry[0] == 0 {
                break;
            }
            let is_dir = entry[ATTR] != ATTR_LFN && entry[ATTR] & ATTR_DIR != 0;
            if entry[0] == DELETED || !is_dir || &entry[..11] == DOT || &entry[..11] == DOTDOT {
                continue;
            }
            let cluster = (u32::from(u16::from_le_bytes([entry[20], entry[21]])) << 16)
                | u32::from(u16::from_le_bytes([entry[26], entry[27]]));
            pending.push((cluster, false, is_root));
        }
    }
    disk.flush()
}

fn needs_fix(bytes: &[u8]) -> bool {
    let slot = |n: usize| &bytes[n * ENTRY..(n + 1) * ENTRY];
    slot(0)[ATTR] == ATTR_LFN
        && &slot(1)[..11] == DOT
        && slot(2)[ATTR] == ATTR_LFN
        && &slot(3)[..11] == DOTDOT
}

/// Root directory slots made before anything else is written (see the module text).
pub const ROOT_SLOTS: u64 = 256;

/// Grows the root directory of a freshly formatted FAT32 to [`ROOT_SLOTS`] entries over
/// zeroed clusters: the clusters after the root's first (the next free ones of a new FAT)
/// are zeroed, then as many empty 8.3-named files are made (one slot each) and removed.
pub fn pregrow_root(file: &std::fs::File, offset: u64, len: u64) -> io::Result<()> {
    use crate::stage::prepare::boot_fat::FileRegion;
    use std::os::unix::fs::FileExt;
    let g = geometry(&mut FileRegion::new(file, offset, len))?;
    let bytes = (ROOT_SLOTS * ENTRY as u64).div_ceil(g.cluster_bytes) * g.cluster_bytes;
    // From cluster 3: cluster 2, the root's first, holds the volume label's entry.
    let zeros = vec![0u8; (bytes + g.cluster_bytes) as usize];
    file.write_all_at(&zeros, offset + g.data_start + g.cluster_bytes)?;
    let fs = fatfs::FileSystem::new(FileRegion::new(file, offset, len), fatfs::FsOptions::new())?;
    {
        let root = fs.root_dir();
        let names: Vec<String> = (0..ROOT_SLOTS).map(|i| format!("SWO{i:05}.TMP")).collect();
        for name in &names {
            root.create_file(name)?;
        }
        for name in &names {
            root.remove(name)?;
        }
    }
    fs.unmount()?;
    file.sync_all()
}
