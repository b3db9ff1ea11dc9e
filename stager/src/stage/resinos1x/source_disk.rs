//! A resinOS 1.x disk as read from its device or an image of it: the MBR table (logical
//! partitions included) and, for each partition, the file system, label and UUID found at
//! its start. resinOS 1.x names its partitions only by file-system label
//! (`resin-boot`, `resin-root`, `resin-updt`, `resin-conf`, `resin-data`: meta-resin 1.x
//! `image_types_resin.bbclass`, cited in the resinos1x-* profiles).

use super::fs_probe::{self, FsFacts};
use super::refusal::Refusal1x;
use board_profiles::{ExpectedPartition, Profile};
use plan::{PartitionRole, Sectors, SourceKind};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const SECTOR: u64 = 512;
/// Labels only resinOS 2.x uses: a disk carrying one is already migrated.
const LABELS_2X: [&str; 3] = ["resin-rootA", "resin-rootB", "resin-state"];

/// One partition holding data (the extended container is not listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePartition {
    /// 1–4 primary, 5… logical, as Linux numbers them.
    pub number: u32,
    pub start: Sectors,
    pub size: Sectors,
    /// `None` when no known file system starts there.
    pub fs: Option<FsFacts>,
}

impl SourcePartition {
    pub fn end(&self) -> Sectors {
        Sectors(self.start.get() + self.size.get())
    }

    pub fn label(&self) -> &str {
        self.fs.as_ref().map(|f| f.label.as_str()).unwrap_or("")
    }
}

/// The disk as read (512-byte sectors, MBR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDisk1x {
    pub path: PathBuf,
    pub signature: u32,
    pub size: Sectors,
    pub partitions: Vec<SourcePartition>,
    /// The extended container, when there is one: (start, size).
    pub extended: Option<(Sectors, Sectors)>,
}

/// Reads the table and probes each partition's file system.
pub fn read(path: &Path) -> Result<SourceDisk1x, Refusal1x> {
    let disk = path.display().to_string();
    let fail = |problem: String| Refusal1x::Disk { disk: disk.clone(), problem };
    let table = crate::host::partition_table::read(path, plan::Bytes(SECTOR))
        .map_err(|e| fail(e.to_string()))?;
    let signature = match table.id {
        plan::DiskId::Mbr { signature } => signature,
        plan::DiskId::Gpt { .. } => {
            return Err(fail("it has a GPT partition table; resinOS 1.x disks use MBR".into()))
        }
    };
    let mut file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let size_bytes = file.seek(SeekFrom::End(0)).map_err(|e| fail(e.to_string()))?;
    let mut partitions = Vec::new();
    let mut extended = None;
    for entry in &table.partitions {
        let (start, size) = (Sectors(entry.start_sector.0), Sectors(entry.sector_count.0));
        if entry.extended {
            extended = Some((start, size));
            continue;
        }
        let head = read_head(&mut file, start.get() * SECTOR)
            .map_err(|e| fail(format!("partition {}: {e}", entry.number)))?;
        partitions.push(SourcePartition {
            number: entry.number,
            start,
            size,
            fs: fs_probe::probe(&head),
        });
    }
    Ok(SourceDisk1x {
        path: path.to_path_buf(),
        signature,
        size: Sectors(size_bytes / SECTOR),
        partitions,
        extended,
    })
}

fn read_head(file: &mut File, at: u64) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(at))?;
    let mut head = Vec::with_capacity(fs_probe::PROBE_BYTES);
    file.take(fs_probe::PROBE_BYTES as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// The profile's source partitions found on the disk by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub expected: ExpectedPartition,
    pub found: SourcePartition,
}

/// Names of the built-in profiles of `kind`, for messages.
pub fn profile_names(kind: SourceKind) -> String {
    let names: Vec<&str> = Profile::list_builtin()
        .into_iter()
        .filter(|name| Profile::builtin(name).map(|p| p.source.kind == kind).unwrap_or(false))
        .collect();
    names.join(", ")
}

/// Finds every partition the profile expects by its label and checks its file system.
/// A disk without the 1.x labels is refused, naming the profiles that fit it instead.
pub fn match_profile(disk: &SourceDisk1x, profile: &Profile) -> Result<Vec<Matched>, Refusal1x> {
    if profile.source.kind != SourceKind::Resinos1x {
        return Err(Refusal1x::NotA1xProfile {
            profile: profile.name.clone(),
            kind: profile.source.kind.to_string(),
            suggestions: profile_names(SourceKind::Resinos1x),
        });
    }
    let shown = disk.path.display().to_string();
    if let Some(label) = disk
        .partitions
        .iter()
        .map(SourcePartition::label)
        .find(|l| LABELS_2X.iter().any(|x| x.eq_ignore_ascii_case(l)))
    {
        return Err(Refusal1x::Already2x { disk: shown, label: label.to_string() });
    }
    let by_label =
        |name: &str| disk.partitions.iter().find(|p| p.label().eq_ignore_ascii_case(name));
    let missing: Vec<&str> = profile
        .source
        .partitions
        .iter()
        .filter(|e| by_label(&e.name).is_none())
        .map(|e| e.name.as_str())
        .collect();
    if !missing.is_empty() {
        let found: Vec<String> = disk
            .partitions
            .iter()
            .map(|p| match &p.fs {
                Some(fs) if !fs.label.is_empty() => {
                    format!("{} {} '{}'", p.number, fs.fs, fs.label)
                }
                Some(fs) => format!("{} {}", p.number, fs.fs),
                None => format!("{} (no known file system)", p.number),
            })
            .collect();
        return Err(Refusal1x::NotA1xDisk {
            disk: shown,
            why: format!(
                "no partition labelled {} (found: {})",
                missing.join(", "),
                found.join("; ")
            ),
            suggestions: profile_names(SourceKind::UbuntuGrubHost).replace(", ", " or "),
        });
    }
    let mut matched = Vec::new();
    for expected in &profile.source.partitions {
        let Some(found) = by_label(&expected.name) else { continue };
        let fs = found.fs.as_ref().map(|f| f.fs);
        // A Raspberry Pi's spare that an earlier trial made a FAT32 (and `abort` left one:
        // its ext3 cannot come back, contract R1) is formatted again by the next.
        let pi_spare = profile.pi_trial.is_some()
            && expected.role == PartitionRole::RootB
            && fs == Some(plan::FsType::Vfat);
        if fs != Some(expected.fs) && !pi_spare {
            return Err(Refusal1x::WrongFs {
                disk: shown,
                number: found.number,
                label: expected.name.clone(),
                found: fs.map(|f| f.to_string()).unwrap_or_else(|| "unknown".into()),
                expected: expected.fs.to_string(),
                profile: profile.name.clone(),
            });
        }
        matched.push(Matched { expected: expected.clone(), found: found.clone() });
    }
    Ok(matched)
}

/// The matched partition with `role`.
pub fn role(matched: &[Matched], role: PartitionRole) -> Option<&Matched> {
    matched.iter().find(|m| m.expected.role == role)
}

/// The disk of this device that holds the partition labelled `label` (resinOS 1.x: its
/// `resin-boot`), found by probing the file system of every partition the kernel lists in
/// `/sys/class/block`.
/// Exactly one must match: none, or several, is refused naming them.
pub fn find_by_partition_label(
    root: &crate::host::HostRoot,
    label: &str,
) -> Result<PathBuf, Refusal1x> {
    use crate::host::block::{self, BlockKind};
    let not_found =
        |problem: String| Refusal1x::Disk { disk: format!("(the disk holding {label})"), problem };
    let names = block::sysfs(root).names().map_err(|e| not_found(format!("{e}; pass --disk")))?;
    let mut found = Vec::new();
    for name in names {
        let Ok(device) = block::by_name(root, &name) else { continue };
        let Some(disk) = device.parent_disk.clone().filter(|_| device.kind == BlockKind::Partition)
        else {
            continue;
        };
        // The partition's own node, or its sectors on the disk where there is none.
        let region = crate::stage::host_extras::Region::of_partition(root, &device);
        let len = (fs_probe::PROBE_BYTES as u64).min(region.size.get()) as usize;
        let head = region.read_at(plan::Bytes(0), len);
        if head.is_ok_and(|head| fs_probe::probe(&head).is_some_and(|fs| fs.label == label)) {
            found.push((device.dev_path(), format!("/dev/{disk}")));
        }
    }
    match found.as_slice() {
        [(_, disk)] => Ok(PathBuf::from(disk)),
        [] => Err(not_found(format!("no partition of this device is labelled {label}; this is not a resinOS 1.x device, or pass --disk"))),
        many => Err(not_found(format!(
            "{} partitions are labelled {label} ({}); pass --disk to say which disk to migrate",
            many.len(),
            many.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}
