//! The resinOS 1.x stand-in (intel-nuc) boots under UEFI firmware (OVMF) through GRUB's
//! `EFI/BOOT/BOOTX64.EFI` and `EFI/BOOT/grub.cfg` on resin-boot, with the 1.x labels; the real
//! static stager, run on that booted device against its own disk, recognises it as resinOS
//! 1.x and plans the 1.x → 2.x migration (staging on resin-updt, the applications' data
//! measured without Docker's storage, the 2.x layout). A device whose resin-data is over the
//! 170 MB limit is refused with one line.

use qemu_tests::e2e::packaged_stager;
use qemu_tests::payload::Payload;
use qemu_tests::qemu::{uefi_vars_copy, Drive, Firmware, Vm, VmConfig};
use qemu_tests::resin1x_image::{DataVariant, Resin1xImage, APP_ID, DOCKER_BYTES, PARTITIONS};
use qemu_tests::resin_image::ResinImage;
use std::time::Duration;

const PLAN: &str = "SWAPOVER-PLAN ";

/// The payload: find the 1.x disk by its resin-boot label, run `stager plan-image` on it,
/// print every output line with a marker, then the exit code.
const RUN_SH: &str = r#"boot=$(findfs LABEL=resin-boot)
disk=$(echo "$boot" | sed 's/[0-9]*$//')
echo "SWAPOVER-1X-DISK $disk"
cd /run/payload
./stager plan-image --profile resinos1x-intel-nuc --disk "$disk" --image ./resinos.img.xz \
    --config /mnt/conf/config.json --data-root /mnt/data \
    --kernel /mnt/root/boot/bzImage --initramfs /mnt/root/boot/initramfs >/tmp/plan.out 2>/tmp/plan.err
rc=$?
sed 's/^/SWAPOVER-PLAN /' /tmp/plan.out
sed 's/^/SWAPOVER-PLAN-ERR /' /tmp/plan.err
echo "SWAPOVER-PLAN-EXIT $rc"
"#;

/// Boots `variant` under OVMF with the payload, returns the console lines the test reads.
fn boot_and_plan(name: &str, variant: DataVariant) -> anyhow::Result<Vec<String>> {
    let disk = Resin1xImage::ensure(variant)?.fresh_copy(name)?;
    let image = ResinImage::ensure()?;
    let payload = Payload::new(name, RUN_SH)?;
    payload.add_file("stager", &packaged_stager()?, 0o755)?;
    payload.add_file("resinos.img.xz", &image.xz, 0o644)?;
    let payload = payload.build()?;
    let config = VmConfig {
        allow_reboot: false,
        firmware: Firmware::Uefi { vars: uefi_vars_copy(name)? },
        ..VmConfig::new(name, vec![Drive::ide(&disk), Drive::ide(&payload)])
    };
    let mut vm = Vm::start(&config)?;
    let grub = vm.wait_for("SWAPOVER-1X-GRUB", Duration::from_secs(300))?;
    assert!(grub.contains("under UEFI"), "{grub}");
    vm.wait_for("SWAPOVER-1X-DONE", Duration::from_secs(600))?;
    vm.wait_exit(Duration::from_secs(120))?;
    // Complete lines only: the last one may be cut by the power-off.
    let text = vm.console_text();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    Ok(complete.lines().map(|l| l.trim_end_matches('\r').to_string()).collect())
}

fn line<'a>(lines: &'a [String], marker: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.contains(marker))
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no `{marker}` line in:\n{}", lines.join("\n")))
}

fn plan_text(lines: &[String]) -> String {
    lines
        .iter()
        .filter_map(|l| l.split_once(PLAN).map(|(_, rest)| rest))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn resinos_1x_nuc_boots_under_uefi_and_the_stager_plans_its_migration_to_2x() -> anyhow::Result<()>
{
    let lines = boot_and_plan("resinos1x_uefi", DataVariant::Small)?;
    let up = line(&lines, "SWAPOVER-1X-UP");
    assert!(up.contains("efi=yes"), "the kernel was not started by UEFI firmware: {up}");
    // Every 1.x label on its partition number (the payload disk may come first or second).
    for (label, number) in [
        ("resin-boot", 1),
        ("resin-root", 2),
        ("resin-updt", 3),
        ("resin-conf", 5),
        ("resin-data", 6),
    ] {
        let seen = line(&lines, &format!("SWAPOVER-1X-LABEL {label}="));
        assert!(
            seen.ends_with(&format!("a{number}")) || seen.ends_with(&format!("b{number}")),
            "{seen}"
        );
    }
    assert!(
        line(&lines, "SWAPOVER-1X-MOUNTS").ends_with(" 4"),
        "resin-boot, resin-root, resin-conf, resin-data mounted"
    );
    let exit = line(&lines, "SWAPOVER-PLAN-EXIT");
    let plan = plan_text(&lines);
    assert!(exit.ends_with(" 0"), "plan-image failed: {exit}\n{}", lines.join("\n"));
    // Staging on resin-updt: partition 3, the sectors the stand-in gives it.
    let updt = PARTITIONS[2];
    let staging = format!(
        "Staging on the spare root (partition 3, sectors {}..{})",
        updt.start,
        updt.start + updt.sectors
    );
    assert!(plan.contains(&staging), "{plan}");
    assert!(plan.contains("resin-rootB written last"), "{plan}");
    for label in ["resin-boot", "resin-rootA", "resin-rootB", "resin-state", "resin-data"] {
        assert!(plan.contains(label), "target layout lacks {label}:\n{plan}");
    }
    assert!(plan.contains("Disk:     MBR 0x1c0ffee1"), "{plan}");
    assert!(
        plan.contains("ext3 UUID 1e51a000-0000-4000-8000-000000000001 (backed up read-only"),
        "old root is not resin-root:\n{plan}"
    );
    assert!(plan.contains("/mnt/data/resin-data -> ."), "{plan}");
    assert!(
        plan.contains(&format!("/mnt/data/resin-data/{APP_ID}/network.config")),
        "WiFi Connect's file:\n{plan}"
    );
    assert!(plan.contains("config.json files.\"network/network.config\" (resinOS 1.x)"), "{plan}");
    assert!(plan.contains("nothing was changed"), "{plan}");
    // The backup is the app's data (300 kB and WiFi Connect's file), not Docker's storage.
    let backup = line(&lines, "Backup:   estimated ");
    let estimate =
        backup.split("estimated ").nth(1).and_then(|s| s.split(',').next()).unwrap_or_default();
    assert!(
        estimate.ends_with(" KiB"),
        "backup estimated at {estimate}: Docker's {DOCKER_BYTES} bytes counted? {backup}"
    );
    Ok(())
}

#[test]
fn resinos_1x_nuc_with_data_over_the_170_mb_limit_is_refused_in_one_line() -> anyhow::Result<()> {
    let lines = boot_and_plan("resinos1x_uefi_over_limit", DataVariant::OverLimit)?;
    assert!(line(&lines, "SWAPOVER-1X-UP").contains("efi=yes"));
    let exit = line(&lines, "SWAPOVER-PLAN-EXIT");
    assert!(exit.ends_with(" 1"), "{exit}\n{}", lines.join("\n"));
    let errors: Vec<&String> = lines.iter().filter(|l| l.contains("SWAPOVER-PLAN-ERR ")).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let error = errors[0];
    assert!(
        error.contains("error: refused:") && error.contains("(170000000 bytes) limit"),
        "{error}"
    );
    assert!(error.contains("nothing was changed"), "{error}");
    assert!(plan_text(&lines).is_empty(), "a refused plan printed a plan");
    Ok(())
}
