//! The newc writer against the real GNU cpio and compressors.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use common::{
    cpio_extract, cpio_list, cpio_list_verbose, decompress_with_cli, device_major, device_minor,
};
use initramfs::cpio::{CpioWriter, DeviceNumber};
use initramfs::Compression;

const SCRIPT: &[u8] = b"#!/bin/sh\necho hello\n";

/// One archive with every entry kind; `host_file` is archived from disk.
fn sample_archive(host_file: &std::path::Path) -> Vec<u8> {
    let mut writer = CpioWriter::new(Vec::new());
    sample_entries(&mut writer, host_file);
    writer.finish().unwrap()
}

fn sample_entries<W: std::io::Write>(writer: &mut CpioWriter<W>, host_file: &std::path::Path) {
    writer.directory("etc", 0o750).unwrap();
    writer.file_from_bytes("/etc/motd", 0o640, b"welcome\n").unwrap();
    writer.file_from_bytes("bin/run", 0o755, SCRIPT).unwrap();
    writer.file_from_bytes("empty", 0o600, b"").unwrap();
    writer.file_from_reader("data/stream.bin", 0o644, 5, &b"abcdefgh"[..]).unwrap();
    writer.file_from_path("data/host.bin", 0o444, host_file).unwrap();
    writer.symlink("bin/sh", "run").unwrap();
    writer.symlink("abs-link", "/etc/motd").unwrap();
    writer.char_device("dev/console", 0o600, DeviceNumber::new(5, 1)).unwrap();
    writer.block_device("dev/sda1", 0o660, DeviceNumber::new(8, 1)).unwrap();
    writer.char_device("dev/big", 0o600, DeviceNumber::new(511, 70000)).unwrap();
}

fn host_file(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let contents: Vec<u8> = (0..10_007u32).map(|i| (i * 13 % 256) as u8).collect();
    let path = dir.join("host.bin");
    fs::write(&path, &contents).unwrap();
    (path, contents)
}

#[test]
fn cpio_lists_every_entry_in_order_with_parents_first() {
    let scratch = tempfile::tempdir().unwrap();
    let (host_path, _) = host_file(scratch.path());
    let archive = sample_archive(&host_path);
    assert_eq!(
        cpio_list(&archive),
        [
            "etc",
            "etc/motd",
            "bin",
            "bin/run",
            "empty",
            "data",
            "data/stream.bin",
            "data/host.bin",
            "bin/sh",
            "abs-link",
            "dev",
            "dev/console",
            "dev/sda1",
            "dev/big",
        ]
    );
}

#[test]
fn cpio_extracts_contents_modes_links_and_device_numbers() {
    let scratch = tempfile::tempdir().unwrap();
    let (host_path, host_contents) = host_file(scratch.path());
    let archive = sample_archive(&host_path);
    let root = scratch.path().join("root");
    fs::create_dir(&root).unwrap();
    cpio_extract(&archive, &root);

    assert_eq!(fs::read(root.join("etc/motd")).unwrap(), b"welcome\n");
    assert_eq!(fs::read(root.join("bin/run")).unwrap(), SCRIPT);
    assert_eq!(fs::read(root.join("empty")).unwrap(), b"");
    assert_eq!(fs::read(root.join("data/stream.bin")).unwrap(), b"abcde");
    assert_eq!(fs::read(root.join("data/host.bin")).unwrap(), host_contents);

    let mode =
        |path: &str| fs::symlink_metadata(root.join(path)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("etc"), 0o750);
    assert_eq!(mode("etc/motd"), 0o640);
    assert_eq!(mode("bin"), 0o755, "implied parent directories are 0755");
    assert_eq!(mode("bin/run"), 0o755);
    assert_eq!(mode("empty"), 0o600);
    assert_eq!(mode("data/host.bin"), 0o444);

    assert_eq!(fs::read_link(root.join("bin/sh")).unwrap().to_str(), Some("run"));
    assert_eq!(fs::read_link(root.join("abs-link")).unwrap().to_str(), Some("/etc/motd"));
    assert_eq!(fs::read(root.join("bin/sh")).unwrap(), SCRIPT);

    for (path, is_char, major, minor, perm) in [
        ("dev/console", true, 5, 1, 0o600),
        ("dev/sda1", false, 8, 1, 0o660),
        ("dev/big", true, 511, 70000, 0o600),
    ] {
        let metadata = fs::symlink_metadata(root.join(path)).unwrap();
        let file_type = metadata.file_type();
        assert_eq!(file_type.is_char_device(), is_char, "{path}");
        assert_eq!(file_type.is_block_device(), !is_char, "{path}");
        assert_eq!(device_major(metadata.rdev()), major, "{path}");
        assert_eq!(device_minor(metadata.rdev()), minor, "{path}");
        assert_eq!(metadata.permissions().mode() & 0o7777, perm, "{path}");
        assert_eq!((metadata.uid(), metadata.gid()), (0, 0), "{path}");
    }
}

#[test]
fn cpio_verbose_listing_shows_root_ownership_and_device_numbers() {
    let scratch = tempfile::tempdir().unwrap();
    let (host_path, _) = host_file(scratch.path());
    let listing = cpio_list_verbose(&sample_archive(&host_path));
    let line = |name: &str| {
        listing
            .iter()
            .find(|line| {
                line.ends_with(&format!(" {name}")) || line.contains(&format!(" {name} -> "))
            })
            .unwrap_or_else(|| panic!("{name} not in {listing:#?}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let console = line("dev/console");
    assert_eq!(&console[..6], ["crw-------", "1", "0", "0", "5,", "1"]);
    let disk = line("dev/sda1");
    assert_eq!(&disk[..6], ["brw-rw----", "1", "0", "0", "8,", "1"]);
    let symlink = line("bin/sh");
    assert_eq!(symlink[0], "lrwxrwxrwx");
    assert_eq!(symlink[symlink.len() - 1], "run");
}

#[test]
fn every_padding_remainder_is_read_back_by_cpio() {
    // Names of 1..=8 bytes and files of 0..=4 bytes cover every alignment
    // of both the name and the data.
    let mut writer = CpioWriter::new(Vec::new());
    let mut expected = Vec::new();
    for name_len in 1..=8 {
        for data_len in 0..=4 {
            let name = format!("{}{}", "n".repeat(name_len), data_len);
            let data = vec![b'a' + data_len as u8; data_len];
            writer.file_from_bytes(&name, 0o644, &data).unwrap();
            expected.push((name, data));
        }
    }
    let archive = writer.finish().unwrap();
    assert_eq!(archive.len() % 4, 0);
    let scratch = tempfile::tempdir().unwrap();
    cpio_extract(&archive, scratch.path());
    for (name, data) in expected {
        assert_eq!(fs::read(scratch.path().join(&name)).unwrap(), data, "{name}");
    }
}

/// The bytes of a one-file archive, written out from the newc
/// specification: a 110-byte header, the name and its NUL padded to 4,
/// the data padded to 4, and the trailer padded to 4.
#[test]
fn bytes_follow_the_newc_specification() {
    let mut writer = CpioWriter::with_mtime(Vec::new(), 0x5f5e_1000);
    writer.file_from_bytes("a", 0o644, b"hi").unwrap();
    let archive = writer.finish().unwrap();

    let mut expected = Vec::new();
    expected.extend_from_slice(b"070701");
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    for field in [
        "00000001", "000081A4", "00000000", "00000000", "00000001", "5F5E1000", "00000002",
        "00000000", "00000000", "00000000", "00000000", "00000002", "00000000",
    ] {
        expected.extend_from_slice(field.as_bytes());
    }
    expected.extend_from_slice(b"a\0"); // 112 bytes: aligned
    expected.extend_from_slice(b"hi\0\0"); // data + 2 bytes of padding
    expected.extend_from_slice(b"070701");
    for field in [
        "00000000", "00000000", "00000000", "00000000", "00000001", "5F5E1000", "00000000",
        "00000000", "00000000", "00000000", "00000000", "0000000B", "00000000",
    ] {
        expected.extend_from_slice(field.as_bytes());
    }
    expected.extend_from_slice(b"TRAILER!!!\0"); // 116 + 121 = 237
    expected.extend_from_slice(b"\0\0\0"); // to 240
    assert_eq!(String::from_utf8_lossy(&archive), String::from_utf8_lossy(&expected));
    assert_eq!(archive, expected);
}

#[test]
fn same_input_gives_same_bytes_for_every_compression() {
    let scratch = tempfile::tempdir().unwrap();
    let (host_path, _) = host_file(scratch.path());
    for compression in [Compression::None, Compression::Gzip, Compression::Xz, Compression::Zstd] {
        let build = || {
            let mut writer = CpioWriter::new(compression.writer(Vec::new()).unwrap());
            sample_entries(&mut writer, &host_path);
            writer.finish().unwrap().finish().unwrap()
        };
        let first = build();
        let second = build();
        assert!(!first.is_empty());
        assert_eq!(first, second, "{compression} output differs between two builds");
    }
}

#[test]
fn compressed_archives_decompress_with_the_real_tools_to_the_plain_archive() {
    let scratch = tempfile::tempdir().unwrap();
    let (host_path, _) = host_file(scratch.path());
    let plain = sample_archive(&host_path);
    for (compression, program) in
        [(Compression::Gzip, "gzip"), (Compression::Xz, "xz"), (Compression::Zstd, "zstd")]
    {
        let mut writer = CpioWriter::new(compression.writer(Vec::new()).unwrap());
        sample_entries(&mut writer, &host_path);
        let compressed = writer.finish().unwrap().finish().unwrap();
        assert_ne!(compressed, plain);
        assert_eq!(decompress_with_cli(program, &compressed), plain, "{compression}");
    }
}

/// The kernel's xz decoder accepts only the CRC32 (or no) check.
#[test]
fn xz_output_uses_the_crc32_check() {
    let scratch = tempfile::tempdir().unwrap();
    let (host_path, _) = host_file(scratch.path());
    let mut writer = CpioWriter::new(Compression::Xz.writer(Vec::new()).unwrap());
    sample_entries(&mut writer, &host_path);
    let compressed = writer.finish().unwrap().finish().unwrap();
    let archive_path = scratch.path().join("archive.cpio.xz");
    fs::write(&archive_path, compressed).unwrap();
    let output = std::process::Command::new("xz")
        .args(["--robot", "--list"])
        .arg(&archive_path)
        .output()
        .unwrap();
    assert!(output.status.success());
    let listing = String::from_utf8(output.stdout).unwrap();
    let file_line = listing
        .lines()
        .find(|line| line.starts_with("file\t"))
        .unwrap_or_else(|| panic!("no file line in {listing}"));
    let check = file_line.split('\t').nth(6).unwrap();
    assert_eq!(check, "CRC32", "xz --robot --list said: {listing}");
}
