//! Reading an MBR partition table (with mbrman) into typed partitions.

use super::units::{Sectors, Sectors512, SECTOR_BYTES};
use super::LayoutError;
use std::io::{Cursor, Read, Seek, SeekFrom};

/// MBR partition type of a GPT protective entry.
const GPT_PROTECTIVE: u8 = 0xee;

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

    pub fn is_extended(&self) -> bool {
        matches!(self.kind, 0x05 | 0x0f | 0x85)
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
        let header = mbrman::MBRHeader::read_from(&mut Cursor::new(head))
            .map_err(|e| LayoutError::Unreadable(e.to_string()))?;
        refuse_entry_at_sector_zero(&header)?;
        Self::from_parts(&header, &[])
    }

    /// The whole table, logical partitions included, from a seekable image or disk.
    pub fn read<R: Read + Seek>(reader: &mut R) -> Result<PartitionTable, LayoutError> {
        let header = mbrman::MBRHeader::read_from(reader)
            .map_err(|e| LayoutError::Unreadable(e.to_string()))?;
        refuse_entry_at_sector_zero(&header)?;
        check_ebr_chain(reader, &header, SECTOR_BYTES).map_err(LayoutError::Unreadable)?;
        let mbr = mbrman::MBR::read_from(reader, SECTOR_BYTES as u32)
            .map_err(|e| LayoutError::Unreadable(e.to_string()))?;
        Self::from_parts(&mbr.header, &mbr.logical_partitions)
    }

    fn from_parts(
        header: &mbrman::MBRHeader,
        logicals: &[mbrman::LogicalPartition],
    ) -> Result<PartitionTable, LayoutError> {
        let primaries: Vec<Partition> = header
            .iter()
            .filter(|(_, e)| e.is_used())
            .map(|(i, e)| entry(i as u32, e, None))
            .collect();
        if primaries.iter().any(|p| p.kind == GPT_PROTECTIVE) {
            return Err(LayoutError::GptNotSupported);
        }
        let logicals = logicals
            .iter()
            .filter(|l| l.partition.is_used())
            .zip(5u32..)
            .map(|(l, n)| entry(n, &l.partition, Some(Sectors(u64::from(l.absolute_ebr_lba)))))
            .collect();
        Ok(PartitionTable {
            disk_signature: u32::from_le_bytes(header.disk_signature),
            primaries,
            logicals,
        })
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

/// A used entry starting at sector 0 lies over the MBR itself. Refused before
/// `mbrman::MBR::read_from`, which panics (0.6.1, `find_alignment`) when every used
/// entry starts there.
fn refuse_entry_at_sector_zero(header: &mbrman::MBRHeader) -> Result<(), LayoutError> {
    match header.iter().find(|(_, e)| e.is_used() && e.starting_lba == 0) {
        Some((number, _)) => Err(LayoutError::Unreadable(format!(
            "partition {number} starts at sector 0, over the MBR itself"
        ))),
        None => Ok(()),
    }
}

/// Walks the EBR chain the way mbrman 0.6.1 does and refuses one whose sector numbers
/// pass 32 bits: mbrman adds them unchecked (`MBR::read_from`: a panic with overflow
/// checks, a wrong start sector without). Where mbrman would stop, this stops too.
pub fn check_ebr_chain<R: Read + Seek>(
    reader: &mut R,
    header: &mbrman::MBRHeader,
    sector_size: u64,
) -> Result<(), String> {
    let Some(extended) = header.iter().map(|(_, e)| e).find(|e| e.is_used() && e.is_extended())
    else {
        return Ok(());
    };
    let too_far =
        |ebr: u64| format!("the logical partition chain at sector {ebr} reaches past 2^32 sectors");
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
