//! Helpers shared by the integration tests: run the real GRUB tools.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Run `grub-editenv FILE ARGS...`, panicking with its stderr on failure.
pub fn editenv(file: &Path, args: &[&str]) {
    let out = Command::new("grub-editenv").arg(file).args(args).output().expect("run grub-editenv");
    assert!(
        out.status.success(),
        "grub-editenv {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run `grub-editenv FILE ARGS...` and return whether it succeeded.
pub fn editenv_ok(file: &Path, args: &[&str]) -> bool {
    Command::new("grub-editenv")
        .arg(file)
        .args(args)
        .output()
        .expect("run grub-editenv")
        .status
        .success()
}

/// `grub-editenv FILE list` output.
pub fn editenv_list(file: &Path) -> String {
    let out =
        Command::new("grub-editenv").arg(file).arg("list").output().expect("run grub-editenv");
    assert!(
        out.status.success(),
        "grub-editenv list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 list output")
}

/// Run a command, panicking with its stderr on failure; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
