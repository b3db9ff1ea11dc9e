//! Inputs that crashed the host parsers under `scripts/fuzz.sh` (cargo-fuzz), kept
//! byte for byte: each must now give a clean error, never a panic.

use plan::Bytes;
use stager::host::partition_table::{self, TableError};
use stager::host::{meminfo, swaps};

/// fuzz target stager_meminfo: a kB value whose byte count overflows u64
/// ("attempt to multiply with overflow" in `Bytes::kib`).
const MEMINFO_KIB_OVERFLOW: &[u8] = b"MemTotal:        0000727741151573103960 kB\nMemFe)e:    2 kB\n\xc3ached\x00\x00\x00\x00\x00\x00Gssssssssssssssssssssssssssssssssss!1828 kep16ag";

/// fuzz target stager_swaps: a size column whose byte count overflows u64.
const SWAPS_KIB_OVERFLOW: &[u8] = b"Filename\t\t\t\tType\t\tSize\t\tUsedP\t\triority\n/swapfil`e              & 77777777777777777 \x07\x00\x00(\x00\x00\x00\x00\x00\x00\x00\x00e\t\t209714\xff\x1f\t0\t\t-\t\t";

/// The largest KiB count whose size in bytes still fits in 64 bits.
const MAX_KIB: u64 = u64::MAX / 1024;

fn meminfo_with_total(kib: u64) -> String {
    format!(
        "MemTotal: {kib} kB\nMemFree: 1 kB\nMemAvailable: 1 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n"
    )
}

#[test]
fn meminfo_crash_input_is_refused_on_its_line() {
    let err = meminfo::parse(&String::from_utf8_lossy(MEMINFO_KIB_OVERFLOW)).unwrap_err();
    assert_eq!(err.line, 1);
    assert_eq!(
        err.to_string(),
        "line 1: MemTotal: 727741151573103960 kB does not fit in 64 bits of bytes"
    );
}

#[test]
fn meminfo_kib_overflow_boundary() {
    let info = meminfo::parse(&meminfo_with_total(MAX_KIB)).unwrap();
    assert_eq!(info.total, Bytes(MAX_KIB * 1024));
    let err = meminfo::parse(&meminfo_with_total(MAX_KIB + 1)).unwrap_err();
    assert_eq!(err.line, 1);
}

#[test]
fn swaps_crash_input_is_refused_on_its_line() {
    let err = swaps::parse(&String::from_utf8_lossy(SWAPS_KIB_OVERFLOW)).unwrap_err();
    assert_eq!(err.to_string(), "line 2: `77777777777777777` is not a size in KiB");
}

#[test]
fn swaps_kib_overflow_boundary() {
    let line =
        |kib: u64| format!("Filename Type Size Used Priority\n/dev/sda5 partition {kib} 0 -2\n");
    let areas = swaps::parse(&line(MAX_KIB)).unwrap();
    assert_eq!(areas[0].size, Bytes(MAX_KIB * 1024));
    let err = swaps::parse(&line(MAX_KIB + 1)).unwrap_err();
    assert_eq!(err.line, 2);
}

/// Found by target migrator_layout; the stager's reader made the same mbrman call.
/// 581 bytes, zero but for these (offset, byte) pairs: every used MBR entry starts at
/// sector 0, and mbrman 0.6.1's `MBR::read_from` panicked (`find_alignment` unwrapping
/// `None`).
const MBR_ALL_AT_ZERO_LEN: usize = 581;
const MBR_ALL_AT_ZERO_NONZERO: &[(usize, u8)] = &[
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

#[test]
fn partition_table_with_every_entry_at_sector_zero_is_refused_not_a_panic() {
    let mut image = vec![0u8; MBR_ALL_AT_ZERO_LEN];
    for &(at, byte) in MBR_ALL_AT_ZERO_NONZERO {
        image[at] = byte;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    std::fs::write(&path, &image).unwrap();
    match partition_table::read(&path, Bytes(512)) {
        Err(TableError::Unreadable { problem, .. }) => {
            assert!(
                problem.to_string().ends_with("starts at sector 0, over the MBR itself"),
                "{problem}"
            )
        }
        other => panic!("expected the table to be refused, got {other:?}"),
    }
}

/// Found by target migrator_layout, same mbrman call: 21946 bytes, zero but for these
/// pairs. A logical partition's start passes 2^32 sectors once its EBR's sector is added;
/// mbrman 0.6.1 added them unchecked ("attempt to add with overflow").
const MBR_LOGICAL_OVERFLOW_LEN: usize = 21946;
const MBR_LOGICAL_OVERFLOW_NONZERO: &[(usize, u8)] = &[
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
fn partition_table_with_a_logical_start_past_32_bits_is_refused_not_a_panic() {
    let mut image = vec![0u8; MBR_LOGICAL_OVERFLOW_LEN];
    for &(at, byte) in MBR_LOGICAL_OVERFLOW_NONZERO {
        image[at] = byte;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    std::fs::write(&path, &image).unwrap();
    match partition_table::read(&path, Bytes(512)) {
        Err(TableError::Unreadable { problem, .. }) => {
            assert!(problem.to_string().ends_with("reaches past 2^32 sectors"), "{problem}")
        }
        other => panic!("expected the table to be refused, got {other:?}"),
    }
}
