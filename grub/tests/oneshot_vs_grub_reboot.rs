//! OneShot / PermanentDefault against the real grub-reboot and grub-set-default,
//! and undo back to the exact original bytes.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{editenv, run};
use grub::{GrubEnv, OneShot, PermanentDefault, UndoRecord};

/// A boot directory with a grubenv as a host would have it; returns its grubenv path.
fn boot_dir_with_env(root: &Path, setup: &[&str]) -> std::path::PathBuf {
    let grubenv = root.join("grub/grubenv");
    fs::create_dir_all(grubenv.parent().unwrap()).unwrap();
    editenv(&grubenv, &["create"]);
    if !setup.is_empty() {
        editenv(&grubenv, &[&["set"], setup].concat());
    }
    grubenv
}

fn grub_tool(tool: &str, boot_dir: &Path, entry: &str) {
    run(Command::new(tool).arg(format!("--boot-directory={}", boot_dir.display())).arg(entry));
}

const HOST_STATES: &[&[&str]] = &[
    &[],
    &["saved_entry=Ubuntu", "recordfail=1"],
    &["prev_saved_entry=Old default", "saved_entry=1"],
    &["next_entry=left over", "saved_entry=2"],
];

#[test]
fn arm_matches_grub_reboot_and_undo_restores_every_byte() {
    for setup in HOST_STATES {
        let theirs = tempfile::tempdir().unwrap();
        let ours = tempfile::tempdir().unwrap();
        let their_env = boot_dir_with_env(theirs.path(), setup);
        let our_env = boot_dir_with_env(ours.path(), setup);
        let before = fs::read(&our_env).unwrap();

        grub_tool("grub-reboot", theirs.path(), "swapover-migrate");
        let undo = OneShot::arm(&our_env, "swapover-migrate").unwrap();
        assert_eq!(fs::read(&our_env).unwrap(), fs::read(&their_env).unwrap(), "state {setup:?}");
        assert_eq!(GrubEnv::load(&our_env).unwrap().get("next_entry"), Some("swapover-migrate"));
        assert!(undo.still_armed().unwrap());

        undo.restore().unwrap();
        assert_eq!(fs::read(&our_env).unwrap(), before, "undo of state {setup:?}");
        assert!(!undo.still_armed().unwrap());
    }
}

#[test]
fn set_default_matches_grub_set_default_and_undo_restores_every_byte() {
    for setup in HOST_STATES {
        let theirs = tempfile::tempdir().unwrap();
        let ours = tempfile::tempdir().unwrap();
        let their_env = boot_dir_with_env(theirs.path(), setup);
        let our_env = boot_dir_with_env(ours.path(), setup);
        let before = fs::read(&our_env).unwrap();

        grub_tool("grub-set-default", theirs.path(), "swapover-migrate");
        let undo = PermanentDefault::set(&our_env, "swapover-migrate").unwrap();
        assert_eq!(fs::read(&our_env).unwrap(), fs::read(&their_env).unwrap(), "state {setup:?}");

        undo.restore().unwrap();
        assert_eq!(fs::read(&our_env).unwrap(), before, "undo of state {setup:?}");
    }
}

#[test]
fn arming_where_no_grubenv_exists_creates_it_like_grub_reboot_and_undo_removes_it() {
    let theirs = tempfile::tempdir().unwrap();
    let ours = tempfile::tempdir().unwrap();
    fs::create_dir_all(theirs.path().join("grub")).unwrap();
    let our_env = ours.path().join("grubenv");
    grub_tool("grub-reboot", theirs.path(), "m");
    let undo = OneShot::arm(&our_env, "m").unwrap();
    assert_eq!(fs::read(&our_env).unwrap(), fs::read(theirs.path().join("grub/grubenv")).unwrap());
    assert_eq!(undo.original, None);
    undo.restore().unwrap();
    assert!(!our_env.exists());
    undo.restore().unwrap(); // idempotent
}

#[test]
fn undo_record_survives_serialisation_and_restores_after_grub_consumed_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let grubenv = boot_dir_with_env(dir.path(), &["saved_entry=0", "recordfail=1"]);
    let before = fs::read(&grubenv).unwrap();
    let undo = OneShot::arm(&grubenv, "swapover").unwrap();
    let json = serde_json::to_string(&undo).unwrap();

    // What GRUB's 00_header does on the one-shot boot: `set next_entry=` + `save_env next_entry`.
    editenv(&grubenv, &["set", "next_entry="]);
    let reloaded: UndoRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(reloaded, undo);
    assert!(!reloaded.still_armed().unwrap());
    reloaded.restore().unwrap();
    assert_eq!(fs::read(&grubenv).unwrap(), before);
}

#[test]
fn a_corrupt_grubenv_is_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    let grubenv = dir.path().join("grubenv");
    fs::write(&grubenv, b"not an environment block").unwrap();
    let err = OneShot::arm(&grubenv, "m").unwrap_err();
    assert!(err.to_string().contains("1024"), "{err}");
    assert_eq!(fs::read(&grubenv).unwrap(), b"not an environment block");
}
