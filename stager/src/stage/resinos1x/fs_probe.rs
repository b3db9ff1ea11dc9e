//! Which file system a partition holds, with its label and UUID, from its first 68 KiB:
//! enough to tell resinOS 1.x's partitions apart by label (MBR entries have no names).
//!
//! Where each format keeps these (little-endian on disk):
//! - ext2/3/4: superblock at byte 1024; free blocks at +12 (and +0x158 for the high half
//!   with the 64bit feature), log2(block size / 1024) at +24; magic 0xEF53 at +56, compat features at +92
//!   (0x4 has_journal), incompat features at +96 (0x40 extents, 0x80 64bit, 0x200 flex_bg:
//!   ext4), UUID at +104, volume name at +120 (16 bytes) — e2fsprogs' `ext2_fs.h`.
//! - btrfs: superblock at 64 KiB; fsid at +0x20, magic `_BHRfS_M` at +0x40, label at
//!   +0x12b (256 bytes) — the kernel's `btrfs_tree.h`.
//! - FAT: boot signature 0x55 0xAA at 510; FAT32 has `FAT32   ` at 82, serial at 67 and
//!   label at 71; FAT12/16 have the serial at 39 and label at 43 (11 bytes, space padded).
//! - swap: `SWAPSPACE2` ending the first 4 KiB page, UUID at 1024+12, label at 1024+28.

use plan::{Bytes, FsType};

/// Bytes of a partition's start that [`probe`] looks at.
pub const PROBE_BYTES: usize = 0x10000 + 0x1000;

/// What [`probe`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsFacts {
    pub fs: FsType,
    /// The volume label, trailing padding removed; empty when unset.
    pub label: String,
    /// UUID as blkid prints it (FAT: the volume serial as `XXXX-XXXX`).
    pub uuid: String,
    /// Free space the superblock counts (ext2/3/4 only; reserved blocks included, as root
    /// writes the staging files).
    pub free: Option<Bytes>,
}

fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim_end_matches(' ').to_string()
}

fn uuid_text(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn le16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The file system at the start of `head` (a partition's first [`PROBE_BYTES`] or fewer).
pub fn probe(head: &[u8]) -> Option<FsFacts> {
    probe_btrfs(head)
        .or_else(|| probe_ext(head))
        .or_else(|| probe_swap(head))
        .or_else(|| probe_fat(head))
}

fn probe_ext(head: &[u8]) -> Option<FsFacts> {
    let sb = head.get(1024..1024 + 136)?;
    if le16(sb, 56) != 0xEF53 {
        return None;
    }
    let (compat, incompat) = (le32(sb, 92), le32(sb, 96));
    let fs = if incompat & (0x40 | 0x80 | 0x200) != 0 {
        FsType::Ext4
    } else if compat & 0x4 != 0 {
        FsType::Ext3
    } else {
        FsType::Ext2
    };
    let log_block = le32(sb, 24);
    let high = match incompat & 0x80 {
        0 => Some(0),
        _ => head.get(1024 + 0x158..1024 + 0x15c).map(|b| le32(b, 0)),
    };
    let free = match (log_block, high) {
        (0..=6, Some(high)) => {
            let blocks = (u64::from(high) << 32) | u64::from(le32(sb, 12));
            blocks.checked_mul(1024u64 << log_block).map(Bytes)
        }
        _ => None,
    };
    Some(FsFacts { fs, label: text(&sb[120..136]), uuid: resin_image::ext_uuid(head)?, free })
}

fn probe_btrfs(head: &[u8]) -> Option<FsFacts> {
    let sb = head.get(0x10000..0x10000 + 0x12b + 256)?;
    if &sb[0x40..0x48] != b"_BHRfS_M" {
        return None;
    }
    Some(FsFacts {
        fs: FsType::Btrfs,
        label: text(&sb[0x12b..0x12b + 256]),
        uuid: uuid_text(&sb[0x20..0x30]),
        free: None,
    })
}

fn probe_swap(head: &[u8]) -> Option<FsFacts> {
    let page = head.get(..4096)?;
    if &page[4086..4096] != b"SWAPSPACE2" {
        return None;
    }
    Some(FsFacts {
        fs: FsType::Swap,
        label: text(&page[1024 + 28..1024 + 44]),
        uuid: uuid_text(&page[1024 + 12..1024 + 28]),
        free: None,
    })
}

fn probe_fat(head: &[u8]) -> Option<FsFacts> {
    let boot = head.get(..512)?;
    if boot[510..512] != [0x55, 0xAA] {
        return None;
    }
    let (serial_at, label_at) = if &boot[82..87] == b"FAT32" {
        (67, 71)
    } else if &boot[54..57] == b"FAT" {
        (39, 43)
    } else {
        return None;
    };
    let serial = le32(boot, serial_at);
    let label = text(&boot[label_at..label_at + 11]);
    let label = if label == "NO NAME" { String::new() } else { label };
    Some(FsFacts {
        fs: FsType::Vfat,
        label,
        uuid: format!("{:04X}-{:04X}", serial >> 16, serial & 0xffff),
        free: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_found_in_zeroes_or_short_input() {
        assert_eq!(probe(&vec![0u8; PROBE_BYTES]), None);
        assert_eq!(probe(&[0u8; 100]), None);
    }

    #[test]
    fn ext_generation_follows_the_feature_flags() {
        let mut head = vec![0u8; PROBE_BYTES];
        head[1024 + 56..1024 + 58].copy_from_slice(&0xEF53u16.to_le_bytes());
        head[1024 + 120..1024 + 130].copy_from_slice(b"resin-root");
        assert_eq!(
            probe(&head).map(|f| (f.fs, f.label)),
            Some((FsType::Ext2, "resin-root".to_string()))
        );
        head[1024 + 92] = 0x4;
        assert_eq!(probe(&head).map(|f| f.fs), Some(FsType::Ext3));
        head[1024 + 96] = 0x40;
        assert_eq!(probe(&head).map(|f| f.fs), Some(FsType::Ext4));
    }

    #[test]
    fn ext_free_space_is_free_blocks_times_block_size() {
        let mut head = vec![0u8; PROBE_BYTES];
        head[1024 + 56..1024 + 58].copy_from_slice(&0xEF53u16.to_le_bytes());
        head[1024 + 12..1024 + 16].copy_from_slice(&1000u32.to_le_bytes());
        head[1024 + 24] = 2; // 4 KiB blocks
        assert_eq!(probe(&head).and_then(|f| f.free), Some(Bytes(4_096_000)));
        head[1024 + 96] = 0x80; // 64bit: the high half counts
        head[1024 + 0x158] = 1;
        assert_eq!(probe(&head).and_then(|f| f.free), Some(Bytes(((1u64 << 32) + 1000) * 4096)));
        head[1024 + 24] = 40; // nonsense block size
        assert_eq!(probe(&head).and_then(|f| f.free), None);
    }
}
