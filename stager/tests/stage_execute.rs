//! Executing a stage on a fixture host with real mkfs.ext4, loop devices, mounts,
//! grub-mkimage and grubenv edits (swapoff/swapon/reboot are recorded, not done: they would
//! act on this machine). Then `abort`, and a failure injected after every step, each
//! ending byte-identical to the start.

#[path = "stage_support/mod.rs"]
mod stage_support;

use stage_support::fixture_host::run;
use stage_support::*;
use stager::stage::engine::system::{FixtureSystem, System};
use stager::stage::{run_stage, StageError, StageOutcome};
use stager::state::StateStore;
use std::process::Command;

struct Snapshot {
    files: std::collections::BTreeMap<String, String>,
    disk: (String, String),
    blkid: String,
}

fn snapshot(host: &StageHost) -> Snapshot {
    Snapshot { files: host.files(), disk: host.disk_guarded(), blkid: host.blkid_swap() }
}

fn assert_restored(host: &StageHost, before: &Snapshot) {
    assert_eq!(host.blkid_swap(), before.blkid);
    assert!(
        before.blkid.contains(&format!("UUID={SWAP_UUID}")) && before.blkid.contains("TYPE=swap"),
        "{}",
        before.blkid
    );
    assert_eq!(host.disk_guarded(), before.disk, "partition table, root or swap header differ");
    let now = host.files();
    for (path, digest) in &before.files {
        assert_eq!(now.get(path), Some(digest), "{path} differs");
    }
    assert_eq!(
        now.len(),
        before.files.len(),
        "files added: {:?}",
        now.keys().filter(|k| !before.files.contains_key(*k)).collect::<Vec<_>>()
    );
    assert!(!StateStore::new(&host.root()).exists());
    assert!(loops_over(host.host.root()).is_empty(), "{:?}", loops_over(host.host.root()));
    assert!(mounted_under(host.host.root()).is_empty());
}

/// Mounts the staging region read-only through a loop device and runs `check` on it.
fn with_staging<T>(host: &StageHost, check: impl FnOnce(&std::path::Path) -> T) -> T {
    let mut system = FixtureSystem::default();
    let state = StateStore::new(&host.root()).load().unwrap().unwrap();
    let (device, loop_device) = system.attach(&state.staging).unwrap();
    let mount = tempfile::tempdir().unwrap();
    system.mount(&device, mount.path(), true).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check(&mount.path().join("swapover"))
    }));
    system.unmount(mount.path()).unwrap();
    system.detach(&loop_device.unwrap()).unwrap();
    result.unwrap_or_else(|e| std::panic::resume_unwind(e))
}

#[test]
fn stage_then_abort_restores_the_host_byte_for_byte() {
    let host = StageHost::new();
    let before = snapshot(&host);
    let request = host.request();
    let mut system = FixtureSystem::default();
    let outcome = run_stage(&request, &mut system).unwrap();
    let StageOutcome::Staged { report, plan } = outcome else { panic!("{outcome:?}") };
    assert!(!report.rebooting);
    let swap_node = host.host.path("/dev/sda5").display().to_string();
    assert_eq!(system.calls, vec![format!("swapoff {swap_node}")]);

    // Staging is an ext4 labelled swapover-stage with the planned UUID.
    let blkid = host.blkid_swap();
    assert!(blkid.contains("TYPE=ext4") && blkid.contains("LABEL=swapover-stage"), "{blkid}");
    assert!(blkid.contains(&format!("UUID={}", plan.plan.staging.fs_uuid)), "{blkid}");
    // The saved header is the swap page as it was.
    let saved = std::fs::read(host.host.path("/var/lib/swapover/swap-header.orig")).unwrap();
    assert_eq!(sha256_hex(&saved), before.disk.1);

    // fstab: only the swap line is commented out.
    let fstab = std::fs::read_to_string(host.host.path("/etc/fstab")).unwrap();
    assert!(fstab.contains("#swapover# UUID=0A2F4E6C-8B1D-4F3A-9C5E-7D8B6A4F2E10 none"), "{fstab}");
    assert_eq!(fstab.matches("#swapover#").count(), 1);

    // GRUB: custom.cfg checked by grub-script-check, next_entry armed as grub-editenv reads it.
    let custom = host.host.path("/boot/grub/custom.cfg");
    assert!(Command::new("grub-script-check").arg(&custom).status().unwrap().success());
    let env = String::from_utf8(
        Command::new("grub-editenv")
            .arg(host.host.path("/boot/grub/grubenv"))
            .arg("list")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(env.contains("next_entry=swapover-migrate") && env.contains("saved_entry=0"), "{env}");

    let image_sha = sha256_hex(&std::fs::read(host.image()).unwrap());
    let kernel = std::fs::read(host.host.path(&format!("/boot/vmlinuz-{KERNEL}"))).unwrap();
    with_staging(&host, |dir| {
        assert_eq!(sha256_hex(&std::fs::read(dir.join("resinos.img.xz")).unwrap()), image_sha);
        assert_eq!(std::fs::read(dir.join("vmlinuz")).unwrap(), kernel);
        assert_eq!(
            std::fs::read(dir.join("config.json")).unwrap(),
            std::fs::read(host.input("config.json")).unwrap()
        );
        let staged_plan =
            plan::Plan::from_json(&std::fs::read_to_string(dir.join("plan.json")).unwrap())
                .unwrap();
        assert_eq!(staged_plan, plan.plan);
        // The initramfs: gzip or xz cpio holding /init, the plan and the modules.
        let listing = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "(xz -dc '{0}' 2>/dev/null || gzip -dc '{0}') | cpio -t 2>/dev/null",
                dir.join("initramfs.img").display()
            ))
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout);
        for entry in [
            "init",
            "etc/swapover/plan.json",
            "etc/swapover/modules.load",
            &format!("lib/modules/{KERNEL}/kernel/fs/ext4/ext4.ko"),
        ] {
            assert!(listing.lines().any(|l| l == entry), "{entry} not in:\n{listing}");
        }
        let core = std::fs::read(dir.join("grub/core.img")).unwrap();
        assert!(core.len() > 10_000 && core.len() < 1024 * 1024);
        assert!(
            dir.join("grub/boot.img").is_file() && dir.join("grub/i386-pc/normal.mod").is_file()
        );
        assert!(Command::new("grub-script-check")
            .arg(dir.join("grub/grub.cfg"))
            .status()
            .unwrap()
            .success());
    });

    // A second stage is refused while this one is staged.
    let err = run_stage(&host.request(), &mut FixtureSystem::default()).unwrap_err();
    assert!(err.to_string().contains("already staged"), "{err}");

    let mut abort_system = FixtureSystem::default();
    let outcome = stager::abort::abort(&host.root(), &mut abort_system).unwrap();
    assert!(matches!(outcome, stager::abort::AbortOutcome::Restored(_)), "{outcome:?}");
    assert_eq!(abort_system.calls, vec![format!("swapon {swap_node}")]);
    assert_restored(&host, &before);
    // Idempotent.
    let again = stager::abort::abort(&host.root(), &mut FixtureSystem::default()).unwrap();
    assert!(matches!(again, stager::abort::AbortOutcome::NothingStaged));
}

#[test]
fn a_failure_after_any_step_rolls_everything_back() {
    let steps = [
        "swapoff",
        "save-swap-header",
        "comment-fstab",
        "attach",
        "mkfs",
        "mount",
        "write-staging",
        "unmount",
        "write-custom-cfg",
        "arm-grubenv",
    ];
    let host = StageHost::new();
    // An existing custom.cfg must come back byte for byte too.
    host.host.write("/boot/grub/custom.cfg", "menuentry 'mine' {\n\ttrue\n}\n");
    let before = snapshot(&host);
    for step in steps {
        let mut request = host.request();
        request.execute.fail_after = Some(step.to_string());
        let mut system = FixtureSystem::default();
        let err = run_stage(&request, &mut system).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StageError::Execute(_)), "{step}: {text}");
        assert!(
            text.contains(&format!("failed at step {step}"))
                && text.contains("everything was rolled back"),
            "{step}: {text}"
        );
        assert_eq!(
            system.calls.first().map(String::as_str),
            Some(format!("swapoff {}", host.host.path("/dev/sda5").display()).as_str())
        );
        assert!(system.calls.last().unwrap().starts_with("swapon"), "{step}: {:?}", system.calls);
        assert_restored(&host, &before);
    }
}

#[test]
fn backup_hook_not_now_failure_and_timeout_change_nothing() {
    let host = StageHost::new();
    let before = (host.files(), host.disk_whole());
    for (script, expect) in [
        ("exit 3", "not-now"),
        ("exit 1", "failed with exit status: 1"),
        ("sleep 5", "did not finish within 1 s"),
    ] {
        let hook = host.write_input("hook.sh", format!("#!/bin/sh\n{script}\n").as_bytes());
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut request = host.request();
        request.hook = Some(stager::stage::hook::Hook {
            program: hook,
            args: vec!["--arg with space".into()],
            timeout: std::time::Duration::from_secs(1),
        });
        let mut system = FixtureSystem::default();
        match run_stage(&request, &mut system) {
            Ok(StageOutcome::NotNow) => assert_eq!(expect, "not-now"),
            Err(e) => assert!(
                e.to_string().contains(expect) && e.to_string().contains("nothing was changed"),
                "{e}"
            ),
            Ok(other) => panic!("{script}: {other:?}"),
        }
        assert!(system.calls.is_empty());
        assert_eq!((host.files(), host.disk_whole()), before, "{script}");
    }
    // The hook gets its arguments as argv, untouched by any shell.
    let hook = host.write_input(
        "hook-args.sh",
        b"#!/bin/sh\n[ \"$1\" = '--arg with space' ] && [ $# -eq 1 ] && exit 3\nexit 1\n",
    );
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let verdict = stager::stage::hook::run(&stager::stage::hook::Hook {
        program: hook,
        args: vec!["--arg with space".into()],
        timeout: std::time::Duration::from_secs(5),
    });
    assert_eq!(verdict, Ok(stager::stage::hook::HookVerdict::NotNow));
}

#[test]
fn status_after_a_failed_attempt_shows_the_log_and_journal_step() {
    let host = StageHost::new();
    run_stage(&host.request(), &mut FixtureSystem::default()).unwrap();
    let mut system = FixtureSystem::default();
    let status = stager::status::status(&host.root(), &mut system).unwrap();
    assert_eq!(status.armed, stager::status::Armed::Yes);
    assert!(status.log_tail.is_none());
    // Found again by its identity; the text names today's device.
    let now = status.current_path.clone().expect("the staging partition is found by identity");
    assert!(
        stager::status::render_text(&status).starts_with(&format!("Staged on {now} ")),
        "{}",
        stager::status::render_text(&status)
    );

    // The migration environment booted (GRUB cleared next_entry), logged, and came back.
    run(Command::new("grub-editenv")
        .arg(host.host.path("/boot/grub/grubenv"))
        .args(["unset", "next_entry"]));
    let state = StateStore::new(&host.root()).load().unwrap().unwrap();
    let (device, loop_device) = system.attach(&state.staging).unwrap();
    let mount = tempfile::tempdir().unwrap();
    system.mount(&device, mount.path(), false).unwrap();
    let log: String = (1..=40).map(|i| format!("line {i}\n")).collect::<String>()
        + "SWAPOVER-MIGRATOR-HALT disk not found\n";
    std::fs::write(mount.path().join("swapover/migration.log"), log).unwrap();
    system.unmount(mount.path()).unwrap();
    system.detach(&loop_device.unwrap()).unwrap();

    let status = stager::status::status(&host.root(), &mut FixtureSystem::default()).unwrap();
    assert_eq!(status.armed, stager::status::Armed::Consumed);
    let tail = status.log_tail.clone().unwrap();
    assert_eq!(tail.len(), stager::status::LOG_TAIL_LINES);
    assert_eq!(tail.last().unwrap(), "SWAPOVER-MIGRATOR-HALT disk not found");
    let text = stager::status::render_text(&status);
    assert!(
        text.contains("GRUB used the one-shot entry") && text.contains("SWAPOVER-MIGRATOR-HALT"),
        "{text}"
    );
    assert!(loops_over(host.host.root()).is_empty(), "{:?}", loops_over(host.host.root()));
    assert!(mounted_under(host.host.root()).is_empty(), "{:?}", mounted_under(host.host.root()));

    // abort restores the swap header even after the migrator wrote to staging.
    stager::abort::abort(&host.root(), &mut FixtureSystem::default()).unwrap();
    assert!(host.blkid_swap().contains(&format!("UUID={SWAP_UUID}")));
}

/// Real loop devices and mkfs, but the mount itself fails: the step is only begun.
#[derive(Default)]
struct MountFails(FixtureSystem);

impl System for MountFails {
    fn swap_off(&mut self, device: &std::path::Path) -> std::io::Result<()> {
        self.0.swap_off(device)
    }
    fn swap_on(&mut self, device: &std::path::Path) -> std::io::Result<()> {
        self.0.swap_on(device)
    }
    fn attach(
        &mut self,
        region: &stager::stage::host_extras::Region,
    ) -> std::io::Result<(String, Option<String>)> {
        self.0.attach(region)
    }
    fn detach(&mut self, loop_device: &str) -> std::io::Result<()> {
        self.0.detach(loop_device)
    }
    fn mount(
        &mut self,
        _device: &str,
        _target: &std::path::Path,
        _read_only: bool,
    ) -> std::io::Result<()> {
        Err(std::io::Error::other("no ext4 in this kernel"))
    }
    fn unmount(&mut self, target: &std::path::Path) -> std::io::Result<()> {
        self.0.unmount(target)
    }
    fn sync(&mut self) {
        self.0.sync()
    }
    fn reboot(&mut self) -> std::io::Result<()> {
        self.0.reboot()
    }
    fn restart2(&mut self, arg: &str) -> std::io::Result<()> {
        self.0.restart2(arg)
    }
}

#[test]
fn a_step_that_fails_part_way_is_undone_too() {
    let host = StageHost::new();
    let before = snapshot(&host);
    let mut system = MountFails::default();
    let err = run_stage(&host.request(), &mut system).unwrap_err().to_string();
    assert!(
        err.contains("failed at step mount") && err.contains("no ext4 in this kernel"),
        "{err}"
    );
    assert!(
        err.contains("everything was rolled back")
            && err.contains("wrote the saved swap header back"),
        "{err}"
    );
    assert_restored(&host, &before);
}

/// Sysfs for a legacy-layout disk called `name` (partitions 1, 2, 5) with device numbers
/// `8:<minor>`, `8:<minor+1>`...
fn add_disk_sysfs(host: &StageHost, name: &str, minor: u32) {
    use stage_support::fixture_host::Partition;
    let names = [format!("{name}1"), format!("{name}2"), format!("{name}5")];
    let devs = [format!("8:{}", minor + 1), format!("8:{}", minor + 2), format!("8:{}", minor + 5)];
    host.host.add_sysfs_disk(
        name,
        &format!("8:{minor}"),
        DISK_SECTORS,
        &[
            Partition {
                name: &names[0],
                number: 1,
                dev: &devs[0],
                start: ROOT_START,
                sectors: ROOT_SECTORS,
            },
            Partition {
                name: &names[1],
                number: 2,
                dev: &devs[1],
                start: EXTENDED_START,
                sectors: 2,
            },
            Partition {
                name: &names[2],
                number: 5,
                dev: &devs[2],
                start: SWAP_START,
                sectors: SWAP_SECTORS,
            },
        ],
        true,
    );
}

fn remove_disk_sysfs(host: &StageHost, name: &str, minor: u32) {
    let device_dir =
        std::fs::canonicalize(host.host.path(&format!("/sys/class/block/{name}"))).unwrap();
    for entry in [name.to_string(), format!("{name}1"), format!("{name}2"), format!("{name}5")] {
        host.host.remove(&format!("/sys/class/block/{entry}"));
    }
    for offset in [0, 1, 2, 5] {
        host.host.remove(&format!("/sys/dev/block/8:{}", minor + offset));
    }
    std::fs::remove_dir_all(device_dir).unwrap();
}

/// Another disk with the same layout and even a swap with the same UUID, but another MBR
/// signature: only the disk identifier tells it from the staged one.
fn add_decoy_disk(host: &StageHost, node: &str, swap_uuid: &str) -> std::path::PathBuf {
    use stage_support::fixture_host::{mkswap_into, sfdisk, sparse_file};
    let path = host.host.path(node);
    sparse_file(&path, DISK_SECTORS * SECTOR);
    sfdisk(
        &path,
        &format!("label: dos\nlabel-id: 0x0badf00d\nstart={ROOT_START}, size={ROOT_SECTORS}, type=83\nstart={EXTENDED_START}, type=5\nstart={SWAP_START}, type=82\n"),
    );
    mkswap_into(&path, SWAP_START * SECTOR, SWAP_SECTORS * SECTOR, swap_uuid, Some(SWAP_LABEL));
    path
}

fn file_sha256(path: &std::path::Path) -> String {
    run(Command::new("sha256sum").arg(path)).split_whitespace().next().unwrap().to_string()
}

/// Staged while the disk was `sda`; on the next boot a second disk was probed first, so the
/// staged disk is `sdb` and `sda` is another disk with the same layout. status and abort
/// find staging by the disk's MBR signature + start + size, never by the recorded name.
#[test]
fn status_and_abort_find_staging_by_identity_after_the_disk_changed_name() {
    let host = StageHost::new();
    let before = snapshot(&host);
    run_stage(&host.request(), &mut FixtureSystem::default()).unwrap();
    let state = StateStore::new(&host.root()).load().unwrap().unwrap();
    assert_eq!(state.staging.host_path, "/dev/sda5");
    let identity = state.staging_partition.clone().expect("identity recorded");
    assert_eq!(identity.disk, plan::DiskId::Mbr { signature: 0x1234_abcd });

    // The migration environment booted (GRUB spent next_entry), logged, and came back.
    run(Command::new("grub-editenv")
        .arg(host.host.path("/boot/grub/grubenv"))
        .args(["unset", "next_entry"]));
    let mut system = FixtureSystem::default();
    let (device, loop_device) = system.attach(&state.staging).unwrap();
    let mount = tempfile::tempdir().unwrap();
    system.mount(&device, mount.path(), false).unwrap();
    std::fs::write(
        mount.path().join("swapover/migration.log"),
        "SWAPOVER-MIGRATOR-HALT initramfs broken\n",
    )
    .unwrap();
    system.unmount(mount.path()).unwrap();
    system.detach(&loop_device.unwrap()).unwrap();

    // Next boot: the staged disk is sdb, a decoy is sda.
    remove_disk_sysfs(&host, "sda", 0);
    std::fs::rename(host.disk(), host.host.path("/dev/sdb")).unwrap();
    add_disk_sysfs(&host, "sdb", 16);
    let decoy = add_decoy_disk(&host, "/dev/sda", SWAP_UUID);
    add_disk_sysfs(&host, "sda", 0);
    let decoy_sha = file_sha256(&decoy);

    let status = stager::status::status(&host.root(), &mut FixtureSystem::default()).unwrap();
    assert_eq!(status.staging_problem, None);
    assert_eq!(status.armed, stager::status::Armed::Consumed);
    assert_eq!(status.log_tail, Some(vec!["SWAPOVER-MIGRATOR-HALT initramfs broken".to_string()]));

    let mut abort_system = FixtureSystem::default();
    let outcome = stager::abort::abort(&host.root(), &mut abort_system).unwrap();
    let stager::abort::AbortOutcome::Restored(report) = outcome else { panic!("{outcome:?}") };
    assert!(
        report
            .undone
            .iter()
            .any(|u| u.starts_with("wrote the saved swap header back to /dev/sdb5")),
        "{report:?}"
    );
    assert_eq!(
        abort_system.calls,
        vec![format!("swapon {}", host.host.path("/dev/sdb5").display())]
    );
    assert_eq!(file_sha256(&decoy), decoy_sha, "the other disk was written");

    // Back to the first boot's names: everything byte-identical to before staging.
    remove_disk_sysfs(&host, "sda", 0);
    std::fs::remove_file(&decoy).unwrap();
    remove_disk_sysfs(&host, "sdb", 16);
    std::fs::rename(host.host.path("/dev/sdb"), host.disk()).unwrap();
    add_disk_sysfs(&host, "sda", 0);
    assert_restored(&host, &before);
}

/// A state file written before identities were recorded: without `staging_partition`.
fn make_state_path_only(host: &StageHost) {
    let path = StateStore::new(&host.root()).path();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(json.as_object_mut().unwrap().remove("staging_partition").is_some());
    std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
}

/// An older state file (device path only) still aborts through the recorded path.
#[test]
fn a_path_only_state_file_still_aborts_through_its_recorded_path() {
    let host = StageHost::new();
    let before = snapshot(&host);
    run_stage(&host.request(), &mut FixtureSystem::default()).unwrap();
    make_state_path_only(&host);
    assert_eq!(StateStore::new(&host.root()).load().unwrap().unwrap().staging_partition, None);
    let mut system = FixtureSystem::default();
    stager::abort::abort(&host.root(), &mut system).unwrap();
    assert_eq!(system.calls, vec![format!("swapon {}", host.host.path("/dev/sda5").display())]);
    assert_restored(&host, &before);
}

/// ...but refuses to write the swap header (or swapon) through a recorded path that now
/// names another disk's partition, and says what to do.
#[test]
fn a_path_only_state_file_refuses_a_path_that_now_names_another_partition() {
    let host = StageHost::new();
    run_stage(&host.request(), &mut FixtureSystem::default()).unwrap();
    make_state_path_only(&host);
    remove_disk_sysfs(&host, "sda", 0);
    std::fs::rename(host.disk(), host.host.path("/dev/sdb")).unwrap();
    add_disk_sysfs(&host, "sdb", 16);
    let decoy = add_decoy_disk(&host, "/dev/sda", "11111111-2222-4333-8444-555555555555");
    add_disk_sysfs(&host, "sda", 0);
    let decoy_sha = file_sha256(&decoy);

    let mut system = FixtureSystem::default();
    let err = stager::abort::abort(&host.root(), &mut system).unwrap_err().to_string();
    assert!(
        err.contains("ROLLBACK INCOMPLETE")
            && err.contains("/dev/sda5 holds neither the staging file system"),
        "{err}"
    );
    assert!(err.contains("does not hold the swap"), "{err}");
    assert!(system.calls.is_empty(), "{:?}", system.calls);
    assert_eq!(file_sha256(&decoy), decoy_sha, "the other disk was written");
    assert!(StateStore::new(&host.root()).exists(), "state kept for a retry");
}

/// Sets the loop device the state records for the `attach` step.
fn record_loop_device(host: &StageHost, device: &str) {
    let path = StateStore::new(&host.root()).path();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let entries = json["entries"].as_array_mut().unwrap();
    let attach = entries.iter_mut().find(|e| e["change"]["kind"] == "attach").unwrap();
    attach["change"]["device"] = serde_json::Value::String(device.to_string());
    std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
}

/// Loop devices do not survive a reboot: an abort after one finds the recorded loop device
/// gone (nothing to do) or serving someone else's file (left alone), and completes.
#[test]
fn abort_after_a_reboot_leaves_a_recorded_loop_device_that_is_gone_or_not_ours() {
    let other = tempfile::NamedTempFile::new().unwrap();
    other.as_file().set_len(1024 * 1024).unwrap();
    let others_loop = run(Command::new("losetup").args(["--find", "--show"]).arg(other.path()))
        .trim()
        .to_string();
    let held = std::panic::catch_unwind(|| {
        for recorded in [others_loop.as_str(), "/dev/loop4093"] {
            let host = StageHost::new();
            let before = snapshot(&host);
            run_stage(&host.request(), &mut FixtureSystem::default()).unwrap();
            record_loop_device(&host, recorded);
            stager::abort::abort(&host.root(), &mut FixtureSystem::default()).unwrap();
            assert_restored(&host, &before);
            let listed = run(Command::new("losetup").arg("-a"));
            assert!(
                listed.lines().any(|l| l.starts_with(&format!("{others_loop}:"))),
                "{recorded}: {listed}"
            );
        }
    });
    run(Command::new("losetup").arg("-d").arg(&others_loop));
    held.unwrap();
}
