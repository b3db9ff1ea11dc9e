//! `stager stage-1x` on the resinOS 1.x Intel NUC stand-in under UEFI firmware (OVMF), with
//! the firmware's own one-shot: the real static stager, run on the booted 1.x device,
//! refuses while resin-boot is read-only (changing nothing), then stages and arms a
//! `Boot####` option for the migration kernel's EFI stub as `BootNext`. The firmware boots
//! the migration environment once (the migrator starts from resin-boot, finds the staged image
//! this test damaged, gives up before any destructive write and reboots); the boot after that
//! is the 1.x system's again,
//! with BootNext consumed. `stager abort` then removes every trace: resin-boot's and
//! resin-updt's files are as they were before staging, and no boot option of ours is left.

use qemu_tests::console_lines::{value, with_marker};
use qemu_tests::e2e::packaged_stager;
use qemu_tests::payload::Payload;
use qemu_tests::qemu::{uefi_vars_copy, Drive, Firmware, Vm, VmConfig};
use qemu_tests::resin1x_image::{DataVariant, Resin1xImage};
use qemu_tests::resin_image::ResinImage;
use std::time::Duration;

/// Runs on every 1.x boot; `stage-1x` is not told the disk (it finds the one holding
/// resin-boot). The stager's state directory lives on the payload disk, so that
/// it survives the reboots as /var/lib/swapover does on a real 1.x root.
const RUN_SH: &str = r#"updt=$(findfs LABEL=resin-updt)
cd /run/payload
mount -o remount,rw /run/payload
mkdir -p /run/payload/state /var/lib
[ -e /var/lib/swapover ] || ln -s /run/payload/state /var/lib/swapover
mountpoint -q /sys/firmware/efi/efivars || mount -t efivarfs efivarfs /sys/firmware/efi/efivars
vars=/sys/firmware/efi/efivars
report() {
    echo "SWAPOVER-T $1 bootnext=$(ls $vars | grep -c '^BootNext-')"
    n=0
    for f in $vars/Boot[0-9A-F][0-9A-F][0-9A-F][0-9A-F]-*; do
        tr -d '\000' < "$f" | grep -q 'swapover migration' && n=$((n + 1))
    done
    echo "SWAPOVER-T $1 options=$n"
    echo "SWAPOVER-T $1 boot-files=$(cd /mnt/boot && find . -type f | sort | xargs sha256sum | sha256sum | cut -c1-16)"
    mkdir -p /tmp/updt && mount -o ro "$updt" /tmp/updt
    echo "SWAPOVER-T $1 updt-files=$(cd /tmp/updt && find . | sort | sha256sum | cut -c1-16)"
    echo "SWAPOVER-T $1 updt-staged=$(ls /tmp/updt/swapover 2>/dev/null | tr '\n' ' ')"
    umount /tmp/updt
    echo "SWAPOVER-T $1 boot-staged=$(ls /mnt/boot/swapover 2>/dev/null | tr '\n' ' ')"
    # The undo state; the run lock, run log and last-run record stay by design (issue 19).
    echo "SWAPOVER-T $1 state=$(ls /run/payload/state | grep -v -x -e lock -e last-run -e stager.log -e stager.log.1 | tr '\n' ' ')"
}
stage() {
    ./stager stage-1x $DRY --profile resinos1x-intel-nuc --image ./resinos.img.xz \
        --config /mnt/conf/config.json --data-root /mnt/data --kernel /mnt/root/boot/bzImage \
        --modules "/mnt/root/lib/modules/$(uname -r)" --no-reboot >/tmp/out 2>/tmp/err
    rc=$?
    sed "s/^/SWAPOVER-T $1-out /" /tmp/out
    grep -v '^stager: ' /tmp/err | sed "s/^/SWAPOVER-T $1-err /"
    echo "SWAPOVER-T $1-exit $rc"
}
status() {
    ./stager status >/tmp/out 2>/dev/null
    echo "SWAPOVER-T $1-status-exit $?"
    sed "s/^/SWAPOVER-T $1-status /" /tmp/out
}
if [ -e /run/payload/state/state.json ]; then
    echo "SWAPOVER-T back"
    report back
    status back
    # Abort with resin-boot not mounted: refused to call the boot files removed.
    umount /mnt/boot
    ./stager abort >/tmp/out 2>/tmp/err
    echo "SWAPOVER-T abort-unmounted-exit $?"
    grep -v '^stager: ' /tmp/err | sed 's/^/SWAPOVER-T abort-unmounted-err /'
    mount -o rw "$(findfs LABEL=resin-boot)" /mnt/boot
    ./stager abort >/tmp/out 2>/tmp/err
    rc=$?
    sed 's/^/SWAPOVER-T abort-out /' /tmp/out
    echo "SWAPOVER-T abort-exit $rc"
    report after
    echo "SWAPOVER-T finished"
else
    report before
    stage refused
    report refused
    mount -o remount,rw /mnt/boot
    DRY=--dry-run stage dryrun
    report dryrun
    umount /sys/firmware/efi/efivars
    stage noefivars
    mount -t efivarfs efivarfs /sys/firmware/efi/efivars
    report noefivars
    # A failure after each step is rolled back before the stager exits.
    for step in attach mount write-staging-dir unmount write-boot-dir arm-uefi-bootnext; do
        SWAPOVER_FAIL_AFTER=$step stage "fail-$step"
        report "fail-$step"
    done
    stage staged
    report staged
    stage again
    report again
    status staged
    # Damage the staged image: the migrator must give up before anything is destroyed,
    # which is what this test follows (resinos1x_migration_uefi.rs follows a migration).
    mkdir -p /tmp/updt && mount "$updt" /tmp/updt
    for img in /tmp/updt/swapover/*.xz; do
        printf 'SWAPOVER-DAMAGED' | dd of="$img" bs=1 seek=4096 conv=notrunc 2>/dev/null
        echo "SWAPOVER-T damaged $(basename $img)"
    done
    umount /tmp/updt
    sync
    echo "SWAPOVER-T rebooting"
    reboot -f
fi
"#;

/// The exit code a `SWAPOVER-T <what>-exit N` line reports.
fn exit_code<'a>(lines: &'a [String], what: &str) -> &'a str {
    let prefix = format!("SWAPOVER-T {what}-exit ");
    lines
        .iter()
        .find_map(|l| l.split_once(&prefix).map(|(_, v)| v.trim()))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{}", lines.join("\n")))
}

/// What the device's boot variables and files look like, as `SWAPOVER-T <when> <key>=` lines
/// report them: those staging does not write ...
const UNSTAGED: [&str; 5] = ["bootnext", "options", "boot-files", "updt-files", "state"];
/// ... and with the staged directories on resin-boot and resin-updt too.
const ALL: [&str; 7] =
    ["bootnext", "options", "boot-files", "updt-files", "boot-staged", "updt-staged", "state"];

/// Every `keys` value reported at `when` is the one reported at `was`; a difference names
/// the key and `why` it should not have changed.
fn assert_unchanged(lines: &[String], when: &str, was: &str, keys: &[&str], why: &str) {
    for key in keys {
        assert_eq!(
            value(lines, &format!("{when} {key}")),
            value(lines, &format!("{was} {key}")),
            "{key} {why}"
        );
    }
}

#[test]
fn stage_1x_arms_a_firmware_one_shot_that_boots_the_migration_once_and_abort_leaves_no_trace(
) -> anyhow::Result<()> {
    let name = "resinos1x_stage_uefi";
    let disk = Resin1xImage::ensure(DataVariant::Small)?.fresh_copy(name)?;
    let image = ResinImage::ensure()?;
    let payload = Payload::new(name, RUN_SH)?;
    payload.add_file("stager", &packaged_stager()?, 0o755)?;
    payload.add_file("resinos.img.xz", &image.xz, 0o644)?;
    let payload = payload.build()?;
    let config = VmConfig {
        allow_reboot: true,
        firmware: Firmware::Uefi { vars: uefi_vars_copy(name)? },
        ..VmConfig::new(name, vec![Drive::ide(&disk), Drive::ide(&payload)])
    };
    let mut vm = Vm::start(&config)?;
    vm.wait_for("SWAPOVER-1X-UP", Duration::from_secs(300))?;
    vm.wait_for("SWAPOVER-T rebooting", Duration::from_secs(600))?;
    // The firmware's one-shot: the migration kernel, started from resin-boot, runs the
    // migrator, which finds the staged image damaged, gives up before any destructive write
    // (BootOrder never made ours) and reboots.
    vm.wait_for("swapover migrator", Duration::from_secs(300))?;
    let refused =
        vm.wait_for("giving up before any destructive write", Duration::from_secs(300))?;
    // ... and the next boot is the 1.x system's again.
    let up = vm.wait_for("SWAPOVER-1X-UP", Duration::from_secs(300))?;
    vm.wait_for("SWAPOVER-T finished", Duration::from_secs(600))?;
    vm.wait_for("SWAPOVER-1X-DONE", Duration::from_secs(120))?;
    vm.wait_exit(Duration::from_secs(120))?;
    let text = vm.console_text();
    let lines: Vec<String> = text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();

    // Refused while resin-boot is mounted read-only: one line, nothing changed.
    let errors = with_marker(&lines, "refused-err");
    assert_eq!(exit_code(&lines, "refused"), "1", "{errors:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("error: refused: the boot partition is mounted read-only at /mnt/boot; remount it read-write")
            && errors[0].ends_with("; nothing was changed"),
        "{errors:?}"
    );
    assert_unchanged(&lines, "refused", "before", &UNSTAGED, "changed by a refusal");

    // --dry-run prints the plan and the steps and changes nothing.
    let dry = with_marker(&lines, "dryrun-out").join("\n");
    assert_eq!(exit_code(&lines, "dryrun"), "0", "{dry}");
    for expected in [
        "via a UEFI boot option armed for one boot with BootNext",
        "Staging on the spare root (partition 3",
        "contents kept",
        "set BootNext to it (one boot)",
        "Dry run: nothing was changed.",
    ] {
        assert!(dry.contains(expected), "no `{expected}` in:\n{dry}");
    }
    assert_unchanged(&lines, "dryrun", "before", &UNSTAGED, "changed by --dry-run");

    // Refused without efivarfs, before anything changes.
    let errors = with_marker(&lines, "noefivars-err");
    assert_eq!(exit_code(&lines, "noefivars"), "1", "{errors:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("mount -t efivarfs") && errors[0].ends_with("nothing was changed"),
        "{errors:?}"
    );
    assert_unchanged(&lines, "noefivars", "before", &UNSTAGED, "changed by a refusal");

    // A failure after any step: the stager says which and that everything was rolled back,
    // and the device is as it was (files, boot variables, no undo journal left).
    for step in
        ["attach", "mount", "write-staging-dir", "unmount", "write-boot-dir", "arm-uefi-bootnext"]
    {
        let what = format!("fail-{step}");
        let errors = with_marker(&lines, &format!("{what}-err"));
        assert_eq!(exit_code(&lines, &what), "2", "{errors:?}");
        assert!(
            errors.iter().any(|e| e.contains(&format!("staging failed at step {step}"))
                && e.contains("everything was rolled back")),
            "{errors:?}"
        );
        assert_unchanged(
            &lines,
            &what,
            "before",
            &ALL,
            &format!("not restored after a failure after {step}"),
        );
    }

    // Staged: files on resin-updt (inside its own file system) and resin-boot, one option of
    // ours armed as BootNext, the undo journal recorded.
    assert_eq!(exit_code(&lines, "staged"), "0", "{}", lines.join("\n"));
    let out = with_marker(&lines, "staged-out").join("\n");
    assert!(out.contains("Staged and armed for one boot"), "{out}");
    assert_eq!(value(&lines, "staged bootnext"), "1");
    assert_eq!(value(&lines, "staged options"), "1");
    let updt = value(&lines, "staged updt-staged");
    for file in ["plan.json", "config.json", "resinos.img.xz"] {
        assert!(updt.contains(file), "resin-updt/swapover lacks {file}: {updt}");
    }
    assert_eq!(value(&lines, "staged boot-staged"), "initramfs.img vmlinuz");
    assert!(value(&lines, "staged state").contains("state.json"));

    // Staging twice is refused, and the staged state is left as it is.
    let errors = with_marker(&lines, "again-err");
    assert_eq!(exit_code(&lines, "again"), "1", "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("already staged")), "{errors:?}");
    assert_unchanged(&lines, "again", "staged", &ALL, "changed by a refused second stage");

    // `status` while armed, and after the firmware used its one-shot.
    let armed = with_marker(&lines, "staged-status").join("\n");
    assert_eq!(exit_code(&lines, "staged-status"), "0", "{armed}");
    assert!(
        armed.contains("Armed: the next boot starts the migration environment (one boot only)"),
        "{armed}"
    );
    let back = with_marker(&lines, "back-status").join("\n");
    assert_eq!(exit_code(&lines, "back-status"), "0", "{back}");
    assert!(back.contains("Not armed any more") && back.contains("BootNext"), "{back}");

    // The one-shot was the firmware's: the migration environment ran once, then 1.x again.
    assert!(refused.contains("not what the plan says"), "{refused}");
    assert!(
        !text.contains("first in BootOrder"),
        "the migrator made its option permanent although it gave up before destruction"
    );
    assert!(up.contains("efi=yes"), "{up}");
    assert_eq!(
        text.matches("SWAPOVER-1X-UP").count(),
        2,
        "1.x booted twice, around one migration boot"
    );
    assert_eq!(value(&lines, "back bootnext"), "0", "the firmware did not consume BootNext");
    assert_eq!(value(&lines, "back options"), "1", "our option stays until abort");

    // An abort while resin-boot is not mounted does not claim the boot files removed; it
    // keeps the undo journal, and the abort after mounting it finishes the job.
    let errors = with_marker(&lines, "abort-unmounted-err");
    assert_eq!(exit_code(&lines, "abort-unmounted"), "2", "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("/mnt/boot is not a mounted file system")
            && e.contains("run `stager abort` again")),
        "{errors:?}"
    );

    // Abort: everything as it was before staging.
    assert_eq!(exit_code(&lines, "abort"), "0", "{}", with_marker(&lines, "abort-out").join("\n"));
    assert_unchanged(&lines, "after", "before", &ALL, "differs after abort");
    Ok(())
}
