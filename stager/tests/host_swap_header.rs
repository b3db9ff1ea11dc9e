//! The swap header as the real `mkswap` writes it; `blkid` is the second opinion.

#[path = "fixtures/fixture_host.rs"]
mod fixture_host;

use fixture_host::{mkswap_into, run, sparse_file, SECTOR};
use plan::Bytes;
use stager::host::swap_header::{self, SwapHeaderError, X86_PAGE_SIZE};
use std::process::Command;

fn blkid_value(path: &std::path::Path, offset: u64, key: &str) -> Option<String> {
    let text = run(Command::new("blkid")
        .arg("-p")
        .arg("-o")
        .arg("export")
        .arg("-O")
        .arg(offset.to_string())
        .arg(path));
    text.lines().find_map(|line| line.strip_prefix(&format!("{key}=")).map(str::to_string))
}

#[test]
fn uuid_and_label_from_mkswap() {
    let file = tempfile::NamedTempFile::new().unwrap();
    sparse_file(file.path(), 8 * 1024 * 1024);
    run(Command::new("mkswap")
        .args(["-U", "d5f1c2a4-7b3e-4c8d-9e0f-1a2b3c4d5e6f", "-L", "staging-swap"])
        .arg(file.path()));
    let header = swap_header::read_at(
        &mut std::fs::File::open(file.path()).unwrap(),
        Bytes(0),
        X86_PAGE_SIZE,
    )
    .unwrap();
    assert_eq!(header.version, 1);
    assert_eq!(header.uuid, "d5f1c2a4-7b3e-4c8d-9e0f-1a2b3c4d5e6f");
    assert_eq!(header.label.as_deref(), Some("staging-swap"));
    assert_eq!(u64::from(header.last_page) + 1, 8 * 1024 * 1024 / 4096);
    assert_eq!(blkid_value(file.path(), 0, "UUID").as_deref(), Some(header.uuid.as_str()));
    assert_eq!(blkid_value(file.path(), 0, "LABEL").as_deref(), header.label.as_deref());
}

#[test]
fn no_label_and_a_random_uuid() {
    let file = tempfile::NamedTempFile::new().unwrap();
    sparse_file(file.path(), 4 * 1024 * 1024);
    run(Command::new("mkswap").arg(file.path()));
    let header = swap_header::read_at(
        &mut std::fs::File::open(file.path()).unwrap(),
        Bytes(0),
        X86_PAGE_SIZE,
    )
    .unwrap();
    assert_eq!(header.label, None);
    assert_eq!(blkid_value(file.path(), 0, "UUID"), Some(header.uuid));
}

#[test]
fn header_inside_a_disk_image_at_the_partition_start() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    sparse_file(&image, fixture_host::DISK_SECTORS * SECTOR);
    fixture_host::sfdisk(&image, fixture_host::LEGACY_MBR_SCRIPT);
    let offset = fixture_host::SWAP_START * SECTOR;
    mkswap_into(
        &image,
        offset,
        fixture_host::SWAP_SECTORS * SECTOR,
        fixture_host::SWAP_UUID,
        Some("stem-swap"),
    );
    let mut disk = std::fs::File::open(&image).unwrap();
    let header = swap_header::read_at(&mut disk, Bytes(offset), X86_PAGE_SIZE).unwrap();
    assert_eq!(header.uuid, fixture_host::SWAP_UUID);
    assert_eq!(blkid_value(&image, offset, "UUID").as_deref(), Some(fixture_host::SWAP_UUID));
    // The root partition's start holds no swap signature.
    let err =
        swap_header::read_at(&mut disk, Bytes(fixture_host::ROOT_START * SECTOR), X86_PAGE_SIZE)
            .unwrap_err();
    assert_eq!(err, SwapHeaderError::NoMagic { offset: 4086 });
}

#[test]
fn an_ext4_filesystem_is_not_swap() {
    let file = tempfile::NamedTempFile::new().unwrap();
    sparse_file(file.path(), 8 * 1024 * 1024);
    run(Command::new("mkfs.ext4").arg("-q").arg("-F").arg(file.path()));
    let err = swap_header::read_at(
        &mut std::fs::File::open(file.path()).unwrap(),
        Bytes(0),
        X86_PAGE_SIZE,
    )
    .unwrap_err();
    assert!(matches!(err, SwapHeaderError::NoMagic { .. }), "{err}");
}

#[test]
fn a_short_device_is_an_io_error() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), b"tiny").unwrap();
    let err = swap_header::read_at(
        &mut std::fs::File::open(file.path()).unwrap(),
        Bytes(0),
        X86_PAGE_SIZE,
    )
    .unwrap_err();
    assert!(matches!(err, SwapHeaderError::Io(_)), "{err}");
}
