//! [`classify`]: a normal resinOS image or a flasher, and what a flasher holds.
//!
//! Facts (meta-resin v2.12.5 unless named): a flasher has an msdos table with boot (vfat)
//! at p1, rootA p2, rootB p3, extended p4, state p5, data p6 (`image_types_resin.bbclass`
//! 26–63); its partitions are labelled `flash-boot`, `flash-rootA`, … and its boot partition
//! holds `/device-type.json` and the flag file `/resin-image-flasher`
//! (`resin-image-flasher.bb` 41–45, 51, 68), `/balena-image-flasher` from v2.88.4
//! (`balena-os.inc` 61–62); a normal image's boot has `/resin-image` (`resin-os.inc` 71–72)
//! or `/balena-image`. The inner image is `/opt/resin-image-${MACHINE}.resinos-img` on
//! flash-rootA (`resin-image-flasher.bb` 53–59), `balena-image-*.balenaos-img` from v2.88.4;
//! balena-preload also takes a `flash-rootA` label for "flasher" (`src/preload.py` 47–52).
//! The flasher's init copies `grub.cfg_internal` into place and its board script writes the
//! BIOS boot code (`resin-init-flasher` 171, 196–205; `resin-init-flasher-board` 46–62).

use crate::partitions::{read_partitions, read_primary_partitions, Partition};
use crate::{detect_fs, ByteRange, Download, FsType, ImageError, RestartingReader};
use crate::{FS_PROBE_BYTES, LARGE_READ};
use ext4_view::{Ext4, Ext4Error};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Flag files on a flasher's boot partition.
pub const FLASHER_FLAGS: [&str; 2] = ["resin-image-flasher", "balena-image-flasher"];
/// Flag files on a normal image's boot partition.
pub const NORMAL_FLAGS: [&str; 2] = ["resin-image", "balena-image"];
/// The label prefix of a flasher's partitions.
pub const FLASHER_LABEL_PREFIX: &str = "flash-";
/// The label of a flasher's root file system.
pub const FLASHER_ROOT_LABEL: &str = "flash-rootA";
/// Where a flasher keeps its inner image, and the names it may have there.
pub const INNER_DIR: &str = "/opt";
pub const INNER_SUFFIXES: [&str; 2] = [".resinos-img", ".balenaos-img"];
/// The partition a flasher's root has when no partition is labelled [`FLASHER_ROOT_LABEL`].
const DEFAULT_ROOT_PARTITION: u32 = 2;
/// Files of the boot partition larger than this are refused (grub.cfg, boot.img, core.img
/// and device-type.json are KiBs).
const MAX_BOOT_FILE: u64 = 8 * 1024 * 1024;

/// A normal image or a flasher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageKind {
    Normal,
    Flasher(FlasherFacts),
}

/// What a flasher image holds that a migration needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlasherFacts {
    /// `/resin-image-flasher` or `/balena-image-flasher`; empty when only the labels told.
    pub flag_file: String,
    /// `slug` of flash-boot's `/device-type.json`.
    pub device_type: Option<String>,
    /// Partition number of flash-rootA (2).
    pub root_partition: u32,
    /// e.g. `/opt/resin-image-genericx86-64.resinos-img`.
    pub inner_path: String,
    pub inner_size: plan::Bytes,
    /// flash-boot:/grub.cfg_internal.
    pub grub_cfg_internal: Option<Vec<u8>>,
    /// flash-boot:/grub/boot.img (the BIOS boot code the flasher writes).
    pub grub_boot_img: Option<Vec<u8>>,
    /// flash-boot:/grub/core.img.
    pub grub_core_img: Option<Vec<u8>>,
}

/// One partition with what its first bytes say.
#[derive(Debug, Clone)]
pub(crate) struct Probed {
    pub(crate) partition: Partition,
    pub(crate) fs: Option<FsType>,
    pub(crate) label: Option<String>,
}

/// Reads the partition table, the boot partition (FAT: flag files, device-type.json) and
/// partition labels: a flasher is a flag file `/resin-image-flasher`|`/balena-image-flasher`
/// on the boot partition OR any partition labelled `flash-*` (FAT volume label, ext4 label,
/// GPT name); otherwise the image is normal (`/resin-image`|`/balena-image`, or no flag file
/// at all, as in images built without one). For a flasher, walks flash-rootA's ext4 (in
/// process, no mounts) to find exactly one `/opt/*.resinos-img` or `/opt/*.balenaos-img`.
pub fn classify(download: &Download) -> Result<ImageKind, ImageError> {
    let path = download.path().to_path_buf();
    let mut reader = RestartingReader::for_download(download)?;
    // Primary partitions first: a flasher's logical ones (state, data) lie after rootA.
    let mut partitions = read_primary_partitions(&mut reader)?;
    // Partitions are probed in table order and only as far as needed: on a compressed
    // image each one further means decoding up to it.
    let mut probed: Vec<Probed> = Vec::new();
    let boot = match partitions.first() {
        Some(first) => probe(&mut reader, first)?,
        None => return Err(ImageError::NoBootPartition { path }),
    };
    probed.push(boot.clone());
    let boot_files = match boot.fs {
        Some(FsType::Vfat) => Some(read_boot(&mut reader, &boot.partition)?),
        _ => None,
    };
    let flag_flasher = boot_files.as_ref().and_then(|b| b.flasher_flag.clone());
    let flag_normal = boot_files.as_ref().is_some_and(|b| b.normal_flag);
    let mut labelled_flasher = is_flasher_label(&boot.label);
    if flag_flasher.is_none() && !labelled_flasher && !flag_normal {
        partitions = read_partitions(&mut reader)?;
        for partition in &partitions[1..] {
            let p = probe(&mut reader, partition)?;
            labelled_flasher |= is_flasher_label(&p.label);
            probed.push(p);
            if labelled_flasher {
                break;
            }
        }
    }
    if flag_flasher.is_none() && !labelled_flasher {
        if boot_files.is_none() {
            return Err(ImageError::NoBootPartition { path });
        }
        if !flag_normal {
            log::warn!(
                "{}: no /resin-image or /balena-image on the boot partition; taken as a normal image",
                path.display()
            );
        }
        return Ok(ImageKind::Normal);
    }
    let root = find_root(&mut reader, &partitions, &mut probed)?
        .ok_or_else(|| ImageError::NoFlasherRoot { path: path.clone() })?;
    let boot_files = boot_files.unwrap_or_default();
    let (inner_path, inner_size) = find_inner(reader, &root)?;
    Ok(ImageKind::Flasher(FlasherFacts {
        flag_file: flag_flasher.map(|f| format!("/{f}")).unwrap_or_default(),
        device_type: boot_files.device_type,
        root_partition: root.number,
        inner_path,
        inner_size,
        grub_cfg_internal: boot_files.grub_cfg_internal,
        grub_boot_img: boot_files.grub_boot_img,
        grub_core_img: boot_files.grub_core_img,
    }))
}

/// FAT labels are compared without case: tools may store them upper-cased.
fn is_flasher_label(label: &Option<String>) -> bool {
    label.as_deref().is_some_and(|l| {
        l.get(..FLASHER_LABEL_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(FLASHER_LABEL_PREFIX))
    })
}

/// flash-rootA: the ext partition labelled so, else partition 2 when it holds ext4.
pub(crate) fn find_root(
    reader: &mut RestartingReader,
    partitions: &[Partition],
    probed: &mut Vec<Probed>,
) -> Result<Option<Partition>, ImageError> {
    for partition in partitions {
        let known = probed.iter().find(|p| p.partition.number == partition.number).cloned();
        let p = match known {
            Some(p) => p,
            None => {
                let p = probe(reader, partition)?;
                probed.push(p.clone());
                p
            }
        };
        if p.label.as_deref() == Some(FLASHER_ROOT_LABEL) {
            return Ok(Some(p.partition));
        }
    }
    Ok(probed
        .iter()
        .find(|p| {
            p.partition.number == DEFAULT_ROOT_PARTITION
                && matches!(p.fs, Some(FsType::Ext2 | FsType::Ext3 | FsType::Ext4))
        })
        .map(|p| p.partition.clone()))
}

/// The file system and label of a partition, from its first [`FS_PROBE_BYTES`] (read in
/// pieces small enough to be cached: the boot partition is read again right after).
pub(crate) fn probe(
    reader: &mut RestartingReader,
    partition: &Partition,
) -> Result<Probed, ImageError> {
    let len = (FS_PROBE_BYTES as u64).min(partition.len.get()) as usize;
    let mut head = vec![0u8; len];
    for (i, chunk) in head.chunks_mut(LARGE_READ / 2).enumerate() {
        reader.read_at(partition.start.get() + (i * LARGE_READ / 2) as u64, chunk)?;
    }
    let fs = detect_fs(&head);
    let label = match fs {
        Some(FsType::Vfat) => fat_label(&head),
        Some(FsType::Ext2 | FsType::Ext3 | FsType::Ext4) => {
            text(head.get(1024 + 0x78..1024 + 0x88))
        }
        Some(FsType::Btrfs) => text(head.get(65536 + 0x12B..65536 + 0x22B)),
        _ => None,
    }
    .or_else(|| partition.gpt_name.clone().filter(|n| !n.is_empty()));
    log::debug!(
        "partition {} at {}: {:?}, label {:?}",
        partition.number,
        partition.start.get(),
        fs,
        label
    );
    Ok(Probed { partition: partition.clone(), fs, label })
}

/// The volume label of a FAT boot sector (FAT32's field at 71, FAT12/16's at 43), as
/// mkfs.vfat -n writes it; "NO NAME" is no label.
fn fat_label(bs: &[u8]) -> Option<String> {
    let fat32 = bs.get(82..87) == Some(b"FAT32");
    let at = if fat32 { 71 } else { 43 };
    text(bs.get(at..at + 11)).filter(|l| l != "NO NAME")
}

/// A label field: up to the first NUL, trailing spaces removed; `None` when empty.
fn text(field: Option<&[u8]>) -> Option<String> {
    let field = field?;
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let label = String::from_utf8_lossy(&field[..end]).trim_end().to_string();
    (!label.is_empty()).then_some(label)
}

/// What the boot partition says.
#[derive(Debug, Default)]
struct BootFiles {
    flasher_flag: Option<String>,
    normal_flag: bool,
    device_type: Option<String>,
    grub_cfg_internal: Option<Vec<u8>>,
    grub_boot_img: Option<Vec<u8>>,
    grub_core_img: Option<Vec<u8>>,
}

fn read_boot(reader: &mut RestartingReader, boot: &Partition) -> Result<BootFiles, ImageError> {
    let path = reader.path().to_path_buf();
    let view = ByteRange::new(&mut *reader, boot.start.get(), boot.len.get());
    let fs =
        fatfs::FileSystem::new(view, fatfs::FsOptions::new()).map_err(|e| boot_error(&path, e))?;
    let root = fs.root_dir();
    let read = |name: &str| read_fat_file(&path, &root, name);
    let mut files = BootFiles::default();
    for flag in FLASHER_FLAGS {
        if read(flag)?.is_some() {
            files.flasher_flag = Some(flag.to_string());
        }
    }
    for flag in NORMAL_FLAGS {
        files.normal_flag |= read(flag)?.is_some();
    }
    files.device_type = match read("device-type.json")? {
        Some(json) => device_type_slug(&json),
        None => None,
    };
    if files.flasher_flag.is_some() {
        files.grub_cfg_internal = read("grub.cfg_internal")?;
        files.grub_boot_img = read("grub/boot.img")?;
        files.grub_core_img = read("grub/core.img")?;
    }
    Ok(files)
}

/// `slug` of a device-type.json (`None` when it does not parse or has none).
fn device_type_slug(json: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    value.get("slug")?.as_str().map(str::to_string)
}

type FatDir<'a, 'r> = fatfs::Dir<'a, ByteRange<&'r mut RestartingReader>>;

/// A file's bytes, `None` when it does not exist.
fn read_fat_file(
    path: &Path,
    root: &FatDir<'_, '_>,
    name: &str,
) -> Result<Option<Vec<u8>>, ImageError> {
    let mut file = match root.open_file(name) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(boot_error(path, e)),
    };
    let mut data = Vec::new();
    (&mut file).take(MAX_BOOT_FILE + 1).read_to_end(&mut data).map_err(|e| boot_error(path, e))?;
    if data.len() as u64 > MAX_BOOT_FILE {
        return Err(ImageError::BootPartition {
            path: path.to_path_buf(),
            detail: format!("/{name} is larger than {MAX_BOOT_FILE} bytes"),
        });
    }
    Ok(Some(data))
}

/// Our own errors (truncated, corrupt download) come through as they are.
fn boot_error(path: &Path, error: std::io::Error) -> ImageError {
    match ImageError::from_io(path, error) {
        ImageError::Read { source, .. } => {
            ImageError::BootPartition { path: path.to_path_buf(), detail: source.to_string() }
        }
        ours => ours,
    }
}

/// The one inner image in `/opt` of flash-rootA: its path and size.
fn find_inner(
    reader: RestartingReader,
    root: &Partition,
) -> Result<(String, plan::Bytes), ImageError> {
    let path = reader.path().to_path_buf();
    let fs = load_ext4(reader, root)?;
    let fs_error = |e| ext4_error(&path, root.number, e);
    let mut names = Vec::new();
    let entries = match fs.read_dir(INNER_DIR) {
        Ok(entries) => entries,
        Err(Ext4Error::NotFound | Ext4Error::NotADirectory) => {
            return Err(ImageError::NoInnerImage { path })
        }
        Err(e) => return Err(fs_error(e)),
    };
    for entry in entries {
        let entry = entry.map_err(fs_error)?;
        let name = entry.file_name().as_str().map(str::to_string).unwrap_or_default();
        if INNER_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            names.push(name);
        }
    }
    names.sort();
    match names.len() {
        0 => Err(ImageError::NoInnerImage { path }),
        1 => {
            let inner = format!("{INNER_DIR}/{}", names[0]);
            let metadata = fs.metadata(inner.as_str()).map_err(fs_error)?;
            if !metadata.file_type().is_regular_file() {
                return Err(ImageError::InnerImage {
                    path,
                    inner,
                    detail: "it is not a regular file".to_string(),
                });
            }
            Ok((inner, plan::Bytes(metadata.len())))
        }
        count => Err(ImageError::SeveralInnerImages {
            path,
            count,
            names: crate::download::list(&names),
        }),
    }
}

/// flash-rootA's ext4, read through `reader`.
pub(crate) fn load_ext4(reader: RestartingReader, root: &Partition) -> Result<Ext4, ImageError> {
    let path: PathBuf = reader.path().to_path_buf();
    let view = reader.range(root.start.get(), root.len.get());
    Ext4::load(Box::new(view)).map_err(|e| ext4_error(&path, root.number, e))
}

/// Our own errors (truncated, corrupt download) come through as they are.
pub(crate) fn ext4_error(path: &Path, partition: u32, error: Ext4Error) -> ImageError {
    match error {
        Ext4Error::Io(inner) => match inner.downcast::<ImageError>() {
            Ok(ours) => *ours,
            Err(other) => ImageError::FlasherRoot {
                path: path.to_path_buf(),
                partition,
                detail: other.to_string(),
            },
        },
        other => ImageError::FlasherRoot {
            path: path.to_path_buf(),
            partition,
            detail: other.to_string(),
        },
    }
}
