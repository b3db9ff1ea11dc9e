//! The migrator binary runs only as PID 1: anywhere else it refuses before
//! touching anything (it would mount, write the disk and reboot the machine).

use std::process::Command;

#[test]
fn the_binary_refuses_to_run_outside_pid_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_migrator")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("runs only as PID 1") && stderr.contains("refusing"), "{stderr}");
}
