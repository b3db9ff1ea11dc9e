//! Normal image or flasher, on real images (sfdisk, mkfs.vfat + mcopy, mkfs.ext4 -d): by
//! the flag file and by labels alone; the flasher's facts; its inner image streamed out of
//! flash-rootA's ext4 byte for byte from raw, xz, gzip and zip; flashers with no or two
//! inner images refused; the decoder restarts stay few on the walk.

mod support;

use ext4_view::Ext4;
use resin_image::{
    classify, open_inner, read_partitions, read_primary_partitions, Download, FlasherFacts,
    ImageError, ImageKind, RestartingReader,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use support::*;

struct Fixture {
    _dir: tempfile::TempDir,
    normal: PathBuf,
    flasher: PathBuf,
}

/// A normal image and a real-shaped flasher holding it, built once.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let normal_dir = dir.path().join("normal");
        let flasher_dir = dir.path().join("flasher");
        fs::create_dir_all(&normal_dir).unwrap();
        fs::create_dir_all(&flasher_dir).unwrap();
        let normal = normal_image(&normal_dir);
        let flasher = flasher_image(&flasher_dir, &FlasherSpec::real(&normal));
        Fixture { _dir: dir, normal, flasher }
    })
}

/// A flasher of `spec` in a fresh directory (kept with the returned TempDir).
fn other_flasher(spec: &FlasherSpec) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let image = flasher_image(dir.path(), spec);
    (dir, image)
}

fn flasher_facts(path: &Path) -> FlasherFacts {
    match classify(&Download::open(path).unwrap()).unwrap() {
        ImageKind::Flasher(facts) => facts,
        ImageKind::Normal => panic!("{} taken for a normal image", path.display()),
    }
}

#[test]
fn normal_image_is_normal() {
    let f = fixture();
    assert_eq!(classify(&Download::open(&f.normal).unwrap()).unwrap(), ImageKind::Normal);
    assert_eq!(classify(&Download::open(&xz(&f.normal)).unwrap()).unwrap(), ImageKind::Normal);
}

#[test]
fn flasher_is_told_by_its_flag_file_with_its_facts() {
    let f = fixture();
    let facts = flasher_facts(&f.flasher);
    assert_eq!(facts.flag_file, "/resin-image-flasher");
    assert_eq!(facts.device_type.as_deref(), Some("intel-nuc"));
    assert_eq!(facts.root_partition, 2);
    assert_eq!(facts.inner_path, format!("/opt/{INNER_NAME}"));
    assert_eq!(facts.inner_size.get(), fs::metadata(&f.normal).unwrap().len());
    assert_eq!(facts.grub_cfg_internal.as_deref(), Some(GRUB_CFG_INTERNAL));
    assert_eq!(facts.grub_boot_img.as_deref(), Some(BOOT_IMG));
    assert_eq!(facts.grub_core_img, Some(core_img()));
}

#[test]
fn flasher_is_told_by_its_labels_alone() {
    let f = fixture();
    let spec = FlasherSpec { flags: vec![], ..FlasherSpec::real(&f.normal) };
    let (_dir, image) = other_flasher(&spec);
    let facts = flasher_facts(&image);
    assert_eq!(facts.flag_file, "");
    assert_eq!(facts.root_partition, 2);
    assert_eq!(facts.inner_path, format!("/opt/{INNER_NAME}"));
}

#[test]
fn inner_image_comes_out_byte_for_byte_from_every_container() {
    let f = fixture();
    let expected = sha256_file(&f.normal);
    let dir = f.flasher.parent().unwrap();
    let containers = [
        f.flasher.clone(),
        xz(&f.flasher),
        gzip(&f.flasher),
        zip(&dir.join("flasher.zip"), &[("resin-intel-nuc-2.12.5-flasher.img", &f.flasher)]),
    ];
    for path in &containers {
        let download = Download::open(path).unwrap();
        let facts = match classify(&download).unwrap() {
            ImageKind::Flasher(facts) => facts,
            ImageKind::Normal => panic!("{} taken for normal", path.display()),
        };
        let mut inner = open_inner(&download, &facts).unwrap();
        let sha = sha256_of(&mut inner).unwrap();
        assert_eq!(sha, expected, "{}", path.display());
    }
}

#[test]
fn flasher_without_inner_image_is_refused() {
    let f = fixture();
    let spec = FlasherSpec { opt: vec![], ..FlasherSpec::real(&f.normal) };
    let (_dir, image) = other_flasher(&spec);
    let error = classify(&Download::open(&image).unwrap()).unwrap_err();
    assert!(matches!(error, ImageError::NoInnerImage { .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains("has no inner image in /opt of flash-rootA"), "{text}");
}

#[test]
fn flasher_with_two_inner_images_is_refused() {
    let f = fixture();
    let mut spec = FlasherSpec::real(&f.normal);
    spec.opt.push(("balena-image-genericx86-64.balenaos-img".to_string(), vec![0u8; 4096]));
    let (_dir, image) = other_flasher(&spec);
    let error = classify(&Download::open(&image).unwrap()).unwrap_err();
    assert!(matches!(error, ImageError::SeveralInnerImages { count: 2, .. }), "{error}");
    let text = error.to_string();
    assert!(!text.contains('\n'));
    assert!(
        text.contains("2 inner images in /opt of flash-rootA (balena-image-genericx86-64.balenaos-img, resin-image-genericx86-64.resinos-img)"),
        "{text}"
    );
}

/// The walk a classification and extraction does (table, flash-rootA's superblock, group
/// descriptors, inode tables, /opt, the inner file's data) over an xz flasher: a few
/// restarts at most, and the data in one forward pass once caching is off.
#[test]
fn restarts_stay_few_on_an_ascending_walk() {
    let f = fixture();
    let download = Download::open(&xz(&f.flasher)).unwrap();
    let mut reader = RestartingReader::for_download(&download).unwrap();
    let partitions = read_primary_partitions(&mut reader).unwrap();
    let root = partitions.iter().find(|p| p.number == 2).unwrap().clone();
    let restarts = reader.restart_counter();
    let caching = reader.caching_switch();
    let fs = Ext4::load(Box::new(reader.range(root.start.get(), root.len.get()))).unwrap();
    let mut file = fs.open(format!("/opt/{INNER_NAME}").as_str()).unwrap();
    let before_data = restarts.load(Ordering::Relaxed);
    // Sector 0, then forward into rootA: no going back.
    assert!(before_data == 0, "{before_data} restarts before the file's data");
    caching.store(false, Ordering::Relaxed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read_bytes(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    assert_eq!(total, fs::metadata(&f.normal).unwrap().len());
    // mkfs.ext4 -d puts /opt's directory block after the file's first blocks, so the walk
    // ends past the data's start: one going back, then forward only (a walk restarting per
    // read would count hundreds here).
    let after = restarts.load(Ordering::Relaxed);
    assert!(after <= before_data + 1, "the data needed {} restarts", after - before_data);
}

/// The 2.x layout as the tables say: p1–p3 primary, p4 extended (skipped), p5 and p6
/// logical; the primary reading stops before the logical ones.
#[test]
fn partition_tables_read_as_linux_numbers_them() {
    let f = fixture();
    let download = Download::open(&f.flasher).unwrap();
    let mut reader = RestartingReader::for_download(&download).unwrap();
    let all = read_partitions(&mut reader).unwrap();
    let numbers: Vec<u32> = all.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [1, 2, 3, 5, 6]);
    assert_eq!(all[0].start.get(), 4 * MIB);
    assert_eq!(all[0].mbr_type, Some(0x0C));
    let primary = read_primary_partitions(&mut reader).unwrap();
    assert_eq!(primary, all[..3]);
}
