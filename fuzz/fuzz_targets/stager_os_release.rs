//! /etc/os-release as the stager reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stager::host::os_release;

fuzz_target!(|data: &[u8]| {
    let release = os_release::parse(&String::from_utf8_lossy(data));
    let _ = release.version();
    let _ = release.is_like("debian");
    let _ = release.display_name();
});
