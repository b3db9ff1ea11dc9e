//! A swap area's first page: `swap_header::parse` on the raw bytes, and
//! `read_at` through a Cursor at the page sizes the stager uses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stager::host::swap_header;
use plan::Bytes;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let _ = swap_header::parse(data);
    for page in [4096u64, 8192, 16384, 65536] {
        for offset in [0u64, 512, 1024] {
            let _ = swap_header::read_at(&mut Cursor::new(data), Bytes(offset), Bytes(page));
        }
    }
});
