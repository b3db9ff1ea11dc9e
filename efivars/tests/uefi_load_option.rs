//! `efivars`: EFI_LOAD_OPTION encoding checked against bytes written out by
//! hand from the UEFI spec's field list, decode robustness, the one-shot on an
//! efivarfs-shaped directory, and (when installed) `efibootmgr` reading our
//! variables through libefivar.

use std::fs;
use std::path::Path;
use std::process::Command;

use efivars::{
    EfiVars, HardDrive, LoadOption, PartitionSignature, PermanentBoot, UefiError, UefiOneShot,
    UefiUndo, EFI_GLOBAL_VARIABLE_GUID,
};

const GUID: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

fn mbr_option() -> LoadOption {
    LoadOption {
        description: "swap".into(),
        partition: HardDrive {
            number: 1,
            start_lba: 0x800,
            size_lba: 0x32000,
            signature: PartitionSignature::Mbr(0x1234_abcd),
        },
        file: r"\k".into(),
        args: "a=1".into(),
    }
}

fn gpt_option() -> LoadOption {
    LoadOption {
        description: "swapover migration (GPT) é€".into(),
        partition: HardDrive {
            number: 3,
            start_lba: 0x1_0000_0800,
            size_lba: 0xfffe_0000,
            signature: PartitionSignature::gpt_from_partuuid(
                "0a1b2c3d-1111-2222-3333-444455556666",
            )
            .unwrap(),
        },
        file: r"\swapover\vmlinuz".into(),
        args: r"initrd=\swapover\initramfs.img console=ttyS0,115200 panic=10".into(),
    }
}

fn file_name(name: &str) -> String {
    format!("{name}-{GUID}")
}

/// A directory shaped like a booted machine's efivarfs: BootOrder 0000,0001 and Boot0000.
fn efivars_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // attributes 0x7, BootOrder = [0x0000, 0x0001]
    fs::write(dir.path().join(file_name("BootOrder")), [7, 0, 0, 0, 0, 0, 1, 0]).unwrap();
    // Some firmware option (content irrelevant to the one-shot).
    fs::write(dir.path().join(file_name("Boot0000")), [7, 0, 0, 0, 1, 0, 0, 0]).unwrap();
    dir
}

#[test]
fn guid_constant_is_the_global_variable_guid() {
    assert_eq!(EFI_GLOBAL_VARIABLE_GUID, GUID);
}

#[test]
fn mbr_option_encodes_to_the_spec_bytes_written_by_hand() {
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        // EFI_LOAD_OPTION.Attributes = LOAD_OPTION_ACTIVE (u32 LE)
        0x01, 0x00, 0x00, 0x00,
        // FilePathListLength (u16 LE) = 42 (HD node) + 10 (File node) + 4 (end) = 56 = 0x38
        0x38, 0x00,
        // Description "swap" as UCS-2 LE + NUL
        b's', 0, b'w', 0, b'a', 0, b'p', 0, 0, 0,
        // --- Hard Drive media node: type 4, subtype 1, length 42 (0x2a)
        0x04, 0x01, 0x2a, 0x00,
        // PartitionNumber = 1 (u32)
        0x01, 0x00, 0x00, 0x00,
        // PartitionStart = 0x800 LBA (u64)
        0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        // PartitionSize = 0x32000 LBA (u64)
        0x00, 0x20, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,
        // Signature: MBR disk signature 0x1234abcd LE in the first 4 bytes, 12 zero bytes
        0xcd, 0xab, 0x34, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        // MBRType = 0x01 (PC-AT MBR), SignatureType = 0x01 (32-bit MBR signature)
        0x01, 0x01,
        // --- File Path media node: type 4, subtype 4, length 4 + "\k\0" (6) = 10
        0x04, 0x04, 0x0a, 0x00,
        b'\\', 0, b'k', 0, 0, 0,
        // --- End of Entire Device Path: type 0x7f, subtype 0xff, length 4
        0x7f, 0xff, 0x04, 0x00,
        // OptionalData: "a=1" as UCS-2 LE + NUL
        b'a', 0, b'=', 0, b'1', 0, 0, 0,
    ];
    assert_eq!(mbr_option().encode().unwrap(), expected);
}

#[test]
fn gpt_hard_drive_node_is_written_by_hand() {
    let mut option = gpt_option();
    option.description = "g".into();
    option.file = r"\k".into();
    option.args = String::new();
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        0x01, 0x00, 0x00, 0x00, // LOAD_OPTION_ACTIVE
        0x38, 0x00,             // 56 bytes of device path
        b'g', 0, 0, 0,          // "g" + NUL
        0x04, 0x01, 0x2a, 0x00, // Hard Drive node, 42 bytes
        0x03, 0x00, 0x00, 0x00, // partition 3
        0x00, 0x08, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, // start 0x1_0000_0800
        0x00, 0x00, 0xfe, 0xff, 0x00, 0x00, 0x00, 0x00, // size 0xfffe_0000
        // GUID 0a1b2c3d-1111-2222-3333-444455556666 in GPT on-disk order:
        // first three fields byte-reversed, last two as written
        0x3d, 0x2c, 0x1b, 0x0a, 0x11, 0x11, 0x22, 0x22,
        0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x66, 0x66,
        0x02, 0x02,             // GPT, GUID signature
        0x04, 0x04, 0x0a, 0x00, b'\\', 0, b'k', 0, 0, 0, // File "\k"
        0x7f, 0xff, 0x04, 0x00, // end
        // empty args: no OptionalData at all
    ];
    assert_eq!(option.encode().unwrap(), expected);
    assert_eq!(LoadOption::decode(&expected).unwrap(), option);
}

#[test]
fn decode_inverts_encode_for_mbr_and_gpt() {
    for option in [mbr_option(), gpt_option()] {
        let bytes = option.encode().unwrap();
        assert_eq!(LoadOption::decode(&bytes).unwrap(), option);
    }
}

#[test]
fn every_truncation_and_any_trailing_byte_is_refused() {
    for option in [mbr_option(), gpt_option()] {
        let bytes = option.encode().unwrap();
        // OptionalData has no length field of its own: cut exactly where it
        // starts, the bytes are a valid option without a command line.
        let without_args = LoadOption { args: String::new(), ..option.clone() };
        let args_start = without_args.encode().unwrap().len();
        for len in 0..bytes.len() {
            let r = LoadOption::decode(&bytes[..len]);
            if len == args_start {
                assert_eq!(r.unwrap(), without_args);
            } else {
                assert!(r.is_err(), "{len} of {} bytes decoded: {r:?}", bytes.len());
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(LoadOption::decode(&longer).is_err());
    }
}

#[test]
fn bad_lengths_and_fields_are_refused() {
    let good = mbr_option().encode().unwrap();
    let path_len_at = 4;
    let desc_end = 6 + 10; // "swap" + NUL
    let hd = desc_end;
    let file = hd + 42;
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut edit = |what, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        cases.push((what, b));
    };
    edit("FilePathListLength past the end", &|b| {
        b[path_len_at] = 0xff;
        b[path_len_at + 1] = 0xff
    });
    edit("FilePathListLength one short", &|b| b[path_len_at] -= 1);
    edit("FilePathListLength one long", &|b| b[path_len_at] += 1);
    edit("FilePathListLength zero", &|b| b[path_len_at] = 0);
    edit("inactive", &|b| b[0] = 0);
    edit("hidden bit", &|b| b[0] |= 0x8);
    edit("HD node length 0", &|b| b[hd + 2] = 0);
    edit("HD node length 3", &|b| b[hd + 2] = 3);
    edit("HD node length 43", &|b| b[hd + 2] = 43);
    edit("HD node wrong subtype", &|b| b[hd + 1] = 2);
    edit("MBR format with GUID signature type", &|b| b[hd + 41] = 2);
    edit("unknown signature type", &|b| b[hd + 41] = 0);
    edit("MBR signature padding not zero", &|b| b[hd + 30] = 1);
    edit("file node length 0", &|b| b[file + 2] = 0);
    edit("file node length odd", &|b| b[file + 2] = 9);
    edit("file node length 0xffff", &|b| {
        b[file + 2] = 0xff;
        b[file + 3] = 0xff
    });
    edit("file path without NUL", &|b| b[file + 8] = b'x');
    edit("end node replaced by instance end", &|b| b[file + 11] = 0x01);
    edit("lone surrogate in description", &|b| {
        b[6] = 0x00;
        b[7] = 0xd8
    });
    edit("control char in args", &|b| {
        let n = b.len();
        b[n - 4] = b'\n'
    });
    edit("args missing NUL", &|b| {
        let n = b.len();
        b[n - 2] = b'x'
    });
    edit("args odd length", &|b| {
        b.pop();
    });
    edit("args empty string with NUL", &|b| {
        let n = b.len();
        b.truncate(n - 8);
        b.extend_from_slice(&[0, 0]);
    });
    for (what, bytes) in cases {
        match LoadOption::decode(&bytes) {
            Err(UefiError::Malformed(_)) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn encode_refuses_what_the_firmware_cannot_take() {
    let mut o = mbr_option();
    o.description = "smile 😀".into();
    assert!(matches!(o.encode(), Err(UefiError::Ucs2 { .. })));
    let mut o = mbr_option();
    o.args = "console=ttyS0\n".into();
    assert!(matches!(o.encode(), Err(UefiError::Ucs2 { .. })));
    let mut o = mbr_option();
    o.file = r"\".repeat(40_000);
    assert!(o.encode().unwrap_err().to_string().contains("too long"));
    let mut o = mbr_option();
    o.partition.size_lba = 0;
    assert!(o.encode().is_err());
}

fn read(dir: &Path, name: &str) -> Option<Vec<u8>> {
    fs::read(dir.join(file_name(name))).ok()
}

#[test]
fn arm_writes_boot_option_and_boot_next_and_undo_removes_both() {
    let dir = efivars_dir();
    let vars = EfiVars::at(dir.path());
    let option = gpt_option();
    let undo = UefiOneShot::arm(&vars, &option).unwrap();
    assert_eq!(undo.boot_number, 0x0100);

    let boot = read(dir.path(), "Boot0100").expect("Boot0100 written");
    assert_eq!(&boot[..4], &[7, 0, 0, 0]);
    assert_eq!(LoadOption::decode(&boot[4..]).unwrap(), option);
    assert_eq!(read(dir.path(), "BootNext").unwrap(), vec![7, 0, 0, 0, 0x00, 0x01]);
    assert_eq!(vars.boot_next().unwrap(), Some(0x0100));
    assert!(undo.is_pending(&vars).unwrap());
    // BootOrder is not touched.
    assert_eq!(vars.boot_order().unwrap(), vec![0, 1]);

    undo.undo(&vars).unwrap();
    assert_eq!(read(dir.path(), "Boot0100"), None);
    assert_eq!(read(dir.path(), "BootNext"), None);
    assert!(read(dir.path(), "Boot0000").is_some());
    assert!(!undo.is_pending(&vars).unwrap());
    undo.undo(&vars).unwrap(); // idempotent
}

#[test]
fn previous_boot_next_is_restored_byte_for_byte() {
    let dir = efivars_dir();
    let vars = EfiVars::at(dir.path());
    // Odd but legal attributes, to prove the bytes come back unchanged.
    let previous = vec![0x07, 0x00, 0x00, 0x00, 0x01, 0x00];
    fs::write(dir.path().join(file_name("BootNext")), &previous).unwrap();
    let undo = UefiOneShot::arm(&vars, &mbr_option()).unwrap();
    assert_eq!(undo.previous_boot_next.as_deref(), Some(&previous[..]));
    assert_eq!(vars.boot_next().unwrap(), Some(0x0100));
    undo.undo(&vars).unwrap();
    assert_eq!(read(dir.path(), "BootNext").unwrap(), previous);
    assert_eq!(read(dir.path(), "Boot0100"), None);
}

#[test]
fn taken_numbers_are_skipped() {
    let dir = efivars_dir();
    let vars = EfiVars::at(dir.path());
    fs::write(dir.path().join(file_name("Boot0100")), [7, 0, 0, 0, 1, 0]).unwrap();
    // In BootOrder but without a variable (a dangling entry): still not ours to reuse.
    fs::write(dir.path().join(file_name("BootOrder")), [7, 0, 0, 0, 0, 0, 0x01, 0x01]).unwrap();
    let undo = UefiOneShot::arm(&vars, &mbr_option()).unwrap();
    assert_eq!(undo.boot_number, 0x0102);
    assert!(read(dir.path(), "Boot0102").is_some());
    assert_eq!(read(dir.path(), "BootNext").unwrap(), vec![7, 0, 0, 0, 0x02, 0x01]);
    undo.undo(&vars).unwrap();
    assert_eq!(read(dir.path(), "Boot0100").unwrap(), vec![7, 0, 0, 0, 1, 0]);
    assert_eq!(read(dir.path(), "Boot0102"), None);
}

#[test]
fn undo_after_the_firmware_consumed_boot_next() {
    let dir = efivars_dir();
    let vars = EfiVars::at(dir.path());
    let undo = UefiOneShot::arm(&vars, &mbr_option()).unwrap();
    // What the firmware does before starting Boot0100.
    fs::remove_file(dir.path().join(file_name("BootNext"))).unwrap();
    assert!(!undo.is_pending(&vars).unwrap());
    undo.undo(&vars).unwrap();
    assert_eq!(read(dir.path(), "Boot0100"), None);
    assert_eq!(read(dir.path(), "BootNext"), None);
}

#[test]
fn undo_leaves_a_boot_next_someone_else_set_after_the_firmware_consumed_ours() {
    let dir = efivars_dir();
    let vars = EfiVars::at(dir.path());
    let undo = UefiOneShot::arm(&vars, &mbr_option()).unwrap();
    fs::remove_file(dir.path().join(file_name("BootNext"))).unwrap();
    // Another tool (efibootmgr -n 0002) arms its own one-shot afterwards.
    let theirs = vec![7, 0, 0, 0, 0x02, 0x00];
    fs::write(dir.path().join(file_name("BootNext")), &theirs).unwrap();
    undo.undo(&vars).unwrap();
    assert_eq!(read(dir.path(), "BootNext").unwrap(), theirs, "their BootNext was touched");
    assert_eq!(read(dir.path(), "Boot0100"), None, "our option is still removed");
}

#[test]
fn undo_leaves_a_boot_option_someone_else_rewrote() {
    let dir = efivars_dir();
    let vars = EfiVars::at(dir.path());
    let undo = UefiOneShot::arm(&vars, &mbr_option()).unwrap();
    let theirs = vec![7, 0, 0, 0, 9, 9];
    fs::write(dir.path().join(file_name("Boot0100")), &theirs).unwrap();
    undo.undo(&vars).unwrap();
    assert_eq!(read(dir.path(), "Boot0100").unwrap(), theirs);
    assert_eq!(read(dir.path(), "BootNext"), None);
}

#[test]
fn undo_record_survives_json() {
    let dir = efivars_dir();
    let vars = EfiVars::at(dir.path());
    fs::write(dir.path().join(file_name("BootNext")), [7, 0, 0, 0, 0, 0]).unwrap();
    let undo = UefiOneShot::arm(&vars, &gpt_option()).unwrap();
    let json = serde_json::to_string(&undo).unwrap();
    let back: UefiUndo = serde_json::from_str(&json).unwrap();
    assert_eq!(back, undo);
    back.undo(&vars).unwrap();
    assert_eq!(read(dir.path(), "BootNext").unwrap(), vec![7, 0, 0, 0, 0, 0]);
}

#[test]
fn arm_refuses_without_efivarfs() {
    let dir = tempfile::tempdir().unwrap();
    for vars in [
        EfiVars::at(dir.path().join("missing")),
        EfiVars::at(dir.path()), // an unmounted mount point: empty
    ] {
        let err = UefiOneShot::arm(&vars, &mbr_option()).unwrap_err();
        assert!(matches!(err, UefiError::NoEfiVars { .. }), "{err:?}");
        assert!(err.to_string().contains("mount -t efivarfs"), "{err}");
    }
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
}

#[test]
fn arm_writes_nothing_when_the_option_does_not_encode() {
    let dir = efivars_dir();
    let vars = EfiVars::at(dir.path());
    let mut option = mbr_option();
    option.file = "/swapover/vmlinuz".into();
    assert!(UefiOneShot::arm(&vars, &option).is_err());
    assert_eq!(read(dir.path(), "Boot0100"), None);
    assert_eq!(read(dir.path(), "BootNext"), None);
}

#[test]
fn malformed_variables_are_reported_not_misread() {
    let dir = efivars_dir();
    let vars = EfiVars::at(dir.path());
    fs::write(dir.path().join(file_name("BootNext")), [7, 0, 0, 0, 1]).unwrap();
    assert!(vars.boot_next().is_err());
    fs::write(dir.path().join(file_name("BootNext")), [7, 0]).unwrap();
    assert!(vars.boot_next().is_err());
    fs::write(dir.path().join(file_name("BootOrder")), [7, 0, 0, 0, 1]).unwrap();
    assert!(vars.boot_order().is_err());
}

/// efivarfs marks variables immutable; undo must clear FS_IMMUTABLE_FL to
/// delete or replace them. Needs root and a filesystem with chattr support.
#[test]
fn undo_clears_the_immutable_flag() {
    // Under target/ (a disk filesystem) rather than /tmp, which may be tmpfs
    // without chattr support.
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(base).unwrap();
    fs::write(dir.path().join(file_name("BootOrder")), [7, 0, 0, 0, 0, 0]).unwrap();
    let vars = EfiVars::at(dir.path());
    let previous = vec![7, 0, 0, 0, 5, 0];
    fs::write(dir.path().join(file_name("BootNext")), &previous).unwrap();
    let undo = UefiOneShot::arm(&vars, &mbr_option()).unwrap();
    let boot_next = dir.path().join(file_name("BootNext"));
    let boot = dir.path().join(file_name("Boot0100"));
    let chattr = Command::new("chattr").arg("+i").arg(&boot_next).arg(&boot).status();
    match chattr {
        Ok(s) if s.success() => {}
        other => {
            eprintln!("SKIP: chattr +i not possible here ({other:?}): needs root and ext4/xfs");
            return;
        }
    }
    // Whatever happens below, leave nothing immutable behind under target/.
    struct Mutable<'a>(&'a Path);
    impl Drop for Mutable<'_> {
        fn drop(&mut self) {
            for entry in fs::read_dir(self.0).into_iter().flatten().flatten() {
                let _ = Command::new("chattr").arg("-i").arg(entry.path()).status();
            }
        }
    }
    let _mutable = Mutable(dir.path());
    // The flag really blocks a plain unlink.
    let blocked = fs::remove_file(&boot).unwrap_err();
    assert_eq!(blocked.raw_os_error(), Some(1), "EPERM expected: {blocked}");
    undo.undo(&vars).unwrap();
    assert_eq!(fs::read(&boot_next).unwrap(), previous);
    assert!(!boot.exists());
}

/// efibootmgr (through libefivar, pointed at our directory with
/// EFIVARFS_PATH) must read what we wrote as the option we meant.
#[test]
fn efibootmgr_reads_our_variables() {
    if Command::new("efibootmgr").arg("--version").output().is_err() {
        eprintln!("SKIP: efibootmgr not installed (apt-get install efibootmgr)");
        return;
    }
    for (option, hd) in [
        (mbr_option(), "HD(1,MBR,0x1234abcd,0x800,0x32000)/File(\\k)"),
        (
            gpt_option(),
            "HD(3,GPT,0a1b2c3d-1111-2222-3333-444455556666,0x100000800,0xfffe0000)/File(\\swapover\\vmlinuz)",
        ),
    ] {
        // Only variables efibootmgr can parse: BootCurrent, and our option.
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(file_name("BootCurrent")), [7, 0, 0, 0, 0, 0]).unwrap();
        let vars = EfiVars::at(dir.path());
        UefiOneShot::arm(&vars, &option).unwrap();
        let mut path = dir.path().as_os_str().to_owned();
        path.push("/");
        let out = Command::new("efibootmgr")
            .arg("-v")
            .env("EFIVARFS_PATH", &path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("BootNext: 0100"), "{stdout}");
        let line = stdout
            .lines()
            .find(|l| l.starts_with("Boot0100"))
            .unwrap_or_else(|| panic!("no Boot0100 in {stdout}"));
        let expected = format!("Boot0100* {}\t{hd}", option.description);
        assert!(line.starts_with(&expected), "{line:?} vs {expected:?}");
        // efibootmgr shows the UCS-2 optional data byte-wise with dots for NULs.
        let dotted: String = option.args.chars().flat_map(|c| [c, '.']).collect();
        assert!(line.contains(&dotted), "{line:?} lacks {dotted:?}");
    }
}

/// A minimal PE header by hand: "MZ", e_lfanew at 0x3c, "PE\0\0", COFF machine.
fn pe_head(pe_offset: u32, machine: u16) -> Vec<u8> {
    let mut head = vec![0u8; 0x200];
    head[0..2].copy_from_slice(b"MZ");
    head[0x3c..0x40].copy_from_slice(&pe_offset.to_le_bytes());
    let at = pe_offset as usize;
    if at + 6 <= head.len() {
        head[at..at + 4].copy_from_slice(b"PE\0\0");
        head[at + 4..at + 6].copy_from_slice(&machine.to_le_bytes());
    }
    head
}

#[test]
fn efi_stub_check_reads_the_pe_header() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vmlinuz");
    let check = |bytes: &[u8]| {
        fs::write(&file, bytes).unwrap();
        efivars::check_efi_stub(&file)
    };
    check(&pe_head(0x80, 0x8664)).unwrap();
    for (what, bytes, says) in [
        ("i386 PE", pe_head(0x80, 0x014c), "0x014c"),
        ("PE offset past 4 KiB", pe_head(0x2000, 0x8664), "outside"),
        ("no MZ", vec![0xeb, 0x63, 0x90], "no MZ"),
        ("truncated DOS header", b"MZ\0\0".to_vec(), "truncated"),
        ("truncated PE header", pe_head(0x80, 0x8664)[..0x85].to_vec(), "PE"),
    ] {
        let err = check(&bytes).unwrap_err();
        assert!(
            matches!(err, UefiError::NotEfiStub { .. }) && err.to_string().contains(says),
            "{what}: {err}"
        );
        assert!(err.to_string().contains("CONFIG_EFI_STUB"), "{err}");
    }
    assert!(matches!(
        efivars::check_efi_stub(&dir.path().join("missing")),
        Err(UefiError::Io { .. })
    ));
}

#[test]
fn efi_stub_check_on_real_images() {
    // GRUB's BIOS boot sector is no EFI executable.
    let boot_img = Path::new("/usr/lib/grub/i386-pc/boot.img");
    if boot_img.exists() {
        assert!(efivars::check_efi_stub(boot_img).is_err());
    } else {
        eprintln!("SKIP boot.img: {} missing", boot_img.display());
    }
    // A GRUB x86_64-efi image is a real x86-64 PE file.
    let dir = tempfile::tempdir().unwrap();
    let efi = dir.path().join("grubx64.efi");
    match Command::new("grub-mkimage")
        .args(["-O", "x86_64-efi", "-p", "/EFI/BOOT", "-o"])
        .arg(&efi)
        .arg("normal")
        .status()
    {
        Ok(s) if s.success() => efivars::check_efi_stub(&efi).unwrap(),
        other => eprintln!("SKIP grub-mkimage x86_64-efi: {other:?}"),
    }
    // The QEMU tests' Debian kernel (scripts/setup.sh) carries the EFI stub.
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/kernel");
    match fs::read_to_string(cache.join("VERSION")) {
        Ok(version) => {
            let vmlinuz = cache.join(format!("root/boot/vmlinuz-{}", version.trim()));
            efivars::check_efi_stub(&vmlinuz).unwrap();
        }
        Err(e) => eprintln!("SKIP test kernel: {e} (run scripts/setup.sh)"),
    }
}

#[test]
fn a_permanent_boot_goes_first_in_boot_order_and_comes_out_again() {
    let dir = efivars_dir();
    let vars = EfiVars::at(dir.path());
    let undo = UefiOneShot::arm(&vars, &gpt_option()).unwrap();
    // What the firmware does before booting BootNext; it then sets BootCurrent.
    fs::remove_file(dir.path().join(file_name("BootNext"))).unwrap();
    fs::write(dir.path().join(file_name("BootCurrent")), [6, 0, 0, 0, 0x00, 0x01]).unwrap();
    assert_eq!(vars.boot_current().unwrap(), Some(0x0100));

    let permanent = PermanentBoot::record(&vars, 0x0100).unwrap();
    assert_eq!(permanent.previous_order, vec![0, 1]);
    permanent.apply(&vars).unwrap();
    assert_eq!(vars.boot_order().unwrap(), vec![0x0100, 0, 1]);
    permanent.apply(&vars).unwrap(); // idempotent
    assert_eq!(vars.boot_order().unwrap(), vec![0x0100, 0, 1]);
    // Recorded again after a power cut (ours already first): the order to put back is the same.
    assert_eq!(PermanentBoot::record(&vars, 0x0100).unwrap(), permanent);

    permanent.put_back(&vars).unwrap();
    assert_eq!(vars.boot_order().unwrap(), vec![0, 1]);
    assert!(read(dir.path(), "Boot0100").is_some(), "putting the order back keeps the option");

    permanent.apply(&vars).unwrap();
    // Something else changed the order meanwhile: removal keeps that change.
    vars.write_boot_order(&[0x0100, 1, 0, 7]).unwrap();
    permanent.remove(&vars).unwrap();
    assert_eq!(vars.boot_order().unwrap(), vec![1, 0, 7]);
    assert_eq!(read(dir.path(), "Boot0100"), None);
    permanent.remove(&vars).unwrap(); // idempotent
    undo.undo(&vars).unwrap(); // the stager's record finds nothing left to undo
    assert!(read(dir.path(), "Boot0000").is_some());
}

#[test]
fn a_permanent_boot_needs_its_option() {
    let dir = efivars_dir();
    let vars = EfiVars::at(dir.path());
    let permanent = PermanentBoot::record(&vars, 0x0100).unwrap();
    let err = permanent.apply(&vars).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert_eq!(vars.boot_order().unwrap(), vec![0, 1], "BootOrder untouched");
}
