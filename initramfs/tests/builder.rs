//! The initramfs builder, read back with the real cpio and decompressors.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{
    cpio_extract, cpio_list, cpio_list_verbose, decompress_with_cli, real_module_tree, FakeTree,
};
use initramfs::{
    Compression, Error, FileSource, InitramfsBuilder, MODULE_LOAD_LIST_PATH,
    MODULE_OPTIONAL_LIST_PATH,
};

const VERSION: &str = "5.4.0-42-generic";
const TINY_INIT: &[u8] = b"#!/bin/sh\necho SWAPOVER-TEST-INIT\nexec /bin/sh\n";

fn fake_tree(root: &Path) -> FakeTree {
    FakeTree::create(
        root,
        VERSION,
        &[
            (
                "kernel/fs/ext4/ext4.ko.zst",
                &["kernel/fs/jbd2/jbd2.ko.xz", "kernel/fs/mbcache.ko.gz"],
            ),
            ("kernel/fs/jbd2/jbd2.ko.xz", &[]),
            ("kernel/fs/mbcache.ko.gz", &[]),
            ("kernel/fs/fat/vfat.ko", &["kernel/fs/fat/fat.ko"]),
            ("kernel/fs/fat/fat.ko", &[]),
        ],
        &["kernel/fs/nls/nls_base.ko"],
        &[],
    )
}

fn assert_parents_come_first(listing: &[String]) {
    for (index, path) in listing.iter().enumerate() {
        if let Some((parent, _)) = path.rsplit_once('/') {
            let parent_index = listing.iter().position(|p| p == parent);
            assert!(
                parent_index.is_some_and(|parent_index| parent_index < index),
                "{path} comes before its parent {parent}"
            );
        }
    }
}

fn verbose_line<'a>(listing: &'a [String], path: &str) -> Vec<&'a str> {
    listing
        .iter()
        .find(|line| line.ends_with(&format!(" {path}")) || line.contains(&format!(" {path} -> ")))
        .unwrap_or_else(|| panic!("{path} not in {listing:#?}"))
        .split_whitespace()
        .collect()
}

#[test]
fn tiny_init_archive_has_init_devices_standard_dirs_and_modules() {
    let scratch = tempfile::tempdir().unwrap();
    let fake = fake_tree(scratch.path());
    let builder = InitramfsBuilder::new()
        .init(TINY_INIT)
        .modules(&fake.dir, ["ext4", "vfat", "nls-base"])
        .data_file("etc/hostname", "migrator\n")
        .file("usr/share/plan.json", b"{}".as_slice(), 0o600);
    let mut archive = Vec::new();
    let report = builder.write_to(&mut archive).unwrap();

    assert_eq!(report.archive_bytes, archive.len() as u64);
    assert_eq!(report.cpio_bytes, archive.len() as u64);
    assert_eq!(report.compression, Compression::None);
    let listing = cpio_list(&archive);
    assert_eq!(listing, report.paths);
    assert_parents_come_first(&listing);
    for path in
        ["bin", "dev", "etc", "lib", "mnt", "proc", "root", "run", "sbin", "sys", "tmp", "init"]
    {
        assert!(listing.iter().any(|p| p == path), "{path} missing from {listing:?}");
    }

    let verbose = cpio_list_verbose(&archive);
    assert_eq!(&verbose_line(&verbose, "init")[..4], ["-rwxr-xr-x", "1", "0", "0"]);
    assert_eq!(
        &verbose_line(&verbose, "dev/console")[..6],
        ["crw-------", "1", "0", "0", "5,", "1"]
    );
    assert_eq!(&verbose_line(&verbose, "dev/null")[..6], ["crw-rw-rw-", "1", "0", "0", "1,", "3"]);
    assert_eq!(verbose_line(&verbose, "tmp")[0], "drwxrwxrwt");
    assert_eq!(verbose_line(&verbose, "usr/share/plan.json")[0], "-rw-------");

    assert_eq!(report.kernel_version.as_deref(), Some(VERSION));
    assert_eq!(report.builtin_modules, ["nls_base"]);
    let mut modules = report.modules.clone();
    modules.sort();
    assert_eq!(modules, ["ext4", "fat", "jbd2", "mbcache", "vfat"]);
    assert!(report.optional_modules.is_empty());

    let root = scratch.path().join("root");
    fs::create_dir(&root).unwrap();
    cpio_extract(&archive, &root);
    assert_eq!(fs::read(root.join("init")).unwrap(), TINY_INIT);
    assert_eq!(fs::read_to_string(root.join("etc/hostname")).unwrap(), "migrator\n");
    let load_list = fs::read_to_string(root.join(MODULE_LOAD_LIST_PATH)).unwrap();
    assert_eq!(fs::read_to_string(root.join(MODULE_OPTIONAL_LIST_PATH)).unwrap(), "");
    let loaded: Vec<&str> = load_list.lines().collect();
    assert_eq!(loaded.len(), 5);
    let mut module_bytes = 0;
    for (archive_path, name) in loaded.iter().zip(&report.modules) {
        let tree_path = archive_path
            .strip_prefix(&format!("lib/modules/{VERSION}/"))
            .unwrap_or_else(|| panic!("{archive_path} is not under lib/modules/{VERSION}"));
        assert!(tree_path.ends_with(&format!("/{name}.ko")), "{archive_path} for {name}");
        let original = fake
            .contents
            .iter()
            .find(|(path, _)| path.starts_with(tree_path))
            .unwrap_or_else(|| panic!("{tree_path} is not a fake module"))
            .1
            .clone();
        let extracted = fs::read(root.join(archive_path)).unwrap();
        assert_eq!(extracted, original, "{archive_path} is the decompressed module");
        module_bytes += extracted.len() as u64;
    }
    assert_eq!(report.module_bytes, module_bytes);
    let position =
        |name: &str| loaded.iter().position(|p| p.ends_with(&format!("/{name}.ko"))).unwrap();
    assert!(position("jbd2") < position("ext4") && position("mbcache") < position("ext4"));
    assert!(position("fat") < position("vfat"));
}

#[test]
fn busybox_applets_run_from_the_extracted_archive() {
    let scratch = tempfile::tempdir().unwrap();
    let init_script = scratch.path().join("init.sh");
    fs::write(&init_script, TINY_INIT).unwrap();
    let archive_path = scratch.path().join("initramfs.cpio.gz");
    let report = InitramfsBuilder::new()
        .init(init_script.as_path())
        .busybox(Path::new("/usr/bin/busybox"), ["sh", "echo", "mount", "sbin/switch_root"])
        .compression(Compression::Gzip)
        .write_to_path(&archive_path)
        .unwrap();
    let compressed = fs::read(&archive_path).unwrap();
    assert_eq!(report.archive_bytes, compressed.len() as u64);
    let archive = decompress_with_cli("gzip", &compressed);
    assert_eq!(report.cpio_bytes, archive.len() as u64);
    assert!(report.archive_bytes < report.cpio_bytes);
    assert_eq!(cpio_list(&archive), report.paths);
    assert!(report.modules.is_empty() && report.kernel_version.is_none());
    assert!(!report.paths.iter().any(|p| p == MODULE_LOAD_LIST_PATH));

    let root = scratch.path().join("root");
    fs::create_dir(&root).unwrap();
    cpio_extract(&archive, &root);
    assert_eq!(fs::read(root.join("init")).unwrap(), TINY_INIT);
    assert_eq!(fs::metadata(root.join("init")).unwrap().permissions().mode() & 0o7777, 0o755);
    assert_eq!(fs::read(root.join("bin/busybox")).unwrap(), fs::read("/usr/bin/busybox").unwrap());
    assert_eq!(fs::read_link(root.join("bin/sh")).unwrap().to_str(), Some("busybox"));
    assert_eq!(
        fs::read_link(root.join("sbin/switch_root")).unwrap().to_str(),
        Some("/bin/busybox")
    );

    let output =
        Command::new(root.join("bin/sh")).args(["-c", "echo applet-ran"]).output().unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), "applet-ran\n");
}

/// The harness passes every applet busybox itself lists (`--list-full`
/// paths such as `bin/sh`, `usr/sbin/chroot`).
#[test]
fn busybox_full_applet_list_becomes_symlinks_at_those_paths() {
    let listed = Command::new("/usr/bin/busybox").arg("--list-full").output().unwrap();
    assert!(listed.status.success());
    let applets: Vec<String> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .filter(|line| !line.is_empty() && *line != "bin/busybox")
        .map(String::from)
        .collect();
    assert!(applets.len() > 50, "busybox lists only {applets:?}");
    let mut archive = Vec::new();
    let report = InitramfsBuilder::new()
        .init(TINY_INIT)
        .busybox(Path::new("/usr/bin/busybox"), &applets)
        .write_to(&mut archive)
        .unwrap();
    let verbose = cpio_list_verbose(&archive);
    for applet in &applets {
        let path = if applet.contains('/') { applet.clone() } else { format!("bin/{applet}") };
        let line = verbose_line(&verbose, &path);
        assert_eq!(line[0], "lrwxrwxrwx", "{path}");
        let target = *line.last().unwrap();
        assert!(target == "/bin/busybox" || target == "busybox", "{path} -> {target}");
    }
    assert_parents_come_first(&report.paths);
}

#[test]
fn same_contents_give_same_bytes_and_xz_and_zstd_decode() {
    let scratch = tempfile::tempdir().unwrap();
    let fake = fake_tree(scratch.path());
    for (compression, program) in [(Compression::Xz, "xz"), (Compression::Zstd, "zstd")] {
        let builder = InitramfsBuilder::new()
            .init(TINY_INIT)
            .modules(&fake.dir, ["ext4"])
            .compression(compression);
        let mut first = Vec::new();
        let report = builder.write_to(&mut first).unwrap();
        let mut second = Vec::new();
        builder.write_to(&mut second).unwrap();
        assert_eq!(first, second, "{compression} builds differ");
        let archive = decompress_with_cli(program, &first);
        assert_eq!(report.cpio_bytes, archive.len() as u64);
        assert_eq!(cpio_list(&archive), report.paths);
    }
}

#[test]
fn explicit_entries_replace_standard_ones() {
    let mut archive = Vec::new();
    InitramfsBuilder::new()
        .init(FileSource::Bytes(TINY_INIT.to_vec()))
        .directory("tmp", 0o700)
        .char_device("dev/console", 0o620, initramfs::DeviceNumber::new(4, 64))
        .block_device("dev/sda", 0o660, initramfs::DeviceNumber::new(8, 0))
        .symlink("bin/sh", "/init")
        .write_to(&mut archive)
        .unwrap();
    let verbose = cpio_list_verbose(&archive);
    assert_eq!(verbose_line(&verbose, "tmp")[0], "drwx------");
    assert_eq!(
        &verbose_line(&verbose, "dev/console")[..6],
        ["crw--w----", "1", "0", "0", "4,", "64"]
    );
    assert_eq!(&verbose_line(&verbose, "dev/sda")[..6], ["brw-rw----", "1", "0", "0", "8,", "0"]);
    assert_eq!(*verbose_line(&verbose, "bin/sh").last().unwrap(), "/init");
}

#[test]
fn inconsistent_contents_are_refused_before_anything_is_written() {
    let scratch = tempfile::tempdir().unwrap();
    let fake = fake_tree(scratch.path());
    type ErrorCheck = fn(&Error) -> bool;
    let cases: [(InitramfsBuilder, ErrorCheck); 5] = [
        (InitramfsBuilder::new().data_file("etc/x", "x"), |e| matches!(e, Error::MissingInit)),
        (
            InitramfsBuilder::new()
                .init(TINY_INIT)
                .data_file("etc/x", "1")
                .data_file("/etc//x", "2"),
            |e| matches!(e, Error::DuplicatePath { path } if path == "etc/x"),
        ),
        (
            InitramfsBuilder::new().init(TINY_INIT).modules(&fake.dir, ["ext4", "zfs"]),
            |e| matches!(e, Error::ModuleNotFound { name, .. } if name == "zfs"),
        ),
        (InitramfsBuilder::new().init(TINY_INIT).data_file("../escape", "x"), |e| {
            matches!(e, Error::InvalidPath { .. })
        }),
        (
            InitramfsBuilder::new().init(Path::new("/nonexistent/swapover-init")),
            |e| matches!(e, Error::Read { path, .. } if path == Path::new("/nonexistent/swapover-init")),
        ),
    ];
    for (builder, expected) in cases {
        let mut archive = Vec::new();
        let error = builder.write_to(&mut archive).unwrap_err();
        assert!(expected(&error), "unexpected error: {error}");
        assert!(archive.is_empty(), "{error}: {} bytes were written", archive.len());
    }
}

#[test]
fn write_to_path_replaces_the_file_whole_or_not_at_all() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("initrd.img");
    let partial = scratch.path().join("initrd.img.partial");
    fs::write(&path, b"old archive").unwrap();

    let error = InitramfsBuilder::new().data_file("etc/x", "x").write_to_path(&path).unwrap_err();
    assert!(matches!(error, Error::MissingInit));
    assert_eq!(fs::read(&path).unwrap(), b"old archive");
    assert!(!partial.exists());

    let report = InitramfsBuilder::new().init(TINY_INIT).write_to_path(&path).unwrap();
    let written = fs::read(&path).unwrap();
    assert_eq!(report.archive_bytes, written.len() as u64);
    assert_eq!(cpio_list(&written), report.paths);
    assert!(!partial.exists());
}

#[test]
fn real_debian_tree_gives_a_gzip_initramfs_of_elf_modules() {
    let Some(tree_dir) = real_module_tree() else {
        println!("note: no Debian module tree under .cache/kernel/*/lib/modules; real-tree build skipped");
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let wanted = ["ext4", "vfat", "nls_cp437", "nls_iso8859_1", "nls_ascii", "sd_mod", "ata_piix"];
    let mut compressed = Vec::new();
    let report = InitramfsBuilder::new()
        .init(TINY_INIT)
        .modules(&tree_dir, wanted)
        .compression(Compression::Gzip)
        .write_to(&mut compressed)
        .unwrap();
    assert_eq!(report.archive_bytes, compressed.len() as u64);
    let archive = decompress_with_cli("gzip", &compressed);
    let root = scratch.path().join("root");
    fs::create_dir(&root).unwrap();
    cpio_extract(&archive, &root);
    let load_list = fs::read_to_string(root.join(MODULE_LOAD_LIST_PATH)).unwrap();
    assert_eq!(load_list.lines().count(), report.modules.len());
    for archive_path in load_list.lines() {
        let module = fs::read(root.join(archive_path)).unwrap();
        assert_eq!(&module[..4], b"\x7fELF", "{archive_path}");
        assert!(archive_path.ends_with(".ko"));
    }
    println!(
        "{}: {} bytes gzip ({} cpio), {} modules ({} bytes): {:?}",
        tree_dir.display(),
        report.archive_bytes,
        report.cpio_bytes,
        report.modules.len(),
        report.module_bytes,
        report.modules
    );
}
