//! A whole legacy host for staging tests: a 512 MiB sparse disk image at `/dev/sda`
//! (sda1 ext4 root made by mkfs.ext4, sda2 extended, sda5 swap made by mkswap), sysfs,
//! proc, etc, GRUB files (grub.cfg of Ubuntu 14.04, grubenv by grub-editenv), a kernel and
//! a small module tree, plus a resinOS-like image (FAT boot with device-type.json, MBR with
//! an extended partition) compressed by the real xz. Included with `#[path]`.
#![allow(dead_code)]

#[path = "../fixtures/fixture_host.rs"]
pub mod fixture_host;

use fixture_host::{run, sfdisk, sparse_file, FixtureHost, Partition};
use sha2::{Digest, Sha256};
use stager::host::facts::{gather_with, HostFacts, ProcessFacts};
use stager::host::HostRoot;
use stager::stage::engine::execute::ExecuteOptions;
use stager::stage::StageRequest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SECTOR: u64 = 512;
pub const DISK_SECTORS: u64 = 524_288; // 256 MiB
pub const ROOT_START: u64 = 2048;
pub const ROOT_SECTORS: u64 = 204_800; // 100 MiB
pub const EXTENDED_START: u64 = 206_848;
pub const SWAP_START: u64 = 208_896;
pub const SWAP_SECTORS: u64 = DISK_SECTORS - SWAP_START; // 154 MiB
pub const ROOT_UUID: &str = "5c1b7f8a-3f4e-4d8a-9a63-0f1f0c6b9a11";
pub const SWAP_UUID: &str = "0a2f4e6c-8b1d-4f3a-9c5e-7d8b6a4f2e10";
pub const SWAP_LABEL: &str = "stem-swap";
pub const KERNEL: &str = "4.4.0-210-generic";
pub const DEVICE_TYPE: &str = "intel-nuc";

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub struct StageHost {
    pub host: FixtureHost,
    /// Holds the image, config.json and other inputs outside the host tree.
    pub inputs: tempfile::TempDir,
}

/// Image layout, in MiB: (start, size) of boot, rootA, rootB, then the extended partition
/// holding state and data.
pub struct ImageSpec {
    pub slug: Option<&'static str>,
    pub total_mib: u64,
    pub gpt: bool,
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec { slug: Some(DEVICE_TYPE), total_mib: 64, gpt: false }
    }
}

impl StageHost {
    pub fn new() -> StageHost {
        let host = FixtureHost::empty();
        host.copy_fixture("/etc/os-release", "os-release/ubuntu-14.04");
        host.copy_fixture("/etc/fstab", "fstab/ubuntu-14.04");
        host.copy_fixture("/proc/self/mountinfo", "mountinfo/ubuntu-14.04-plain");
        host.copy_fixture("/proc/meminfo", "meminfo/ubuntu-14.04-kernel-3.13");
        host.write("/etc/hostname", "stem-device-17\n");
        host.write("/etc/network/interfaces", "auto lo\niface lo inet loopback\n");
        let size_kib = (SWAP_SECTORS * SECTOR - 4096) / 1024;
        host.write(
            "/proc/swaps",
            &format!("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sda5                               partition\t{size_kib}\t\t0\t\t-2\n"),
        );
        host.copy_fixture("/boot/grub/grub.cfg", "grub/ubuntu-14.04-grub.cfg");
        run(Command::new("grub-editenv").arg(host.path("/boot/grub/grubenv")).arg("create"));
        run(Command::new("grub-editenv")
            .arg(host.path("/boot/grub/grubenv"))
            .args(["set", "saved_entry=0"]));
        host.symlink("/usr/bin/grub-editenv", "/usr/bin/grub-editenv");
        host.symlink("/usr/lib/grub/i386-pc", "/usr/lib/grub/i386-pc");
        host.add_sysfs_disk(
            "sda",
            "8:0",
            DISK_SECTORS,
            &[
                Partition {
                    name: "sda1",
                    number: 1,
                    dev: "8:1",
                    start: ROOT_START,
                    sectors: ROOT_SECTORS,
                },
                Partition {
                    name: "sda2",
                    number: 2,
                    dev: "8:2",
                    start: EXTENDED_START,
                    sectors: 2,
                },
                Partition {
                    name: "sda5",
                    number: 5,
                    dev: "8:5",
                    start: SWAP_START,
                    sectors: SWAP_SECTORS,
                },
            ],
            true,
        );
        let disk = host.path("/dev/sda");
        std::fs::create_dir_all(disk.parent().unwrap()).unwrap();
        sparse_file(&disk, DISK_SECTORS * SECTOR);
        sfdisk(
            &disk,
            &format!(
                "label: dos\nlabel-id: 0x1234abcd\nstart={ROOT_START}, size={ROOT_SECTORS}, type=83, bootable\nstart={EXTENDED_START}, type=5\nstart={SWAP_START}, type=82\n"
            ),
        );
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-U", ROOT_UUID, "-E"])
            .arg(format!("offset={}", ROOT_START * SECTOR))
            .arg(&disk)
            .arg(format!("{}k", ROOT_SECTORS * SECTOR / 1024)));
        fixture_host::mkswap_into(
            &disk,
            SWAP_START * SECTOR,
            SWAP_SECTORS * SECTOR,
            SWAP_UUID,
            Some(SWAP_LABEL),
        );
        let stage_host = StageHost { host, inputs: tempfile::tempdir().unwrap() };
        stage_host.add_kernel();
        stage_host.write_input(
            "config.json",
            br#"{"deviceType":"intel-nuc","applicationId":1234,"uuid":"abc"}"#,
        );
        stage_host.make_image("resin.img", &ImageSpec::default());
        stage_host
    }

    pub fn root(&self) -> HostRoot {
        HostRoot::new(self.host.root())
    }

    pub fn input(&self, name: &str) -> PathBuf {
        self.inputs.path().join(name)
    }

    pub fn write_input(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.input(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// `/boot/vmlinuz-<KERNEL>` and `/lib/modules/<KERNEL>` with ext4, FAT and nls modules.
    fn add_kernel(&self) {
        let kernel: Vec<u8> =
            (0..2 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        std::fs::create_dir_all(self.host.path("/boot")).unwrap();
        std::fs::write(self.host.path(&format!("/boot/vmlinuz-{KERNEL}")), kernel).unwrap();
        self.host.write(&format!("/boot/config-{KERNEL}"), "CONFIG_RD_GZIP=y\nCONFIG_RD_XZ=y\n");
        let tree = format!("/lib/modules/{KERNEL}");
        let modules: [(&str, &str); 9] = [
            ("kernel/fs/ext4/ext4.ko", "kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko"),
            ("kernel/fs/jbd2/jbd2.ko", ""),
            ("kernel/fs/mbcache.ko", ""),
            ("kernel/crypto/crc32c_generic.ko", ""),
            ("kernel/fs/fat/fat.ko", ""),
            ("kernel/fs/fat/vfat.ko", "kernel/fs/fat/fat.ko"),
            ("kernel/fs/nls/nls_cp437.ko", ""),
            ("kernel/fs/nls/nls_iso8859-1.ko", ""),
            ("kernel/fs/nls/nls_utf8.ko", ""),
        ];
        let mut dep = String::new();
        for (path, deps) in modules {
            self.host.write(&format!("{tree}/{path}"), &format!("\x7fELF fake module {path}\n"));
            dep.push_str(&format!("{path}: {deps}\n"));
        }
        self.host.write(&format!("{tree}/modules.dep"), &dep);
        self.host.write(
            &format!("{tree}/modules.builtin"),
            "kernel/drivers/ata/ahci.ko\nkernel/drivers/ata/ata_piix.ko\nkernel/drivers/scsi/sd_mod.ko\nkernel/fs/nls/nls_ascii.ko\n",
        );
        self.host.write(&format!("{tree}/modules.alias"), "");
    }

    /// A resinOS-like image: MBR, boot FAT (with device-type.json) at 4 MiB, rootA, rootB,
    /// an extended partition with state and data, ending at `total_mib`; xz-compressed by
    /// the real xz into `<name>.xz`. Returns the .xz path.
    pub fn make_image(&self, name: &str, spec: &ImageSpec) -> PathBuf {
        let raw = self.input(name);
        sparse_file(&raw, spec.total_mib * 1024 * 1024);
        let mib = 2048;
        let data_size = spec.total_mib - 56;
        if spec.gpt {
            sfdisk(
                &raw,
                &format!(
                    "label: gpt\nstart={}, size={}\nstart={}, size={}\n",
                    4 * mib,
                    8 * mib,
                    12 * mib,
                    16 * mib
                ),
            );
        } else {
            sfdisk(
                &raw,
                &format!(
                    "label: dos\nlabel-id: 0xa1b2c3d4\nstart={}, size={}, type=c, bootable\nstart={}, size={}, type=83\nstart={}, size={}, type=83\nstart={}, type=f\nstart={}, size={}, type=83\nstart={}, size={}, type=83\n",
                    4 * mib, 8 * mib, 12 * mib, 16 * mib, 28 * mib, 16 * mib, 44 * mib, 48 * mib, 4 * mib, 56 * mib, data_size * mib
                ),
            );
        }
        if !spec.gpt {
            // resin-data holds ext4, as a real image's does (the stager checks it).
            run(Command::new("mkfs.ext4")
                .args(["-q", "-F", "-L", "resin-data", "-E"])
                .arg(format!("offset={}", 56 * 1024 * 1024))
                .arg(&raw)
                .arg(format!("{}k", data_size * 1024)));
        }
        let boot = self.input(&format!("{name}.boot"));
        let _ = std::fs::remove_file(&boot);
        run(Command::new("mkfs.vfat").args(["-n", "resin-boot", "-C"]).arg(&boot).arg("8192"));
        if let Some(slug) = spec.slug {
            let json = self.write_input(
                &format!("{name}.device-type.json"),
                format!("{{\"slug\":\"{slug}\",\"arch\":\"amd64\"}}").as_bytes(),
            );
            run(Command::new("mcopy").arg("-i").arg(&boot).arg(&json).arg("::device-type.json"));
        }
        run(Command::new("dd")
            .arg(format!("if={}", boot.display()))
            .arg(format!("of={}", raw.display()))
            .args(["bs=1M", "seek=4", "conv=notrunc", "status=none"]));
        let xz = self.input(&format!("{name}.xz"));
        let _ = std::fs::remove_file(&xz);
        run(Command::new("xz").args(["-k", "-0", "-T1", "-f"]).arg(&raw));
        xz
    }

    pub fn image(&self) -> PathBuf {
        self.input("resin.img.xz")
    }

    pub fn facts(&self) -> HostFacts {
        gather_with(
            &self.root(),
            ProcessFacts { euid: 0, arch: "x86_64".into(), search_path: None },
        )
    }

    pub fn request(&self) -> StageRequest {
        let image = self.image();
        let sha = sha256_hex(&std::fs::read(&image).unwrap());
        StageRequest {
            root: self.root(),
            facts: self.facts(),
            profile: board_profiles::Profile::builtin("intel-nuc").unwrap(),
            image: image.display().to_string(),
            sha256: Some(sha),
            ca_certs: Vec::new(),
            config: self.input("config.json"),
            backups: Vec::new(),
            hook: None,
            dry_run: false,
            kernel_release: KERNEL.into(),
            migrator: b"\x7fELF pretend static migrator\n".to_vec(),
            allow_unknown_device_type: false,
            execute: ExecuteOptions { no_reboot: true, fail_after: None },
        }
    }

    pub fn disk(&self) -> PathBuf {
        self.host.path("/dev/sda")
    }

    /// Every file of the host tree except the disk image and the stager's own state dir,
    /// by path, with its bytes' sha256 (symlinks by their target).
    pub fn files(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        walk(self.host.root(), self.host.root(), &mut out);
        out
    }

    /// The parts of the disk a stage must leave (or restore) exactly: everything before the
    /// swap partition (MBR, root, EBR) and the swap header page.
    pub fn disk_guarded(&self) -> (String, String) {
        (
            region_sha256(&self.disk(), 0, SWAP_START * SECTOR),
            region_sha256(&self.disk(), SWAP_START * SECTOR, 4096),
        )
    }

    /// sha256 of the whole disk image (by the native sha256sum: fast in debug builds too).
    pub fn disk_whole(&self) -> String {
        let out = run(Command::new("sha256sum").arg(self.disk()));
        out.split_whitespace().next().unwrap().to_string()
    }

    /// blkid's view of the swap partition region: TYPE, UUID, LABEL.
    pub fn blkid_swap(&self) -> String {
        let output = Command::new("blkid")
            .args(["-p", "-o", "export", "-O"])
            .arg((SWAP_START * SECTOR).to_string())
            .arg(self.disk())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.lines()
            .filter(|l| l.starts_with("TYPE=") || l.starts_with("UUID=") || l.starts_with("LABEL="))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// sha256 of `len` bytes at `offset` of `file`, by dd and sha256sum.
pub fn region_sha256(file: &Path, offset: u64, len: u64) -> String {
    let script = format!(
        "dd if='{}' bs=4096 skip={} count={} iflag=skip_bytes,count_bytes status=none | sha256sum",
        file.display(),
        offset,
        len
    );
    let out = run(Command::new("sh").arg("-c").arg(script));
    out.split_whitespace().next().unwrap().to_string()
}

/// Every file below `dir` (path relative to `base` → sha256, or the target of a symlink),
/// leaving out `dev/sda` and the undo journal's directory.
pub fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let relative = path.strip_prefix(base).unwrap().display().to_string();
        if relative == "dev/sda" || relative.starts_with("var/lib/swapover") {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            out.insert(relative, format!("-> {}", std::fs::read_link(&path).unwrap().display()));
        } else if meta.is_dir() {
            walk(base, &path, out);
        } else {
            out.insert(relative, sha256_hex(&std::fs::read(&path).unwrap()));
        }
    }
}

/// No loop device is left over any file under `dir`.
pub fn loops_over(dir: &Path) -> Vec<String> {
    let output = Command::new("losetup").arg("-a").output().unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.contains(&dir.display().to_string()))
        .map(str::to_string)
        .collect()
}

pub fn mounted_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&dir.display().to_string()))
        .map(str::to_string)
        .collect()
}
