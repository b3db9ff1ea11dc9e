//! The legacy host disk: a scaled-down Project STEM device.
//!
//! MBR with the STEM shape (`sda1` ext4 root with the boot flag from sector 2048, a gap, `sda2`
//! extended, `sda5` swap at the end), 4 GiB sparse; real GRUB 2 in the MBR and embedding area;
//! a busybox userland that calls itself Ubuntu 14.04 with Ubuntu's grub.cfg (next_entry handling,
//! 41_custom sourcing custom.cfg), a grubenv, an fstab mounting swap by UUID, customer data, a
//! NetworkManager WiFi connection and a wpa_supplicant config. A test runs its own commands on
//! boot through a payload disk (see [`crate::payload`]).

use crate::disk::{self, SECTOR_BYTES};
use crate::fixture;
use crate::grub_boot;
use crate::guest_initramfs::build_busybox_initramfs;
use crate::kernel::TestKernel;
use crate::paths;
use crate::rootfs::RootTree;
use crate::stamp::{self, Fingerprint};
use crate::tools::run;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub const DISK_BYTES: u64 = 4 << 30;
/// MBR disk identifier, as on the STEM device in the project plan.
pub const DISK_ID: &str = "0x000ae07e";
pub const ROOT_UUID: &str = "5f3c8a42-9d1e-4b7a-8c21-3e6f0b9d7a15";
pub const SWAP_UUID: &str = "c0ffee00-51ab-4e3d-9f42-aa11bb22cc33";
pub const HOSTNAME: &str = "stem-device-0042";
/// Partition layout in sectors, the same shape as the STEM `fdisk -l` (a 2-sector gap
/// between sda1's end and the extended partition, the logical swap 2 sectors in).
pub const ROOT_START: u64 = 2048;
pub const ROOT_SECTORS: u64 = 6_291_456 - 2048;
pub const EXTENDED_START: u64 = 6_293_502;
pub const SWAP_START: u64 = 6_293_504;
pub const SWAP_SECTORS: u64 = DISK_BYTES / SECTOR_BYTES - SWAP_START;

/// Kernel module directories copied into the host's `/lib/modules` (what the stager may need
/// for the migration initramfs: disks, file systems, crypto helpers).
const MODULE_SUBDIRS: &[&str] = &[
    "kernel/fs",
    "kernel/drivers/ata",
    "kernel/drivers/scsi",
    "kernel/drivers/block",
    "kernel/drivers/virtio",
    "kernel/drivers/firmware",
    "kernel/lib",
    "kernel/crypto",
    "kernel/block",
    "kernel/arch",
];

const RECIPE: &str = concat!(
    include_str!("host_image.rs"),
    include_str!("fixture.rs"),
    include_str!("rootfs.rs"),
    include_str!("grub_boot.rs"),
    include_str!("guest_initramfs.rs"),
    include_str!("../assets/host/grub.cfg"),
    include_str!("../assets/host/inittab"),
    include_str!("../assets/host/rcS"),
    include_str!("../assets/host/swapover-onboot"),
    include_str!("../assets/host/initrd-init"),
);

/// A built, pristine legacy host disk. Tests take fresh copies of it.
#[derive(Debug, Clone)]
pub struct HostImage {
    pub path: PathBuf,
    /// The root tree it was built from (the expected customer data lives here).
    pub root_tree: PathBuf,
    pub kernel: TestKernel,
}

impl HostImage {
    /// Builds the image if its inputs changed since the last build; returns it either way.
    pub fn ensure() -> Result<HostImage> {
        let kernel = TestKernel::locate()?;
        let dir = paths::images_dir();
        let path = dir.join("legacy-host.img");
        let root_tree = dir.join("legacy-host-root");
        let mut fp = Fingerprint::new(RECIPE);
        fp.text(&kernel.version)
            .file(Path::new(crate::rootfs::BUSYBOX))?
            .file(&grub_boot::boot_img_path())?;
        let image = HostImage { path, root_tree, kernel };
        if stamp::is_fresh(&image.path, &fp) && image.root_tree.exists() {
            return Ok(image);
        }
        let started = std::time::Instant::now();
        image.build()?;
        stamp::mark_fresh(&image.path, &fp)?;
        eprintln!("[harness] built legacy host image in {:.1}s", started.elapsed().as_secs_f64());
        Ok(image)
    }

    /// A fresh copy of the pristine image for one test (sparse, so cheap).
    pub fn fresh_copy(&self, name: &str) -> Result<PathBuf> {
        let dst = paths::artifacts_dir().join("runs").join(format!("{name}.img"));
        if let Some(d) = dst.parent() {
            std::fs::create_dir_all(d)?;
        }
        run(
            "cp",
            [std::ffi::OsStr::new("--sparse=always"), self.path.as_os_str(), dst.as_os_str()],
        )?;
        Ok(dst)
    }

    /// What the migration must deliver: the customer data under the backup paths.
    pub fn expected_manifest(&self) -> Result<fixture::Manifest> {
        fixture::manifest(&self.root_tree)
    }

    fn build(&self) -> Result<()> {
        let work = paths::images_dir().join("legacy-host-work");
        std::fs::create_dir_all(&work)?;
        let tree = RootTree::fresh(&self.root_tree)?;
        self.populate(&tree, &work)?;

        let root_fs = work.join("root.ext4");
        // Ubuntu 14.04's e2fsprogs (1.42) made ext4 without metadata_csum and 64bit.
        disk::mkfs_ext4(
            &root_fs,
            ROOT_SECTORS * SECTOR_BYTES,
            "",
            ROOT_UUID,
            &tree.root,
            "^metadata_csum,^64bit,^orphan_file,^metadata_csum_seed",
        )?;
        let swap = work.join("swap.img");
        disk::create_sparse(&swap, SWAP_SECTORS * SECTOR_BYTES)?;
        run("mkswap", [std::ffi::OsStr::new("-U"), SWAP_UUID.as_ref(), swap.as_os_str()])?;

        let tmp = self.path.with_extension("img.tmp");
        disk::create_sparse(&tmp, DISK_BYTES)?;
        disk::write_table(
            &tmp,
            &format!(
                "label: dos\nlabel-id: {DISK_ID}\nunit: sectors\n\n\
                 start={ROOT_START}, size={ROOT_SECTORS}, type=83, bootable\n\
                 start={EXTENDED_START}, type=5\n\
                 start={SWAP_START}, type=82\n"
            ),
        )?;
        disk::place_into_fresh_sparse(&tmp, ROOT_START * SECTOR_BYTES, &root_fs)?;
        disk::place_into_fresh_sparse(&tmp, SWAP_START * SECTOR_BYTES, &swap)?;
        grub_boot::install(
            &tmp,
            "(hd0,msdos1)/boot/grub",
            &["biosdisk", "part_msdos", "ext2"],
            &work,
        )?;
        std::fs::rename(&tmp, &self.path)?;
        std::fs::remove_dir_all(&work)?;
        Ok(())
    }

    fn populate(&self, tree: &RootTree, work: &Path) -> Result<()> {
        let kver = &self.kernel.version;
        tree.busybox()?;
        let assets = paths::workspace_root().join("qemu-tests/assets/host");
        tree.copy("etc/inittab", &assets.join("inittab"), 0o644)?;
        tree.copy("etc/init.d/rcS", &assets.join("rcS"), 0o755)?;
        tree.copy("usr/local/sbin/swapover-onboot", &assets.join("swapover-onboot"), 0o755)?;
        tree.file(
            "etc/os-release",
            b"NAME=\"Ubuntu\"\nVERSION=\"14.04.5 LTS, Trusty Tahr\"\nID=ubuntu\nID_LIKE=debian\n\
              PRETTY_NAME=\"Ubuntu 14.04.5 LTS\"\nVERSION_ID=\"14.04\"\nHOME_URL=\"http://www.ubuntu.com/\"\n\
              SUPPORT_URL=\"http://help.ubuntu.com/\"\nBUG_REPORT_URL=\"http://bugs.launchpad.net/ubuntu/\"\n",
            0o644,
        )?;
        tree.file(
            "etc/lsb-release",
            b"DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=14.04\nDISTRIB_CODENAME=trusty\nDISTRIB_DESCRIPTION=\"Ubuntu 14.04.5 LTS\"\n",
            0o644,
        )?;
        tree.file("etc/hostname", format!("{HOSTNAME}\n").as_bytes(), 0o644)?;
        tree.file(
            "etc/hosts",
            format!("127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}\n").as_bytes(),
            0o644,
        )?;
        tree.file(
            "etc/fstab",
            format!(
                "# /etc/fstab: static file system information.\n\
                 # <file system> <mount point>   <type>  <options>       <dump>  <pass>\n\
                 UUID={ROOT_UUID} /               ext4    errors=remount-ro 0       1\n\
                 UUID={SWAP_UUID} none            swap    sw              0       0\n"
            )
            .as_bytes(),
            0o644,
        )?;
        tree.file(
            "etc/default/grub",
            b"GRUB_DEFAULT=0\nGRUB_TIMEOUT=0\nGRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n\
              GRUB_CMDLINE_LINUX=\"console=ttyS0,115200\"\nGRUB_TERMINAL=serial\n",
            0o644,
        )?;
        fixture::write_customer_data(&tree.root)?;

        // Kernel, its modules (a subset of the package) and the host's own initrd.
        tree.copy(&format!("boot/vmlinuz-{kver}"), &self.kernel.vmlinuz(), 0o600)?;
        tree.copy(&format!("boot/config-{kver}"), &self.kernel.config(), 0o644)?;
        for sub in MODULE_SUBDIRS {
            let src = self.kernel.module_tree().join(sub);
            if src.exists() {
                tree.copy_dir(&format!("lib/modules/{kver}/{sub}"), &src)?;
            }
        }
        for f in ["modules.builtin", "modules.builtin.modinfo", "modules.order"] {
            tree.copy(
                &format!("lib/modules/{kver}/{f}"),
                &self.kernel.module_tree().join(f),
                0o644,
            )?;
        }
        run("depmod", ["-b", &tree.root.to_string_lossy(), kver])?;
        let initrd = work.join("initrd.img");
        build_busybox_initramfs(
            &initrd,
            &self.kernel,
            &std::fs::read(assets.join("initrd-init"))?,
        )?;
        tree.copy(&format!("boot/initrd.img-{kver}"), &initrd, 0o644)?;

        // Tools an Ubuntu host has and the stager uses: e2fsprogs and GRUB's image maker
        // with its BIOS modules (the busybox userland has neither).
        for program in ["/sbin/mke2fs", "/usr/bin/grub-mkimage", "/usr/bin/grub-editenv"] {
            tree.dynamic_program(Path::new(program))?;
        }
        let mkfs_ext4 = tree.path("sbin/mkfs.ext4");
        if mkfs_ext4.symlink_metadata().is_ok() {
            std::fs::remove_file(&mkfs_ext4)?;
        }
        std::os::unix::fs::symlink("mke2fs", &mkfs_ext4)?;
        grub_boot::copy_modules(&tree.path("usr/lib/grub/i386-pc"))?;
        for extra in ["boot.img", "kernel.img", "lzma_decompress.img", "diskboot.img", "moddep.lst"]
        {
            let src = Path::new(grub_boot::GRUB_I386_PC).join(extra);
            if src.exists() {
                tree.copy(&format!("usr/lib/grub/i386-pc/{extra}"), &src, 0o644)?;
            }
        }
        // GRUB's files as grub-install would leave them.
        let cfg = std::fs::read_to_string(assets.join("grub.cfg"))?
            .replace("@ROOT_UUID@", ROOT_UUID)
            .replace("@KVER@", kver);
        tree.file("boot/grub/grub.cfg", cfg.as_bytes(), 0o444)?;
        grub_boot::copy_modules(&tree.path("boot/grub/i386-pc"))?;
        let grubenv = tree.path("boot/grub/grubenv");
        run("grub-editenv", [grubenv.as_os_str(), std::ffi::OsStr::new("create")])
            .context("creating the host's grubenv")?;
        Ok(())
    }
}
