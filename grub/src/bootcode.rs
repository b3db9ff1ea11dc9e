//! BIOS boot code on an MBR disk, without grub-install.
//!
//! What `grub-install` (grub-setup) does for an MBR disk, and what we do:
//! - boot.img's first 440 bytes go to sector 0; bytes 440..512 (disk
//!   signature, the 0x0000 word, the partition table, 0x55AA) are kept.
//! - in that copy, the "kernel sector" field (0x5C, u64 LE) says where core.img
//!   starts: sector 1; and, as grub-setup does for a hard disk, the two-byte jump
//!   of the boot-drive check (0x66) becomes two NOPs, for BIOSes that pass a
//!   wrong drive number.
//! - core.img goes into the embedding area from sector 1. grub-mkimage already
//!   points diskboot's blocklist at sector 2 onwards for the rest of core.img,
//!   which is right for this layout, so core.img is written unchanged.
//!
//! Refused: no 0x55AA signature (no MBR), a GPT protective MBR (BIOS/GPT needs a
//! BIOS boot partition, not this), no partition at all (the end of the
//! embedding area is unknown), and core.img that does not fit before the first
//! partition. The checks happen before any byte is written.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use disk_layout::PartitionTable;
use plan::{Bytes, SectorSize, Sectors, UnitError};

/// The sector size BIOS boot code assumes.
pub const SECTOR_BYTES: u64 = 512;
/// Bytes of boot.img that go into sector 0 (the rest is the disk's own).
pub const BOOT_CODE_BYTES: usize = 440;
/// Where GRUB's i386-pc images live on Debian/Ubuntu.
pub const DEFAULT_GRUB_PC_DIR: &str = "/usr/lib/grub/i386-pc";
/// Offset of boot.img's `kernel_sector` field (GRUB_BOOT_MACHINE_KERNEL_SECTOR).
const KERNEL_SECTOR_OFFSET: usize = 0x5c;
/// Offset of boot.img's boot-drive check jump (GRUB_BOOT_MACHINE_DRIVE_CHECK).
const DRIVE_CHECK_OFFSET: usize = 0x66;
/// Partition type of a GPT protective MBR entry.
/// First sector of the embedding area.
pub const CORE_IMG_START: Sectors = Sectors(1);

/// Sectors needed to hold `bytes` bytes of core.img.
pub fn sectors_to_hold(bytes: usize) -> Sectors {
    Bytes(bytes as u64).to_sectors_round_up(SectorSize::S512)
}

#[derive(Debug, thiserror::Error)]
pub enum BootCodeError {
    #[error("disk has no MBR (sector 0 lacks the 0x55AA signature or has invalid entries): write a partition table first")]
    NoMbr,
    #[error("disk has a GPT protective MBR: BIOS boot on GPT needs a BIOS boot partition, which swapover does not support")]
    GptDisk,
    #[error("MBR has no partitions: cannot tell where the embedding area before the first partition ends")]
    NoPartitions,
    #[error("core.img needs sectors {start}..{end} but the first partition starts at sector {first_partition}: rebuild core.img with fewer modules or move the partition")]
    CoreImgTooBig { start: u64, end: u64, first_partition: u64 },
    #[error("boot.img must be exactly 512 bytes, got {0}")]
    BadBootImg(usize),
    #[error("core.img is empty")]
    EmptyCoreImg,
    #[error("disk I/O failed while installing boot code: {0}")]
    Io(#[from] io::Error),
    #[error("core.img position: {0}")]
    Units(#[from] UnitError),
    #[error("cannot run grub-mkimage (install grub-pc-bin / grub-common): {0}")]
    MkimageSpawn(io::Error),
    #[error("grub-mkimage failed for {out}: {stderr}")]
    Mkimage { out: PathBuf, stderr: String },
}

/// Where core.img will go; decided from the partition table before writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddingPlan {
    /// First sector of core.img (always 1).
    pub core_start: Sectors,
    /// Sectors core.img occupies.
    pub core_sectors: Sectors,
    /// Start of the first partition: the end of the embedding area.
    pub first_partition_start: Sectors,
}

/// Read the MBR of `disk` and decide whether `core_img_len` bytes fit. Reads only.
pub fn plan_embedding<D: Read + Seek>(
    disk: &mut D,
    core_img_len: usize,
) -> Result<EmbeddingPlan, BootCodeError> {
    if core_img_len == 0 {
        return Err(BootCodeError::EmptyCoreImg);
    }
    let mut sector0 = [0u8; SECTOR_BYTES as usize];
    disk.seek(SeekFrom::Start(0))?;
    match disk.read_exact(&mut sector0) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(BootCodeError::NoMbr),
        other => other?,
    }
    let table = PartitionTable::read_primaries(&sector0).map_err(|_| BootCodeError::NoMbr)?;
    if table.is_gpt_protective() {
        return Err(BootCodeError::GptDisk);
    }
    let first_partition_start =
        table.primaries.iter().map(|p| p.start).min().ok_or(BootCodeError::NoPartitions)?;
    let core_sectors = sectors_to_hold(core_img_len);
    let end = CORE_IMG_START.0 + core_sectors.0;
    if end > first_partition_start.0 {
        return Err(BootCodeError::CoreImgTooBig {
            start: CORE_IMG_START.0,
            end,
            first_partition: first_partition_start.0,
        });
    }
    Ok(EmbeddingPlan { core_start: CORE_IMG_START, core_sectors, first_partition_start })
}

/// The 440 bytes of boot code for sector 0, patched as grub-setup patches them for a hard disk.
pub fn boot_code_for_hard_disk(boot_img: &[u8]) -> Result<[u8; BOOT_CODE_BYTES], BootCodeError> {
    if boot_img.len() != SECTOR_BYTES as usize {
        return Err(BootCodeError::BadBootImg(boot_img.len()));
    }
    let mut code = [0u8; BOOT_CODE_BYTES];
    code.copy_from_slice(&boot_img[..BOOT_CODE_BYTES]);
    code[KERNEL_SECTOR_OFFSET..KERNEL_SECTOR_OFFSET + 8]
        .copy_from_slice(&CORE_IMG_START.0.to_le_bytes());
    code[DRIVE_CHECK_OFFSET..DRIVE_CHECK_OFFSET + 2].copy_from_slice(&[0x90, 0x90]);
    Ok(code)
}

/// Install boot.img + core.img on `disk` (an image file or a block device).
/// core.img is written first and sector 0's boot code last, so a disk
/// interrupted half-way never carries boot code pointing at a partial core.img.
pub fn install<D: Read + Write + Seek>(
    disk: &mut D,
    boot_img: &[u8],
    core_img: &[u8],
) -> Result<EmbeddingPlan, BootCodeError> {
    let code = boot_code_for_hard_disk(boot_img)?;
    let plan = plan_embedding(disk, core_img.len())?;
    disk.seek(SeekFrom::Start(plan.core_start.to_bytes(SectorSize::S512)?.get()))?;
    disk.write_all(core_img)?;
    disk.flush()?;
    disk.seek(SeekFrom::Start(0))?;
    disk.write_all(&code)?;
    disk.flush()?;
    log::info!(
        "installed GRUB boot code: core.img in sectors {}..{} (first partition at {})",
        plan.core_start.0,
        plan.core_start.0 + plan.core_sectors.0,
        plan.first_partition_start.0
    );
    Ok(plan)
}

/// Install from files: `boot_img` and `core_img` paths onto the disk at `disk_path`, then fsync.
pub fn install_files(
    disk_path: &Path,
    boot_img: &Path,
    core_img: &Path,
) -> Result<EmbeddingPlan, BootCodeError> {
    let boot = std::fs::read(boot_img)?;
    let core = std::fs::read(core_img)?;
    let mut disk = std::fs::OpenOptions::new().read(true).write(true).open(disk_path)?;
    let plan = install(&mut disk, &boot, &core)?;
    disk.sync_all()?;
    Ok(plan)
}

/// Run `grub-mkimage -O i386-pc -p PREFIX -o OUT MODULES...` (modules from
/// grub-mkimage's default directory, /usr/lib/grub/i386-pc).
pub fn build_core_img(prefix: &str, modules: &[&str], out: &Path) -> Result<(), BootCodeError> {
    run_mkimage(prefix, modules, None, out)
}

/// As [`build_core_img`], with `embedded_config` built in (`grub-mkimage -c`):
/// GRUB runs it before looking at PREFIX, so a core.img that carries its
/// modules and such a config (e.g. `search --fs-uuid --set=root UUID`,
/// `configfile ...` or a menu entry) boots without any file of the old root.
pub fn build_core_img_with_config(
    prefix: &str,
    modules: &[&str],
    embedded_config: &Path,
    out: &Path,
) -> Result<(), BootCodeError> {
    run_mkimage(prefix, modules, Some(embedded_config), out)
}

fn run_mkimage(
    prefix: &str,
    modules: &[&str],
    config: Option<&Path>,
    out: &Path,
) -> Result<(), BootCodeError> {
    let mut cmd = Command::new("grub-mkimage");
    cmd.args(["-O", "i386-pc", "-p", prefix, "-o"]).arg(out);
    if let Some(config) = config {
        cmd.arg("-c").arg(config);
    }
    let output = cmd.args(modules).output().map_err(BootCodeError::MkimageSpawn)?;
    if !output.status.success() {
        return Err(BootCodeError::Mkimage {
            out: out.to_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}
