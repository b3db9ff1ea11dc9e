//! /proc/self/mountinfo as the stager reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stager::host::mountinfo;

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = mountinfo::parse(&String::from_utf8_lossy(data)) else { return };
    for entry in &entries {
        let _ = entry.is_read_only();
        let _ = entry.btrfs_subvolume();
    }
    for path in ["/", "/boot", "/boot/grub/grubenv", "/var/lib/swapover"] {
        let _ = mountinfo::mounted_at(&entries, path);
        let _ = mountinfo::holding(&entries, path);
    }
});
