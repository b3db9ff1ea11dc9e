//! GRUB's one-shot boot on the legacy host, armed with swapover's `grub` crate: the armed
//! entry runs exactly once, the next boot is the default again, and GRUB itself cleared
//! `next_entry` in the grubenv.
//!
//! The same two boots show what a killed `stager stage` leaves (issue 19): in the one-shot
//! boot the real static stager is stopped twice in the middle of `write-staging` by the
//! signal test hook as it copies the kernel to staging — SIGTERM (it rolls back by itself: the
//! host as before, no abort) and SIGKILL (nothing runs, as after a power cut: swap is off and
//! an ext4 file system, the fstab swap line commented out) — and the device is rebooted. The next boot is the old OS (the
//! default entry, not the migration environment), `stager status` there names the step the
//! killed run stopped at and says to run `stager abort`, and after `abort` the host is byte
//! for byte as before: fstab, grub.cfg, grubenv, custom.cfg, the swap partition's header (its
//! UUID) and the partition table, with swap active again.

use qemu_tests::disk::{self, PartitionTable};
use qemu_tests::e2e::{self, PROFILE};
use qemu_tests::fixture::BACKUP_PATHS;
use qemu_tests::host_image::{HostImage, ROOT_UUID, SWAP_UUID};
use qemu_tests::payload::Payload;
use qemu_tests::qemu::{Drive, Vm, VmConfig};
use qemu_tests::resin_image::ResinImage;
use std::time::Duration;

const ENTRY_ID: &str = "swapover-oneshot-test";

/// What staging changes and abort must put back, as the guest sees it: one line each, device
/// names as `sdX` (the two disks may come up in either order).
fn fingerprint_sh() -> String {
    format!(
        "fp() {{\n\
           dev=$(findfs UUID={SWAP_UUID} 2>/dev/null)\n\
           echo \"swap-by-uuid partition=${{dev#/dev/sd?}}\"\n\
           echo \"swap-header $(dd if=${{dev:-/dev/null}} bs=4096 count=1 2>/dev/null | sha256sum | cut -c1-16)\"\n\
           echo \"mbr $(dd if=${{dev%[0-9]}} bs=512 count=1 2>/dev/null | sha256sum | cut -c1-16)\"\n\
           awk 'NR>1 {{sub(\"/dev/sd[a-z]\", \"/dev/sdX\", $1); print \"swap-active\", $1, $2, $3}}' /proc/swaps\n\
           for f in /etc/fstab /boot/grub/grub.cfg /boot/grub/grubenv /boot/grub/custom.cfg; do\n\
             echo \"$f $(sha256sum < $f | cut -c1-16)\"\n\
           done\n\
           echo \"boot-grub $(ls /boot/grub | tr '\\n' ' ')\"\n\
         }}\n\
         # Prints the fingerprint's lines and its sum, tagged FP-<tag>.\n\
         show_fp() {{ fp > /tmp/fp.$1; sed \"s/^/FP-$1 /\" /tmp/fp.$1; echo \"FP-$1-SUM $(sha256sum < /tmp/fp.$1 | cut -c1-16)\"; }}\n"
    )
}

/// The fingerprint sum the guest printed for `tag`, and its lines (for the failure message).
fn fingerprint(console: &str, tag: &str) -> (String, Vec<String>) {
    let sum_marker = format!("FP-{tag}-SUM ");
    let sum = console
        .lines()
        .find_map(|l| l.split_once(&sum_marker).map(|(_, s)| s.trim().to_string()))
        .unwrap_or_else(|| panic!("no {sum_marker} on the console"));
    let line_marker = format!("FP-{tag} ");
    let lines = console
        .lines()
        .filter_map(|l| l.split_once(&line_marker).map(|(_, s)| s.trim().to_string()))
        .collect();
    (sum, lines)
}

fn assert_same_fingerprint(console: &str, before: &str, after: &str, what: &str) {
    let (sum_before, lines_before) = fingerprint(console, before);
    let (sum_after, lines_after) = fingerprint(console, after);
    assert_eq!(
        sum_before,
        sum_after,
        "{what}: the host is not as it was\nbefore:\n{}\nafter:\n{}",
        lines_before.join("\n"),
        lines_after.join("\n")
    );
}

/// The console lines from the first one containing `from` up to the one containing `to`.
fn section(console: &str, from: &str, to: &str) -> String {
    console
        .lines()
        .skip_while(|l| !l.contains(from))
        .take_while(|l| !l.contains(to))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn armed_entry_boots_exactly_once_then_default_returns() -> anyhow::Result<()> {
    let host = HostImage::ensure()?;
    let image = ResinImage::ensure()?;
    let disk_path = host.fresh_copy("grub_oneshot")?;
    let table = PartitionTable::read(&disk_path)?;
    let root = table.number(1)?;
    let kver = &host.kernel.version;

    let custom = format!(
        "menuentry 'swapover one-shot test' --id {ENTRY_ID} {{\n\
         \tinsmod part_msdos\n\tinsmod ext2\n\
         \tsearch --no-floppy --fs-uuid --set=root {ROOT_UUID}\n\
         \techo 'SWAPOVER-ONESHOT-ENTRY'\n\
         \tlinux /boot/vmlinuz-{kver} root=UUID={ROOT_UUID} ro console=ttyS0,115200 swapover.oneshot=1\n\
         \tinitrd /boot/initrd.img-{kver}\n}}\n"
    );
    disk::write_ext4_file(&disk_path, root, "/boot/grub/custom.cfg", custom.as_bytes())?;

    // Arm with our library on the host's real grubenv, then put it back on the disk.
    let local = disk_path.with_extension("grubenv");
    std::fs::write(&local, disk::read_ext4_file(&disk_path, root, "/boot/grub/grubenv")?)?;
    grub::oneshot::OneShot::arm(&local, ENTRY_ID)?;
    disk::write_ext4_file(&disk_path, root, "/boot/grub/grubenv", &std::fs::read(&local)?)?;

    let backups: String = BACKUP_PATHS.iter().map(|p| format!(" --backup {p}")).collect();
    let stage = format!(
        "./stager stage --profile {PROFILE} --image ./resinos.img.xz --sha256 {} --config ./config.json{backups} --no-reboot",
        image.xz_sha256
    );
    let run_sh = format!(
        "{fp}\
         if grep -q swapover.oneshot /proc/cmdline; then\n\
           echo ONESHOT-RUN\n\
           show_fp BEFORE\n\
           # SIGTERM as the first file is copied to staging: the stager rolls back by itself.\n\
           SWAPOVER_TEST_RAISE_AT=copy:vmlinuz=TERM {stage} > /tmp/term.txt 2>&1; rc=$?\n\
           cat /tmp/term.txt\n\
           echo \"SWAPOVER-SIGTERM-STAGE exit=$rc rolled-back=$(grep -c 'interrupted by SIGTERM at step write-staging, before the last step began: everything was rolled back' /tmp/term.txt)\"\n\
           show_fp AFTER-TERM\n\
           # SIGKILL at the same point: nothing rolls back, as after a power cut.\n\
           SWAPOVER_TEST_RAISE_AT=copy:vmlinuz=KILL {stage}; rc=$?\n\
           echo \"SWAPOVER-SIGKILL-STAGE exit=$rc journal=$(ls /var/lib/swapover/state.json 2>/dev/null) swaps=$(awk 'NR>1' /proc/swaps | wc -l)\"\n\
           sync; reboot -f\n\
         else\n\
           echo DEFAULT-RUN\n\
           show_fp AFTER-KILL\n\
           ./stager status; echo \"SWAPOVER-STATUS exit=$?\"\n\
           ./stager abort; echo \"SWAPOVER-ABORT exit=$?\"\n\
           show_fp AFTER-ABORT\n\
           echo \"SWAPOVER-AFTER-ABORT journal=$(ls /var/lib/swapover/state.json 2>/dev/null)\"\n\
           sync; poweroff -f\n\
         fi\n",
        fp = fingerprint_sh()
    );
    let payload = Payload::new("grub_oneshot", &run_sh)?;
    payload.add_file("stager", &e2e::packaged_stager()?, 0o755)?;
    payload.add_file("resinos.img.xz", &image.xz, 0o644)?;
    payload.add_bytes("config.json", e2e::demo_config_json().as_bytes(), 0o644)?;
    let payload = payload.build()?;
    let mut vm = Vm::start(&VmConfig::new(
        "grub_oneshot",
        vec![Drive::ide(&disk_path), Drive::ide(&payload)],
    ))?;
    vm.wait_for("SWAPOVER-ONESHOT-ENTRY", Duration::from_secs(60))?;
    let first = vm.wait_for("SWAPOVER-HOST-UP", Duration::from_secs(120))?;
    assert!(first.contains("swapover.oneshot=1"), "first boot was not the armed entry: {first}");
    vm.wait_for("ONESHOT-RUN", Duration::from_secs(60))?;

    let termed = vm.wait_for("SWAPOVER-SIGTERM-STAGE", Duration::from_secs(300))?;
    assert!(termed.ends_with("exit=2 rolled-back=1"), "{termed}");
    let killed = vm.wait_for("SWAPOVER-SIGKILL-STAGE", Duration::from_secs(600))?;
    assert!(
        killed.contains("exit=137 journal=/var/lib/swapover/state.json swaps=0"),
        "not killed mid-staging with swap off and the journal left: {killed}"
    );

    // The next boot: the default entry, the old OS, not the migration environment.
    vm.wait_for("Loading Linux", Duration::from_secs(60))?;
    let second = vm.wait_for("SWAPOVER-HOST-UP", Duration::from_secs(120))?;
    assert!(
        !second.contains("swapover.oneshot"),
        "second boot ran the one-shot entry again: {second}"
    );
    vm.wait_for("DEFAULT-RUN", Duration::from_secs(60))?;
    let status = vm.wait_for("SWAPOVER-STATUS", Duration::from_secs(120))?;
    assert!(status.ends_with("exit=0"), "{status}");
    let abort = vm.wait_for("SWAPOVER-ABORT", Duration::from_secs(120))?;
    assert!(abort.ends_with("exit=0"), "{abort}");
    let after = vm.wait_for("SWAPOVER-AFTER-ABORT", Duration::from_secs(60))?;
    assert!(after.ends_with("journal="), "abort left the journal: {after}");
    vm.wait_exit(Duration::from_secs(60))?;
    assert_eq!(vm.count("SWAPOVER-ONESHOT-ENTRY"), 1, "armed entry must run exactly once");
    let console = vm.console_text();
    assert!(
        !console.contains("SWAPOVER-MIGRATOR-START"),
        "the migration environment booted after a killed staging"
    );

    // SIGTERM: rolled back by the stager itself, before any abort.
    let term_output = section(&console, "ONESHOT-RUN", "SWAPOVER-SIGTERM-STAGE");
    eprintln!("--- stager stage, SIGTERM mid write-staging ---\n{term_output}");
    assert_same_fingerprint(&console, "BEFORE", "AFTER-TERM", "after SIGTERM's rollback");

    // SIGKILL: the old OS came back with the host changed (the fingerprint sees it)...
    let (sum_before, _) = fingerprint(&console, "BEFORE");
    let (sum_killed, killed_lines) = fingerprint(&console, "AFTER-KILL");
    assert_ne!(sum_before, sum_killed, "the kill changed nothing: {killed_lines:?}");
    assert!(
        !killed_lines.iter().any(|l| l.starts_with("swap-active")),
        "swap is active after the kill: {killed_lines:?}"
    );
    // ...status there names the step and what to run...
    let status_text = section(&console, "DEFAULT-RUN", "SWAPOVER-STATUS");
    eprintln!("--- stager status after the SIGKILL and a reboot ---\n{status_text}");
    for needle in [
        "Staging did not complete: the run stopped at step write-staging",
        "so the device boots the old OS",
        "Run `stager abort`",
        "Last run: stager stage (pid",
        "started and did not finish",
        "/var/lib/swapover/stager.log",
    ] {
        assert!(status_text.contains(needle), "status lacks {needle:?}:\n{status_text}");
    }
    // ...and abort restores it byte for byte, swap active again with its UUID.
    assert_same_fingerprint(&console, "BEFORE", "AFTER-ABORT", "after SIGKILL and abort");
    let (_, restored) = fingerprint(&console, "AFTER-ABORT");
    assert!(
        restored.iter().any(|l| l.starts_with("swap-active /dev/sdX5 partition")),
        "swap is not active again: {restored:?}"
    );

    // On the disk: what staging touched is as in the pristine image, custom.cfg is the test's.
    let pristine = &host.path;
    assert_eq!(disk::read_at(pristine, 0, 512)?, disk::read_at(&disk_path, 0, 512)?, "MBR");
    let swap = table.number(5)?;
    assert_eq!(
        disk::read_at(pristine, swap.offset_bytes(), 4096)?,
        disk::read_at(&disk_path, swap.offset_bytes(), 4096)?,
        "swap header (signature, UUID)"
    );
    for file in ["/etc/fstab", "/boot/grub/grub.cfg"] {
        assert_eq!(
            disk::read_ext4_file(pristine, root, file)?,
            disk::read_ext4_file(&disk_path, root, file)?,
            "{file}"
        );
    }
    assert_eq!(
        disk::read_ext4_file(&disk_path, root, "/boot/grub/custom.cfg")?,
        custom.as_bytes(),
        "custom.cfg"
    );

    let env = grub::env::GrubEnv::from_bytes(&disk::read_ext4_file(
        &disk_path,
        root,
        "/boot/grub/grubenv",
    )?)?;
    assert!(
        env.get("next_entry").unwrap_or("").is_empty(),
        "GRUB left next_entry armed: {:?}",
        env.get("next_entry")
    );
    for (marker, at) in vm.stages() {
        eprintln!("[timing] {marker}: {:.1}s", at.as_secs_f64());
    }
    Ok(())
}
