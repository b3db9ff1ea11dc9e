//! The flasher stand-ins, checked without booting: a dashboard-style zip holding one `.img`
//! whose sha256 file matches; the flasher layout (labels, boot flag, rootB of 4 MiB, state and
//! data without file system); the flag file, device-type.json, grub.cfg_internal and BIOS
//! boot code on flash-boot; the inner image at flash-rootA's /opt, read back with debugfs; the
//! variant's inner image without grub.cfg and boot code; and the 2.x stand-in's preloaded
//! supervisor on resin-data.

use qemu_tests::disk::{self, PartitionTable, TablePartition, SECTOR_BYTES};
use qemu_tests::flasher_image::{self, FlasherImage, FlasherVariant};
use qemu_tests::paths;
use qemu_tests::resin_image::{self, ResinImage};
use qemu_tests::stamp::hex;
use qemu_tests::tools::run;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

fn sha256_stream(mut r: impl Read) -> anyhow::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    sha256_stream(std::fs::File::open(path)?)
}

/// `blkid -p` of one partition: (TYPE, LABEL), empty when no file system is found.
fn probe(image: &Path, part: &TablePartition) -> (String, String) {
    let out = std::process::Command::new("blkid")
        .args(["-p", "-o", "export", "-O", &part.offset_bytes().to_string()])
        .arg(image)
        .output()
        .expect("blkid");
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_default()
            .to_string()
    };
    (value("TYPE"), value("LABEL"))
}

fn check_flasher(flasher: &FlasherImage) -> anyhow::Result<()> {
    // The download: one .img in a zip, the sha256 file naming the zip.
    let sums = std::fs::read_to_string(&flasher.sha256_file)?;
    assert_eq!(sums, format!("{}  {}\n", sha256_file(&flasher.zip)?, flasher.download_name()));
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&flasher.zip)?)?;
    assert_eq!(archive.len(), 1, "the download must hold exactly one image");
    let entry = archive.by_index(0)?;
    assert_eq!(entry.name()?, flasher_image::entry_name());
    assert_eq!(entry.compression(), zip::CompressionMethod::Deflated);
    assert_eq!(entry.size(), std::fs::metadata(&flasher.raw)?.len());
    assert_eq!(sha256_stream(entry)?, sha256_file(&flasher.raw)?, "zip entry != flasher image");

    // The flasher's table: p1..p6, boot flag on p1, extended and flash-data to the disk's end.
    let raw = &flasher.raw;
    let table = PartitionTable::read(raw)?;
    assert_eq!(table.label, "dos");
    let numbers: Vec<u32> =
        table.partitions.iter().map(|p| p.number()).collect::<Result<_, _>>()?;
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
    assert!(table.number(1)?.bootable && !table.number(2)?.bootable);
    assert_eq!(table.number(1)?.start, 4 << 11, "4 MiB reserved before flash-boot");
    assert_eq!(table.number(4)?.kind, "5");
    assert_eq!(table.number(3)?.len_bytes(), 4 << 20, "flash-rootB is 4 MiB");
    let disk_sectors = std::fs::metadata(raw)?.len() / SECTOR_BYTES;
    for n in [4, 6] {
        let p = table.number(n)?;
        assert_eq!(p.start + p.size, disk_sectors, "partition {n} must end at the disk's end");
    }
    let fs: Vec<(String, String)> = [1, 2, 3, 5, 6]
        .iter()
        .map(|n| Ok(probe(raw, table.number(*n)?)))
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(
        fs,
        [
            ("vfat".into(), "flash-boot".into()),
            ("ext4".into(), "flash-rootA".into()),
            ("ext4".into(), "flash-rootB".into()),
            (String::new(), String::new()),
            (String::new(), String::new()),
        ],
        "labels and file systems (flash-state and flash-data carry none)"
    );
    // rootA just big enough: well under the inner image's 328 MiB (it is stored sparse).
    assert!(table.number(2)?.len_bytes() < 200 << 20, "{:?}", table.number(2)?);

    // flash-boot: flag file, device type, grub.cfg_internal, BIOS GRUB for the inner image.
    let boot = table.number(1)?;
    assert_eq!(
        disk::read_fat_file(raw, boot, &format!("/{}", flasher_image::FLASHER_FLAG_FILE))?,
        b"DO NOT REMOVE THIS FILE\n"
    );
    assert!(
        disk::read_fat_file(raw, boot, &format!("/{}", resin_image::IMAGE_FLAG_FILE)).is_err(),
        "a flasher has no /resin-image flag file"
    );
    let dt: serde_json::Value =
        serde_json::from_slice(&disk::read_fat_file(raw, boot, "/device-type.json")?)?;
    assert_eq!(dt["slug"], "intel-nuc");
    assert_eq!(dt["yocto"]["machine"], resin_image::MACHINE);
    let assets = paths::workspace_root().join("qemu-tests/assets");
    assert_eq!(
        disk::read_fat_file(raw, boot, "/grub.cfg_internal")?,
        std::fs::read(assets.join("resin/grub.cfg"))?
    );
    let boot_img = disk::read_fat_file(raw, boot, "/grub/boot.img")?;
    assert_eq!(boot_img, std::fs::read(qemu_tests::grub_boot::boot_img_path())?[..446]);
    let core_img = disk::read_fat_file(raw, boot, "/grub/core.img")?;
    assert!(core_img.len() > 20_000 && core_img.len() < 2047 * 512, "{}", core_img.len());
    // The flasher boots by the same core (its own MBR gap holds it).
    assert_eq!(disk::read_at(raw, 512, core_img.len())?, core_img);
    assert_eq!(
        disk::read_fat_file(raw, boot, "/grub/grub.cfg")?,
        std::fs::read(assets.join("flasher/grub.cfg"))?
    );
    assert!(disk::read_fat_file(raw, boot, "/vmlinuz")?.len() > 1 << 20);

    // flash-rootA: /opt holds exactly the inner image, byte for byte.
    let root_a = table.number(2)?;
    let opt = disk::list_ext4_dir(raw, root_a, "/opt")?;
    assert_eq!(opt, [format!("resin-image-{}.resinos-img", resin_image::MACHINE)]);
    let dumped =
        paths::artifacts_dir().join(format!("flasher-standin-test-{:?}.img", flasher.variant));
    let spec = format!("{}?offset={}", raw.display(), root_a.offset_bytes());
    run(
        "debugfs",
        [
            "-R".to_string(),
            format!("dump {} {}", flasher_image::inner_image_path(), dumped.display()),
            spec,
        ],
    )?;
    let same = sha256_file(&dumped)? == sha256_file(&flasher.inner_raw)?;
    std::fs::remove_file(&dumped)?;
    assert!(same, "flash-rootA's /opt image differs from the inner image");
    Ok(())
}

/// The inner image: the 2.x stand-in's layout, flag file and preloaded supervisor; grub.cfg
/// and boot code present or absent as `with_grub` says.
fn check_inner(inner: &Path, with_grub: bool) -> anyhow::Result<()> {
    let standin = ResinImage::ensure()?;
    let table = PartitionTable::read(inner)?;
    let shape = |t: &PartitionTable| {
        t.partitions.iter().map(|p| (p.start, p.size, p.kind.clone())).collect::<Vec<_>>()
    };
    assert_eq!(shape(&table), shape(&PartitionTable::read(&standin.raw)?));
    assert_eq!(std::fs::metadata(inner)?.len(), resin_image::IMAGE_SECTORS * SECTOR_BYTES);
    let boot = table.number(1)?;
    assert_eq!(
        disk::read_fat_file(inner, boot, &format!("/{}", resin_image::IMAGE_FLAG_FILE))?,
        b"DO NOT REMOVE THIS FILE\n"
    );
    for cfg in ["/grub/grub.cfg", "/EFI/BOOT/grub.cfg"] {
        assert_eq!(disk::read_fat_file(inner, boot, cfg).is_ok(), with_grub, "{cfg}");
    }
    let code = disk::read_at(inner, 0, 440)?;
    let gap = disk::read_at(inner, 512, (2047 * 512) as usize)?;
    let zero = code.iter().all(|b| *b == 0) && gap.iter().all(|b| *b == 0);
    assert_eq!(!zero, with_grub, "MBR boot code present = {}", !zero);
    assert_eq!(disk::read_at(inner, 510, 2)?, [0x55, 0xaa], "the table stays");
    // resin-data: the preloaded supervisor, as a real image's prebuilt resin-data holds it.
    let data = table.number(6)?;
    for (path, content) in resin_image::preloaded_supervisor() {
        assert_eq!(disk::read_ext4_file(inner, data, &format!("/{path}"))?, content, "{path}");
    }
    Ok(())
}

#[test]
fn flasher_standins_are_faithful_downloads() -> anyhow::Result<()> {
    let complete = FlasherImage::ensure(FlasherVariant::InnerComplete)?;
    check_flasher(&complete)?;
    check_inner(&complete.inner_raw, true)?;
    let nogrub = FlasherImage::ensure(FlasherVariant::InnerWithoutGrub)?;
    check_flasher(&nogrub)?;
    check_inner(&nogrub.inner_raw, false)?;
    assert_ne!(complete.zip_sha256, nogrub.zip_sha256);
    Ok(())
}
