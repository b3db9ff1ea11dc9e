//! Backup of a real directory tree into tar archives on "staging", verified,
//! then restored: every name, byte, mode, owner, mtime, symlink, hard link,
//! fifo and xattr comes back as it was.

mod steps_support;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use migrator::steps::backup_data::{
    self as backup, archive_volume, backup_all, verify_archive, BackupError,
};
use migrator::steps::restore_data::restore_data;
use plan::{BackupItem, BackupVolume, Bytes, PartitionRole, Plan, RestoreLocation};
use steps_support::{describe, noise, set_mtime};

const BIG_FILE_BYTES: usize = 12 * 1024 * 1024;

/// An old root with the awkward cases the issue names.
fn make_old_root(root: &Path) {
    let data = root.join("home/app/data");
    std::fs::create_dir_all(data.join("sub dir/ünïcödé 名前")).unwrap();
    std::fs::write(data.join("file with spaces.txt"), b"hello, spaces\n").unwrap();
    std::fs::write(data.join("sub dir/ünïcödé 名前/Grüße.bin"), noise(70_001, 7)).unwrap();
    std::fs::write(data.join("big.bin"), noise(BIG_FILE_BYTES, 42)).unwrap();
    std::fs::write(data.join("secret"), b"0600 only\n").unwrap();
    std::fs::set_permissions(data.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(data.join("tool.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(data.join("tool.sh"), std::fs::Permissions::from_mode(0o4755))
        .unwrap();
    std::fs::set_permissions(data.join("sub dir"), std::fs::Permissions::from_mode(0o750)).unwrap();
    symlink("file with spaces.txt", data.join("relative link")).unwrap();
    symlink("/nonexistent/target", data.join("dangling absolute link")).unwrap();
    std::fs::hard_link(data.join("file with spaces.txt"), data.join("hard link.txt")).unwrap();
    nix::unistd::mkfifo(&data.join("a fifo"), nix::sys::stat::Mode::from_bits_truncate(0o640))
        .unwrap();
    std::os::unix::fs::chown(data.join("secret"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::lchown(data.join("relative link"), Some(1001), Some(1002)).unwrap();
    // xattrs where the file system has them (user.* on the test's temporary fs).
    let _ = xattr::set(data.join("file with spaces.txt"), "user.swapover.note", b"kept");
    std::fs::create_dir_all(root.join("etc/app")).unwrap();
    std::fs::write(root.join("etc/app/app.conf"), b"key=value\n").unwrap();
    std::fs::write(root.join("etc/app/notes.txt"), b"filtered out\n").unwrap();
    std::fs::write(root.join("etc/hostname"), b"stem-device-17\n").unwrap();
    std::fs::create_dir_all(root.join("etc/wpa_supplicant")).unwrap();
    std::fs::write(
        root.join("etc/wpa_supplicant/wpa_supplicant.conf"),
        "network={\n\tssid=\"Home Net\"\n\tpsk=\"correct horse\"\n}\n",
    )
    .unwrap();
    // Old, distinct times, set last (children first so directory times stay).
    for (i, rel) in [
        "home/app/data/file with spaces.txt",
        "home/app/data/big.bin",
        "home/app/data/relative link",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&root.join(rel), 1_400_000_000 + i as i64 * 1000);
    }
    set_mtime(&data.join("sub dir/ünïcödé 名前"), 1_300_000_000);
    set_mtime(&data.join("sub dir"), 1_300_000_500);
    set_mtime(&data, 1_300_001_000);
}

fn plan_for_tree() -> Plan {
    let mut plan = Plan::stem_example();
    plan.backup.volumes = vec![BackupVolume {
        name: "app-data".into(),
        restore_to: RestoreLocation {
            partition: PartitionRole::Data,
            path: "/resin-data/app".into(),
        },
        items: vec![
            BackupItem {
                source: "/home/app/data".into(),
                target: String::new(),
                filters: vec![],
                excludes: vec![],
                estimated_size: Bytes(60 << 20),
            },
            BackupItem {
                source: "/etc/app".into(),
                target: "etc".into(),
                filters: vec!["*.conf".into()],
                excludes: vec![],
                estimated_size: Bytes(4096),
            },
        ],
    }];
    plan.validate().unwrap();
    plan
}

struct Dirs {
    _tmp: tempfile::TempDir,
    old_root: PathBuf,
    staging: PathBuf,
    data: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let old_root = tmp.path().join("old-root");
    let staging = tmp.path().join("staging/swapover");
    let data = tmp.path().join("resin-data");
    for d in [&old_root, &staging, &data] {
        std::fs::create_dir_all(d).unwrap();
    }
    make_old_root(&old_root);
    Dirs { _tmp: tmp, old_root, staging, data }
}

#[test]
fn backup_then_restore_is_identical_and_repeatable() {
    let d = dirs();
    let plan = plan_for_tree();
    let report = backup_all(&plan, &d.old_root, &d.staging).unwrap();
    assert_eq!(report.volumes.len(), 1);
    assert_eq!(report.hostname.as_deref(), Some("stem-device-17"));
    assert_eq!(
        std::fs::read_to_string(d.staging.join("backup/hostname")).unwrap(),
        "stem-device-17"
    );
    let archive = d.staging.join("backup/app-data.tar");
    assert!(archive.exists() && !d.staging.join("backup/app-data.tar.tmp").exists());

    // The WiFi network became a NetworkManager keyfile on staging.
    let keyfiles: Vec<_> = std::fs::read_dir(d.staging.join("backup/system-connections"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(keyfiles.len(), 1, "{keyfiles:?}");
    let keyfile = std::fs::read_to_string(&keyfiles[0]).unwrap();
    assert!(
        keyfile.contains("ssid=Home Net") && keyfile.contains("psk=correct horse"),
        "{keyfile}"
    );

    for round in 0..2 {
        restore_data(&plan, &d.staging, &d.data).unwrap();
        let source = describe(&d.old_root.join("home/app/data"));
        let restored = describe(&d.data.join("resin-data/app/home/app/data"));
        assert_eq!(source.len(), restored.len(), "round {round}");
        for (path, node) in &source {
            assert_eq!(restored.get(path), Some(node), "round {round}: {}", path.display());
        }
        assert_eq!(describe(&d.old_root.join("home/app/data")), restored);
        // Parents of an item without target keep their modes too.
        assert_eq!(
            describe(&d.old_root.join("home"))[Path::new("app")],
            describe(&d.data.join("resin-data/app/home"))[Path::new("app")]
        );
        // The filter kept *.conf only, under the item's target.
        let etc = describe(&d.data.join("resin-data/app/etc"));
        assert_eq!(etc.keys().collect::<Vec<_>>(), vec![Path::new("app.conf")]);
        assert_eq!(
            std::fs::read(d.data.join("resin-data/app/etc/app.conf")).unwrap(),
            b"key=value\n"
        );
    }
    let big = std::fs::metadata(d.data.join("resin-data/app/home/app/data/big.bin")).unwrap();
    assert_eq!(big.len(), BIG_FILE_BYTES as u64);
}

#[test]
fn a_damaged_archive_fails_verification() {
    let d = dirs();
    let plan = plan_for_tree();
    let archive = d.staging.join("app-data.tar");
    let summary = archive_volume(&d.old_root, &plan.backup.volumes[0], &archive).unwrap();
    verify_archive(&archive, &summary).unwrap();
    assert!(summary
        .members
        .contains_key("home/app/data/sub dir/ünïcödé 名前/Grüße.bin".as_bytes()));
    assert!(summary.data_bytes > BIG_FILE_BYTES as u64);

    // Flip one byte in the middle of the big file's data.
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&archive, &bytes).unwrap();
    match verify_archive(&archive, &summary) {
        Err(BackupError::Verify { problem, .. }) => {
            assert!(problem.contains("big.bin"), "{problem}")
        }
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

#[test]
fn a_missing_source_is_refused() {
    let d = dirs();
    let mut plan = plan_for_tree();
    plan.backup.volumes[0].items[0].source = "/home/nobody".into();
    let err = backup_all(&plan, &d.old_root, &d.staging).unwrap_err();
    assert!(matches!(err, BackupError::MissingSource(_)), "{err}");
    assert!(!backup::archive_path(&d.staging.join("backup"), "app-data").exists());
}

/// GNU tar reads our archives the same way (an independent reader).
#[test]
fn gnu_tar_lists_the_archive_with_links_and_owners() {
    let d = dirs();
    let plan = plan_for_tree();
    let archive = d.staging.join("app-data.tar");
    archive_volume(&d.old_root, &plan.backup.volumes[0], &archive).unwrap();
    let listing =
        steps_support::run("tar", &["--numeric-owner", "-tvf", archive.to_str().unwrap()]);
    assert!(listing.contains("1234/5678") && listing.contains("home/app/data/secret"), "{listing}");
    assert!(listing.contains("home/app/data/relative link -> file with spaces.txt"), "{listing}");
    assert!(
        listing.contains("home/app/data/hard link.txt link to home/app/data/file with spaces.txt"),
        "{listing}"
    );
    assert!(listing.contains("-rwsr-xr-x"), "setuid mode kept: {listing}");
    assert!(
        listing.lines().any(|l| l.starts_with('p') && l.ends_with("home/app/data/a fifo")),
        "{listing}"
    );
}

/// A backup that turns out larger than the path's limit is refused, not truncated.
#[test]
fn a_backup_over_the_limit_is_refused() {
    let d = dirs();
    let mut plan = plan_for_tree();
    plan.backup.limit = Some(Bytes(BIG_FILE_BYTES as u64 / 2));
    plan.backup.volumes[0].items[0].estimated_size = Bytes(1);
    plan.backup.volumes[0].items[1].estimated_size = Bytes(1);
    plan.validate().unwrap();
    match backup_all(&plan, &d.old_root, &d.staging) {
        Err(BackupError::TooLarge { actual, limit }) => {
            assert!(actual > BIG_FILE_BYTES as u64 && limit == BIG_FILE_BYTES as u64 / 2)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(
        !backup::archive_path(&d.staging.join("backup"), "app-data").exists(),
        "no partial archive stays"
    );
}

/// A 1.x `resin-data` carried with target `.` and the 1.x supervisor's database excluded:
/// every application directory comes back byte for byte, `resin-supervisor/` (a directory,
/// with everything under it) does not, and a file merely named like it deeper down does.
#[test]
fn excludes_leave_out_a_directory_with_everything_under_it() {
    let d = dirs();
    let data = d.old_root.join("mnt/data/resin-data");
    std::fs::create_dir_all(data.join("1234/logs")).unwrap();
    std::fs::write(data.join("1234/logs/app.log"), noise(5000, 3)).unwrap();
    std::fs::write(data.join("1234/resin-supervisor"), b"an app's own file, kept\n").unwrap();
    std::fs::create_dir_all(data.join("resin-supervisor/nested")).unwrap();
    std::fs::write(data.join("resin-supervisor/database.sqlite"), noise(9000, 5)).unwrap();
    std::fs::write(data.join("resin-supervisor/nested/x"), b"x").unwrap();
    let mut plan = Plan::stem_example();
    plan.backup.volumes = vec![BackupVolume {
        name: "resin-data".into(),
        restore_to: RestoreLocation { partition: PartitionRole::Data, path: "/resin-data".into() },
        items: vec![BackupItem {
            source: "/mnt/data/resin-data".into(),
            target: ".".into(),
            filters: vec![],
            excludes: vec!["resin-supervisor".into()],
            estimated_size: Bytes(1 << 20),
        }],
    }];
    plan.validate().unwrap();
    backup_all(&plan, &d.old_root, &d.staging).unwrap();
    restore_data(&plan, &d.staging, &d.data).unwrap();
    let restored = describe(&d.data.join("resin-data"));
    let mut expected = describe(&data);
    expected.retain(|path, _| !path.starts_with("resin-supervisor"));
    assert_eq!(restored, expected);
    assert!(restored.contains_key(Path::new("1234/resin-supervisor")));
    assert!(!d.data.join("resin-data/resin-supervisor").exists());
}
