//! Repair of a known `fatfs` 0.3.6 defect (rafalh/rust-fatfs#117): `create_dir`
//! writes a long-name entry before `.` and before `..`, so a new directory starts
//! `[LFN, ., LFN, ..]` where FAT requires `.` and `..` in its first two slots
//! (fsck.fat "Expected a valid '.' entry in this slot").
//!
//! [`repair_dot_entries`] scans the root directory of a FAT12/16/32 volume and,
//! for each subdirectory whose first four slots have exactly that shape, rewrites
//! them as `[., .., deleted, deleted]`. Anything else is left alone, so the repair
//! is safe to run on any volume and idempotent. On FAT32 it also points such a
//! directory's `..` at cluster 0, as FAT requires for the root (rust-fatfs#99).

use std::io::{self, Read, Seek, SeekFrom, Write};

const ENTRY: usize = 32;
const ATTR_LFN: u8 = 0x0f;
const ATTR_DIRECTORY: u8 = 0x10;
const ATTR_VOLUME_ID: u8 = 0x08;
const DELETED: u8 = 0xe5;
const DOT: &[u8; 11] = b".          ";
const DOTDOT: &[u8; 11] = b"..         ";

/// The geometry fields of the boot sector this repair needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    bytes_per_sector: u64,
    sectors_per_cluster: u64,
    reserved_sectors: u64,
    fats: u64,
    fat_sectors: u64,
    root_entries: u64,
    /// FAT32 only: first cluster of the root directory.
    root_cluster: Option<u32>,
}

fn le16(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn le32(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("not a FAT volume: {what}"))
}

impl Geometry {
    fn read(boot: &[u8; 512]) -> io::Result<Geometry> {
        let bytes_per_sector = le16(boot, 11);
        let sectors_per_cluster = u64::from(boot[13]);
        let reserved_sectors = le16(boot, 14);
        let fats = u64::from(boot[16]);
        let root_entries = le16(boot, 17);
        let total = match le16(boot, 19) {
            0 => le32(boot, 32),
            n => n,
        };
        let fat16_size = le16(boot, 22);
        let fat_sectors = if fat16_size != 0 { fat16_size } else { le32(boot, 36) };
        if ![512, 1024, 2048, 4096].contains(&bytes_per_sector)
            || sectors_per_cluster == 0
            || fats == 0
            || fat_sectors == 0
        {
            return Err(invalid("bad BPB"));
        }
        let root_dir_sectors = (root_entries * ENTRY as u64).div_ceil(bytes_per_sector);
        let data_sectors = total
            .checked_sub(reserved_sectors + fats * fat_sectors + root_dir_sectors)
            .ok_or_else(|| invalid("data area before its start"))?;
        let clusters = data_sectors / sectors_per_cluster;
        let root_cluster = (clusters >= 65_525).then(|| le32(boot, 44) as u32);
        Ok(Geometry {
            bytes_per_sector,
            sectors_per_cluster,
            reserved_sectors,
            fats,
            fat_sectors,
            root_entries,
            root_cluster,
        })
    }

    fn root_dir_offset(&self) -> u64 {
        (self.reserved_sectors + self.fats * self.fat_sectors) * self.bytes_per_sector
    }

    fn data_offset(&self) -> u64 {
        self.root_dir_offset()
            + (self.root_entries * ENTRY as u64).div_ceil(self.bytes_per_sector)
                * self.bytes_per_sector
    }

    fn cluster_bytes(&self) -> u64 {
        self.sectors_per_cluster * self.bytes_per_sector
    }

    fn cluster_offset(&self, cluster: u32) -> u64 {
        self.data_offset() + u64::from(cluster.saturating_sub(2)) * self.cluster_bytes()
    }
}

/// The root directory's raw entries (FAT32: following its cluster chain).
fn read_root<V: Read + Seek>(volume: &mut V, geo: &Geometry) -> io::Result<Vec<u8>> {
    let Some(mut cluster) = geo.root_cluster else {
        let mut root = vec![0u8; (geo.root_entries as usize) * ENTRY];
        volume.seek(SeekFrom::Start(geo.root_dir_offset()))?;
        volume.read_exact(&mut root)?;
        return Ok(root);
    };
    let mut root = Vec::new();
    for _ in 0..4096 {
        let mut buf = vec![0u8; geo.cluster_bytes() as usize];
        volume.seek(SeekFrom::Start(geo.cluster_offset(cluster)))?;
        volume.read_exact(&mut buf)?;
        root.extend_from_slice(&buf);
        let mut next = [0u8; 4];
        volume.seek(SeekFrom::Start(
            geo.reserved_sectors * geo.bytes_per_sector + u64::from(cluster) * 4,
        ))?;
        volume.read_exact(&mut next)?;
        cluster = u32::from_le_bytes(next) & 0x0fff_ffff;
        if !(2..0x0fff_fff8).contains(&cluster) {
            break;
        }
    }
    Ok(root)
}

/// Whether four directory slots have the `[LFN, ., LFN, ..]` shape.
fn has_lfn_dots(slots: &[u8]) -> bool {
    slots.len() >= 4 * ENTRY
        && slots[11] == ATTR_LFN
        && &slots[ENTRY..ENTRY + 11] == DOT
        && slots[2 * ENTRY + 11] == ATTR_LFN
        && &slots[3 * ENTRY..3 * ENTRY + 11] == DOTDOT
}

/// `[., .., deleted, deleted]` from `[LFN, ., LFN, ..]`.
fn fixed_slots(slots: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 4 * ENTRY];
    out[..ENTRY].copy_from_slice(&slots[ENTRY..2 * ENTRY]);
    out[ENTRY..2 * ENTRY].copy_from_slice(&slots[3 * ENTRY..4 * ENTRY]);
    out[2 * ENTRY] = DELETED;
    out[3 * ENTRY] = DELETED;
    out
}

/// On FAT32, `..` of a first-level directory must say cluster 0 (the root), not the
/// root's actual cluster (rust-fatfs#99, also in 0.3.6).
fn point_dotdot_at_root(slots: &mut [u8], root_cluster: u32) {
    let dotdot = &mut slots[ENTRY..2 * ENTRY];
    let cluster = ((le16(dotdot, 20) << 16) | le16(dotdot, 26)) as u32;
    if &dotdot[..11] == DOTDOT && cluster == root_cluster {
        dotdot[20..22].fill(0);
        dotdot[26..28].fill(0);
    }
}

/// Repair the root's subdirectories (see the module docs). Returns how many were fixed.
pub fn repair_dot_entries<V: Read + Write + Seek>(volume: &mut V) -> io::Result<usize> {
    let mut boot = [0u8; 512];
    volume.seek(SeekFrom::Start(0))?;
    volume.read_exact(&mut boot)?;
    let geo = Geometry::read(&boot)?;
    let root = read_root(volume, &geo)?;
    let mut fixed = 0;
    for entry in root.chunks_exact(ENTRY) {
        match entry[0] {
            0 => break,
            DELETED => continue,
            _ => {}
        }
        let attr = entry[11];
        if attr == ATTR_LFN
            || attr & ATTR_VOLUME_ID != 0
            || attr & ATTR_DIRECTORY == 0
            || entry[0] == b'.'
        {
            continue;
        }
        let high = if geo.root_cluster.is_some() { le16(entry, 20) << 16 } else { 0 };
        let cluster = (high | le16(entry, 26)) as u32;
        if cluster < 2 {
            continue;
        }
        let at = geo.cluster_offset(cluster);
        let mut slots = vec![0u8; 4 * ENTRY];
        volume.seek(SeekFrom::Start(at))?;
        volume.read_exact(&mut slots)?;
        let mut repaired = if has_lfn_dots(&slots) { fixed_slots(&slots) } else { slots.clone() };
        if let Some(root_cluster) = geo.root_cluster {
            point_dotdot_at_root(&mut repaired, root_cluster);
        }
        if repaired != slots {
            volume.seek(SeekFrom::Start(at))?;
            volume.write_all(&repaired)?;
            fixed += 1;
        }
    }
    volume.flush()?;
    Ok(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bad_shape_is_rewritten() {
        let mut bad = vec![0u8; 4 * ENTRY];
        bad[11] = ATTR_LFN;
        bad[ENTRY..ENTRY + 11].copy_from_slice(DOT);
        bad[ENTRY + 11] = ATTR_DIRECTORY;
        bad[2 * ENTRY + 11] = ATTR_LFN;
        bad[3 * ENTRY..3 * ENTRY + 11].copy_from_slice(DOTDOT);
        bad[3 * ENTRY + 11] = ATTR_DIRECTORY;
        assert!(has_lfn_dots(&bad));
        let good = fixed_slots(&bad);
        assert_eq!(&good[..11], DOT);
        assert_eq!(&good[ENTRY..ENTRY + 11], DOTDOT);
        assert_eq!((good[2 * ENTRY], good[3 * ENTRY]), (DELETED, DELETED));
        assert!(!has_lfn_dots(&good), "a repaired directory is left alone");
    }
}
