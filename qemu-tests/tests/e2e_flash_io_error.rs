//! A disk that fails writes during the flash (QEMU blkdebug: EIO for every write touching a
//! sector in the old root's space): the migrator retries, then stops with a clear message,
//! never reaches resinOS, and the same disk, booted again without the fault, still boots
//! the migration environment, which finishes the migration with every file intact.

use qemu_tests::e2e::{self, APP_ID};
use qemu_tests::host_image::{ROOT_SECTORS, ROOT_START};
use qemu_tests::paths;
use qemu_tests::qemu::{Drive, Vm, VmConfig};
use qemu_tests::verdict::{self, Verdict, SUMMARY_MARKER};
use std::time::{Duration, Instant};

const NAME: &str = "e2e_flash_io_error";
/// 20 MiB into the disk: inside the old root, inside the flashed image, past its held-back
/// first MiB, and far from the staging partition where the journal lives.
const BAD_SECTOR: u64 = 20 * 2048;

fn blkdebug_rules() -> anyhow::Result<std::path::PathBuf> {
    let path = paths::logs_dir().join(format!("{NAME}-blkdebug.conf"));
    std::fs::create_dir_all(paths::logs_dir())?;
    std::fs::write(
        &path,
        format!("[inject-error]\nevent = \"write_aio\"\niotype = \"write\"\nerrno = \"5\"\nsector = \"{BAD_SECTOR}\"\nonce = \"off\"\n"),
    )?;
    Ok(path)
}

/// Console lines holding `needle`.
fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

/// The console text up to its last newline: a line still being printed is not read yet.
fn complete_lines(text: &str) -> &str {
    text.rfind('\n').map_or("", |end| &text[..=end])
}

#[test]
fn write_errors_during_the_flash_stop_the_migrator_and_a_healthy_boot_finishes(
) -> anyhow::Result<()> {
    assert!((ROOT_START + 2048..ROOT_START + ROOT_SECTORS).contains(&BAD_SECTOR));
    let (host, disk, payload_disk, _image) = e2e::prepare(NAME)?;
    let healthy = vec![Drive::ide(&disk), Drive::ide(&payload_disk)];

    // Boot 1, healthy: the old OS stages and reboots; -no-reboot ends QEMU there, so the
    // migrator's first boot happens on the faulty disk below.
    let mut vm = Vm::start(&VmConfig {
        allow_reboot: false,
        ..VmConfig::new(&format!("{NAME}-stage"), healthy.clone())
    })?;
    vm.wait_for("SWAPOVER-HOST-UP", Duration::from_secs(300))?;
    vm.wait_for("rebooting now", Duration::from_secs(900))?;
    vm.wait_exit(Duration::from_secs(180))?;

    // Boot 2, every write touching BAD_SECTOR fails with EIO.
    let faulty =
        vec![Drive::ide(&disk).with_blkdebug(blkdebug_rules()?), Drive::ide(&payload_disk)];
    let mut vm = Vm::start(&VmConfig {
        allow_reboot: false,
        ..VmConfig::new(&format!("{NAME}-faulty"), faulty)
    })?;
    vm.wait_for("SWAPOVER-MIGRATOR-START", Duration::from_secs(300))?;
    vm.wait_for("SWAPOVER-STEP flash begin", Duration::from_secs(600))?;
    // The migrator either halts (and says why, repeatedly) or reboots (QEMU exits).
    let deadline = Instant::now() + Duration::from_secs(1800);
    let stop = loop {
        let console = vm.console_text();
        let text = complete_lines(&console);
        if let Some(line) = lines_with(text, "SWAPOVER-MIGRATOR-HALT").first() {
            break line.to_string();
        }
        if let Some(line) = lines_with(text, "SWAPOVER-MIGRATOR-REBOOT").first() {
            break line.to_string();
        }
        if text.contains(SUMMARY_MARKER) {
            anyhow::bail!("the faulty disk reached resinOS (log {})", vm.log_path().display());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "the migrator neither halted nor rebooted on the faulty disk (log {})",
                vm.log_path().display()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    // Let a halt print its reason line, then pull the plug (a reboot already ended QEMU).
    std::thread::sleep(Duration::from_secs(2));
    vm.power_cut()?;
    let text = vm.console_text();
    let retries = lines_with(&text, "retrying in");
    let gave_up = lines_with(&text, "giving up after");
    let failed: Vec<&str> =
        lines_with(&text, "Flash attempt").into_iter().filter(|l| l.contains("failed")).collect();
    eprintln!("--- faulty boot ({}) ---", vm.log_path().display());
    for line in
        retries.iter().take(2).chain(&gave_up).chain(&failed).chain(std::iter::once(&stop.as_str()))
    {
        eprintln!("{line}");
    }
    assert!(stop.contains("SWAPOVER-MIGRATOR-HALT") || !stop.contains("target=resinos"), "{stop}");
    if stop.contains("SWAPOVER-MIGRATOR-HALT") {
        assert!(stop.contains("Flash"), "the halt does not name the flash: {stop}");
        // The console line alone must say what failed where, and the fix.
        assert!(
            stop.contains("last error:") && stop.contains("/dev/"),
            "the halt does not name the error and device: {stop}"
        );
    }
    assert!(!retries.is_empty(), "no retry logged");
    for line in &retries {
        assert!(
            line.contains("(EIO") && line.contains("/dev/") && line.contains("byte"),
            "retry line without device, offset or errno: {line}"
        );
    }
    assert!(!gave_up.is_empty(), "the flash never gave up");
    assert!(!failed.is_empty(), "no failed flash attempt logged");
    for line in &failed {
        assert!(
            line.contains("/dev/") && line.contains("check it and its cable"),
            "failure line without device or fix: {line}"
        );
    }
    assert!(
        !text.contains("SWAPOVER-STEP flash done"),
        "the flash claimed success on a failing disk"
    );
    assert!(
        !text.contains("SWAPOVER-MIGRATOR-REBOOT target=resinos") && !text.contains(SUMMARY_MARKER)
    );

    // Boot 3, healthy again: the disk still boots the migration environment, which
    // flashes from its journal and ends in resinOS with every file.
    let mut vm = Vm::start(&VmConfig::new(&format!("{NAME}-healed"), healthy))?;
    vm.wait_for("SWAPOVER-MIGRATOR-START", Duration::from_secs(300)).map_err(|e| {
        e.context("the disk no longer boots the migration environment after the failed flash")
    })?;
    vm.wait_for("SWAPOVER-STEP flash done", Duration::from_secs(900))?;
    vm.wait_for(SUMMARY_MARKER, Duration::from_secs(1200))?;
    vm.wait_exit(Duration::from_secs(60))?;
    let verdict = Verdict::parse(&vm.console_text())?;
    let expected = host.expected_manifest()?;
    let differences =
        verdict::differences(&expected, &verdict.data, &format!("resin-data/{APP_ID}"));
    assert!(
        differences.is_empty(),
        "customer data differs after the healed boot:\n{}",
        differences.join("\n")
    );
    assert!(verdict.summary.ok, "{:?}", verdict.summary);
    Ok(())
}
