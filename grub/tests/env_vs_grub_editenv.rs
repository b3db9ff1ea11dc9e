//! The env module against the real `grub-editenv`, both ways.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{editenv, editenv_list, editenv_ok};
use grub::env::{EnvError, GrubEnv, ENVBLK_SIZE, SIGNATURE};

enum Op {
    Set(&'static str, &'static str),
    Unset(&'static str),
}

/// A sequence that exercises append, in-place grow, in-place shrink, delete
/// in the middle, escapes, empty and non-ASCII values.
const OPS: &[Op] = &[
    Op::Set("saved_entry", "Ubuntu, with Linux 4.4.0-21-generic"),
    Op::Set("next_entry", "swapover-migrate"),
    Op::Set("recordfail", "1"),
    Op::Set("saved_entry", "gnulinux-advanced-0b3c>gnulinux-4.4.0-21-generic-advanced-0b3c"),
    Op::Set("next_entry", "x"),
    Op::Unset("saved_entry"),
    Op::Set("path", r"C:\boot\grub"),
    Op::Set("empty", ""),
    Op::Set("title", "Ubuntu GNU/Linux — über"),
    Op::Unset("not-there"),
    Op::Unset("next_entry"),
    Op::Set("next_entry", "1>2"),
];

fn apply_ours(env: &mut GrubEnv, op: &Op) {
    match op {
        Op::Set(k, v) => env.set(k, v).unwrap(),
        Op::Unset(k) => {
            env.unset(k);
        }
    }
}

fn apply_theirs(file: &std::path::Path, op: &Op) {
    match op {
        Op::Set(k, v) => editenv(file, &["set", &format!("{k}={v}")]),
        Op::Unset(k) => editenv(file, &["unset", k]),
    }
}

fn list_of(env: &GrubEnv) -> String {
    env.vars().map(|(k, v)| format!("{k}={v}\n")).collect()
}

#[test]
fn create_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("grubenv");
    editenv(&theirs, &["create"]);
    assert_eq!(GrubEnv::new().to_bytes().unwrap(), fs::read(&theirs).unwrap());
}

#[test]
fn every_step_of_an_edit_sequence_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("grubenv");
    editenv(&theirs, &["create"]);
    let mut ours = GrubEnv::new();
    for (step, op) in OPS.iter().enumerate() {
        apply_ours(&mut ours, op);
        apply_theirs(&theirs, op);
        assert_eq!(
            ours.to_bytes().unwrap(),
            fs::read(&theirs).unwrap(),
            "bytes differ after step {step}"
        );
    }
}

#[test]
fn edits_on_a_block_grub_wrote_are_byte_identical_after_save() {
    // Ours loads the tool's file, edits, saves; the tool edits a copy; compare.
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("theirs");
    let ours_path = dir.path().join("ours");
    editenv(&theirs, &["create"]);
    editenv(&theirs, &["set", "a=1", "b=2", "c=3"]);
    fs::copy(&theirs, &ours_path).unwrap();
    editenv(&theirs, &["unset", "b"]);
    editenv(&theirs, &["set", "a=longer value"]);
    let mut env = GrubEnv::load(&ours_path).unwrap();
    assert!(env.unset("b"));
    env.set("a", "longer value").unwrap();
    env.save(&ours_path).unwrap();
    assert_eq!(fs::read(&ours_path).unwrap(), fs::read(&theirs).unwrap());
}

#[test]
fn grub_editenv_lists_what_we_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grubenv");
    let mut env = GrubEnv::new();
    for op in OPS {
        apply_ours(&mut env, op);
    }
    env.save(&path).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), ENVBLK_SIZE as u64);
    let listed = editenv_list(&path);
    assert_eq!(listed, list_of(&env));
    assert!(listed.contains("path=C:\\boot\\grub\n"), "{listed}");
}

#[test]
fn we_read_what_grub_editenv_writes_including_escaped_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grubenv");
    editenv(&path, &["create"]);
    editenv(&path, &["set", "a=1", "b=x\\y", "c=line\ntwo", "d="]);
    let env = GrubEnv::load(&path).unwrap();
    assert_eq!(list_of(&env), editenv_list(&path));
    assert_eq!(env.get("c"), Some("line\ntwo"));
    // Round trip of a block the tool wrote is exact.
    assert_eq!(env.to_bytes().unwrap(), fs::read(&path).unwrap());
}

#[test]
fn legacy_block_without_warning_line_round_trips_and_stays_legacy() {
    let mut legacy = SIGNATURE.as_bytes().to_vec();
    legacy.extend_from_slice(b"saved_entry=0\n");
    legacy.resize(ENVBLK_SIZE, b'#');
    let mut env = GrubEnv::from_bytes(&legacy).unwrap();
    assert_eq!(env.to_bytes().unwrap(), legacy);
    assert_eq!(GrubEnv::new_without_warning().to_bytes().unwrap()[SIGNATURE.len()], b'#');

    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("grubenv");
    fs::write(&theirs, &legacy).unwrap();
    editenv(&theirs, &["set", "next_entry=m"]);
    env.set("next_entry", "m").unwrap();
    assert_eq!(env.to_bytes().unwrap(), fs::read(&theirs).unwrap());
}

fn valid_block() -> Vec<u8> {
    let mut env = GrubEnv::new();
    env.set("saved_entry", "0").unwrap();
    env.to_bytes().unwrap()
}

#[test]
fn corrupt_blocks_are_rejected_like_grub_rejects_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("grubenv");
    let good = valid_block();

    let mut bad_header = good.clone();
    bad_header[2] = b'X';
    let mut no_equals = good.clone();
    let at = good.windows(12).position(|w| w == b"saved_entry=").unwrap();
    no_equals[at + 11] = b'_';
    let mut no_newline_before_padding = good.clone();
    let last_newline = good.iter().rposition(|&b| b == b'\n').unwrap();
    no_newline_before_padding[last_newline] = b'x';

    type Case = (&'static str, Vec<u8>, fn(&EnvError) -> bool);
    let cases: Vec<Case> = vec![
        ("short", good[..ENVBLK_SIZE - 1].to_vec(), |e| {
            matches!(e, EnvError::WrongSize { actual: 1023 })
        }),
        ("empty", Vec::new(), |e| matches!(e, EnvError::WrongSize { actual: 0 })),
        ("bad header", bad_header, |e| matches!(e, EnvError::BadHeader)),
        ("entry without =", no_equals, |e| matches!(e, EnvError::EntryWithoutEquals { .. })),
        ("no newline before padding", no_newline_before_padding, |e| {
            matches!(e, EnvError::NoPaddingBoundary)
        }),
    ];
    for (what, bytes, expected) in cases {
        let err = GrubEnv::from_bytes(&bytes).unwrap_err();
        assert!(expected(&err), "{what}: unexpected error {err}");
        assert!(
            err.to_string().contains("grubenv"),
            "{what}: message should name the file kind: {err}"
        );
        fs::write(&file, &bytes).unwrap();
        // The real tool refuses to set anything in these too (size aside, it needs the signature
        // and a sound data/padding boundary).
        if what == "bad header" || what == "empty" || what == "no newline before padding" {
            assert!(!editenv_ok(&file, &["set", "k=v"]), "{what}: grub-editenv accepted it");
        }
    }
    let mut long = good.clone();
    long.push(b'#');
    assert!(matches!(GrubEnv::from_bytes(&long), Err(EnvError::WrongSize { actual: 1025 })));
}

#[test]
fn overflow_is_refused_and_leaves_the_block_unchanged_like_grub_editenv() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("grubenv");
    editenv(&theirs, &["create"]);
    let mut env = GrubEnv::new();
    let before = env.to_bytes().unwrap();
    let huge = "v".repeat(ENVBLK_SIZE);
    let err = env.set("big", &huge).unwrap_err();
    assert!(matches!(err, EnvError::Overflow { .. }), "{err}");
    assert_eq!(env.to_bytes().unwrap(), before);
    assert!(!editenv_ok(&theirs, &["set", &format!("big={huge}")]));
    assert_eq!(fs::read(&theirs).unwrap(), before);

    // Exactly full: the largest value that fits is accepted by both, one more byte by neither.
    let used = SIGNATURE.len() + grub::env::WARNING_LINE.len() + 1 + "big=\n".len();
    let fits = "v".repeat(ENVBLK_SIZE - used);
    env.set("big", &fits).unwrap();
    editenv(&theirs, &["set", &format!("big={fits}")]);
    assert_eq!(env.to_bytes().unwrap(), fs::read(&theirs).unwrap());
    assert!(env.to_bytes().unwrap().ends_with(b"\n"), "a full block has no padding at all");
    let too_big = format!("{fits}v");
    assert!(
        matches!(env.set("big", &too_big), Err(EnvError::Overflow { needed }) if needed == ENVBLK_SIZE + 1)
    );
    assert!(!editenv_ok(&theirs, &["set", &format!("big={too_big}")]));
}

#[test]
fn invalid_names_and_newline_values_are_refused() {
    let mut env = GrubEnv::new();
    for name in ["", "a=b", "#x", "a\nb", "a\\b"] {
        assert!(matches!(env.set(name, "v"), Err(EnvError::InvalidName { .. })), "{name:?}");
    }
    assert!(matches!(env.set("k", "a\nb"), Err(EnvError::InvalidValue { .. })));
    assert_eq!(env, GrubEnv::new());
}

#[test]
fn save_keeps_mode_leaves_no_temp_file_and_replaces_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grubenv");
    editenv(&path, &["create"]);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let mut env = GrubEnv::load(&path).unwrap();
    env.set("next_entry", "m").unwrap();
    env.save(&path).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    // GRUB's save_env needs real blocks: the saved file is not sparse.
    assert!(std::os::unix::fs::MetadataExt::blocks(&fs::metadata(&path).unwrap()) > 0);
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("grubenv")]);
    assert_eq!(editenv_list(&path), "next_entry=m\n");
}

#[test]
fn load_or_new_on_a_missing_file_is_what_create_makes() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("theirs");
    editenv(&theirs, &["create"]);
    let env = GrubEnv::load_or_new(&dir.path().join("missing")).unwrap();
    assert_eq!(env.to_bytes().unwrap(), fs::read(&theirs).unwrap());
    assert!(matches!(GrubEnv::load(&dir.path().join("missing")), Err(EnvError::Io { .. })));
}

/// A fixed-seed pseudo-random walk of set/unset over a few names and values of
/// varied lengths (including ones that hit the size limit), compared with the
/// real tool after every step, success and failure alike.
#[test]
fn pseudo_random_edit_walk_matches_grub_editenv() {
    let names = [
        "next_entry",
        "saved_entry",
        "prev_saved_entry",
        "recordfail",
        "x",
        "long_name_for_padding",
    ];
    let mut seed: u64 = 0x5eed_cafe;
    let mut next = |bound: usize| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % bound
    };
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("grubenv");
    editenv(&theirs, &["create"]);
    let mut ours = GrubEnv::new();
    let (mut refused, mut accepted) = (0, 0);
    for step in 0..150 {
        let name = names[next(names.len())];
        if next(4) == 0 {
            ours.unset(name);
            editenv(&theirs, &["unset", name]);
        } else {
            let len = [0, 1, 7, 40, 300, 600][next(6)];
            let value: String = (0..len)
                .map(|i| if i % 13 == 5 { '\\' } else { (b'a' + (i % 26) as u8) as char })
                .collect();
            let ours_ok = ours.set(name, &value).is_ok();
            let theirs_ok = editenv_ok(&theirs, &["set", &format!("{name}={value}")]);
            assert_eq!(
                ours_ok, theirs_ok,
                "step {step}: set {name} ({len} bytes) accepted by one side only"
            );
            if ours_ok {
                accepted += 1
            } else {
                refused += 1
            }
        }
        assert_eq!(ours.to_bytes().unwrap(), fs::read(&theirs).unwrap(), "step {step}");
    }
    assert!(refused > 5 && accepted > 50, "walk too tame: {accepted} accepted, {refused} refused");
}
