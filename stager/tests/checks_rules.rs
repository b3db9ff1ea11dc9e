//! Each check on whole fixture hosts: the legacy host passes, and each defect fails (or
//! warns) the check it should, with what was found and a fix.

#[path = "fixtures/fixture_host.rs"]
mod fixture_host;

use board_profiles::BootMode;
use fixture_host::{FixtureHost, ROOT_SECTORS, ROOT_START, SECTOR, SWAP_SECTORS, SWAP_START};
use plan::Bytes;
use stager::checks::{profile_memory, run, run_all, CheckId, CheckInputs, CheckReport, Status};
use stager::host::facts::{gather_with, HostFacts, ProcessFacts};
use stager::host::HostRoot;

fn process() -> ProcessFacts {
    ProcessFacts { euid: 0, arch: "x86_64".to_string(), search_path: None }
}

fn facts_of(host: &FixtureHost) -> HostFacts {
    gather_with(&HostRoot::new(host.root()), process())
}

fn swap_partition_size() -> Bytes {
    Bytes(SWAP_SECTORS * SECTOR)
}

fn root_space() -> Bytes {
    Bytes((ROOT_START + ROOT_SECTORS) * SECTOR)
}

/// Requirements the legacy fixture meets exactly at the limits.
fn inputs_at_the_limits(facts: &HostFacts) -> CheckInputs {
    CheckInputs {
        expected_boot_mode: Some(BootMode::Bios),
        needed_swap: Some(swap_partition_size()),
        min_memory: Some(facts.memory.as_ref().unwrap().available_without_swap()),
        target_layout_size: Some(root_space()),
    }
}

fn failed(report: &CheckReport) -> Vec<CheckId> {
    report.checks.iter().filter(|c| c.status == Status::Fail).map(|c| c.id).collect()
}

#[test]
fn the_legacy_host_passes_every_check_at_the_limits() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    let facts = facts_of(&host);
    let report = run_all(&facts, &inputs_at_the_limits(&facts));
    assert_eq!(report.checks.len(), CheckId::ALL.len());
    for check in &report.checks {
        assert_eq!(check.status, Status::Pass, "{check:?}");
        assert_eq!(check.fix, None);
        assert!(!check.found.is_empty() && !check.reason.is_empty());
    }
    assert!(report.may_proceed);
    assert!(report.get(CheckId::SwapSignature).unwrap().found.contains(fixture_host::SWAP_UUID));
    assert!(report.get(CheckId::RootPartition).unwrap().found.contains("1234abcd-01"));
}

#[test]
fn one_byte_over_each_limit_fails_that_check_only() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    let facts = facts_of(&host);
    let limits = inputs_at_the_limits(&facts);
    let one_more = |b: Option<Bytes>| b.map(|b| Bytes(b.get() + 1));
    for (id, inputs) in [
        (
            CheckId::SwapSize,
            CheckInputs { needed_swap: one_more(limits.needed_swap), ..limits.clone() },
        ),
        (
            CheckId::MemoryWithoutSwap,
            CheckInputs { min_memory: one_more(limits.min_memory), ..limits.clone() },
        ),
        (
            CheckId::RootSpace,
            CheckInputs {
                target_layout_size: one_more(limits.target_layout_size),
                ..limits.clone()
            },
        ),
        (
            CheckId::BootMode,
            CheckInputs { expected_boot_mode: Some(BootMode::Uefi), ..limits.clone() },
        ),
    ] {
        let report = run_all(&facts, &inputs);
        assert_eq!(failed(&report), vec![id]);
        let check = report.get(id).unwrap();
        assert!(check.fix.as_deref().is_some_and(|f| !f.is_empty()), "{check:?}");
        assert!(!report.may_proceed);
    }
}

#[test]
fn memory_check_counts_swap_in_use() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    let facts = facts_of(&host);
    let memory = facts.memory.as_ref().unwrap();
    assert!(memory.swap_used() > Bytes(0));
    // Enough if swap were ignored, too little once swapped pages come back.
    let check = run(
        CheckId::MemoryWithoutSwap,
        &facts,
        &CheckInputs { min_memory: Some(memory.available), ..Default::default() },
    );
    assert_eq!(check.status, Status::Fail);
    assert!(check.found.contains("swap in use"), "{}", check.found);
}

/// MemTotal against the profile's minimum: the fixture's 2048316 kB (2000.3 MiB) meets
/// 2000 MiB and fails 2001 MiB, whatever is available.
#[test]
fn memory_total_against_the_profile_minimum() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    let facts = facts_of(&host);
    assert_eq!(facts.memory.as_ref().unwrap().total, Bytes(2048316 * 1024));
    let enough = profile_memory(&facts, "some-board", 2000);
    assert_eq!(enough.status, Status::Pass, "{enough:?}");
    let short = profile_memory(&facts, "some-board", 2001);
    assert_eq!(short.status, Status::Fail);
    assert_eq!(short.id, CheckId::ProfileMemory);
    assert_eq!(short.found, "MemTotal is 2.0 GiB (2048316 kB)");
    assert_eq!(
        short.reason,
        "profile some-board requires at least 2.0 GiB of RAM (requirements.min_ram_mib = 2001)"
    );
    assert_eq!(
        short.fix.as_deref(),
        Some(
            "migrate a device with at least 2.0 GiB of RAM, or use the profile made for this board"
        )
    );
    host.write("/proc/meminfo", "MemFree: 1 kB\n");
    let unreadable = profile_memory(&facts_of(&host), "some-board", 1);
    assert_eq!(unreadable.status, Status::Fail, "{unreadable:?}");
}

#[test]
fn unknown_requirements_warn_without_blocking() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    let report = run_all(&facts_of(&host), &CheckInputs::default());
    let warned: Vec<CheckId> =
        report.checks.iter().filter(|c| c.status == Status::Warn).map(|c| c.id).collect();
    assert_eq!(
        warned,
        vec![CheckId::BootMode, CheckId::SwapSize, CheckId::MemoryWithoutSwap, CheckId::RootSpace]
    );
    assert!(report.may_proceed);
    assert!(report.get(CheckId::SwapSize).unwrap().reason.starts_with("not evaluated"));
}

#[test]
fn not_root_and_not_x86_64() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    let root = HostRoot::new(host.root());
    let user = gather_with(&root, ProcessFacts { euid: 1000, ..process() });
    let check = run(CheckId::RootUser, &user, &CheckInputs::default());
    assert_eq!(check.status, Status::Fail);
    assert_eq!(check.found, "effective user id 1000");
    assert!(check.fix.unwrap().contains("sudo"));
    let arm = gather_with(&root, ProcessFacts { arch: "aarch64".into(), ..process() });
    assert_eq!(run(CheckId::Architecture, &arm, &CheckInputs::default()).status, Status::Fail);
}

#[test]
fn os_releases() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    for (fixture, status) in [
        ("ubuntu-12.04", Status::Fail),
        ("ubuntu-14.04", Status::Pass),
        ("ubuntu-16.04", Status::Pass),
        ("ubuntu-18.04", Status::Pass),
        ("ubuntu-20.04", Status::Pass),
        ("ubuntu-22.04", Status::Pass),
        ("debian-12", Status::Warn),
        ("linuxmint-21", Status::Warn),
        ("fedora-39", Status::Fail),
    ] {
        host.copy_fixture("/etc/os-release", &format!("os-release/{fixture}"));
        let check = run(CheckId::OsRelease, &facts_of(&host), &CheckInputs::default());
        assert_eq!(check.status, status, "{fixture}: {check:?}");
    }
    host.remove("/etc/os-release");
    let check = run(CheckId::OsRelease, &facts_of(&host), &CheckInputs::default());
    assert_eq!(check.status, Status::Fail);
    assert!(check.found.contains("os-release"));
}

#[test]
fn grub_problems() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    host.copy_fixture("/boot/grub/grub.cfg", "grub/hand-written-no-next-entry.cfg");
    let report = run_all(&facts_of(&host), &CheckInputs::default());
    assert_eq!(failed(&report), vec![CheckId::GrubNextEntry, CheckId::GrubEntryRoute]);
    assert!(report
        .get(CheckId::GrubNextEntry)
        .unwrap()
        .fix
        .as_deref()
        .unwrap()
        .contains("update-grub"));
    // 40_custom plus update-grub is the other way to reach the new entry.
    host.write("/etc/grub.d/40_custom", "#!/bin/sh\nexec tail -n +3 $0\n");
    host.symlink("/usr/sbin/update-grub", "/usr/sbin/update-grub");
    let check = run(CheckId::GrubEntryRoute, &facts_of(&host), &CheckInputs::default());
    assert_eq!(check.status, Status::Pass, "{check:?}");
    assert!(check.found.contains("/etc/grub.d/40_custom and /usr/sbin/update-grub"));

    host.remove("/usr/bin/grub-editenv");
    let check = run(CheckId::Grub2, &facts_of(&host), &CheckInputs::default());
    assert_eq!(check.status, Status::Fail);
    assert!(check.fix.unwrap().contains("grub-common"));

    host.remove("/boot/grub/grub.cfg");
    host.write(
        "/boot/grub/menu.lst",
        "default 0\ntimeout 3\ntitle Ubuntu\nroot (hd0,0)\nkernel /boot/vmlinuz root=/dev/sda1\n",
    );
    let check = run(CheckId::Grub2, &facts_of(&host), &CheckInputs::default());
    assert_eq!(check.status, Status::Fail);
    assert!(check.found.contains("GRUB legacy"));
}

#[test]
fn swap_file_instead_of_a_partition() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    host.copy_fixture("/proc/swaps", "swaps/ubuntu-22.04-file");
    let facts = facts_of(&host);
    let report = run_all(&facts, &inputs_at_the_limits(&facts));
    assert_eq!(
        failed(&report),
        vec![CheckId::SwapPartition, CheckId::SameDisk, CheckId::SwapSignature, CheckId::SwapSize]
    );
    assert_eq!(report.get(CheckId::SwapFstab).unwrap().status, Status::Warn);
    assert!(report.get(CheckId::SwapPartition).unwrap().found.contains("/swapfile"));
}

#[test]
fn no_swap_at_all() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    host.copy_fixture("/proc/swaps", "swaps/none");
    let check = run(CheckId::SwapPartition, &facts_of(&host), &CheckInputs::default());
    assert_eq!((check.status, check.found.as_str()), (Status::Fail, "no swap area is active"));
}

#[test]
fn swap_on_lvm_and_swap_on_another_disk() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    host.add_sysfs_virtual("dm-1", "253:1", 2_000_000, Some("LVM-swapvolume"), &["sda5"]);
    host.write(
        "/proc/swaps",
        "Filename Type Size Used Priority\n/dev/dm-1 partition 1000000 0 -2\n",
    );
    let check = run(CheckId::SwapPartition, &facts_of(&host), &CheckInputs::default());
    assert_eq!(check.status, Status::Fail);
    assert!(check.reason.contains("LVM"), "{}", check.reason);

    host.add_sysfs_disk(
        "sdb",
        "8:16",
        100_000,
        &[fixture_host::Partition {
            name: "sdb1",
            number: 1,
            dev: "8:17",
            start: 2048,
            sectors: 90_000,
        }],
        true,
    );
    host.write("/proc/swaps", "Filename Type Size Used Priority\n/dev/sdb1 partition 45000 0 -2\n");
    let facts = facts_of(&host);
    assert_eq!(run(CheckId::SwapPartition, &facts, &CheckInputs::default()).status, Status::Pass);
    let check = run(CheckId::SameDisk, &facts, &CheckInputs::default());
    assert_eq!(check.status, Status::Fail);
    assert!(
        check.found.contains("/dev/sdb") && check.found.contains("/dev/sda"),
        "{}",
        check.found
    );
}

#[test]
fn root_on_lvm_luks_md_or_btrfs_subvolume_is_refused() {
    let cases: [(&str, &str, Option<&str>, &str); 4] = [
        ("mountinfo/ubuntu-22.04-lvm", "dm-0", Some("LVM-Xy7kPq2Rs9Tu"), "LVM"),
        (
            "mountinfo/ubuntu-18.04-luks",
            "dm-0",
            Some("CRYPT-LUKS1-0123456789abcdef-sda5_crypt"),
            "LUKS",
        ),
        ("mountinfo/ubuntu-16.04-md", "md0", None, "md software RAID"),
        ("mountinfo/ubuntu-22.04-btrfs", "", None, "btrfs subvolume"),
    ];
    for (mountinfo, name, dm_uuid, what) in cases {
        let host = FixtureHost::legacy_ubuntu_14_04();
        host.copy_fixture("/proc/self/mountinfo", mountinfo);
        if name == "dm-0" {
            host.add_sysfs_virtual(name, "253:0", 80_000, dm_uuid, &["sda1"]);
        } else if name == "md0" {
            host.add_sysfs_virtual(name, "9:0", 80_000, None, &["sda1"]);
        }
        let check = run(CheckId::RootStorage, &facts_of(&host), &CheckInputs::default());
        assert_eq!(check.status, Status::Fail, "{mountinfo}");
        assert!(
            check.reason.contains(what) || check.found.contains(what),
            "{mountinfo}: {check:?}"
        );
    }
}

#[test]
fn read_only_boot_is_refused() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    host.copy_fixture("/proc/self/mountinfo", "mountinfo/ubuntu-16.04-ro-boot");
    let check = run(CheckId::BootWritable, &facts_of(&host), &CheckInputs::default());
    assert_eq!(check.status, Status::Fail);
    assert!(check.fix.unwrap().contains("mount -o remount,rw /boot"));
}

#[test]
fn a_wiped_swap_signature_is_refused() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    fixture_host::run(
        std::process::Command::new("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}", host.path("/dev/sda").display()))
            .arg("bs=512")
            .arg(format!("seek={SWAP_START}"))
            .arg("count=8")
            .arg("conv=notrunc")
            .arg("status=none"),
    );
    let report = run_all(&facts_of(&host), &CheckInputs::default());
    assert_eq!(failed(&report), vec![CheckId::SwapSignature]);
    assert!(report.get(CheckId::SwapSignature).unwrap().found.contains("no swap signature"));
}

#[test]
fn a_gpt_disk_is_read_and_its_root_partition_found() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    let image = host.path("/dev/sda");
    fixture_host::sfdisk(
        &image,
        &format!(
            "label: gpt\nstart={ROOT_START}, size={ROOT_SECTORS}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\nstart={SWAP_START}, size={}, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F\n",
            SWAP_SECTORS - 34
        ),
    );
    let facts = facts_of(&host);
    assert!(facts.root_disk.as_ref().unwrap().table.is_gpt());
    assert_eq!(run(CheckId::RootPartition, &facts, &CheckInputs::default()).status, Status::Pass);
}

#[test]
fn fstab_finds_swap_by_uuid_label_partuuid_or_path_and_only_warns_otherwise() {
    let host = FixtureHost::legacy_ubuntu_14_04();
    for (line, status) in [
        ("UUID=0A2F4E6C-8B1D-4F3A-9C5E-7D8B6A4F2E10 none swap sw 0 0", Status::Pass),
        ("LABEL=stem-swap none swap sw 0 0", Status::Pass),
        ("PARTUUID=1234abcd-05 none swap sw 0 0", Status::Pass),
        ("/dev/sda5 none swap sw 0 0", Status::Pass),
        ("UUID=11111111-2222-4333-8444-555555555555 none swap sw 0 0", Status::Warn),
        ("LABEL=other none swap sw 0 0", Status::Warn),
        ("/dev/sda1 / ext4 errors=remount-ro 0 1", Status::Warn),
    ] {
        host.write("/etc/fstab", &format!("{line}\n"));
        let facts = facts_of(&host);
        let check = run(CheckId::SwapFstab, &facts, &CheckInputs::default());
        assert_eq!(check.status, status, "{line}: {check:?}");
        if status == Status::Pass {
            assert!(
                check.found.starts_with(&format!(
                    "/etc/fstab swap entry {}",
                    line.split(' ')
                        .next()
                        .unwrap()
                        .replace("0A2F4E6C-8B1D-4F3A-9C5E-7D8B6A4F2E10", fixture_host::SWAP_UUID)
                )),
                "{}",
                check.found
            );
        }
        assert!(run_all(&facts, &CheckInputs::default()).may_proceed, "{line}");
    }
}
