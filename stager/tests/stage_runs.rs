//! `stager stage` and `abort` as processes in an operator's hands, through the binary on a
//! fixture host (`--root`): the run lock, a run killed mid-staging (SIGKILL: nothing rolls
//! back, as after a power cut), `status` on what it left (staging still mounted, or not any
//! more after a "reboot"), `stage` run again undoing it and starting over, a SIGTERM with
//! stdout and stderr closed (EPIPE), and the run log `status` names. `stage-1x` on a resinOS
//! 1.x device tree holds the same lock and writes the same log.

#[path = "stage_support/mod.rs"]
mod stage_support;

#[path = "resinos1x_support/mod.rs"]
mod resinos1x_support;

use resinos1x_support::device::{Device, BOOT_MOUNT};
use stage_support::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn command(host: &StageHost, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stager"));
    command.args(args).arg("--root").arg(host.host.root());
    if args[0] == "stage" {
        let sha = sha256_hex(&std::fs::read(host.image()).unwrap());
        let migrator = host.write_input("migrator", b"\x7fELF pretend migrator");
        command
            .args(["--profile", "intel-nuc", "--no-reboot", "--kernel-release", KERNEL])
            .args(["--sha256", &sha])
            .arg("--image")
            .arg(host.image())
            .arg("--config")
            .arg(host.input("config.json"))
            .arg("--migrator")
            .arg(migrator);
    }
    command.envs(env.iter().copied());
    command
}

fn stager(host: &StageHost, args: &[&str], env: &[(&str, &str)]) -> Output {
    command(host, args, env).output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

struct Snapshot {
    files: std::collections::BTreeMap<String, String>,
    disk: (String, String),
    blkid: String,
}

fn snapshot(host: &StageHost) -> Snapshot {
    Snapshot { files: host.files(), disk: host.disk_guarded(), blkid: host.blkid_swap() }
}

fn assert_restored(host: &StageHost, before: &Snapshot) {
    assert_eq!(host.files(), before.files, "the host's files differ");
    assert_eq!(host.disk_guarded(), before.disk, "partition table, root or swap header differ");
    assert_eq!(host.blkid_swap(), before.blkid);
    assert!(!host.host.path("/var/lib/swapover/state.json").exists());
    assert!(loops_over(host.host.root()).is_empty(), "{:?}", loops_over(host.host.root()));
    assert!(mounted_under(host.host.root()).is_empty());
}

fn log_file(host: &StageHost) -> String {
    std::fs::read_to_string(host.host.path("/var/lib/swapover/stager.log")).unwrap_or_default()
}

/// A run killed by SIGKILL in the middle of the image copy: nothing rolled it back.
fn killed_mid_staging(host: &StageHost) {
    let killed =
        stager(host, &["stage"], &[("SWAPOVER_TEST_RAISE_AT", "copy:resinos.img.xz=KILL")]);
    assert_eq!(killed.status.code(), None, "{}", text(&killed));
    assert!(host.host.path("/var/lib/swapover/state.json").exists());
}

/// What a reboot does to a killed run's leftovers: mounts and loop devices are gone.
fn as_after_a_reboot(host: &StageHost) {
    for line in mounted_under(host.host.root()) {
        let mount_point = line.split_whitespace().nth(4).unwrap().to_string();
        assert!(Command::new("umount").arg(&mount_point).status().unwrap().success());
    }
    for line in loops_over(host.host.root()) {
        let device = line.split(':').next().unwrap().to_string();
        assert!(Command::new("losetup").args(["-d", &device]).status().unwrap().success());
    }
}

#[test]
fn a_second_run_is_refused_in_one_line_while_the_first_holds_the_lock() {
    let host = StageHost::new();
    let before = snapshot(&host);
    let lock = stager::run_lock::acquire(&host.root(), "stage").unwrap();
    for args in [&["stage"][..], &["abort"][..]] {
        let refused = stager(&host, args, &[]);
        assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
        let stderr = String::from_utf8_lossy(&refused.stderr).into_owned();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!(
                "error: refused: another stager run (pid {} (stage)) is staging or aborting on this host;",
                std::process::id()
            )),
            "{stderr}"
        );
    }
    let status = stager(&host, &["status"], &[]);
    assert!(text(&status).contains("A stager run is in progress now"), "{}", text(&status));
    drop(lock);
    assert_restored(&host, &before);
    // Free again: a run goes through (and `abort` undoes it).
    let staged = stager(&host, &["stage"], &[]);
    assert!(staged.status.success(), "{}", text(&staged));
    assert!(stager(&host, &["abort"], &[]).status.success());
    assert_restored(&host, &before);
}

#[test]
fn a_killed_run_leaves_no_lock_status_reads_its_mounted_staging_and_stage_starts_over() {
    let host = StageHost::new();
    let before = snapshot(&host);
    killed_mid_staging(&host);
    // The old OS boots: grubenv was not armed (it is the last step).
    let grubenv = std::fs::read_to_string(host.host.path("/boot/grub/grubenv")).unwrap();
    assert!(!grubenv.contains("next_entry"), "{grubenv}");

    let status = stager(&host, &["status"], &[]);
    let status = text(&status);
    assert!(!status.contains("Resource busy") && !status.contains("could not be read"), "{status}");
    assert!(status.contains("staging is still mounted at"), "{status}");
    assert!(
        status.contains("Staging did not complete: the run stopped at step write-staging (begun)"),
        "{status}"
    );
    assert!(status.contains("so the device boots the old OS"), "{status}");
    assert!(status.contains("Run `stager abort`"), "{status}");
    assert!(status.contains("Last run: stager stage (pid"), "{status}");
    assert!(status.contains("started and did not finish"), "{status}");
    assert!(status.contains("Log of the stager's runs: /var/lib/swapover/stager.log"), "{status}");

    // Not stuck: the kernel let go of the killed run's lock. Staging again undoes the
    // journal (unmounting the still-mounted staging) and starts over.
    let again = stager(&host, &["stage"], &[]);
    let again_text = text(&again);
    assert!(again.status.success(), "{again_text}");
    assert!(
        again_text.contains("a previous run stopped at step write-staging without finishing"),
        "{again_text}"
    );
    assert!(again_text.contains("staged and armed"), "{again_text}");
    let abort = stager(&host, &["abort"], &[]);
    assert!(abort.status.success(), "{}", text(&abort));
    assert_restored(&host, &before);
}

#[test]
fn after_a_power_cut_mid_staging_status_explains_and_abort_restores() {
    let host = StageHost::new();
    let before = snapshot(&host);
    killed_mid_staging(&host);
    as_after_a_reboot(&host);
    let status = text(&stager(&host, &["status"], &[]));
    assert!(!status.contains("could not be read"), "{status}");
    assert!(
        status.contains("Staging did not complete: the run stopped at step write-staging"),
        "{status}"
    );
    let abort = stager(&host, &["abort"], &[]);
    assert!(abort.status.success(), "{}", text(&abort));
    assert_restored(&host, &before);

    // And `stage` after a cut: undoes, starts over, arms.
    killed_mid_staging(&host);
    as_after_a_reboot(&host);
    let again = stager(&host, &["stage"], &[]);
    assert!(again.status.success(), "{}", text(&again));
    let state = std::fs::read_to_string(host.host.path("/var/lib/swapover/state.json")).unwrap();
    assert!(state.contains("\"armed\": true"), "{state}");
    assert!(stager(&host, &["abort"], &[]).status.success());
    assert_restored(&host, &before);
}

#[test]
fn sigterm_with_stdout_and_stderr_closed_still_rolls_back_and_logs_to_the_file() {
    let host = StageHost::new();
    let before = snapshot(&host);
    let mut child =
        command(&host, &["stage"], &[("SWAPOVER_TEST_RAISE_AT", "copy:resinos.img.xz=TERM")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    // Nobody reads: every write to stdout or stderr fails with EPIPE.
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2));
    assert_restored(&host, &before);
    let log = log_file(&host);
    assert!(log.contains("stderr cannot be written any more (Broken pipe"), "{log}");
    assert!(log.contains("interrupted by SIGTERM at step write-staging; rolling back"), "{log}");
    assert!(log.contains("everything was rolled back, the host is as it was"), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    let status = text(&stager(&host, &["status"], &[]));
    assert!(status.contains("Nothing is staged"), "{status}");
    assert!(
        status.contains("Last run: stager stage: error: staging was interrupted by SIGTERM at step write-staging, before the last step began: everything was rolled back"),
        "{status}"
    );
    assert!(status.contains("/var/lib/swapover/stager.log"), "{status}");
}

#[test]
fn the_run_log_keeps_every_run_and_is_rotated_past_its_limit() {
    let host = StageHost::new();
    let path = host.host.path("/var/lib/swapover/stager.log");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, vec![b'x'; stager::run_log::ROTATE_AT as usize + 1]).unwrap();
    let aborted = stager(&host, &["abort"], &[]);
    assert!(aborted.status.success(), "{}", text(&aborted));
    let log = log_file(&host);
    assert!(log.starts_with("=== stager abort (version"), "{log}");
    assert!(log.contains("nothing is staged; nothing to undo"), "{log}");
    assert!(Path::new(&format!("{}.1", path.display())).exists());
}

/// `stager stage-1x` on a resinOS 1.x UEFI device tree (`resinos1x_support::device`, its boot
/// partition a mounted tmpfs so that undo can run to its end), through the binary.
fn stage_1x(device: &Device, migrator: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stager"));
    command
        .args(["stage-1x", "--profile", "resinos1x-intel-nuc", "--no-reboot"])
        .arg("--no-supervisor-update");
    device
        .stage_1x_args(&mut command)
        .arg("--migrator")
        .arg(migrator)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stager_at(device: &Device, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stager"))
        .args(args)
        .arg("--root")
        .arg(device.host.root())
        .output()
        .unwrap()
}

fn assert_1x_restored(
    device: &Device,
    before: &(std::collections::BTreeMap<String, String>, String),
) {
    // The tree as it was; the disk's resin-updt held our directory and lost it again (its
    // bytes differ, its files do not: resin-updt's own file system is kept).
    assert_eq!(device.snapshot().0, before.0, "the device tree differs");
    assert!(!device.host.path("/var/lib/swapover/state.json").exists());
    assert!(!device.host.path(&format!("{BOOT_MOUNT}/swapover")).exists());
    assert!(loops_over(device.host.root()).is_empty(), "{:?}", loops_over(device.host.root()));
    // Nothing mounted but the boot partition's tmpfs, which the device had.
    let mounted: Vec<String> = mounted_under(device.host.root())
        .into_iter()
        .filter(|line| !line.contains(" tmpfs swapover-test-boot "))
        .collect();
    assert!(mounted.is_empty(), "{mounted:?}");
}

#[test]
fn stage_1x_takes_the_same_run_lock_and_run_log_and_rolls_back_on_sigterm() {
    let device = Device::with_mounted_boot("resinos1x-intel-nuc");
    let inputs = tempfile::tempdir().unwrap();
    let migrator = inputs.path().join("migrator");
    std::fs::write(&migrator, b"\x7fELF the migrator").unwrap();
    let log = || {
        std::fs::read_to_string(device.host.path("/var/lib/swapover/stager.log"))
            .unwrap_or_default()
    };

    // A `stage` (or `abort`) holds the lock: stage-1x is refused in one line before it reads
    // anything, the disk and every file byte-identical, no journal, no log of its own.
    let lock = stager::run_lock::acquire(&device.request.root, "stage").unwrap();
    let before = device.snapshot();
    let refused = stage_1x(&device, &migrator, &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: refused: another stager run (pid {} (stage)) is staging or aborting on this host;",
            std::process::id()
        )),
        "{stderr}"
    );
    assert_eq!(device.snapshot(), before, "a refused stage-1x changed the device");
    assert!(!device.host.path("/var/lib/swapover/state.json").exists());
    assert!(log().is_empty(), "{}", log());
    drop(lock);

    // SIGTERM in the middle of the image copy: rolled back by itself, no abort needed.
    let termed =
        stage_1x(&device, &migrator, &[("SWAPOVER_TEST_RAISE_AT", "copy:resinos.img.xz=TERM")]);
    assert_eq!(termed.status.code(), Some(2), "{}", text(&termed));
    assert!(
        text(&termed).contains("staging was interrupted by SIGTERM at step write-staging-dir, before the last step began: everything was rolled back"),
        "{}",
        text(&termed)
    );
    assert_1x_restored(&device, &before);
    let log_text = log();
    assert!(log_text.starts_with("=== stager stage-1x (version"), "{log_text}");
    assert!(
        log_text.contains("interrupted by SIGTERM at step write-staging-dir; rolling back"),
        "{log_text}"
    );
    let status = text(&stager_at(&device, &["status"]));
    assert!(status.contains("Nothing is staged"), "{status}");
    assert!(
        status.contains("Last run: stager stage-1x: error: staging was interrupted by SIGTERM"),
        "{status}"
    );

    // SIGKILL there (nothing rolls back): the lock is not left stuck, status names the step
    // and what to run, and `abort` (run log: "stager abort") restores the device.
    let killed =
        stage_1x(&device, &migrator, &[("SWAPOVER_TEST_RAISE_AT", "copy:resinos.img.xz=KILL")]);
    assert_eq!(killed.status.code(), None, "{}", text(&killed));
    let status = text(&stager_at(&device, &["status"]));
    assert!(
        status.contains("Staging did not complete: the run stopped at step write-staging-dir"),
        "{status}"
    );
    assert!(status.contains("Run `stager abort`"), "{status}");
    assert!(status.contains("Last run: stager stage-1x (pid"), "{status}");
    let abort = stager_at(&device, &["abort"]);
    assert!(abort.status.success(), "{}", text(&abort));
    assert_1x_restored(&device, &before);

    // Free again: stage-1x goes through, recorded as the last run; abort undoes it.
    let staged = stage_1x(&device, &migrator, &[]);
    assert!(staged.status.success(), "{}", text(&staged));
    let status = text(&stager_at(&device, &["status"]));
    assert!(
        status.contains("Last run: stager stage-1x: Staged and armed for one boot (Boot"),
        "{status}"
    );
    assert!(log().contains("Staged and armed for one boot"), "{}", log());
    let abort = stager_at(&device, &["abort"]);
    assert!(abort.status.success(), "{}", text(&abort));
    assert_1x_restored(&device, &before);
}
