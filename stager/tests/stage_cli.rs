//! The stager binary end to end on a fixture host (`--root`): stage, status, abort, a
//! failure injected with SWAPOVER_FAIL_AFTER, the hook's exit 3, and the migrator carried
//! as a trailer of the executable itself.

#[path = "stage_support/mod.rs"]
mod stage_support;

use stage_support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn stager_at(
    exe: &Path,
    host: &StageHost,
    args: &[&str],
    env: &[(&str, &str)],
    migrator: Option<&Path>,
) -> Output {
    let mut command = Command::new(exe);
    command.args(args).arg("--root").arg(host.host.root());
    if args[0] == "stage" {
        let sha = sha256_hex(&std::fs::read(host.image()).unwrap());
        command
            .args([
                "--profile",
                "intel-nuc",
                "--no-reboot",
                "--kernel-release",
                KERNEL,
                "--sha256",
                &sha,
            ])
            .arg("--image")
            .arg(host.image())
            .arg("--config")
            .arg(host.input("config.json"));
        if let Some(migrator) = migrator {
            command.arg("--migrator").arg(migrator);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn stager(host: &StageHost, args: &[&str], env: &[(&str, &str)]) -> Output {
    let migrator = host.write_input("migrator", b"\x7fELF pretend migrator");
    stager_at(Path::new(env!("CARGO_BIN_EXE_stager")), host, args, env, Some(&migrator))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn stage_status_abort_through_the_binary() {
    let host = StageHost::new();
    let before = (host.files(), host.disk_guarded(), host.blkid_swap());

    let failed = stager(&host, &["stage"], &[("SWAPOVER_FAIL_AFTER", "write-staging")]);
    assert_eq!(failed.status.code(), Some(2), "{}", text(&failed));
    assert!(
        text(&failed).contains("failed at step write-staging")
            && text(&failed).contains("everything was rolled back"),
        "{}",
        text(&failed)
    );
    assert_eq!((host.files(), host.disk_guarded(), host.blkid_swap()), before);

    let staged = stager(&host, &["stage"], &[]);
    assert_eq!(staged.status.code(), Some(0), "{}", text(&staged));
    assert!(text(&staged).contains("staged and armed"), "{}", text(&staged));
    // Log lines name each step on stderr.
    assert!(
        String::from_utf8_lossy(&staged.stderr).contains("step mkfs: done"),
        "{}",
        text(&staged)
    );

    let status = stager(&host, &["status"], &[]);
    assert_eq!(status.status.code(), Some(0));
    assert!(
        text(&status).contains("Armed: the next boot starts the migration environment"),
        "{}",
        text(&status)
    );
    let json = stager(&host, &["--json", "status"], &[]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["armed"], "Yes");
    assert_eq!(value["schema"], "swapover.status/1");

    let refused = stager(&host, &["stage"], &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused).contains("already staged"));

    let abort = stager(&host, &["abort"], &[]);
    assert_eq!(abort.status.code(), Some(0), "{}", text(&abort));
    assert_eq!((host.files(), host.disk_guarded(), host.blkid_swap()), before);
    let again = stager(&host, &["abort"], &[]);
    assert_eq!(again.status.code(), Some(0));
    assert!(text(&again).contains("nothing is staged"));
    let status = stager(&host, &["status"], &[]);
    assert!(text(&status).contains("Nothing is staged"));
}

#[test]
fn a_hook_saying_not_now_exits_3() {
    let host = StageHost::new();
    let hook = host.write_input("hook.sh", b"#!/bin/sh\nexit 3\n");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let before = (host.files(), host.disk_whole());
    let output = stager(
        &host,
        &["stage", "--backup-hook", hook.to_str().unwrap(), "--backup-hook-arg", "--quick"],
        &[],
    );
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(text(&output).contains("retry later"));
    assert_eq!((host.files(), host.disk_whole()), before);
}

/// `stage --json` prints exactly one document whose `result` and `exit_code` agree with the
/// process's exit code, for each outcome a fleet tool tells apart (docs/fleet-interface.md).
#[test]
fn stage_json_names_each_outcome_with_its_exit_code() {
    let document = |output: &Output| -> serde_json::Value {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "not one JSON line on stdout: {}", text(output));
        let value: serde_json::Value =
            serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {}", text(output)));
        assert_eq!(value["schema"], "swapover.stage/1", "{value}");
        assert_eq!(value["exit_code"].as_i64(), output.status.code().map(i64::from), "{value}");
        value
    };
    let host = StageHost::new();
    let hook = host.write_input("hook.sh", b"#!/bin/sh\nexit 3\n");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let not_now = stager(&host, &["stage", "--json", "--backup-hook", hook.to_str().unwrap()], &[]);
    assert_eq!(not_now.status.code(), Some(3));
    assert_eq!(document(&not_now)["result"], "not_now");

    let failed = stager(&host, &["stage", "--json"], &[("SWAPOVER_FAIL_AFTER", "write-staging")]);
    assert_eq!(failed.status.code(), Some(2));
    let value = document(&failed);
    assert_eq!(value["result"], "failed");
    assert!(value["error"].as_str().unwrap().contains("rolled back"), "{value}");

    let staged = stager(&host, &["stage", "--json"], &[]);
    assert_eq!(staged.status.code(), Some(0), "{}", text(&staged));
    let value = document(&staged);
    assert_eq!(value["result"], "staged", "{value}");
    assert!(value["staging_fs_uuid"].is_string(), "{value}");

    let refused = stager(&host, &["stage", "--json"], &[]);
    assert_eq!(refused.status.code(), Some(1));
    let value = document(&refused);
    assert_eq!(value["result"], "refused");
    assert!(value["error"].as_str().unwrap().contains("already staged"), "{value}");
    // The refusal's two parts, apart, for a fleet tool to show.
    assert!(value["problem"].as_str().unwrap().starts_with("a migration is already staged"));
    assert_eq!(value["fix"], "run `stager status` to see it, or `stager abort` to undo it first");
    assert!(failed_has_no_parts(&document(&failed)), "a failure is not a refusal: no problem/fix");
    assert_eq!(stager(&host, &["abort"], &[]).status.code(), Some(0));
}

fn failed_has_no_parts(value: &serde_json::Value) -> bool {
    value.get("problem").is_none() && value.get("fix").is_none()
}

/// A copy of the stager binary with `migrator` appended the way package-stager.sh does.
fn packaged(dir: &Path, migrator: &[u8], corrupt: bool) -> PathBuf {
    let exe = dir.join(if corrupt { "stager-corrupt" } else { "stager-packaged" });
    let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_stager")).unwrap();
    bytes.extend_from_slice(migrator);
    bytes.extend_from_slice(&stager::migrator_payload::trailer(migrator));
    if corrupt {
        let at = bytes.len() - stager::migrator_payload::TRAILER_BYTES as usize - 1;
        bytes[at] ^= 0x55;
    }
    std::fs::write(&exe, bytes).unwrap();
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    exe
}

#[test]
fn the_migrator_comes_from_the_executable_trailer() {
    let host = StageHost::new();
    let migrator = b"\x7fELF migrator carried in the trailer".to_vec();
    let good = packaged(host.inputs.path(), &migrator, false);
    let output = stager_at(&good, &host, &["stage"], &[], None);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    // The staged initramfs' /init is exactly the carried migrator.
    let state = stager::state::StateStore::new(&host.root()).load().unwrap().unwrap();
    let mut system = stager::stage::engine::system::FixtureSystem::default();
    use stager::stage::engine::system::System;
    let (device, loop_device) = system.attach(&state.staging).unwrap();
    let mount = tempfile::tempdir().unwrap();
    system.mount(&device, mount.path(), true).unwrap();
    let extract = tempfile::tempdir().unwrap();
    let script = format!(
        "(xz -dc '{0}' 2>/dev/null || gzip -dc '{0}') | cpio -id --quiet init",
        mount.path().join("swapover/initramfs.img").display()
    );
    let ok = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(extract.path())
        .status()
        .unwrap()
        .success();
    system.unmount(mount.path()).unwrap();
    system.detach(&loop_device.unwrap()).unwrap();
    assert!(ok);
    assert_eq!(std::fs::read(extract.path().join("init")).unwrap(), migrator);
    assert_eq!(stager_at(&good, &host, &["abort"], &[], None).status.code(), Some(0));

    let corrupt = packaged(host.inputs.path(), &migrator, true);
    let output = stager_at(&corrupt, &host, &["stage"], &[], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output).contains("is corrupt") && text(&output).contains("download the stager again"),
        "{}",
        text(&output)
    );
    let plain = stager_at(Path::new(env!("CARGO_BIN_EXE_stager")), &host, &["stage"], &[], None);
    assert_eq!(plain.status.code(), Some(2));
    assert!(
        text(&plain).contains("carries no migrator") && text(&plain).contains("--migrator"),
        "{}",
        text(&plain)
    );
}
