//! Builds small but real resinOS-shaped disk images in a temporary directory, with the real
//! tools and without mounting anything:
//!
//! - a partition table written by `sfdisk` on the image file,
//! - FAT partitions by `mkfs.vfat -n LABEL` on a partition-sized file, files put there by
//!   `mmd`/`mcopy`,
//! - ext4 partitions by `mkfs.ext4 -d TREE -L LABEL` on a partition-sized file,
//! - each partition copied into place with `dd conv=notrunc`,
//! - containers: `xz`, `gzip` (the tools), zips by the `zip` crate's writer.
//!
//! [`normal_image`] is a 2.x image (resin-boot with `/resin-image` and `device-type.json`,
//! resin-rootA ext4 with some incompressible data, rootB, extended, state, data);
//! [`flasher_image`] is a flasher as meta-resin's `resin-image-flasher.bb` lays one out
//! (flash-boot with the flag file, device-type.json, grub.cfg_internal, grub/boot.img and
//! grub/core.img; flash-rootA ext4 holding `/opt/resin-image-genericx86-64.resinos-img`;
//! rootB 4 MiB; state and data without file system).
//!
//! Copy the patterns freely; everything here panics on failure (tests only).
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const MIB: u64 = 1024 * 1024;
const SECTOR: u64 = 512;
/// Where an inner image lives on a flasher's rootA (meta-resin v2.12.5,
/// `resin-image-flasher.bb` 53–59).
pub const INNER_NAME: &str = "resin-image-genericx86-64.resinos-img";
pub const DEVICE_TYPE_JSON: &str = r#"{"slug": "intel-nuc", "name": "Intel NUC", "arch": "amd64"}"#;
pub const GRUB_CFG_INTERNAL: &[u8] =
    b"set timeout=3\nmenuentry 'resinOS' { linux /vmlinuz root=LABEL=resin-rootA }\n";

/// Runs a command, panicking with its stderr when it fails.
pub fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether a tool is on PATH (for optional ones such as `mkfs.btrfs`).
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Deterministic pseudo-random bytes (xorshift), incompressible.
pub fn noise(len: u64, seed: u64) -> Vec<u8> {
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

/// A sparse file of `len` bytes.
pub fn sparse_file(path: &Path, len: u64) {
    fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// What goes into a partition.
pub enum Content {
    /// No file system (zeros).
    Empty,
    /// `mkfs.vfat -n label`, then each `(path in the fs, bytes)`; directories are made.
    Fat { label: &'static str, files: Vec<(String, Vec<u8>)> },
    /// `mkfs.ext4 -d tree -L label -b 4096`.
    Ext4 { label: &'static str, tree: PathBuf },
}

/// A partition: its size and content. Partitions 1–3 are primary, an extended partition 4
/// holds the rest as logical partitions 5, 6, … (the 2.x layout).
pub struct Part {
    pub size_mib: u64,
    pub content: Content,
}

/// Writes a disk image at `path`: an msdos table (p1 bootable FAT32-LBA type, others Linux)
/// with the first partition at 4 MiB, as meta-resin does, and each partition's content.
/// Returns each partition's (start, length) in bytes, in partition number order (the
/// extended container skipped).
pub fn disk_image(path: &Path, parts: &[Part]) -> Vec<(u64, u64)> {
    let work = path.with_extension("parts");
    fs::create_dir_all(&work).unwrap();
    let mut layout = Vec::new();
    let mut script = String::from("label: dos\nunit: sectors\n\n");
    let mut at = 4 * MIB;
    for (i, part) in parts.iter().enumerate() {
        let size = part.size_mib * MIB;
        if i == 3 {
            // The extended partition holds everything from here to the end.
            let rest: u64 = parts[3..].iter().map(|p| p.size_mib * MIB + MIB).sum();
            script += &format!("start={}, size={}, type=5\n", at / SECTOR, rest / SECTOR);
        }
        if i >= 3 {
            at += MIB; // room for the logical partition's EBR
        }
        let kind = if i == 0 { "c, bootable" } else { "83" };
        script += &format!("start={}, size={}, type={kind}\n", at / SECTOR, size / SECTOR);
        layout.push((at, size));
        at += size;
    }
    sparse_file(path, at + MIB);
    let mut sfdisk = Command::new("sfdisk");
    sfdisk.arg("--no-reread").arg("--no-tell-kernel").arg("-q").arg(path);
    sfdisk.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::null());
    let mut child = sfdisk.spawn().unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk failed on {script}");
    for (i, (part, &(start, size))) in parts.iter().zip(&layout).enumerate() {
        let file = work.join(format!("p{}", i + 1));
        match &part.content {
            Content::Empty => continue,
            Content::Fat { label, files } => fat_partition(&file, size, label, files),
            Content::Ext4 { label, tree } => ext4_partition(&file, size, label, tree),
        }
        place(&file, path, start);
    }
    fs::remove_dir_all(&work).unwrap();
    layout
}

/// `mkfs.vfat -n label` on a `size`-byte file, then the files by mtools.
pub fn fat_partition(file: &Path, size: u64, label: &str, files: &[(String, Vec<u8>)]) {
    sparse_file(file, size);
    run(Command::new("mkfs.vfat").arg("-n").arg(label).arg(file));
    let staging = file.with_extension("files");
    fs::create_dir_all(&staging).unwrap();
    for (i, (name, bytes)) in files.iter().enumerate() {
        let mut dir = String::new();
        let parts: Vec<&str> = name.trim_start_matches('/').split('/').collect();
        for component in &parts[..parts.len() - 1] {
            dir += &format!("/{component}");
            // mmd fails when the directory exists; that is fine here.
            let _ = Command::new("mmd").arg("-i").arg(file).arg(format!("::{dir}")).output();
        }
        let local = staging.join(i.to_string());
        fs::write(&local, bytes).unwrap();
        run(Command::new("mcopy")
            .arg("-i")
            .arg(file)
            .arg(&local)
            .arg(format!("::/{}", name.trim_start_matches('/'))));
    }
    fs::remove_dir_all(&staging).unwrap();
}

/// `mkfs.ext4 -d tree -L label` on a `size`-byte file (4 KiB blocks like real images).
pub fn ext4_partition(file: &Path, size: u64, label: &str, tree: &Path) {
    sparse_file(file, size);
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-b", "4096", "-L", label, "-d"])
        .arg(tree)
        .arg(file));
}

/// Copies `part` into `image` at byte `start` (`dd conv=notrunc`).
pub fn place(part: &Path, image: &Path, start: u64) {
    run(Command::new("dd")
        .arg(format!("if={}", part.display()))
        .arg(format!("of={}", image.display()))
        .args(["bs=1M", "conv=notrunc,sparse", "oflag=seek_bytes", "status=none"])
        .arg(format!("seek={start}")));
}

/// A tree for `mkfs.ext4 -d` under `dir/name` with `files` (relative path, bytes).
pub fn tree(dir: &Path, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let root = dir.join(name);
    fs::create_dir_all(&root).unwrap();
    for (path, bytes) in files {
        let file = root.join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, bytes).unwrap();
    }
    root
}

/// A small normal resinOS 2.x image at `dir/resin.img` (12 MiB + 4 MiB before p1):
/// resin-boot (FAT, `/resin-image`, `/device-type.json`), resin-rootA (ext4, 1 MiB of
/// noise in `/usr/lib/blob`), resin-rootB and resin-state without file system, resin-data
/// (ext4).
pub fn normal_image(dir: &Path) -> PathBuf {
    let image = dir.join("resin.img");
    let root = tree(
        dir,
        "normal-root",
        &[
            ("etc/os-release", b"NAME=\"Resin OS\"\nVERSION=\"2.12.5\"\n"),
            ("usr/lib/blob", &noise(MIB, 3)),
        ],
    );
    let data = tree(dir, "normal-data", &[("docker/README", b"supervisor\n")]);
    disk_image(
        &image,
        &[
            Part { size_mib: 2, content: boot("resin-boot", &["resin-image"], &[]) },
            Part { size_mib: 4, content: Content::Ext4 { label: "resin-rootA", tree: root } },
            Part { size_mib: 1, content: Content::Empty },
            Part { size_mib: 1, content: Content::Empty },
            Part { size_mib: 2, content: Content::Ext4 { label: "resin-data", tree: data } },
        ],
    );
    image
}

/// A boot partition: `flags` (files holding "DO NOT REMOVE THIS FILE"), device-type.json
/// and `extra` files.
pub fn boot(label: &'static str, flags: &[&str], extra: &[(&str, &[u8])]) -> Content {
    let mut files: Vec<(String, Vec<u8>)> =
        flags.iter().map(|f| (f.to_string(), b"DO NOT REMOVE THIS FILE\n".to_vec())).collect();
    files.push(("device-type.json".to_string(), DEVICE_TYPE_JSON.as_bytes().to_vec()));
    files.extend(extra.iter().map(|(n, b)| (n.to_string(), b.to_vec())));
    Content::Fat { label, files }
}

/// What a test flasher looks like.
pub struct FlasherSpec {
    /// Flag files on flash-boot (`["resin-image-flasher"]`; empty: labels alone tell).
    pub flags: Vec<&'static str>,
    /// Files put in `/opt` of flash-rootA: (name, bytes).
    pub opt: Vec<(String, Vec<u8>)>,
}

impl FlasherSpec {
    /// A flasher like the real ones: the flag file and one inner image.
    pub fn real(inner: &Path) -> FlasherSpec {
        FlasherSpec {
            flags: vec!["resin-image-flasher"],
            opt: vec![(INNER_NAME.to_string(), fs::read(inner).unwrap())],
        }
    }
}

pub const BOOT_IMG: &[u8] = &[0xEB; 512];

/// `core.img` stand-in: arbitrary bytes.
pub fn core_img() -> Vec<u8> {
    noise(30 * 1024, 11)
}

/// A flasher at `dir/flasher.img`: flash-boot (FAT), flash-rootA (ext4, /opt as `spec` says,
/// sized to fit), flash-rootB 4 MiB, extended, flash-state and flash-data without file system.
pub fn flasher_image(dir: &Path, spec: &FlasherSpec) -> PathBuf {
    let image = dir.join("flasher.img");
    let names: Vec<String> = spec.opt.iter().map(|(name, _)| format!("opt/{name}")).collect();
    let mut files: Vec<(&str, &[u8])> =
        vec![("etc/os-release", b"NAME=\"Resin OS\"\n"), ("opt/readme.txt", b"not an image\n")];
    files.extend(names.iter().zip(&spec.opt).map(|(n, (_, b))| (n.as_str(), b.as_slice())));
    let root = tree(dir, "flasher-root", &files);
    let opt_mib: u64 = spec.opt.iter().map(|(_, b)| b.len() as u64).sum::<u64>() / MIB;
    let core = core_img();
    disk_image(
        &image,
        &[
            Part {
                size_mib: 2,
                content: boot(
                    "flash-boot",
                    &spec.flags,
                    &[
                        ("grub.cfg_internal", GRUB_CFG_INTERNAL),
                        ("grub/boot.img", BOOT_IMG),
                        ("grub/core.img", &core),
                    ],
                ),
            },
            Part {
                size_mib: opt_mib + opt_mib / 4 + 4,
                content: Content::Ext4 { label: "flash-rootA", tree: root },
            },
            Part { size_mib: 4, content: Content::Empty },
            Part { size_mib: 1, content: Content::Empty },
            Part { size_mib: 1, content: Content::Empty },
        ],
    );
    image
}

/// `xz -T1 -1 -k`: `path` + ".xz".
pub fn xz(path: &Path) -> PathBuf {
    run(Command::new("xz").args(["-T1", "-1", "-k", "-f"]).arg(path));
    PathBuf::from(format!("{}.xz", path.display()))
}

/// `gzip -1 -k`: `path` + ".gz".
pub fn gzip(path: &Path) -> PathBuf {
    run(Command::new("gzip").args(["-1", "-k", "-f"]).arg(path));
    PathBuf::from(format!("{}.gz", path.display()))
}

/// A zip at `zip_path` with `entries` (name, file to store), deflated, written by the `zip`
/// crate.
pub fn zip(zip_path: &Path, entries: &[(&str, &Path)]) -> PathBuf {
    let mut writer = zip::ZipWriter::new(fs::File::create(zip_path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(false);
    for (name, file) in entries {
        writer.start_file(*name, options).unwrap();
        std::io::copy(&mut fs::File::open(file).unwrap(), &mut writer).unwrap();
    }
    writer.finish().unwrap();
    zip_path.to_path_buf()
}

/// The SHA-256 of a byte stream, hex.
pub fn sha256_of(reader: &mut dyn std::io::Read) -> std::io::Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    sha256_of(&mut fs::File::open(path).unwrap()).unwrap()
}
