//! The resinOS 2.x stand-in: the real partition names, order and file systems of the
//! intel-nuc / genericx86-64 layout (meta-resin's image_types_resin.bbclass: 4 MiB reserved,
//! 4 MiB alignment, `resin-boot` vfat 40 MiB with the boot flag, `resin-rootA`, `resin-rootB`,
//! an extended partition with `resin-state` 20 MiB and `resin-data`), scaled down in the root
//! and data sizes. It boots through its own GRUB a kernel from resin-rootA whose init checks
//! what a migration delivered and prints a verdict. Like a real resinOS 2.x x86 image it is
//! hybrid: BIOS GRUB (core in its MBR gap, files under `grub/` on resin-boot) and GRUB EFI
//! (`EFI/BOOT/BOOTX64.EFI`, the firmware's removable-media default), both reading the same
//! grub.cfg. Facts: balena-intel's resin-image.inc (2.x era) puts the grub-efi bootx64.efi at
//! `/EFI/BOOT/bootx64.efi` and the BIOS GRUB files under `/grub/` on resin-boot, and its
//! balena-image.bbappend installs one grub.cfg as both `/EFI/BOOT/grub.cfg` and `/grub/grub.cfg`.
//! Shipped xz-compressed with a sha256 file, the way a real image is served.
//!
//! Like a real image (meta-resin `v2.12.5` `resin-image.bb` 61, 70; `image-resin.bbclass`
//! 269) resin-boot carries the flag file `/resin-image` ("DO NOT REMOVE THIS FILE") and the
//! machine's `device-type.json` — the very file the flasher carries too, so it names
//! `resin-image-flasher` as its yocto image even here. Its legacy BIOS GRUB core is built as
//! balena-intel's ([`grub_boot::build_resin_core_img`]: `hd0,msdos1` hard-coded). Its
//! resin-data is, as a real image's is (balena-intel facts: `docker-disk.inc` prebuilds it with
//! the preloaded supervisor), not empty: it holds a preloaded-supervisor stand-in under
//! `docker/` ([`preloaded_supervisor`]) that the verdict checks is still there, intact.

use crate::disk::{self, SECTOR_BYTES};
use crate::grub_boot;
use crate::guest_initramfs::build_busybox_initramfs;
use crate::kernel::TestKernel;
use crate::paths;
use crate::rootfs::RootTree;
use crate::stamp::{self, Fingerprint};
use crate::tools::run;
use anyhow::Result;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const MIB_SECTORS: u64 = (1 << 20) / SECTOR_BYTES;
/// Device type the stand-in claims in resin-boot's `device-type.json`.
pub const DEVICE_TYPE: &str = "intel-nuc";

/// One partition of the stand-in: (label, start, size) in sectors, MBR type, file system.
#[derive(Debug, Clone, Copy)]
pub struct StandInPartition {
    pub label: &'static str,
    pub start: u64,
    pub sectors: u64,
    pub mbr_type: &'static str,
    pub fs: &'static str,
}

impl StandInPartition {
    /// A partition of `size_mib` MiB at `start_mib` MiB.
    pub const fn mib(
        label: &'static str,
        start_mib: u64,
        size_mib: u64,
        mbr_type: &'static str,
        fs: &'static str,
    ) -> StandInPartition {
        StandInPartition {
            label,
            start: start_mib * MIB_SECTORS,
            sectors: size_mib * MIB_SECTORS,
            mbr_type,
            fs,
        }
    }
}

/// The layout, in order: boot, rootA, rootB, (extended), state, data.
pub const PARTITIONS: [StandInPartition; 5] = [
    StandInPartition {
        label: "resin-boot",
        start: 4 * MIB_SECTORS,
        sectors: 40 * MIB_SECTORS,
        mbr_type: "c",
        fs: "vfat",
    },
    StandInPartition {
        label: "resin-rootA",
        start: 44 * MIB_SECTORS,
        sectors: 96 * MIB_SECTORS,
        mbr_type: "83",
        fs: "ext4",
    },
    StandInPartition {
        label: "resin-rootB",
        start: 140 * MIB_SECTORS,
        sectors: 96 * MIB_SECTORS,
        mbr_type: "83",
        fs: "ext4",
    },
    StandInPartition {
        label: "resin-state",
        start: 240 * MIB_SECTORS,
        sectors: 20 * MIB_SECTORS,
        mbr_type: "83",
        fs: "ext4",
    },
    StandInPartition {
        label: "resin-data",
        start: 264 * MIB_SECTORS,
        sectors: 64 * MIB_SECTORS,
        mbr_type: "83",
        fs: "ext4",
    },
];
pub const EXTENDED_START: u64 = 236 * MIB_SECTORS;
pub const IMAGE_SECTORS: u64 = 328 * MIB_SECTORS;

/// Built into the GRUB EFI application (it has no module directory): what grub.cfg runs
/// (serial console, `search --label`, `echo`, `linux`/`initrd` from ext4 on an MBR disk).
pub const EFI_GRUB_MODULES: [&str; 14] = [
    "fat",
    "part_msdos",
    "ext2",
    "normal",
    "linux",
    "configfile",
    "search",
    "search_label",
    "search_fs_uuid",
    "echo",
    "serial",
    "terminal",
    "test",
    "boot",
];

/// The flag file a normal (non-flasher) image carries at the root of its boot partition.
pub const IMAGE_FLAG_FILE: &str = "resin-image";
/// Content of resinOS flag files (meta-resin `image-resin.bbclass` line 269).
pub const FLAG_FILE_CONTENT: &str = "DO NOT REMOVE THIS FILE\n";
/// The Yocto machine of the intel-nuc images of the 2.12 era (balena-intel `v2.12.7+rev1`
/// `genericx86-64.coffee`, slug intel-nuc).
pub const MACHINE: &str = "genericx86-64";
/// The version the stand-in claims.
pub const VERSION: &str = "2.12.7+rev1";

/// The fields of a `device-type.json` a tool reads.
#[derive(Debug, Clone, Copy)]
pub struct DeviceTypeJson<'a> {
    pub slug: &'a str,
    pub alias: &'a str,
    pub name: &'a str,
    pub arch: &'a str,
    /// The Yocto machine (`yocto.machine`).
    pub machine: &'a str,
    /// `yocto.version`.
    pub yocto: &'a str,
}

impl DeviceTypeJson<'_> {
    /// The file as meta-resin puts it on the boot partition (`resin-image.bb` 61), shortened to
    /// the fields a tool reads; the yocto image is the flasher's, as the board's coffee file
    /// names it.
    pub fn render(&self) -> String {
        let DeviceTypeJson { slug, alias, name, arch, machine, yocto } = *self;
        format!(
            "{{\"version\":1,\"slug\":\"{slug}\",\"aliases\":[\"{alias}\"],\"name\":\"{name}\",\
             \"arch\":\"{arch}\",\"state\":\"released\",\"yocto\":{{\"machine\":\"{machine}\",\
             \"image\":\"resin-image-flasher\",\"fstype\":\"resinos-img\",\"version\":\"{yocto}\",\
             \"deployArtifact\":\"resin-image-flasher-{machine}.resinos-img\",\"compressed\":true}},\
             \"configuration\":{{\"config\":{{\"partition\":{{\"primary\":1}},\"path\":\"/config.json\"}}}}}}\n"
        )
    }
}

/// `device-type.json` as meta-resin puts it on the boot partition of both the flasher and
/// the image inside it (`resin-image.bb` 61, `resin-image-flasher.bb` 51: the same
/// `${MACHINE}.json`, generated from balena-intel's `genericx86-64.coffee`, whose yocto image
/// is `resin-image-flasher`), shortened to the fields a tool reads.
pub fn device_type_json() -> String {
    DeviceTypeJson {
        slug: DEVICE_TYPE,
        alias: "nuc",
        name: "Intel NUC",
        arch: "amd64",
        machine: MACHINE,
        yocto: "yocto-rocko",
    }
    .render()
}

/// The preloaded-supervisor stand-in on resin-data: `(path relative to resin-data, content)`.
/// A real resin-data holds the supervisor image in balena's storage under `docker/`; this is
/// its index (`repositories.json`) and one 1 MiB layer file of deterministic bytes, enough to
/// see whether a migration left it in place and intact or wrote customer data over it.
pub fn preloaded_supervisor() -> Vec<(String, Vec<u8>)> {
    let mut state: u64 = 0x5eed_0f05_u64.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let layer: Vec<u8> = (0..(1 << 20) / 8)
        .flat_map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes()
        })
        .collect();
    let layer_id = crate::stamp::hex(&Sha256::digest(&layer));
    let index = format!(
        "{{\"Repositories\":{{\"resin/amd64-supervisor\":{{\"resin/amd64-supervisor:v6.6.0\":\"sha256:{layer_id}\"}}}}}}\n"
    );
    vec![
        ("docker/image/overlay2/repositories.json".to_string(), index.into_bytes()),
        (format!("docker/overlay2/{layer_id}/diff/usr/src/app/supervisor.bin"), layer),
    ]
}

/// The verdict init with the preloaded supervisor's checksums (`sha256sum -c` lines) filled in.
pub fn verdict_init(assets: &Path) -> Result<Vec<u8>> {
    let template = std::fs::read_to_string(assets.join("verdict-init"))?;
    let sums: String = preloaded_supervisor()
        .iter()
        .map(|(path, data)| format!("{}  ./{path}\n", crate::stamp::hex(&Sha256::digest(data))))
        .collect();
    anyhow::ensure!(template.contains("@PRELOADED_SUMS@"), "verdict-init lost its placeholder");
    Ok(template.replace("@PRELOADED_SUMS@", sums.trim_end()).into_bytes())
}

const RECIPE: &str = concat!(
    include_str!("resin_image.rs"),
    include_str!("rootfs.rs"),
    include_str!("grub_boot.rs"),
    include_str!("guest_initramfs.rs"),
    include_str!("../assets/resin/grub.cfg"),
    include_str!("../assets/resin/verdict-init"),
);

/// The built stand-in: raw image, its xz and sha256 files.
#[derive(Debug, Clone)]
pub struct ResinImage {
    pub raw: PathBuf,
    pub xz: PathBuf,
    pub sha256_file: PathBuf,
    /// sha256 of the `.xz` file as served.
    pub xz_sha256: String,
    /// Fingerprint of everything the stand-in is built from (images built from it use it).
    pub fingerprint: String,
}

impl ResinImage {
    pub fn ensure() -> Result<ResinImage> {
        let kernel = TestKernel::locate()?;
        let dir = paths::images_dir();
        let raw = dir.join("resinos-standin.img");
        let xz = dir.join("resinos-standin.img.xz");
        let sha256_file = dir.join("resinos-standin.img.xz.sha256");
        let mut fp = Fingerprint::new(RECIPE);
        fp.text(&kernel.version)
            .file(Path::new(crate::rootfs::BUSYBOX))?
            .file(&grub_boot::boot_img_path())?
            .file(&Path::new(grub_boot::GRUB_X86_64_EFI).join("kernel.img"))?;
        if !(stamp::is_fresh(&xz, &fp) && raw.exists() && sha256_file.exists()) {
            let started = std::time::Instant::now();
            build(&kernel, &raw, &xz, &sha256_file)?;
            stamp::mark_fresh(&xz, &fp)?;
            eprintln!(
                "[harness] built resinOS stand-in in {:.1}s",
                started.elapsed().as_secs_f64()
            );
        }
        let text = std::fs::read_to_string(&sha256_file)?;
        let xz_sha256 = text.split_whitespace().next().unwrap_or_default().to_string();
        Ok(ResinImage { raw, xz, sha256_file, xz_sha256, fingerprint: fp.hex() })
    }

    /// A fresh writable copy of the raw image (for booting the stand-in directly).
    pub fn fresh_raw_copy(&self, name: &str) -> Result<PathBuf> {
        let dst = paths::artifacts_dir().join("runs").join(format!("{name}.img"));
        if let Some(d) = dst.parent() {
            std::fs::create_dir_all(d)?;
        }
        run(
            "cp",
            [std::ffi::OsStr::new("--sparse=always"), self.raw.as_os_str(), dst.as_os_str()],
        )?;
        Ok(dst)
    }
}

/// The sfdisk script of a resinOS MBR disk of `disk_sectors`: three primaries (the first
/// bootable), the extended partition from `extended_start` to the end, two logicals.
pub fn mbr_script(
    label_id: &str,
    parts: &[StandInPartition; 5],
    extended_start: u64,
    disk_sectors: u64,
) -> String {
    let line = |p: &StandInPartition| {
        format!("start={}, size={}, type={}", p.start, p.sectors, p.mbr_type)
    };
    let mut script = format!(
        "label: dos\nlabel-id: {label_id}\nunit: sectors\n\n{}, bootable\n",
        line(&parts[0])
    );
    for p in &parts[1..3] {
        script += &format!("{}\n", line(p));
    }
    script += &format!("start={extended_start}, size={}, type=5\n", disk_sectors - extended_start);
    for p in &parts[3..] {
        script += &format!("{}\n", line(p));
    }
    script
}

/// Compresses `raw` into `xz` (`xz -T2 -<level>`, `raw` kept) and writes `sha256_file` as
/// `sha256sum` does, the way an image is served.
pub fn serve_compressed(raw: &Path, xz: &Path, sha256_file: &Path, level: u32) -> Result<()> {
    run(
        "xz",
        [
            "-T2".to_string(),
            format!("-{level}"),
            "-k".into(),
            "-f".into(),
            raw.display().to_string(),
        ],
    )?;
    let digest = crate::stamp::hex(&crate::stamp::file_sha256(xz)?);
    let name = xz.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    std::fs::write(sha256_file, format!("{digest}  {name}\n"))?;
    Ok(())
}

fn build(kernel: &TestKernel, raw: &Path, xz: &Path, sha256_file: &Path) -> Result<()> {
    let work = paths::images_dir().join("resinos-standin-work");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let assets = paths::workspace_root().join("qemu-tests/assets/resin");

    // resin-boot: GRUB's files (BIOS and EFI, one grub.cfg at both places) and the device
    // type, as the real boot partition carries them.
    let boot = RootTree { root: work.join("boot") };
    std::fs::create_dir_all(&boot.root)?;
    boot.copy("grub/grub.cfg", &assets.join("grub.cfg"), 0o644)?;
    grub_boot::copy_modules(&boot.path("grub/i386-pc"))?;
    std::fs::create_dir_all(boot.path("EFI/BOOT"))?;
    grub_boot::build_efi_image(&boot.path("EFI/BOOT/BOOTX64.EFI"), "/EFI/BOOT", &EFI_GRUB_MODULES)?;
    boot.copy("EFI/BOOT/grub.cfg", &assets.join("grub.cfg"), 0o644)?;
    boot.file("device-type.json", device_type_json().as_bytes(), 0o644)?;
    boot.file(IMAGE_FLAG_FILE, FLAG_FILE_CONTENT.as_bytes(), 0o644)?;
    boot.file("os-release", b"ID=\"resin-os\"\nNAME=\"resinOS\"\nVERSION_ID=\"2.12.7\"\n", 0o644)?;

    // resin-rootA: the kernel and the verdict initramfs.
    let root_a = RootTree { root: work.join("rootA") };
    std::fs::create_dir_all(&root_a.root)?;
    root_a.copy("boot/bzImage", &kernel.vmlinuz(), 0o644)?;
    let initramfs = work.join("initramfs");
    build_busybox_initramfs(&initramfs, kernel, &verdict_init(&assets)?)?;
    root_a.copy("boot/initramfs", &initramfs, 0o644)?;
    root_a.file(
        "etc/os-release",
        b"ID=\"resin-os\"\nNAME=\"resinOS\"\nVERSION=\"2.12.7+rev1\"\nVERSION_ID=\"2.12.7+rev1\"\nPRETTY_NAME=\"resinOS 2.12.7+rev1 (stand-in)\"\nMACHINE=\"intel-nuc\"\n",
        0o644,
    )?;
    let empty = work.join("empty");
    std::fs::create_dir_all(&empty)?;
    // resin-data: the preloaded supervisor, as the image's prebuilt data partition holds it.
    let data = RootTree { root: work.join("data") };
    std::fs::create_dir_all(&data.root)?;
    for (path, content) in preloaded_supervisor() {
        data.file(&path, &content, 0o644)?;
    }

    disk::create_sparse(raw, IMAGE_SECTORS * SECTOR_BYTES)?;
    disk::write_table(raw, &mbr_script("0x7e5a0b01", &PARTITIONS, EXTENDED_START, IMAGE_SECTORS))?;

    for (i, p) in PARTITIONS.iter().enumerate() {
        let fs_file = work.join(format!("{}.fs", p.label));
        let bytes = p.sectors * SECTOR_BYTES;
        let content = match p.label {
            "resin-boot" => &boot.root,
            "resin-rootA" => &root_a.root,
            "resin-data" => &data.root,
            _ => &empty,
        };
        if p.fs == "vfat" {
            disk::mkfs_vfat(&fs_file, bytes, p.label, "a0b0c0d0", content)?;
        } else {
            let uuid = format!("0e51a000-0000-4000-8000-00000000000{i}");
            disk::mkfs_ext4(&fs_file, bytes, p.label, &uuid, content, "")?;
        }
        disk::place_into_fresh_sparse(raw, p.start * SECTOR_BYTES, &fs_file)?;
    }
    grub_boot::install_resin_core(raw, &work)?;

    serve_compressed(raw, xz, sha256_file, 6)?;
    std::fs::remove_dir_all(&work)?;
    Ok(())
}
