//! Containers of downloads, on real files: sniffing by content (xz, gzip, zip, raw, whatever
//! the name says), zips with one, no and two disk images, truncated xz and gzip, a zip entry
//! with a damaged byte. Every refusal is one line.

mod support;

use resin_image::{sniff, Container, Download, ImageError};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use support::*;

/// One normal image and its containers, built once for this file's tests.
struct Fixture {
    _dir: tempfile::TempDir,
    image: PathBuf,
    xz: PathBuf,
    gz: PathBuf,
    zip: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let image = normal_image(dir.path());
        let xz = xz(&image);
        let gz = gzip(&image);
        let readme = dir.path().join("README.txt");
        fs::write(&readme, "Flash this image with balenaEtcher.\n").unwrap();
        let zip = zip(
            &dir.path().join("resin.zip"),
            &[("README.txt", &readme), ("resin-intel-nuc-2.12.5.img", &image)],
        );
        Fixture { _dir: dir, image, xz, gz, zip }
    })
}

fn one_line(error: &ImageError) -> String {
    let text = error.to_string();
    assert!(!text.contains('\n'), "not one line: {text}");
    text
}

/// Decodes the whole stream, returning its SHA-256 or the error it ends with.
fn decode_all(download: &Download) -> Result<String, ImageError> {
    let mut stream = download.decoded()?;
    sha256_of(&mut stream).map_err(|e| ImageError::from_io(download.path(), e))
}

fn copy_named(from: &Path, name: &str) -> PathBuf {
    let to = from.parent().unwrap().join(name);
    fs::copy(from, &to).unwrap();
    to
}

#[test]
fn sniffs_by_content_not_by_name() {
    let f = fixture();
    assert_eq!(sniff(&f.image).unwrap(), Container::Raw);
    assert_eq!(sniff(&f.xz).unwrap(), Container::Xz);
    assert_eq!(sniff(&f.gz).unwrap(), Container::Gzip);
    assert_eq!(sniff(&f.zip).unwrap(), Container::Zip);
    // Names that lie.
    assert_eq!(sniff(&copy_named(&f.xz, "xz-named.img")).unwrap(), Container::Xz);
    assert_eq!(sniff(&copy_named(&f.gz, "gz-named.img.xz")).unwrap(), Container::Gzip);
    assert_eq!(sniff(&copy_named(&f.zip, "zip-named.img.gz")).unwrap(), Container::Zip);
    assert_eq!(sniff(&copy_named(&f.image, "raw-named.zip")).unwrap(), Container::Raw);
}

#[test]
fn every_container_decodes_to_the_same_image() {
    let f = fixture();
    let expected = sha256_file(&f.image);
    for path in [&f.image, &f.xz, &f.gz, &f.zip] {
        let download = Download::open(path).unwrap();
        assert_eq!(decode_all(&download).unwrap(), expected, "{}", path.display());
        // Each call starts again from byte 0.
        assert_eq!(decode_all(&download).unwrap(), expected, "{}", path.display());
    }
    let zipped = Download::open(&f.zip).unwrap();
    assert_eq!(zipped.container(), Container::Zip);
    assert_eq!(zipped.entry_name(), Some("resin-intel-nuc-2.12.5.img"));
    assert_eq!(Download::open(&f.gz).unwrap().entry_name(), None);
}

#[test]
fn zip_without_a_disk_image_is_refused_naming_its_entries() {
    let f = fixture();
    let dir = f.image.parent().unwrap();
    let notes = dir.join("notes.txt");
    fs::write(&notes, "release notes\n").unwrap();
    let zip = zip(&dir.join("no-image.zip"), &[("README.txt", &notes), ("docs/notes.txt", &notes)]);
    let error = Download::open(&zip).unwrap_err();
    assert!(matches!(error, ImageError::ZipNoImage { .. }), "{error}");
    let text = one_line(&error);
    assert!(text.contains("README.txt, docs/notes.txt"), "{text}");
    assert!(text.contains("download the resinOS image again"), "{text}");
}

#[test]
fn zip_with_two_disk_images_is_refused_naming_them() {
    let f = fixture();
    let dir = f.image.parent().unwrap();
    let zip = zip(&dir.join("two.zip"), &[("a.img", &f.image), ("b.img", &f.image)]);
    let error = Download::open(&zip).unwrap_err();
    assert!(matches!(error, ImageError::ZipSeveralImages { count: 2, .. }), "{error}");
    let text = one_line(&error);
    assert!(text.contains("2 disk images (a.img, b.img); give one image"), "{text}");
}

#[test]
fn a_file_that_is_no_disk_image_is_refused() {
    let f = fixture();
    let text_file = f.image.parent().unwrap().join("page.img");
    fs::write(&text_file, "<html>404 Not Found</html>\n".repeat(40)).unwrap();
    let error = Download::open(&text_file).unwrap_err();
    assert!(matches!(error, ImageError::NotADiskImage { .. }), "{error}");
    one_line(&error);
}

fn truncated_copy(path: &Path, name: &str) -> PathBuf {
    let bytes = fs::read(path).unwrap();
    let to = path.parent().unwrap().join(name);
    fs::write(&to, &bytes[..bytes.len() / 2]).unwrap();
    to
}

#[test]
fn truncated_xz_and_gzip_are_told_apart_from_read_errors() {
    let f = fixture();
    for (path, what) in [
        (truncated_copy(&f.xz, "cut.img.xz"), "xz stream"),
        (truncated_copy(&f.gz, "cut.img.gz"), "gzip stream"),
    ] {
        // The first sector still decodes: opening works, reading to the end does not.
        let download = Download::open(&path).unwrap();
        let error = decode_all(&download).unwrap_err();
        assert!(matches!(&error, ImageError::Truncated { what: w, .. } if w == what), "{error}");
        assert!(error.is_damaged_download());
        let text = one_line(&error);
        assert!(text.contains("is truncated: its") && text.contains("download it again"), "{text}");
    }
}

#[test]
fn corrupt_zip_entry_is_refused_in_one_line() {
    let f = fixture();
    let mut bytes = fs::read(&f.zip).unwrap();
    // Find the image entry's compressed data and damage a byte in its middle.
    let (start, len) = {
        let mut archive = zip::ZipArchive::new(fs::File::open(&f.zip).unwrap()).unwrap();
        let entry = archive.by_name("resin-intel-nuc-2.12.5.img").unwrap();
        (entry.data_start().unwrap(), entry.compressed_size())
    };
    bytes[(start + len / 2) as usize] ^= 0x5A;
    let damaged = f.image.parent().unwrap().join("damaged.zip");
    fs::write(&damaged, &bytes).unwrap();
    let download = Download::open(&damaged).unwrap();
    let error = decode_all(&download).unwrap_err();
    assert!(matches!(error, ImageError::ZipEntryCorrupt { .. }), "{error}");
    assert!(error.is_damaged_download());
    let text = one_line(&error);
    assert!(text.starts_with("entry resin-intel-nuc-2.12.5.img of the zip"), "{text}");
    assert!(text.ends_with("download it again"), "{text}");
}

#[test]
fn a_plain_read_failure_is_not_called_damage() {
    let missing = std::env::temp_dir().join("resin-image-test-does-not-exist.img");
    let error = sniff(&missing).unwrap_err();
    assert!(matches!(error, ImageError::Read { .. }), "{error}");
    assert!(!error.is_damaged_download());
    // And an io::Error from elsewhere stays a read error through from_io.
    let error = ImageError::from_io(&missing, io::Error::other("disk on fire"));
    assert!(matches!(error, ImageError::Read { .. }), "{error}");
}
