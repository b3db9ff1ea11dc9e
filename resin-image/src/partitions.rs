//! The partition table of a disk image: msdos (primary and logical partitions, through the
//! one MBR model, [`disk_layout::PartitionTable`]) or GPT (behind a protective MBR, read
//! here: header at LBA 1, entry array).

use crate::{ByteRange, ImageError, RestartingReader};
use disk_layout::{PartitionTable, GPT_PROTECTIVE};
use plan::Bytes;

const SECTOR: u64 = 512;
/// More GPT entries than this are refused as a damaged header.
const MAX_GPT_ENTRIES: u32 = 1024;

/// One partition of a disk image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// As Linux numbers it: 1–4 primary (msdos) or the GPT entry's index + 1, 5… logical.
    pub number: u32,
    pub start: Bytes,
    pub len: Bytes,
    /// The msdos type byte (`None` on GPT).
    pub mbr_type: Option<u8>,
    /// The GPT partition name (`None` on msdos; file-system labels are read elsewhere).
    pub gpt_name: Option<String>,
}

/// The partitions of the image `reader` reads, in table order, skipping extended
/// containers (msdos types 0x05, 0x0F, 0x85) and empty entries.
pub fn read_partitions(reader: &mut RestartingReader) -> Result<Vec<Partition>, ImageError> {
    let path = reader.path().to_path_buf();
    let mut sector = [0u8; SECTOR as usize];
    reader.read_at(0, &mut sector)?;
    if !crate::is_disk_sector(&sector) {
        return Err(ImageError::NotADiskImage { path });
    }
    let primary_types: Vec<u8> = sector[446..510].chunks(16).map(|e| e[4]).collect();
    if primary_types.contains(&GPT_PROTECTIVE) {
        return read_gpt(reader);
    }
    let mut view = ByteRange::new(&mut *reader, 0, u64::MAX / 2);
    let table = PartitionTable::read_mbr(&mut view, SECTOR).map_err(|e| match e.into_io() {
        Ok(io) => ImageError::from_io(&path, io),
        Err(other) => ImageError::PartitionTable { path: path.clone(), detail: other.to_string() },
    })?;
    Ok(table.all().filter(|p| !p.is_extended()).map(msdos_partition).collect())
}

fn msdos_partition(p: &disk_layout::Partition) -> Partition {
    Partition {
        number: p.number,
        start: Bytes(p.start.0 * SECTOR),
        len: Bytes(p.size.0 * SECTOR),
        mbr_type: Some(p.kind),
        gpt_name: None,
    }
}

/// The primary partitions (msdos entries 1–4 of the first sector, extended containers
/// skipped) or, behind a protective MBR, the GPT partitions. Unlike [`read_partitions`] it
/// never reads the logical partitions' EBRs, which on a flasher lie after rootA: on a
/// compressed image, reaching them means decoding rootA and the inner image in it.
pub fn read_primary_partitions(
    reader: &mut RestartingReader,
) -> Result<Vec<Partition>, ImageError> {
    let path = reader.path().to_path_buf();
    let mut sector = [0u8; SECTOR as usize];
    reader.read_at(0, &mut sector)?;
    if !crate::is_disk_sector(&sector) {
        return Err(ImageError::NotADiskImage { path });
    }
    if sector[446..510].chunks(16).any(|e| e[4] == GPT_PROTECTIVE) {
        return read_gpt(reader);
    }
    let table = PartitionTable::read_primaries(&sector)
        .map_err(|e| ImageError::PartitionTable { path, detail: e.to_string() })?;
    Ok(table
        .primaries
        .iter()
        .filter(|p| !p.is_extended() && p.size.0 != 0)
        .map(msdos_partition)
        .collect())
}

fn read_gpt(reader: &mut RestartingReader) -> Result<Vec<Partition>, ImageError> {
    let path = reader.path().to_path_buf();
    let damaged = |detail: &str| ImageError::PartitionTable {
        path: path.clone(),
        detail: format!("GPT: {detail}"),
    };
    let mut header = [0u8; 92];
    reader.read_at(SECTOR, &mut header)?;
    if &header[0..8] != b"EFI PART" {
        return Err(damaged("no header at LBA 1"));
    }
    let u32_at = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let entries_lba = u64::from_le_bytes(header[72..80].try_into().unwrap_or([0; 8]));
    let count = u32_at(80);
    let entry_size = u32_at(84) as usize;
    if count > MAX_GPT_ENTRIES || !(128..=4096).contains(&entry_size) || entries_lba < 2 {
        return Err(damaged("implausible entry array"));
    }
    let mut array = vec![0u8; count as usize * entry_size];
    reader.read_at(entries_lba * SECTOR, &mut array)?;
    let mut partitions = Vec::new();
    for (index, entry) in array.chunks(entry_size).enumerate() {
        if entry[0..16].iter().all(|&b| b == 0) {
            continue;
        }
        let first = u64::from_le_bytes(entry[32..40].try_into().unwrap_or([0; 8]));
        let last = u64::from_le_bytes(entry[40..48].try_into().unwrap_or([0; 8]));
        if last < first {
            return Err(damaged("a partition ends before it starts"));
        }
        let name: Vec<u16> = entry[56..128]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&c| c != 0)
            .collect();
        partitions.push(Partition {
            number: index as u32 + 1,
            start: Bytes(first * SECTOR),
            len: Bytes((last - first + 1) * SECTOR),
            mbr_type: None,
            gpt_name: Some(String::from_utf16_lossy(&name)),
        });
    }
    Ok(partitions)
}
