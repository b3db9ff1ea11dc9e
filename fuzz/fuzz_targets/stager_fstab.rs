//! /etc/fstab as the stager reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stager::host::fstab;

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = fstab::parse(&String::from_utf8_lossy(data)) else { return };
    for entry in fstab::swap_entries(&entries) {
        assert!(entry.is_swap());
    }
});
