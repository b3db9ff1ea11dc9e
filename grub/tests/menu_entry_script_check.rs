//! Generated menu entries against the real grub-script-check, alone, in a
//! custom.cfg, and appended to each host's grub.cfg.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use grub::cfg_inspect::{inspect, inspect_file, StagingFs, StagingFsType};
use grub::menu_entry::{custom_cfg, grub_d_script, MenuEntryError};
use grub::MenuEntry;

const STAGING_UUID: &str = "0a1b2c3d-1111-2222-3333-444455556666";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn script_check(text: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("check.cfg");
    fs::write(&path, text).unwrap();
    script_check_file(&path)
}

fn script_check_file(path: &Path) -> Result<(), String> {
    let out = Command::new("grub-script-check").arg(path).output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn entry_for(cfg: &str) -> MenuEntry {
    let report = inspect_file(&fixture(cfg)).unwrap();
    let staging = StagingFs { uuid: STAGING_UUID.into(), fs: StagingFsType::Ext4, table: None };
    MenuEntry {
        title: "swapover: migrate to balenaOS (don't pick by hand)".into(),
        id: "swapover-migrate".into(),
        needs: report.staging_entry_needs(&staging).unwrap(),
        kernel: "/swapover/vmlinuz".into(),
        initrd: "/swapover/initramfs.cpio.xz".into(),
        args: [
            "console=ttyS0,115200",
            "console=tty0",
            "panic=10",
            "swapover.plan=/swapover/plan.json",
            "quiet",
        ]
        .map(String::from)
        .to_vec(),
    }
}

#[test]
fn rendered_entry_is_exactly_what_we_mean() {
    let text = entry_for("ubuntu-14.04.cfg").render().unwrap();
    let expected = format!(
        "menuentry 'swapover: migrate to balenaOS (don'\\''t pick by hand)' --id 'swapover-migrate' {{\n\
         \tset gfxpayload=text\n\
         \tinsmod part_msdos\n\
         \tinsmod ext2\n\
         \tsearch --no-floppy --fs-uuid --set=root {STAGING_UUID}\n\
         \techo 'Loading swapover: migrate to balenaOS (don'\\''t pick by hand) ...'\n\
         \tlinux /swapover/vmlinuz console=ttyS0,115200 console=tty0 panic=10 swapover.plan=/swapover/plan.json quiet\n\
         \tinitrd /swapover/initramfs.cpio.xz\n\
         }}\n"
    );
    assert_eq!(text, expected);
    script_check(&text).unwrap();
}

#[test]
fn custom_cfg_and_grub_d_script_pass_grub_script_check() {
    let entry = entry_for("ubuntu-22.04.cfg");
    let cfg = custom_cfg(std::slice::from_ref(&entry)).unwrap();
    assert!(cfg.contains("insmod part_gpt"));
    script_check(&cfg).unwrap();

    // 40_custom style: the shell script prints itself from line 3; what it prints must check too.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("40_custom");
    fs::write(&script, grub_d_script(&[entry]).unwrap()).unwrap();
    let printed = Command::new("sh").arg(&script).output().unwrap();
    assert!(printed.status.success());
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert!(
        printed.starts_with("# Written by swapover") && printed.contains("menuentry 'swapover"),
        "{printed}"
    );
    script_check(&printed).unwrap();
}

#[test]
fn host_config_plus_our_custom_cfg_checks_and_finds_our_entry_by_id() {
    for name in [
        "ubuntu-14.04.cfg",
        "ubuntu-16.04.cfg",
        "ubuntu-18.04.cfg",
        "ubuntu-20.04.cfg",
        "ubuntu-22.04.cfg",
        "debian-12.cfg",
    ] {
        let host = fs::read_to_string(fixture(name)).unwrap();
        let ours = custom_cfg(&[entry_for(name)]).unwrap();
        // What GRUB sees when 41_custom sources custom.cfg: the host's text, then ours.
        let combined = format!("{host}{ours}");
        script_check(&combined).unwrap_or_else(|e| panic!("{name}: {e}"));
        let report = inspect(&combined);
        assert!(report.has_entry_id("swapover-migrate"), "{name}");
        let ours =
            report.entries.iter().find(|e| e.id.as_deref() == Some("swapover-migrate")).unwrap();
        assert_eq!(ours.searches[0][4], STAGING_UUID);
        assert_eq!(ours.linux.as_ref().unwrap()[1], "/swapover/vmlinuz");
        assert!(report.next_entry.yes, "{name}: adding our entry must not break next_entry");
    }
}

#[test]
fn unsafe_inputs_are_refused_before_rendering() {
    let good = entry_for("debian-12.cfg");
    type Case = (MenuEntry, fn(&MenuEntryError) -> bool);
    let cases: Vec<Case> = vec![
        (MenuEntry { id: "has space".into(), ..good.clone() }, |e| {
            matches!(e, MenuEntryError::BadId(_))
        }),
        (MenuEntry { id: String::new(), ..good.clone() }, |e| {
            matches!(e, MenuEntryError::BadId(_))
        }),
        (MenuEntry { kernel: "swapover/vmlinuz".into(), ..good.clone() }, |e| {
            matches!(e, MenuEntryError::BadPath { what: "kernel", .. })
        }),
        (MenuEntry { initrd: "/a b".into(), ..good.clone() }, |e| {
            matches!(e, MenuEntryError::BadPath { what: "initrd", .. })
        }),
        (MenuEntry { args: vec!["init=$x".into()], ..good.clone() }, |e| {
            matches!(e, MenuEntryError::BadArgument(_))
        }),
        (MenuEntry { args: vec!["a;reboot".into()], ..good.clone() }, |e| {
            matches!(e, MenuEntryError::BadArgument(_))
        }),
        (MenuEntry { title: String::new(), ..good.clone() }, |e| {
            matches!(e, MenuEntryError::Empty(_))
        }),
    ];
    for (entry, expected) in cases {
        let err = entry.render().unwrap_err();
        assert!(expected(&err), "unexpected {err}");
    }
    // A title with quotes and dollars is fine: it is quoted, and grub-script-check agrees.
    let odd = MenuEntry { title: r#"it's "$HOME"; } {"#.into(), ..good };
    script_check(&odd.render().unwrap()).unwrap();
    assert_eq!(inspect(&odd.render().unwrap()).entries[0].title, r#"it's "$HOME"; } {"#);
}

#[test]
fn grub_script_check_does_reject_broken_script() {
    // The checker this file relies on is not a no-op.
    let broken = entry_for("debian-12.cfg").render().unwrap().replace("}\n", "");
    assert!(script_check(&broken).is_err());
}
