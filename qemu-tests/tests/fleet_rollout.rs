//! The fleet rollout (issue 17), for real: fleet/site.yml run by the real ansible-playbook
//! (fleet/install.sh's venv) drives three QEMU legacy hosts over real SSH (dropbear, QEMU user
//! networking), registers them with an HTTPS resin API stand-in on loopback, and writes the
//! report this test reads:
//! - `a-fails-check`: its swap signature was wiped: preflight refuses it, naming the failed
//!   check and its fix; it is never staged (its VM is stopped after the preflight);
//! - `c-migrates` (the canary): staged, reboots into the migration, becomes the resinOS
//!   stand-in, which checks in to the API stand-in over HTTPS with its config.json's uuid and
//!   key: reported migrated;
//! - `b-broken-env`: its backup hook says "not now" the first time (the rollout records it and
//!   goes on); the re-run stages it again, with a migration environment that cannot boot (its
//!   /init is not a program): GRUB's one-shot is spent, the kernel panics, the old OS comes
//!   back, and the watch reports it came back, with `stager status`'s reason.
//!
//! The re-run also shows that a migrated device is never touched again.

use qemu_tests::e2e::{self, PROFILE};
use qemu_tests::fleet::{self, ApiStandin, FleetResinImage, Pki, ReportRow, SSH_UP_MARKER};
use qemu_tests::host_image::{HostImage, SWAP_UUID};
use qemu_tests::kernel::TestKernel;
use qemu_tests::paths;
use qemu_tests::payload::Payload;
use qemu_tests::qemu::{Drive, Vm, VmConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PROVISIONING_KEY: &str = "fleet-test-provisioning-key-5f1d";
const APP_ID: &str = "1234567";

struct Host {
    name: &'static str,
    vm: Vm,
}

fn start_host(
    name: &'static str,
    extra_sh: &str,
    image: &FleetResinImage,
    key: &str,
    with_image: bool,
    port: u16,
) -> anyhow::Result<Host> {
    let host = HostImage::ensure()?;
    let kernel = TestKernel::locate()?;
    let disk = host.fresh_copy(&format!("fleet-{name}"))?;
    let payload = Payload::new(&format!("fleet-{name}"), "")?;
    let ssh = fleet::add_ssh_server(&payload, &kernel, key)?;
    payload.add_bytes("run.sh", format!("{extra_sh}\n{ssh}").as_bytes(), 0o755)?;
    if with_image {
        payload.add_file("resinos.img.xz", &image.xz, 0o644)?;
    }
    // A migration environment that cannot start: its /init is an ELF header and nothing else.
    payload.add_bytes("broken-migrator", b"\x7fELF\x02\x01\x01 not a program", 0o755)?;
    // A backup hook that says "not now" (exit 3) the first time it is asked, then "go".
    payload.add_bytes(
        "not-now-once",
        b"#!/bin/sh\n[ -e /var/lib/fleet-hook-asked ] && exit 0\ntouch /var/lib/fleet-hook-asked; sync; exit 3\n",
        0o755,
    )?;
    let payload_disk = payload.build()?;
    let mut vm = Vm::start(&VmConfig {
        nic: Some(fleet::user_nic(port)),
        ..VmConfig::new(
            &format!("fleet_rollout-{name}"),
            vec![Drive::ide(&disk), Drive::ide(&payload_disk)],
        )
    })?;
    vm.wait_for(SSH_UP_MARKER, Duration::from_secs(240))?;
    Ok(Host { name, vm })
}

fn inventory(
    dir: &Path,
    hosts: &[(&str, u16, &str)],
    key: &Path,
    api: &ApiStandin,
    pki: &Pki,
    image: &FleetResinImage,
) -> anyhow::Result<PathBuf> {
    let mut text = String::from("all:\n  children:\n    swapover_devices:\n      hosts:\n");
    for (name, port, stage_args) in hosts {
        text += &format!(
            "        {name}:\n          ansible_port: {port}\n          swapover_stage_args: \"{stage_args}\"\n"
        );
    }
    text += &format!(
        "      vars:\n        ansible_host: 127.0.0.1\n        ansible_user: root\n        ansible_ssh_private_key_file: {key}\n\
         \x20       ansible_ssh_common_args: \"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR\"\n\
         \x20       swapover_state_dir: {state}\n        swapover_stager: {stager}\n        swapover_profile: {PROFILE}\n\
         \x20       swapover_image: /run/payload/resinos.img.xz\n        swapover_image_sha256: {sha}\n\
         \x20       swapover_api: {api}\n        swapover_device_api: {device_api}\n        swapover_api_ca: {ca}\n\
         \x20       swapover_app_id: {APP_ID}\n        swapover_user_id: 42\n        swapover_watch_timeout: 600\n        swapover_stage_timeout: 600\n",
        key = key.display(),
        state = dir.join("state").display(),
        stager = e2e::packaged_stager()?.display(),
        sha = image.xz_sha256,
        api = api.url(),
        device_api = api.url_from_guest(),
        ca = pki.ca.display(),
    );
    let path = dir.join("inventory.yml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Runs the playbook with `args`; returns its exit code (its output goes to a log file).
fn playbook(
    ansible: &Path,
    inventory: &Path,
    dir: &Path,
    run: &str,
    args: &[&str],
) -> anyhow::Result<i32> {
    let started = Instant::now();
    let log = dir.join(format!("ansible-{run}.log"));
    let out = std::fs::File::create(&log)?;
    let status = Command::new(ansible)
        .arg("-i")
        .arg(inventory)
        .arg(paths::workspace_root().join("fleet/site.yml"))
        .args(args)
        .env("SWAPOVER_PROVISIONING_KEY", PROVISIONING_KEY)
        .env("ANSIBLE_CONFIG", paths::workspace_root().join("fleet/ansible.cfg"))
        .env("ANSIBLE_NOCOLOR", "1")
        .current_dir(paths::workspace_root().join("fleet"))
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()?;
    let text = std::fs::read_to_string(&log)?;
    assert!(
        !text.contains(PROVISIONING_KEY),
        "the provisioning key is in the Ansible log {}",
        log.display()
    );
    eprintln!(
        "[fleet] ansible-playbook {run} ({args:?}) exit {:?} after {:.0}s (log {})",
        status.code(),
        started.elapsed().as_secs_f64(),
        log.display()
    );
    Ok(status.code().unwrap_or(-1))
}

fn row<'a>(rows: &'a [ReportRow], host: &str) -> &'a ReportRow {
    rows.iter()
        .find(|r| r.host == host)
        .unwrap_or_else(|| panic!("no report row for {host}: {rows:?}"))
}

#[test]
fn ansible_rolls_out_to_three_legacy_hosts_and_reports_each() -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = paths::artifacts_dir().join("runs").join("fleet_rollout");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let ansible = fleet::ansible_playbook()?;
    let pki = Pki::create(&paths::images_dir().join("fleet-pki"))?;
    let api = ApiStandin::start(&pki, PROVISIONING_KEY, &dir)?;
    let image = FleetResinImage::ensure(&pki.ca)?;
    let (key, public) = fleet::ssh_keypair(&dir.join("ssh"))?;
    eprintln!("[fleet] harness ready after {:.0}s", started.elapsed().as_secs_f64());

    // Preflight, with at most two VMs at a time: the device that fails a check alone first
    // (`--limit`), then the other two. The inventory names all three from the start.
    let wipe_swap = format!(
        "swapoff -a; dd if=/dev/zero of=\"$(findfs UUID={SWAP_UUID})\" bs=4096 count=1 conv=notrunc 2>/dev/null; sync"
    );
    let [a_port, b_port, c_port] = fleet::free_ports::<3>()?;
    let b_args = "--backup-hook /run/payload/not-now-once --migrator /run/payload/broken-migrator";
    let inv = inventory(
        &dir,
        &[
            ("c-migrates", c_port, ""),
            ("b-broken-env", b_port, b_args),
            ("a-fails-check", a_port, ""),
        ],
        &key,
        &api,
        &pki,
        &image,
    )?;
    let report = dir.join("state/report.csv");
    let mut a = start_host("a-fails-check", &wipe_swap, &image, &public, false, a_port)?;
    let args = ["--tags", "preflight", "--limit", "a-fails-check"];
    assert_eq!(playbook(&ansible, &inv, &dir, "1a-preflight", &args)?, 0);
    // The refused device is done with.
    a.vm.power_cut()?;
    let mut c = start_host("c-migrates", "", &image, &public, true, c_port)?;
    let b = start_host("b-broken-env", "", &image, &public, true, b_port)?;
    let args = ["--tags", "preflight", "--limit", "c-migrates,b-broken-env"];
    assert_eq!(playbook(&ansible, &inv, &dir, "1b-preflight", &args)?, 0);
    let rows = fleet::read_report(&report)?;
    eprintln!("[fleet] after preflight: {rows:#?}");
    let refused = row(&rows, "a-fails-check");
    assert_eq!(
        (refused.phase.as_str(), refused.result.as_str()),
        ("preflight", "refused"),
        "{refused:?}"
    );
    assert!(refused.reason.contains("swap"), "the failed check is not named: {refused:?}");
    assert!(!refused.fix.is_empty(), "no fix for the failed check: {refused:?}");
    for host in ["b-broken-env", "c-migrates"] {
        assert_eq!(row(&rows, host).result, "ready", "{:?}", row(&rows, host));
    }
    assert!(
        api.state()?["devices"].as_object().is_some_and(|d| d.is_empty()),
        "preflight registered a device"
    );

    // Rollout + watch: canary c migrates; b's hook says not now.
    let waves = r#"{"swapover_waves": [1, "100%"]}"#;
    let code =
        playbook(&ansible, &inv, &dir, "2-rollout", &["--tags", "rollout,watch", "-e", waves])?;
    let rows = fleet::read_report(&report)?;
    eprintln!("[fleet] after the first rollout: {rows:#?}");
    assert_eq!(code, 0, "the first rollout failed: {rows:#?}");
    let migrated = row(&rows, "c-migrates");
    assert_eq!(
        (migrated.phase.as_str(), migrated.result.as_str()),
        ("watch", "migrated"),
        "{migrated:?}"
    );
    let api_state = api.state()?;
    let device = &api_state["devices"][&migrated.uuid];
    assert_eq!(device["is_online"], true, "{api_state:#}");
    assert!(device["os_version"].as_str().is_some_and(|v| v.contains(" 2.")), "{device}");
    assert_eq!(device["application"].to_string(), APP_ID);
    let checkin = c.vm.wait_for(fleet::CHECKIN_MARKER, Duration::from_secs(5))?;
    assert!(checkin.contains("status=200"), "{checkin}");
    let not_now = row(&rows, "b-broken-env");
    assert_eq!(
        (not_now.phase.as_str(), not_now.result.as_str()),
        ("rollout", "not_now"),
        "{not_now:?}"
    );
    assert_eq!(row(&rows, "a-fails-check").result, "refused");

    // Re-run: c is skipped (its VM is resinOS now, without the old SSH), b is retried and its
    // migration environment fails to boot: it comes back to the old OS.
    let _ = c.vm.wait_exit(Duration::from_secs(60));
    let code =
        playbook(&ansible, &inv, &dir, "3-rerun", &["--tags", "rollout,watch", "-e", waves])?;
    let rows = fleet::read_report(&report)?;
    eprintln!("[fleet] after the re-run: {rows:#?}");
    assert_ne!(code, 0, "a device that came back must fail the run");
    let back = row(&rows, "b-broken-env");
    assert_eq!((back.phase.as_str(), back.result.as_str()), ("watch", "came_back"), "{back:?}");
    assert!(back.reason.contains("old OS"), "{back:?}");
    assert!(!back.fix.is_empty(), "{back:?}");
    assert!(
        b.vm.console_text().contains("Kernel panic"),
        "b's migration environment did not fail to boot (see {})",
        b.vm.log_path().display()
    );
    let again = row(&rows, "c-migrates");
    assert_eq!(
        (again.result.as_str(), again.uuid.as_str()),
        ("migrated", migrated.uuid.as_str()),
        "the migrated device was touched again"
    );
    let api_state = api.state()?;
    assert_eq!(api_state["devices"][&back.uuid]["is_online"], false, "{api_state:#}");
    assert_eq!(
        api_state["devices"].as_object().map(|d| d.len()),
        Some(2),
        "registrations: {api_state:#}"
    );
    let md = std::fs::read_to_string(dir.join("state/report.md"))?;
    for host in ["a-fails-check", "b-broken-env", "c-migrates"] {
        assert!(
            md.lines().any(|l| l.starts_with(&format!("| {host} |"))),
            "{host} missing in report.md:\n{md}"
        );
    }
    eprintln!("[fleet] report.md:\n{md}");
    for h in [&a, &b, &c] {
        eprintln!("[fleet] {} console: {}", h.name, h.vm.log_path().display());
    }
    eprintln!("[timing] fleet_rollout took {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}
