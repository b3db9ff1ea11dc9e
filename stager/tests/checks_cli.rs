//! The `stager` binary: `check` end to end on fixture roots, `--json`, exit codes, and the
//! usage errors. (`profiles` and check with --profile/--image/--config: cli_profiles.rs, checks_inputs.rs.)

#[path = "fixtures/fixture_host.rs"]
mod fixture_host;

use fixture_host::FixtureHost;
use serde_json::Value;
use std::process::{Command, Output};

const ALL_IDS: [&str; 18] = [
    "root-user",
    "os-release",
    "architecture",
    "boot-mode",
    "grub2",
    "grub-next-entry",
    "grub-entry-route",
    "root-partition",
    "root-storage",
    "boot-writable",
    "swap-partition",
    "same-disk",
    "swap-signature",
    "swap-fstab",
    "swap-resume",
    "swap-size",
    "memory-without-swap",
    "root-space",
];

fn stager(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stager")).args(args).output().expect("run stager")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn check_with_limits(host: &FixtureHost, extra: &[&str]) -> Output {
    let root = host.root().to_str().unwrap().to_string();
    let mut args = vec![
        "check",
        "--root",
        &root,
        "--expect-boot-mode",
        "bios",
        "--swap-needed",
        "16MiB",
        "--min-memory",
        "256MiB",
        "--target-size",
        "40MiB",
    ];
    args.extend_from_slice(extra);
    stager(&args)
}

#[test]
fn check_prints_every_check_and_exits_0_on_a_good_host() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    let output = check_with_limits(&host, &[]);
    let text = stdout(&output);
    for id in ALL_IDS {
        assert!(text.contains(&format!(" {id} ")), "{id} missing from:\n{text}");
    }
    if running_as_root() {
        assert_eq!(output.status.code(), Some(0), "{text}");
        assert!(text.contains("18 passed, 0 warnings, 0 failed: staging may proceed."), "{text}");
    } else {
        assert_eq!(output.status.code(), Some(1), "{text}");
        assert!(text.contains("FAIL  root-user"), "{text}");
    }
}

#[test]
fn check_json_carries_report_and_facts() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    let output = check_with_limits(&host, &["--json"]);
    let document: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(document["schema"], "swapover.check/1");
    let checks = document["report"]["checks"].as_array().unwrap();
    let ids: Vec<&str> = checks.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ALL_IDS);
    for check in checks {
        assert!(["pass", "warn", "fail"].contains(&check["status"].as_str().unwrap()));
    }
    assert_eq!(document["report"]["may_proceed"], Value::Bool(running_as_root()));
    assert_eq!(document["facts"]["swap_header"]["Ok"]["uuid"], fixture_host::SWAP_UUID);
    assert_eq!(document["facts"]["root_disk"]["Ok"]["table"]["disk_signature"], "1234abcd");
    assert_eq!(document["inputs"]["needed_swap"], 16 * 1024 * 1024);
}

#[test]
fn check_exits_1_with_reason_and_fix_when_swap_is_a_file() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    host.copy_fixture("/proc/swaps", "swaps/ubuntu-22.04-file");
    let output = check_with_limits(&host, &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let block: Vec<&str> =
        text.lines().skip_while(|l| !l.starts_with("FAIL  swap-partition")).take(4).collect();
    assert!(block[1].contains("found:  only swap files are active (/swapfile)"), "{text}");
    assert!(block[2].starts_with("      reason: "), "{text}");
    assert!(block[3].starts_with("      fix:    "), "{text}");
    assert!(text.contains("staging may NOT proceed"));
}

#[test]
fn check_without_requirements_warns_that_they_were_not_evaluated() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    let output = stager(&["check", "--root", host.root().to_str().unwrap()]);
    let text = stdout(&output);
    assert_eq!(text.matches("reason: not evaluated").count(), 4, "{text}");
    assert_eq!(output.status.code(), Some(if running_as_root() { 0 } else { 1 }));
}

#[test]
fn sizes_are_validated_by_the_parser() {
    let output = stager(&["check", "--swap-needed", "2GB"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown size unit"));
}

#[test]
fn stage_names_missing_options() {
    // A missing required option is a usage error that names it.
    let output = stager(&["stage", "--image", "x.img", "--config", "c.json"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--profile"));
}

#[test]
fn help_explains_each_command_and_what_it_changes() {
    let top = stdout(&stager(&["--help"]));
    for command in ["check", "stage", "status", "abort", "profiles"] {
        assert!(top.contains(command), "{top}");
    }
    assert!(top.contains("--json"));
    let check = stdout(&stager(&["check", "--help"]));
    assert!(check.contains("Changes nothing") && check.contains("Exit code"), "{check}");
    assert!(!check.contains("--root"), "--root is for tests and stays hidden");
    let stage = stdout(&stager(&["stage", "--help"]));
    for option in [
        "--profile",
        "--image",
        "--sha256",
        "--config",
        "--backup",
        "--backup-hook",
        "--dry-run",
        "--no-reboot",
        "--ca-cert",
    ] {
        assert!(stage.contains(option), "{option} missing from:\n{stage}");
    }
    assert!(stage.contains("rolls") && stage.contains("changes nothing"), "{stage}");
}
