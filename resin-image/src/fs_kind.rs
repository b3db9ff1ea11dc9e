//! [`detect_fs`]: which file system a partition holds, from its first bytes, the way blkid
//! tells them (superblock magics and, for ext2/3/4, the feature flags). Needs no other crate,
//! so it is available without the `downloads` feature.

use plan::FsType;

/// Offset of the ext2/3/4 superblock.
const EXT_SUPERBLOCK: usize = 1024;
/// Offset of the btrfs superblock; its magic `_BHRfS_M` sits 64 bytes into it.
const BTRFS_SUPERBLOCK: usize = 64 * 1024;
const BTRFS_MAGIC: &[u8] = b"_BHRfS_M";
const BTRFS_MAGIC_AT: usize = BTRFS_SUPERBLOCK + 64;
/// Page sizes a swap signature may be written for (it ends the first page).
const SWAP_PAGE_SIZES: [usize; 5] = [4096, 8192, 16384, 32768, 65536];

/// Bytes from a partition's start [`detect_fs`] needs to see everything it looks at (the
/// btrfs magic's end, past the 64 KiB swap page's signature).
pub const FS_PROBE_BYTES: usize = BTRFS_MAGIC_AT + BTRFS_MAGIC.len();

// ext feature flags (linux/fs/ext4/ext4.h), as blkid's ext probes use them.
const EXT_MAGIC: u16 = 0xEF53;
const COMPAT_HAS_JOURNAL: u32 = 0x0004;
const INCOMPAT_FILETYPE: u32 = 0x0002;
const INCOMPAT_RECOVER: u32 = 0x0004;
const INCOMPAT_JOURNAL_DEV: u32 = 0x0008;
const INCOMPAT_META_BG: u32 = 0x0010;
const RO_COMPAT_SPARSE_SUPER: u32 = 0x0001;
const RO_COMPAT_LARGE_FILE: u32 = 0x0002;
const RO_COMPAT_BTREE_DIR: u32 = 0x0004;
/// Incompat features ext3 knows; any other (extents, 64bit, flex_bg, …) makes it ext4.
const EXT3_INCOMPAT: u32 = INCOMPAT_FILETYPE | INCOMPAT_RECOVER | INCOMPAT_META_BG;
/// Read-only-compat features ext3 knows; any other (huge_file, dir_nlink, extra_isize,
/// metadata_csum, …) makes it ext4.
const EXT3_RO_COMPAT: u32 = RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_BTREE_DIR;

/// The file system a partition's first bytes hold: ext2/3/4 by the superblock magic 0xEF53
/// at 1024+56 and feature flags (ext4 when it uses a feature ext3 lacks, ext3 with a
/// journal, else ext2; an external journal device is none of them), btrfs by `_BHRfS_M` at
/// 64 KiB+64, swap by `SWAPSPACE2` ending the first page, vfat by its boot sector; `None`
/// when nothing is recognised. Give it the first [`FS_PROBE_BYTES`] bytes (fewer only when
/// the partition is smaller; what lies beyond the input is not looked at).
pub fn detect_fs(first_bytes: &[u8]) -> Option<FsType> {
    ext(first_bytes)
        .or_else(|| btrfs(first_bytes))
        .or_else(|| swap(first_bytes))
        .or_else(|| vfat(first_bytes))
}

/// Bytes from a partition's start [`ext_uuid`] needs: through the superblock's UUID field.
pub const EXT_UUID_BYTES: usize = EXT_SUPERBLOCK + EXT_UUID_AT + 16;
/// Offset of the file system UUID inside the ext superblock.
const EXT_UUID_AT: usize = 0x68;

/// The UUID of the ext2/3/4 file system whose first bytes these are (superblock at 1024,
/// magic 0xEF53 at +56, UUID at +104), as blkid prints it: lower-case `8-4-4-4-12` hex.
/// `None` without the magic, or when fewer than [`EXT_UUID_BYTES`] bytes are given.
pub fn ext_uuid(first_bytes: &[u8]) -> Option<String> {
    let sb = first_bytes.get(EXT_SUPERBLOCK..EXT_SUPERBLOCK + EXT_UUID_AT + 16)?;
    if le16(sb, 0x38)? != EXT_MAGIC {
        return None;
    }
    let hex: String = sb[EXT_UUID_AT..].iter().map(|b| format!("{b:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// The volume serial of the FAT file system whose first bytes these are, as blkid prints it
/// (`XXXX-XXXX`, upper-case hex, high half first): the boot sector's serial field at 67
/// (FAT32, type field `FAT32` at 82) or 39 (FAT12/16). `None` when [`detect_fs`] would not
/// call the bytes vfat.
pub fn fat_volume_id(first_bytes: &[u8]) -> Option<String> {
    vfat(first_bytes)?;
    let serial_at = if first_bytes[82..87] == *b"FAT32" { 67 } else { 39 };
    let serial = le32(first_bytes, serial_at)?;
    Some(format!("{:04X}-{:04X}", serial >> 16, serial & 0xffff))
}

fn le16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn ext(bytes: &[u8]) -> Option<FsType> {
    let sb = bytes.get(EXT_SUPERBLOCK..EXT_SUPERBLOCK + 1024)?;
    if le16(sb, 0x38)? != EXT_MAGIC {
        return None;
    }
    let compat = le32(sb, 0x5C)?;
    let incompat = le32(sb, 0x60)?;
    let ro_compat = le32(sb, 0x64)?;
    if incompat & INCOMPAT_JOURNAL_DEV != 0 {
        return None;
    }
    if incompat & !EXT3_INCOMPAT != 0 || ro_compat & !EXT3_RO_COMPAT != 0 {
        Some(FsType::Ext4)
    } else if compat & COMPAT_HAS_JOURNAL != 0 {
        Some(FsType::Ext3)
    } else {
        Some(FsType::Ext2)
    }
}

fn btrfs(bytes: &[u8]) -> Option<FsType> {
    (bytes.get(BTRFS_MAGIC_AT..BTRFS_MAGIC_AT + BTRFS_MAGIC.len())? == BTRFS_MAGIC)
        .then_some(FsType::Btrfs)
}

fn swap(bytes: &[u8]) -> Option<FsType> {
    SWAP_PAGE_SIZES
        .iter()
        .filter_map(|&page| bytes.get(page - 10..page))
        .any(|sig| sig == b"SWAPSPACE2" || sig == b"SWAP-SPACE")
        .then_some(FsType::Swap)
}

/// A FAT boot sector: a jump instruction, a power-of-two sector size and cluster size,
/// reserved sectors, one or more FATs, the 0x55AA signature, and "FAT" in the FAT12/16 or
/// FAT32 file-system-type field.
fn vfat(bytes: &[u8]) -> Option<FsType> {
    let bs = bytes.get(..512)?;
    let jump = bs[0] == 0xE9 || (bs[0] == 0xEB && bs[2] == 0x90);
    let sector_size = le16(bs, 11)?;
    let cluster = bs[13];
    let reserved = le16(bs, 14)?;
    let fats = bs[16];
    let type_field = bs[54..57] == *b"FAT" || bs[82..87] == *b"FAT32";
    let valid = jump
        && matches!(sector_size, 512 | 1024 | 2048 | 4096)
        && cluster.is_power_of_two()
        && reserved > 0
        && fats > 0
        && bs[510..512] == [0x55, 0xAA]
        && type_field;
    valid.then_some(FsType::Vfat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat_volume_id_is_the_serial_as_blkid_prints_it() {
        let dir = tempfile::tempdir().unwrap();
        for (fat, size_mib) in [("32", 40u64), ("16", 8)] {
            let path = dir.path().join(format!("fat{fat}"));
            std::fs::File::create(&path).unwrap().set_len(size_mib << 20).unwrap();
            let made = std::process::Command::new("mkfs.vfat")
                .args(["-F", fat, "-s", "1", "-i", "5a0e3b02", "-n", "RESIN-UPDT"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(made.status.success(), "{made:?}");
            let head = std::fs::read(&path).unwrap();
            assert_eq!(fat_volume_id(&head).as_deref(), Some("5A0E-3B02"), "FAT{fat}");
            assert_eq!(ext_uuid(&head), None);
        }
        assert_eq!(fat_volume_id(&[0u8; 4096]), None);
        assert_eq!(fat_volume_id(&[0u8; 100]), None, "too short");
    }

    #[test]
    fn ext_uuid_reads_the_superblock_field() {
        let mut head = vec![0u8; EXT_UUID_BYTES];
        assert_eq!(ext_uuid(&head), None, "no magic");
        head[1024 + 0x38..1024 + 0x3a].copy_from_slice(&EXT_MAGIC.to_le_bytes());
        head[1024 + 0x68..].copy_from_slice(&[
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ]);
        assert_eq!(ext_uuid(&head).as_deref(), Some("12345678-9abc-def0-0123-456789abcdef"));
        assert_eq!(ext_uuid(&head[..EXT_UUID_BYTES - 1]), None, "too short");
    }

    #[test]
    fn probe_length_covers_the_btrfs_magic() {
        assert_eq!(FS_PROBE_BYTES, 65608);
    }

    #[test]
    fn short_or_empty_input_is_none() {
        assert_eq!(detect_fs(&[]), None);
        assert_eq!(detect_fs(&[0u8; 100]), None);
    }
}
