//! Every shipped profile parses and validates; broken profiles give errors
//! that name the file, the key and the problem.

use std::path::PathBuf;

use board_profiles::*;
use plan::{Bytes, FsType, PartitionRole, SourceKind, TableKind};

const SHIPPED: [&str; 7] = [
    "genericx86-64",
    "intel-nuc",
    "resinos1x-beaglebone-black",
    "resinos1x-intel-nuc",
    "resinos1x-raspberry-pi",
    "resinos1x-raspberry-pi2",
    "resinos1x-raspberrypi3",
];

fn profiles_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("profiles")
}

fn intel_nuc_text() -> String {
    std::fs::read_to_string(profiles_dir().join("intel-nuc.toml")).unwrap()
}

/// Parses `text` as profile "broken" and returns the error message.
fn error_for(text: &str) -> String {
    match Profile::from_toml_str("broken", text) {
        Ok(_) => panic!("the profile must be refused:\n{text}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn the_builtin_list_is_exactly_the_shipped_set() {
    assert_eq!(Profile::list_builtin(), SHIPPED.to_vec());
}

#[test]
fn every_file_in_profiles_dir_is_builtin() {
    let mut on_disk: Vec<String> = std::fs::read_dir(profiles_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(
        on_disk,
        SHIPPED.to_vec(),
        "a profile file was added without registering it in builtin.rs"
    );
}

#[test]
fn every_shipped_profile_parses_and_validates() {
    for name in SHIPPED {
        let profile = Profile::builtin(name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(profile.name, name);
        profile.validate().unwrap();
        // Loading the same file from disk gives the same profile (apart from its origin).
        let mut from_file =
            Profile::from_file(&profiles_dir().join(format!("{name}.toml"))).unwrap();
        from_file.origin = profile.origin.clone();
        assert_eq!(from_file, profile);
    }
}

#[test]
fn every_shipped_profile_round_trips_through_toml() {
    for name in SHIPPED {
        let profile = Profile::builtin(name).unwrap();
        let text = profile.to_toml().unwrap();
        let mut back =
            Profile::from_toml_str(name, &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        back.origin = profile.origin.clone();
        assert_eq!(back, profile);
    }
}

#[test]
fn resinos2x_targets_have_the_reference_layout() {
    for name in SHIPPED {
        let profile = Profile::builtin(name).unwrap();
        let names: Vec<&str> = profile.target.partitions.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["resin-boot", "resin-rootA", "resin-rootB", "resin-state", "resin-data"],
            "{name}"
        );
        let boot = profile.target_partition(PartitionRole::Boot).unwrap();
        assert_eq!(
            (boot.fs, boot.typical_size().unwrap()),
            (FsType::Vfat, Bytes::from_mib(40).unwrap()),
            "{name}"
        );
        let data = profile.target_partition(PartitionRole::Data).unwrap();
        assert_eq!(data.fs, FsType::Ext4, "{name}");
        assert!(data.fills_rest, "{name}");
        assert_eq!(profile.target.partition_table, TableKind::Mbr, "{name}");
        assert_eq!(profile.restore.config_json.partition, PartitionRole::Boot, "{name}");
    }
}

#[test]
fn resinos1x_profiles_describe_the_1x_source_and_its_limits() {
    for name in SHIPPED.iter().filter(|n| n.starts_with("resinos1x-")) {
        let profile = Profile::builtin(name).unwrap();
        assert_eq!(profile.source.kind, SourceKind::Resinos1x, "{name}");
        let names: Vec<&str> = profile.source.partitions.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["resin-boot", "resin-root", "resin-updt", "resin-conf", "resin-data"],
            "{name}"
        );
        assert_eq!(
            profile.source_partition(PartitionRole::Data).unwrap().fs,
            FsType::Btrfs,
            "{name}"
        );
        assert_eq!(
            profile.source_partition(PartitionRole::RootA).unwrap().fs,
            FsType::Ext3,
            "{name}"
        );
        assert_eq!(profile.backup_limit().unwrap(), Some(Bytes(170_000_000)), "{name}");
        assert!(
            profile.initramfs.modules.iter().any(|m| m == "btrfs"),
            "{name} must read the btrfs data partition"
        );
        assert!(!profile.finalize.grow_over_staging, "{name}");
    }
    for name in ["intel-nuc", "genericx86-64"] {
        let profile = Profile::builtin(name).unwrap();
        assert_eq!(profile.source.kind, SourceKind::UbuntuGrubHost);
        assert_eq!(profile.backup_limit().unwrap(), None);
        assert!(profile.finalize.grow_over_staging);
        assert_eq!(profile.boot_mode, BootMode::Bios);
    }
}

#[test]
fn app_id_placeholder_resolves() {
    let profile = Profile::builtin("intel-nuc").unwrap();
    assert_eq!(profile.restore.data.resolve_path("1234"), "/resin-data/1234");
}

#[test]
fn architecture_matches_uname() {
    assert!(Architecture::X86_64.matches_uname_machine("x86_64"));
    assert!(Architecture::Armv7.matches_uname_machine("armv7l"));
    assert!(!Architecture::Armv7.matches_uname_machine("armv6l"));
    assert!(!Architecture::X86_64.matches_uname_machine("i686"));
}

#[test]
fn an_unknown_builtin_lists_the_known_ones() {
    let err = Profile::builtin("intel-nux").unwrap_err().to_string();
    assert!(
        err.starts_with(
            "unknown profile 'intel-nux'; built-in profiles: genericx86-64, intel-nuc,"
        ),
        "{err}"
    );
}

#[test]
fn an_unknown_key_is_named_with_file_and_path() {
    let text =
        intel_nuc_text().replace("min_disk_mib = 4096", "min_disk_mib = 4096\nmin_disk_gib = 4");
    let err = error_for(&text);
    assert!(
        err.starts_with("broken.toml: requirements.min_disk_gib: unknown field `min_disk_gib`"),
        "{err}"
    );
    assert!(err.contains("(line "), "{err}");

    let text = intel_nuc_text().replace("typical_size_mib = 20 ", "typical_size_mb = 20 ");
    let err = error_for(&text);
    assert!(
        err.starts_with("broken.toml: target.partitions[3].typical_size_mb: unknown field"),
        "{err}"
    );
}

#[test]
fn a_bad_value_is_named_with_file_and_path() {
    let text = intel_nuc_text().replace("boot_mode = \"bios\"", "boot_mode = \"legacy\"");
    let err = error_for(&text);
    assert!(err.starts_with("broken.toml: boot_mode: unknown variant `legacy`"), "{err}");

    let text = intel_nuc_text().replacen("fs = \"ext4\"", "fs = \"ntfs\"", 1);
    let err = error_for(&text);
    assert!(
        err.starts_with("broken.toml: target.partitions[1].fs: unknown variant `ntfs`"),
        "{err}"
    );

    let text = intel_nuc_text().replace("min_ram_mib = 1024", "min_ram_mib = \"1 GiB\"");
    let err = error_for(&text);
    assert!(err.starts_with("broken.toml: requirements.min_ram_mib: invalid type"), "{err}");
}

#[test]
fn a_missing_key_is_named_with_file_and_path() {
    let text = intel_nuc_text().replace("device_type = \"intel-nuc\"\n", "");
    let err = error_for(&text);
    assert!(err.starts_with("broken.toml: device_type: missing field `device_type`"), "{err}");

    let text = intel_nuc_text().replace("min_ram_mib = 1024\n", "");
    let err = error_for(&text);
    assert!(
        err.starts_with("broken.toml: requirements.min_ram_mib: missing field `min_ram_mib`"),
        "{err}"
    );
}

#[test]
fn a_syntax_error_names_the_file_and_line() {
    let text = intel_nuc_text().replace("[requirements]", "[requirements");
    let err = error_for(&text);
    assert!(err.starts_with("broken.toml: "), "{err}");
    assert!(err.contains("(line "), "{err}");
}

#[test]
fn errors_from_a_file_name_the_file() {
    let dir = std::env::temp_dir().join(format!("board-profiles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("my-board.toml");
    std::fs::write(
        &path,
        intel_nuc_text().replace("architecture = \"x86_64\"", "architecture = \"mips\""),
    )
    .unwrap();
    let err = Profile::from_file(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: architecture: unknown variant `mips`", path.display())),
        "{err}"
    );

    std::fs::write(&path, intel_nuc_text()).unwrap();
    let profile = Profile::from_file(&path).unwrap();
    assert_eq!(profile.name, "my-board");

    let missing = Profile::from_file(&dir.join("absent.toml")).unwrap_err().to_string();
    assert!(missing.contains("absent.toml: cannot read:"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Semantic checks: each edit is type-correct but incoherent.
#[test]
fn validation_names_the_key_and_the_problem() {
    let cases: &[(&str, &str, &str)] = &[
        ("device_type = \"intel-nuc\"", "device_type = \"Intel NUC\"", "device_type: 'Intel NUC' is not a device-type slug"),
        ("boot_mode = \"bios\"", "boot_mode = \"board-firmware\"", "bootloader: grub2 profiles must be x86_64"),
        ("staging = \"swap-partition\"", "staging = \"spare-root-partition\"", "source.staging: an ubuntu-grub-host stages on \"swap-partition\""),
        ("order = 3", "order = 2", "target.partitions[2].order: orders must be 1..=5 with each used once; got 2"),
        ("order = 5 ", "order = 6 ", "target.partitions[4].order: orders must be 1..=5"),
        ("typical_size_mib = 40 ", "typical_size_mib = 0 ", "target.partitions[0].typical_size_mib: must be greater than zero"),
        ("name = \"resin-rootB\"", "name = \"resin-rootA\"", "target.partitions[2].name: 'resin-rootA' appears twice"),
        ("role = \"root-b\"", "role = \"root-a\"", "target.partitions[2].role: role \"root-a\" appears twice"),
        ("min_ram_mib = 1024", "min_ram_mib = 0", "requirements.min_ram_mib: must be greater than zero"),
        ("\"ext4\", \"fat\"", "\"ext4.ko\", \"fat\"", "initramfs.modules[8]: 'ext4.ko' is not a module name"),
        ("path = \"/config.json\"", "path = \"config.json\"", "restore.config_json.path: 'config.json' must be an absolute path"),
        ("path = \"/resin-data/{app_id}\"", "path = \"/resin-data/{uuid}\"", "restore.data.path: '/resin-data/{uuid}': the only placeholder is {app_id}"),
        ("config_json = { partition = \"boot\"", "config_json = { partition = \"config\"", "restore.config_json.partition: no target partition has role \"config\""),
        ("grow_partition = \"data\"", "grow_partition = \"config\"", "finalize.grow_partition: no target partition has role \"config\""),
        ("\"grub/grub.cfg\"", "\"/grub/grub.cfg\"", "bootloader_config_files[0]: '/grub/grub.cfg' must be a path relative to the boot partition"),
    ];
    for (from, to, expected) in cases {
        let original = intel_nuc_text();
        assert!(original.contains(from), "fixture text {from:?} not found");
        let err = error_for(&original.replacen(from, to, 1));
        assert_eq!(err.split_once(": ").map(|(file, _)| file), Some("broken.toml"), "{err}");
        assert!(
            err.contains(expected),
            "for {from:?} -> {to:?}\nexpected {expected:?}\n     got {err}"
        );
    }
}

#[test]
fn only_the_last_partition_may_fill_the_rest() {
    let text = intel_nuc_text().replacen(
        "typical_size_mib = 40 ",
        "typical_size_mib = 40\nfills_rest = true ",
        1,
    );
    let err = error_for(&text);
    assert!(
        err.contains("target.partitions[0].fills_rest: only the last partition can fill the rest"),
        "{err}"
    );
}

#[test]
fn source_kind_and_resinos1x_table_must_agree() {
    let text = std::fs::read_to_string(profiles_dir().join("resinos1x-raspberrypi3.toml")).unwrap();
    let cut = text.find("[resinos1x]").unwrap();
    let err = error_for(&text[..cut]);
    assert!(err.contains("resinos1x: missing: a resinOS 1.x profile needs this table"), "{err}");

    let err = error_for(&format!("{}\n{}", intel_nuc_text(), &text[cut..]));
    assert!(err.contains("resinos1x: only profiles with source.kind = \"resinos-1x\""), "{err}");

    let err = error_for(
        &text.replace("backup_limit_compressed_mb = 170", "backup_limit_compressed_mb = 0"),
    );
    assert!(
        err.contains("resinos1x.backup_limit_compressed_mb: must be greater than zero"),
        "{err}"
    );

    let err = error_for(&text.replace(
        "name = \"resin-updt\"\nrole = \"root-b\"",
        "name = \"resin-updt\"\nrole = \"state\"",
    ));
    assert!(
        err.contains(
            "source.partitions: staging on the spare root needs a partition with role \"root-b\""
        ),
        "{err}"
    );

    let err =
        error_for(&text.replace("bootloader = \"raspberrypi-firmware\"", "bootloader = \"grub2\""));
    assert!(err.contains("bootloader: grub2 profiles must be x86_64"), "{err}");

    for bad in ["../boot", "/resin-supervisor", ""] {
        let err = error_for(&text.replace(
            "app_data_excludes = [\"resin-supervisor\"]",
            &format!("app_data_excludes = [\"{bad}\"]"),
        ));
        assert!(
            err.contains("resinos1x.app_data_excludes[0]: must be a path relative to app_data_dir"),
            "{bad}: {err}"
        );
    }
}

fn beaglebone_text() -> String {
    std::fs::read_to_string(profiles_dir().join("resinos1x-beaglebone-black.toml")).unwrap()
}

#[test]
fn the_beaglebone_profile_says_how_its_trial_is_armed() {
    let p = Profile::builtin("resinos1x-beaglebone-black").unwrap();
    let trial = p.uboot_trial.expect("uboot_trial");
    assert_eq!(trial.interface, plan::UbootInterface::Mmc);
    assert_eq!(trial.bootcount.address, 0x44E3_E068);
    assert_eq!(trial.bootcount.byte_order, board_profiles::ByteOrder::BigEndian);
    assert_eq!(trial.watchdog.as_deref(), Some("/dev/watchdog"));
    for name in ["resinos1x-raspberrypi3", "resinos1x-intel-nuc", "intel-nuc"] {
        assert!(Profile::builtin(name).unwrap().uboot_trial.is_none(), "{name}");
    }
}

#[test]
fn a_uboot_1x_profile_without_its_trial_table_is_refused() {
    let text = beaglebone_text();
    let cut = text.find("[uboot_trial]").unwrap();
    let err = error_for(&text[..cut]);
    assert!(err.contains("uboot_trial") && err.contains("missing"), "{err}");
    let misaligned = text.replace("0x44E3E068", "0x44E3E066");
    let err = error_for(&misaligned);
    assert!(err.contains("4-byte aligned"), "{err}");
    let on_nuc = format!("{}\n{}", intel_nuc_text(), &text[cut..]);
    let err = error_for(&on_nuc);
    assert!(err.contains("only resinOS 1.x profiles with bootloader"), "{err}");
}

#[test]
fn the_raspberry_pi_profiles_say_how_their_trial_is_armed() {
    for (name, kernel, module) in [
        ("resinos1x-raspberry-pi", "kernel.img", "bcm2708"),
        ("resinos1x-raspberry-pi2", "kernel7.img", "bcm2709"),
        ("resinos1x-raspberrypi3", "kernel7.img", "bcm2709"),
    ] {
        let p = Profile::builtin(name).unwrap();
        let trial = p.pi_trial.expect("pi_trial");
        assert_eq!(trial.kernel, kernel, "{name}");
        assert_eq!(trial.reboot_part, format!("/sys/module/{module}/parameters/reboot_part"));
        assert_eq!(trial.firmware_files, ["start.elf", "fixup.dat"], "{name}");
        assert!(trial.blobs_last.contains(&"bootcode.bin".to_string()), "{name}");
        assert_eq!(trial.blobs_last.last(), Some(&kernel.to_string()), "{name}");
    }
    for name in ["resinos1x-beaglebone-black", "resinos1x-intel-nuc", "intel-nuc"] {
        assert!(Profile::builtin(name).unwrap().pi_trial.is_none(), "{name}");
    }
}

#[test]
fn a_pi_1x_profile_without_its_trial_table_or_with_a_bad_path_is_refused() {
    let text = std::fs::read_to_string(profiles_dir().join("resinos1x-raspberrypi3.toml")).unwrap();
    let cut = text.find("[pi_trial]").unwrap();
    let err = error_for(&text[..cut]);
    assert!(err.contains("pi_trial") && err.contains("missing"), "{err}");
    let absolute = text.replace("kernel = \"kernel7.img\"", "kernel = \"/kernel7.img\"");
    let err = error_for(&absolute);
    assert!(err.contains("pi_trial.kernel") && err.contains("relative"), "{err}");
    let relative = text.replace("reboot_part = \"/sys", "reboot_part = \"sys");
    let err = error_for(&relative);
    assert!(err.contains("pi_trial.reboot_part") && err.contains("absolute"), "{err}");
    let on_bbb = format!("{}\n{}", beaglebone_text(), &text[cut..]);
    let err = error_for(&on_bbb);
    assert!(err.contains("only resinOS 1.x profiles with bootloader"), "{err}");
}
