//! The disk's partition table, read from the disk device or an image file: MBR (with the
//! logical partitions inside the extended one) through the one MBR model,
//! [`disk_layout::PartitionTable`], GPT through `gpt`.

use disk_layout::{MbrError, PartitionTable as MbrTable};
use plan::{Bytes, DiskId, Guid, Sectors, TableKind};
use serde::Serialize;
use std::fs::File;
use std::path::{Path, PathBuf};

/// MBR partition type of a Linux swap partition.
pub const MBR_TYPE_LINUX_SWAP: u8 = 0x82;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionEntry {
    /// 1–4 primary, 5… logical (MBR); the entry index (GPT).
    pub number: u32,
    pub start_sector: Sectors,
    pub sector_count: Sectors,
    pub start: Bytes,
    pub size: Bytes,
    /// `0x83`-style for MBR, the type GUID for GPT.
    pub type_code: String,
    pub bootable: bool,
    pub extended: bool,
    /// As the kernel and blkid give it: `<signature>-<nn>` (MBR) or the partition GUID (GPT).
    pub partuuid: String,
    /// GPT partition name; MBR has none.
    pub name: Option<String>,
}

impl PartitionEntry {
    pub fn end(&self) -> Bytes {
        self.start.saturating_add(self.size)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    /// The table's kind and the disk identifier it carries, as the plan records it.
    pub id: DiskId,
    pub sector_size: Bytes,
    pub partitions: Vec<PartitionEntry>,
}

/// The JSON form (`stager check --json` facts): `kind` with `disk_signature` as `blkid`
/// prints PTUUID (8 lower-case hex digits) or `disk_guid`, then the sector size and entries.
impl Serialize for PartitionTable {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "lowercase", tag = "kind")]
        enum Id {
            Mbr { disk_signature: String },
            Gpt { disk_guid: String },
        }
        #[derive(Serialize)]
        struct Json<'a> {
            #[serde(flatten)]
            id: Id,
            sector_size: Bytes,
            partitions: &'a [PartitionEntry],
        }
        let id = match &self.id {
            DiskId::Mbr { signature } => Id::Mbr { disk_signature: format!("{signature:08x}") },
            DiskId::Gpt { guid } => Id::Gpt { disk_guid: guid.to_string() },
        };
        Json { id, sector_size: self.sector_size, partitions: &self.partitions }
            .serialize(serializer)
    }
}

impl PartitionTable {
    pub fn kind(&self) -> TableKind {
        match self.id {
            DiskId::Mbr { .. } => TableKind::Mbr,
            DiskId::Gpt { .. } => TableKind::Gpt,
        }
    }

    pub fn find_by_start(&self, start: Bytes) -> Option<&PartitionEntry> {
        self.partitions.iter().find(|p| p.start == start && !p.extended)
    }

    /// The extended partition a logical partition lies in, if any.
    pub fn extended_containing(&self, entry: &PartitionEntry) -> Option<&PartitionEntry> {
        self.partitions
            .iter()
            .find(|p| p.extended && p.start <= entry.start && entry.end() <= p.end())
    }

    pub fn is_gpt(&self) -> bool {
        self.kind() == TableKind::Gpt
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot open {path}: {source} (run the stager as root)")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{path} has no MBR or GPT partition table that can be read: {problem}")]
    Unreadable { path: PathBuf, problem: Unreadable },
    #[error("{path}: logical sector size {} is not supported (only 512 and 4096 bytes)", .size.rounded())]
    SectorSize { path: PathBuf, size: Bytes },
}

/// Why a table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error(transparent)]
    Mbr(#[from] MbrError),
    #[error("{sectors} of {sector_size} bytes do not fit in 64 bits")]
    TooLarge { sectors: Sectors, sector_size: u64 },
    #[error("protective MBR found but GPT unreadable: {0}")]
    Gpt(gpt::GptError),
    #[error(transparent)]
    DiskGuid(plan::IdentityError),
}

/// Reads the partition table of the disk device or image file at `path`.
pub fn read(path: &Path, sector_size: Bytes) -> Result<PartitionTable, TableError> {
    let unreadable =
        |problem: Unreadable| TableError::Unreadable { path: path.to_path_buf(), problem };
    if u32::try_from(sector_size.get()).is_err() {
        return Err(TableError::SectorSize { path: path.to_path_buf(), size: sector_size });
    }
    let mut file =
        File::open(path).map_err(|source| TableError::Open { path: path.to_path_buf(), source })?;
    let mbr = MbrTable::read_mbr(&mut file, sector_size.get())
        .map_err(|e| unreadable(Unreadable::Mbr(e)))?;
    if mbr.is_gpt_protective() {
        return read_gpt(path, sector_size);
    }
    from_mbr(&mbr, sector_size).map_err(unreadable)
}

/// `sectors` of `sector_size` bytes, or a reason when that overflows 64 bits (a corrupt table).
fn sectors_to_bytes(sectors: Sectors, sector_size: Bytes) -> Result<Bytes, Unreadable> {
    sectors
        .get()
        .checked_mul(sector_size.get())
        .map(Bytes)
        .ok_or(Unreadable::TooLarge { sectors, sector_size: sector_size.get() })
}

/// The stager's entries of an MBR read by the one MBR model, [`disk_layout::PartitionTable`]:
/// primaries then logicals, each numbered as that reader numbers them.
fn from_mbr(mbr: &MbrTable, sector_size: Bytes) -> Result<PartitionTable, Unreadable> {
    let signature = mbr.disk_signature;
    let partitions = mbr
        .all()
        .map(|p| {
            let number = p.number;
            Ok(PartitionEntry {
                number,
                start_sector: p.start,
                sector_count: p.size,
                start: sectors_to_bytes(p.start, sector_size)?,
                size: sectors_to_bytes(p.size, sector_size)?,
                type_code: format!("0x{:02x}", p.kind),
                bootable: p.bootable,
                extended: p.holds_logicals(),
                partuuid: format!("{signature:08x}-{number:02x}"),
                name: None,
            })
        })
        .collect::<Result<_, Unreadable>>()?;
    Ok(PartitionTable { id: DiskId::Mbr { signature }, sector_size, partitions })
}

fn read_gpt(path: &Path, sector_size: Bytes) -> Result<PartitionTable, TableError> {
    let block_size = match sector_size.get() {
        512 => gpt::disk::LogicalBlockSize::Lb512,
        4096 => gpt::disk::LogicalBlockSize::Lb4096,
        _ => return Err(TableError::SectorSize { path: path.to_path_buf(), size: sector_size }),
    };
    let disk =
        gpt::GptConfig::new().writable(false).logical_block_size(block_size).open(path).map_err(
            |e| TableError::Unreadable { path: path.to_path_buf(), problem: Unreadable::Gpt(e) },
        )?;
    let partitions = disk
        .partitions()
        .iter()
        .filter(|(_, p)| p.is_used())
        .map(|(number, p)| {
            let start_sector = Sectors(p.first_lba);
            let sector_count = Sectors(p.last_lba.saturating_sub(p.first_lba).saturating_add(1));
            Ok(PartitionEntry {
                number: *number,
                start_sector,
                sector_count,
                start: sectors_to_bytes(start_sector, sector_size)?,
                size: sectors_to_bytes(sector_count, sector_size)?,
                type_code: p.part_type_guid.guid.hyphenated().to_string(),
                bootable: false,
                extended: false,
                partuuid: p.part_guid.hyphenated().to_string(),
                name: (!p.name.is_empty()).then(|| p.name.clone()),
            })
        })
        .collect::<Result<_, Unreadable>>()
        .map_err(|problem| TableError::Unreadable { path: path.to_path_buf(), problem })?;
    let guid = Guid::parse(&disk.guid().hyphenated().to_string()).map_err(|e| {
        TableError::Unreadable { path: path.to_path_buf(), problem: Unreadable::DiskGuid(e) }
    })?;
    Ok(PartitionTable { id: DiskId::Gpt { guid }, sector_size, partitions })
}
