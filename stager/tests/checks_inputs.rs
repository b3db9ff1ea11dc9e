//! `stager check --profile --image --config` through the binary, on the fixture host of the
//! staging tests (a real sfdisk/mkfs/mkswap disk image and an xz resinOS-like image): the
//! image, config.json and staging-plan checks come from `stage`'s own planning rules.

#[path = "stage_support/mod.rs"]
mod stage_support;

use serde_json::Value;
use stage_support::*;
use std::path::Path;
use std::process::{Command, Output};

fn check(host: &StageHost, image: &Path, config: &Path, extra: &[&str]) -> Output {
    let migrator = host.write_input("migrator", b"\x7fELF pretend migrator");
    Command::new(env!("CARGO_BIN_EXE_stager"))
        .arg("check")
        .arg("--root")
        .arg(host.host.root())
        .args(["--profile", "intel-nuc", "--kernel-release", KERNEL])
        .arg("--migrator")
        .arg(&migrator)
        .arg("--image")
        .arg(image)
        .arg("--config")
        .arg(config)
        .args(extra)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The checks of a `--json` run, by id: (status, reason).
fn by_id(output: &Output) -> std::collections::BTreeMap<String, (String, String)> {
    let value: Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(output)));
    value["report"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                (
                    c["status"].as_str().unwrap().to_string(),
                    c["reason"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

fn failed(output: &Output) -> Vec<String> {
    by_id(output)
        .into_iter()
        .filter(|(_, (status, _))| status == "fail")
        .map(|(id, _)| id)
        .collect()
}

#[test]
fn a_matching_image_and_config_pass_every_check() {
    let host = StageHost::new();
    let before = (host.files(), host.disk_whole());
    let output = check(&host, &host.image(), &host.input("config.json"), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let out = text(&output);
    for id in [
        "profile",
        "image",
        "image-device-type",
        "image-layout",
        "config-json",
        "staging-plan",
        "swap-size",
        "root-space",
    ] {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(id))
            .unwrap_or_else(|| panic!("{id} missing: {out}"));
        assert!(line.starts_with("PASS"), "{line}\n{out}");
    }
    // Sizes come from the image and the plan, not "not evaluated".
    assert!(!out.contains("not evaluated"), "{out}");
    assert!(out.contains("staging needs"), "{out}");

    let json = check(&host, &host.image(), &host.input("config.json"), &["--json"]);
    assert_eq!(json.status.code(), Some(0), "{}", text(&json));
    let checks = by_id(&json);
    assert!(checks.values().all(|(status, _)| status != "fail"), "{checks:?}");
    assert_eq!(checks["image-device-type"].0, "pass");
    // check changes nothing.
    assert_eq!((host.files(), host.disk_whole()), before);
}

#[test]
fn an_image_of_another_device_type_fails_image_device_type() {
    let host = StageHost::new();
    let image = host
        .make_image("rpi.img", &ImageSpec { slug: Some("raspberrypi3"), ..ImageSpec::default() });
    let output = check(&host, &image, &host.input("config.json"), &["--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let checks = by_id(&output);
    let (status, reason) = &checks["image-device-type"];
    assert_eq!(status, "fail");
    assert!(
        reason.contains("the image is for device type raspberrypi3, the profile is for intel-nuc"),
        "{reason}"
    );
    assert!(!reason.contains('\n'), "{reason}");
    // The layout itself is fine: only the device type (and the plan that stage would refuse) fail.
    assert_eq!(checks["image-layout"].0, "pass");
    assert_eq!(failed(&output), ["image-device-type", "staging-plan"]);
    // In text: the fix names the image to download.
    let plain = check(&host, &image, &host.input("config.json"), &[]);
    assert_eq!(plain.status.code(), Some(1));
    assert!(text(&plain).contains("fix:    download the intel-nuc image"), "{}", text(&plain));
}

#[test]
fn an_image_larger_than_the_old_root_fails_root_space() {
    let host = StageHost::new();
    let image = host.make_image("big.img", &ImageSpec { total_mib: 120, ..ImageSpec::default() });
    let output = check(&host, &image, &host.input("config.json"), &["--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let checks = by_id(&output);
    let (status, reason) = &checks["root-space"];
    assert_eq!(status, "fail");
    assert!(reason.contains("the new layout needs 120.0 MiB"), "{reason}");
    assert!(!reason.contains('\n'));
    let (_, plan) = &checks["staging-plan"];
    assert!(plan.contains("does not fit the old root's space"), "{plan}");
    assert_eq!(failed(&output), ["root-space", "staging-plan"]);
}

#[test]
fn a_gpt_image_fails_the_image_check() {
    let host = StageHost::new();
    let image = host.make_image("gpt.img", &ImageSpec { gpt: true, ..ImageSpec::default() });
    let output = check(&host, &image, &host.input("config.json"), &["--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let checks = by_id(&output);
    assert_eq!(checks["image"].0, "fail");
    assert!(
        checks["image"].1.contains("GPT partition table but the profile expects MBR"),
        "{:?}",
        checks["image"]
    );
}

#[test]
fn an_image_file_larger_than_the_swap_fails_swap_size() {
    let host = StageHost::new();
    // A 100 MiB layout fits the old root (which ends at 101 MiB), but the uncompressed image
    // file is 150 MiB long: with kernel, initramfs and margin it needs more than the 154 MiB
    // swap partition holds.
    host.make_image("long.img", &ImageSpec { total_mib: 100, ..ImageSpec::default() });
    let raw = host.input("long.img");
    std::fs::OpenOptions::new().write(true).open(&raw).unwrap().set_len(150 * 1024 * 1024).unwrap();
    let output = check(&host, &raw, &host.input("config.json"), &["--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let checks = by_id(&output);
    let (status, reason) = &checks["swap-size"];
    assert_eq!(status, "fail", "{checks:?}");
    assert!(reason.contains("staging needs"), "{reason}");
    assert_eq!(checks["root-space"].0, "pass", "{checks:?}");
    assert!(
        checks["staging-plan"]
            .1
            .contains("the swap partition /dev/sda5 is 154 MiB but staging needs"),
        "{:?}",
        checks["staging-plan"]
    );
    assert_eq!(failed(&output), ["staging-plan", "swap-size"]);
}

#[test]
fn an_invalid_or_foreign_config_json_fails_config_json() {
    let host = StageHost::new();
    let broken = host.write_input("broken.json", b"{\"deviceType\": ");
    let output = check(&host, &host.image(), &broken, &["--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let checks = by_id(&output);
    assert_eq!(checks["config-json"].0, "fail");
    assert!(checks["config-json"].1.contains("is not valid JSON"), "{:?}", checks["config-json"]);
    assert!(failed(&output).contains(&"config-json".to_string()));

    let foreign = host.write_input("rpi.json", br#"{"deviceType":"raspberrypi3"}"#);
    let output = check(&host, &host.image(), &foreign, &["--json"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(by_id(&output)["config-json"]
        .1
        .contains("is for device type raspberrypi3, the profile is for intel-nuc"));
}

#[test]
fn the_profile_sets_the_boot_mode_and_an_unknown_profile_is_an_error() {
    let host = StageHost::new();
    std::fs::create_dir_all(host.host.path("/sys/firmware/efi")).unwrap();
    let output = check(&host, &host.image(), &host.input("config.json"), &["--json"]);
    assert_eq!(output.status.code(), Some(1));
    let checks = by_id(&output);
    assert_eq!(checks["boot-mode"].0, "fail", "{checks:?}");

    let unknown = Command::new(env!("CARGO_BIN_EXE_stager"))
        .arg("check")
        .arg("--root")
        .arg(host.host.root())
        .args(["--profile", "no-such-board"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("unknown profile 'no-such-board'") && stderr.contains("intel-nuc"),
        "{stderr}"
    );
}

#[test]
fn without_an_image_the_profile_layout_is_an_estimate_that_only_warns() {
    let host = StageHost::new();
    let output = Command::new(env!("CARGO_BIN_EXE_stager"))
        .arg("check")
        .arg("--root")
        .arg(host.host.root())
        .args(["--profile", "intel-nuc", "--json"])
        .output()
        .unwrap();
    let checks = by_id(&output);
    // The fixture's 100 MiB root is far below intel-nuc's typical ~950 MiB layout.
    assert_eq!(checks["root-space"].0, "warn", "{checks:?}");
    assert!(checks["root-space"].1.contains("typical layout"), "{:?}", checks["root-space"]);
    // 256 MiB disk, 1024 MiB profile minimum disk: a warning, as stage does not enforce it.
    assert_eq!(checks["profile-disk"].0, "warn");
    assert_eq!(checks["staging-plan"].0, "warn");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
}
