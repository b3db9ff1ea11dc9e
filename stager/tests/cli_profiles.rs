//! `stager profiles` and `--profile-file` through the binary: the shipped profiles listed,
//! one shown resolved, unknown names and invalid files as one-line errors, and a profile
//! from a file used by `profiles`, `check` and `stage --dry-run` on a fixture host.

#[path = "stage_support/mod.rs"]
mod stage_support;

use board_profiles::Profile;
use serde_json::Value;
use stage_support::*;
use std::path::Path;
use std::process::{Command, Output};

const SHIPPED: [&str; 7] = [
    "genericx86-64",
    "intel-nuc",
    "resinos1x-beaglebone-black",
    "resinos1x-intel-nuc",
    "resinos1x-raspberry-pi",
    "resinos1x-raspberry-pi2",
    "resinos1x-raspberrypi3",
];

fn stager(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stager")).args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// intel-nuc's shipped TOML with another description, written as `<dir>/<name>.toml`.
fn board_file(dir: &Path, name: &str) -> String {
    let text = include_str!("../../board-profiles/profiles/intel-nuc.toml").replace(
        "description = \"Ubuntu/GRUB BIOS x86_64 host (Project STEM) -> resinOS 2.x intel-nuc\"",
        "description = \"A board added from a file\"",
    );
    assert!(text.contains("A board added from a file"));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn list_shows_every_shipped_profile_with_its_columns() {
    for args in [vec!["profiles"], vec!["profiles", "list"]] {
        let output = stager(&args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let text = stdout(&output);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + SHIPPED.len(), "{text}");
        assert!(
            lines[0].starts_with("NAME")
                && lines[0].contains("DEVICE TYPE")
                && lines[0].contains("DESCRIPTION")
        );
        for (line, name) in lines[1..].iter().zip(SHIPPED) {
            let profile = Profile::builtin(name).unwrap();
            let columns: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(columns[0], name, "{line}");
            assert_eq!(columns[1], profile.device_type, "{line}");
            assert!(line.ends_with(&profile.description), "{line}");
        }
        assert!(
            text.contains("intel-nuc  ")
                && text.contains("ubuntu-grub-host")
                && text.contains("board-firmware"),
            "{text}"
        );
    }
    let json = stager(&["profiles", "--json"]);
    let value: Value = serde_json::from_slice(&json.stdout).unwrap();
    let names: Vec<&str> =
        value.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, SHIPPED);
    assert_eq!(value[1]["boot_mode"], "bios");
    assert_eq!(value[2]["source_kind"], "resinos-1x");
}

#[test]
fn show_prints_intel_nuc_resolved_as_toml() {
    let output = stager(&["profiles", "show", "intel-nuc"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with("# profile intel-nuc (from profiles/intel-nuc.toml (built-in))\n"),
        "{text}"
    );
    for partition in ["resin-boot", "resin-rootA", "resin-rootB", "resin-state", "resin-data"] {
        assert!(text.contains(&format!("name = \"{partition}\"")), "{partition} missing: {text}");
    }
    assert!(text.contains("[[target.partitions]]") && text.contains("device_type = \"intel-nuc\""));
    // What is shown parses back to the very profile.
    assert_eq!(
        Profile::from_toml_str("intel-nuc", &text).unwrap().target,
        Profile::builtin("intel-nuc").unwrap().target
    );

    let json = stager(&["--json", "profiles", "show", "resinos1x-raspberrypi3"]);
    let value: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["name"], "resinos1x-raspberrypi3");
    assert_eq!(value["device_type"], "raspberrypi3");
    assert!(value["resinos1x"].is_object());
}

#[test]
fn an_unknown_name_is_a_one_line_error_listing_the_known_names() {
    let output = stager(&["profiles", "show", "stem-x86"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty());
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unknown profile 'stem-x86'"), "{err}");
    for name in SHIPPED {
        assert!(err.contains(name), "{name} not in {err}");
    }
}

#[test]
fn a_profile_file_adds_a_profile() {
    let dir = tempfile::tempdir().unwrap();
    let file = board_file(dir.path(), "my-board");
    // Before the subcommand and after it (the option is global).
    for args in [
        vec!["--profile-file", &file, "profiles"],
        vec!["profiles", "list", "--profile-file", &file],
    ] {
        let output = stager(&args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let text = stdout(&output);
        assert_eq!(text.lines().count(), 2 + SHIPPED.len(), "{text}");
        let line =
            text.lines().find(|l| l.starts_with("my-board ")).unwrap_or_else(|| panic!("{text}"));
        assert!(line.ends_with("A board added from a file"), "{line}");
    }
    let show = stager(&["profiles", "show", "my-board", "--profile-file", &file]);
    assert_eq!(show.status.code(), Some(0), "{}", stderr(&show));
    assert!(
        stdout(&show).starts_with(&format!("# profile my-board (from {file})")),
        "{}",
        stdout(&show)
    );
    // The file's name is now among the known ones.
    let unknown = stager(&["--profile-file", &file, "profiles", "show", "other"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("my-board"), "{}", stderr(&unknown));
}

#[test]
fn an_invalid_profile_file_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = board_file(dir.path(), "typo");
    let text =
        std::fs::read_to_string(&file).unwrap().replace("min_ram_mib = 1024", "min_ram_mb = 1024");
    std::fs::write(&file, text).unwrap();
    let output = stager(&["--profile-file", &file, "profiles"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty());
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&file) && err.contains("requirements") && err.contains("min_ram_mb"),
        "{err}"
    );

    let missing = dir.path().join("absent.toml").display().to_string();
    let output = stager(&["profiles", "--profile-file", &missing]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&missing) && stderr(&output).contains("cannot read"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_and_stage_use_a_profile_from_a_file() {
    let host = StageHost::new();
    let file = board_file(host.inputs.path(), "my-board");
    let migrator = host.write_input("migrator", b"\x7fELF pretend migrator");
    let sha = sha256_hex(&std::fs::read(host.image()).unwrap());
    let run = |command: &str, profile_file: &str, extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_stager"));
        c.arg(command)
            .arg("--root")
            .arg(host.host.root())
            .args([
                "--profile",
                "my-board",
                "--profile-file",
                profile_file,
                "--kernel-release",
                KERNEL,
            ])
            .arg("--migrator")
            .arg(&migrator)
            .arg("--image")
            .arg(host.image())
            .arg("--config")
            .arg(host.input("config.json"))
            .args(extra);
        c.output().unwrap()
    };
    let before = (host.files(), host.disk_whole());
    let check = run("check", &file, &[]);
    assert_eq!(check.status.code(), Some(0), "{}{}", stdout(&check), stderr(&check));
    assert!(stdout(&check).contains("profile my-board"), "{}", stdout(&check));
    let stage = run("stage", &file, &["--dry-run", "--sha256", &sha]);
    assert_eq!(stage.status.code(), Some(0), "{}{}", stdout(&stage), stderr(&stage));
    assert!(stdout(&stage).contains("Dry run: nothing was changed."), "{}", stdout(&stage));
    assert_eq!((host.files(), host.disk_whole()), before);

    // An invalid --profile-file stops both before anything is read from the host.
    let bad = host.write_input("bad.toml", b"description = 3\n");
    for command in ["check", "stage"] {
        let output =
            run(command, bad.to_str().unwrap(), &["--dry-run"][..usize::from(command == "stage")]);
        assert_eq!(output.status.code(), Some(1), "{command}: {}", stderr(&output));
        let err = stderr(&output);
        assert!(err.contains("bad.toml") && err.contains("description"), "{command}: {err}");
    }
}
