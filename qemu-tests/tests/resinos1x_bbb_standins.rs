//! The two BeagleBone Black stand-ins a full BBB migration test needs, each booted by the real
//! U-Boot (v2023.01 with a RAM boot counter) through the harness `boot.scr`
//! (`qemu_tests::bbb_uboot`, `bbb1x_standin`, `bbb2x_standin`):
//!
//! a. The 1.x stand-in: power-on → U-Boot (counter 1) plays the v2015.07 `mmcboot` (u-boot.img
//!    is the 1.x one) → the 1.x root comes up on resin-root with the 1.x partitions mounted and
//!    the network up. Inside it: `busybox devmem` reads through `/dev/mem` the counter word
//!    U-Boot wrote (`0xB0010001`: /dev/mem reading works under this kernel, contract R5 for the
//!    harness); an HTTP fetch from the host answers (user network); and the real ARMv7 stager
//!    (`/usr/bin/stager`, the packaged binary) plans the migration with the QEMU test profile
//!    (`--profile-file`) against its own disk (found through the real sysfs) and the BBB 2.x
//!    stand-in image.
//! b. The 2.x stand-in as a migration leaves it (config.json, a NetworkManager keyfile, the
//!    application's data and the migration log placed by the test): U-Boot plays the 2.x
//!    U-Boot (u-boot.img is the 2.x one, `resin_root_part` from resinOS_uEnv.txt) and boots
//!    resin-rootA, whose verdict passes.
//! c. The same without config.json: the verdict fails (the check can fail).

use anyhow::{Context, Result};
use qemu_tests::bbb1x_standin::{self, Bbb1xImage, STAGER_PATH};
use qemu_tests::bbb2x_standin::{self, Arm2xImage};
use qemu_tests::bbb_uboot::{
    build_harness_disk, power_on, power_on_with, stager_harness_disk, BbbInputs, Nic,
    MARK_BOOTCOUNT,
};
use qemu_tests::console_lines::{after, complete_lines, value};
use qemu_tests::disk::{self, PartitionTable};
use qemu_tests::fixture::Entry;
use qemu_tests::http_standin::answer_once;
use qemu_tests::paths;
use qemu_tests::qemu::Vm;
use qemu_tests::resin1x_image::APP_ID;
use qemu_tests::verdict::{Verdict, SUMMARY_MARKER};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::{Duration, Instant};
use uboot_env::BootCount;

const STAGE: Duration = Duration::from_secs(120);
/// What the host's HTTP stand-in answers: seen in the guest, the network works.
const HTTP_TOKEN: &str = "swapover-bbb-net-ok";

/// The test's commands inside the 1.x stand-in (its init runs them from the harness disk).
const RUN_SH: &str = r#"cd /run/harness
echo "SWAPOVER-T counter=$(devmem 0x5c000000 32)"
# busybox nc, not wget: Debian's busybox-static 1.35 wget segfaults (also on the host).
response=$(printf 'GET /standin HTTP/1.0\r\n\r\n' | nc 10.0.2.2 @PORT@ 2>/tmp/nc.err)
echo "SWAPOVER-T http=$(printf '%s\n' "$response" | tail -n1)"
sed 's/^/SWAPOVER-T nc-err /' /tmp/nc.err
echo "SWAPOVER-T stager=$(command -v stager)"
stager --profile-file ./@PROFILE@.toml plan-image --profile @PROFILE@ \
    --image ./@IMAGE@ --config /mnt/conf/config.json --data-root /mnt/data \
    --kernel /boot/zImage --initramfs /boot/harness-initramfs.img >/tmp/plan.out 2>/tmp/plan.err
rc=$?
sed 's/^/SWAPOVER-PLAN /' /tmp/plan.out
sed 's/^/SWAPOVER-PLAN-ERR /' /tmp/plan.err
echo "SWAPOVER-PLAN-EXIT $rc"
"#;

/// [`qemu_tests::timing::timed`] with this test's tag.
fn timed<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    qemu_tests::timing::timed("bbb-standins", what, f)
}

/// Boots the 1.x stand-in with the run.sh above; returns its console lines and U-Boot's count.
fn boot_1x(inputs: &BbbInputs, dir: &Path, image_2x: &Arm2xImage) -> Result<Vec<String>> {
    let image_1x = timed("1.x stand-in built (or cached)", || Bbb1xImage::ensure(inputs))?;
    let disk = image_1x.fresh_copy(dir)?;
    let profile = bbb1x_standin::write_test_profile(dir)?;
    let script = RUN_SH.replace("@PORT@", &answer_once(HTTP_TOKEN)?.to_string());
    let harness = stager_harness_disk(dir, inputs, &script, &profile, &image_2x.xz)?;
    let mut vm = power_on_with("bbb-standins-1x", inputs, &disk, &harness, Nic::User)?;
    vm.wait_for("SWAPOVER-1X-DONE", Duration::from_secs(300))?;
    vm.wait_exit(STAGE)?;
    Ok(complete_lines(&vm.console_text()))
}

fn check_1x(lines: &[String]) -> Result<()> {
    let all = lines.join("\n");
    assert_eq!(after(lines, MARK_BOOTCOUNT), "1", "U-Boot's counter after power-on");
    assert!(all.contains("harness: u-boot.img=1x bootpart=1:2"), "U-Boot did not play 1.x");
    let up = after(lines, "SWAPOVER-1X-UP");
    assert!(up.contains("machine=armv7l"), "{up}");
    assert!(up.contains("harness.os=1x"), "1.x booted by mmcboot's loadimage: {up}");
    for (label, number) in [
        ("resin-boot", 1),
        ("resin-root", 2),
        ("resin-updt", 3),
        ("resin-conf", 5),
        ("resin-data", 6),
    ] {
        let seen = after(lines, &format!("SWAPOVER-1X-LABEL {label}="));
        assert!(
            seen.starts_with("/dev/vd") && seen.ends_with(&number.to_string()),
            "{label}: {seen}"
        );
    }
    let root = after(lines, "SWAPOVER-1X-LABEL resin-root=");
    assert!(up.contains(&format!("root={root} ")), "the 1.x root is not resin-root: {up}");
    assert_eq!(after(lines, "SWAPOVER-1X-MOUNTS"), "3", "/mnt/boot, /mnt/conf, /mnt/data");
    assert_eq!(after(lines, "SWAPOVER-1X-NET"), "10.0.2.15/24");
    assert_eq!(value(lines, "http"), HTTP_TOKEN, "no answer from the host");

    // The counter word through /dev/mem: U-Boot's magic and count.
    let word = value(lines, "counter");
    let word = u32::from_str_radix(word.trim_start_matches("0x").trim_start_matches("0X"), 16)
        .with_context(|| format!("devmem printed {word:?}"))?;
    assert_eq!(word >> 16, 0xB001, "no bootcount magic in {word:#010x}");
    assert_eq!(BootCount::from_counter_word(word), BootCount(1), "{word:#010x}");

    // The real ARMv7 stager planned the migration of its own disk onto the 2.x stand-in.
    assert_eq!(value(lines, "stager"), STAGER_PATH);
    let exit = after(lines, "SWAPOVER-PLAN-EXIT");
    let plan: Vec<&str> =
        lines.iter().filter_map(|l| l.split_once("SWAPOVER-PLAN ").map(|(_, p)| p)).collect();
    let plan = plan.join("\n");
    assert_eq!(exit, "0", "plan-image failed:\n{all}");
    let updt = bbb1x_standin::PARTITIONS[2];
    let staging = format!(
        "Staging on the spare root (partition 3, sectors {}..{})",
        updt.start,
        updt.start + updt.sectors
    );
    assert!(plan.contains(&staging), "{plan}");
    assert!(plan.contains("resin-rootB written last"), "{plan}");
    assert!(plan.contains(&format!("Disk:     MBR {}", bbb1x_standin::DISK_ID)), "{plan}");
    assert!(plan.contains(&format!("/mnt/data/resin-data/{APP_ID}/network.config")), "{plan}");
    assert!(plan.contains("nothing was changed"), "{plan}");
    Ok(())
}

/// The WiFi of the NetworkManager keyfile the test places as the migration would.
const SSID: &str = "Plant WiFi";
const PSK: &str = "secret one";
const APP_DB: &[u8] = b"application database of the BBB stand-in\n";

/// Writes onto a fresh 2.x stand-in what a migration leaves: config.json (unless
/// `with_config` is false), a NetworkManager keyfile, the application's data, the migration log.
fn place_migrated(image: &Path, with_config: bool) -> Result<()> {
    let table = PartitionTable::read(image)?;
    let boot = table.number(1)?;
    if with_config {
        let config = bbb1x_standin::config_json();
        disk::write_fat_file(image, boot, "/config.json", config.as_bytes())?;
    }
    disk::mkdir_fat(image, boot, "/system-connections")?;
    let keyfile = format!(
        "[connection]\nid=resin-wifi-01\ntype=wifi\n\n[wifi]\nssid={SSID}\n\n[wifi-security]\nkey-mgmt=wpa-psk\npsk={PSK}\n"
    );
    disk::write_fat_file(image, boot, "/system-connections/resin-wifi-01", keyfile.as_bytes())?;
    disk::mkdir_fat(image, boot, "/swapover")?;
    disk::write_fat_file(image, boot, "/swapover/migration.log", b"stand-in migration log\n")?;
    let data = table.number(6)?;
    disk::mkdir_ext4(image, data, "/resin-data")?;
    disk::mkdir_ext4(image, data, &format!("/resin-data/{APP_ID}"))?;
    disk::write_ext4_file(image, data, &format!("/resin-data/{APP_ID}/app.db"), APP_DB)?;
    Ok(())
}

/// Boots a 2.x stand-in disk to its verdict; returns the parsed verdict and the console.
fn boot_2x(inputs: &BbbInputs, dir: &Path, name: &str, image: &Path) -> Result<(Verdict, String)> {
    let harness = build_harness_disk(dir, inputs, &[])?;
    let mut vm: Vm = power_on(name, inputs, image, &harness)?;
    vm.wait_for("harness: u-boot.img=2x bootpart=1:2", STAGE)?;
    vm.wait_for(SUMMARY_MARKER, STAGE)?;
    vm.wait_exit(STAGE)?;
    let text = vm.console_text();
    Ok((Verdict::parse(&text)?, text))
}

#[test]
fn bbb_standins_1x_runs_the_armv7_stager_and_2x_prints_its_verdict_under_real_uboot() -> Result<()>
{
    let started = Instant::now();
    let inputs = BbbInputs::locate()?;
    let runs = paths::artifacts_dir().join("runs/bbb-standins");
    let image_2x = timed("2.x stand-in built (or cached)", || bbb2x_standin::ensure(&inputs))?;

    let lines = timed("a: 1.x up, devmem, network, stager plan-image", || {
        boot_1x(&inputs, &runs.join("1x"), &image_2x)
    })?;
    check_1x(&lines)?;

    let migrated = image_2x.fresh_raw_copy(&runs.join("2x"), "bbb-2x-migrated")?;
    place_migrated(&migrated, true)?;
    let (verdict, text) = timed("b: 2.x as migrated → verdict", || {
        boot_2x(&inputs, &runs.join("2x"), "bbb-standins-2x", &migrated)
    })?;
    assert!(text.contains("harness.os=2x"), "2.x not booted by the 2.x U-Boot's rule");
    assert!(verdict.summary.ok, "the 2.x verdict failed: {:?}\n{text}", verdict.summary);
    assert!(verdict.summary.migration_log && verdict.summary.preloaded_supervisor);
    assert_eq!(verdict.connections.len(), 1);
    assert_eq!((verdict.connections[0].1.as_str(), verdict.connections[0].2.as_str()), (SSID, PSK));
    let app_db = format!("resin-data/{APP_ID}/app.db");
    assert_eq!(
        verdict.data.get(&app_db),
        Some(&Entry::File { sha256: format!("{:x}", Sha256::digest(APP_DB)), size: 0 }),
        "{:?}",
        verdict.data.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        verdict.config_sha256.as_deref(),
        Some(format!("{:x}", Sha256::digest(bbb1x_standin::config_json())).as_str())
    );

    let no_config = image_2x.fresh_raw_copy(&runs.join("2x-no-config"), "bbb-2x-no-config")?;
    place_migrated(&no_config, false)?;
    let (verdict, text) = timed("c: 2.x without config.json → verdict fails", || {
        boot_2x(&inputs, &runs.join("2x-no-config"), "bbb-standins-2x-no-config", &no_config)
    })?;
    assert!(!verdict.summary.config_json, "{:?}", verdict.summary);
    assert!(!verdict.summary.ok, "the verdict passed without config.json:\n{text}");
    eprintln!("[bbb-standins] whole test: {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
