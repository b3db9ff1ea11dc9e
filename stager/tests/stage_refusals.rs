//! Every refusal of `stage`: the one-line error names the problem and the fix, and the host
//! is byte-identical afterwards (the whole disk image — partition table, swap signature and
//! UUID — and every file: fstab, grub.cfg, grubenv, custom.cfg).

#[path = "stage_support/mod.rs"]
mod stage_support;

use stage_support::*;
use stager::stage::engine::system::FixtureSystem;
use stager::stage::{run_stage, StageOutcome, StageRequest};

/// Runs `request` on `host`, expects a refusal containing every `needles`, and an unchanged host.
fn refused(host: &StageHost, request: StageRequest, needles: &[&str]) {
    let state = host.host.path("/var/lib/swapover/state.json");
    let before = (host.files(), host.disk_whole(), std::fs::read(&state).ok());
    let mut system = FixtureSystem::default();
    let err = run_stage(&request, &mut system).expect_err("must refuse");
    let text = err.to_string();
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in: {text}");
    }
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(system.calls.is_empty(), "{:?}", system.calls);
    assert_eq!(
        (host.files(), host.disk_whole(), std::fs::read(&state).ok()),
        before,
        "host changed by: {text}"
    );
}

#[test]
fn image_of_another_device_type() {
    let host = StageHost::new();
    let image = host
        .make_image("rpi.img", &ImageSpec { slug: Some("raspberrypi3"), ..ImageSpec::default() });
    let mut request = host.request();
    request.image = image.display().to_string();
    request.sha256 = Some(sha256_hex(&std::fs::read(&image).unwrap()));
    refused(
        &host,
        request,
        &["image is for device type raspberrypi3", "download the intel-nuc image"],
    );
}

#[test]
fn image_without_device_type_json_unless_allowed() {
    let host = StageHost::new();
    let image = host.make_image("nodt.img", &ImageSpec { slug: None, ..ImageSpec::default() });
    let mut request = host.request();
    request.image = image.display().to_string();
    request.sha256 = Some(sha256_hex(&std::fs::read(&image).unwrap()));
    refused(&host, request.clone(), &["device type cannot be read", "--allow-unknown-device-type"]);
    request.allow_unknown_device_type = true;
    request.dry_run = true;
    assert!(run_stage(&request, &mut FixtureSystem::default()).is_ok());
}

#[test]
fn image_too_large_for_the_old_root() {
    let host = StageHost::new();
    let image = host.make_image("big.img", &ImageSpec { total_mib: 120, ..ImageSpec::default() });
    let mut request = host.request();
    request.image = image.display().to_string();
    request.sha256 = Some(sha256_hex(&std::fs::read(&image).unwrap()));
    refused(
        &host,
        request,
        &["does not fit the old root's space", "use a smaller image or a larger old root"],
    );
}

#[test]
fn gpt_image_where_mbr_is_expected() {
    let host = StageHost::new();
    let image = host.make_image("gpt.img", &ImageSpec { gpt: true, ..ImageSpec::default() });
    let mut request = host.request();
    request.image = image.display().to_string();
    request.sha256 = Some(sha256_hex(&std::fs::read(&image).unwrap()));
    refused(&host, request, &["the image has a GPT partition table but the profile expects MBR; download the board's MBR image"]);
}

/// One byte flipped in a third, the middle or two thirds of the xz file, whose sha256 is
/// given for the flipped bytes: only decoding can tell.
#[test]
fn corrupt_xz() {
    let host = StageHost::new();
    let whole = std::fs::read(host.image()).unwrap();
    for at in [whole.len() / 3, whole.len() / 2, whole.len() * 2 / 3] {
        let mut bytes = whole.clone();
        bytes[at] ^= 0xff;
        let corrupt = host.write_input(&format!("corrupt-{at}.img.xz"), &bytes);
        let mut request = host.request();
        request.image = corrupt.display().to_string();
        request.sha256 = Some(sha256_hex(&bytes));
        refused(
            &host,
            request,
            &[
                &format!(
                    "the image {} is corrupt: its xz stream does not decode (",
                    corrupt.display()
                ),
                "); download it again (and its .sha256)",
            ],
        );
    }
}

#[test]
fn wrong_sha256() {
    let host = StageHost::new();
    let mut request = host.request();
    request.sha256 = Some("0".repeat(64));
    refused(
        &host,
        request,
        &[
            &format!("sha256 mismatch for {}: expected {}", host.image().display(), "0".repeat(64)),
            "the file is corrupt or the sha256 is wrong; nothing on the host was changed",
        ],
    );
}

/// A request for the local `image`, verified by a `.sha256` beside it that matches its bytes.
fn with_sidecar(host: &StageHost, image: &std::path::Path) -> StageRequest {
    let name = image.file_name().unwrap().to_string_lossy().into_owned();
    host.write_input(
        &format!("{name}.sha256"),
        format!("{}  {name}\n", sha256_hex(&std::fs::read(image).unwrap())).as_bytes(),
    );
    let mut request = host.request();
    request.image = image.display().to_string();
    request.sha256 = None;
    request
}

/// A valid xz image cut short, beside a `.sha256` of the cut bytes: the sha256 matches, so
/// only decoding can tell. Cut at a third, at two thirds, and one byte short (in the
/// stream's footer, after every image byte was decoded).
#[test]
fn truncated_xz_image() {
    let host = StageHost::new();
    let whole = std::fs::read(host.image()).unwrap();
    for keep in [whole.len() / 3, whole.len() * 2 / 3, whole.len() - 1] {
        let cut = host.write_input(&format!("cut-{keep}.img.xz"), &whole[..keep]);
        refused(
            &host,
            with_sidecar(&host, &cut),
            &[&format!(
                "the image {} is truncated: its xz stream ends early; download it again",
                cut.display()
            )],
        );
    }
}

/// An uncompressed image cut 4 MiB short of its last partition's end, with a matching
/// `.sha256`: only the partition table shows it is incomplete.
#[test]
fn truncated_raw_image() {
    let host = StageHost::new();
    let cut = host.input("cut.img");
    std::fs::copy(host.input("resin.img"), &cut).unwrap();
    std::fs::OpenOptions::new().write(true).open(&cut).unwrap().set_len(60 * 1024 * 1024).unwrap();
    refused(
        &host,
        with_sidecar(&host, &cut),
        &[&format!(
            "the image {} is truncated: it holds 60 MiB but its partition table reaches 64 MiB; download it again",
            cut.display()
        )],
    );
}

/// The uncompressed image file is 150 MiB long (its layout fits the old root): kernel,
/// initramfs, image and margin alone exceed the 154 MiB swap partition, without any backup.
#[test]
fn swap_too_small_for_the_image() {
    let host = StageHost::new();
    host.make_image("long.img", &ImageSpec { total_mib: 100, ..ImageSpec::default() });
    let raw = host.input("long.img");
    std::fs::OpenOptions::new().write(true).open(&raw).unwrap().set_len(150 * 1024 * 1024).unwrap();
    let mut request = host.request();
    request.image = raw.display().to_string();
    request.sha256 = Some(sha256_hex(&std::fs::read(&raw).unwrap()));
    refused(
        &host,
        request,
        &[
            "the swap partition /dev/sda5 is 154 MiB but staging needs",
            "+ backup 0 B +",
            "grow the swap partition or use a smaller image",
        ],
    );
}

/// Image, kernel and initramfs fit the staging space (the same request without the backup
/// plans), but the named backup path does not: the error names the backup set's size and
/// the room staging has for it.
#[test]
fn backup_set_larger_than_the_staging_space() {
    let host = StageHost::new();
    let big = host.host.path("/srv/huge.bin");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    std::fs::File::create(&big).unwrap().set_len(200 * 1024 * 1024).unwrap();
    let mut fits = host.request();
    fits.dry_run = true;
    let planned =
        match run_stage(&fits, &mut FixtureSystem::default()).expect("plans without the backup") {
            StageOutcome::DryRun { plan, .. } => plan,
            other => panic!("{other:?}"),
        };
    let room = plan::Bytes(
        planned.budget.have.get() - (planned.budget.needed.get() - planned.budget.backup.get()),
    );
    let backup = plan::Bytes(200 * 1024 * 1024 + 512);
    let mut request = host.request();
    request.backups = vec!["/srv/huge.bin".into()];
    refused(
        &host,
        request,
        &[
            &format!("the backup set (/srv/huge.bin {backup}) is {backup} but the staging space has {room} left for it"),
            "(swap partition /dev/sda5 is 154 MiB;",
            "back up less or grow the swap partition",
        ],
    );
}

#[test]
fn config_json_missing_invalid_or_for_another_device() {
    let host = StageHost::new();
    let mut request = host.request();
    request.config = host.input("absent.json");
    refused(
        &host,
        request,
        &["config.json", "absent.json cannot be read (", "pass it with --config"],
    );

    let mut request = host.request();
    request.config = host.write_input("broken.json", b"{\"deviceType\": ");
    refused(
        &host,
        request,
        &["broken.json is not valid JSON (", "download it again from the dashboard"],
    );

    let mut request = host.request();
    request.config = host.write_input("rpi.json", br#"{"deviceType":"raspberrypi3"}"#);
    refused(&host, request, &["rpi.json is for device type raspberrypi3, the profile is for intel-nuc; download config.json for a intel-nuc application"]);
}

#[test]
fn backup_path_missing() {
    let host = StageHost::new();
    let mut request = host.request();
    request.backups = vec!["/srv/nothing-here".into()];
    refused(
        &host,
        request,
        &["backup path /srv/nothing-here does not exist on this host; fix the --backup argument"],
    );
}

#[test]
fn already_staged() {
    let host = StageHost::new();
    host.host.write("/var/lib/swapover/state.json", "{}");
    refused(&host, host.request(), &["already staged", "stager abort"]);
}

#[test]
fn grub_cfg_without_next_entry() {
    let host = StageHost::new();
    host.host.copy_fixture("/boot/grub/grub.cfg", "grub/hand-written-no-next-entry.cfg");
    refused(
        &host,
        host.request(),
        &[
            "check grub-next-entry failed:",
            "does not load_env and read next_entry",
            "fix: regenerate it with update-grub",
        ],
    );
}

#[test]
fn uefi_boot_where_bios_is_expected() {
    let host = StageHost::new();
    std::fs::create_dir_all(host.host.path("/sys/firmware/efi")).unwrap();
    refused(
        &host,
        host.request(),
        &["profile intel-nuc expects BIOS boot but this device booted in UEFI mode; choose a profile for UEFI devices"],
    );
}

#[test]
fn gpt_disk_where_mbr_is_expected() {
    let host = StageHost::new();
    fixture_host_gpt(&host);
    refused(
        &host,
        host.request(),
        &["the disk /dev/sda has a GPT partition table but profile intel-nuc expects MBR; this device cannot be migrated with this profile"],
    );
}

/// Rewrites the host disk's table as GPT with the same partitions (sfdisk).
fn fixture_host_gpt(host: &StageHost) {
    stage_support::fixture_host::sfdisk(
        &host.disk(),
        &format!(
            "label: gpt\nstart={ROOT_START}, size={ROOT_SECTORS}\nstart={SWAP_START}, size={}\n",
            SWAP_SECTORS - 2048
        ),
    );
}

#[test]
fn no_swap_and_swap_file() {
    let host = StageHost::new();
    host.host.copy_fixture("/proc/swaps", "swaps/none");
    refused(
        &host,
        host.request(),
        &[
            "check swap-partition failed: no swap area is active",
            "fix: a swap partition on the root disk is needed",
        ],
    );
    host.host.copy_fixture("/proc/swaps", "swaps/ubuntu-22.04-file");
    refused(
        &host,
        host.request(),
        &["check swap-partition failed: only swap files are active (/swapfile), no swap partition", "fix: a swap partition on the root disk is needed"],
    );
}

#[test]
fn not_root() {
    let host = StageHost::new();
    let mut request = host.request();
    request.facts.euid = 1000;
    refused(
        &host,
        request,
        &["check root-user failed: effective user id 1000", "fix: run it again as root"],
    );
}

/// `/proc/meminfo` with `total_kib` of RAM, `available_kib` of it available and no swap in use.
fn meminfo(total_kib: u64, available_kib: u64) -> String {
    format!(
        "MemTotal:       {total_kib} kB\nMemFree:        {available_kib} kB\nMemAvailable:   {available_kib} kB\nSwapTotal:      1048572 kB\nSwapFree:       1048572 kB\n"
    )
}

/// MemTotal below the profile's `requirements.min_ram_mib` (intel-nuc: 1024 MiB) is refused
/// even with plenty available; 1024 MiB exactly stages. Less than 128 MiB available with
/// swap off stays refused whatever MemTotal is.
#[test]
fn memory_below_the_profile_minimum_or_without_swap() {
    let host = StageHost::new();
    host.host.write("/proc/meminfo", &meminfo(768 * 1024, 600 * 1024));
    refused(
        &host,
        host.request(),
        &[
            "check profile-memory failed: MemTotal is 768.0 MiB (786432 kB)",
            "profile intel-nuc requires at least 1.0 GiB of RAM (requirements.min_ram_mib = 1024)",
            "fix: migrate a device with at least 1.0 GiB of RAM, or use the profile made for this board",
        ],
    );
    host.host.write("/proc/meminfo", &meminfo(1024 * 1024 - 1, 900 * 1024));
    refused(
        &host,
        host.request(),
        &["check profile-memory failed: MemTotal is 1024.0 MiB (1048575 kB)"],
    );
    host.host.write("/proc/meminfo", &meminfo(1024 * 1024, 900 * 1024));
    let mut request = host.request();
    request.dry_run = true;
    assert!(run_stage(&request, &mut FixtureSystem::default()).is_ok());
    host.host.write("/proc/meminfo", &meminfo(4 * 1024 * 1024, 100 * 1024));
    refused(
        &host,
        host.request(),
        &["check memory-without-swap failed", "less than the 128.0 MiB needed"],
    );
}

/// `/proc/self/mountinfo` of the fixture host with its `/` line (after the mount and parent
/// ids) replaced by `root`, and `extra` mount lines appended.
fn mountinfo_with(root: Option<&str>, extra: &str) -> String {
    let plain = stage_support::fixture_host::read_fixture("mountinfo/ubuntu-14.04-plain");
    let from = format!("20 1 8:1 / / rw,relatime - ext4 /dev/disk/by-uuid/{ROOT_UUID} rw,errors=remount-ro,data=ordered");
    assert!(plain.contains(&from), "the plain mountinfo fixture changed");
    let text = match root {
        Some(line) => plain.replace(&from, &format!("20 1 {line}")),
        None => plain,
    };
    format!("{text}{extra}")
}

/// `/` on an LVM logical volume, a LUKS volume and an md RAID1, each over sda1 (sysfs
/// `slaves`), and on a btrfs subvolume of sda1: the stage names the storage (not only "not
/// a plain partition") and the fix.
#[test]
fn root_on_lvm_luks_md_or_btrfs_subvolume() {
    let virtual_cases = [
        (
            "dm-0",
            "253:0",
            "/dev/mapper/stem--vg-root",
            Some("LVM-Xy7kPq2Rs9TuVw3x"),
            "/dev/dm-0 (an LVM logical volume): / is on LVM,",
        ),
        (
            "dm-0",
            "253:0",
            "/dev/mapper/sda1_crypt",
            Some("CRYPT-LUKS1-0123456789abcdef-sda1_crypt"),
            "/dev/dm-0 (a LUKS/dm-crypt volume): / is on LUKS/dm-crypt,",
        ),
        (
            "md0",
            "9:0",
            "/dev/md0",
            None,
            "/dev/md0 (an md software RAID): / is on md software RAID,",
        ),
    ];
    let fix = "which the migration cannot replace in place; fix: this tool refuses such hosts; migrate them by reflashing instead";
    for (name, device, source, dm_uuid, what) in virtual_cases {
        let host = StageHost::new();
        host.host.add_sysfs_virtual(name, device, ROOT_SECTORS, dm_uuid, &["sda1"]);
        let root =
            format!("{device} / / rw,relatime - ext4 {source} rw,errors=remount-ro,data=ordered");
        host.host.write("/proc/self/mountinfo", &mountinfo_with(Some(&root), ""));
        refused(&host, host.request(), &["check root-storage failed:", what, fix]);
    }
    let host = StageHost::new();
    let root = "0:26 /@ / rw,relatime - btrfs /dev/sda1 rw,space_cache=v2,subvolid=256,subvol=/@";
    host.host.write("/proc/self/mountinfo", &mountinfo_with(Some(root), ""));
    refused(
        &host,
        host.request(),
        &[
            "check root-storage failed: btrfs on /dev/sda1 (0:26), btrfs subvolume /@: / is a btrfs subvolume",
            "fix: this tool does not migrate btrfs-subvolume roots; reinstall with / on a plain partition",
        ],
    );
}

/// `/boot` (here a read-only bind mount of the root file system's /boot) is read-only.
#[test]
fn read_only_boot() {
    let host = StageHost::new();
    let boot = format!("30 20 8:1 /boot /boot ro,relatime - ext4 /dev/disk/by-uuid/{ROOT_UUID} rw,errors=remount-ro,data=ordered\n");
    host.host.write("/proc/self/mountinfo", &mountinfo_with(None, &boot));
    refused(
        &host,
        host.request(),
        &[
            "check boot-writable failed: /boot on /boot (ext4",
            "read-only",
            "fix: remount it read-write (mount -o remount,rw /boot)",
        ],
    );
}

/// The only active swap is a real swap partition on a second disk (sdb1, made by mkswap);
/// sda5 is left inactive. Both disks must be byte-identical afterwards (`/dev/sdb` is a host
/// file, so `refused` hashes it with the rest of the tree).
#[test]
fn swap_on_another_disk() {
    let host = StageHost::new();
    let sdb_sectors: u64 = 65_536; // 32 MiB
    host.host.add_sysfs_disk(
        "sdb",
        "8:16",
        sdb_sectors,
        &[stage_support::fixture_host::Partition {
            name: "sdb1",
            number: 1,
            dev: "8:17",
            start: 2048,
            sectors: sdb_sectors - 2048,
        }],
        true,
    );
    let sdb = host.host.path("/dev/sdb");
    stage_support::fixture_host::sparse_file(&sdb, sdb_sectors * SECTOR);
    stage_support::fixture_host::sfdisk(
        &sdb,
        "label: dos\nlabel-id: 0x5678ef01\nstart=2048, type=82\n",
    );
    stage_support::fixture_host::mkswap_into(
        &sdb,
        2048 * SECTOR,
        (sdb_sectors - 2048) * SECTOR,
        "7c3e9a1b-2d4f-4e6a-8b0c-1d2e3f4a5b6c",
        None,
    );
    let size_kib = ((sdb_sectors - 2048) * SECTOR - 4096) / 1024;
    host.host.write(
        "/proc/swaps",
        &format!("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sdb1                               partition\t{size_kib}\t\t0\t\t-2\n"),
    );
    let sdb_before = stage_support::region_sha256(&sdb, 0, sdb_sectors * SECTOR);
    refused(
        &host,
        host.request(),
        &[
            "check same-disk failed: root /dev/sda1 (partition 1 of /dev/sda), swap /dev/sdb1 (partition 1 of /dev/sdb)",
            "fix: use a swap partition on the root disk",
        ],
    );
    assert_eq!(stage_support::region_sha256(&sdb, 0, sdb_sectors * SECTOR), sdb_before);
}
