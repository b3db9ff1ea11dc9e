//! A resinOS 1.x device tree ready for `stage-1x` (see stage_1x_refusals.rs for what it holds).

use super::{resinos1x_case, Case, MIB};
use crate::stage_support::fixture_host::{FixtureHost, Partition};
use crate::stage_support::sha256_hex;
use crate::stage_support::{loops_over, mounted_under, walk};
use board_profiles::Profile;
use stager::host::HostRoot;
use stager::stage::engine::execute::ExecuteOptions;
use stager::stage::engine::system::FixtureSystem;
use stager::stage::resinos1x::stage_1x::{self, Stage1xError};
use stager::stage::resinos1x::stage_1x::{Stage1xRequest, SupervisorRequest};
use stager::stage::ubuntu::planning::wanted_modules;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

pub const BOOT_MOUNT: &str = "/mnt/boot";
pub const EFIVARS: &str = "/sys/firmware/efi/efivars";
pub const PHYS_MEM: &str = "/dev/mem";
pub const UBOOT_IMG: &str = "u-boot.img";
pub const OSRELEASE: &str = "/proc/sys/kernel/osrelease";
pub const MOUNTINFO: &str = "/proc/self/mountinfo";
/// A Raspberry Pi resinOS 1.x kernel release with `reboot_part` (rpi-4.1.y, contract P8).
pub const PI_KERNEL_RELEASE: &str = "4.1.23\n";
/// The 1.x root (p2) mounted at `/`.
pub const PI_MOUNTINFO: &str = "21 1 259:2 / / rw,relatime - ext3 /dev/sda2 rw\n";
/// Stands for the BeagleBone 1.x u-boot.img: stager reads only its strings.
pub const UBOOT_IMG_STRINGS: &str =
    "U-Boot 2015.07\0bootcount\0uenvcmd\0bootz ${loadaddr} - ${fdtaddr}\0";

/// `len` bytes repeating `seed` and a counter, different for each seed.
pub fn pattern(seed: &[u8], len: usize) -> Vec<u8> {
    (0..len).map(|i| seed[i % seed.len()].wrapping_add((i / 251) as u8)).collect()
}

/// A resinOS 1.x device of `profile_name`, ready to be staged but for what a test changes.
pub struct Device {
    pub case: Case,
    pub host: FixtureHost,
    pub request: Stage1xRequest,
    /// A tmpfs mounted as the boot partition (see [`Device::with_mounted_boot`]).
    boot_tmpfs: Option<std::path::PathBuf>,
}

impl Drop for Device {
    fn drop(&mut self) {
        if let Some(dir) = &self.boot_tmpfs {
            let _ = std::process::Command::new("umount").arg(dir).status();
        }
    }
}

impl Device {
    pub fn new(profile_name: &str) -> Device {
        Device::build(profile_name, false, &[])
    }

    /// A resinOS 1.x Raspberry Pi with its source partitions' sizes overridden (MiB): the
    /// running kernel's release and `reboot_part` parameter in the tree's /proc and /sys
    /// ([`PI_KERNEL_RELEASE`], "0"), and a mountinfo with the root (p2) and resin-boot (p1)
    /// mounted. resin-boot is read from the disk: nothing mounts it.
    pub fn pi(profile_name: &str, overrides: &[(&str, u64)]) -> Device {
        Device::build(profile_name, false, overrides)
    }

    /// The same device with a tmpfs mounted where the boot partition is, sysfs giving the
    /// boot partition the tmpfs's device number: undo, which removes our files only through
    /// a mounted boot partition, can then run to its end.
    pub fn with_mounted_boot(profile_name: &str) -> Device {
        Device::build(profile_name, true, &[])
    }

    fn build(profile_name: &str, mount_boot: bool, overrides: &[(&str, u64)]) -> Device {
        let profile = Profile::builtin(profile_name).unwrap();
        let case = resinos1x_case(&profile, overrides, 300_000, MIB);
        let host = FixtureHost::empty();
        let disk = host.path("/dev/sda");
        std::fs::create_dir_all(disk.parent().unwrap()).unwrap();
        std::fs::rename(&case.request.disk, &disk).unwrap();

        // resin-boot "mounted" read-write at /mnt/boot, with the 1.x GRUB's files.
        let boot_tmpfs = mount_boot.then(|| {
            let dir = host.path(BOOT_MOUNT);
            std::fs::create_dir_all(&dir).unwrap();
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=64m", "swapover-test-boot"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "mount tmpfs on {}", dir.display());
            dir
        });
        match &profile.uboot_trial {
            // resin-boot as the BeagleBone's: the uEnv.txt of the disk's own FAT and a
            // u-boot.img whose strings have what the trial needs.
            Some(_) => {
                std::fs::create_dir_all(host.path(BOOT_MOUNT)).unwrap();
                for name in &profile.bootloader_config_files {
                    std::fs::write(
                        host.path(&format!("{BOOT_MOUNT}/{name}")),
                        super::original_boot_file(name),
                    )
                    .unwrap();
                }
                host.write(&format!("{BOOT_MOUNT}/{UBOOT_IMG}"), UBOOT_IMG_STRINGS);
            }
            None if profile.pi_trial.is_some() => {
                std::fs::create_dir_all(host.path(BOOT_MOUNT)).unwrap()
            }
            None => host.write(&format!("{BOOT_MOUNT}/EFI/BOOT/grub.cfg"), "# resinOS 1.x\n"),
        }
        let boot_dev = std::fs::metadata(host.path(BOOT_MOUNT)).unwrap().dev();
        let boot_dev =
            format!("{}:{}", nix::sys::stat::major(boot_dev), nix::sys::stat::minor(boot_dev));
        // Partitions in table order; from the fourth on, logical ones numbered from 5.
        let logical = case.source.len() > 4;
        let names: Vec<(String, String, u32)> = case
            .source
            .iter()
            .enumerate()
            .map(|(i, (p, _, _))| {
                let number = if logical && i >= 3 { i as u32 + 2 } else { i as u32 + 1 };
                let dev = if p.role == plan::PartitionRole::Boot {
                    boot_dev.clone()
                } else {
                    format!("259:{number}")
                };
                (format!("sda{number}"), dev, number)
            })
            .collect();
        let partitions: Vec<Partition> = case
            .source
            .iter()
            .zip(&names)
            .map(|((_, at, size), (name, dev, number))| Partition {
                name,
                number: *number,
                dev,
                start: at * super::SECTORS_PER_MIB,
                sectors: size * super::SECTORS_PER_MIB,
            })
            .collect();
        let sectors = std::fs::metadata(&disk).unwrap().len() / 512;
        host.add_sysfs_disk("sda", "8:0", sectors, &partitions, true);

        host.write(
            &format!("{EFIVARS}/BootOrder-8be4df61-93ca-11d2-aa0d-00e098032b8c"),
            "\x07\0\0\0\x01\0",
        );
        // The kernel's module tree, every module the profile wants built in.
        let builtin: String =
            wanted_modules(&profile).iter().map(|m| format!("kernel/drivers/{m}.ko\n")).collect();
        host.write("/lib/modules/4.9.0-resin/modules.dep", "");
        host.write("/lib/modules/4.9.0-resin/modules.builtin", &builtin);

        let mut plan = case.request.clone();
        plan.disk = disk;
        if let Some(trial) = &profile.uboot_trial {
            // The board's 1.x kernel and dtb on the running root, distinct bytes each; the
            // boot counter in the tree's /dev/mem, where stage-1x reads it by default.
            for (file, bytes) in [
                (&trial.kernel, pattern(b"zImage", 300_000)),
                (&trial.dtb, pattern(b"dtb", 40_000)),
            ] {
                let path = host.path(file);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, bytes).unwrap();
            }
            plan.kernel = host.path(&trial.kernel);
            plan.phys_mem = host.path(PHYS_MEM);
            super::write_counter(&plan.phys_mem, &trial.bootcount, super::BOOT_COUNT_WORD);
        }
        if let Some(trial) = &profile.pi_trial {
            host.write(OSRELEASE, PI_KERNEL_RELEASE);
            host.write(&trial.reboot_part, "0\n");
            host.write(
                MOUNTINFO,
                &format!("{PI_MOUNTINFO}{} 21 {boot_dev} / /mnt/boot rw - vfat /dev/sda1 rw\n", 30),
            );
        }
        let request = Stage1xRequest {
            plan,
            root: HostRoot::new(host.root()),
            modules: host.path("/lib/modules/4.9.0-resin"),
            boot_mount: BOOT_MOUNT.into(),
            efivars: EFIVARS.into(),
            migrator: b"\x7fELF the migrator".to_vec(),
            dry_run: false,
            execute: ExecuteOptions { no_reboot: true, fail_after: None },
            supervisor: SupervisorRequest::Mark { version: None, ca_cert: None },
        };
        Device { case, host, request, boot_tmpfs }
    }

    /// The arguments that point `stager stage-1x` at this device: its root, disk, image,
    /// config.json, data root, kernel, modules, boot mount and EFI variables.
    pub fn stage_1x_args<'c>(
        &self,
        command: &'c mut std::process::Command,
    ) -> &'c mut std::process::Command {
        self.stage_1x_args_but_kernel(command).arg("--kernel").arg(&self.request.plan.kernel)
    }

    /// [`Device::stage_1x_args`] without `--kernel` (the profile's default kernel).
    pub fn stage_1x_args_but_kernel<'c>(
        &self,
        command: &'c mut std::process::Command,
    ) -> &'c mut std::process::Command {
        let plan = &self.request.plan;
        command
            .arg("--root")
            .arg(self.host.root())
            .arg("--disk")
            .arg(&plan.disk)
            .arg("--image")
            .arg(&plan.image)
            .arg("--config")
            .arg(&plan.config)
            .arg("--data-root")
            .arg(&plan.data_root)
            .arg("--modules")
            .arg(&self.request.modules)
            .args(["--boot-mount", BOOT_MOUNT, "--efivars", EFIVARS])
    }

    /// Every file of the device tree (the disk image by its sha256 too).
    pub fn snapshot(&self) -> (BTreeMap<String, String>, String) {
        let mut files = BTreeMap::new();
        walk(self.host.root(), self.host.root(), &mut files);
        (files, sha256_hex(&std::fs::read(self.host.path("/dev/sda")).unwrap()))
    }

    /// Runs `stage-1x` (not a dry run), expects a refusal containing every `needles` and
    /// the device as it was.
    pub fn refused(&self, needles: &[&str]) {
        let before = self.snapshot();
        let mut system = FixtureSystem::default();
        let err = stage_1x::run(&self.request, &mut system).expect_err("must refuse");
        let text = err.to_string();
        assert!(matches!(err, Stage1xError::Refused(_)), "not a refusal: {text}");
        for needle in needles {
            assert!(text.contains(needle), "{needle:?} not in: {text}");
        }
        assert!(text.ends_with("; nothing was changed"), "{text}");
        assert!(!text.contains('\n'), "one line: {text}");
        assert_eq!(self.snapshot(), before, "the device changed by: {text}");
        assert!(
            !self.host.path("/var/lib/swapover/state.json").exists(),
            "an undo journal was written by: {text}"
        );
        assert!(system.calls.is_empty(), "{:?}", system.calls);
        assert!(
            mounted_under(self.host.root()).is_empty(),
            "{:?}",
            mounted_under(self.host.root())
        );
        assert!(loops_over(self.host.root()).is_empty(), "{:?}", loops_over(self.host.root()));
    }
}
