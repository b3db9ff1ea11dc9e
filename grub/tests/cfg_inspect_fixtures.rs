//! cfg_inspect on grub.cfg files as each host release generates them.

use std::path::PathBuf;
use std::process::Command;

use grub::cfg_inspect::{
    inspect, inspect_file, CfgReport, CustomCfgRoute, DefaultValue, PartitionTable, StagingFs,
    StagingFsType,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn report(name: &str) -> CfgReport {
    inspect_file(&fixture(name)).unwrap()
}

const GENERATED: &[&str] = &[
    "ubuntu-14.04.cfg",
    "ubuntu-16.04.cfg",
    "ubuntu-18.04.cfg",
    "ubuntu-18.04-default-saved.cfg",
    "ubuntu-20.04.cfg",
    "ubuntu-22.04.cfg",
    "debian-12.cfg",
];

#[test]
fn every_fixture_is_valid_grub_script() {
    for name in GENERATED.iter().chain(&["hand-written-no-next-entry.cfg"]) {
        let out = Command::new("grub-script-check").arg(fixture(name)).output().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn generated_configs_honour_next_entry_and_source_custom_cfg() {
    for name in GENERATED {
        let r = report(name);
        assert!(r.generated_by_grub_mkconfig, "{name}");
        assert_eq!(r.load_env_line, Some(11), "{name}");
        assert!(r.next_entry.yes, "{name}: {}", r.next_entry.reason);
        assert!(
            r.next_entry.reason.contains("line 14") && r.next_entry.reason.contains("line 16"),
            "{name}: {}",
            r.next_entry.reason
        );
        match &r.custom_cfg {
            CustomCfgRoute::SourcesCustomCfg { path_expr, .. } => {
                assert_eq!(path_expr, "${config_directory}/custom.cfg", "{name}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn default_entry_and_saved_entry() {
    for name in GENERATED {
        let r = report(name);
        let default = r.default_entry.as_ref().unwrap();
        assert_eq!(default.line, 19, "{name}");
        if *name == "ubuntu-18.04-default-saved.cfg" {
            assert_eq!(default.value, DefaultValue::SavedEntry);
            assert!(r.saved_entry.yes, "{}", r.saved_entry.reason);
            assert!(r.resolve_default().is_none());
        } else {
            assert_eq!(default.value, DefaultValue::Index(0), "{name}");
            assert!(!r.saved_entry.yes, "{name}");
            assert!(
                r.saved_entry.reason.contains("grub-set-default has no effect"),
                "{}",
                r.saved_entry.reason
            );
            let first = r.resolve_default().unwrap();
            assert!(
                first.title == "Ubuntu" || first.title == "Debian GNU/Linux",
                "{name}: {}",
                first.title
            );
            assert!(first.id.as_deref().unwrap().starts_with("gnulinux-simple-"), "{name}");
        }
    }
}

#[test]
fn timeouts_per_release() {
    // (fixture, normal timeout values in file order, timeout after a failed boot)
    let expected: &[(&str, &[&str], Option<&str>)] = &[
        ("ubuntu-14.04.cfg", &["0", "0", "-1", "0", "0"], Some("-1")),
        ("ubuntu-16.04.cfg", &["0", "0"], Some("30")),
        ("ubuntu-18.04.cfg", &["10", "0"], Some("30")),
        ("ubuntu-20.04.cfg", &["0", "0"], Some("30")),
        ("ubuntu-22.04.cfg", &["0", "0"], Some("30")),
        ("debian-12.cfg", &["5", "5"], Some("30")),
        ("hand-written-no-next-entry.cfg", &["3"], None),
    ];
    for (name, normal, failed) in expected {
        let r = report(name);
        let got_normal: Vec<&str> = r
            .timeouts
            .iter()
            .filter(|t| !t.after_failed_boot())
            .map(|t| t.value.as_str())
            .collect();
        let got_failed =
            r.timeouts.iter().find(|t| t.after_failed_boot()).map(|t| t.value.as_str());
        assert_eq!(&got_normal, normal, "{name}");
        assert_eq!(got_failed, *failed, "{name}");
    }
    // Only 14.04 waits forever after a failed boot; that is warned about, with the line.
    let r = report("ubuntu-14.04.cfg");
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(
        r.warnings[0].starts_with("line 87 sets timeout=-1 after a failed boot"),
        "{}",
        r.warnings[0]
    );
    for name in &GENERATED[1..] {
        assert!(report(name).warnings.is_empty(), "{name}: {:?}", report(name).warnings);
    }
}

#[test]
fn menu_entries_with_submenus_and_what_they_load() {
    let r = report("ubuntu-16.04.cfg");
    let titles: Vec<(&str, bool, usize)> =
        r.entries.iter().map(|e| (e.title.as_str(), e.is_submenu, e.submenus.len())).collect();
    assert_eq!(
        titles,
        vec![
            ("Ubuntu", false, 0),
            ("Advanced options for Ubuntu", true, 0),
            ("Ubuntu, with Linux 4.4.0-21-generic", false, 1),
            ("Ubuntu, with Linux 4.4.0-21-generic (recovery mode)", false, 1),
            ("Memory test (memtest86+)", false, 0),
            ("Memory test (memtest86+, serial console 115200)", false, 0),
        ]
    );
    let main = &r.entries[0];
    assert_eq!(main.insmods, vec!["gzio", "xzio", "lzopio", "part_msdos", "ext2"]);
    assert_eq!(main.searches.len(), 2);
    assert_eq!(
        main.searches[1],
        [
            "search",
            "--no-floppy",
            "--fs-uuid",
            "--set=root",
            "9d2a4f61-7e3b-4c1d-8a5e-2b6f0c9e1d47"
        ]
    );
    assert_eq!(
        main.linux.as_ref().unwrap()[..2],
        ["linux".to_string(), "/boot/vmlinuz-4.4.0-21-generic".to_string()]
    );
    assert_eq!(main.initrd.as_ref().unwrap()[1], "/boot/initrd.img-4.4.0-21-generic");
    assert_eq!(r.entries[5].linux.as_ref().unwrap()[0], "linux16");
    assert!(
        r.has_entry_id("gnulinux-4.4.0-21-generic-advanced-9d2a4f61-7e3b-4c1d-8a5e-2b6f0c9e1d47")
    );
    assert!(!r.has_entry_id("swapover-migrate"));
}

#[test]
fn staging_entry_needs_follow_the_host_disk() {
    let ext4 = StagingFs {
        uuid: "0a1b2c3d-1111-2222-3333-444455556666".into(),
        fs: StagingFsType::Ext4,
        table: None,
    };
    for name in GENERATED {
        let needs = report(name).staging_entry_needs(&ext4).unwrap();
        let part = if *name == "ubuntu-22.04.cfg" { "part_gpt" } else { "part_msdos" };
        assert_eq!(needs.insmods, vec![part, "ext2"], "{name}");
        assert_eq!(
            needs.search,
            [
                "search",
                "--no-floppy",
                "--fs-uuid",
                "--set=root",
                "0a1b2c3d-1111-2222-3333-444455556666"
            ]
        );
        assert_eq!(needs.linux_command, "linux");
        assert!(needs.reasons[0].contains("loads it for the same disk"), "{:?}", needs.reasons);
    }
    // An explicit table wins; vfat needs fat.
    let vfat = StagingFs {
        uuid: "ABCD-1234".into(),
        fs: StagingFsType::Vfat,
        table: Some(PartitionTable::Gpt),
    };
    let needs = report("ubuntu-16.04.cfg").staging_entry_needs(&vfat).unwrap();
    assert_eq!(needs.insmods, vec!["part_gpt", "fat"]);
    // A bad UUID is refused.
    let bad = StagingFs { uuid: "x y".into(), ..ext4.clone() };
    assert!(report("ubuntu-16.04.cfg").staging_entry_needs(&bad).is_err());
}

#[test]
fn hand_written_config_without_next_entry_is_explained() {
    let r = report("hand-written-no-next-entry.cfg");
    assert!(!r.generated_by_grub_mkconfig);
    assert_eq!(r.load_env_line, None);
    assert!(!r.next_entry.yes);
    assert!(r.next_entry.reason.contains("never runs load_env"), "{}", r.next_entry.reason);
    assert!(matches!(r.custom_cfg, CustomCfgRoute::NoRoute { .. }), "{:?}", r.custom_cfg);
    assert_eq!(r.default_entry.as_ref().unwrap().value, DefaultValue::Index(0));
    assert_eq!(r.resolve_default().unwrap().title, "Appliance OS");
    // Table comes from the top-level insmods only when an entry loads it: here no entry does.
    let fs = StagingFs { uuid: "0a1b".into(), fs: StagingFsType::Ext4, table: None };
    assert!(r.staging_entry_needs(&fs).is_err());
    let fs = StagingFs { table: Some(PartitionTable::Msdos), ..fs };
    assert_eq!(r.staging_entry_needs(&fs).unwrap().insmods, vec!["part_msdos", "ext2"]);
}

fn edited(name: &str, from: &str, to: &str) -> CfgReport {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    assert!(text.contains(from), "{from:?} not in {name}");
    inspect(&text.replacen(from, to, 1))
}

#[test]
fn broken_next_entry_handling_is_caught_with_a_reason() {
    let r = edited("debian-12.cfg", "  load_env\n", "");
    assert!(
        !r.next_entry.yes && r.next_entry.reason.contains("never runs load_env"),
        "{}",
        r.next_entry.reason
    );

    let r = edited("debian-12.cfg", "   save_env next_entry\n", "");
    assert!(
        !r.next_entry.yes && r.next_entry.reason.contains("every time, not once"),
        "{}",
        r.next_entry.reason
    );

    let r =
        edited("debian-12.cfg", "if [ \"${next_entry}\" ] ; then", "if [ \"${other}\" ] ; then");
    assert!(
        !r.next_entry.yes && r.next_entry.reason.contains("no `if [ \"${next_entry}\" ]` block"),
        "{}",
        r.next_entry.reason
    );

    let r = edited(
        "debian-12.cfg",
        "### END /etc/grub.d/00_header ###\n",
        "### END /etc/grub.d/00_header ###\nset default=\"2\"\n",
    );
    assert!(
        !r.next_entry.yes && r.next_entry.reason.contains("overriding next_entry"),
        "{}",
        r.next_entry.reason
    );

    let r = edited("ubuntu-20.04.cfg", "### BEGIN /etc/grub.d/41_custom ###\nif [ -f  ${config_directory}/custom.cfg ]; then\n  source ${config_directory}/custom.cfg\nelif [ -z \"${config_directory}\" -a -f  $prefix/custom.cfg ]; then\n  source $prefix/custom.cfg\nfi\n", "");
    match r.custom_cfg {
        CustomCfgRoute::NeedsUpdateGrub { reason } => {
            assert!(reason.contains("40_custom"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn report_is_serialisable_for_the_stager_output() {
    let r = report("ubuntu-14.04.cfg");
    let json = serde_json::to_string(&r).unwrap();
    let back: CfgReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
}
