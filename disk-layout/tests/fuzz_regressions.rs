//! Inputs that broke the partition table model under `scripts/fuzz.sh` (cargo-fuzz, target
//! migrator_layout), kept byte for byte, plus the same cases built with real tools: each
//! must now give a clean error, never a panic.

use disk_layout::units::Sectors;
use disk_layout::{
    final_table, write_growth, DataGrowth, FinalTable, HeadOverlay, LayoutError, PartitionTable,
};
use std::io::{Cursor, Write};
use std::process::{Command, Stdio};

/// Crash input 1: 18909 bytes, zero but for these (offset, byte) pairs. An MBR whose
/// extended partition (entry 2) starts at sector 0, so the "EBR" of logical 5 is the MBR
/// itself: `write_growth` patched it on the disk, under the held-back head that is
/// written last, and the grown size was lost while the returned table claimed it.
/// Now refused when read (and `write_growth` refuses any EBR inside the head, below).
const EBR_AT_ZERO_LEN: usize = 18909;
const EBR_AT_ZERO_NONZERO: &[(usize, u8)] = &[
    (440, 0x7e),
    (441, 0xe0),
    (442, 0x0a),
    (446, 0x80),
    (448, 0x03),
    (450, 0x83),
    (452, 0x16),
    (454, 0x02),
    (458, 0x14),
    (464, 0x19),
    (466, 0x05),
    (467, 0x01),
    (468, 0x1f),
    (469, 0x27),
    (474, 0x46),
    (510, 0x55),
    (511, 0xaa),
    (2326, 0x93),
    (10780, 0x93),
    (15974, 0x0a),
];

/// Crash input 2: 581 bytes. Every used entry starts at sector 0: mbrman 0.6.1's
/// `MBR::read_from` panicked (`Option::unwrap()` on `None` in `find_alignment`).
const ALL_AT_ZERO_LEN: usize = 581;
const ALL_AT_ZERO_NONZERO: &[(usize, u8)] = &[
    (14, 0x07),
    (44, 0xff),
    (45, 0xff),
    (46, 0xff),
    (47, 0xff),
    (48, 0x2b),
    (49, 0xff),
    (50, 0xff),
    (51, 0xfc),
    (394, 0x0f),
    (396, 0x83),
    (398, 0x22),
    (405, 0x83),
    (407, 0x22),
    (442, 0x5d),
    (445, 0x5d),
    (453, 0x83),
    (455, 0x22),
    (457, 0x0e),
    (461, 0x14),
    (467, 0x23),
    (471, 0x22),
    (473, 0x33),
    (474, 0x83),
    (477, 0x14),
    (483, 0x37),
    (485, 0x83),
    (486, 0x01),
    (487, 0x15),
    (489, 0x01),
    (492, 0x02),
    (493, 0x1e),
    (497, 0x55),
    (498, 0xaa),
    (510, 0x55),
    (511, 0xaa),
    (539, 0x01),
    (542, 0x09),
];

fn sparse(len: usize, nonzero: &[(usize, u8)]) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    for &(at, byte) in nonzero {
        bytes[at] = byte;
    }
    bytes
}

/// Crash input 3: 21946 bytes. A logical partition whose start, relative to its EBR,
/// passes 2^32 sectors once the EBR's sector is added: mbrman 0.6.1 adds them unchecked
/// ("attempt to add with overflow" in `MBR::read_from`; a wrong start without overflow checks).
const EBR_OVERFLOW_LEN: usize = 21946;
const EBR_OVERFLOW_NONZERO: &[(usize, u8)] = &[
    (440, 0x7e),
    (441, 0xe0),
    (442, 0x0a),
    (446, 0x80),
    (448, 0x03),
    (450, 0x83),
    (452, 0x16),
    (454, 0x02),
    (458, 0x14),
    (464, 0x19),
    (466, 0x05),
    (467, 0x01),
    (468, 0x1f),
    (470, 0x18),
    (474, 0x46),
    (510, 0x55),
    (511, 0xaa),
    (12736, 0x1b),
    (12738, 0x82),
    (12740, 0x24),
    (12741, 0xf6),
    (12742, 0xfd),
    (12743, 0xff),
    (12744, 0xff),
    (12745, 0xff),
    (12746, 0xf5),
    (12747, 0xff),
    (12748, 0xff),
    (12752, 0x28),
    (12754, 0x05),
    (12756, 0x3c),
    (12758, 0x0f),
    (12762, 0x15),
    (12798, 0x55),
    (12799, 0xaa),
    (15534, 0x03),
    (20416, 0x29),
    (20418, 0x83),
    (20420, 0x3c),
    (20422, 0x01),
    (20426, 0x14),
    (20478, 0x55),
    (20479, 0xaa),
];

#[test]
fn crash_input_logical_start_past_32_bits_is_refused_not_a_panic() {
    let image = sparse(EBR_OVERFLOW_LEN, EBR_OVERFLOW_NONZERO);
    assert_unreadable(
        PartitionTable::read(&mut Cursor::new(&image)),
        "the logical partition chain at sector ",
    );
}

/// What the fuzz target did: read the table, grow it over a slightly larger disk.
fn grow(image: &[u8]) -> FinalTable {
    let table = PartitionTable::read(&mut Cursor::new(image)).unwrap();
    let disk_size = Sectors(table.end().0 + (image.len() as u64 & 0xffff));
    final_table(&table, disk_size, DataGrowth::OverStaging).unwrap()
}

fn assert_unreadable(result: Result<impl std::fmt::Debug, LayoutError>, expected_start: &str) {
    match result {
        Err(LayoutError::Unreadable(problem)) => {
            assert!(problem.to_string().starts_with(expected_start), "{problem}")
        }
        other => panic!("expected Unreadable({expected_start}...), got {other:?}"),
    }
}

#[test]
fn crash_input_extended_partition_at_sector_zero_is_refused() {
    let image = sparse(EBR_AT_ZERO_LEN, EBR_AT_ZERO_NONZERO);
    assert_unreadable(
        PartitionTable::read(&mut Cursor::new(&image)),
        "partition 2 starts at sector 0, over the MBR itself",
    );
    assert_unreadable(PartitionTable::from_head(&image), "partition 2 starts at sector 0");
}

#[test]
fn crash_input_every_entry_at_sector_zero_is_refused_not_a_panic() {
    let image = sparse(ALL_AT_ZERO_LEN, ALL_AT_ZERO_NONZERO);
    let result = PartitionTable::read(&mut Cursor::new(&image));
    let message = result.as_ref().map(|_| ()).unwrap_err().to_string();
    assert_unreadable(result, "partition ");
    assert!(message.contains("starts at sector 0, over the MBR itself"), "{message}");
}

/// A real table (sfdisk) with its logical partitions at sectors 24.., grown with a
/// one-sector head (EBRs outside it: written and read back) and with a head that
/// covers the EBRs (refused).
#[test]
fn ebrs_inside_the_held_back_head_are_refused_outside_it_patched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    std::fs::File::create(&path).unwrap().set_len(48 * 1024).unwrap();
    let mut child =
        Command::new("sfdisk").arg("-q").arg(&path).stdin(Stdio::piped()).spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"label: dos\nstart=2, size=20, type=83\nstart=24, size=70, type=5\nstart=26, size=10, type=82\nstart=40, size=20, type=83\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let image = std::fs::read(&path).unwrap();
    let grown = grow(&image);
    assert_eq!(grown.growth.map(|g| g.number), Some(6));

    let mut head = image[..512].to_vec();
    let mut disk = Cursor::new(image.clone());
    write_growth(&grown, &mut head, &mut disk).unwrap();
    let disk = disk.into_inner();
    let reread = PartitionTable::read(&mut HeadOverlay::new(&head, Cursor::new(&disk))).unwrap();
    assert_eq!(reread, grown.table);

    let mut whole_head = image.clone();
    let mut untouched = Cursor::new(image.clone());
    // Logical 6's EBR lies inside this 48 KiB head.
    let data_ebr = grown.table.partition(6).and_then(|p| p.ebr).unwrap();
    assert_unreadable(
        write_growth(&grown, &mut whole_head, &mut untouched),
        &format!("the EBR at sector {} lies in the image's first ", data_ebr.0),
    );
    assert_eq!(whole_head, image, "head patched although the growth was refused");
    assert_eq!(untouched.into_inner(), image, "disk patched although the growth was refused");
}
