//! The partition table resinOS keeps: the image's, with its data partition grown
//! over the freed staging area when the plan says so.

use super::table::{MbrError, Partition, PartitionTable};
use super::units::{Sectors, Sectors512, SECTOR_BYTES};
use super::LayoutError;
use std::io::{Read, Seek, SeekFrom, Write};

/// Largest sector count an MBR entry holds.
const MBR_MAX_SECTORS: u64 = u32::MAX as u64;
/// CHS bytes meaning "beyond CHS range; use LBA".
const CHS_BEYOND: [u8; 3] = [0xfe, 0xff, 0xff];
const ENTRY_TABLE_OFFSET: usize = 446;
const ENTRY_BYTES: usize = 16;

/// What happens to resin-data at finalize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataGrowth {
    /// The staging area is freed: the last partition grows to the end of the disk.
    OverStaging,
    /// Keep the image's table as it is (the profile says why).
    Keep,
}

/// The data partition's growth, when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Growth {
    /// Partition number (Linux numbering) of the grown data partition.
    pub number: u32,
    pub old_end: Sectors,
    pub new_end: Sectors,
}

/// The table to write at finalize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalTable {
    pub table: PartitionTable,
    pub growth: Option<Growth>,
}

/// Compute the final table from the image's full table (see `PartitionTable::read`).
pub fn final_table(
    image: &PartitionTable,
    disk_size: Sectors,
    growth: DataGrowth,
) -> Result<FinalTable, LayoutError> {
    let unchanged = FinalTable { table: image.clone(), growth: None };
    if growth == DataGrowth::Keep {
        return Ok(unchanged);
    }
    let data = last_partition(image).ok_or(LayoutError::NoDataPartition)?;
    if image.end() > disk_size {
        return Err(LayoutError::PastDiskEnd { limit: image.end(), disk_size });
    }
    let new_end = disk_size;
    if new_end == data.end() {
        return Ok(unchanged);
    }
    let mut table = image.clone();
    let grow = |p: &mut Partition| -> Result<(), LayoutError> {
        let size = new_end.saturating_sub(p.start);
        if size.0 > MBR_MAX_SECTORS {
            return Err(LayoutError::BeyondMbr { number: p.number });
        }
        p.size = size;
        Ok(())
    };
    if data.number >= 5 {
        for p in table.primaries.iter_mut().filter(|p| p.is_extended()) {
            grow(p)?;
        }
    }
    for p in table
        .primaries
        .iter_mut()
        .chain(table.logicals.iter_mut())
        .filter(|p| p.number == data.number)
    {
        grow(p)?;
    }
    Ok(FinalTable {
        table,
        growth: Some(Growth { number: data.number, old_end: data.end(), new_end }),
    })
}

/// The partition that reaches furthest and is not the extended container.
fn last_partition(table: &PartitionTable) -> Option<Partition> {
    table.all().filter(|p| !p.is_extended()).max_by_key(|p| p.end()).copied()
}

/// Write the growth into the held-back first sector(s) `head` (extended or primary
/// entry) and into the EBRs on `disk` (the data partition's own entry and the
/// previous EBR's link). Nothing to do when the table did not grow.
pub fn write_growth<D: Read + Write + Seek>(
    final_table: &FinalTable,
    head: &mut [u8],
    disk: &mut D,
) -> Result<(), LayoutError> {
    let Some(growth) = final_table.growth else {
        return Ok(());
    };
    if head.len() < SECTOR_BYTES as usize || head[510..512] != [0x55, 0xaa] {
        return Err(LayoutError::Unreadable(MbrError::NoSignatureInHead));
    }
    let table = &final_table.table;
    let logical = table.logicals.iter().position(|p| p.number == growth.number);
    // The EBRs to patch, checked before anything is patched.
    let ebrs = match logical {
        Some(index) => {
            let data_ebr = table.logicals[index].ebr.ok_or(LayoutError::NoDataPartition)?;
            let prev_ebr = index.checked_sub(1).and_then(|i| table.logicals[i].ebr);
            for ebr in std::iter::once(data_ebr).chain(prev_ebr) {
                refuse_ebr_in_head(ebr, head.len())?;
            }
            Some((table.logicals[index], data_ebr, prev_ebr))
        }
        None => None,
    };
    for p in &table.primaries {
        if p.is_extended() || p.number == growth.number {
            let at = ENTRY_TABLE_OFFSET + (p.number as usize - 1) * ENTRY_BYTES;
            patch_entry(&mut head[at..at + ENTRY_BYTES], p.size, p.number)?;
        }
    }
    let Some((data, data_ebr, prev_ebr)) = ebrs else {
        return Ok(());
    };
    patch_ebr(disk, data_ebr, 0, data.size)?;
    if let Some(prev_ebr) = prev_ebr {
        patch_ebr(disk, prev_ebr, 1, growth.new_end.saturating_sub(data_ebr))?;
    }
    Ok(())
}

/// An EBR inside the held-back head would be patched on the disk and then overwritten
/// when the head is written: the growth would be lost while the table claims it.
fn refuse_ebr_in_head(ebr: Sectors, head_len: usize) -> Result<(), LayoutError> {
    if ebr.bytes_512().0 < head_len as u64 {
        return Err(LayoutError::Unreadable(MbrError::EbrInHead { ebr: ebr.0, head_len }));
    }
    Ok(())
}

fn patch_ebr<D: Read + Write + Seek>(
    disk: &mut D,
    ebr: Sectors,
    entry: usize,
    size: Sectors,
) -> Result<(), LayoutError> {
    let offset = ebr.bytes_512().0;
    let mut sector = [0u8; SECTOR_BYTES as usize];
    let io = |e: std::io::Error| LayoutError::Io { at: ebr, source: e };
    disk.seek(SeekFrom::Start(offset)).map_err(io)?;
    disk.read_exact(&mut sector).map_err(io)?;
    if sector[510..512] != [0x55, 0xaa] {
        return Err(LayoutError::Unreadable(MbrError::NoEbrSignature { ebr }));
    }
    let at = ENTRY_TABLE_OFFSET + entry * ENTRY_BYTES;
    patch_entry(&mut sector[at..at + ENTRY_BYTES], size, 0)?;
    disk.seek(SeekFrom::Start(offset)).map_err(io)?;
    disk.write_all(&sector).map_err(io)?;
    Ok(())
}

/// Set an entry's size; its end CHS becomes "use LBA".
fn patch_entry(entry: &mut [u8], size: Sectors, number: u32) -> Result<(), LayoutError> {
    let size = u32::try_from(size.0).map_err(|_| LayoutError::BeyondMbr { number })?;
    entry[5..8].copy_from_slice(&CHS_BEYOND);
    entry[12..16].copy_from_slice(&size.to_le_bytes());
    Ok(())
}
