//! Two refusals of `stage-1x` that README promises, on a real resinOS 1.x device tree: the
//! disk at `/dev/sda` in the profile's source layout (real sfdisk, mkfs.vfat/ext3/btrfs, see
//! `resinos1x_support`), a sysfs naming its partitions, efivarfs holding one variable, the
//! boot partition's mount point, the migration kernel and a module tree. Each refusal is one
//! line and comes before the first change: the disk image, every file of the tree and the
//! boot mount are byte-identical afterwards, no undo journal is written, nothing is attached
//! or mounted. The boot mount is a directory of the test's own file system, and sysfs gives
//! the boot partition that file system's device number (`stage-1x` compares the two, as it
//! does on a device where resin-boot is mounted): this kernel does not scan partitions of
//! loop devices, so the disk image's own FAT cannot be the one mounted there.

#[path = "stage_support/mod.rs"]
mod stage_support;

#[path = "resinos1x_support/mod.rs"]
mod resinos1x_support;

use board_profiles::Profile;
use resinos1x_support::{resinos1x_case, Case, MIB};
use stage_support::fixture_host::{FixtureHost, Partition};
use stage_support::{loops_over, mounted_under, sha256_hex, walk};
use stager::host::HostRoot;
use stager::stage::execute::ExecuteOptions;
use stager::stage::planning::wanted_modules;
use stager::stage::resinos1x::stage_1x::{self, Outcome1x, Stage1xError, Stage1xRequest};
use stager::stage::system::FixtureSystem;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

const BOOT_MOUNT: &str = "/mnt/boot";
const EFIVARS: &str = "/sys/firmware/efi/efivars";

/// A resinOS 1.x device of `profile_name`, ready to be staged but for what a test changes.
struct Device {
    _case: Case,
    host: FixtureHost,
    request: Stage1xRequest,
}

impl Device {
    fn new(profile_name: &str) -> Device {
        let profile = Profile::builtin(profile_name).unwrap();
        let case = resinos1x_case(&profile, &[], 300_000, MIB);
        let host = FixtureHost::empty();
        let disk = host.path("/dev/sda");
        std::fs::create_dir_all(disk.parent().unwrap()).unwrap();
        std::fs::rename(&case.request.disk, &disk).unwrap();

        // resin-boot "mounted" read-write at /mnt/boot, with the 1.x GRUB's files.
        host.write(&format!("{BOOT_MOUNT}/EFI/BOOT/grub.cfg"), "# resinOS 1.x\n");
        let boot_dev = std::fs::metadata(host.path(BOOT_MOUNT)).unwrap().dev();
        let boot_dev = format!("{}:{}", nix::sys::stat::major(boot_dev), nix::sys::stat::minor(boot_dev));
        // Partitions in table order; from the fourth on, logical ones numbered from 5.
        let logical = case.source.len() > 4;
        let names: Vec<(String, String, u32)> = case
            .source
            .iter()
            .enumerate()
            .map(|(i, (p, _, _))| {
                let number = if logical && i >= 3 { i as u32 + 2 } else { i as u32 + 1 };
                let dev = if p.role == plan::PartitionRole::Boot { boot_dev.clone() } else { format!("259:{number}") };
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
                start: at * resinos1x_support::SECTORS_PER_MIB,
                sectors: size * resinos1x_support::SECTORS_PER_MIB,
            })
            .collect();
        let sectors = std::fs::metadata(&disk).unwrap().len() / 512;
        host.add_sysfs_disk("sda", "8:0", sectors, &partitions, true);

        host.write(&format!("{EFIVARS}/BootOrder-8be4df61-93ca-11d2-aa0d-00e098032b8c"), "\x07\0\0\0\x01\0");
        // The kernel's module tree, every module the profile wants built in.
        let builtin: String = wanted_modules(&profile).iter().map(|m| format!("kernel/drivers/{m}.ko\n")).collect();
        host.write("/lib/modules/4.9.0-resin/modules.dep", "");
        host.write("/lib/modules/4.9.0-resin/modules.builtin", &builtin);

        let mut plan = case.request.clone();
        plan.disk = disk;
        let request = Stage1xRequest {
            plan,
            root: HostRoot::new(host.root()),
            modules: host.path("/lib/modules/4.9.0-resin"),
            boot_mount: BOOT_MOUNT.into(),
            efivars: EFIVARS.into(),
            migrator: b"\x7fELF the migrator".to_vec(),
            dry_run: false,
            execute: ExecuteOptions { no_reboot: true, fail_after: None },
        };
        Device { _case: case, host, request }
    }

    /// Every file of the device tree (the disk image by its sha256 too).
    fn snapshot(&self) -> (BTreeMap<String, String>, String) {
        let mut files = BTreeMap::new();
        walk(self.host.root(), self.host.root(), &mut files);
        (files, sha256_hex(&std::fs::read(self.host.path("/dev/sda")).unwrap()))
    }

    /// Runs `stage-1x` (not a dry run), expects a refusal containing every `needles` and
    /// the device as it was.
    fn refused(&self, needles: &[&str]) {
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
        assert!(!self.host.path("/var/lib/swapover/state.json").exists(), "an undo journal was written by: {text}");
        assert!(system.calls.is_empty(), "{:?}", system.calls);
        assert!(mounted_under(self.host.root()).is_empty(), "{:?}", mounted_under(self.host.root()));
        assert!(loops_over(self.host.root()).is_empty(), "{:?}", loops_over(self.host.root()));
    }
}

#[test]
fn a_board_that_is_not_uefi_is_refused_before_anything_changes() {
    let device = Device::new("resinos1x-raspberrypi3");
    device.refused(&[
        "refused: profile resinos1x-raspberrypi3 arms the migration by editing config.txt, cmdline.txt on the boot partition",
        "stage-1x stages UEFI boards only (armed with BootNext)",
        "see `stager plan-image` for this board's plan",
    ]);
}

#[test]
fn an_earlier_runs_swapover_directory_on_the_boot_partition_is_refused() {
    let mut device = Device::new("resinos1x-intel-nuc");
    let leftover = device.host.path(&format!("{BOOT_MOUNT}/swapover"));
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("vmlinuz"), b"an earlier run's kernel").unwrap();
    device.refused(&[
        &format!("{} exists already (left by an earlier run)", leftover.display()),
        "run `stager abort`, or remove it if no migration is staged",
    ]);

    // Without the leftover the same device is ready: the refusal was the leftover's.
    std::fs::remove_dir_all(&leftover).unwrap();
    device.request.dry_run = true;
    match stage_1x::run(&device.request, &mut FixtureSystem::default()) {
        Ok(Outcome1x::DryRun(text)) => assert!(text.contains("set BootNext to it (one boot)"), "{text}"),
        other => panic!("the device without the leftover is not ready: {other:?}"),
    }
}
