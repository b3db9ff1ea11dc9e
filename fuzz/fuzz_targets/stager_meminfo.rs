//! /proc/meminfo as the stager reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stager::host::meminfo;

fuzz_target!(|data: &[u8]| {
    let Ok(info) = meminfo::parse(&String::from_utf8_lossy(data)) else { return };
    let _ = info.swap_used();
    let _ = info.available_without_swap();
});
