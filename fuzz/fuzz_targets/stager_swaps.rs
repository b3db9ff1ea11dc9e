//! /proc/swaps as the stager reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stager::host::swaps;

fuzz_target!(|data: &[u8]| {
    let _ = swaps::parse(&String::from_utf8_lossy(data));
});
