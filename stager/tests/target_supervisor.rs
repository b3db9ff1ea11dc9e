//! The supervisor version a resinOS 2.x image ships, read from its rootA: a real ext4 made by
//! `mkfs.ext4 -d` from a tree with `/etc/resin-supervisor/supervisor.conf` among a few
//! hundred other files (so the walk jumps back and forth: superblock, journal in the middle,
//! inode tables, an indexed `/etc`, file data), placed at 44 MiB in a disk image between
//! other data, read raw and through the real `xz`.

use plan::{Bytes, Compression};
use stager::stage::resinos1x::target_supervisor::{
    read_supervisor_tag, read_supervisor_tag_counted, TargetSupervisorError,
};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1024 * 1024;
const ROOT_A_START: u64 = 44 * MIB;
const ROOT_A_LEN: u64 = 64 * MIB;
/// Incompressible bytes before rootA (a boot partition stand-in): more than rootA and what
/// follows compress to, so cutting the .xz in half cuts before rootA.
const BOOT_RANDOM: u64 = 3 * MIB;
const CONF: &str = "# written by meta-resin\nSUPERVISOR_IMAGE=resin/i386-supervisor\nSUPERVISOR_TAG=v6.1.2\nLED_FILE=/dev/null\n";

fn run(command: &mut Command) {
    let output = command.output().expect("spawn");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Deterministic pseudo-random bytes (xorshift), incompressible for xz.
fn noise(len: u64, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len as usize + 8);
    while (out.len() as u64) < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len as usize);
    out
}

/// A root tree like a resinOS rootfs in shape: many entries in /etc (more than one
/// directory block, so /etc is indexed), several directories of files, 2 MiB of data.
fn root_tree(dir: &Path, conf: Option<&str>) -> PathBuf {
    let tree = dir.join("tree");
    let etc = tree.join("etc");
    fs::create_dir_all(etc.join("resin-supervisor")).unwrap();
    for i in 0..400 {
        fs::write(
            etc.join(format!("config-file-with-a-long-name-{i:04}")),
            format!("setting={i}\n"),
        )
        .unwrap();
    }
    for d in ["usr/lib", "usr/bin", "usr/share/doc", "lib/modules", "var/lib"] {
        let path = tree.join(d);
        fs::create_dir_all(&path).unwrap();
        for i in 0..60 {
            fs::write(path.join(format!("item-{i}")), format!("{d} {i}\n").repeat(i + 1)).unwrap();
        }
    }
    for i in 0..4u64 {
        fs::write(tree.join(format!("usr/lib/blob-{i}.so")), noise(MIB / 2, 7 + i)).unwrap();
    }
    if let Some(conf) = conf {
        fs::write(etc.join("resin-supervisor/supervisor.conf"), conf).unwrap();
    }
    // Something after the file, in the same directory and elsewhere.
    fs::write(etc.join("resin-supervisor/other.conf"), "x=1\n").unwrap();
    fs::write(etc.join("zz-last"), "last\n").unwrap();
    tree
}

/// A disk image: 1 MiB of zeros, [`BOOT_RANDOM`] of noise, zeros up to 44 MiB, rootA (ext4,
/// 64 MiB), then 4 MiB of 0xA5.
fn disk_image(dir: &Path, conf: Option<&str>) -> PathBuf {
    let tree = root_tree(dir, conf);
    let fs_image = dir.join("rootA.ext4");
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "resin-rootA", "-d"])
        .arg(&tree)
        .arg(&fs_image)
        .arg("64M"));
    let rootfs = fs::read(&fs_image).unwrap();
    assert_eq!(rootfs.len() as u64, ROOT_A_LEN);
    let image = dir.join("resin.img");
    let mut out = fs::File::create(&image).unwrap();
    out.write_all(&vec![0u8; MIB as usize]).unwrap();
    out.write_all(&noise(BOOT_RANDOM, 99)).unwrap();
    out.write_all(&vec![0u8; (ROOT_A_START - MIB - BOOT_RANDOM) as usize]).unwrap();
    out.write_all(&rootfs).unwrap();
    out.write_all(&vec![0xa5u8; 4 * MIB as usize]).unwrap();
    out.sync_all().unwrap();
    image
}

fn xz(image: &Path) -> PathBuf {
    run(Command::new("xz").args(["-T1", "-k", "-f"]).arg(image));
    let mut name = image.as_os_str().to_owned();
    name.push(".xz");
    PathBuf::from(name)
}

fn read(image: &Path, compression: Compression) -> Result<(String, usize), TargetSupervisorError> {
    read_supervisor_tag_counted(image, compression, Bytes(ROOT_A_START), Bytes(ROOT_A_LEN))
}

#[test]
fn raw_image_gives_the_tag() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(dir.path(), Some(CONF));
    let tag =
        read_supervisor_tag(&image, Compression::None, Bytes(ROOT_A_START), Bytes(ROOT_A_LEN))
            .unwrap();
    assert_eq!(tag, "v6.1.2");
}

#[test]
fn xz_image_gives_the_tag_with_few_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(dir.path(), Some(CONF));
    let compressed = xz(&image);
    let (tag, restarts) = read(&compressed, Compression::Xz).unwrap();
    assert_eq!(tag, "v6.1.2");
    eprintln!("{restarts} xz decoder restarts");
    // The walk reads the journal (mid file system) before the inode tables, so at least one
    // read goes back; the block cache keeps it to a handful.
    assert!(restarts >= 1, "no read went back: the restart path was not exercised");
    assert!(restarts < 20, "{restarts} decoder restarts");
}

#[test]
fn missing_conf_names_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(dir.path(), None);
    let error = read(&image, Compression::None).unwrap_err();
    assert!(matches!(error, TargetSupervisorError::ConfMissing { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("--supervisor-version"), "{message}");
    assert!(message.contains("cannot be found in the image"), "{message}");
    assert!(message.contains(&image.display().to_string()), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn conf_without_tag_is_its_own_error() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(
        dir.path(),
        Some("SUPERVISOR_IMAGE=resin/i386-supervisor\n# SUPERVISOR_TAG=v1.0.0\n"),
    );
    let error = read(&image, Compression::None).unwrap_err();
    assert!(matches!(error, TargetSupervisorError::NoTag { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("SUPERVISOR_TAG"), "{message}");
    assert!(message.contains("--supervisor-version"), "{message}");
    assert!(message.contains(&image.display().to_string()), "{message}");
}

#[test]
fn region_without_ext4_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(dir.path(), Some(CONF));
    // Zeros between the boot noise and rootA.
    let start = Bytes(20 * MIB);
    let error = read_supervisor_tag(&image, Compression::None, start, Bytes(16 * MIB)).unwrap_err();
    assert!(matches!(error, TargetSupervisorError::NotExt4 { .. }), "{error:?}");
    assert!(error.to_string().contains(&image.display().to_string()), "{error}");
    let compressed = xz(&image);
    let error =
        read_supervisor_tag(&compressed, Compression::Xz, start, Bytes(16 * MIB)).unwrap_err();
    assert!(matches!(error, TargetSupervisorError::NotExt4 { .. }), "{error:?}");
}

#[test]
fn truncated_xz_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(dir.path(), Some(CONF));
    let compressed = xz(&image);
    let bytes = fs::read(&compressed).unwrap();
    fs::write(&compressed, &bytes[..bytes.len() / 2]).unwrap();
    let error = read(&compressed, Compression::Xz).unwrap_err();
    assert!(matches!(error, TargetSupervisorError::TruncatedXz { .. }), "{error:?}");
    assert!(error.to_string().contains(&compressed.display().to_string()), "{error}");
}

#[test]
fn corrupt_xz_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(dir.path(), Some(CONF));
    let compressed = xz(&image);
    let mut bytes = fs::read(&compressed).unwrap();
    // The stream flags, covered by the header's CRC32.
    bytes[7] ^= 0x01;
    fs::write(&compressed, &bytes).unwrap();
    let error = read(&compressed, Compression::Xz).unwrap_err();
    assert!(matches!(error, TargetSupervisorError::CorruptXz { .. }), "{error:?}");
}

#[test]
fn raw_image_shorter_than_root_a_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(dir.path(), Some(CONF));
    let file = fs::OpenOptions::new().write(true).open(&image).unwrap();
    file.set_len(ROOT_A_START + ROOT_A_LEN / 2).unwrap();
    let error = read(&image, Compression::None).unwrap_err();
    assert!(matches!(error, TargetSupervisorError::TruncatedImage { .. }), "{error:?}");
}

#[test]
fn reads_past_root_a_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(dir.path(), Some(CONF));
    // The table says rootA is 2 MiB: the file system's journal and tables lie past that.
    let error = read_supervisor_tag(&image, Compression::None, Bytes(ROOT_A_START), Bytes(2 * MIB))
        .unwrap_err();
    assert!(matches!(error, TargetSupervisorError::BeyondPartition { .. }), "{error:?}");
}
