//! The resinOS *flasher* stand-in, delivered as a dashboard download: a `.zip` holding one
//! `.img`, with a `.sha256` file beside it. Every resinOS 2.x download for intel-nuc is a
//! flasher image (issue 15; facts in `../shared/background/resinos-images-facts.md`), so this
//! is what a customer actually hands the stager.
//!
//! Layout, after meta-resin `v2.12.5` (`image_types_resin.bbclass` 26–63, 204–264;
//! `recipes-core/images/resin-image-flasher.bb`):
//! - msdos table, 4 MiB reserved;
//! - p1 `flash-boot` (vfat, boot flag, 40 MiB): the flag file `/resin-image-flasher` ("DO NOT
//!   REMOVE THIS FILE", `.bb` line 68, `image-resin.bbclass` 269), `device-type.json` (51),
//!   `config.json` (a dashboard download carries the application's), the sample
//!   `system-connections/resin-sample.ignore`, and what balena-intel `v2.12.7+rev1` adds
//!   (`resin-image.inc`, `resin-image-flasher.bbappend`, `grub_%.bbappend`): `grub.cfg_internal`
//!   (the grub.cfg the inner image boots with), `grub/boot.img` (GRUB's boot.img truncated to
//!   446 bytes, as `do_deploy` does) and `grub/core.img` (the legacy core hard-coding
//!   `hd0,msdos1`, [`grub_boot::build_resin_core_img`]), GRUB's modules under `grub/i386-pc`,
//!   the flasher's own GRUB configuration (`grub.cfg_external`) at `/grub/grub.cfg` and
//!   `/EFI/BOOT/grub.cfg`, GRUB EFI as `EFI/BOOT/BOOTX64.EFI`, and the kernel as `/vmlinuz`;
//! - p2 `flash-rootA` (ext4 by `mkfs.ext4 -d`, just big enough): the inner image at
//!   `/opt/resin-image-genericx86-64.resinos-img` (`.bb` 53–59; machine genericx86-64 as the
//!   intel-nuc device type of that era). Copied sparse, as `cp` and `mkfs.ext4 -d` keep holes;
//! - p3 `flash-rootB` (ext4, 4 MiB: `RESIN_ROOTB_SIZE` is the alignment, `.bb` 38);
//! - p4 extended; p5 `flash-state` and p6 `flash-data`, 4 MiB each, **without any file system**
//!   (`RESIN_STATE_FS = ""`, `RESIN_DATA_FS = ""`, `.bb` 33–35).
//!
//! The flasher's MBR boots (BIOS GRUB, the same core; balena-intel `write_mbr`) its kernel
//! with an init that prints [`FLASHER_RAN_MARKER`] and wipes the first 16 MiB of the first
//! disk, as `resin-init-flasher`'s dd would destroy it: if a migration ever boots the flasher,
//! the console shows the marker and the disk is wrecked.
//!
//! Two variants ([`FlasherVariant`]): the inner image is the 2.x stand-in as it is (grub.cfg
//! and BIOS boot code inside, as in images from v2.15.1 on), or — faithful to the inner images
//! of v2.9.7–v2.14.x — one without `/grub/grub.cfg` and `/EFI/BOOT/grub.cfg` on resin-boot and
//! without MBR boot code (bytes 0..440 and sectors 1..2047 zero): there the flasher supplies
//! both (balena-intel commits 9ad47bf, 747d565, eb0b3eb; `resin-init-flasher-board` 46–62).

use crate::disk::{self, SECTOR_BYTES};
use crate::grub_boot;
use crate::guest_initramfs::build_busybox_initramfs;
use crate::kernel::TestKernel;
use crate::paths;
use crate::resin_image::{self, ResinImage, StandInPartition};
use crate::rootfs::RootTree;
use crate::stamp::{self, Fingerprint};
use crate::tools::run;
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const MIB_SECTORS: u64 = (1 << 20) / SECTOR_BYTES;

/// What a booted flasher stand-in prints before it destroys the first disk.
pub const FLASHER_RAN_MARKER: &str = "SWAPOVER-FLASHER-RAN";
/// Flag file at the root of a flasher's boot partition (meta-resin `resin-os.inc` 72).
pub const FLASHER_FLAG_FILE: &str = "resin-image-flasher";
/// Where the inner image lives in flash-rootA (`resin-image-flasher.bb` 53–59).
pub fn inner_image_path() -> String {
    format!("/opt/resin-image-{}.resinos-img", resin_image::MACHINE)
}
/// The `.img` inside the zip, named like a dashboard download
/// (`resin-<app or device type>-<OS version>-<supervisor version>.img`).
pub fn entry_name() -> String {
    format!("resin-{}-{}-v6.6.0.img", resin_image::DEVICE_TYPE, resin_image::VERSION)
}

/// Which inner image the flasher carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlasherVariant {
    /// The 2.x stand-in as built: grub.cfg at both places and BIOS boot code inside.
    InnerComplete,
    /// The inner image has no grub.cfg and no MBR boot code (v2.9.7–v2.14.x); the flasher's
    /// `grub.cfg_internal`, `grub/boot.img` and `grub/core.img` are what make it bootable.
    InnerWithoutGrub,
}

impl FlasherVariant {
    fn dir_name(self) -> &'static str {
        match self {
            FlasherVariant::InnerComplete => "flasher-standin",
            FlasherVariant::InnerWithoutGrub => "flasher-standin-nogrub",
        }
    }
}

/// The built flasher stand-in.
#[derive(Debug, Clone)]
pub struct FlasherImage {
    pub variant: FlasherVariant,
    /// The flasher disk image (what is inside the zip).
    pub raw: PathBuf,
    /// The inner image as copied into flash-rootA's `/opt`.
    pub inner_raw: PathBuf,
    /// The download: a zip holding `raw` as [`entry_name`].
    pub zip: PathBuf,
    /// `<sha256>  <zip name>`.
    pub sha256_file: PathBuf,
    /// sha256 of the `.zip` as served.
    pub zip_sha256: String,
}

/// The flasher's partitions: boot, rootA, rootB, (extended), state, data; rootA sized to hold
/// `root_a_sectors`.
pub fn partitions(root_a_sectors: u64) -> ([StandInPartition; 5], u64, u64) {
    let boot = StandInPartition {
        label: "flash-boot",
        start: 4 * MIB_SECTORS,
        sectors: 40 * MIB_SECTORS,
        mbr_type: "c",
        fs: "vfat",
    };
    let root_a = StandInPartition {
        label: "flash-rootA",
        start: boot.start + boot.sectors,
        sectors: root_a_sectors,
        mbr_type: "83",
        fs: "ext4",
    };
    let root_b = StandInPartition {
        label: "flash-rootB",
        start: root_a.start + root_a.sectors,
        sectors: 4 * MIB_SECTORS,
        mbr_type: "83",
        fs: "ext4",
    };
    let extended_start = root_b.start + root_b.sectors;
    let state = StandInPartition {
        label: "flash-state",
        start: extended_start + 4 * MIB_SECTORS,
        sectors: 4 * MIB_SECTORS,
        mbr_type: "83",
        fs: "none",
    };
    let data = StandInPartition {
        label: "flash-data",
        start: state.start + state.sectors + 4 * MIB_SECTORS,
        sectors: 4 * MIB_SECTORS,
        mbr_type: "83",
        fs: "none",
    };
    let disk_sectors = data.start + data.sectors;
    ([boot, root_a, root_b, state, data], extended_start, disk_sectors)
}

const RECIPE: &str = concat!(
    include_str!("flasher_image.rs"),
    include_str!("../assets/flasher/grub.cfg"),
    include_str!("../assets/flasher/init"),
);

impl FlasherImage {
    /// Builds (or reuses) the flasher stand-in of `variant` and its zip.
    pub fn ensure(variant: FlasherVariant) -> Result<FlasherImage> {
        let inner = ResinImage::ensure()?;
        let kernel = TestKernel::locate()?;
        let dir = paths::images_dir().join(variant.dir_name());
        let stem = entry_name().trim_end_matches(".img").to_string();
        let raw = dir.join(entry_name());
        let inner_raw = dir.join(format!("resin-image-{}.resinos-img", resin_image::MACHINE));
        let zip = dir.join(format!("{stem}.zip"));
        let sha256_file = dir.join(format!("{stem}.zip.sha256"));
        let mut fp = Fingerprint::new(RECIPE);
        fp.text(&format!("{variant:?}"))
            .text(&inner.fingerprint)
            .text(&kernel.version)
            .text(&crate::e2e::demo_config_json())
            .file(Path::new(crate::rootfs::BUSYBOX))?
            .file(&grub_boot::boot_img_path())?
            .file(&Path::new(grub_boot::GRUB_X86_64_EFI).join("kernel.img"))?;
        if !(stamp::is_fresh(&zip, &fp)
            && raw.exists()
            && inner_raw.exists()
            && sha256_file.exists())
        {
            let started = std::time::Instant::now();
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&dir)?;
            build(variant, &inner, &kernel, &dir, &inner_raw, &raw)?;
            write_zip(&raw, &zip)?;
            let sum = stamp::hex(&crate::stamp::file_sha256(&zip)?);
            let name =
                zip.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            std::fs::write(&sha256_file, format!("{sum}  {name}\n"))?;
            stamp::mark_fresh(&zip, &fp)?;
            eprintln!(
                "[harness] built flasher stand-in ({variant:?}) in {:.1}s: {} ({} bytes)",
                started.elapsed().as_secs_f64(),
                zip.display(),
                std::fs::metadata(&zip)?.len()
            );
        }
        let text = std::fs::read_to_string(&sha256_file)?;
        let zip_sha256 = text.split_whitespace().next().unwrap_or_default().to_string();
        Ok(FlasherImage { variant, raw, inner_raw, zip, sha256_file, zip_sha256 })
    }

    /// The zip's file name, as a dashboard download is named.
    pub fn download_name(&self) -> String {
        self.zip.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

/// The inner image for `variant`, written sparse to `out`.
fn make_inner(variant: FlasherVariant, inner: &ResinImage, out: &Path) -> Result<()> {
    run("cp", [std::ffi::OsStr::new("--sparse=always"), inner.raw.as_os_str(), out.as_os_str()])?;
    if variant == FlasherVariant::InnerWithoutGrub {
        // No grub.cfg on resin-boot (before v2.15.1 the flasher supplied it) ...
        let boot = disk::PartitionTable::read(out)?.number(1)?.clone();
        for path in ["/grub/grub.cfg", "/EFI/BOOT/grub.cfg"] {
            disk::delete_fat_file(out, &boot, path)?;
        }
        // ... and no BIOS boot code: MBR code area and the embedding area are zero
        // (v2.9.7+rev2–v2.14.x, balena-intel commit 9ad47bf).
        disk::write_at(out, 0, &[0u8; 440])?;
        disk::write_at(out, SECTOR_BYTES, &vec![0u8; ((2048 - 1) * SECTOR_BYTES) as usize])?;
    }
    Ok(())
}

fn build(
    variant: FlasherVariant,
    inner: &ResinImage,
    kernel: &TestKernel,
    dir: &Path,
    inner_raw: &Path,
    raw: &Path,
) -> Result<()> {
    let work = dir.join("work");
    std::fs::create_dir_all(&work)?;
    let resin_assets = paths::workspace_root().join("qemu-tests/assets/resin");
    let assets = paths::workspace_root().join("qemu-tests/assets/flasher");

    // flash-rootA: the inner image at /opt (sparse), and the flasher OS's identity.
    let root_a = RootTree { root: work.join("rootA") };
    std::fs::create_dir_all(root_a.path("opt"))?;
    let opt_image = root_a.path(&inner_image_path());
    make_inner(variant, inner, &opt_image)?;
    run(
        "cp",
        [std::ffi::OsStr::new("--sparse=always"), opt_image.as_os_str(), inner_raw.as_os_str()],
    )?;
    root_a.file(
        "etc/os-release",
        format!(
            "ID=\"resin-os\"\nNAME=\"resinOS\"\nVERSION=\"{v}\"\nVERSION_ID=\"{v}\"\n\
             PRETTY_NAME=\"resinOS {v} flasher (stand-in)\"\nMACHINE=\"{m}\"\n",
            v = resin_image::VERSION,
            m = resin_image::MACHINE
        )
        .as_bytes(),
        0o644,
    )?;
    // Just big enough: the inner image's allocated blocks, plus room for ext4's own.
    let allocated = std::fs::metadata(&opt_image)?.blocks() * 512;
    let root_a_bytes = (allocated + allocated / 8 + (16 << 20)).next_multiple_of(4 << 20);

    // flash-boot.
    let boot = RootTree { root: work.join("boot") };
    std::fs::create_dir_all(&boot.root)?;
    boot.file(FLASHER_FLAG_FILE, resin_image::FLAG_FILE_CONTENT.as_bytes(), 0o644)?;
    boot.file("device-type.json", resin_image::device_type_json().as_bytes(), 0o644)?;
    boot.file("config.json", crate::e2e::demo_config_json().as_bytes(), 0o644)?;
    boot.file(
        "system-connections/resin-sample.ignore",
        b"[connection]\nid=resin-sample\ntype=wifi\n\n[wifi]\nmode=infrastructure\nssid=My_Wifi_Ssid\n\n\
          [wifi-security]\nkey-mgmt=wpa-psk\npsk=super_secret_wifi_password\n",
        0o644,
    )?;
    boot.copy("grub.cfg_internal", &resin_assets.join("grub.cfg"), 0o644)?;
    let boot_img = std::fs::read(grub_boot::boot_img_path())?;
    boot.file("grub/boot.img", &boot_img[..446], 0o644)?;
    let core = work.join("core.img");
    grub_boot::build_resin_core_img(&core, &work)?;
    boot.copy("grub/core.img", &core, 0o644)?;
    grub_boot::copy_modules(&boot.path("grub/i386-pc"))?;
    boot.copy("grub/grub.cfg", &assets.join("grub.cfg"), 0o644)?;
    std::fs::create_dir_all(boot.path("EFI/BOOT"))?;
    grub_boot::build_efi_image(
        &boot.path("EFI/BOOT/BOOTX64.EFI"),
        "/EFI/BOOT",
        &resin_image::EFI_GRUB_MODULES,
    )?;
    boot.copy("EFI/BOOT/grub.cfg", &assets.join("grub.cfg"), 0o644)?;
    boot.copy("vmlinuz", &kernel.vmlinuz(), 0o644)?;
    let initrd = work.join("initrd");
    build_busybox_initramfs(&initrd, kernel, &std::fs::read(assets.join("init"))?)?;
    boot.copy("initrd", &initrd, 0o644)?;

    let (parts, extended_start, disk_sectors) = partitions(root_a_bytes / SECTOR_BYTES);
    disk::create_sparse(raw, disk_sectors * SECTOR_BYTES)?;
    disk::write_table(
        raw,
        &resin_image::mbr_script("0xf1a5e401", &parts, extended_start, disk_sectors),
    )?;
    let empty = work.join("empty");
    std::fs::create_dir_all(&empty)?;
    for (i, p) in parts.iter().enumerate() {
        let fs_file = work.join(format!("{}.fs", p.label));
        let bytes = p.sectors * SECTOR_BYTES;
        let content = match p.label {
            "flash-boot" => &boot.root,
            "flash-rootA" => &root_a.root,
            _ => &empty,
        };
        match p.fs {
            "vfat" => disk::mkfs_vfat(&fs_file, bytes, p.label, "f1a5b007", content)?,
            "ext4" => {
                let uuid = format!("f1a5e000-0000-4000-8000-00000000000{i}");
                disk::mkfs_ext4(&fs_file, bytes, p.label, &uuid, content, "")?
            }
            _ => continue, // flash-state, flash-data: no file system at all
        }
        disk::place_into_fresh_sparse(raw, p.start * SECTOR_BYTES, &fs_file)?;
        std::fs::remove_file(&fs_file)?;
    }
    grub_boot::install_resin_core(raw, &work).context("the flasher's own BIOS boot code")?;
    std::fs::remove_dir_all(&work)?;
    Ok(())
}

/// Zips `raw` as the one entry [`entry_name`] (deflate, fixed timestamp), as the dashboard
/// serves a download.
fn write_zip(raw: &Path, out: &Path) -> Result<()> {
    use zip::write::SimpleFileOptions;
    let file = std::fs::File::create(out)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(
            zip::DateTime::from_date_and_time(2018, 5, 2, 12, 0, 0)
                .map_err(|e| anyhow::anyhow!("zip time: {e}"))?,
        )
        .unix_permissions(0o644)
        .large_file(std::fs::metadata(raw)?.len() >= u32::MAX as u64);
    zip.start_file(entry_name(), options)?;
    let mut input = std::fs::File::open(raw)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        zip.write_all(&buf[..n])?;
    }
    let mut inner = zip.finish()?;
    inner.flush()?;
    Ok(())
}
