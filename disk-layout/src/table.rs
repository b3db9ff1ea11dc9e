//! The one MBR model of the workspace: reading an MBR and its chain of EBRs (with mbrman)
//! into typed partitions. The migrator's layout work, the stager's disk reader
//! (`stager::host::partition_table`) and the image reader (`resin_image::read_partitions`)
//! all read tables here.

use super::units::{Sectors, Sectors512, SECTOR_BYTES};
use super::LayoutError;
use std::io::{Cursor, Read, Seek, SeekFrom};

/// MBR partition type of a GPT protective entry.
pub const GPT_PROTECTIVE: u8 = 0xee;
/// Where the disk signature lies in the MBR sector.
const MBR_SIGNATURE_OFFSET: usize = 440;

/// Why an MBR, or the chain of EBRs it leads to, cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum MbrError {
    /// What `mbrman` refused (no 0x55AA signature, a bad boot flag, a broken EBR, I/O).
    #[error("{0}")]
    Read(#[from] mbrman::Error),
    #[error("partition {number} starts at sector 0, over the MBR itself")]
    EntryAtSectorZero { number: usize },
    #[error("the logical partition chain at sector {ebr} reaches past 2^32 sectors")]
    ChainPast32Bits { ebr: u64 },
    #[error("a sector size of {0} bytes is not supported")]
    SectorSize(u64),
    #[error("held-back head has no MBR signature")]
    NoSignatureInHead,
    #[error(
        "the EBR at sector {ebr} lies in the image's first {head_len} bytes, which are written last \
         (a resinOS image keeps its logical partitions past the first MiB)"
    )]
    EbrInHead { ebr: u64, head_len: usize },
    #[error("no EBR signature at {ebr}")]
    NoEbrSignature { ebr: Sectors },
}

impl MbrError {
    /// The I/O error a read failed with, or the error itself when it is about the table.
    pub fn into_io(self) -> Result<std::io::Error, MbrError> {
        match self {
            MbrError::Read(mbrman::Error::Io(io)) => Ok(io),
            other => Err(other),
        }
    }
}

/// One partition table entry, in absolute sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// 1..=4 for primary entries, 5.. for logical partitions (as Linux numbers them).
    pub number: u32,
    /// MBR partition type byte (0x0c FAT32 LBA, 0x83 Linux, 0x0f/0x05 extended...).
    pub kind: u8,
    pub bootable: bool,
    pub start: Sectors,
    pub size: Sectors,
    /// For logical partitions: where their EBR sits.
    pub ebr: Option<Sectors>,
}

impl Partition {
    /// First sector after the partition.
    pub fn end(&self) -> Sectors {
        self.start.plus(self.size)
    }

    /// The extended types the layout code handles: 0x05, 0x0F, 0x85.
    pub fn is_extended(&self) -> bool {
        matches!(self.kind, 0x05 | 0x0f | 0x85)
    }

    /// Every type `mbrman` follows an EBR chain from: those of [`Partition::is_extended`]
    /// and 0xC5, 0xD5.
    pub fn holds_logicals(&self) -> bool {
        matches!(self.kind, 0x05 | 0x0f | 0x85 | 0xc5 | 0xd5)
    }
}

/// An image's (or disk's) MBR partition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    pub disk_signature: u32,
    /// Used primary entries, the extended one included, in entry order.
    pub primaries: Vec<Partition>,
    /// Logical partitions in EBR chain order (empty when read from the first MiB only).
    pub logicals: Vec<Partition>,
}

impl PartitionTable {
    /// Primary entries only, from the image's first sector(s) (e.g. its held-back
    /// first MiB). Enough to know how far the image reaches: logical partitions lie
    /// inside the extended entry.
    pub fn from_head(head: &[u8]) -> Result<PartitionTable, LayoutError> {
        let table = Self::read_primaries(head).map_err(LayoutError::Unreadable)?;
        table.refuse_gpt()
    }

    /// The whole table, logical partitions included, from a seekable image or disk.
    /// Logical partitions are numbered 5, 6, … in chain order, used ones only.
    pub fn read<R: Read + Seek>(reader: &mut R) -> Result<PartitionTable, LayoutError> {
        let mut table = Self::read_mbr(reader, SECTOR_BYTES).map_err(LayoutError::Unreadable)?;
        for (logical, number) in table.logicals.iter_mut().zip(5u32..) {
            logical.number = number;
        }
        table.refuse_gpt()
    }

    /// The primary entries of an MBR sector (`head` starts with it), extended and GPT
    /// protective entries included, without the logical partitions.
    pub fn read_primaries(head: &[u8]) -> Result<PartitionTable, MbrError> {
        let header = mbrman::MBRHeader::read_from(&mut Cursor::new(head))?;
        refuse_entry_at_sector_zero(&header)?;
        Ok(Self::from_parts(&header, &[]))
    }

    /// The MBR of a disk or image of `sector_size`-byte sectors with its chain of EBRs:
    /// every used entry, extended and GPT protective ones included (see
    /// [`PartitionTable::is_gpt_protective`]); sectors count in `sector_size` units.
    /// Logical partitions carry the number of their EBR in the chain (5 for the first),
    /// as `mbrman` numbers them: an EBR with an unused entry takes a number too.
    pub fn read_mbr<R: Read + Seek>(
        reader: &mut R,
        sector_size: u64,
    ) -> Result<PartitionTable, MbrError> {
        let header = mbrman::MBRHeader::read_from(reader)?;
        refuse_entry_at_sector_zero(&header)?;
        check_ebr_chain(reader, &header, sector_size)?;
        let sector_size =
            u32::try_from(sector_size).map_err(|_| MbrError::SectorSize(sector_size))?;
        let mbr = mbrman::MBR::read_from(reader, sector_size)?;
        Ok(Self::from_parts(&mbr.header, &mbr.logical_partitions))
    }

    fn from_parts(
        header: &mbrman::MBRHeader,
        logicals: &[mbrman::LogicalPartition],
    ) -> PartitionTable {
        let primaries: Vec<Partition> = header
            .iter()
            .filter(|(_, e)| e.is_used())
            .map(|(i, e)| entry(i as u32, e, None))
            .collect();
        let logicals = logicals
            .iter()
            .zip(5u32..)
            .filter(|(l, _)| l.partition.is_used())
            .map(|(l, n)| entry(n, &l.partition, Some(Sectors(u64::from(l.absolute_ebr_lba)))))
            .collect();
        PartitionTable {
            disk_signature: u32::from_le_bytes(header.disk_signature),
            primaries,
            logicals,
        }
    }

    /// Whether an entry has the type of a GPT protective MBR (0xEE): the real table is GPT.
    pub fn is_gpt_protective(&self) -> bool {
        self.primaries.iter().any(|p| p.kind == GPT_PROTECTIVE)
    }

    fn refuse_gpt(self) -> Result<PartitionTable, LayoutError> {
        if self.is_gpt_protective() {
            return Err(LayoutError::GptNotSupported);
        }
        Ok(self)
    }

    pub fn extended(&self) -> Option<&Partition> {
        self.primaries.iter().find(|p| p.is_extended())
    }

    /// Every partition, primaries then logicals.
    pub fn all(&self) -> impl Iterator<Item = &Partition> {
        self.primaries.iter().chain(self.logicals.iter())
    }

    /// First sector after everything the table describes.
    pub fn end(&self) -> Sectors {
        self.all().map(Partition::end).max().unwrap_or(Sectors(1))
    }

    pub fn partition(&self, number: u32) -> Option<&Partition> {
        self.all().find(|p| p.number == number)
    }
}

/// The MBR disk signature in `sector0` (bytes 440..444, little endian), whatever the rest
/// of the sector holds; `None` when `sector0` is too short.
pub fn mbr_signature(sector0: &[u8]) -> Option<u32> {
    let bytes = sector0.get(MBR_SIGNATURE_OFFSET..MBR_SIGNATURE_OFFSET + 4)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// A used entry starting at sector 0 lies over the MBR itself. Refused before
/// `mbrman::MBR::read_from`, which panics (0.6.1, `find_alignment`) when every used
/// entry starts there.
fn refuse_entry_at_sector_zero(header: &mbrman::MBRHeader) -> Result<(), MbrError> {
    match header.iter().find(|(_, e)| e.is_used() && e.starting_lba == 0) {
        Some((number, _)) => Err(MbrError::EntryAtSectorZero { number }),
        None => Ok(()),
    }
}

/// Walks the EBR chain the way mbrman 0.6.1 does and refuses one whose sector numbers
/// pass 32 bits: mbrman adds them unchecked (`MBR::read_from`: a panic with overflow
/// checks, a wrong start sector without). Where mbrman would stop, this stops too.
fn check_ebr_chain<R: Read + Seek>(
    reader: &mut R,
    header: &mbrman::MBRHeader,
    sector_size: u64,
) -> Result<(), MbrError> {
    let Some(extended) = header.iter().map(|(_, e)| e).find(|e| e.is_used() && e.is_extended())
    else {
        return Ok(());
    };
    let too_far = |ebr: u64| MbrError::ChainPast32Bits { ebr };
    let mut relative: u32 = 0;
    loop {
        let Some(ebr) = extended.starting_lba.checked_add(relative) else {
            return Err(too_far(u64::from(extended.starting_lba) + u64::from(relative)));
        };
        let mut sector = [0u8; 512];
        let read = reader
            .seek(SeekFrom::Start(u64::from(ebr) * sector_size))
            .and_then(|_| reader.read_exact(&mut sector));
        if read.is_err() || sector[510..512] != [0x55, 0xaa] {
            return Ok(());
        }
        let field = |at: usize| {
            u32::from_le_bytes([sector[at], sector[at + 1], sector[at + 2], sector[at + 3]])
        };
        // Entry 0: the logical partition, relative to its EBR; entry 1: the next EBR,
        // relative to the extended partition.
        if field(446 + 8).checked_add(ebr).is_none() {
            return Err(too_far(u64::from(ebr)));
        }
        let next = field(446 + 16 + 8);
        if next == 0 || relative >= next {
            return Ok(());
        }
        relative = next;
    }
}

fn entry(number: u32, e: &mbrman::MBRPartitionEntry, ebr: Option<Sectors>) -> Partition {
    Partition {
        number,
        kind: e.sys,
        bootable: e.is_active(),
        start: Sectors(u64::from(e.starting_lba)),
        size: Sectors(u64::from(e.sectors)),
        ebr,
    }
}

/// A reader that serves `head` for the first bytes and `rest` beyond it: the disk
/// as it will look once the held-back first MiB of the image is written.
pub struct HeadOverlay<'a, R> {
    head: &'a [u8],
    rest: R,
    pos: u64,
}

impl<'a, R: Read + Seek> HeadOverlay<'a, R> {
    pub fn new(head: &'a [u8], rest: R) -> Self {
        HeadOverlay { head, rest, pos: 0 }
    }
}

impl<R: Read + Seek> Read for HeadOverlay<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let head_len = self.head.len() as u64;
        let n = if self.pos < head_len {
            let from = &self.head[self.pos as usize..];
            let n = from.len().min(buf.len());
            buf[..n].copy_from_slice(&from[..n]);
            n
        } else {
            self.rest.seek(SeekFrom::Start(self.pos))?;
            self.rest.read(buf)?
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for HeadOverlay<'_, R> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let end = self.rest.seek(SeekFrom::End(0))?.max(self.head.len() as u64);
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => end.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the disk",
            )
        })?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_read_little_endian_at_440() {
        let mut sector = [0u8; 512];
        sector[440..444].copy_from_slice(&[0x7e, 0xe0, 0x0a, 0x00]);
        assert_eq!(mbr_signature(&sector), Some(0x000a_e07e));
        assert_eq!(mbr_signature(&sector[..100]), None);
    }
}
