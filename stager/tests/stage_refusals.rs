//! Every refusal of `stage`: the one-line error names the problem and the fix, and the host
//! is byte-identical afterwards (the whole disk image — partition table, swap signature and
//! UUID — and every file: fstab, grub.cfg, grubenv, custom.cfg).

#[path = "stage_support/mod.rs"]
mod stage_support;

use stage_support::*;
use stager::stage::system::FixtureSystem;
use stager::stage::{run_stage, StageRequest};

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
    assert_eq!((host.files(), host.disk_whole(), std::fs::read(&state).ok()), before, "host changed by: {text}");
}

#[test]
fn image_of_another_device_type() {
    let host = StageHost::new();
    let image = host.make_image("rpi.img", &ImageSpec { slug: Some("raspberrypi3"), ..ImageSpec::default() });
    let mut request = host.request();
    request.image = image.display().to_string();
    request.sha256 = Some(sha256_hex(&std::fs::read(&image).unwrap()));
    refused(&host, request, &["image is for device type raspberrypi3", "download the intel-nuc image"]);
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
    refused(&host, request, &["does not fit the old root's space", "use a smaller image or a larger old root"]);
}

#[test]
fn gpt_image_where_mbr_is_expected() {
    let host = StageHost::new();
    let image = host.make_image("gpt.img", &ImageSpec { gpt: true, ..ImageSpec::default() });
    let mut request = host.request();
    request.image = image.display().to_string();
    request.sha256 = Some(sha256_hex(&std::fs::read(&image).unwrap()));
    refused(&host, request, &["GPT partition table but the profile expects MBR"]);
}

#[test]
fn corrupt_xz_and_wrong_sha256() {
    let host = StageHost::new();
    let mut bytes = std::fs::read(host.image()).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let corrupt = host.write_input("corrupt.img.xz", &bytes);
    let mut request = host.request();
    request.image = corrupt.display().to_string();
    request.sha256 = Some(sha256_hex(&bytes));
    refused(&host, request, &["cannot read the image", "corrupt"]);

    let mut request = host.request();
    request.sha256 = Some("0".repeat(64));
    refused(&host, request, &["sha256", "nothing on the host was changed"]);
}

#[test]
fn swap_too_small_for_the_backup() {
    let host = StageHost::new();
    let big = host.host.path("/srv/huge.bin");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    std::fs::File::create(&big).unwrap().set_len(200 * 1024 * 1024).unwrap();
    let mut request = host.request();
    request.backups = vec!["/srv/huge.bin".into()];
    refused(&host, request, &["swap partition /dev/sda5 is 154 MiB but staging needs", "back up less or grow the swap partition"]);
}

#[test]
fn config_json_missing_invalid_or_for_another_device() {
    let host = StageHost::new();
    let mut request = host.request();
    request.config = host.input("absent.json");
    refused(&host, request, &["config.json", "cannot be read", "--config"]);

    let mut request = host.request();
    request.config = host.write_input("broken.json", b"{\"deviceType\": ");
    refused(&host, request, &["is not valid JSON"]);

    let mut request = host.request();
    request.config = host.write_input("rpi.json", br#"{"deviceType":"raspberrypi3"}"#);
    refused(&host, request, &["is for device type raspberrypi3, the profile is for intel-nuc"]);
}

#[test]
fn backup_path_missing() {
    let host = StageHost::new();
    let mut request = host.request();
    request.backups = vec!["/srv/nothing-here".into()];
    refused(&host, request, &["backup path /srv/nothing-here does not exist", "--backup"]);
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
    refused(&host, host.request(), &["next_entry"]);
}

#[test]
fn uefi_boot_where_bios_is_expected() {
    let host = StageHost::new();
    std::fs::create_dir_all(host.host.path("/sys/firmware/efi")).unwrap();
    refused(&host, host.request(), &["expects BIOS boot but this device booted in UEFI mode"]);
}

#[test]
fn gpt_disk_where_mbr_is_expected() {
    let host = StageHost::new();
    fixture_host_gpt(&host);
    refused(&host, host.request(), &["GPT partition table but profile intel-nuc expects MBR"]);
}

/// Rewrites the host disk's table as GPT with the same partitions (sfdisk).
fn fixture_host_gpt(host: &StageHost) {
    stage_support::fixture_host::sfdisk(
        &host.disk(),
        &format!("label: gpt\nstart={ROOT_START}, size={ROOT_SECTORS}\nstart={SWAP_START}, size={}\n", SWAP_SECTORS - 2048),
    );
}

#[test]
fn no_swap_and_swap_file() {
    let host = StageHost::new();
    host.host.copy_fixture("/proc/swaps", "swaps/none");
    refused(&host, host.request(), &["check swap-partition failed", "no swap area is active"]);
    host.host.copy_fixture("/proc/swaps", "swaps/ubuntu-22.04-file");
    refused(&host, host.request(), &["check swap-partition failed", "swap files"]);
}

#[test]
fn not_root() {
    let host = StageHost::new();
    let mut request = host.request();
    request.facts.euid = 1000;
    refused(&host, request, &["check root-user failed"]);
}
